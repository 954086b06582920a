/**
 * Publishes a capture (recorded by `feed:record`; format: see capture.ts and
 * feeds/README.md) to NATS again, at its original pace, a multiple of it, or
 * as fast as possible.
 *
 *   npm run feed:replay -- --in capture.ndjson.gz --speed 2
 *
 * Each message goes to its recorded subject (behind `--subject-prefix` when
 * given) with its payload re-encoded in its recorded codec. With
 * `--rewrite-ts` (the default) a numeric `ts` field of a map payload, and of
 * each map in its `trades` array (a batch of trade prints), is set to the
 * replay wall clock at which the message was due, so end-to-end latency
 * measured from `ts` stays meaningful; that is the only change made to a
 * payload. Payloads recorded as bytes are published unchanged. Records go
 * out in capture order from one connection, so order-book messages
 * (snapshots and level changes) keep their per-book `seq` sequence and
 * trade prints their order.
 *
 * Pacing: the first record is due at once and record k at (t_k - t_1) /
 * speed after it. The loop sleeps on a timer until the next record is due
 * and then publishes everything due, so a dense capture goes out in batches
 * of about a millisecond and the process idles in between (a setImmediate
 * loop would take a whole core). `--speed max` publishes without waiting,
 * in batches of BATCH, and flushes every FLUSH_EVERY messages, which bounds
 * what the client buffers.
 */
import { statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { badNatsUrl, encodePayload, readCapture, round, type PayloadMap } from './capture.js';
import { runIfEntry, UsageError, numberOption as num, parseOptions } from '../src/cli-tool.js';


/** Effective options of one replay. */
export interface ReplayOptions {
  /** NATS server URL(s), comma-separated. */
  url: string;
  /** Capture file to read. */
  in: string;
  /** Multiple of the recorded pace, or 'max' for as fast as possible. */
  speed: number | 'max';
  /** Seconds of replay; null = the whole capture (refused if that takes over MAX_REPLAY_SECONDS at `speed`). */
  duration: number | null;
  /** Messages to publish; null = no count bound. */
  count: number | null;
  /** Prepended to each recorded subject as `<prefix>.<subject>`; null = recorded subjects. */
  subjectPrefix: string | null;
  /** Replace a numeric `ts` in map payloads with the replay wall clock. */
  rewriteTs: boolean;
}

/** What a replay did; printed as one JSON line at the end of the CLI. */
export interface ReplaySummary {
  /** Messages published. */
  published: number;
  seconds: number;
  /** published / seconds. */
  rate: number;
  /** Capture time between the first and the last message published, ms. */
  spanMs: number;
  /** Largest delay of a publication after its due time; null at speed max. */
  maxLagMs: number | null;
  stoppedBy: 'end' | 'count' | 'duration' | 'signal';
}

export const USAGE = `usage: npm run feed:replay -- --in FILE [options]

  --url URL            NATS server(s), comma-separated (default $NATS_URL or nats://127.0.0.1:4222)
  --in FILE            capture to publish (required), as written by feed:record
  --speed X            1 = recorded pace (default), 2 = twice as fast, ..., or max
  --duration S         seconds to replay (default: the whole capture)
  --count N            messages to publish
  --subject-prefix P   publish to <P>.<recorded subject> instead of the recorded subject
  --rewrite-ts B       true (default) or false: set a numeric ts field of map
                       payloads, and of the maps in a trades array (trade
                       batches), to the replay wall clock (the only change made)
  --no-rewrite-ts      same as --rewrite-ts false
  --help               show this help

Without --duration, the capture is checked up to --count before anything is
published, and one that would replay for over 3600 s at --speed is refused.
Stops at the end of the capture, the first bound reached, or on SIGINT/SIGTERM;
prints a JSON summary to stderr.`;

const DEFAULT_URL = 'nats://127.0.0.1:4222';
/** Longest replay started without an explicit --duration. */
export const MAX_REPLAY_SECONDS = 3600;
const MAX_SPEED = 1_000_000;
/** Most messages handed to the NATS client at once. */
const BATCH = 256;
/** Messages between flushes (a round trip to the server), which bounds what the client buffers at speed max. */
const FLUSH_EVERY = 4096;

/** Parses CLI arguments (without node and script). Throws {@link UsageError} naming the option. */
export function parseReplayArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ReplayOptions | 'help' {
  const values = parseOptions(argv, {
    url: { type: 'string' },
    in: { type: 'string' },
    speed: { type: 'string' },
    duration: { type: 'string' },
    count: { type: 'string' },
    'subject-prefix': { type: 'string' },
    'rewrite-ts': { type: 'string' },
    'no-rewrite-ts': { type: 'boolean' },
    help: { type: 'boolean' },
  });
  if (values.help) return 'help';

  const url = values.url ?? (env['NATS_URL'] || DEFAULT_URL);
  const badUrl = badNatsUrl(url);
  if (badUrl !== null) throw new UsageError(badUrl);

  const file = values.in;
  if (file === undefined || file === '') throw new UsageError('--in: required, the capture file to publish');
  let isFile = false;
  try {
    isFile = statSync(file).isFile();
  } catch {
    // reported below
  }
  if (!isFile) throw new UsageError(`--in: ${JSON.stringify(file)} is not a readable file`);

  const rawSpeed = values.speed ?? '1';
  const speed =
    rawSpeed === 'max'
      ? 'max'
      : num('speed', rawSpeed, `max or a multiple of the recorded pace, a number > 0 and <= ${MAX_SPEED}`, (n) => n > 0 && n <= MAX_SPEED);
  const duration =
    values.duration === undefined
      ? null
      : num('duration', values.duration, 'seconds, a finite number > 0', (n) => Number.isFinite(n) && n > 0);
  const count =
    values.count === undefined ? null : num('count', values.count, 'a positive integer', (n) => Number.isSafeInteger(n) && n >= 1);

  const prefix = values['subject-prefix'] ?? null;
  if (prefix !== null && !/^[^\s*>.]+(\.[^\s*>.]+)*$/.test(prefix)) {
    throw new UsageError(`--subject-prefix: expected a NATS subject without wildcards, such as replay, got ${JSON.stringify(prefix)}`);
  }
  let rewriteTs = true;
  const rawRewrite = values['rewrite-ts'];
  if (rawRewrite !== undefined) {
    if (rawRewrite !== 'true' && rawRewrite !== 'false') {
      throw new UsageError(`--rewrite-ts: expected true or false, got ${JSON.stringify(rawRewrite)}`);
    }
    rewriteTs = rawRewrite === 'true';
  }
  if (values['no-rewrite-ts']) {
    if (rawRewrite === 'true') throw new UsageError('--no-rewrite-ts: contradicts --rewrite-ts true');
    rewriteTs = false;
  }
  return { url, in: file, speed, duration, count, subjectPrefix: prefix, rewriteTs };
}

/**
 * Reads the capture up to `count` records: every line is checked (a
 * malformed one rejects with a CaptureFormatError before anything is
 * published), and at a paced speed a replay longer than MAX_REPLAY_SECONDS
 * is refused with a {@link UsageError} naming --duration.
 */
async function precheck(opts: ReplayOptions): Promise<void> {
  const limit = opts.count ?? Infinity;
  const maxSpan = opts.speed === 'max' ? Infinity : MAX_REPLAY_SECONDS * 1000 * opts.speed;
  let first: number | undefined;
  let n = 0;
  for await (const r of readCapture(opts.in)) {
    first ??= r.t;
    if (r.t - first > maxSpan) {
      throw new UsageError(
        `--duration: at --speed ${String(opts.speed)} this capture replays for more than ${MAX_REPLAY_SECONDS} s ` +
          `(line ${r.line} is due after ${round((r.t - first) / 1000 / (opts.speed as number), 1)} s); ` +
          'give --duration to replay it, or a part of it, anyway',
      );
    }
    if (++n >= limit) break;
  }
}

/**
 * Publishes the capture `opts.in` until its end, the count or duration bound,
 * or until `signal` aborts; then flushes and closes the connection. Rejects
 * with a CaptureFormatError for a malformed capture (naming the line),
 * {@link UsageError} for a capture too long to replay without --duration,
 * and with the connection's error if NATS cannot be reached or the
 * connection closes mid-run.
 */
export async function replayCapture(opts: ReplayOptions, signal?: AbortSignal): Promise<ReplaySummary> {
  if (opts.duration === null) await precheck(opts);

  const nc: NatsConnection = await connect({
    servers: opts.url.split(',').map((u) => u.trim()),
    name: 'tickgate-feed-replay',
    timeout: 5000,
  });
  // A connection that closes mid-run wakes a sleeping loop and ends the replay with its error.
  const lost = new AbortController();
  let lostError = null as Error | null;
  void nc.closed().then((err) => {
    lostError = err ?? new Error('NATS connection closed');
    lost.abort();
  });
  const stop = signal ? AbortSignal.any([signal, lost.signal]) : lost.signal;

  const prefix = opts.subjectPrefix === null ? '' : `${opts.subjectPrefix}.`;
  const limit = opts.count ?? Infinity;
  const durationMs = opts.duration === null ? Infinity : opts.duration * 1000;
  const speed = opts.speed === 'max' ? null : opts.speed;
  // Messages due but not yet handed to the client. The client writes to the
  // socket on a microtask after the first publish, and reading the capture
  // yields to microtasks after every line: publishing line by line would cost
  // one socket write per message, publishing a batch costs one per batch.
  const batchSubjects: string[] = [];
  const batchPayloads: Uint8Array[] = [];
  let published = 0;
  let flushedAt = 0;
  const send = () => {
    for (let i = 0; i < batchSubjects.length; i++) nc.publish(batchSubjects[i]!, batchPayloads[i]!);
    published += batchSubjects.length;
    batchSubjects.length = 0;
    batchPayloads.length = 0;
  };
  let queued = 0;
  let firstT: number | undefined;
  let lastT = 0;
  let maxLagMs = 0;
  let stoppedBy: ReplaySummary['stoppedBy'] = 'end';
  const startMono = performance.now();
  const startEpoch = Date.now();

  try {
    for await (const rec of readCapture(opts.in)) {
      if (stop.aborted) break;
      firstT ??= rec.t;
      let elapsed = performance.now() - startMono;
      let stamp: number;
      if (speed !== null) {
        const due = (rec.t - firstT) / speed;
        if (due > durationMs) {
          stoppedBy = 'duration';
          break;
        }
        if (due > elapsed) {
          send();
          try {
            await sleep(due - elapsed, undefined, { signal: stop });
          } catch {
            break;
          }
          elapsed = performance.now() - startMono;
        }
        maxLagMs = Math.max(maxLagMs, elapsed - due);
        // Stamped with the time it was due, like feed:sim: a late publication shows as latency downstream.
        stamp = startEpoch + due;
      } else {
        if (elapsed >= durationMs) {
          stoppedBy = 'duration';
          break;
        }
        stamp = startEpoch + elapsed;
      }
      if (opts.rewriteTs && rec.codec !== 'bytes') rewriteTs(rec.data, stamp);
      batchSubjects.push(prefix + rec.subject);
      batchPayloads.push(encodePayload(rec));
      lastT = rec.t;
      if (++queued >= limit) {
        stoppedBy = 'count';
        break;
      }
      if (batchSubjects.length >= BATCH) {
        send();
        if (published - flushedAt >= FLUSH_EVERY) {
          flushedAt = published;
          await nc.flush();
        }
      }
    }
    if (lostError) throw lostError;
    send();
    if (stop.aborted) stoppedBy = 'signal';
    // Everything published has reached the server once flush returns.
    await nc.flush();
  } finally {
    if (!nc.isClosed()) await nc.close().catch(() => undefined);
  }
  const seconds = (performance.now() - startMono) / 1000;
  return {
    published,
    seconds: round(seconds, 3),
    rate: seconds > 0 ? round(published / seconds, 1) : 0,
    spanMs: firstT === undefined ? 0 : round(lastT - firstT, 3),
    maxLagMs: speed === null ? null : round(maxLagMs, 1),
    stoppedBy,
  };
}

/** Sets a numeric `ts` of the payload, and of each map in its `trades` array (a trade batch: its prints' times), to `stamp`. */
function rewriteTs(data: PayloadMap, stamp: number): void {
  if (typeof data['ts'] === 'number') data['ts'] = stamp;
  const trades = data['trades'];
  if (!Array.isArray(trades)) return;
  for (const t of trades) {
    if (t !== null && typeof t === 'object' && !Array.isArray(t) && typeof (t as PayloadMap)['ts'] === 'number') (t as PayloadMap)['ts'] = stamp;
  }
}

runIfEntry(import.meta.url, {
  name: 'feed:replay',
  usage: USAGE,
  parse: (argv) => parseReplayArgs(argv),
  async run(opts, signal) {
    // A malformed capture (CaptureFormatError, naming the line) or a NATS failure throws: exit 1.
    process.stderr.write(JSON.stringify(await replayCapture(opts, signal)) + '\n');
    return 0;
  },
});
