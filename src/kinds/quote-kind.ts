/**
 * Quotes: a merged record of fields per symbol (top of book, last trade,
 * session values and the deployment's configured fields). Live, a
 * subscriber gets `upd` with the fields of the tick; held back, a
 * subscription keeps only the q it stands at, and is released as one `upd`
 * with every field changed since, at its current value, and `n` = ticks
 * merged. A snapshot is `snap` with the whole record.
 */
import { encode, encodeData } from '../protocol/codec.js';
import type { FieldSchema } from '../protocol/field-schema.js';
import type { Tick } from '../feed/normalize.js';
import { SymbolStore, type SymbolState } from '../state/symbol-state.js';
import type { ChannelStatus } from '../fanout/channel.js';
import type { Kind } from '../fanout/kind.js';
import type { Subscription } from '../fanout/subscription.js';

export class QuoteKind implements Kind<SymbolState, Tick> {
  readonly name = 'quote';
  readonly snapshotType = 'snap';
  readonly liveType = 'upd';
  readonly merges = true;
  readonly store: SymbolStore;
  // One-entry cache of the live upd: every subscriber of this fan-out gets
  // the same bytes. Not kept per symbol, so a quiet symbol pins no encoder slab.
  private liveOf: SymbolState | null = null;
  private liveQ = 0;
  private liveBytes: Uint8Array | null = null;

  constructor(schema: FieldSchema) {
    this.store = new SymbolStore(schema);
  }

  get size(): number {
    return this.store.size;
  }

  apply(tick: Tick, feed: string): SymbolState | null {
    return this.store.apply(tick, feed);
  }

  /**
   * A tick read from a warm-start store: older than anything live, so it
   * only fills fields the symbol does not have yet.
   */
  applyStored(tick: Tick, feed: string): SymbolState | null {
    const st = this.store.get(tick.symbol);
    if (st !== undefined) {
      const v = tick.values;
      const t = tick.texts;
      for (let i = 0; i < v.length; i++) {
        if (!st.has(i)) continue;
        v[i] = NaN;
        if (t !== null) t[i] = null;
      }
    }
    return this.store.apply(tick, feed);
  }

  state(symbol: string): SymbolState | undefined {
    return this.store.get(symbol);
  }

  states(): Iterable<SymbolState> {
    return this.store.all();
  }

  live(st: SymbolState, _view: number): Uint8Array {
    if (this.liveOf !== st || this.liveQ !== st.q || this.liveBytes === null) {
      this.liveBytes = encodeData({ t: 'upd', s: st.symbol, q: st.q, d: st.fields(st.q - 1) });
      this.liveOf = st;
      this.liveQ = st.q;
    }
    return this.liveBytes;
  }

  snapshot(st: SymbolState, _view: number): Uint8Array {
    if (st.snapBytes === null || st.snapQ !== st.q) {
      // Copied out of the encoder's shared slab: a cached slice would keep
      // the whole slab alive for as long as the symbol stays quiet.
      st.snapBytes = encodeData({ t: 'snap', s: st.symbol, q: st.q, d: st.fields(0) }).slice();
      st.snapQ = st.q;
    }
    return st.snapBytes;
  }

  hold(st: SymbolState, sub: Subscription, first: boolean): void {
    // Before this tick the client had everything: it stands at q - 1.
    if (first) sub.since = st.q - 1;
  }

  /**
   * The merged `upd`: every field changed since the subscription's q, at its
   * current value. Cached per symbol, so clients throttled on the same
   * interval (due together, same position) share the bytes.
   */
  release(st: SymbolState, sub: Subscription): void {
    sub.client.push('upd', this.merged(st, sub));
  }

  private merged(st: SymbolState, sub: Subscription): Uint8Array {
    const since = sub.since;
    const n = sub.pendingN;
    if (st.mergedBytes !== null && st.mergedQ === st.q && st.mergedSince === since && st.mergedN === n) return st.mergedBytes;
    const d = st.fields(since);
    const msg = n > 1 ? { t: 'upd', s: st.symbol, q: st.q, d, n } : { t: 'upd', s: st.symbol, q: st.q, d };
    st.mergedBytes = encodeData(msg).slice();
    st.mergedQ = st.q;
    st.mergedSince = since;
    st.mergedN = n;
    return st.mergedBytes;
  }

  status(symbol: string, status: ChannelStatus): Uint8Array {
    return encode({ t: 'stat', s: symbol, st: status });
  }
}
