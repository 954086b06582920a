/**
 * Open-loop tick publisher for benchmarks: the market simulator's ticks
 * published to NATS on a fixed schedule, in the same contract as
 * `npm run feed:sim` (subject `md.sim.<token>`, standard MessagePack, symbol
 * in `s`), with two differences that matter when measuring:
 *
 * - Pacing every millisecond instead of every 10 ms. Each tick's `ts` is its
 *   scheduled time, so the wait for its batch is part of every latency
 *   measured downstream; a 1 ms period keeps that wait at 0.5 ms on average
 *   (the publisher's own lag is measured and reported).
 * - The rate can change while it runs (`rate N` on stdin), so one publisher
 *   and one warm gateway serve every step of a benchmark.
 *
 *   npm run load:publish -- --url nats://127.0.0.1:4222 --symbols 2000 --rate 10000 --duration 60
 *
 * With `--control`, stdin takes one command per line: `rate N` (ticks per
 * second, the schedule restarts from now), `stats` (prints a JSON line with
 * ticks published and the publish lag since the previous `stats`); end of
 * input stops the publisher. Lines printed to stdout are JSON objects with
 * an `ev` field.
 */
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { MarketSim, type SimTick } from '../src/feed/market-sim.js';
import { subjectToken } from '../feeds/sim.js';
import { makeWallClock, newHistogram, summarize, type LatencySummary } from './latency.js';
import { runIfEntry, UsageError, parseOptions } from '../src/cli-tool.js';

export interface PublisherOptions {
  url: string;
  symbols: number;
  rate: number;
  seed: number;
  zipf: number;
  /** Run length bound in seconds. */
  duration: number;
  /** Pacing timer period in milliseconds. */
  paceMs: number;
  /** Read commands from stdin. */
  control: boolean;
}

export const USAGE = `usage: npm run load:publish -- [options]

  --url URL        NATS server (default nats://127.0.0.1:4222)
  --symbols N      universe size, 1 to 1000000 (default 2000)
  --rate N         ticks per second, > 0 and <= 1000000 (default 10000)
  --seed N         simulator seed (default 1)
  --zipf X         Zipf exponent of activity across symbols (default 1.1)
  --duration S     seconds to run at most, > 0 and <= 3600 (default 60)
  --pace-ms N      pacing timer period, 1 to 10 ms (default 1)
  --control        read commands from stdin: "rate N", "stats"; end of input stops
  --help           show this help`;

export { UsageError };

const MAX_RATE = 1_000_000;
const WARM_CHUNK = 10_000;

function num(name: string, raw: string | undefined, def: string, expected: string, ok: (n: number) => boolean): number {
  const s = raw ?? def;
  const n = s.trim() === '' ? NaN : Number(s);
  if (!ok(n)) throw new UsageError(`--${name}: expected ${expected}, got ${JSON.stringify(s)}`);
  return n;
}

export function parsePublisherArgs(argv: readonly string[]): PublisherOptions | 'help' {
  const v = parseOptions(argv, {
    url: { type: 'string' },
    symbols: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    zipf: { type: 'string' },
    duration: { type: 'string' },
    'pace-ms': { type: 'string' },
    control: { type: 'boolean', default: false },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  return {
    url: v.url ?? 'nats://127.0.0.1:4222',
    symbols: num('symbols', v.symbols, '2000', 'an integer from 1 to 1000000', (n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000),
    rate: num('rate', v.rate, '10000', `a number > 0 and <= ${MAX_RATE}`, (n) => n > 0 && n <= MAX_RATE),
    seed: num('seed', v.seed, '1', 'a safe integer', Number.isSafeInteger),
    zipf: num('zipf', v.zipf, '1.1', 'a finite number >= 0', (n) => Number.isFinite(n) && n >= 0),
    duration: num('duration', v.duration, '60', 'seconds, > 0 and <= 3600', (n) => n > 0 && n <= 3600),
    paceMs: num('pace-ms', v['pace-ms'], '1', 'an integer from 1 to 10', (n) => Number.isInteger(n) && n >= 1 && n <= 10),
    control: v.control ?? false,
  };
}

export interface PublisherStats {
  ev: 'stats';
  /** Ticks published since start, warm-up included. */
  published: number;
  rate: number;
  /** Publish time minus scheduled time, since the previous stats. */
  lagMs: LatencySummary;
}

/** Runs until the duration bound, end of stdin (with --control) or a signal. */
export async function runPublisher(opts: PublisherOptions, signal: AbortSignal, out: (line: object) => void): Promise<void> {
  const sim = new MarketSim({ symbols: opts.symbols, seed: opts.seed, zipf: opts.zipf });
  const subjects = new Map<string, string>();
  for (const s of sim.symbols) subjects.set(s, `md.sim.${subjectToken(s)}`);
  // Standard MessagePack only, as feeds/sim.ts.
  const packr = new Packr({ useRecords: false, variableMapSize: true });
  const nc = await connect({ servers: opts.url, name: 'tickgate-bench-publisher', timeout: 5000 });
  const now = makeWallClock();
  const lag = newHistogram();
  let published = 0;
  const publish = (t: SimTick) => {
    nc.publish(subjects.get(t.s)!, packr.pack(t));
    published++;
  };
  try {
    const t0 = now();
    for (let rank = 0; rank < sim.symbols.length; rank++) {
      publish(sim.nextFor(rank, t0));
      if (published % WARM_CHUNK === 0) await nc.flush();
    }
    await nc.flush();
    out({ ev: 'ready', warm: published });

    let rate = opts.rate;
    let period = 1000 / rate;
    let start = performance.now();
    let startWall = now();
    let sent = 0;
    const endAt = performance.now() + opts.duration * 1000;
    await new Promise<void>((resolve) => {
      const finish = () => {
        clearInterval(timer);
        rl?.close();
        signal.removeEventListener('abort', finish);
        resolve();
      };
      const step = () => {
        const mono = performance.now();
        if (mono >= endAt) return finish();
        const due = Math.floor((mono - start) / period);
        if (due <= sent) return;
        // Bounded by the rate: at most rate x paceMs / 1000 ticks, plus what a stall let pile up.
        while (sent < due) {
          sent++;
          const scheduled = sent * period;
          publish(sim.next(startWall + scheduled));
          lag.recordValue(Math.max(0, Math.round((mono - start - scheduled) * 1000)));
        }
      };
      const timer = setInterval(step, opts.paceMs);
      signal.addEventListener('abort', finish, { once: true });
      const rl = opts.control ? createInterface({ input: process.stdin }) : null;
      rl?.on('line', (line) => {
        const [cmd, arg] = line.trim().split(/\s+/);
        if (cmd === 'rate') {
          const r = Number(arg);
          if (!(r > 0 && r <= MAX_RATE)) return out({ ev: 'error', msg: `rate: expected a number > 0 and <= ${MAX_RATE}, got ${JSON.stringify(arg)}` });
          rate = r;
          period = 1000 / rate;
          start = performance.now();
          startWall = now();
          sent = 0;
          out({ ev: 'rate', rate });
        } else if (cmd === 'stats') {
          const stats: PublisherStats = { ev: 'stats', published, rate, lagMs: summarize(lag) };
          lag.reset();
          out(stats);
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
  name: 'load:publish',
  usage: USAGE,
  parse: (argv) => parsePublisherArgs(argv),
  async run(opts, signal) {
    await runPublisher(opts, signal, (line) => process.stdout.write(JSON.stringify(line) + '\n'));
    return 0;
  },
});
