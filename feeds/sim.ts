/**
 * Market simulator publisher: ticks from {@link MarketSim} published to NATS
 * at a steady rate, in the ingest contract the gateway's default `sim` feed
 * reads (subject `md.sim.<token>`, symbol in payload field `s`). With
 * `--books N`, the N most active symbols also get order books, published in
 * the book ingest contract on `book.sim.<token>` (a snapshot first, then
 * level changes) for a feed with `kind: "book"`. With `--trades R`, R trade
 * messages a second are published in the trade ingest contract on
 * `trade.sim.<token>` for a feed with `kind: "trade"` (one print, or now and
 * then a batch), each followed by the quote tick that folds it into the
 * symbol's state; `--trades-jetstream NAME` keeps them in a stream, for
 * gateways that number trades by stream position.
 *
 *   npm run feed:sim -- --rate 5000 --symbols 2000 --duration 30
 *   npm run feed:sim -- --books 50 --book-rate 2000
 *   npm run feed:sim -- --trades 500 --trades-jetstream SIM_TRADES
 *
 * Pacing is open-loop: tick k of the run is due at t0 + k / rate, a 10 ms
 * timer publishes whatever is due, and each tick's `ts` is its scheduled time,
 * not the time it left (book and trade messages likewise, message j due at
 * t0 + j / its rate; the schedules are merged by due time, so the interleaving,
 * and with it every payload but `ts`, is the same on every run). A publisher
 * that falls behind therefore shows up as
 * latency downstream instead of silently slowing the feed, and the timer
 * leaves the core free (a setImmediate loop would take all of it). The cost:
 * a tick waits up to one timer period (10 ms, 5 ms on average) for its batch,
 * and end-to-end latency measured from `ts` includes that wait.
 */
import { performance } from 'node:perf_hooks';
import { jetstreamManager, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { MarketSim, type SimBook, type SimTick, type SimTradeMessage } from '../src/feed/market-sim.js';
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
  /** Symbols with an order book, the most active ones; 0: no books. */
  books: number;
  /** Book messages per second across all books, after the warm-up. */
  bookRate: number;
  /** Subject prefix of book messages; a book message goes to `<bookPrefix>.<token>`. */
  bookPrefix: string;
  /** Trade messages per second after the warm-up; 0: no trades. */
  trades: number;
  /** Subject prefix of trade messages; a trade message goes to `<tradePrefix>.<token>`. */
  tradePrefix: string;
  /**
   * JetStream stream to create (if missing) over `<tradePrefix>.>`, an
   * ordinary file-storage stream keeping every trade message; null: none
   * (plain NATS; a stream covering the subjects may still exist).
   */
  tradesJetstream: string | null;
  /** Run length in seconds; null = unbounded (only with an explicit `--duration 0`, or when `count` bounds the run). */
  duration: number | null;
  /** Total ticks to publish, warm-up included; null = no count bound. Book messages do not count; the run ends with the last tick. */
  count: number | null;
  /** First publish one full tick per symbol, and one snapshot per book, so every symbol has a snapshot from the start. */
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
  /** Book messages published, warm-up snapshots included (not in `published`). */
  bookMessages: number;
  /** Trade messages published (not in `published`; each was followed by its quote tick, not in `published` either). */
  tradeMessages: number;
  /** Trade prints in them (a batch counts each print). */
  trades: number;
  seconds: number;
  /** published / seconds. */
  rate: number;
  /** Largest delay between a tick's, book or trade message's scheduled time and its publication (timer jitter, or a publisher that cannot keep up). */
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
  --books N          order books for the N most active symbols, 0 to --symbols
                     (default 0: none)
  --book-rate N      book messages per second, > 0 and <= 1000000 (default 2000)
  --book-prefix P    subject prefix of book messages (default book.sim); subject
                     <book-prefix>.<symbol token>, payload {s, bids, asks, snapshot?, seq, ts}
  --trades R         trade messages per second, >= 0 and <= 1000000 (default 0: none);
                     each one print {s, px, sz, side?, id, ts} or now and then a batch
                     {s, trades: [...]}, followed by the quote tick it makes (last,
                     lastSize, volume, ...) on <prefix>.<symbol token>
  --trade-prefix P   subject prefix of trade messages (default trade.sim); subject
                     <trade-prefix>.<symbol token>
  --trades-jetstream NAME
                     create JetStream stream NAME over <trade-prefix>.> (if missing):
                     file storage, every message kept, for trade feeds that read a
                     stream ("jetstream": NAME); needs --trades
  --duration S       seconds to run (default 60 unless --count is given; 0 = until stopped)
  --count N          ticks to publish, warm-up included
  --no-warm          skip the warm-up (one full tick per symbol and one snapshot
                     per book, published first; without it, a book's first message
                     is still its snapshot)
  --jetstream NAME   create JetStream stream NAME over <prefix>.> keeping the last
                     message per subject (if missing), and publish every tick with
                     the symbol's full state, for gateways' warm start (quotes only:
                     book messages stay plain NATS)
  --help             show this help

--count counts ticks only (not book or trade messages, nor the ticks trades make). Stops at the first bound reached, or on SIGINT/SIGTERM;
prints a JSON summary to stderr.`;

const DEFAULT_URL = 'nats://127.0.0.1:4222';
const MAX_SYMBOLS = 1_000_000;
const MAX_RATE = 1_000_000;
/** Timer period of the pacing loop: small enough for smooth batches, large enough to cost nothing when idle. */
const TICK_MS = 10;
/** Warm-up ticks between flushes, so a large universe does not queue megabytes in the client at once. */
const WARM_CHUNK = 10_000;
// Non-empty tokens, no wildcards.
const SUBJECT_PREFIX = /^[^\s*>.]+(\.[^\s*>.]+)*$/;

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
    books: { type: 'string' },
    'book-rate': { type: 'string' },
    'book-prefix': { type: 'string' },
    trades: { type: 'string' },
    'trade-prefix': { type: 'string' },
    'trades-jetstream': { type: 'string' },
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
  if (!SUBJECT_PREFIX.test(prefix)) {
    throw new UsageError(`--prefix: expected a NATS subject without wildcards, such as md.sim, got ${JSON.stringify(prefix)}`);
  }
  const books = num('books', values.books ?? '0', `an integer from 0 to --symbols (${symbols})`, (n) => Number.isInteger(n) && n >= 0 && n <= symbols);
  const bookRate = num('book-rate', values['book-rate'] ?? '2000', `book messages per second, a number > 0 and <= ${MAX_RATE}`, (n) => n > 0 && n <= MAX_RATE);
  const bookPrefix = values['book-prefix'] ?? 'book.sim';
  if (!SUBJECT_PREFIX.test(bookPrefix)) {
    throw new UsageError(`--book-prefix: expected a NATS subject without wildcards, such as book.sim, got ${JSON.stringify(bookPrefix)}`);
  }
  // A quote feed on <prefix>.> must not receive book messages, nor a book feed ticks.
  if (books > 0 && (`${bookPrefix}.`.startsWith(`${prefix}.`) || `${prefix}.`.startsWith(`${bookPrefix}.`))) {
    throw new UsageError(`--book-prefix: ${JSON.stringify(bookPrefix)} overlaps --prefix ${JSON.stringify(prefix)}; quote and book subjects must not share a prefix`);
  }
  const trades = num('trades', values.trades ?? '0', `trade messages per second, a number >= 0 and <= ${MAX_RATE}`, (n) => n >= 0 && n <= MAX_RATE);
  const tradePrefix = values['trade-prefix'] ?? 'trade.sim';
  if (!SUBJECT_PREFIX.test(tradePrefix)) {
    throw new UsageError(`--trade-prefix: expected a NATS subject without wildcards, such as trade.sim, got ${JSON.stringify(tradePrefix)}`);
  }
  // A trade feed must not receive ticks or book messages, nor the others trades.
  const overlaps = (a: string, b: string) => `${a}.`.startsWith(`${b}.`) || `${b}.`.startsWith(`${a}.`);
  if (trades > 0 && overlaps(tradePrefix, prefix)) {
    throw new UsageError(`--trade-prefix: ${JSON.stringify(tradePrefix)} overlaps --prefix ${JSON.stringify(prefix)}; quote and trade subjects must not share a prefix`);
  }
  if (trades > 0 && books > 0 && overlaps(tradePrefix, bookPrefix)) {
    throw new UsageError(`--trade-prefix: ${JSON.stringify(tradePrefix)} overlaps --book-prefix ${JSON.stringify(bookPrefix)}; book and trade subjects must not share a prefix`);
  }
  const { count, duration } = countAndDuration(values);
  const jetstream = streamName('jetstream', values.jetstream);
  const tradesJetstream = streamName('trades-jetstream', values['trades-jetstream']);
  if (tradesJetstream !== null && trades === 0) {
    throw new UsageError('--trades-jetstream: needs --trades R > 0 (trade messages to keep)');
  }
  if (tradesJetstream !== null && tradesJetstream === jetstream) {
    throw new UsageError(`--trades-jetstream: ${JSON.stringify(tradesJetstream)} is the --jetstream stream, which keeps one message per subject; name another stream`);
  }
  return {
    url, symbols, rate, seed, zipf, codec, prefix, books, bookRate, bookPrefix, trades, tradePrefix, tradesJetstream,
    duration, count, warm: values.warm ?? true, jetstream,
  };
}

function streamName(option: string, value: string | undefined): string | null {
  if (value === undefined) return null;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) {
    throw new UsageError(`--${option}: expected a stream name of A-Z a-z 0-9 _ -, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Publishes simulated ticks until the count or duration bound is reached or
 * `signal` aborts, then flushes and closes the connection. Rejects if NATS
 * cannot be reached or the connection closes with an error mid-run.
 */
export async function runSim(opts: SimOptions, signal?: AbortSignal): Promise<SimSummary> {
  const sim = new MarketSim({ symbols: opts.symbols, seed: opts.seed, zipf: opts.zipf, books: opts.books });
  // Subjects resolved once per symbol, not per tick.
  const subjects = new Map<string, string>();
  for (const s of sim.symbols) subjects.set(s, `${opts.prefix}.${subjectToken(s)}`);
  const bookSubjects = new Map<string, string>();
  for (const s of sim.bookSymbols) bookSubjects.set(s, `${opts.bookPrefix}.${subjectToken(s)}`);
  const tradeSubjects = new Map<string, string>();
  if (opts.trades > 0) for (const s of sim.symbols) tradeSubjects.set(s, `${opts.tradePrefix}.${subjectToken(s)}`);
  const pack: (t: SimTick | SimBook | SimTradeMessage) => Uint8Array =
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
  if (opts.tradesJetstream !== null) await ensureStream(nc, opts.tradesJetstream, `${opts.tradePrefix}.>`, 'all');
  const limit = opts.count ?? Infinity;
  let published = 0;
  const publish = (tick: SimTick) => {
    nc.publish(subjects.get(tick.s)!, encode(tick));
    published++;
  };
  let bookMessages = 0;
  const publishBook = (m: SimBook) => {
    nc.publish(bookSubjects.get(m.s)!, pack(m));
    bookMessages++;
  };
  let tradeMessages = 0;
  let trades = 0;
  // The trade message, then the quote tick it makes: a consumer of both sees the print before the quote it moved.
  const publishTrade = (nowMs: number) => {
    const { trade, tick } = sim.nextTrade(nowMs);
    nc.publish(tradeSubjects.get(trade.s)!, pack(trade));
    nc.publish(subjects.get(tick.s)!, encode(tick));
    tradeMessages++;
    trades += 'trades' in trade ? trade.trades.length : 1;
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
      for (let rank = 0; rank < sim.bookSymbols.length && !signal?.aborted; rank++) {
        publishBook(sim.nextBookFor(rank, t0));
        if (bookMessages % WARM_CHUNK === 0) await nc.flush();
      }
    }

    // Paced phase: tick k (1-based) is due at pacedStart + k * period, book
    // message j at pacedStart + j * bookPeriod, trade message j at pacedStart + j * tradePeriod.
    const period = 1000 / opts.rate;
    const bookPeriod = 1000 / opts.bookRate;
    const tradePeriod = opts.trades === 0 ? Infinity : 1000 / opts.trades;
    const pacedStartMono = performance.now();
    const pacedStartEpoch = t0 + (pacedStartMono - startMono);
    const pacedLimit = opts.duration === null ? Infinity : Math.floor(opts.duration * opts.rate);
    const bookLimit = opts.books === 0 ? 0 : opts.duration === null ? Infinity : Math.floor(opts.duration * opts.bookRate);
    const tradeLimit = opts.trades === 0 ? 0 : opts.duration === null ? Infinity : Math.floor(opts.duration * opts.trades);
    let paced = 0;
    let bookPaced = 0;
    let tradePaced = 0;
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
      const done = () => paced >= pacedLimit && bookPaced >= bookLimit && tradePaced >= tradeLimit;
      const step = () => {
        if (published >= limit) return finish('count');
        if (done()) return finish('duration');
        const elapsed = performance.now() - pacedStartMono;
        const due = Math.min(Math.floor(elapsed / period), pacedLimit, paced + (limit - published));
        const bookDue = Math.min(Math.floor(elapsed / bookPeriod), bookLimit);
        const tradeDue = Math.min(Math.floor(elapsed / tradePeriod), tradeLimit);
        if (due > paced) maxLagMs = Math.max(maxLagMs, elapsed - (paced + 1) * period);
        if (bookDue > bookPaced) maxLagMs = Math.max(maxLagMs, elapsed - (bookPaced + 1) * bookPeriod);
        if (tradeDue > tradePaced) maxLagMs = Math.max(maxLagMs, elapsed - (tradePaced + 1) * tradePeriod);
        // Merged by due time, ticks first on a tie, then books; nothing after the last tick a --count allows.
        while (paced < due || ((bookPaced < bookDue || tradePaced < tradeDue) && published < limit)) {
          const tickAt = paced < due ? (paced + 1) * period : Infinity;
          const bookAt = bookPaced < bookDue ? (bookPaced + 1) * bookPeriod : Infinity;
          const tradeAt = tradePaced < tradeDue ? (tradePaced + 1) * tradePeriod : Infinity;
          if (tickAt <= bookAt && tickAt <= tradeAt) {
            paced++;
            publish(sim.next(pacedStartEpoch + tickAt));
          } else if (bookAt <= tradeAt) {
            bookPaced++;
            publishBook(sim.nextBook(pacedStartEpoch + bookAt));
          } else {
            tradePaced++;
            publishTrade(pacedStartEpoch + tradeAt);
          }
        }
        if (published >= limit) finish('count');
        else if (done()) finish('duration');
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
      bookMessages,
      tradeMessages,
      trades,
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
 * Creates a stream over `subject` if it does not exist, file storage.
 * `keep: 'last'` (the quote warm-start stream) keeps the last message of each
 * subject, older ones discarded, so it holds exactly one snapshot per symbol
 * whatever the tick rate; `keep: 'all'` (a trade stream) is an ordinary
 * stream that keeps every message, since each one is part of the tape. An
 * existing stream must cover `subject`, and for 'all' keep more than one
 * message per subject.
 */
export async function ensureStream(nc: NatsConnection, name: string, subject: string, keep: 'last' | 'all' = 'last'): Promise<void> {
  const jsm = await jetstreamManager(nc);
  let info;
  try {
    info = await jsm.streams.info(name);
  } catch (err) {
    if (!/not found/i.test((err as Error).message)) throw err;
    await jsm.streams.add({
      name,
      subjects: [subject],
      ...(keep === 'last' ? { max_msgs_per_subject: 1 } : {}),
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
    });
    return;
  }
  if (!info.config.subjects?.includes(subject)) {
    throw new Error(`stream ${name} exists but does not cover ${subject} (subjects: ${(info.config.subjects ?? []).join(', ')})`);
  }
  const perSubject = info.config.max_msgs_per_subject ?? -1;
  if (keep === 'all' && perSubject === 1) {
    throw new Error(`stream ${name} keeps only the last message per subject; trades need a stream that keeps every message`);
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
