/**
 * Hub: routes each normalized event to its kind, which applies it to the
 * channel's state, then hands the change to delivery for the channel's
 * subscribers. It also provides the sessions their context. It owns no
 * field, level or subscription logic itself.
 */
import type { Authenticator, Principal } from '../access/authenticator.js';
import { ANONYMOUS } from '../access/authenticator.js';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Tick } from '../feed/normalize.js';
import { PlainHistogram } from '../histogram.js';
import type { BookEvent } from '../feed/book-normalize.js';
import { BookKind } from '../kinds/book-kind.js';
import { QuoteKind } from '../kinds/quote-kind.js';
import { TradeKind } from '../kinds/trade-kind.js';
import type { TradeEvent } from '../feed/trade-normalize.js';
import { threadId } from 'node:worker_threads';
import type { Logger } from '../log.js';
import { encode } from '../protocol/codec.js';
import { FieldSchema } from '../protocol/field-schema.js';
import { PROTOCOL_VERSION, type ByeCode, type Channel } from '../protocol/messages.js';
import type { SymbolStore } from '../state/symbol-state.js';
import type { ClientSocket } from '../transport/connection.js';
import { LATENCY_BUCKETS } from '../histogram.js';
import { ClientSession } from './client-session.js';
import { HubCounters } from './counters.js';
import { Delivery } from './delivery.js';
import type { ChannelState } from './channel.js';
import type { Kind } from './kind.js';
import { FlushScheduler } from './outbox.js';
import type { SessionContext } from './session-context.js';
import { SessionRegistry } from './session-registry.js';
import { SubscriptionIndex } from './subscription-index.js';
import type { ThrottleWheel } from './throttle.js';

export { HubCounters } from './counters.js';

/** Buckets for socket buffered bytes: 0, then powers of 4 from 1 KiB to 64 MiB. */
const BUFFERED_BUCKETS = [0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

/** Kind numbers: a subscription's `kind` indexes the hub's kinds. */
export const QUOTE = 0;
export const BOOK = 1;
export const TRADE = 2;

export class Hub implements SessionContext {
  readonly schema: FieldSchema;
  readonly quotes: QuoteKind;
  readonly books: BookKind;
  readonly trades: TradeKind;
  readonly kinds: readonly Kind[];
  /** Names this process's incarnation: trade positions without a stream, session ids. */
  readonly incarnation: string;
  /** A quote tick built from each trade (last, lastSize, volume). */
  private readonly tradeTick: Tick;
  readonly index: SubscriptionIndex;
  readonly delivery: Delivery;
  readonly scheduler: FlushScheduler;
  readonly counters = new HubCounters();
  readonly registry: SessionRegistry;
  /** Verifies `op: auth` tokens; null when authentication is off. */
  authenticator: Authenticator | null = null;
  /** Socket buffered bytes per client, sampled by the sweep. */
  readonly bufferedBytes = new PlainHistogram(BUFFERED_BUCKETS);
  /** First message queued for a client -> its frame written to the socket, seconds; null when latency metrics are off. */
  readonly deliveryLatency: PlainHistogram | null;

  constructor(
    readonly config: Config,
    readonly log: Logger,
    readonly clock: Clock = systemClock,
  ) {
    this.schema = new FieldSchema(config.schema.fields);
    this.quotes = new QuoteKind(this.schema);
    this.books = new BookKind(config);
    this.incarnation = `${process.pid.toString(36)}.${threadId}.${clock.now().toString(36)}`;
    this.trades = new TradeKind(config, clock, this.incarnation);
    this.kinds = [this.quotes, this.books, this.trades];
    const values = new Float64Array(this.schema.count);
    this.tradeTick = { symbol: '', values, texts: this.schema.textSlots.length > 0 ? new Array<string | null>(this.schema.count).fill(null) : null, counters: null as never };
    this.index = new SubscriptionIndex(this.kinds.length);
    this.delivery = new Delivery(this.kinds, this.index, clock);
    this.deliveryLatency = config.metrics.latency ? new PlainHistogram(LATENCY_BUCKETS) : null;
    this.scheduler = new FlushScheduler({ intervalMs: config.ws.flushIntervalMs, adaptive: config.ws.flushAdaptive, clock });
    this.registry = new SessionRegistry(this);
  }

  kindOf(channel: Channel): number {
    return channel === 'book' ? BOOK : channel === 'trade' ? TRADE : QUOTE;
  }

  /** Quote state by symbol. */
  get store(): SymbolStore {
    return this.quotes.store;
  }

  /** Open sessions. */
  get sessions(): ReadonlySet<ClientSession> {
    return this.registry.sessions;
  }

  get throttle(): ThrottleWheel {
    return this.delivery.throttle;
  }

  /** The hot path: one normalized quote tick from feed `feed`. */
  onTick(tick: Tick, feed: string): void {
    const st = this.quotes.apply(tick, feed);
    if (st === null) {
      this.counters.unchangedTicks++;
      return;
    }
    // Taken over by a live feed (two feeds publishing one symbol).
    if (st.stale) this.setStale(QUOTE, st, false);
    this.counters.stateUpdates++;
    this.delivery.changed(QUOTE, st);
  }

  /** One validated book message from feed `feed`. */
  onBook(event: BookEvent, feed: string): void {
    const books = this.books;
    const st = books.apply(event, feed);
    // A gap turned the book stale, or a snapshot after one made it live: say so first.
    if (books.statusChange !== null) this.delivery.statusChanged(BOOK, books.statusChange);
    if (st === null) return;
    if (st.feedStale) this.setStale(BOOK, st, false);
    this.delivery.changed(BOOK, st);
  }

  /**
   * The trades of one message from feed `feed`, in order: each gets its
   * position, joins the history and goes to its subscribers, and updates
   * the symbol's quote (last, lastSize, and volume when the feed adds it).
   */
  onTrades(event: TradeEvent, feed: string): void {
    const schema = this.schema;
    const tick = this.tradeTick;
    for (let i = 0; i < event.n; i++) {
      event.index = i;
      const st = this.trades.apply(event, feed);
      if (st === null) continue;
      if (st.stale) this.setStale(TRADE, st, false);
      this.delivery.changed(TRADE, st);
      const v = tick.values;
      v.fill(NaN);
      v[schema.last] = event.px[i]!;
      v[schema.lastSize] = event.sz[i]!;
      if (event.addVolume) {
        const q = this.quotes.state(event.symbol);
        const vol = q !== undefined && q.has(schema.volume) ? q.values[schema.volume]! : 0;
        v[schema.volume] = vol + event.sz[i]!;
      }
      const ts = event.ts[i]!;
      if (ts === ts) v[schema.ts] = ts;
      tick.symbol = event.symbol;
      (tick as { counters: Tick['counters'] }).counters = event.counters;
      this.onTick(tick, feed);
    }
  }

  /**
   * A tick read from a warm-start store: older than anything live, so it
   * only fills fields the symbol does not have yet. It is neither a sign of
   * life for the feed nor a sequence or latency sample.
   */
  onWarmTick(tick: Tick, feed: string): void {
    const st = this.quotes.applyStored(tick, feed);
    if (st === null) return;
    tick.counters.warmTicks++;
    this.counters.stateUpdates++;
    this.delivery.changed(QUOTE, st);
  }

  /**
   * A feed went stale (disconnected or silent) or live again: every channel
   * it last updated changes status, and each subscriber gets one `stat` per
   * channel (shared bytes; all of a client's stats leave in one frame).
   * Walks every kind's states, which is fine for a rare transition.
   */
  setFeedStale(feed: string, stale: boolean): number {
    let n = 0;
    this.kinds.forEach((kind, k) => {
      for (const st of kind.states()) {
        if (st.feed === feed && st.stale !== stale) {
          this.setStale(k, st, stale);
          n++;
        }
      }
    });
    this.log.info({ feed, symbols: n }, stale ? 'feed is stale: symbols marked stale' : 'feed is live again');
    return n;
  }

  private setStale(k: number, st: ChannelState, stale: boolean): void {
    const before = st.stale;
    st.stale = stale;
    // A book waiting for a snapshot stays stale when its feed comes back.
    if (st.stale !== before) this.delivery.statusChanged(k, st);
  }

  helloFor(sid: string, now: number): Uint8Array {
    const l = this.config.limits;
    return encode({
      t: 'hello',
      v: PROTOCOL_VERSION,
      sid,
      hbMs: this.config.ws.heartbeatMs,
      serverTs: now,
      limits: { maxSymbols: l.maxSymbolsPerClient, maxMessageBytes: l.maxMessageBytes, maxMessagesPerSec: l.maxMessagesPerSec },
    });
  }

  /** A new, admitted client connection. */
  openSession(socket: ClientSocket, principal: Principal = ANONYMOUS): ClientSession {
    const session = new ClientSession(this.registry.nextSid(), this, socket, principal);
    this.registry.added(session);
    return session;
  }

  sessionClosed(session: { readonly sid: string }, by: ByeCode | 'remote'): void {
    this.registry.closed(session, by);
  }

  /** Starts the session sweep and the throttle wheel. */
  start(): void {
    this.registry.start();
    this.delivery.throttle.start();
    this.scheduler.start();
  }

  /** Sends every client `bye` (retryMs chosen per client) and stops the timers. */
  closeAll(code: ByeCode, reason: string, retryMs: () => number): void {
    this.registry.stop();
    this.delivery.throttle.stop();
    this.scheduler.stop();
    for (const s of this.registry.sessions) s.bye(code, reason, retryMs());
    this.scheduler.run();
  }
}
