/**
 * Records NATS traffic to a capture file (format: see capture.ts and
 * feeds/README.md), for `feed:replay` to publish again later.
 *
 *   npm run feed:record -- --subject 'md.sim.>' --out capture.ndjson.gz --duration 30
 *   npm run feed:record -- --subject 'md.sim.>' --subject 'book.sim.>' --out capture.ndjson.gz
 *
 * Several subjects (quotes and books, say) are subscribed on one connection,
 * so the capture keeps the order in which the server delivered them.
 *
 * Each message is stamped with its arrival time in the subscription callback
 * and written straight into the gzip stream, so the times are not skewed by
 * compression. The gzip stream buffers bursts; if it falls more than
 * MAX_PENDING_BYTES behind, recording stops with an error rather than
 * growing without bound (a capture that silently dropped messages would be
 * worse than none). Whatever ends the recording (bound, signal, error), the
 * gzip stream is ended and the file closed, so what was written is readable.
 */
import { performance } from 'node:perf_hooks';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { badNatsUrl, CaptureWriter, MAX_PENDING_BYTES, round, type CaptureHeader, type CodecCounts } from './capture.js';
import { countAndDuration, runIfEntry, UsageError, parseOptions } from '../src/cli-tool.js';


/** Effective options of one recording. */
export interface RecordOptions {
  /** NATS server URL(s), comma-separated. */
  url: string;
  /** Subjects to subscribe to, wildcards allowed; no two may match the same subject (a message would be recorded twice). */
  subjects: string[];
  /** Capture file to create. */
  out: string;
  /** Replace `out` if it exists. */
  force: boolean;
  /** Seconds to record; null = no time bound. */
  duration: number | null;
  /** Messages to record; null = no count bound. */
  count: number | null;
  /** Called once the subscription is registered with the server: from then on nothing published is missed. */
  onReady?: (header: CaptureHeader) => void;
}

/** What a recording did; printed as one JSON line at the end of the CLI. */
export interface RecordSummary {
  out: string;
  /** Messages recorded. */
  records: number;
  /** Of which, per codec. */
  codecs: CodecCounts;
  /** Size of the capture file. */
  bytes: number;
  /** From the start of recording to the last message written. */
  seconds: number;
  stoppedBy: 'count' | 'duration' | 'signal';
}

export const USAGE = `usage: npm run feed:record -- --out FILE [options]

  --url URL          NATS server(s), comma-separated (default $NATS_URL or nats://127.0.0.1:4222)
  --subject S        subject to record, wildcards allowed (default md.sim.>); repeat it
                     to record several in one capture, e.g. --subject 'md.sim.>'
                     --subject 'book.sim.>' for quotes and books
  --out FILE         capture file to write, gzip-compressed NDJSON (required; e.g. capture.ndjson.gz)
  --force            replace FILE if it exists
  --duration S       seconds to record (default 60 unless --count is given; 0 = until stopped)
  --count N          messages to record
  --help             show this help

Stops at the first bound reached, or on SIGINT/SIGTERM, and always closes the
file properly; prints a JSON summary to stderr.`;

const DEFAULT_URL = 'nats://127.0.0.1:4222';
// Tokens are non-empty and blank-free; '>' only as the last token.
const SUBJECT = /^(?:[^\s.>]+\.)*(?:[^\s.>]+|>)$/;

/** Parses CLI arguments (without node and script). Throws {@link UsageError} naming the option. */
export function parseRecordArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): RecordOptions | 'help' {
  const values = parseOptions(argv, {
    url: { type: 'string' },
    subject: { type: 'string', multiple: true },
    out: { type: 'string' },
    force: { type: 'boolean' },
    duration: { type: 'string' },
    count: { type: 'string' },
    help: { type: 'boolean' },
  });
  if (values.help) return 'help';

  const url = values.url ?? (env['NATS_URL'] || DEFAULT_URL);
  const badUrl = badNatsUrl(url);
  if (badUrl !== null) throw new UsageError(badUrl);
  const subjects = values.subject ?? ['md.sim.>'];
  for (const [i, subject] of subjects.entries()) {
    if (!SUBJECT.test(subject)) {
      throw new UsageError(`--subject: expected a NATS subject such as md.sim.> (wildcards * and > allowed), got ${JSON.stringify(subject)}`);
    }
    const other = subjects.slice(0, i).find((o) => subjectsOverlap(o, subject));
    if (other !== undefined) {
      throw new UsageError(`--subject: ${JSON.stringify(subject)} overlaps ${JSON.stringify(other)} (a message on both would be recorded twice)`);
    }
  }
  if (values.out === undefined || values.out === '') throw new UsageError('--out: required, the capture file to write (e.g. capture.ndjson.gz)');
  const { count, duration } = countAndDuration(values);
  return { url, subjects, out: values.out, force: values.force ?? false, duration, count };
}

/** True when some subject matches both patterns (`*` one token, `>` one or more at the end). */
export function subjectsOverlap(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; ; i++) {
    const s = x[i];
    const t = y[i];
    if (s === undefined || t === undefined) return s === t;
    if (s === '>' || t === '>') return true;
    if (s !== t && s !== '*' && t !== '*') return false;
  }
}

/**
 * Records messages on `opts.subject` to `opts.out` until the count or
 * duration bound is reached or `signal` aborts, then closes the capture.
 * Rejects (after closing what was written) if NATS cannot be reached, the
 * connection closes mid-run or the file cannot be written.
 */
export async function recordCapture(opts: RecordOptions, signal?: AbortSignal): Promise<RecordSummary> {
  // The file first: a bad path or an existing capture fails before any connection is made.
  let writer: CaptureWriter;
  try {
    writer = await CaptureWriter.create(opts.out, opts.force);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`--out: ${opts.out} exists; choose another file or pass --force to replace it`, { cause: err });
    }
    throw new UsageError(`--out: cannot create ${opts.out}: ${(err as Error).message}`, { cause: err });
  }
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: opts.url.split(',').map((u) => u.trim()), name: 'tickgate-feed-record', timeout: 5000 });
  } catch (err) {
    await writer.discard();
    throw err;
  }

  const limit = opts.count ?? Infinity;
  const startedAt = Date.now();
  const t0 = performance.now();
  let stopMono = t0;
  writer.writeHeader({ subject: opts.subjects[0]!, subjects: opts.subjects, startedAt });

  let outcome = 'signal' as RecordSummary['stoppedBy'] | Error;
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  // The first reason wins; after it the callback writes nothing more.
  const finish = (why: RecordSummary['stoppedBy'] | Error) => {
    if (done) return;
    done = true;
    stopMono = performance.now();
    outcome = why;
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    resolveStopped();
  };
  const onAbort = () => finish('signal');

  try {
    // One callback for every subscription of the one connection: messages
    // are handled in the order the server sent them, whatever their subject.
    const callback = (err: Error | null, msg: Msg) => {
      if (done) return;
      if (err) return finish(err);
      // The payload is encoded synchronously here: nothing keeps a reference to the client's buffer.
      writer.write(performance.now() - t0, msg.subject, msg.data);
      if (writer.records >= limit) finish('count');
      else if (writer.pendingBytes > MAX_PENDING_BYTES) {
        finish(new Error(`the capture file cannot keep up: over ${MAX_PENDING_BYTES} bytes waiting for compression`));
      } else if (writer.error) finish(writer.error);
    };
    const subs = opts.subjects.map((subject) => nc.subscribe(subject, { callback }));
    if (signal?.aborted) finish('signal');
    else signal?.addEventListener('abort', onAbort, { once: true });
    void nc.closed().then((err) => finish(err ?? new Error('NATS connection closed')));
    if (opts.duration !== null) timer = setTimeout(() => finish('duration'), opts.duration * 1000);
    // The server has registered the subscription once the round trip returns.
    await nc.flush();
    if (!done) opts.onReady?.({ format: 'tickgate-capture', v: 1, subject: opts.subjects[0]!, subjects: opts.subjects, startedAt });
    await stopped;
    for (const sub of subs) sub.unsubscribe();
  } catch (err) {
    finish(err as Error);
  } finally {
    if (!nc.isClosed()) await nc.close().catch(() => undefined);
  }

  // Always complete the gzip stream: what was recorded stays readable even when recording failed.
  const bytes = await writer.close();
  if (outcome instanceof Error) throw outcome;
  const seconds = (stopMono - t0) / 1000;
  return { out: opts.out, records: writer.records, codecs: { ...writer.counts }, bytes, seconds: round(seconds, 3), stoppedBy: outcome };
}

runIfEntry(import.meta.url, {
  name: 'feed:record',
  usage: USAGE,
  parse: (argv) => parseRecordArgs(argv),
  async run(opts, signal) {
    process.stderr.write(JSON.stringify(await recordCapture(opts, signal)) + '\n');
    return 0;
  },
});
