/**
 * Embedded feed source: the market simulator running in-process, so the
 * gateway shows live data with no NATS at all. Its ticks, book messages and
 * trade messages go through the same normalizers as NATS payloads (minus the
 * decode).
 */
import type { Config, FeedConfig } from '../config.js';
import type { Logger } from '../log.js';
import { BookNormalizer } from './book-normalize.js';
import type { BookSink, FeedSinks, FeedSource, SourceStatus, TickSink, TradeSink } from './feed-source.js';
import { MarketSim, type SimBook, type SimTick, type SimTradeStep } from './market-sim.js';
import type { FieldSchema } from '../protocol/field-schema.js';
import { Normalizer } from './normalize.js';
import { TradeNormalizer } from './trade-normalize.js';

/** The embedded quote feed, as metrics and logs name it. */
export const EMBEDDED_FEED: FeedConfig = {
  name: 'sim',
  kind: 'quote',
  subject: 'md.sim.>',
  codec: 'msgpack',
  symbolField: 's',
  symbolToken: null,
  fields: {},
  queue: null,
  staleAfterMs: 10_000,
  jetstream: null,
  volume: false,
};

/** The embedded book feed (`embedded.books` symbols; none when 0), as metrics and logs name it. */
export const EMBEDDED_BOOK_FEED: FeedConfig = {
  name: 'simbook',
  kind: 'book',
  subject: 'book.sim.>',
  codec: 'msgpack',
  symbolField: 's',
  symbolToken: null,
  fields: {},
  queue: null,
  staleAfterMs: 10_000,
  jetstream: null,
  volume: false,
};

/**
 * The embedded trade feed (`embedded.tradesPerSec`; none when 0), as metrics
 * and logs name it. Each trade message comes with a quote tick on the quote
 * feed that already adds its size to `volume`, hence `volume: false` here.
 */
export const EMBEDDED_TRADE_FEED: FeedConfig = {
  name: 'simtrade',
  kind: 'trade',
  subject: 'trade.sim.>',
  codec: 'msgpack',
  symbolField: 's',
  symbolToken: null,
  fields: {},
  queue: null,
  staleAfterMs: 10_000,
  jetstream: null,
  volume: false,
};

/** Like the load publisher: a 1 ms timer, so a tick's age on arrival is the gateway's latency, not the pacing's. */
const TICK_INTERVAL_MS = 1;

export class EmbeddedSource implements FeedSource {
  readonly kind = 'embedded';
  /** The quote feed's, then the book feed's when there are books, then the trade feed's when there are trades. */
  readonly normalizers: (Normalizer | BookNormalizer | TradeNormalizer)[];
  readonly reconnects = 0;
  status: SourceStatus = { state: 'starting' };
  private timer: NodeJS.Timeout | null = null;
  private readonly sim: MarketSim;
  private readonly quotes: Normalizer;
  private readonly books: BookNormalizer | null;
  private readonly trades: TradeNormalizer | null;
  /** Fractional ticks, book and trade messages carried between intervals so the rates are exact on average. */
  private carry = 0;
  private bookCarry = 0;
  private tradeCarry = 0;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    schema?: FieldSchema,
  ) {
    const e = config.embedded;
    this.quotes = new Normalizer(EMBEDDED_FEED, { schema, latency: config.metrics.latency });
    // The most active symbols have books; more books than symbols is capped rather than refused.
    const books = Math.min(e.books, e.symbols);
    this.books = books > 0 ? new BookNormalizer(EMBEDDED_BOOK_FEED) : null;
    this.trades = e.tradesPerSec > 0 ? new TradeNormalizer(EMBEDDED_TRADE_FEED) : null;
    this.normalizers = [this.quotes];
    if (this.books !== null) this.normalizers.push(this.books);
    if (this.trades !== null) this.normalizers.push(this.trades);
    this.sim = new MarketSim({ symbols: e.symbols, seed: e.seed, books });
  }

  async start(sinks: FeedSinks): Promise<void> {
    const tick = sinks.tick;
    const book = sinks.book;
    const trade = sinks.trade;
    const e = this.config.embedded;
    const sim = this.sim;
    const bookRate = this.books === null ? 0 : e.bookChangesPerSec;
    const tradeRate = e.tradesPerSec;
    // Every symbol gets its first (full) tick at once, and every book its
    // snapshot, so snapshots exist from the start.
    const now = Date.now();
    for (let i = 0; i < sim.symbols.length; i++) this.emit(tick, sim.nextFor(i, now));
    for (let i = 0; i < sim.bookSymbols.length; i++) this.emitBook(book, sim.nextBookFor(i, now));
    let last = Date.now();
    // Paced by a timer, each tick, book and trade message stamped with the
    // time it was due: a busy loop would take a whole core from the gateway.
    this.timer = setInterval(() => {
      const t = Date.now();
      const dt = t - last;
      const due = (dt * e.ticksPerSec) / 1000 + this.carry;
      const n = Math.floor(due);
      this.carry = due - n;
      const bookDue = (dt * bookRate) / 1000 + this.bookCarry;
      const m = Math.floor(bookDue);
      this.bookCarry = bookDue - m;
      const tradeDue = (dt * tradeRate) / 1000 + this.tradeCarry;
      const p = Math.floor(tradeDue);
      this.tradeCarry = tradeDue - p;
      // The three schedules merged by due time (tick i at (i + 1) / n of the
      // interval, book message j at (j + 1) / m, trade message k at (k + 1) /
      // p; ticks first on a tie, then books), so a book follows the quotes
      // that came before it and a trade prints at the quote of its time.
      let i = 0;
      let j = 0;
      let k = 0;
      while (i < n || j < m || k < p) {
        const ti = i < n ? (i + 1) / n : Infinity;
        const tj = j < m ? (j + 1) / m : Infinity;
        const tk = k < p ? (k + 1) / p : Infinity;
        if (ti <= tj && ti <= tk) {
          i++;
          this.emit(tick, sim.next(last + ti * dt));
        } else if (tj <= tk) {
          j++;
          this.emitBook(book, sim.nextBook(last + tj * dt));
        } else {
          k++;
          this.emitTrade(trade, tick, sim.nextTrade(last + tk * dt));
        }
      }
      last = t;
    }, TICK_INTERVAL_MS);
    this.status = { state: 'connected', server: 'embedded' };
    this.log.info(
      { symbols: e.symbols, ticksPerSec: e.ticksPerSec, books: sim.bookSymbols.length, bookChangesPerSec: bookRate, tradesPerSec: tradeRate },
      'embedded synthetic feed running (no NATS configured)',
    );
  }

  private emit(sink: TickSink, tick: SimTick): void {
    const norm = this.quotes;
    const r = norm.fromObject(EMBEDDED_FEED.subject, tick);
    if (typeof r === 'string') return;
    norm.observe(r);
    sink(r, EMBEDDED_FEED.name);
  }

  private emitBook(sink: BookSink, msg: SimBook): void {
    // Only called when there are books.
    const r = this.books!.fromObject(EMBEDDED_BOOK_FEED.subject, msg);
    if (typeof r === 'string') return;
    sink(r, EMBEDDED_BOOK_FEED.name);
  }

  /** The trade message to the trade feed, then its quote tick (volume, last, session extremes) to the quote feed. */
  private emitTrade(sink: TradeSink, tickSink: TickSink, step: SimTradeStep): void {
    // Only called when there are trades.
    const r = this.trades!.fromObject(EMBEDDED_TRADE_FEED.subject, step.trade);
    if (typeof r !== 'string') sink(r, EMBEDDED_TRADE_FEED.name);
    this.emit(tickSink, step.tick);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.status = { state: 'stopped' };
  }
}
