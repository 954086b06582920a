/**
 * Market simulator publisher: ticks from {@link MarketSim} published to NATS
 * at a steady rate, in the ingest contract the gateway's default `sim` feed
 * reads (subject `md.sim.<token>`, symbol in payload field `s`).
 *
 *   npm run feed:sim -- --rate 5000 --symbols 2000 --duration 30
 *
 * Pacing is open-loop: tick k of the run is due at t0 + k / rate, a 10 ms
 * timer publishes whatever is due, and each tick's `ts` is its scheduled time,
 * not the time it left. A publisher that falls behind therefore shows up as
 * latency downstream instead of silently slowing the feed, and the timer
 * leaves the core free (a setImmediate loop would take all of it). The cost:
 * a tick waits up to one timer period (10 ms, 5 ms on average) for its batch,
 * and end-to-end latency measured from `ts` includes that wait.
 */
import { performance } from 'node:perf_hooks';
import { jetstreamManager, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { MarketSim, type SimTick } from '../src/feed/market-sim.js';
import { countAndDuration, runIfEntry, UsageError, numberOption as num, parseOptions } from '../src/cli-tool.js';

export { UsageError };

/** Effective options of one simulator run. */
export interface SimOptions {
  /** NATS server URL(s), comma-separated in the CLI. */
  url: string;
  /** Universe size. */
  symbols: number;
  /** Ticks per second after the warm-up burst. */
  rate: number;
  /** MarketSim seed: the same seed replays the same market. */
  seed: number;
  /** Zipf exponent of activity across symbols (0 = uniform). */
  zipf: number;
  codec: 'msgpack' | 'json';
  /** Subject prefix; a tick goes to `<prefix>.<token>`. */
  prefix: string;
  /** Run length in seconds; null = unbounded (only with an explicit `--duration 0`, or when `count` bounds the run). */
  duration: number | null;
  /** Total ticks to publish, warm-up included; null = no count bound. */
  count: number | null;
  /** First publish one full tick per symbol, so every symbol has a snapshot from the start. */
  warm: boolean;
  /**
   * JetStream stream to create (if missing) over `<prefix>.>`, keeping the
   * last message per subject, for gateways' warm start; every tick then
   * carries the symbol's full state so that last message is a snapshot.
   * null: plain NATS, ticks carry only what changed.
   */
  jetstream: string | null;
}

/** What a run did; printed as one JSON line at the end of the CLI. */
export interface SimSummary {
  /** Ticks published, warm-up included. */
  published: number;
  /** Of which warm-up ticks. */
  warm: number;
  seconds: number;
  /** published / seconds. */
  rate: number;
  /** Largest delay between a tick's scheduled time and its publication (timer jitter, or a publisher that cannot keep up). */
  maxLagMs: number;
  stoppedBy: 'count' | 'duration' | 'signal';
}

export const USAGE = `usage: npm run feed:sim -- [options]

  --url URL          NATS server(s), comma-separated (default $NATS_URL or nats://127.0.0.1:4222)
  --symbols N        universe size, 1 to 1000000 (default 500)
  --rate N           ticks per second, > 0 and <= 1000000 (default 2000)
  --seed N           simulator seed, a safe integer (default 1)
  --zipf X           Zipf exponent of activity across symbols, >= 0 (default 1.1)
  --codec C          msgpack or json (default msgpack)
  --prefix P         subject prefix (default md.sim); subject <prefix>.<symbol token>
  --duration S       seconds to run (default 60 unless --count is given; 0 = until stopped)
  --count N          ticks to publish, warm-up included
  --no-warm          skip the warm-up (one full tick per symbol, published first)
  --jetstream NAME   create JetStream stream NAME over <prefix>.> keeping the last
                     message per subject (if missing), and publish every tick with
                     the symbol's full state, for gateways' warm start
  --help             show this help

Stops at the first bound reached, or on SIGINT/SIGTERM; prints a JSON summary to stderr.`;

const DEFAULT_URL = 'nats://127.0.0.1:4222';
const MAX_SYMBOLS = 1_000_000;
const MAX_RATE = 1_000_000;
/** Timer period of the pacing loop: small enough for smooth batches, large enough to cost nothing when idle. */
const TICK_MS = 10;
/** Warm-up ticks between flushes, so a large universe does not queue megabytes in the client at once. */
const WARM_CHUNK = 10_000;

// Standard MessagePack only (no records, no extensions): any decoder reads it.
const packr = new Packr({ useRecords: false, variableMapSize: true });
const utf8 = new TextEncoder();

/**
 * The subject token for a symbol: '.', '*', '>' and whitespace cannot appear
 * in a NATS token and become '_'; '/' is kept. The exact symbol travels in the
 * payload, so two symbols sharing a token stay distinct.
 */
export function subjectToken(symbol: string): string {
  return symbol.replace(/[.*>\s]/g, '_');
}

/** Parses CLI arguments (without node and script). Throws {@link UsageError} naming the option. */
export function parseSimArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): SimOptions | 'help' {
  const values = parseOptions(argv, {
    url: { type: 'string' },
    symbols: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    zipf: { type: 'string' },
    codec: { type: 'string' },
    prefix: { type: 'string' },
    duration: { type: 'string' },
    count: { type: 'string' },
    warm: { type: 'boolean', default: true },
    jetstream: { type: 'string' },
    help: { type: 'boolean' },
  }, true);
  if (values.help) return 'help';

  const url = values.url ?? (env['NATS_URL'] || DEFAULT_URL);
  for (const u of url.split(',')) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s/]+/.test(u.trim()) && !/^[^\s/:]+:\d+$/.test(u.trim())) {
      throw new UsageError(`--url: expected NATS URLs such as nats://127.0.0.1:4222, got ${JSON.stringify(url)}`);
    }
  }
  const symbols = num('symbols', values.symbols ?? '500', `an integer from 1 to ${MAX_SYMBOLS}`, (n) => Number.isInteger(n) && n >= 1 && n <= MAX_SYMBOLS);
  const rate = num('rate', values.rate ?? '2000', `ticks per second, a number > 0 and <= ${MAX_RATE}`, (n) => n > 0 && n <= MAX_RATE);
  const seed = num('seed', values.seed ?? '1', 'a safe integer', Number.isSafeInteger);
  const zipf = num('zipf', values.zipf ?? '1.1', 'a finite number >= 0', (n) => Number.isFinite(n) && n >= 0);
  const codec = values.codec ?? 'msgpack';
  if (codec !== 'msgpack' && codec !== 'json') {
    throw new UsageError(`--codec: expected msgpack or json, got ${JSON.stringify(codec)}`);
  }
  const prefix = values.prefix ?? 'md.sim';
  if (!/^[^\s*>.]+(\.[^\s*>.]+)*$/.test(prefix)) {
    throw new UsageError(`--prefix: expected a NATS subject without wildcards, such as md.sim, got ${JSON.stringify(prefix)}`);
  }
  const { count, duration } = countAndDuration(values);
  const jetstream = values.jetstream ?? null;
  if (jetstream !== null && !/^[A-Za-z0-9_-]{1,64}$/.test(jetstream)) {
    throw new UsageError(`--jetstream: expected a stream name of A-Z a-z 0-9 _ -, got ${JSON.stringify(jetstream)}`);
  }
  return { url, symbols, rate, seed, zipf, codec, prefix, duration, count, warm: values.warm ?? true, jetstream };
}

/**
 * Publishes simulated ticks until the count or duration bound is reached or
 * `signal` aborts, then flushes and closes the connection. Rejects if NATS
 * cannot be reached or the connection closes with an error mid-run.
 */
export async function runSim(opts: SimOptions, signal?: AbortSignal): Promise<SimSummary> {
  const sim = new MarketSim({ symbols: opts.symbols, seed: opts.seed, zipf: opts.zipf });
  // Subjects resolved once per symbol, not per tick.
  const subjects = new Map<string, string>();
  for (const s of sim.symbols) subjects.set(s, `${opts.prefix}.${subjectToken(s)}`);
  const pack: (t: SimTick) => Uint8Array =
    opts.codec === 'msgpack' ? (t) => packr.pack(t) : (t) => utf8.encode(JSON.stringify(t));
  // For a last-message-per-subject stream every message must be a full snapshot.
  const encode: (t: SimTick) => Uint8Array =
    opts.jetstream === null ? pack : (t) => pack({ ...sim.stateOf(t.s)!, seq: t.seq });

  const nc: NatsConnection = await connect({
    servers: opts.url.split(',').map((u) => u.trim()),
    name: 'tickgate-feed-sim',
    timeout: 5000,
  });
  if (opts.jetstream !== null) await ensureStream(nc, opts.jetstream, `${opts.prefix}.>`);
  const limit = opts.count ?? Infinity;
  let published = 0;
  const publish = (tick: SimTick) => {
    nc.publish(subjects.get(tick.s)!, encode(tick));
    published++;
  };

  try {
    const startMono = performance.now();
    const t0 = Date.now();
    let warm = 0;
    if (opts.warm) {
      const n = Math.min(sim.symbols.length, limit);
      for (let rank = 0; rank < n && !signal?.aborted; rank++) {
        publish(sim.nextFor(rank, t0));
        if (++warm % WARM_CHUNK === 0) await nc.flush();
      }
    }

    // Paced phase: tick k (1-based) is due at pacedStart + k * period.
    const period = 1000 / opts.rate;
    const pacedStartMono = performance.now();
    const pacedStartEpoch = t0 + (pacedStartMono - startMono);
    const pacedLimit = opts.duration === null ? Infinity : Math.floor(opts.duration * opts.rate);
    let paced = 0;
    let maxLagMs = 0;

    const stoppedBy = await new Promise<SimSummary['stoppedBy']>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (why: SimSummary['stoppedBy'] | Error) => {
        clearInterval(timer);
        signal?.removeEventListener('abort', onAbort);
        if (why instanceof Error) reject(why);
        else resolve(why);
      };
      const onAbort = () => finish('signal');
      const step = () => {
        if (published >= limit) return finish('count');
        if (paced >= pacedLimit) return finish('duration');
        const elapsed = performance.now() - pacedStartMono;
        const due = Math.min(Math.floor(elapsed / period), pacedLimit, paced + (limit - published));
        if (due > paced) maxLagMs = Math.max(maxLagMs, elapsed - (paced + 1) * period);
        while (paced < due) {
          paced++;
          publish(sim.next(pacedStartEpoch + paced * period));
        }
        if (published >= limit) finish('count');
        else if (paced >= pacedLimit) finish('duration');
      };
      if (signal?.aborted) return finish('signal');
      signal?.addEventListener('abort', onAbort, { once: true });
      void nc.closed().then((err) => finish(err ?? new Error('NATS connection closed')));
      timer = setInterval(step, TICK_MS);
      step();
    });

    // Everything published has reached the server once flush returns.
    await nc.flush();
    const seconds = (performance.now() - startMono) / 1000;
    return {
      published,
      warm,
      seconds: round(seconds, 3),
      rate: seconds > 0 ? round(published / seconds, 1) : 0,
      maxLagMs: round(maxLagMs, 1),
      stoppedBy,
    };
  } finally {
    if (!nc.isClosed()) await nc.close();
  }
}

/**
 * Creates the warm-start stream if it does not exist: file storage, the last
 * message of each subject kept (older ones discarded), so it holds exactly
 * one snapshot per symbol whatever the tick rate.
 */
export async function ensureStream(nc: NatsConnection, name: string, subject: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    const info = await jsm.streams.info(name);
    if (!info.config.subjects?.includes(subject)) {
      throw new Error(`stream ${name} exists but does not cover ${subject} (subjects: ${(info.config.subjects ?? []).join(', ')})`);
    }
  } catch (err) {
    if (!/not found/i.test((err as Error).message)) throw err;
    await jsm.streams.add({
      name,
      subjects: [subject],
      max_msgs_per_subject: 1,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
    });
  }
}

function round(x: number, digits: number): number {
  const k = 10 ** digits;
  return Math.round(x * k) / k;
}

runIfEntry(import.meta.url, {
  name: 'feed:sim',
  usage: USAGE,
  parse: (argv) => parseSimArgs(argv),
  async run(opts, signal) {
    process.stderr.write(JSON.stringify(await runSim(opts, signal)) + '\n');
    return 0;
  },
});
