/**
 * Decode and validate trade payloads: one trade, or a batch for one symbol,
 *
 *   { s, px, sz, side?: "b" | "s", id?: string | integer, ts? }
 *   { s, trades: [{ px, sz, side?, id?, ts? }, ...] }
 *
 * into a reused {@link TradeEvent}. Each bad trade is rejected on its own,
 * with a reason counter; the good ones of the same message are kept.
 */
import type { FeedConfig } from '../config.js';
import { toText } from '../protocol/field-schema.js';
import { FeedCounters, isPayloadMap, toNumber } from './normalize.js';
import { PayloadNormalizer } from './payload-normalizer.js';

/** Why a trade (or a whole trade message) was rejected; a metric label, so the set is closed. */
export type TradeRejectReason = 'decode' | 'not_object' | 'no_symbol' | 'bad_symbol' | 'bad_shape' | 'bad_px' | 'bad_sz' | 'bad_side' | 'bad_id' | 'bad_ts' | 'empty';

export const TRADE_REJECT_REASONS: readonly TradeRejectReason[] = ['decode', 'not_object', 'no_symbol', 'bad_symbol', 'bad_shape', 'bad_px', 'bad_sz', 'bad_side', 'bad_id', 'bad_ts', 'empty'];

/** Side codes: 0 unknown, 1 buy, 2 sell. */
export const SIDE_NONE = 0;
export const SIDE_BUY = 1;
export const SIDE_SELL = 2;

export class TradeCounters extends FeedCounters {
  /** Trades accepted (each trade of a batch counts). */
  trades = 0;
  readonly rejected: Record<TradeRejectReason, number> = Object.fromEntries(TRADE_REJECT_REASONS.map((r) => [r, 0])) as Record<TradeRejectReason, number>;
}

/** The valid trades of one message, in order; reused: consume before the next message. */
export class TradeEvent {
  symbol = '';
  n = 0;
  px = new Float64Array(8);
  sz = new Float64Array(8);
  side = new Uint8Array(8);
  /** NaN when absent. */
  ts = new Float64Array(8);
  id: (string | number | null)[] = new Array<string | number | null>(8).fill(null);
  /** The JetStream sequence of the message; NaN when it did not come from a stream. */
  streamSeq = NaN;
  /** From a stream: the first sequence its source read (every message from it on is seen). */
  streamFrom = NaN;
  /** The subject it was published on. */
  subject = '';
  /** The trade the kind applies next (the hub walks the message's trades). */
  index = 0;
  /** Its feed adds each trade's size to the quote's volume. */
  addVolume = false;

  constructor(readonly counters: TradeCounters) {}

  push(px: number, sz: number, side: number, id: string | number | null, ts: number): void {
    if (this.n === this.px.length) {
      const grow = <T extends Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.px = grow(this.px, (n) => new Float64Array(n));
      this.sz = grow(this.sz, (n) => new Float64Array(n));
      this.ts = grow(this.ts, (n) => new Float64Array(n));
      this.side = grow(this.side, (n) => new Uint8Array(n));
      this.id.length = this.px.length;
    }
    const i = this.n++;
    this.px[i] = px;
    this.sz[i] = sz;
    this.side[i] = side;
    this.id[i] = id;
    this.ts[i] = ts;
  }
}

export class TradeNormalizer extends PayloadNormalizer<TradeEvent, TradeRejectReason> {
  readonly counters = new TradeCounters();
  private readonly event = new TradeEvent(this.counters);

  constructor(feed: FeedConfig) {
    super(feed);
    this.event.addVolume = feed.volume;
  }

  protected fromMap(subject: string, symbol: string, obj: Record<string, unknown>): TradeEvent | TradeRejectReason {
    const ev = this.event;
    ev.n = 0;
    ev.streamSeq = NaN;
    ev.index = 0;
    ev.subject = subject;
    const batch = obj['trades'];
    if (batch !== undefined) {
      if (!Array.isArray(batch)) return this.reject('bad_shape');
      for (const t of batch) {
        if (!isPayloadMap(t)) this.reject('not_object');
        else this.read(t);
      }
    } else {
      this.read(obj);
    }
    if (ev.n === 0) return batch !== undefined && batch.length > 0 ? 'empty' : this.reject('empty');
    ev.symbol = symbol;
    this.counters.accepted++;
    return ev;
  }

  /** Reads one trade into the event, or counts why not. */
  private read(t: Record<string, unknown>): void {
    const px = toNumber(t['px']);
    if (!Number.isFinite(px)) return void this.reject('bad_px');
    const sz = toNumber(t['sz']);
    if (!Number.isFinite(sz) || sz <= 0) return void this.reject('bad_sz');
    const rawSide = t['side'] ?? null;
    const side = rawSide === null ? 0 : rawSide === 'b' ? 1 : rawSide === 's' ? 2 : -1;
    if (side < 0) return void this.reject('bad_side');
    const rawId = t['id'] ?? null;
    let id: string | number | null = null;
    if (rawId !== null) {
      if (typeof rawId === 'number' && Number.isSafeInteger(rawId)) id = rawId;
      else if (typeof rawId === 'string' && rawId !== '' && toText(rawId) !== null) id = rawId;
      else return void this.reject('bad_id');
    }
    const rawTs = t['ts'] ?? null;
    const ts = rawTs === null ? NaN : toNumber(rawTs);
    if (rawTs !== null && !Number.isFinite(ts)) return void this.reject('bad_ts');
    // + 0: -0 is written as 0.
    this.event.push(px + 0, sz, side, id, ts);
    this.counters.trades++;
  }

  reject(reason: TradeRejectReason): TradeRejectReason {
    this.counters.rejected[reason]++;
    return reason;
  }
}
