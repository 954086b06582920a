/**
 * Trade prints: append-only, never merged. Live, every subscriber gets each
 * `trade` (encoded once, shared). Held back (throttled, or the client is
 * behind), a subscription keeps only its cursor, the position of the last
 * trade it has; when it is released it gets every trade after the cursor
 * from the history, in order. If the cursor has fallen out of the history,
 * it first gets a `gap` naming exactly the positions lost.
 *
 * Positions `{e, q}`: without JetStream the gateway numbers each symbol's
 * trades 1, 2, 3, ... under an epoch naming this process's incarnation; with
 * a JetStream stream, q = (stream sequence - 1) x 1000 + the trade's index in
 * its message + 1, under an epoch naming the stream, so every replica agrees
 * and the stream's first trade is at 1.
 */
import type { Config } from '../config.js';
import type { TradeEvent } from '../feed/trade-normalize.js';
import { encode, encodeData } from '../protocol/codec.js';
import { TradeState } from '../state/trade-history.js';
import type { ChannelStatus } from '../fanout/channel.js';
import type { Kind } from '../fanout/kind.js';
import type { Subscription } from '../fanout/subscription.js';
import type { Clock } from '../clock.js';

/** Trades per message at most on a JetStream feed: positions leave room for this many per stream sequence. */
export const TRADES_PER_MESSAGE = 1000;

/** A position as clients see it. */
export interface TradePosition {
  e: string;
  q: number;
}

export class TradeKind implements Kind<TradeState, TradeEvent> {
  readonly name = 'trade';
  readonly snapshotType = 'trade';
  readonly liveType = 'trade';
  readonly merges = false;
  /** Counters read at scrape time. */
  replayed = 0;
  gapsSent = 0;
  recovered = 0;
  notRecovered = 0;
  private readonly trades = new Map<string, TradeState>();
  private readonly historySize: number;
  private readonly ttlMs: number;
  /** Epoch of self-numbered positions: this process's incarnation. */
  readonly localEpoch: string;
  /** Epochs of JetStream-backed feeds, by feed name (set once the stream is known). */
  private readonly streamEpochs = new Map<string, string>();
  private liveOf: TradeState | null = null;
  private liveQ = 0;
  private liveBytes: Uint8Array | null = null;

  constructor(
    config: Pick<Config, 'trade'>,
    private readonly clock: Clock,
    incarnation: string,
  ) {
    this.historySize = config.trade.history.size;
    this.ttlMs = config.trade.history.ttlSec * 1000;
    this.localEpoch = incarnation;
    this.defaultEpoch = incarnation;
  }

  /** Symbols with trades. */
  get size(): number {
    return this.trades.size;
  }

  /** Trades held across all histories (a gauge). */
  held(): number {
    let n = 0;
    for (const t of this.trades.values()) n += t.count;
    return n;
  }

  /** Epoch of a symbol with no trades yet: the first stream's when a feed reads one, else this process's. */
  private defaultEpoch: string;

  /** A JetStream-backed feed's epoch, once its stream is known. */
  setStreamEpoch(feed: string, epoch: string): void {
    if (this.streamEpochs.size === 0) this.defaultEpoch = epoch;
    this.streamEpochs.set(feed, epoch);
  }

  state(symbol: string): TradeState | undefined {
    return this.trades.get(symbol);
  }

  states(): Iterable<TradeState> {
    return this.trades.values();
  }

  /** The current position of a symbol (q 0 when it has no trades). */
  position(symbol: string): TradePosition {
    const st = this.trades.get(symbol);
    return st === undefined ? { e: this.defaultEpoch, q: 0 } : { e: st.epoch, q: st.q };
  }

  /**
   * Applies the trade at `ev.index` of a message: it gets its position and
   * joins the history. Returns the state, or null for a trade at or below
   * the position already held (a stream redelivery).
   */
  apply(ev: TradeEvent, feed: string): TradeState | null {
    const i = ev.index;
    const seq = ev.streamSeq;
    const epoch = seq === seq ? (this.streamEpochs.get(feed) ?? this.localEpoch) : this.localEpoch;
    let st = this.trades.get(ev.symbol);
    if (st === undefined || st.epoch !== epoch) {
      // New, or another numbering (a feed moved to or from a stream): a new history.
      // From a stream, every trade of the messages the source has read from is seen.
      const heldFrom = seq === seq ? (ev.streamFrom - 1) * TRADES_PER_MESSAGE : 0;
      st = new TradeState(ev.symbol, epoch, this.historySize, this.ttlMs, heldFrom);
      this.trades.set(ev.symbol, st);
    }
    const q = seq === seq ? (seq - 1) * TRADES_PER_MESSAGE + i + 1 : st.q + 1;
    if (q <= st.q) return null;
    const now = this.clock.now();
    st.trim(now);
    st.append(q, ev.px[i]!, ev.sz[i]!, ev.side[i]!, ev.id[i] ?? null, ev.ts[i]!, now);
    st.feed = feed;
    st.subject = ev.subject;
    return st;
  }

  live(st: TradeState, _view: number): Uint8Array {
    if (this.liveOf !== st || this.liveQ !== st.q || this.liveBytes === null) {
      this.liveBytes = encodeData(st.message(st.count - 1));
      this.liveOf = st;
      this.liveQ = st.q;
    }
    return this.liveBytes;
  }

  /** Trades have no snapshot; a deferred start is handled by {@link replayFrom}. */
  snapshot(st: TradeState, _view: number): Uint8Array {
    return this.live(st, 0);
  }

  hold(st: TradeState, sub: Subscription, first: boolean): void {
    // The cursor: the client has every trade before this one.
    if (first) sub.since = st.count > 1 ? st.qAt(st.count - 2) : st.heldFrom;
  }

  release(st: TradeState, sub: Subscription): void {
    this.replay(st, sub, sub.since);
  }

  /**
   * Pushes every trade after position `from` to the subscription's client,
   * in order: a `gap` first when trades after `from` have left the history.
   * Leaves the cursor at the newest trade. Returns the trades sent.
   */
  replay(st: TradeState, sub: Subscription, from: number): number {
    const c = sub.client;
    if (from < st.heldFrom) {
      c.push('gap', encode({ t: 'gap', s: st.symbol, from, to: st.heldFrom }));
      this.gapsSent++;
    }
    let n = 0;
    for (let k = st.after(from); k < st.count; k++) {
      c.push('trade', encodeData(st.message(k)));
      n++;
    }
    sub.since = st.q;
    this.replayed += n;
    return n;
  }

  /** The cursor after which the `n` most recent trades follow (fewer if the history has fewer). */
  cursorForLast(symbol: string, n: number): number {
    const st = this.trades.get(symbol);
    if (st === undefined) return 0;
    if (n === 0) return st.q;
    return n >= st.count ? st.heldFrom : st.qAt(st.count - n - 1);
  }

  /**
   * Whether a client at `from` under epoch `e` can be brought up to date
   * from the history: the same epoch, and nothing after `from` has left it.
   */
  recoverable(symbol: string, e: string, from: number): boolean {
    const pos = this.position(symbol);
    if (e !== pos.e) return false;
    const st = this.trades.get(symbol);
    return st === undefined ? from === 0 || from <= pos.q : from >= st.heldFrom || from >= st.q;
  }

  status(symbol: string, status: ChannelStatus): Uint8Array {
    return encode({ t: 'stat', s: symbol, st: status, ch: 'trade' });
  }
}
