/**
 * Open-loop order-book publisher for benchmarks: the churn of
 * load/book-sim.ts published to NATS as a book feed (subject
 * `book.<symbol>`, standard MessagePack `{s, bids, asks, snapshot?, seq, ts}`),
 * paced in level changes per second.
 *
 * It starts with one snapshot per book (the gateway refuses changes before
 * one), then publishes change messages on a fixed schedule: level change k
 * is due at t0 + k / rate, a message is due with its first level change and
 * carries that time as `ts`, and in the sizes of the levels it sets (see
 * load/book-sim.ts), whether or not it left on time: a stalled publisher,
 * bus, gateway or client shows as latency downstream, never as a missing
 * sample. A 1 ms timer publishes what is due (never a busy loop: on a
 * 2-core machine that would take a core from the server under test).
 *
 *   npm run load:book-publish -- --url nats://127.0.0.1:4222 --rate 50000 --duration 60
 *
 * With `--control`, stdin takes one command per line: `rate N` (level
 * changes per second; the schedule restarts from now), `stats` (a JSON
 * line with what was published and the publish lag since the previous
 * `stats`); end of input stops it. Lines printed to stdout are JSON objects
 * with an `ev` field.
 */
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { runIfEntry, UsageError, parseOptions } from '../src/cli-tool.js';
import { BOOK_SIM_DEFAULTS, BookSim, levelCount, type BookMessage } from './book-sim.js';
import { makeWallClock, newHistogram, summarize, type LatencySummary } from './latency.js';

export interface BookPublisherOptions {
  url: string;
  books: number;
  levels: number;
  /** Level changes per second. */
  rate: number;
  zipf: number;
  levelsPerMessage: number;
  seed: number;
  subjectPrefix: string;
  duration: number;
  paceMs: number;
  control: boolean;
}

export const USAGE = `usage: npm run load:book-publish -- [options]

  --url URL               NATS server (default nats://127.0.0.1:4222)
  --books N               order books, 1 to 10000 (default ${BOOK_SIM_DEFAULTS.books})
  --levels N              levels per side each book hovers around (default ${BOOK_SIM_DEFAULTS.levels})
  --rate N                level changes per second, > 0 and <= 5000000 (default 50000)
  --zipf X                Zipf exponent of activity across books (default ${BOOK_SIM_DEFAULTS.zipf})
  --levels-per-message X  mean level changes per message, >= 1 (default ${BOOK_SIM_DEFAULTS.levelsPerMessage})
  --seed N                simulator seed (default ${BOOK_SIM_DEFAULTS.seed})
  --subject-prefix P      subjects are P.<symbol> (default book)
  --duration S            seconds to run at most, > 0 and <= 3600 (default 60)
  --pace-ms N             pacing timer period, 1 to 10 ms (default 1)
  --control               read commands from stdin: "rate N", "stats"; end of input stops
  --help                  show this help`;

export { UsageError };

const MAX_RATE = 5_000_000;

function num(name: string, raw: string | undefined, def: string, expected: string, ok: (n: number) => boolean): number {
  const s = raw ?? def;
  const n = s.trim() === '' ? NaN : Number(s);
  if (!ok(n)) throw new UsageError(`--${name}: expected ${expected}, got ${JSON.stringify(s)}`);
  return n;
}

export function parseBookPublisherArgs(argv: readonly string[]): BookPublisherOptions | 'help' {
  const v = parseOptions(argv, {
    url: { type: 'string' },
    books: { type: 'string' },
    levels: { type: 'string' },
    rate: { type: 'string' },
    zipf: { type: 'string' },
    'levels-per-message': { type: 'string' },
    seed: { type: 'string' },
    'subject-prefix': { type: 'string' },
    duration: { type: 'string' },
    'pace-ms': { type: 'string' },
    control: { type: 'boolean', default: false },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  const prefix = v['subject-prefix'] ?? 'book';
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) throw new UsageError(`--subject-prefix: expected NATS subject tokens such as "book", got ${JSON.stringify(prefix)}`);
  return {
    url: v.url ?? 'nats://127.0.0.1:4222',
    books: num('books', v.books, String(BOOK_SIM_DEFAULTS.books), 'an integer from 1 to 10000', (n) => Number.isInteger(n) && n >= 1 && n <= 10_000),
    levels: num('levels', v.levels, String(BOOK_SIM_DEFAULTS.levels), 'an integer from 2 to 1000', (n) => Number.isInteger(n) && n >= 2 && n <= 1000),
    rate: num('rate', v.rate, '50000', `a number > 0 and <= ${MAX_RATE}`, (n) => n > 0 && n <= MAX_RATE),
    zipf: num('zipf', v.zipf, String(BOOK_SIM_DEFAULTS.zipf), 'a number from 0 to 5', (n) => n >= 0 && n <= 5),
    levelsPerMessage: num('levels-per-message', v['levels-per-message'], String(BOOK_SIM_DEFAULTS.levelsPerMessage), 'a number from 1 to 20', (n) => n >= 1 && n <= 20),
    seed: num('seed', v.seed, String(BOOK_SIM_DEFAULTS.seed), 'a safe integer', Number.isSafeInteger),
    subjectPrefix: prefix,
    duration: num('duration', v.duration, '60', 'seconds, > 0 and <= 3600', (n) => n > 0 && n <= 3600),
    paceMs: num('pace-ms', v['pace-ms'], '1', 'an integer from 1 to 10', (n) => Number.isInteger(n) && n >= 1 && n <= 10),
    control: v.control ?? false,
  };
}

export interface BookPublisherStats {
  ev: 'stats';
  /** When the counts were read, on the publisher's monotonic clock (ms): rates over its own time, whatever delays the reply. */
  at: number;
  /** Since start: snapshot messages, change messages and the level changes they carried (snapshots not counted). */
  snapshots: number;
  messages: number;
  levelChanges: number;
  bytes: number;
  /** Level changes per second asked for. */
  rate: number;
  /** Publish time minus scheduled time, since the previous stats. */
  lagMs: LatencySummary;
}

/** Runs until the duration bound, end of stdin (with --control) or a signal. */
export async function runBookPublisher(opts: BookPublisherOptions, signal: AbortSignal, out: (line: object) => void): Promise<void> {
  const sim = new BookSim({ books: opts.books, levels: opts.levels, zipf: opts.zipf, levelsPerMessage: opts.levelsPerMessage, seed: opts.seed });
  const subjects = sim.symbols.map((s) => `${opts.subjectPrefix}.${s}`);
  const index = new Map(sim.symbols.map((s, i) => [s, i]));
  // Standard MessagePack only, as any feed: maps, float64 sizes and prices.
  const packr = new Packr({ useRecords: false, variableMapSize: true });
  const nc = await connect({ servers: opts.url, name: 'tickgate-bench-book-publisher', timeout: 5000 });
  const now = makeWallClock();
  const lag = newHistogram();
  let snapshots = 0;
  let messages = 0;
  let levelChanges = 0;
  let bytes = 0;
  const publish = (m: BookMessage) => {
    const data = packr.pack(m);
    bytes += data.length;
    nc.publish(subjects[index.get(m.s)!]!, data);
  };
  try {
    const t0 = now();
    for (let i = 0; i < sim.symbols.length; i++) {
      publish(sim.snapshot(i, t0));
      snapshots++;
      if (snapshots % 50 === 0) await nc.flush();
    }
    await nc.flush();
    out({ ev: 'ready', books: snapshots });

    let rate = opts.rate;
    let period = 1000 / rate;
    let start = performance.now();
    let startWall = now();
    /** Level changes of this schedule sent so far. */
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
        // Bounded by the rate: about rate x paceMs / 1000 level changes, plus what a stall let pile up.
        while (sent < due) {
          const scheduled = sent * period;
          const m = sim.next(startWall + scheduled);
          publish(m);
          const n = levelCount(m);
          sent += n;
          messages++;
          levelChanges += n;
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
          const stats: BookPublisherStats = { ev: 'stats', at: performance.now(), snapshots, messages, levelChanges, bytes, rate, lagMs: summarize(lag) };
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
  name: 'load:book-publish',
  usage: USAGE,
  parse: (argv) => parseBookPublisherArgs(argv),
  async run(opts, signal) {
    await runBookPublisher(opts, signal, (line) => process.stdout.write(JSON.stringify(line) + '\n'));
    return 0;
  },
});
