/**
 * Symbol state store: the last full state of every symbol, merged tick by
 * tick, with the gateway's own per-symbol sequence `q`.
 */
import { FIELD_COUNT } from '../protocol/fields.js';
import type { Tick } from '../feed/normalize.js';

/** The full state of one symbol. */
export class SymbolState {
  /** Gateway sequence: 1 for the first tick that set state, +1 per tick that changed it. */
  q = 0;
  /** One slot per canonical field; NaN until the feed first sends it. */
  readonly values = new Float64Array(FIELD_COUNT).fill(NaN);
  /** Bit i set: field i has a value. */
  present = 0;
  /** Bit i set: field i changed in the last applied tick. */
  changed = 0;
  /** Feed that last updated this symbol. */
  feed = '';
  /** Its feed is stale (disconnected or silent): the state is the last known, not current. */
  stale = false;
  /** Encoded `snap` for `snapQ`, shared by every subscriber that asks while it is current. */
  snapBytes: Uint8Array | null = null;
  snapQ = 0;
  /** Encoded merged `upd` for (mergedQ, mergedMask, mergedN), shared by clients due together. */
  mergedBytes: Uint8Array | null = null;
  mergedQ = 0;
  mergedMask = 0;
  mergedN = 0;

  constructor(readonly symbol: string) {}
}

/** All known symbols and their states. */
export class SymbolStore {
  private readonly states = new Map<string, SymbolState>();
  private sorted: string[] | null = [];

  /** Number of known symbols. */
  get size(): number {
    return this.states.size;
  }

  get(symbol: string): SymbolState | undefined {
    return this.states.get(symbol);
  }

  /** Every known symbol's state (for rare, whole-store walks such as a feed going stale). */
  all(): IterableIterator<SymbolState> {
    return this.states.values();
  }

  /**
   * Merges a tick into its symbol's state. Returns the state when anything
   * changed (with `changed` set and `q` advanced), or null when the tick
   * repeated what the state already held.
   */
  apply(tick: Tick, feed: string, known: SymbolState | undefined = this.states.get(tick.symbol)): SymbolState | null {
    // `known`: the caller's own lookup of the symbol, so the tick path looks it up once.
    let st = known;
    if (st === undefined) {
      st = new SymbolState(tick.symbol);
      this.states.set(tick.symbol, st);
      this.sorted = null;
    }
    const v = tick.values;
    const row = st.values;
    let changed = 0;
    for (let i = 0; i < FIELD_COUNT; i++) {
      const x = v[i]!;
      // NaN in the tick means "not sent"; NaN in the row means "never set".
      if (x === x && x !== row[i]) {
        row[i] = x;
        changed |= 1 << i;
      }
    }
    st.changed = changed;
    if (changed === 0) return null;
    st.present |= changed;
    st.q++;
    st.feed = feed;
    return st;
  }

  /** Known symbols starting with `prefix` (and passing `filter`), sorted, at most `limit`; `more` when cut. */
  list(prefix: string, limit: number, filter: ((symbol: string) => boolean) | null = null): { symbols: string[]; more: boolean } {
    // Sorted lazily: symbols are added rarely, listed now and then.
    const all = (this.sorted ??= [...this.states.keys()].sort());
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (all[mid]! < prefix) lo = mid + 1;
      else hi = mid;
    }
    const symbols: string[] = [];
    for (let i = lo; i < all.length && all[i]!.startsWith(prefix); i++) {
      if (filter !== null && !filter(all[i]!)) continue;
      if (symbols.length === limit) return { symbols, more: true };
      symbols.push(all[i]!);
    }
    return { symbols, more: false };
  }
}
