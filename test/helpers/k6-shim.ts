/**
 * Just enough of the k6 runtime to run a scenario's VU code under Node
 * (k6 itself is not installable here): `check`, metrics that record their
 * samples, timers and `k6/websockets` (the `ws` package, which has the same
 * browser-style API) that count what is pending, so the harness knows when
 * an iteration has ended, and `k6/execution` as a plain object the harness
 * sets. `sleep` does not block (Node cannot without stopping every socket):
 * a VU reconnects at once. `k6/ws` (the blocking API) is not provided.
 *
 * Bundled with a scenario by esbuild (see test/k6-reconnect-storm.test.ts),
 * once per VU: each bundle has its own module state, as each k6 VU has.
 */
import NodeWebSocket from 'ws';

interface MetricState {
  type: 'counter' | 'rate' | 'trend';
  values: number[];
}

/** What the VU recorded, and what it has pending. */
export const state = {
  metrics: new Map<string, MetricState>(),
  checks: { pass: 0, fail: 0 },
  /** Live timers and open sockets: an iteration ends when this is 0. */
  pending: 0,
};

export const exec = {
  vu: { idInTest: 0, iterationInScenario: 0 },
  scenario: { name: '', startTime: 0 },
};

export function check<T>(value: T, sets: Record<string, (v: T) => boolean>): boolean {
  let all = true;
  for (const f of Object.values(sets)) {
    const ok = f(value);
    if (ok) state.checks.pass++;
    else state.checks.fail++;
    all &&= ok;
  }
  return all;
}

export function sleep(_seconds: number): void {
  // See the module comment: not blocking.
}

class Metric {
  private readonly m: MetricState;
  constructor(name: string, type: MetricState['type']) {
    let m = state.metrics.get(name);
    if (m === undefined) state.metrics.set(name, (m = { type, values: [] }));
    this.m = m;
  }
  add(v: number | boolean, _tags?: Record<string, string>): void {
    this.m.values.push(typeof v === 'boolean' ? (v ? 1 : 0) : v);
  }
}
export class Counter extends Metric {
  constructor(name: string) {
    super(name, 'counter');
  }
}
export class Rate extends Metric {
  constructor(name: string) {
    super(name, 'rate');
  }
}
export class Trend extends Metric {
  constructor(name: string, _isTime?: boolean) {
    super(name, 'trend');
  }
}

const timeouts = new Set<unknown>();
const intervals = new Set<unknown>();

function shimSetTimeout(f: () => void, ms: number): unknown {
  state.pending++;
  const t = globalThis.setTimeout(() => {
    if (timeouts.delete(t)) state.pending--;
    f();
  }, ms);
  timeouts.add(t);
  return t;
}
function shimClearTimeout(t: unknown): void {
  if (timeouts.delete(t)) state.pending--;
  globalThis.clearTimeout(t as NodeJS.Timeout);
}
function shimSetInterval(f: () => void, ms: number): unknown {
  state.pending++;
  const t = globalThis.setInterval(f, ms);
  intervals.add(t);
  return t;
}
function shimClearInterval(t: unknown): void {
  if (intervals.delete(t)) state.pending--;
  globalThis.clearInterval(t as NodeJS.Timeout);
}
export { shimClearInterval as clearInterval, shimClearTimeout as clearTimeout, shimSetInterval as setInterval, shimSetTimeout as setTimeout };

/** `k6/websockets`: the `ws` package's browser-style API, counted as pending until closed. */
export class WebSocket extends NodeWebSocket {
  constructor(url: string) {
    super(url);
    state.pending++;
    let counted = true;
    const done = () => {
      if (counted) state.pending--;
      counted = false;
    };
    this.addEventListener('close', done);
    // A refused connection ends with error then close; `ws` emits close after error, but be sure.
    this.once('error', () => setImmediate(() => this.readyState === NodeWebSocket.CLOSED && done()));
  }
}

/** `k6/ws`: not provided. */
export const blockingWs = {
  connect(): never {
    throw new Error('k6/ws is not provided by the test shim: set SYMBOLS so that setup() lists nothing');
  },
};
