/**
 * Order-book load clients for benchmarks: many tickgate WebSocket clients
 * subscribed to the `book` channel, each keeping its windows by the
 * protocol's rules (docs/PROTOCOL.md "Order books") and checking every
 * checksum, so that a benchmark measures a gateway whose books are right.
 *
 * Client i (counting from --client-offset, so several processes split one
 * population) takes --books-per-client books from its own seeded stream
 * (uniform, or Zipf with --pick-zipf), at depth --depths[i mod n], and every
 * 1 / --throttled-fraction-th client (evenly spread) is throttled at
 * --throttle-ms (load/book-sim.ts clientProfile).
 *
 * Per window it reports:
 * - bupd and book counts (live and throttled clients apart), checksum
 *   checks and mismatches (a mismatch resubscribes, as a client should),
 *   q gaps, removals of levels the window did not hold;
 * - latency of each bupd: receive time minus the newest time carried in the
 *   sizes it names (load/book-sim.ts: the publisher stamps each size with
 *   its message's scheduled time), read only from sides without a removal:
 *   on such a side every named level was set by this very message, while a
 *   removal may bring older levels in from below; a bupd with no such level
 *   is not a sample. For throttled clients, the age of the newest level of
 *   each `book` they receive;
 * - bytes: each bupd's MessagePack size against the size of the client's
 *   whole window (after applying it) as one `book` message, what a gateway
 *   sending the window on every change would send; by depth.
 *
 *   npm run load:book-client -- --url ws://127.0.0.1:8080/v1/stream --clients 100 --duration 10
 *
 * With --control it is driven over stdin like load/bench-client.ts: `open
 * N`, `start`, `stop`, one JSON line answered for each; end of input closes
 * everything and exits.
 */
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { UsageError, parseOptions, runIfEntry } from '../src/cli-tool.js';
import { BOOK_SIM_DEFAULTS, bookPicker, bookSymbol, clientProfile, tsOfSize, type Level } from './book-sim.js';
import { ClientBook, packedSize } from './book-window.js';
import { encodeHistogram, makeWallClock, MAX_LATENCY_US, newHistogram } from './latency.js';

export interface BookClientOptions {
  url: string;
  clients: number;
  books: number;
  booksPerClient: number;
  /** Zipf exponent of the picks by book rank; 0: uniform. */
  pickZipf: number;
  depths: number[];
  throttledFraction: number;
  throttleMs: number;
  seed: number;
  clientOffset: number;
  connectRate: number;
  duration: number;
  control: boolean;
}

export const USAGE = `usage: npm run load:book-client -- [options]

  --url URL                 gateway endpoint (default ws://127.0.0.1:8080/v1/stream)
  --clients N               connections, 1 to 20000 (default 100; with --control, "open N" decides)
  --books N                 books the publisher has (default ${BOOK_SIM_DEFAULTS.books})
  --books-per-client N      books per connection (default 5)
  --pick-zipf X             Zipf exponent of the picks by book rank (default 0: uniform)
  --depths LIST             depths, client i takes LIST[i mod n] (default 10,25)
  --throttled-fraction X    share of the clients throttled, evenly spread (default 0.2)
  --throttle-ms N           their throttleMs (default 100)
  --seed N                  seed of the picks (default 7)
  --client-offset N         global index of this process's first client (default 0)
  --connect-rate N          new connections per second (default 500)
  --duration S              seconds measured; with --control the longest the process lives (default 10)
  --control                 driven by stdin: "open N", "start", "stop"; end of input exits
  --help                    show this help`;

export { UsageError };

const MAX_CLIENTS = 20_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const OPEN_TIMEOUT_MS = 120_000;
const RAMP_STEP_MS = 50;

function num(name: string, raw: string | undefined, def: string, expected: string, ok: (n: number) => boolean): number {
  const s = raw ?? def;
  const n = s.trim() === '' ? NaN : Number(s);
  if (!ok(n)) throw new UsageError(`--${name}: expected ${expected}, got ${JSON.stringify(s)}`);
  return n;
}
const intIn = (lo: number, hi: number) => (n: number) => Number.isInteger(n) && n >= lo && n <= hi;

export function parseBookClientArgs(argv: readonly string[]): BookClientOptions | 'help' {
  const v = parseOptions(argv, {
    url: { type: 'string' },
    clients: { type: 'string' },
    books: { type: 'string' },
    'books-per-client': { type: 'string' },
    'pick-zipf': { type: 'string' },
    depths: { type: 'string' },
    'throttled-fraction': { type: 'string' },
    'throttle-ms': { type: 'string' },
    seed: { type: 'string' },
    'client-offset': { type: 'string' },
    'connect-rate': { type: 'string' },
    duration: { type: 'string' },
    control: { type: 'boolean', default: false },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  const depthsRaw = v.depths ?? '10,25';
  const depths = depthsRaw.split(',').map((x) => Number(x.trim()));
  if (depths.length === 0 || depths.some((d) => !Number.isInteger(d) || d < 1 || d > 1000)) {
    throw new UsageError(`--depths: expected comma-separated depths (1, 5, 10, 25, 50, 100, ...), got ${JSON.stringify(depthsRaw)}`);
  }
  const books = num('books', v.books, String(BOOK_SIM_DEFAULTS.books), 'an integer from 1 to 10000', intIn(1, 10_000));
  return {
    url: v.url ?? 'ws://127.0.0.1:8080/v1/stream',
    clients: num('clients', v.clients, '100', `an integer from 1 to ${MAX_CLIENTS}`, intIn(1, MAX_CLIENTS)),
    books,
    booksPerClient: num('books-per-client', v['books-per-client'], '5', `an integer from 1 to ${books}`, intIn(1, books)),
    pickZipf: num('pick-zipf', v['pick-zipf'], '0', 'a number from 0 to 5', (n) => n >= 0 && n <= 5),
    depths,
    throttledFraction: num('throttled-fraction', v['throttled-fraction'], '0.2', 'a number from 0 to 1', (n) => n >= 0 && n <= 1),
    throttleMs: num('throttle-ms', v['throttle-ms'], '100', 'an integer from 1 to 60000', intIn(1, 60_000)),
    seed: num('seed', v.seed, '7', 'a safe integer', Number.isSafeInteger),
    clientOffset: num('client-offset', v['client-offset'], '0', 'an integer >= 0', intIn(0, 10_000_000)),
    connectRate: num('connect-rate', v['connect-rate'], '500', 'an integer from 1 to 100000', intIn(1, 100_000)),
    duration: num('duration', v.duration, '10', 'seconds, > 0 and <= 3600', (n) => n > 0 && n <= 3600),
    control: v.control ?? false,
  };
}

/** Reply to `open N`. */
export interface BookOpenedReport {
  ev: 'opened';
  requested: number;
  open: number;
  failed: number;
  failures: Record<string, number>;
  seconds: number;
}

/** Per depth: what its live clients received. */
export interface DepthBytes {
  depth: number;
  bupd: number;
  /** MessagePack bytes of those bupds. */
  bupdBytes: number;
  /** The same clients' whole windows after each bupd, as `book` messages. */
  windowBytes: number;
  /** Levels the bupds named. */
  levels: number;
}

/** Reply to `stop`: what arrived during the window. */
export interface BookWindowReport {
  ev: 'window';
  seconds: number;
  open: number;
  closedEarly: number;
  frames: number;
  bytes: number;
  /** bupd received (only unthrottled subscriptions get them). */
  bupd: number;
  /** bupd that named no level inside the client's window (q and cs only). */
  emptyBupd: number;
  /** `book` received by unthrottled clients (first window, resync, or release after backpressure) and by throttled ones. */
  liveBooks: number;
  throttledBooks: number;
  throttledBookBytes: number;
  checksumChecks: number;
  checksumMismatches: number;
  /** bupd whose q was not the previous q + 1, or a book whose q went back. */
  qGaps: number;
  /** A bupd removed a level the window did not hold. */
  badRemovals: number;
  resubscribes: number;
  byDepth: DepthBytes[];
  /** bupd latency (µs): receive time - newest time carried by the levels it set. */
  latencyUs: string;
  /** bupd with no level to read a time from. */
  unsampled: number;
  /** Throttled clients: receive time - newest time in the window of each book (µs). */
  throttledAgeUs: string;
  byes: Record<string, number>;
  closes: Record<string, number>;
  cpuMs: number;
  eventLoopDelayP99Ms: number;
  rssMiB: number;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Counters shared by every client of the process (one thread: plain numbers). */
class Totals {
  frames = 0;
  bytes = 0;
  bupd = 0;
  emptyBupd = 0;
  liveBooks = 0;
  throttledBooks = 0;
  throttledBookBytes = 0;
  checksumChecks = 0;
  checksumMismatches = 0;
  qGaps = 0;
  badRemovals = 0;
  resubscribes = 0;
  unsampled = 0;
  byDepth = new Map<number, DepthBytes>();
  byes: Record<string, number> = {};
  closes: Record<string, number> = {};
  readonly latency = newHistogram();
  readonly throttledAge = newHistogram();
  closedEarly = 0;
  open = 0;
  failed = 0;
  failures: Record<string, number> = {};
  settled = 0;
  stopping = false;

  depth(d: number): DepthBytes {
    let x = this.byDepth.get(d);
    if (x === undefined) {
      x = { depth: d, bupd: 0, bupdBytes: 0, windowBytes: 0, levels: 0 };
      this.byDepth.set(d, x);
    }
    return x;
  }

  resetWindow(): void {
    this.frames = this.bytes = this.bupd = this.emptyBupd = this.liveBooks = this.throttledBooks = this.throttledBookBytes = 0;
    this.checksumChecks = this.checksumMismatches = this.qGaps = this.badRemovals = this.resubscribes = this.unsampled = this.closedEarly = 0;
    this.byDepth = new Map();
    this.byes = {};
    this.closes = {};
    this.latency.reset();
    this.throttledAge.reset();
  }
}

const clampUs = (ms: number) => {
  const us = Math.round(ms * 1000);
  return us < 0 ? 0 : us > MAX_LATENCY_US ? MAX_LATENCY_US : us;
};

/** Newest time carried by the levels of `side`, or -Infinity when it removed a level (and may have brought older ones in). */
function newestSet(side: readonly Level[] | undefined, now: number): number {
  if (side === undefined) return -Infinity;
  let best = -Infinity;
  for (let i = 0; i < side.length; i++) {
    const s = side[i]![1];
    if (s === 0) return -Infinity;
    const ts = tsOfSize(s, now);
    if (ts > best) best = ts;
  }
  return best;
}

type Msg = Record<string, unknown>;
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** One connection and its windows. */
class BookWsClient {
  private readonly ws: WebSocket;
  private readonly books = new Map<string, ClientBook>();
  private connected = false;
  private settled = false;
  readonly closed: Promise<void>;

  constructor(
    url: string,
    private readonly symbols: string[],
    private readonly depth: number,
    private readonly throttleMs: number,
    private readonly t: Totals,
    private readonly now: () => number,
  ) {
    for (const s of symbols) this.books.set(s, new ClientBook(s, depth));
    this.ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    this.ws.on('message', (data: Buffer) => this.onFrame(data));
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

  private subscribe(symbols: string[]): void {
    const req: Record<string, unknown> = { op: 'sub', id: 1, channel: 'book', symbols, depth: this.depth };
    if (this.throttleMs > 0) req['throttleMs'] = this.throttleMs;
    this.ws.send(JSON.stringify(req));
  }

  private fail(reason: string): void {
    if (this.connected || this.settled) return;
    this.settled = true;
    this.t.failed++;
    this.t.settled++;
    bump(this.t.failures, reason);
    this.ws.terminate();
  }

  private onFrame(data: Buffer): void {
    const t = this.t;
    t.frames++;
    t.bytes += data.length;
    const now = this.now();
    let frame: unknown;
    try {
      frame = unpackr.unpack(data);
    } catch {
      return;
    }
    if (!Array.isArray(frame)) return;
    for (let i = 0; i < frame.length; i++) this.onMessage(frame[i] as Msg, now);
  }

  /** A wrong window: counted, and resubscribed for a fresh `book` (the protocol's resync). */
  private resync(b: ClientBook): void {
    b.resyncing = true;
    this.t.resubscribes++;
    this.subscribe([b.symbol]);
  }

  private onMessage(m: Msg, now: number): void {
    const t = this.t;
    switch (m['t']) {
      case 'bupd': {
        const b = this.books.get(m['s'] as string);
        if (b === undefined || b.resyncing || b.q === 0) return;
        t.bupd++;
        const q = m['q'] as number;
        const bids = m['bids'] as Level[] | undefined;
        const asks = m['asks'] as Level[] | undefined;
        if (q !== b.q + 1) t.qGaps++;
        if (!b.apply(q, bids, asks)) t.badRemovals++;
        const cs = m['cs'] as number;
        t.checksumChecks++;
        if (b.checksum() !== cs) {
          t.checksumMismatches++;
          this.resync(b);
          return;
        }
        const named = (bids?.length ?? 0) + (asks?.length ?? 0);
        if (named === 0) t.emptyBupd++;
        const d = t.depth(this.depth);
        d.bupd++;
        d.bupdBytes += packedSize(m);
        d.windowBytes += b.windowBytes(cs);
        d.levels += named;
        if (t.stopping) return;
        const newest = Math.max(newestSet(bids, now), newestSet(asks, now));
        if (newest > -Infinity) t.latency.recordValue(clampUs(now - newest));
        else t.unsampled++;
        return;
      }
      case 'book': {
        const b = this.books.get(m['s'] as string);
        if (b === undefined) return;
        const q = m['q'] as number;
        if (b.q > 0 && q < b.q) t.qGaps++;
        b.replace(q, m['bids'] as Level[] | undefined, m['asks'] as Level[] | undefined);
        t.checksumChecks++;
        if (b.checksum() !== m['cs']) {
          t.checksumMismatches++;
          this.resync(b);
          return;
        }
        if (this.throttleMs > 0) {
          t.throttledBooks++;
          t.throttledBookBytes += packedSize(m);
          let newest = -Infinity;
          for (const s of b.allSizes()) newest = Math.max(newest, tsOfSize(s, now));
          if (newest > -Infinity && !t.stopping) t.throttledAge.recordValue(clampUs(now - newest));
        } else t.liveBooks++;
        return;
      }
      case 'hello':
        if (!this.connected) {
          this.connected = true;
          t.open++;
          this.subscribe(this.symbols);
        }
        return;
      case 'ack':
        if (!this.settled) {
          this.settled = true;
          t.settled++;
        }
        return;
      case 'bye':
        bump(t.byes, String(m['code']));
        return;
      default:
        return;
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

/** The clients of this process and their counters. */
export class BookClients {
  private readonly clients: BookWsClient[] = [];
  private readonly t = new Totals();
  private readonly now = makeWallClock();
  private readonly pick: (index: number, k: number) => string[];
  private windowStart = 0;
  private cpuStart = process.cpuUsage();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });

  constructor(private readonly opts: BookClientOptions) {
    const symbols = Array.from({ length: opts.books }, (_, i) => bookSymbol(i));
    this.pick = bookPicker(symbols, opts.pickZipf, opts.pickZipf === 0, opts.seed);
  }

  /** Opens connections until `total` exist; resolves once all have subscribed or failed, or at the timeout. */
  async open(total: number, signal: AbortSignal): Promise<BookOpenedReport> {
    const t = this.t;
    const o = this.opts;
    const want = Math.min(total, MAX_CLIENTS) - this.clients.length;
    const start = performance.now();
    t.settled = 0;
    t.failed = 0;
    t.failures = {};
    const perStep = Math.max(1, Math.round((o.connectRate * RAMP_STEP_MS) / 1000));
    let launched = 0;
    const deadline = start + OPEN_TIMEOUT_MS;
    while ((launched < want || t.settled < launched) && performance.now() < deadline && !signal.aborted) {
      for (let k = 0; k < perStep && launched < want; k++, launched++) {
        const index = o.clientOffset + this.clients.length;
        const p = clientProfile(index, o.depths, o.throttledFraction, o.throttleMs);
        this.clients.push(new BookWsClient(o.url, this.pick(index, o.booksPerClient), p.depth, p.throttleMs, t, this.now));
      }
      await new Promise((r) => setTimeout(r, RAMP_STEP_MS));
    }
    return { ev: 'opened', requested: total, open: t.open, failed: t.failed, failures: t.failures, seconds: Math.round(performance.now() - start) / 1000 };
  }

  start(): void {
    this.t.resetWindow();
    this.windowStart = performance.now();
    this.cpuStart = process.cpuUsage();
    this.loopDelay.reset();
    this.loopDelay.enable();
  }

  stop(): BookWindowReport {
    const t = this.t;
    const cpu = process.cpuUsage(this.cpuStart);
    this.loopDelay.disable();
    return {
      ev: 'window',
      seconds: Math.round(performance.now() - this.windowStart) / 1000,
      open: t.open,
      closedEarly: t.closedEarly,
      frames: t.frames,
      bytes: t.bytes,
      bupd: t.bupd,
      emptyBupd: t.emptyBupd,
      liveBooks: t.liveBooks,
      throttledBooks: t.throttledBooks,
      throttledBookBytes: t.throttledBookBytes,
      checksumChecks: t.checksumChecks,
      checksumMismatches: t.checksumMismatches,
      qGaps: t.qGaps,
      badRemovals: t.badRemovals,
      resubscribes: t.resubscribes,
      byDepth: [...t.byDepth.values()].sort((a, b) => a.depth - b.depth),
      latencyUs: encodeHistogram(t.latency),
      unsampled: t.unsampled,
      throttledAgeUs: encodeHistogram(t.throttledAge),
      byes: t.byes,
      closes: t.closes,
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      eventLoopDelayP99Ms: Math.round(this.loopDelay.percentile(99) / 1e4) / 100,
      rssMiB: Math.round(process.memoryUsage.rss() / 2 ** 20),
    };
  }

  async close(ms = 2000): Promise<void> {
    this.t.stopping = true;
    for (const c of this.clients) c.close();
    await Promise.race([Promise.all(this.clients.map((c) => c.closed)), new Promise((r) => setTimeout(r, ms))]);
    for (const c of this.clients) c.terminate();
  }
}

runIfEntry(import.meta.url, {
  name: 'load:book-client',
  usage: USAGE,
  parse: (argv) => parseBookClientArgs(argv),
  async run(opts, signal) {
    const out = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
    const clients = new BookClients(opts);
    const ac = new AbortController();
    signal.addEventListener('abort', () => ac.abort(), { once: true });
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
      let chain = Promise.resolve();
      await new Promise<void>((resolve) => {
        ac.signal.addEventListener('abort', () => resolve(), { once: true });
        rl.on('close', () => resolve());
        rl.on('line', (line) => {
          const [cmd, arg] = line.trim().split(/\s+/);
          chain = chain.then(async () => {
            if (cmd === 'open') out(await clients.open(Number(arg), ac.signal));
            else if (cmd === 'start') {
              clients.start();
              out({ ev: 'started' });
            } else if (cmd === 'stop') out(clients.stop());
            else out({ ev: 'error', msg: `unknown command ${JSON.stringify(line)}` });
          });
        });
      });
      rl.close();
      return 0;
    } finally {
      clearTimeout(life);
      await clients.close();
    }
  },
});
