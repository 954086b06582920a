/**
 * Bounded WebSocket subscriber load: many protocol-v1 clients in one process,
 * each holding the merged state of its symbols, measuring end-to-end latency
 * (receive time minus the tick's source `ts`) and checking that `q` strictly
 * increases per symbol.
 *
 *   npm run load:subscribers -- --url ws://127.0.0.1:8080/v1/stream --clients 200 --symbols-per-client 20 --duration 10
 *
 * Latency is measured against the wall clock, so the feed and this tool must
 * share a clock (same machine, or synchronised hosts). One Node process
 * saturates somewhere near 450k messages/s; the report's `loadClient` figures
 * show when this process, not the gateway, was the bottleneck: run several
 * processes beyond that.
 *
 * Some clients can be made slow readers, to see what they cost the others:
 *
 *   npm run load:subscribers -- --clients 200 --slow-fraction 0.1 --stalled-fraction 0.01
 *
 * A slow client stops reading from its TCP socket for `--slow-pause-ms` out of
 * every `--slow-period-ms` and then reads what has queued up; a stalled client
 * stops reading once subscribed. At the end of the run both read what queued
 * up for a second before closing. The main figures cover the fast clients
 * only; slow and stalled clients are reported on their own.
 *
 * The kernel buffers a paused connection before the gateway sees any
 * backpressure: on loopback about 4 MiB (the server's send buffer autotunes
 * to the tcp_wmem maximum). A slow client makes the gateway conflate only if
 * it falls further behind than that during one pause, so size the pause to
 * the client's stream: bytes per second x pause > ~4.5 MB.
 */
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { Decoder, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { MarketSim } from '../src/feed/market-sim.js';
import { runIfEntry, UsageError, numberOption as num, parseOptions } from '../src/cli-tool.js';

export { UsageError };

export interface SubscriberOptions {
  /** Gateway stream endpoint. */
  url: string;
  /** Connections to open, 1 to 20000. */
  clients: number;
  /** Symbols each client subscribes to (fewer if the gateway knows fewer). */
  symbolsPerClient: number;
  /** Run length in seconds, ramp-up included, at most 3600. */
  duration: number;
  /** Pick symbols uniformly instead of by Zipf-skewed popularity. */
  uniform: boolean;
  /** Zipf exponent of symbol popularity. */
  zipf: number;
  /** Seed of the symbol picks (same seed, same subscriptions). */
  seed: number;
  /** Symbols requested from the gateway to choose from (the gateway caps the list). */
  universe: number;
  /** New connections per second during ramp-up. */
  connectRate: number;
  /** Fraction of clients (0..1) that read in bursts. */
  slowFraction: number;
  /** How long a slow client leaves its socket unread in each period, ms (less than `slowPeriodMs`). */
  slowPauseMs: number;
  /** Period of a slow client's pause-then-read cycle, ms. */
  slowPeriodMs: number;
  /** Fraction of clients (0..1) that stop reading once subscribed and never read again during the run. */
  stalledFraction: number;
}

/**
 * How a client reads: continuously, in bursts (pausing its TCP socket part
 * of the time), or not at all once subscribed.
 */
export type ClientRole = 'fast' | 'slow' | 'stalled';

/** Latency percentiles in milliseconds over a uniform reservoir of the samples. */
export interface LatencyReport {
  samples: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

/** Updates that merged several ticks (`upd` with `n` > 1), as a client saw them. */
export interface MergeCounts {
  /** upd messages with n > 1. */
  mergedUpdates: number;
  /** Ticks merged away: the sum of n - 1 over those updates. */
  ticksMerged: number;
  /** Sum of `cf` over received hb messages: ticks the gateway says it merged for these clients. */
  hbConflated: number;
}

/** Rates of one group of clients over the report's window. */
export interface StreamRates {
  window: 'steady' | 'whole-run';
  seconds: number;
  messagesPerSec: number;
  updPerSec: number;
  mbytesPerSec: number;
}

/** Clients that read in bursts. */
export interface SlowReport extends MergeCounts {
  /** Slow clients that connected. */
  clients: number;
  pauseMs: number;
  periodMs: number;
  messages: number;
  bytes: number;
  upd: number;
  snap: number;
  rates: StreamRates;
  latencyMs: LatencyReport;
}

/** Clients that stopped reading once subscribed. */
export interface StalledReport {
  /** Stalled clients that connected. */
  clients: number;
  /** Messages they read: snapshots before they stalled and, at the end of the run, what had queued up. */
  messages: number;
  /** bye messages found in what they read at the end, by code. */
  byes: Record<string, number>;
}

export interface SubscriberReport {
  url: string;
  seconds: number;
  /** Time until every client was subscribed or had failed; null if the run ended first. */
  rampSeconds: number | null;
  clients: { requested: number; connected: number; failed: number; closedEarly: number };
  /** Connection failures by reason. */
  failures: Record<string, number>;
  symbols: { listed: number; more: boolean; perClient: number; distinct: number; pick: 'zipf' | 'uniform' };
  /** Fast clients (all clients unless some are slow or stalled). */
  received: { frames: number; messages: number; bytes: number; snap: number; upd: number; stat: number; hb: number } & MergeCounts;
  /** Fast clients. Rates over the steady window (after ramp-up) when it lasted at least a second, else over the whole run. */
  rates: { window: 'steady' | 'whole-run'; seconds: number; framesPerSec: number; messagesPerSec: number; updPerSec: number; mbytesPerSec: number };
  /** Fast clients; messages received before the end of the run. */
  latencyMs: LatencyReport;
  slow: SlowReport;
  stalled: StalledReport;
  /** All clients: snap or upd whose q was not above the q held for the symbol. */
  qViolations: number;
  /** upd for a symbol without a snap (never expected: every sub asks for snapshots). */
  updWithoutSnap: number;
  /** The first few violations, for diagnosis. */
  violationExamples: string[];
  /** Frames that were not binary MessagePack arrays. */
  badFrames: number;
  byes: Record<string, number>;
  /** WebSocket close codes of connections the server closed before the end. */
  closes: Record<string, number>;
  /** err messages and ack.err entries by code. */
  errors: Record<string, number>;
  /** This process: CPU in cores and event-loop delay; near 1 core or large delays mean the client, not the server, limits the figures. */
  loadClient: { cpuCores: number; eventLoopDelayP99Ms: number };
  /** Set when the run could not start (no hello, no symbols). */
  error?: string;
}

export const USAGE = `usage: npm run load:subscribers -- [options]

  --url URL                  gateway stream endpoint (default ws://127.0.0.1:8080/v1/stream)
  --clients N                connections, 1 to 20000 (default 100)
  --symbols-per-client N     symbols per connection, 1 to 10000 (default 20)
  --duration S               seconds to run, ramp-up included, > 0 and <= 3600 (default 10)
  --uniform                  pick symbols uniformly (default: Zipf-skewed popularity)
  --zipf X                   Zipf exponent of popularity, >= 0 (default 1.1)
  --seed N                   seed of the symbol picks (default 1)
  --universe N               symbols to ask the gateway for, 1 to 1000000 (default 1000)
  --connect-rate N           new connections per second, 1 to 100000 (default 500)
  --slow-fraction F          fraction of clients, 0 to 1, that read in bursts (default 0)
  --slow-pause-ms N          a slow client leaves its socket unread this long per period (default 900)
  --slow-period-ms N         period of a slow client's pause-then-read cycle, 2 to 600000 (default 1000)
  --stalled-fraction F       fraction of clients, 0 to 1, that stop reading once subscribed (default 0)
  --help                     show this help

Slow and stalled clients are chosen by --seed, spread evenly over the
clients. The main figures cover fast clients; "slow" and "stalled" report the
others.

Prints a JSON report to stdout. Exit status 1 if a q violation was seen, no
client connected, or the run could not start (no hello, no symbols listed).`;

const MAX_CLIENTS = 20_000;
const MAX_DURATION_S = 3600;
/** Uniform reservoir of fast clients' latency samples: bounded memory whatever the run length (1.6 MB). */
const RESERVOIR = 200_000;
/** The same for slow clients (0.8 MB). Stalled clients' latency is not measured. */
const RESERVOIR_SLOW = 100_000;
const MAX_SLOW_PERIOD_MS = 600_000;
const HELLO_TIMEOUT_MS = 10_000;
/** How long to wait for a non-empty symbol list (a NATS-fed gateway knows symbols only after their first tick). */
const SYMBOLS_WAIT_MS = 10_000;
const RAMP_STEP_MS = 100;
/** Symbols per sub request: keeps each request well under the default 64 KiB message limit. */
const SUB_CHUNK = 500;
const CLOSE_WAIT_MS = 2000;
/** How long paused clients get to read their backlog at the end of a run. */
const DRAIN_MS = 1000;

const intIn = (min: number, max: number) => (n: number) => Number.isInteger(n) && n >= min && n <= max;

/** Parses CLI arguments (without node and script). Throws {@link UsageError} naming the option. */
export function parseSubscriberArgs(argv: readonly string[]): SubscriberOptions | 'help' {
  const v = parseOptions(argv, {
    url: { type: 'string' },
    clients: { type: 'string' },
    'symbols-per-client': { type: 'string' },
    duration: { type: 'string' },
    uniform: { type: 'boolean', default: false },
    zipf: { type: 'string' },
    seed: { type: 'string' },
    universe: { type: 'string' },
    'connect-rate': { type: 'string' },
    'slow-fraction': { type: 'string' },
    'slow-pause-ms': { type: 'string' },
    'slow-period-ms': { type: 'string' },
    'stalled-fraction': { type: 'string' },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  const url = v.url ?? 'ws://127.0.0.1:8080/v1/stream';
  if (!/^wss?:\/\/[^\s/]+(\/\S*)?$/.test(url)) {
    throw new UsageError(`--url: expected a WebSocket URL such as ws://127.0.0.1:8080/v1/stream, got ${JSON.stringify(url)}`);
  }
  const fraction = (n: number) => Number.isFinite(n) && n >= 0 && n <= 1;
  const slowFraction = num('slow-fraction', v['slow-fraction'] ?? '0', 'a fraction from 0 to 1', fraction);
  const stalledFraction = num('stalled-fraction', v['stalled-fraction'] ?? '0', 'a fraction from 0 to 1', fraction);
  // (With a little slack for fractions computed as counts / total.)
  if (slowFraction + stalledFraction > 1 + 1e-9) {
    throw new UsageError(`--stalled-fraction: expected at most 1 - --slow-fraction (${1 - slowFraction}), got ${stalledFraction}`);
  }
  const slowPeriodMs = num('slow-period-ms', v['slow-period-ms'] ?? '1000', `milliseconds, an integer from 2 to ${MAX_SLOW_PERIOD_MS}`, intIn(2, MAX_SLOW_PERIOD_MS));
  const slowPauseMs = num('slow-pause-ms', v['slow-pause-ms'] ?? '900', `milliseconds, an integer from 1 to ${slowPeriodMs - 1} (less than --slow-period-ms)`, intIn(1, slowPeriodMs - 1));
  return {
    url,
    clients: num('clients', v.clients ?? '100', `an integer from 1 to ${MAX_CLIENTS}`, intIn(1, MAX_CLIENTS)),
    symbolsPerClient: num('symbols-per-client', v['symbols-per-client'] ?? '20', 'an integer from 1 to 10000', intIn(1, 10_000)),
    duration: num('duration', v.duration ?? '10', `seconds, a number > 0 and <= ${MAX_DURATION_S}`, (n) => n > 0 && n <= MAX_DURATION_S),
    uniform: v.uniform ?? false,
    zipf: num('zipf', v.zipf ?? '1.1', 'a finite number >= 0', (n) => Number.isFinite(n) && n >= 0),
    seed: num('seed', v.seed ?? '1', 'a safe integer', Number.isSafeInteger),
    universe: num('universe', v.universe ?? '1000', 'an integer from 1 to 1000000', intIn(1, 1_000_000)),
    connectRate: num('connect-rate', v['connect-rate'] ?? '500', 'connections per second, an integer from 1 to 100000', intIn(1, 100_000)),
    slowFraction,
    slowPauseMs,
    slowPeriodMs,
    stalledFraction,
  };
}

/** mulberry32: a tiny seeded PRNG, plenty for picking symbols and reservoir slots. */
function rng(seed: number): () => number {
  let a = (seed ^ Math.floor(seed / 4294967296)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/**
 * The role of each of `n` clients: round(n x fraction) stalled and slow ones,
 * each group spread evenly over the list from a seeded offset, so that they
 * connect among the fast ones rather than all at the start or the end.
 */
export function assignRoles(n: number, slowFraction: number, stalledFraction: number, seed: number): ClientRole[] {
  const roles = new Array<ClientRole>(n).fill('fast');
  const rand = rng(seed ^ 0x2545f491);
  const place = (count: number, role: ClientRole) => {
    const offset = rand();
    for (let j = 0; j < count; j++) {
      let i = Math.floor(((j + offset) * n) / count);
      while (roles[i] !== 'fast') i = (i + 1) % n;
      roles[i] = role;
    }
  };
  const stalled = Math.min(n, Math.round(n * stalledFraction));
  place(stalled, 'stalled');
  place(Math.min(n - stalled, Math.round(n * slowFraction)), 'slow');
  return roles;
}

/**
 * Symbols by popularity rank. Names the market simulator knows take its
 * activity order, so with a simulated feed the most active symbols are also
 * the most subscribed, as in real markets; other names follow in seeded
 * random order.
 */
export function popularityOrder(listed: readonly string[], more: boolean, rand: () => number): string[] {
  if (listed.length === 0) return [];
  // A cut list (more = true) is alphabetical, so its names can sit anywhere in a larger universe.
  const n = more ? Math.min(100_000, listed.length * 10) : listed.length;
  const rank = new Map<string, number>();
  new MarketSim({ symbols: n, seed: 1 }).symbols.forEach((s, i) => rank.set(s, i));
  const known = listed.filter((s) => rank.has(s)).sort((a, b) => rank.get(a)! - rank.get(b)!);
  const rest = shuffle(listed.filter((s) => !rank.has(s)), rand);
  return known.concat(rest);
}

/** Picks k distinct symbols per call, Zipf-weighted by rank in `order` (or uniformly). */
export function symbolPicker(order: readonly string[], zipf: number, uniform: boolean, rand: () => number): (k: number) => string[] {
  const n = order.length;
  const cumulative = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cumulative[i] = sum += uniform ? 1 : (i + 1) ** -zipf;
  const draw = (): number => {
    const u = rand() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  return (k) => {
    const want = Math.min(k, n);
    const chosen = new Set<number>();
    // Rejection sampling; with a heavy skew and k close to n it stalls, so
    // after a bounded number of draws the rest is filled in rank order.
    for (let tries = 0; chosen.size < want && tries < 20 * want + 100; tries++) chosen.add(draw());
    for (let i = 0; chosen.size < want; i++) chosen.add(i);
    return [...chosen].map((i) => order[i]!);
  };
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** What the clients of one role received (one thread: plain numbers). */
class Stream {
  clients = 0;
  frames = 0;
  messages = 0;
  bytes = 0;
  snap = 0;
  upd = 0;
  stat = 0;
  hb = 0;
  mergedUpdates = 0;
  ticksMerged = 0;
  hbConflated = 0;
  latencySeen = 0;
  latencyMax = -Infinity;
  readonly reservoir: Float64Array;
  private readonly rand: () => number;

  constructor(seed: number, reservoir: number) {
    this.reservoir = new Float64Array(reservoir);
    this.rand = rng(seed ^ 0x5bd1e995);
  }

  /** Algorithm R: every sample has the same chance to be in the reservoir. */
  latency(ms: number): void {
    const size = this.reservoir.length;
    if (size === 0) return;
    const i = this.latencySeen++;
    if (ms > this.latencyMax) this.latencyMax = ms;
    if (i < size) this.reservoir[i] = ms;
    else {
      const j = Math.floor(this.rand() * (i + 1));
      if (j < size) this.reservoir[j] = ms;
    }
  }

  mark(): StreamMark {
    return { frames: this.frames, messages: this.messages, upd: this.upd, bytes: this.bytes };
  }

  report(): LatencyReport {
    const n = Math.min(this.latencySeen, this.reservoir.length);
    const sorted = this.reservoir.slice(0, n).sort();
    const pct = (p: number) => {
      const v = percentile(sorted, p);
      return v === null ? null : round3(v);
    };
    return {
      samples: this.latencySeen,
      p50: pct(0.5),
      p90: pct(0.9),
      p99: pct(0.99),
      p999: pct(0.999),
      max: this.latencySeen > 0 ? round3(this.latencyMax) : null,
    };
  }
}

/** Counters shared by all clients of a run (one thread: plain numbers). */
class Stats {
  readonly streams: Record<ClientRole, Stream>;
  readonly stalledByes: Record<string, number> = {};
  badFrames = 0;
  qViolations = 0;
  updWithoutSnap = 0;
  readonly violationExamples: string[] = [];
  readonly byes: Record<string, number> = {};
  readonly closes: Record<string, number> = {};
  readonly errors: Record<string, number> = {};
  readonly failures: Record<string, number> = {};
  connected = 0;
  failed = 0;
  closedEarly = 0;
  /** Clients subscribed or failed; the ramp is over when it reaches the client count. */
  settled = 0;

  constructor(seed: number) {
    this.streams = { fast: new Stream(seed, RESERVOIR), slow: new Stream(seed + 1, RESERVOIR_SLOW), stalled: new Stream(seed + 2, 0) };
  }

  violation(kind: 'q' | 'nosnap', text: string): void {
    if (kind === 'q') this.qViolations++;
    else this.updWithoutSnap++;
    if (this.violationExamples.length < 5) this.violationExamples.push(text);
  }
}

type Msg = Record<string, unknown>;

/** One held symbol: the last q and the merged fields. */
interface Held {
  q: number;
  d: Msg;
}

// One decoder for all frames: the module-level decode() builds a new decoder
// (and key cache) per call. Decoding is synchronous, so sharing it is safe.
const decoder = new Decoder();

/** A slow client's reading rhythm. */
interface Pacing {
  pauseMs: number;
  periodMs: number;
  /**
   * Delay from subscription to the first pause, within the first reading
   * window (0 to periodMs - pauseMs): every slow client has a full pause
   * early in the run, and their reading bursts spread over that window.
   */
  phaseMs: number;
}

/**
 * One protocol client: connect, hello, subscribe, apply snap/upd to its
 * state; then read as its role says.
 */
class LoadClient {
  readonly ws: WebSocket;
  private readonly stream: Stream;
  private paceTimer: NodeJS.Timeout | undefined;
  readonly state = new Map<string, Held>();
  connected = false;
  settled = false;
  private pendingAcks = 0;
  private helloTimer: NodeJS.Timeout | undefined;
  /** Resolves with whether hello arrived. */
  readonly hello: Promise<boolean>;
  private onHello!: (ok: boolean) => void;
  private symbolsWaiter: ((list: { symbols: string[]; more: boolean }) => void) | null = null;
  readonly closed: Promise<void>;

  constructor(
    url: string,
    private readonly stats: Stats,
    private readonly run: { stopping: boolean },
    private symbols: string[] | null,
    readonly role: ClientRole,
    private readonly pacing: Pacing,
  ) {
    this.stream = stats.streams[role];
    this.hello = new Promise((resolve) => (this.onHello = resolve));
    this.ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: HELLO_TIMEOUT_MS });
    this.helloTimer = setTimeout(() => this.fail('no hello within 10 s'), HELLO_TIMEOUT_MS);
    this.ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    this.ws.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? err.message.slice(0, 80)));
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code) => {
        if (!this.connected) this.fail(`closed before hello (${code})`);
        else if (!this.run.stopping) {
          this.stats.closedEarly++;
          bump(this.stats.closes, String(code));
        }
        this.settle();
        resolve();
      }),
    );
  }

  private fail(reason: string): void {
    clearTimeout(this.helloTimer);
    if (!this.connected && !this.settled) {
      this.stats.failed++;
      bump(this.stats.failures, reason);
      this.onHello(false);
      this.settle();
      this.ws.terminate();
    }
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.stats.settled++;
  }

  send(req: object): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(encode(req));
  }

  /** Subscribes now if hello has arrived, else as soon as it does. */
  subscribe(symbols: string[]): void {
    this.symbols = symbols;
    if (this.connected) this.sendSubs();
  }

  private sendSubs(): void {
    const s = this.symbols;
    if (s === null) return;
    this.symbols = null;
    for (let i = 0; i < s.length; i += SUB_CHUNK) {
      this.pendingAcks++;
      this.send({ op: 'sub', id: i, symbols: s.slice(i, i + SUB_CHUNK) });
    }
  }

  /**
   * Starts the role's reading pattern once subscribed. ws's own pause() and
   * resume() stop and restart reading from the TCP socket (socket.pause())
   * and, unlike calling the socket directly, keep ws from resuming it when
   * its frame parser drains. Unread data fills the kernel's buffers first,
   * then the gateway's.
   */
  private startPacing(): void {
    if (this.run.stopping) return;
    if (this.role === 'stalled') this.ws.pause();
    else if (this.role === 'slow') this.paceTimer = setTimeout(this.pauseBurst, this.pacing.phaseMs);
  }

  private readonly pauseBurst = (): void => {
    if (this.run.stopping) return;
    this.ws.pause();
    this.paceTimer = setTimeout(this.resumeBurst, this.pacing.pauseMs);
  };

  private readonly resumeBurst = (): void => {
    if (this.run.stopping) return;
    this.ws.resume();
    this.paceTimer = setTimeout(this.pauseBurst, this.pacing.periodMs - this.pacing.pauseMs);
  };

  /** Ends the reading pattern: the client reads whatever has queued up (a bye too, if one came). */
  stopPacing(): void {
    clearTimeout(this.paceTimer);
    if (this.ws.isPaused) this.ws.resume();
  }

  /** Asks the gateway for up to `limit` symbols. */
  listSymbols(limit: number): Promise<{ symbols: string[]; more: boolean }> {
    return new Promise((resolve) => {
      this.symbolsWaiter = resolve;
      this.send({ op: 'symbols', id: 'list', limit });
    });
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    const st = this.stats;
    const stream = this.stream;
    stream.frames++;
    stream.bytes += data.length;
    let frame: unknown;
    try {
      frame = isBinary ? decoder.decode(data) : null;
    } catch {
      frame = null;
    }
    if (!Array.isArray(frame)) {
      st.badFrames++;
      return;
    }
    // One clock read per frame: its messages arrived together.
    const now = Date.now();
    for (const m of frame) {
      stream.messages++;
      if (typeof m === 'object' && m !== null && !Array.isArray(m)) this.onMessage(m as Msg, now);
    }
  }

  private onMessage(m: Msg, now: number): void {
    const st = this.stats;
    const stream = this.stream;
    switch (m['t']) {
      case 'upd': {
        stream.upd++;
        const s = m['s'] as string;
        const q = m['q'] as number;
        const d = m['d'] as Msg;
        const n = m['n'];
        if (typeof n === 'number' && n > 1) {
          stream.mergedUpdates++;
          stream.ticksMerged += n - 1;
        }
        // A merged update's ts is that of its newest tick: its latency is how
        // late the client learns the current state.
        const ts = d['ts'];
        if (typeof ts === 'number' && !this.run.stopping) stream.latency(now - ts);
        const held = this.state.get(s);
        if (held === undefined) {
          st.violation('nosnap', `upd q=${q} for ${s} without a snap`);
          this.state.set(s, { q, d });
        } else if (q <= held.q) {
          st.violation('q', `upd q=${q} <= held q=${held.q} for ${s}`);
        } else {
          held.q = q;
          for (const k in d) held.d[k] = d[k];
        }
        break;
      }
      case 'snap': {
        stream.snap++;
        const s = m['s'] as string;
        const q = m['q'] as number;
        const held = this.state.get(s);
        // Each symbol is subscribed once, so even a snap must move q forward.
        if (held !== undefined && q <= held.q) st.violation('q', `snap q=${q} <= held q=${held.q} for ${s}`);
        // The decoder built `d` for this message alone: keep it as the state.
        this.state.set(s, { q, d: m['d'] as Msg });
        break;
      }
      case 'stat':
        stream.stat++;
        break;
      case 'hb': {
        stream.hb++;
        const cf = m['cf'];
        if (typeof cf === 'number') stream.hbConflated += cf;
        break;
      }
      case 'hello':
        if (!this.connected) {
          clearTimeout(this.helloTimer);
          this.connected = true;
          st.connected++;
          stream.clients++;
          this.onHello(true);
          this.sendSubs();
        }
        break;
      case 'ack': {
        const errs = m['err'];
        if (Array.isArray(errs)) for (const e of errs) bump(st.errors, `ack:${String((e as Msg)['code'])}`);
        if (--this.pendingAcks === 0) {
          this.settle();
          this.startPacing();
        }
        break;
      }
      case 'symbols': {
        const w = this.symbolsWaiter;
        this.symbolsWaiter = null;
        const list = m['symbols'];
        w?.({ symbols: Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : [], more: m['more'] === true });
        break;
      }
      case 'err':
        bump(st.errors, String(m['code']));
        break;
      case 'bye':
        bump(st.byes, String(m['code']));
        if (this.role === 'stalled') bump(st.stalledByes, String(m['code']));
        break;
      default:
        break;
    }
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/** One stream's counters at one instant, to compute rates over a window. */
interface StreamMark {
  frames: number;
  messages: number;
  upd: number;
  bytes: number;
}

/** Fast and slow clients' counters at one instant. */
interface Mark {
  at: number;
  fast: StreamMark;
  slow: StreamMark;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs the load: connects clients at `connectRate` until `clients` are
 * launched, keeps them subscribed until `duration` has passed since the start
 * (or `signal` aborts), closes them and reports.
 */
export async function runSubscribers(opts: SubscriberOptions, signal?: AbortSignal): Promise<SubscriberReport> {
  const stats = new Stats(opts.seed);
  const run = { stopping: false };
  const clients: LoadClient[] = [];
  const startMono = performance.now();
  const deadline = startMono + opts.duration * 1000;
  const cpu0 = process.cpuUsage();
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const deadlineTimer = setTimeout(stop, opts.duration * 1000);
  signal?.addEventListener('abort', stop, { once: true });
  if (signal?.aborted) stop();
  const isStopped = () => run.stopping || signal?.aborted === true || performance.now() >= deadline;

  let listed: string[] = [];
  let more = false;
  const distinct = new Set<string>();
  let rampEnd: Mark | null = null;
  let error: string | undefined;
  let rampTimer: NodeJS.Timeout | undefined;
  const roles = assignRoles(opts.clients, opts.slowFraction, opts.stalledFraction, opts.seed);
  const phaseRand = rng(opts.seed ^ 0x68e31da4);
  const newClient = (): LoadClient => {
    const role = roles[clients.length] ?? 'fast';
    const phaseMs = Math.floor(phaseRand() * (opts.slowPeriodMs - opts.slowPauseMs));
    const pacing = { pauseMs: opts.slowPauseMs, periodMs: opts.slowPeriodMs, phaseMs };
    const c = new LoadClient(opts.url, stats, run, null, role, pacing);
    clients.push(c);
    return c;
  };
  const mark = (): Mark => ({ at: performance.now(), fast: stats.streams.fast.mark(), slow: stats.streams.slow.mark() });

  try {
    // The first client learns the symbols, then subscribes like every other.
    const first = newClient();
    if (!(await Promise.race([first.hello, stopped.then(() => false)]))) {
      throw new Error(`no hello from ${opts.url}: ${JSON.stringify(stats.failures)}`);
    }
    const listDeadline = Math.min(deadline, performance.now() + SYMBOLS_WAIT_MS);
    for (;;) {
      const r = await Promise.race([first.listSymbols(opts.universe), stopped.then(() => null)]);
      if (r === null) break;
      listed = r.symbols;
      more = r.more;
      if (listed.length > 0 || performance.now() + 500 >= listDeadline) break;
      await sleep(500);
    }
    if (listed.length === 0) throw new Error('the gateway listed no symbols');

    const rand = rng(opts.seed);
    const pick = symbolPicker(popularityOrder(listed, more, rand), opts.zipf, opts.uniform, rand);
    const subscribe = (c: LoadClient) => {
      const syms = pick(opts.symbolsPerClient);
      for (const s of syms) distinct.add(s);
      c.subscribe(syms);
    };
    subscribe(first);

    // Ramp-up: a batch of connections every RAMP_STEP_MS.
    const perStep = Math.max(1, Math.round((opts.connectRate * RAMP_STEP_MS) / 1000));
    const launch = () => {
      for (let i = 0; i < perStep && clients.length < opts.clients && !isStopped(); i++) {
        subscribe(newClient());
      }
      if (clients.length >= opts.clients) clearInterval(rampTimer);
    };
    launch();
    if (clients.length < opts.clients) rampTimer = setInterval(launch, RAMP_STEP_MS);

    // Steady state starts once every client is subscribed or has failed.
    const rampPoll = setInterval(() => {
      if (clients.length >= opts.clients && stats.settled >= opts.clients) {
        clearInterval(rampPoll);
        rampEnd = mark();
      }
    }, 20);
    await stopped;
    clearInterval(rampPoll);
  } catch (err) {
    error = (err as Error).message;
  } finally {
    clearTimeout(deadlineTimer);
    clearInterval(rampTimer);
    signal?.removeEventListener('abort', stop);
    run.stopping = true;
  }

  const end = mark();
  const endMono = end.at;
  const cpu = process.cpuUsage(cpu0);
  loopDelay.disable();
  // Paused clients read what queued up for them, and the merged updates the
  // gateway sends once they have drained, before everyone closes.
  for (const c of clients) c.stopPacing();
  if (opts.slowFraction > 0 || opts.stalledFraction > 0) await sleep(DRAIN_MS);
  for (const c of clients) c.close();
  const allClosed = Promise.all(clients.map((c) => c.closed));
  await Promise.race([allClosed, sleep(CLOSE_WAIT_MS)]);
  for (const c of clients) c.ws.terminate();

  const seconds = (endMono - startMono) / 1000;
  // Assigned in a timer callback, which control-flow narrowing does not see.
  const r = rampEnd as Mark | null;
  const steady = r !== null && endMono - r.at >= 1000;
  const zero: StreamMark = { frames: 0, messages: 0, upd: 0, bytes: 0 };
  const base: Mark = steady ? r : { at: startMono, fast: zero, slow: zero };
  const windowS = (endMono - base.at) / 1000;
  const per = (x: number) => (windowS > 0 ? Math.round((x / windowS) * 10) / 10 : 0);
  const rates = (from: StreamMark, to: StreamMark): StreamRates => ({
    window: steady ? 'steady' : 'whole-run',
    seconds: round3(windowS),
    messagesPerSec: per(to.messages - from.messages),
    updPerSec: per(to.upd - from.upd),
    mbytesPerSec: Math.round(per(to.bytes - from.bytes) / 1e4) / 100,
  });
  const { fast, slow, stalled } = stats.streams;
  const fastRates = rates(base.fast, end.fast);
  const merges = (s: Stream): MergeCounts => ({ mergedUpdates: s.mergedUpdates, ticksMerged: s.ticksMerged, hbConflated: s.hbConflated });

  const report: SubscriberReport = {
    url: opts.url,
    seconds: round3(seconds),
    rampSeconds: r === null ? null : round3((r.at - startMono) / 1000),
    clients: { requested: opts.clients, connected: stats.connected, failed: stats.failed, closedEarly: stats.closedEarly },
    failures: stats.failures,
    symbols: { listed: listed.length, more, perClient: Math.min(opts.symbolsPerClient, listed.length), distinct: distinct.size, pick: opts.uniform ? 'uniform' : 'zipf' },
    received: { frames: fast.frames, messages: fast.messages, bytes: fast.bytes, snap: fast.snap, upd: fast.upd, stat: fast.stat, hb: fast.hb, ...merges(fast) },
    rates: {
      window: fastRates.window,
      seconds: fastRates.seconds,
      framesPerSec: per(end.fast.frames - base.fast.frames),
      messagesPerSec: fastRates.messagesPerSec,
      updPerSec: fastRates.updPerSec,
      mbytesPerSec: fastRates.mbytesPerSec,
    },
    latencyMs: fast.report(),
    slow: {
      clients: slow.clients,
      pauseMs: opts.slowPauseMs,
      periodMs: opts.slowPeriodMs,
      messages: slow.messages,
      bytes: slow.bytes,
      upd: slow.upd,
      snap: slow.snap,
      ...merges(slow),
      rates: rates(base.slow, end.slow),
      latencyMs: slow.report(),
    },
    stalled: { clients: stalled.clients, messages: stalled.messages, byes: stats.stalledByes },
    qViolations: stats.qViolations,
    updWithoutSnap: stats.updWithoutSnap,
    violationExamples: stats.violationExamples,
    badFrames: stats.badFrames,
    byes: stats.byes,
    closes: stats.closes,
    errors: stats.errors,
    loadClient: {
      cpuCores: seconds > 0 ? Math.round(((cpu.user + cpu.system) / 1e6 / seconds) * 100) / 100 : 0,
      eventLoopDelayP99Ms: Math.round(loopDelay.percentile(99) / 1e4) / 100,
    },
  };
  if (error !== undefined) report.error = error;
  return report;
}

/** Whether a report should fail the run: a protocol violation, nothing connected, or no run at all. */
export function failed(report: SubscriberReport): boolean {
  return report.qViolations > 0 || report.updWithoutSnap > 0 || report.clients.connected === 0 || report.error !== undefined;
}

runIfEntry(import.meta.url, {
  name: 'load:subscribers',
  usage: USAGE,
  parse: (argv) => parseSubscriberArgs(argv),
  async run(opts, signal) {
    const report = await runSubscribers(opts, signal);
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    if (report.error !== undefined) process.stderr.write(`load:subscribers: ${report.error}\n`);
    return failed(report) ? 1 : 0;
  },
});
