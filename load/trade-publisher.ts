/**
 * Open-loop trade publisher for benchmarks: the prints of load/trade-sim.ts
 * published to NATS as a trade feed (subject `trade.<symbol>`, standard
 * MessagePack `{px, sz, side, id, ts}`, one print per message), paced in
 * trades per second.
 *
 * Print k is due at t0 + k / rate and carries that time as `ts`, whether
 * or not it left on time: a stalled publisher, bus, gateway or client shows
 * as latency downstream, never as a missing sample. A 1 ms timer publishes
 * what is due (never a busy loop: on a 2-core machine that would take a
 * core from the server under test).
 *
 *   npx tsx load/trade-publisher.ts --url nats://127.0.0.1:4222 --rate 20000 --duration 60
 *
 * With `--control`, stdin takes one command per line; lines printed to
 * stdout are JSON objects with an `ev` field:
 * - `rate N`: trades per second (0: pause); the schedule restarts from now;
 * - `stats`: what was published and the publish lag since the previous `stats`;
 * - `counts`: prints published per symbol so far, after a NATS flush (ask
 *   after `rate 0` for final counts);
 * - `burst N`: N more prints on the catch-up symbols (`CU-0` ...,
 *   round-robin, on subjects `catchup.<symbol>`: a gateway feed of their
 *   own, so its counters show when the gateway has them all), paced at
 *   --catchup-rate next to the main schedule; the
 *   reply, once all are published and flushed, has each catch-up symbol's
 *   first and last id and the CRC32 of its prints (load/trade-sim.ts
 *   tradeDigest) for a resuming client to compare.
 * End of input stops it.
 */
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { runIfEntry, UsageError, parseOptions } from '../src/cli-tool.js';
import { rng } from './book-sim.js';
import { makeWallClock, newHistogram, summarize, type LatencySummary } from './latency.js';
import { catchupSymbol, TRADE_SIM_DEFAULTS, TradeSim, TradeTapes, tradeDigest, type TradePrint } from './trade-sim.js';

export interface TradePublisherOptions {
  url: string;
  symbols: number;
  zipf: number;
  /** Trades per second of the main schedule; 0: paused. */
  rate: number;
  seed: number;
  subjectPrefix: string;
  catchupSymbols: number;
  catchupSubjectPrefix: string;
  catchupRate: number;
  duration: number;
  paceMs: number;
  control: boolean;
}

export const USAGE = `usage: npx tsx load/trade-publisher.ts [options]

  --url URL               NATS server (default nats://127.0.0.1:4222)
  --symbols N             symbols, 1 to 10000 (default ${TRADE_SIM_DEFAULTS.symbols})
  --zipf X                Zipf exponent of activity across symbols (default ${TRADE_SIM_DEFAULTS.zipf})
  --rate N                trades per second, >= 0 and <= 2000000 (default 20000; 0: paused until "rate N")
  --seed N                simulator seed (default ${TRADE_SIM_DEFAULTS.seed})
  --subject-prefix P      subjects are P.<symbol> (default trade)
  --catchup-symbols N     catch-up symbols CU-0 ... for "burst N" (default 1)
  --catchup-subject-prefix P  their subjects are P.<symbol> (default catchup: a gateway feed of its own, counted apart)
  --catchup-rate N        trades per second of a burst (default 20000)
  --duration S            seconds to run at most, > 0 and <= 3600 (default 60)
  --pace-ms N             pacing timer period, 1 to 10 ms (default 1)
  --control               read commands from stdin: "rate N", "stats", "counts", "burst N"; end of input stops
  --help                  show this help`;

export { UsageError };

const MAX_RATE = 2_000_000;

function num(name: string, raw: string | undefined, def: string, expected: string, ok: (n: number) => boolean): number {
  const s = raw ?? def;
  const n = s.trim() === '' ? NaN : Number(s);
  if (!ok(n)) throw new UsageError(`--${name}: expected ${expected}, got ${JSON.stringify(s)}`);
  return n;
}

export function parseTradePublisherArgs(argv: readonly string[]): TradePublisherOptions | 'help' {
  const v = parseOptions(argv, {
    url: { type: 'string' },
    symbols: { type: 'string' },
    zipf: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    'subject-prefix': { type: 'string' },
    'catchup-symbols': { type: 'string' },
    'catchup-subject-prefix': { type: 'string' },
    'catchup-rate': { type: 'string' },
    duration: { type: 'string' },
    'pace-ms': { type: 'string' },
    control: { type: 'boolean', default: false },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  const tokens = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
  const prefix = v['subject-prefix'] ?? 'trade';
  if (!tokens.test(prefix)) throw new UsageError(`--subject-prefix: expected NATS subject tokens such as "trade", got ${JSON.stringify(prefix)}`);
  const cuPrefix = v['catchup-subject-prefix'] ?? 'catchup';
  if (!tokens.test(cuPrefix)) throw new UsageError(`--catchup-subject-prefix: expected NATS subject tokens such as "catchup", got ${JSON.stringify(cuPrefix)}`);
  return {
    url: v.url ?? 'nats://127.0.0.1:4222',
    symbols: num('symbols', v.symbols, String(TRADE_SIM_DEFAULTS.symbols), 'an integer from 1 to 10000', (n) => Number.isInteger(n) && n >= 1 && n <= 10_000),
    zipf: num('zipf', v.zipf, String(TRADE_SIM_DEFAULTS.zipf), 'a number from 0 to 5', (n) => n >= 0 && n <= 5),
    rate: num('rate', v.rate, '20000', `a number >= 0 and <= ${MAX_RATE}`, (n) => n >= 0 && n <= MAX_RATE),
    seed: num('seed', v.seed, String(TRADE_SIM_DEFAULTS.seed), 'a safe integer', Number.isSafeInteger),
    subjectPrefix: prefix,
    catchupSubjectPrefix: cuPrefix,
    catchupSymbols: num('catchup-symbols', v['catchup-symbols'], '1', 'an integer from 1 to 1000', (n) => Number.isInteger(n) && n >= 1 && n <= 1000),
    catchupRate: num('catchup-rate', v['catchup-rate'], '20000', `a number > 0 and <= ${MAX_RATE}`, (n) => n > 0 && n <= MAX_RATE),
    duration: num('duration', v.duration, '60', 'seconds, > 0 and <= 3600', (n) => n > 0 && n <= 3600),
    paceMs: num('pace-ms', v['pace-ms'], '1', 'an integer from 1 to 10', (n) => Number.isInteger(n) && n >= 1 && n <= 10),
    control: v.control ?? false,
  };
}

export interface TradePublisherStats {
  ev: 'stats';
  /** When the counts were read, on the publisher's monotonic clock (ms): rates over its own time, whatever delays the reply. */
  at: number;
  /** Since start: prints of the main schedule, of bursts, and payload bytes. */
  trades: number;
  burstTrades: number;
  bytes: number;
  /** Trades per second asked for. */
  rate: number;
  /** Publish time minus scheduled time of the main schedule, since the previous stats. */
  lagMs: LatencySummary;
}

export interface TradeCounts {
  ev: 'counts';
  /** Symbol -> prints published on it (its last id). */
  published: Record<string, number>;
}

/** Per catch-up symbol, what a burst published on it. */
export interface BurstSymbol {
  /** First and last id of the burst (0 and 0 when it published none on this symbol). */
  first: number;
  last: number;
  n: number;
  /** tradeDigest over the burst's prints, in order, from 0. */
  crc: number;
}

export interface TradeBurstReport {
  ev: 'burst';
  n: number;
  /** From the command to the last print flushed to NATS. */
  ms: number;
  symbols: Record<string, BurstSymbol>;
}

/** Runs until the duration bound, end of stdin (with --control) or a signal. */
export async function runTradePublisher(opts: TradePublisherOptions, signal: AbortSignal, out: (line: object) => void): Promise<void> {
  const sim = new TradeSim({ symbols: opts.symbols, zipf: opts.zipf, seed: opts.seed });
  const subjects = sim.symbols.map((s) => `${opts.subjectPrefix}.${s}`);
  const cuNames = Array.from({ length: opts.catchupSymbols }, (_, i) => catchupSymbol(i));
  const cuSubjects = cuNames.map((s) => `${opts.catchupSubjectPrefix}.${s}`);
  const cuTapes = new TradeTapes(opts.catchupSymbols, rng(opts.seed + 2));
  // Standard MessagePack only, as any feed: maps, float64 prices and sizes.
  const packr = new Packr({ useRecords: false, variableMapSize: true });
  const nc = await connect({ servers: opts.url, name: 'tickgate-bench-trade-publisher', timeout: 5000 });
  const now = makeWallClock();
  const lag = newHistogram();
  let trades = 0;
  let burstTrades = 0;
  let bytes = 0;
  const publish = (subject: string, t: TradePrint) => {
    const data = packr.pack(t);
    bytes += data.length;
    nc.publish(subject, data);
  };
  try {
    out({ ev: 'ready', symbols: opts.symbols, catchupSymbols: cuNames });
    let rate = opts.rate;
    let period = rate > 0 ? 1000 / rate : Infinity;
    let start = performance.now();
    let startWall = now();
    /** Prints of this schedule sent so far. */
    let sent = 0;
    /** The burst in progress: how many, how many sent, its schedule and what it published per symbol. */
    let burst: { n: number; sent: number; start: number; startWall: number; at: number; symbols: BurstSymbol[] } | null = null;
    const burstPeriod = 1000 / opts.catchupRate;
    const endAt = performance.now() + opts.duration * 1000;
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearInterval(timer);
        rl?.close();
        signal.removeEventListener('abort', finish);
        resolve();
      };
      const finishBurst = (b: NonNullable<typeof burst>) => {
        burst = null;
        void nc.flush().then(
          () =>
            out({
              ev: 'burst',
              n: b.n,
              ms: Math.round((performance.now() - b.at) * 100) / 100,
              symbols: Object.fromEntries(cuNames.map((s, i) => [s, b.symbols[i]!])),
            } satisfies TradeBurstReport),
          (err: unknown) => out({ ev: 'error', msg: `burst: flush failed: ${(err as Error).message}` }),
        );
      };
      const step = () => {
        const mono = performance.now();
        if (mono >= endAt) return finish();
        if (rate > 0) {
          const due = Math.floor((mono - start) / period);
          // Bounded by the rate: about rate x paceMs / 1000 prints, plus what a stall let pile up.
          while (sent < due) {
            const scheduled = sent * period;
            const i = sim.pick();
            publish(subjects[i]!, sim.tapes.next(i, startWall + scheduled));
            sent++;
            trades++;
            lag.recordValue(Math.max(0, Math.round((mono - start - scheduled) * 1000)));
          }
        }
        const b = burst;
        if (b !== null) {
          const due = Math.min(b.n, Math.floor((mono - b.start) / burstPeriod) + 1);
          while (b.sent < due) {
            const i = b.sent % cuNames.length;
            const t = cuTapes.next(i, b.startWall + b.sent * burstPeriod);
            publish(cuSubjects[i]!, t);
            const bs = b.symbols[i]!;
            if (bs.n === 0) bs.first = t.id;
            bs.last = t.id;
            bs.n++;
            bs.crc = tradeDigest(bs.crc, t);
            b.sent++;
            burstTrades++;
          }
          if (b.sent === b.n) finishBurst(b);
        }
      };
      const timer = setInterval(step, opts.paceMs);
      signal.addEventListener('abort', finish, { once: true });
      const rl = opts.control ? createInterface({ input: process.stdin }) : null;
      rl?.on('line', (line) => {
        const [cmd, arg] = line.trim().split(/\s+/);
        if (cmd === 'rate') {
          const r = Number(arg);
          if (!(r >= 0 && r <= MAX_RATE)) return out({ ev: 'error', msg: `rate: expected a number >= 0 and <= ${MAX_RATE}, got ${JSON.stringify(arg)}` });
          rate = r;
          period = r > 0 ? 1000 / r : Infinity;
          start = performance.now();
          startWall = now();
          sent = 0;
          out({ ev: 'rate', rate });
        } else if (cmd === 'stats') {
          const stats: TradePublisherStats = { ev: 'stats', at: performance.now(), trades, burstTrades, bytes, rate, lagMs: summarize(lag) };
          lag.reset();
          out(stats);
        } else if (cmd === 'counts') {
          const published = Object.fromEntries(sim.symbols.map((s, i) => [s, sim.tapes.published(i)]));
          void nc.flush().then(
            () => out({ ev: 'counts', published } satisfies TradeCounts),
            (err: unknown) => out({ ev: 'error', msg: `counts: flush failed: ${(err as Error).message}` }),
          );
        } else if (cmd === 'burst') {
          const n = Number(arg);
          if (!(Number.isInteger(n) && n >= 1 && n <= 10_000_000)) return out({ ev: 'error', msg: `burst: expected an integer from 1 to 10000000, got ${JSON.stringify(arg)}` });
          if (burst !== null) return out({ ev: 'error', msg: 'burst: one is in progress' });
          const at = performance.now();
          burst = { n, sent: 0, start: at, startWall: now(), at, symbols: cuNames.map(() => ({ first: 0, last: 0, n: 0, crc: 0 })) };
        } else {
          out({ ev: 'error', msg: `unknown command ${JSON.stringify(line)}` });
        }
      });
      rl?.on('close', finish);
      if (signal.aborted) finish();
    });
    await nc.flush();
  } finally {
    if (!nc.isClosed()) await nc.close();
  }
}

runIfEntry(import.meta.url, {
  name: 'trade-publisher',
  usage: USAGE,
  parse: (argv) => parseTradePublisherArgs(argv),
  async run(opts, signal) {
    await runTradePublisher(opts, signal, (line) => process.stdout.write(JSON.stringify(line) + '\n'));
    return 0;
  },
});
