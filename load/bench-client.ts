/**
 * Benchmark subscriber process: many WebSocket clients of one of three
 * servers, recording end-to-end latency into HdrHistogram (see
 * load/latency.ts for the method) and counting what arrives, so that the
 * same workload can be run against tickgate and against the baselines:
 *
 * - `tickgate`: protocol v1 (MessagePack frames of `snap`/`upd` arrays);
 * - `ws-json`: bench/baselines/ws-json-gateway.ts (one JSON `upd` per frame);
 * - `nats-ws`: nats-server's own WebSocket listener through nats.js
 *   (`wsconnect`), one NATS subscription per symbol (`md.sim.<token>`), each
 *   message the publisher's MessagePack tick.
 *
 * Client i (counting from --client-offset, so several processes split one
 * population) picks --symbols-per-client symbols of the simulator's universe
 * from its own seeded stream, Zipf-weighted by the simulator's activity rank:
 * the same clients want the same symbols whichever server they talk to.
 * Connections come from --source-address onwards, --per-address per address
 * (see load/source-addresses.ts).
 *
 *   npm run load:bench-client -- --protocol tickgate --url ws://127.0.0.1:8080/v1/stream --clients 100 --duration 10
 *
 * With --control the process is driven over stdin, one command per line, and
 * answers with one JSON line each on stdout: `open N` (ramp to N connections,
 * answered when all have subscribed or failed), `start [RATE]` (begin a
 * measurement window; RATE: the publisher's ticks per second from now on),
 * `stop` (end it and report it). End of input closes everything and
 * exits. Without --control it opens --clients, measures for --duration
 * seconds and prints one window report.
 */
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { MarketSim } from '../src/feed/market-sim.js';
import { subjectToken } from '../feeds/sim.js';
import { symbolPicker } from './subscribers.js';
import { encodeHistogram, LatencyRecorder, makeWallClock, newHistogram, tickShares } from './latency.js';
import { defaultPerAddress, sourceAddressFor } from './source-addresses.js';
import { UsageError, parseOptions } from '../src/cli-tool.js';

export type Protocol = 'tickgate' | 'ws-json' | 'nats-ws';

export interface BenchClientOptions {
  protocol: Protocol;
  url: string;
  /** Connections this process opens (without --control). */
  clients: number;
  symbolsPerClient: number;
  /** Symbols in the simulator's universe to pick from. */
  universe: number;
  zipf: number;
  uniform: boolean;
  seed: number;
  /** Global index of this process's first client. */
  clientOffset: number;
  /** The publisher's Zipf exponent: with its rate, each symbol's expected interval for the corrected histogram. */
  feedZipf: number;
  /** The publisher's ticks per second (0: unknown, no correction); `start RATE` changes it. */
  rate: number;
  /** First source address; null: let the kernel choose (127.0.0.1). */
  sourceAddress: string | null;
  perAddress: number;
  /** New connections per second. */
  connectRate: number;
  /** Seconds measured without --control; the upper bound of the process's life with it. */
  duration: number;
  control: boolean;
}

/** Reply to `open N`. */
export interface OpenedReport {
  ev: 'opened';
  requested: number;
  /** Connections open now. */
  open: number;
  failed: number;
  failures: Record<string, number>;
  seconds: number;
  /** Encoded histograms (microseconds) of the connections opened by this command. */
  connectUs: string;
  subscribeUs: string;
  /** Source addresses used so far. */
  sourceAddresses: string[];
}

/** Reply to `stop`: what arrived during the window. */
export interface WindowReport {
  ev: 'window';
  protocol: Protocol;
  seconds: number;
  open: number;
  /** Connections closed by the server or the network during the window. */
  closedEarly: number;
  frames: number;
  bytes: number;
  /** Updates (tickgate upd, ws-json upd, NATS messages), not counting snapshots. */
  updates: number;
  snapshots: number;
  /** tickgate: updates with n > 1, and the ticks they merged away. */
  merged: number;
  ticksMerged: number;
  /** tickgate: snap/upd whose q did not advance. */
  qViolations: number;
  byes: Record<string, number>;
  closes: Record<string, number>;
  /** Encoded HdrHistograms in microseconds. */
  latencyUs: string;
  latencyCorrectedUs: string;
  cpuMs: number;
  eventLoopDelayP99Ms: number;
  rssMiB: number;
}

export { UsageError };

export const USAGE = `usage: npm run load:bench-client -- [options]

  --protocol P             tickgate, ws-json or nats-ws (default tickgate)
  --url URL                server endpoint (default ws://127.0.0.1:8080/v1/stream)
  --clients N              connections, 1 to 20000 (default 100; with --control, "open N" decides)
  --symbols-per-client N   symbols per connection (default 20)
  --universe N             simulator symbols to pick from (default 2000)
  --zipf X                 Zipf exponent of the picks (default 1.1)
  --uniform                pick uniformly instead
  --seed N                 seed of the picks (default 1)
  --client-offset N        global index of this process's first client (default 0)
  --feed-zipf X            the publisher's Zipf exponent (default 1.1)
  --rate N                 the publisher's ticks per second, for the corrected histogram (default 0: no correction)
  --source-address A       first loopback source address, e.g. 127.0.0.2 (default: kernel's choice)
  --per-address N          connections per source address (default 90% of the ephemeral port range)
  --connect-rate N         new connections per second (default 1000)
  --duration S             seconds measured; with --control the longest the process lives (default 10)
  --control                driven by stdin: "open N", "start [RATE]", "stop"; end of input exits
  --help                   show this help`;

const MAX_CLIENTS = 20_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Longest an "open" command may take before it answers with what it has. */
const OPEN_TIMEOUT_MS = 120_000;
const RAMP_STEP_MS = 50;

function num(name: string, raw: string | undefined, def: string, expected: string, ok: (n: number) => boolean): number {
  const s = raw ?? def;
  const n = s.trim() === '' ? NaN : Number(s);
  if (!ok(n)) throw new UsageError(`--${name}: expected ${expected}, got ${JSON.stringify(s)}`);
  return n;
}
const intIn = (lo: number, hi: number) => (n: number) => Number.isInteger(n) && n >= lo && n <= hi;

export function parseBenchClientArgs(argv: readonly string[]): BenchClientOptions | 'help' {
  const v = parseOptions(argv, {
    protocol: { type: 'string' },
    url: { type: 'string' },
    clients: { type: 'string' },
    'symbols-per-client': { type: 'string' },
    universe: { type: 'string' },
    zipf: { type: 'string' },
    uniform: { type: 'boolean', default: false },
    seed: { type: 'string' },
    'client-offset': { type: 'string' },
    'feed-zipf': { type: 'string' },
    rate: { type: 'string' },
    'source-address': { type: 'string' },
    'per-address': { type: 'string' },
    'connect-rate': { type: 'string' },
    duration: { type: 'string' },
    control: { type: 'boolean', default: false },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  const protocol = v.protocol ?? 'tickgate';
  if (protocol !== 'tickgate' && protocol !== 'ws-json' && protocol !== 'nats-ws') {
    throw new UsageError(`--protocol: expected tickgate, ws-json or nats-ws, got ${JSON.stringify(protocol)}`);
  }
  const url = v.url ?? 'ws://127.0.0.1:8080/v1/stream';
  if (!/^wss?:\/\/[^\s/]+(\/\S*)?$/.test(url)) throw new UsageError(`--url: expected a ws:// URL, got ${JSON.stringify(url)}`);
  const src = v['source-address'] ?? null;
  if (src !== null && !/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(src)) throw new UsageError(`--source-address: expected a 127.x.y.z address, got ${JSON.stringify(src)}`);
  return {
    protocol,
    url,
    clients: num('clients', v.clients, '100', `an integer from 1 to ${MAX_CLIENTS}`, intIn(1, MAX_CLIENTS)),
    symbolsPerClient: num('symbols-per-client', v['symbols-per-client'], '20', 'an integer from 1 to 2000', intIn(1, 2000)),
    universe: num('universe', v.universe, '2000', 'an integer from 1 to 1000000', intIn(1, 1_000_000)),
    zipf: num('zipf', v.zipf, '1.1', 'a finite number >= 0', (n) => Number.isFinite(n) && n >= 0),
    uniform: v.uniform ?? false,
    seed: num('seed', v.seed, '1', 'an integer from 0 to 2^31', intIn(0, 2 ** 31)),
    clientOffset: num('client-offset', v['client-offset'], '0', 'an integer from 0 to 10000000', intIn(0, 10_000_000)),
    feedZipf: num('feed-zipf', v['feed-zipf'], '1.1', 'a finite number >= 0', (n) => Number.isFinite(n) && n >= 0),
    rate: num('rate', v.rate, '0', 'ticks per second, >= 0', (n) => Number.isFinite(n) && n >= 0),
    sourceAddress: src,
    perAddress: num('per-address', v['per-address'], String(defaultPerAddress()), 'an integer from 1 to 65535', intIn(1, 65_535)),
    connectRate: num('connect-rate', v['connect-rate'], '1000', 'an integer from 1 to 100000', intIn(1, 100_000)),
    duration: num('duration', v.duration, '10', 'seconds, > 0 and <= 3600', (n) => n > 0 && n <= 3600),
    control: v.control ?? false,
  };
}

/** mulberry32. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The symbols of client `index`: its own seeded stream, so the picks do not
 * depend on how clients are split over processes.
 */
export function clientSymbolPicker(universe: number, zipf: number, uniform: boolean, seed: number): (index: number, k: number) => string[] {
  const order = new MarketSim({ symbols: universe, seed: 1 }).symbols;
  let current = rng(seed);
  const pick = symbolPicker(order, zipf, uniform, () => current());
  return (index, k) => {
    current = rng(Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b));
    return pick(k);
  };
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Counters shared by every client of the process (one thread: plain numbers). */
class Totals {
  frames = 0;
  bytes = 0;
  updates = 0;
  snapshots = 0;
  merged = 0;
  ticksMerged = 0;
  qViolations = 0;
  closedEarly = 0;
  byes: Record<string, number> = {};
  closes: Record<string, number> = {};
  readonly latency = new LatencyRecorder();
  /** The publisher's rate: with a symbol's share of ticks, its expected interval. */
  rate = 0;
  readonly connectUs = newHistogram();
  readonly subscribeUs = newHistogram();
  open = 0;
  failed = 0;
  failures: Record<string, number> = {};
  /** Clients subscribed or failed since the last open command. */
  settled = 0;
  stopping = false;

  resetWindow(): void {
    this.frames = this.bytes = this.updates = this.snapshots = this.merged = this.ticksMerged = this.qViolations = this.closedEarly = 0;
    this.byes = {};
    this.closes = {};
    this.latency.reset();
  }
}

/** What every protocol's client offers the process. */
interface Client {
  close(): void;
  readonly closed: Promise<void>;
}

type Msg = Record<string, unknown>;
/** Last q and ts per symbol (tickgate), ts only (ws-json); the symbol's share of the feed's ticks. */
interface Held {
  q: number;
  ts: number;
  share: number;
}

/** Expected milliseconds between two ticks of a symbol with this share of the feed (Infinity: unknown). */
const intervalMs = (rate: number, share: number) => (rate > 0 && share > 0 ? 1000 / (rate * share) : Infinity);

// Decoders shared by every client (decoding is synchronous). Standard
// MessagePack maps as plain objects.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** A protocol-v1 or ws-json client on its own `ws` connection. */
class WsClient implements Client {
  private readonly ws: WebSocket;
  private readonly held = new Map<string, Held>();
  private readonly startedAt: number;
  private subSentAt = 0;
  private connected = false;
  private settled = false;
  readonly closed: Promise<void>;

  constructor(
    private readonly json: boolean,
    url: string,
    localAddress: string | null,
    private readonly symbols: string[],
    private readonly t: Totals,
    private readonly now: () => number,
    private readonly shares: ReadonlyMap<string, number>,
  ) {
    this.startedAt = performance.now();
    this.ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS, ...(localAddress ? { localAddress } : {}) });
    this.ws.on('message', (data: Buffer, isBinary) => this.onFrame(data, isBinary));
    // The ws-json server sends nothing first: subscribe on open. tickgate says hello first.
    if (json) this.ws.on('open', () => this.onConnected());
    this.ws.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? err.message.slice(0, 60)));
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code) => {
        if (this.connected) {
          t.open--;
          if (!t.stopping) {
            t.closedEarly++;
            bump(t.closes, String(code));
          }
        } else this.fail(`closed before connected (${code})`);
        resolve();
      }),
    );
  }

  private onConnected(): void {
    if (this.connected) return;
    this.connected = true;
    this.t.open++;
    this.t.connectUs.recordValue(Math.round((performance.now() - this.startedAt) * 1000));
    this.subSentAt = performance.now();
    this.ws.send(JSON.stringify({ op: 'sub', id: 1, symbols: this.symbols }));
  }

  private fail(reason: string): void {
    if (this.connected || this.settled) return;
    this.settled = true;
    this.t.failed++;
    this.t.settled++;
    bump(this.t.failures, reason);
    this.ws.terminate();
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    const t = this.t;
    t.frames++;
    t.bytes += data.length;
    const now = this.now();
    if (this.json) {
      if (isBinary) return;
      let m: Msg;
      try {
        m = JSON.parse(data.toString()) as Msg;
      } catch {
        return;
      }
      this.onMessage(m, now);
      return;
    }
    let frame: unknown;
    try {
      frame = unpackr.unpack(data);
    } catch {
      return;
    }
    if (!Array.isArray(frame)) return;
    for (let i = 0; i < frame.length; i++) this.onMessage(frame[i] as Msg, now);
  }

  private onMessage(m: Msg, now: number): void {
    const t = this.t;
    switch (m['t']) {
      case 'upd': {
        t.updates++;
        const s = m['s'] as string;
        const d = m['d'] as Msg;
        const q = typeof m['q'] === 'number' ? m['q'] : 0;
        const n = m['n'];
        const ts = d['ts'];
        let h = this.held.get(s);
        if (h === undefined) {
          h = { q: 0, ts: NaN, share: this.shares.get(s) ?? 0 };
          this.held.set(s, h);
        }
        if (!this.json && q <= h.q) t.qViolations++;
        if (typeof ts === 'number' && !t.stopping) {
          if (typeof n === 'number' && n > 1) {
            t.merged++;
            t.ticksMerged += n - 1;
            t.latency.recordMerged(now, ts, n, h.ts, intervalMs(t.rate, h.share));
          } else t.latency.record(now - ts, intervalMs(t.rate, h.share));
        }
        h.q = q;
        if (typeof ts === 'number') h.ts = ts;
        break;
      }
      case 'snap': {
        t.snapshots++;
        const s = m['s'] as string;
        const d = m['d'] as Msg;
        const q = typeof m['q'] === 'number' ? m['q'] : 0;
        const prev = this.held.get(s);
        if (!this.json && prev !== undefined && q <= prev.q) t.qViolations++;
        this.held.set(s, { q, ts: typeof d['ts'] === 'number' ? d['ts'] : NaN, share: this.shares.get(s) ?? 0 });
        break;
      }
      case 'hello':
        this.onConnected();
        break;
      case 'ack':
        if (!this.settled) {
          this.settled = true;
          t.settled++;
          t.subscribeUs.recordValue(Math.round((performance.now() - this.subSentAt) * 1000));
        }
        break;
      case 'bye':
        bump(t.byes, String(m['code']));
        break;
      default:
        break;
    }
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else this.ws.terminate();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** What the nats-ws client needs from nats.js, resolved once per process. */
interface NatsWs {
  connect(url: string, localAddress: string | null): Promise<NatsLike>;
}
interface NatsLike {
  subscribe(subject: string, opts: { callback: (err: Error | null, msg: { data: Uint8Array }) => void }): unknown;
  flush(): Promise<void>;
  close(): Promise<void>;
  closed(): Promise<void | Error>;
}

/**
 * nats.js's WebSocket transport needs `globalThis.WebSocket`, which Node 20
 * lacks: the `ws` package stands in, subclassed to pick the source address and
 * to count frames and bytes the same way as the other clients.
 */
async function natsWs(t: Totals): Promise<NatsWs> {
  let nextLocal: string | null = null;
  class BenchWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS, ...(nextLocal ? { localAddress: nextLocal } : {}) });
      this.on('message', (data: ArrayBuffer | Buffer) => {
        t.frames++;
        t.bytes += data.byteLength;
      });
    }
  }
  (globalThis as { WebSocket?: unknown }).WebSocket = BenchWebSocket;
  const { wsconnect } = await import('@nats-io/nats-core');
  return {
    async connect(url, localAddress) {
      nextLocal = localAddress;
      // No reconnects: a dropped connection is a result, not something to hide.
      return (await wsconnect({ servers: url, reconnect: false, name: 'tickgate-bench', timeout: HANDSHAKE_TIMEOUT_MS })) as unknown as NatsLike;
    },
  };
}

/** One NATS-over-WebSocket client: one subscription per symbol. */
class NatsClient implements Client {
  private nc: NatsLike | null = null;
  private closing = false;
  readonly closed: Promise<void>;

  constructor(nats: NatsWs, url: string, localAddress: string | null, symbols: string[], t: Totals, now: () => number, shares: ReadonlyMap<string, number>) {
    const started = performance.now();
    this.closed = (async () => {
      let nc: NatsLike;
      try {
        nc = await nats.connect(url, localAddress);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        t.failed++;
        t.settled++;
        bump(t.failures, e.code ?? e.message.slice(0, 60));
        return;
      }
      this.nc = nc;
      t.open++;
      t.connectUs.recordValue(Math.round((performance.now() - started) * 1000));
      const subStart = performance.now();
      for (const s of symbols) {
        const share = shares.get(s) ?? 0;
        nc.subscribe(`md.sim.${subjectToken(s)}`, {
          callback: (_err, msg) => {
            t.updates++;
            let tick: Msg;
            try {
              tick = unpackr.unpack(msg.data) as Msg;
            } catch {
              return;
            }
            const ts = tick['ts'];
            if (typeof ts === 'number' && !t.stopping) t.latency.record(now() - ts, intervalMs(t.rate, share));
          },
        });
      }
      // The server has every subscription once a flush round trip returns.
      await nc.flush().catch(() => undefined);
      t.subscribeUs.recordValue(Math.round((performance.now() - subStart) * 1000));
      t.settled++;
      const err = await nc.closed();
      t.open--;
      if (!this.closing && !t.stopping) {
        t.closedEarly++;
        bump(t.closes, err instanceof Error ? err.message.slice(0, 40) : 'closed');
      }
    })();
  }

  close(): void {
    this.closing = true;
    void this.nc?.close().catch(() => undefined);
  }
}

/** The clients of this process and their counters. */
export class BenchClients {
  private readonly clients: Client[] = [];
  private readonly t: Totals;
  private readonly now = makeWallClock();
  private readonly pick: (index: number, k: number) => string[];
  private readonly shares: ReadonlyMap<string, number>;
  private readonly addresses = new Set<string>();
  private nats: NatsWs | null = null;
  private windowStart = 0;
  private cpuStart = process.cpuUsage();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });

  constructor(private readonly opts: BenchClientOptions) {
    this.t = new Totals();
    this.t.rate = opts.rate;
    this.pick = clientSymbolPicker(opts.universe, opts.zipf, opts.uniform, opts.seed);
    this.shares = tickShares(new MarketSim({ symbols: opts.universe, seed: 1 }).symbols, opts.feedZipf);
  }

  private localAddressFor(i: number): string | null {
    if (this.opts.sourceAddress === null) return null;
    const a = sourceAddressFor(i, this.opts.perAddress, this.opts.sourceAddress);
    this.addresses.add(a);
    return a;
  }

  private async newClient(): Promise<void> {
    const i = this.clients.length;
    const symbols = this.pick(this.opts.clientOffset + i, this.opts.symbolsPerClient);
    const local = this.localAddressFor(i);
    const { protocol, url } = this.opts;
    if (protocol === 'nats-ws') {
      this.nats ??= await natsWs(this.t);
      this.clients.push(new NatsClient(this.nats, url, local, symbols, this.t, this.now, this.shares));
    } else {
      this.clients.push(new WsClient(protocol === 'ws-json', url, local, symbols, this.t, this.now, this.shares));
    }
  }

  /** Opens connections until `total` exist, at the connect rate; resolves once all have subscribed or failed, or at the timeout. */
  async open(total: number, signal: AbortSignal): Promise<OpenedReport> {
    const t = this.t;
    const want = Math.min(total, MAX_CLIENTS) - this.clients.length;
    const start = performance.now();
    t.settled = 0;
    t.failed = 0;
    t.failures = {};
    t.connectUs.reset();
    t.subscribeUs.reset();
    if (this.opts.protocol === 'nats-ws') this.nats ??= await natsWs(t);
    const perStep = Math.max(1, Math.round((this.opts.connectRate * RAMP_STEP_MS) / 1000));
    let launched = 0;
    const deadline = start + OPEN_TIMEOUT_MS;
    // Bounded by `want` launches and by the deadline.
    while ((launched < want || t.settled < launched) && performance.now() < deadline && !signal.aborted) {
      for (let k = 0; k < perStep && launched < want; k++, launched++) await this.newClient();
      await new Promise((r) => setTimeout(r, RAMP_STEP_MS));
    }
    return {
      ev: 'opened',
      requested: total,
      open: t.open,
      failed: t.failed,
      failures: t.failures,
      seconds: Math.round(performance.now() - start) / 1000,
      connectUs: encodeHistogram(t.connectUs),
      subscribeUs: encodeHistogram(t.subscribeUs),
      sourceAddresses: [...this.addresses],
    };
  }

  /** Begins a window; `rate`, when given, is the publisher's ticks per second from now on. */
  start(rate?: number): void {
    if (rate !== undefined && Number.isFinite(rate) && rate >= 0) this.t.rate = rate;
    this.t.resetWindow();
    this.windowStart = performance.now();
    this.cpuStart = process.cpuUsage();
    this.loopDelay.reset();
    this.loopDelay.enable();
  }

  stop(): WindowReport {
    const t = this.t;
    const cpu = process.cpuUsage(this.cpuStart);
    this.loopDelay.disable();
    return {
      ev: 'window',
      protocol: this.opts.protocol,
      seconds: Math.round(performance.now() - this.windowStart) / 1000,
      open: t.open,
      closedEarly: t.closedEarly,
      frames: t.frames,
      bytes: t.bytes,
      updates: t.updates,
      snapshots: t.snapshots,
      merged: t.merged,
      ticksMerged: t.ticksMerged,
      qViolations: t.qViolations,
      byes: t.byes,
      closes: t.closes,
      latencyUs: encodeHistogram(t.latency.raw),
      latencyCorrectedUs: encodeHistogram(t.latency.corrected),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      eventLoopDelayP99Ms: Math.round(this.loopDelay.percentile(99) / 1e4) / 100,
      rssMiB: Math.round(process.memoryUsage.rss() / 2 ** 20),
    };
  }

  /** Closes every connection, waiting up to `ms` for the closes. */
  async close(ms = 2000): Promise<void> {
    this.t.stopping = true;
    for (const c of this.clients) c.close();
    await Promise.race([Promise.all(this.clients.map((c) => c.closed)), new Promise((r) => setTimeout(r, ms))]);
    for (const c of this.clients) if (c instanceof WsClient) c.terminate();
  }
}

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseBenchClientArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`load:bench-client: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const ac = new AbortController();
  const onSignal = () => (ac.signal.aborted ? process.exit(130) : ac.abort());
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
  const clients = new BenchClients(opts);
  // The process never outlives its bound, whatever its parent does.
  const life = setTimeout(() => ac.abort(), opts.duration * 1000 + (opts.control ? 0 : OPEN_TIMEOUT_MS));
  try {
    if (!opts.control) {
      const opened = await clients.open(opts.clients, ac.signal);
      process.stderr.write(`opened ${opened.open} of ${opts.clients} in ${opened.seconds} s\n`);
      clients.start();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, opts.duration * 1000);
        ac.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
      out(clients.stop());
      return 0;
    }
    const rl = createInterface({ input: process.stdin });
    // Commands run one at a time, in order.
    let chain = Promise.resolve();
    await new Promise<void>((resolve) => {
      ac.signal.addEventListener('abort', () => resolve(), { once: true });
      rl.on('close', () => resolve());
      rl.on('line', (line) => {
        const [cmd, arg] = line.trim().split(/\s+/);
        chain = chain.then(async () => {
          if (cmd === 'open') out(await clients.open(Number(arg), ac.signal));
          else if (cmd === 'start') {
            clients.start(arg === undefined ? undefined : Number(arg));
            out({ ev: 'started' });
          } else if (cmd === 'stop') out(clients.stop());
          else out({ ev: 'error', msg: `unknown command ${JSON.stringify(line)}` });
        });
      });
    });
    rl.close();
    return 0;
  } catch (err) {
    process.stderr.write(`load:bench-client: ${(err as Error).message}\n`);
    return 1;
  } finally {
    clearTimeout(life);
    await clients.close();
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  void main().then((code) => process.exit(code));
}
