/**
 * Trade load clients for benchmarks: many tickgate WebSocket clients
 * subscribed to the `trade` channel, each checking that it gets every trade
 * of its symbols once and in order (docs/PROTOCOL.md "Trade prints"), so
 * that a benchmark measures a gateway that loses nothing.
 *
 * Client i (counting from --client-offset, so several processes split one
 * population) takes --symbols-per-client symbols, picked uniformly from its
 * own seeded stream (load/trade-sim.ts tradePicker).
 *
 * Checks, per subscription, from the position in the `ack` on:
 * - `q`: each trade must be the previous q + 1; a lower one is a duplicate,
 *   a higher one skips (missing) trades; a `gap` counts what it announces;
 * - `id` = `q`: the publisher numbers each symbol's prints 1, 2, 3, ... and a
 *   gateway without JetStream numbers the trades it gets the same way, so a
 *   mismatch is a trade lost (or doubled) between the publisher and the
 *   gateway;
 * - `final`: against the publisher's counts per symbol after it paused, the
 *   trades still missing at the end (each subscription's last q must be the
 *   symbol's count).
 * Latency: receive time minus the trade's `ts` (its scheduled time at the
 * open-loop publisher), every trade, into HdrHistogram (µs).
 *
 *   npx tsx load/trade-client.ts --url ws://127.0.0.1:8080/v1/stream --clients 100 --duration 10
 *
 * With --control it is driven over stdin like load/book-client.ts: `open N`,
 * `start`, `stop`, `final {"TR-000": n, ...}`, one JSON line answered for
 * each; end of input closes everything and exits.
 */
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { UsageError, parseOptions, runIfEntry } from '../src/cli-tool.js';
import { encodeHistogram, makeWallClock, MAX_LATENCY_US, newHistogram } from './latency.js';
import { TRADE_SIM_DEFAULTS, tradePicker, tradeSymbol } from './trade-sim.js';

export interface TradeClientOptions {
  url: string;
  clients: number;
  symbols: number;
  symbolsPerClient: number;
  seed: number;
  clientOffset: number;
  connectRate: number;
  duration: number;
  control: boolean;
}

export const USAGE = `usage: npx tsx load/trade-client.ts [options]

  --url URL                 gateway endpoint (default ws://127.0.0.1:8080/v1/stream)
  --clients N               connections, 1 to 20000 (default 100; with --control, "open N" decides)
  --symbols N               symbols the publisher has (default ${TRADE_SIM_DEFAULTS.symbols})
  --symbols-per-client N    symbols per connection, picked uniformly (default 5)
  --seed N                  seed of the picks (default 7)
  --client-offset N         global index of this process's first client (default 0)
  --connect-rate N          new connections per second (default 500)
  --duration S              seconds measured; with --control the longest the process lives (default 10)
  --control                 driven by stdin: "open N", "start", "stop", "final JSON"; end of input exits
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

export function parseTradeClientArgs(argv: readonly string[]): TradeClientOptions | 'help' {
  const v = parseOptions(argv, {
    url: { type: 'string' },
    clients: { type: 'string' },
    symbols: { type: 'string' },
    'symbols-per-client': { type: 'string' },
    seed: { type: 'string' },
    'client-offset': { type: 'string' },
    'connect-rate': { type: 'string' },
    duration: { type: 'string' },
    control: { type: 'boolean', default: false },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  const symbols = num('symbols', v.symbols, String(TRADE_SIM_DEFAULTS.symbols), 'an integer from 1 to 10000', intIn(1, 10_000));
  return {
    url: v.url ?? 'ws://127.0.0.1:8080/v1/stream',
    clients: num('clients', v.clients, '100', `an integer from 1 to ${MAX_CLIENTS}`, intIn(1, MAX_CLIENTS)),
    symbols,
    symbolsPerClient: num('symbols-per-client', v['symbols-per-client'], '5', `an integer from 1 to --symbols (${symbols})`, intIn(1, symbols)),
    seed: num('seed', v.seed, '7', 'a safe integer', Number.isSafeInteger),
    clientOffset: num('client-offset', v['client-offset'], '0', 'an integer >= 0', intIn(0, 10_000_000)),
    connectRate: num('connect-rate', v['connect-rate'], '500', 'an integer from 1 to 100000', intIn(1, 100_000)),
    duration: num('duration', v.duration, '10', 'seconds, > 0 and <= 3600', (n) => n > 0 && n <= 3600),
    control: v.control ?? false,
  };
}

/** Reply to `open N`. */
export interface TradeOpenedReport {
  ev: 'opened';
  requested: number;
  open: number;
  failed: number;
  failures: Record<string, number>;
  seconds: number;
}

/** Reply to `stop`: what arrived during the window. */
export interface TradeWindowReport {
  ev: 'window';
  seconds: number;
  open: number;
  closedEarly: number;
  frames: number;
  bytes: number;
  trades: number;
  /** Trades at or below the position already held. */
  duplicates: number;
  /** Trades skipped (a q above the previous + 1), and how often that happened. */
  missing: number;
  skips: number;
  /** Trades whose q differs from the publisher's id: lost or doubled before the gateway. */
  idMismatches: number;
  /** `gap` messages, and the trades they announced lost. */
  gapMessages: number;
  gapTrades: number;
  /** Latency (µs): receive time - ts. */
  latencyUs: string;
  byes: Record<string, number>;
  closes: Record<string, number>;
  cpuMs: number;
  eventLoopDelayP99Ms: number;
  rssMiB: number;
}

/** Reply to `final`: every subscription against the publisher's counts. */
export interface TradeFinalReport {
  ev: 'final';
  subscriptions: number;
  /** Subscriptions whose last q is the symbol's count. */
  complete: number;
  /** Trades published and not received (sum over subscriptions of count - last q, when positive). */
  missingAtEnd: number;
  /** Subscriptions ahead of the publisher's count (should be impossible). */
  ahead: number;
  /** Since the clients subscribed: duplicates, skipped trades, id mismatches, gaps announced. */
  duplicates: number;
  missing: number;
  idMismatches: number;
  gapMessages: number;
  /** Subscriptions that never got their ack. */
  unacked: number;
  /** Trades received since the clients subscribed. */
  trades: number;
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Counters shared by every client of the process (one thread: plain numbers). */
class Totals {
  frames = 0;
  bytes = 0;
  trades = 0;
  duplicates = 0;
  missing = 0;
  skips = 0;
  idMismatches = 0;
  gapMessages = 0;
  gapTrades = 0;
  byes: Record<string, number> = {};
  closes: Record<string, number> = {};
  readonly latency = newHistogram();
  /** Since subscribing, never reset: for `final`. */
  allTrades = 0;
  allDuplicates = 0;
  allMissing = 0;
  allIdMismatches = 0;
  allGapMessages = 0;
  closedEarly = 0;
  open = 0;
  failed = 0;
  failures: Record<string, number> = {};
  settled = 0;
  stopping = false;

  resetWindow(): void {
    this.frames = this.bytes = this.trades = this.duplicates = this.missing = this.skips = this.idMismatches = this.gapMessages = this.gapTrades = this.closedEarly = 0;
    this.byes = {};
    this.closes = {};
    this.latency.reset();
  }
}

const clampUs = (ms: number) => {
  const us = Math.round(ms * 1000);
  return us < 0 ? 0 : us > MAX_LATENCY_US ? MAX_LATENCY_US : us;
};

type Msg = Record<string, unknown>;
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** One subscription's position: -1 until the ack gives it. */
interface Tape {
  q: number;
}

/** One connection and its tapes. */
class TradeWsClient {
  private readonly ws: WebSocket;
  readonly tapes = new Map<string, Tape>();
  private connected = false;
  private settled = false;
  readonly closed: Promise<void>;

  constructor(
    url: string,
    private readonly symbols: string[],
    private readonly t: Totals,
    private readonly now: () => number,
  ) {
    for (const s of symbols) this.tapes.set(s, { q: -1 });
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

  private onMessage(m: Msg, now: number): void {
    const t = this.t;
    switch (m['t']) {
      case 'trade': {
        const tape = this.tapes.get(m['s'] as string);
        if (tape === undefined || tape.q < 0) return;
        const q = m['q'] as number;
        t.trades++;
        t.allTrades++;
        if (q <= tape.q) {
          t.duplicates++;
          t.allDuplicates++;
          return;
        }
        if (q !== tape.q + 1) {
          t.missing += q - tape.q - 1;
          t.allMissing += q - tape.q - 1;
          t.skips++;
        }
        tape.q = q;
        if (m['id'] !== q) {
          t.idMismatches++;
          t.allIdMismatches++;
        }
        if (!t.stopping) t.latency.recordValue(clampUs(now - (m['ts'] as number)));
        return;
      }
      case 'gap': {
        const tape = this.tapes.get(m['s'] as string);
        if (tape === undefined) return;
        t.gapMessages++;
        t.allGapMessages++;
        t.gapTrades += (m['to'] as number) - (m['from'] as number);
        if ((m['to'] as number) > tape.q) tape.q = m['to'] as number;
        return;
      }
      case 'ack': {
        const pos = m['pos'] as Record<string, { q: number }> | undefined;
        if (pos !== undefined) {
          for (const [s, p] of Object.entries(pos)) {
            const tape = this.tapes.get(s);
            if (tape !== undefined && tape.q < 0) tape.q = p.q;
          }
        }
        if (!this.settled) {
          this.settled = true;
          t.settled++;
        }
        return;
      }
      case 'hello':
        if (!this.connected) {
          this.connected = true;
          t.open++;
          this.ws.send(JSON.stringify({ op: 'sub', id: 1, channel: 'trade', symbols: this.symbols }));
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
export class TradeClients {
  private readonly clients: TradeWsClient[] = [];
  private readonly t = new Totals();
  private readonly now = makeWallClock();
  private readonly pick: (index: number, k: number) => string[];
  private windowStart = 0;
  private cpuStart = process.cpuUsage();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });

  constructor(private readonly opts: TradeClientOptions) {
    this.pick = tradePicker(
      Array.from({ length: opts.symbols }, (_, i) => tradeSymbol(i)),
      opts.seed,
    );
  }

  /** Opens connections until `total` exist; resolves once all have subscribed or failed, or at the timeout. */
  async open(total: number, signal: AbortSignal): Promise<TradeOpenedReport> {
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
        this.clients.push(new TradeWsClient(o.url, this.pick(index, o.symbolsPerClient), t, this.now));
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

  stop(): TradeWindowReport {
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
      trades: t.trades,
      duplicates: t.duplicates,
      missing: t.missing,
      skips: t.skips,
      idMismatches: t.idMismatches,
      gapMessages: t.gapMessages,
      gapTrades: t.gapTrades,
      latencyUs: encodeHistogram(t.latency),
      byes: t.byes,
      closes: t.closes,
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      eventLoopDelayP99Ms: Math.round(this.loopDelay.percentile(99) / 1e4) / 100,
      rssMiB: Math.round(process.memoryUsage.rss() / 2 ** 20),
    };
  }

  /** Every subscription against the publisher's count of its symbol. */
  final(published: Record<string, number>): TradeFinalReport {
    const t = this.t;
    let subscriptions = 0;
    let complete = 0;
    let missingAtEnd = 0;
    let ahead = 0;
    let unacked = 0;
    for (const c of this.clients) {
      for (const [s, tape] of c.tapes) {
        subscriptions++;
        const want = published[s] ?? 0;
        if (tape.q < 0) {
          unacked++;
          missingAtEnd += want;
        } else if (tape.q === want) complete++;
        else if (tape.q < want) missingAtEnd += want - tape.q;
        else ahead++;
      }
    }
    return {
      ev: 'final',
      subscriptions,
      complete,
      missingAtEnd,
      ahead,
      duplicates: t.allDuplicates,
      missing: t.allMissing,
      idMismatches: t.allIdMismatches,
      gapMessages: t.allGapMessages,
      unacked,
      trades: t.allTrades,
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
  name: 'trade-client',
  usage: USAGE,
  parse: (argv) => parseTradeClientArgs(argv),
  async run(opts, signal) {
    const out = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');
    const clients = new TradeClients(opts);
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
          const trimmed = line.trim();
          const sp = trimmed.indexOf(' ');
          const cmd = sp < 0 ? trimmed : trimmed.slice(0, sp);
          const arg = sp < 0 ? '' : trimmed.slice(sp + 1);
          chain = chain.then(async () => {
            if (cmd === 'open') out(await clients.open(Number(arg), ac.signal));
            else if (cmd === 'start') {
              clients.start();
              out({ ev: 'started' });
            } else if (cmd === 'stop') out(clients.stop());
            else if (cmd === 'final') {
              let published: Record<string, number>;
              try {
                published = JSON.parse(arg) as Record<string, number>;
              } catch {
                return out({ ev: 'error', msg: 'final: expected a JSON map of symbol to count' });
              }
              out(clients.final(published));
            } else out({ ev: 'error', msg: `unknown command ${JSON.stringify(line)}` });
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
