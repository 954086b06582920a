/**
 * Quote state store: the last full state of every symbol, merged tick by
 * tick, with the gateway's own per-symbol sequence `q`.
 *
 * Each field slot remembers the `q` at which it last changed (`fieldQ`).
 * That one number per field answers every question delivery asks: the
 * fields of the tick just applied are those with `fieldQ == q`, what a
 * client that last saw `q0` is missing is `fieldQ > q0`, and a snapshot is
 * `fieldQ > 0`. A held-back subscription therefore keeps one number, not a
 * field mask, and the schema has no width limit.
 */
import type { Tick } from '../feed/normalize.js';
import { CANONICAL_SCHEMA, type FieldSchema } from '../protocol/field-schema.js';

/** The full state of one symbol. */
export class SymbolState {
  /** Gateway sequence: 1 for the first tick that set state, +1 per tick that changed it. */
  q = 0;
  /** One slot per numeric field of the schema; NaN until the feed first sends it. */
  readonly values: Float64Array;
  /** Text slots' values (undefined until set); null when the schema has no text field. */
  readonly texts: (string | undefined)[] | null;
  /** Per slot: the q of its last change; 0 while it has no value. */
  readonly fieldQ: Float64Array;
  /** Fields changed by the last applied tick. */
  changedCount = 0;
  /** Feed that last updated this symbol. */
  feed = '';
  /** Its feed is stale (disconnected or silent): the state is the last known, not current. */
  stale = false;
  /** Encoded `snap` for `snapQ`, shared by every subscriber that asks while it is current. */
  snapBytes: Uint8Array | null = null;
  snapQ = 0;
  /** Encoded merged `upd` for (mergedQ, mergedSince, mergedN), shared by clients due together. */
  mergedBytes: Uint8Array | null = null;
  mergedQ = 0;
  mergedSince = 0;
  mergedN = 0;

  constructor(
    readonly symbol: string,
    readonly schema: FieldSchema = CANONICAL_SCHEMA,
  ) {
    this.values = new Float64Array(schema.count).fill(NaN);
    this.fieldQ = new Float64Array(schema.count);
    this.texts = schema.textSlots.length > 0 ? new Array<string | undefined>(schema.count) : null;
  }

  /** Whether slot `i` has a value. */
  has(i: number): boolean {
    return this.fieldQ[i]! > 0;
  }

  /**
   * The `d` map of a message: every field that changed after `sinceQ` at its
   * current value, in slot order (canonical fields first). 0 gives the whole
   * state (a snapshot); `q - 1` the fields of the last tick.
   */
  fields(sinceQ = 0): Record<string, number | string> {
    const d: Record<string, number | string> = {};
    const fq = this.fieldQ;
    const names = this.schema.names;
    const texts = this.texts;
    for (let i = 0; i < fq.length; i++) {
      if (fq[i]! > sinceQ) d[names[i]!] = texts !== null && this.schema.isText[i] === 1 ? texts[i]! : this.values[i]!;
    }
    return d;
  }

  /** The names of the fields that changed after `sinceQ` (all present fields for 0), in slot order. */
  fieldsSince(sinceQ: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.schema.count; i++) if (this.fieldQ[i]! > sinceQ) out.push(this.schema.names[i]!);
    return out;
  }
}

/** All known symbols and their states. */
export class SymbolStore {
  private readonly states = new Map<string, SymbolState>();
  private sorted: string[] | null = [];

  constructor(readonly schema: FieldSchema = CANONICAL_SCHEMA) {}

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
   * changed (`q` advanced, the changed slots stamped with it), or null when
   * the tick repeated what the state already held.
   */
  apply(tick: Tick, feed: string): SymbolState | null {
    let st = this.states.get(tick.symbol);
    if (st === undefined) {
      st = new SymbolState(tick.symbol, this.schema);
      this.states.set(tick.symbol, st);
      this.sorted = null;
    }
    const v = tick.values;
    const row = st.values;
    const fq = st.fieldQ;
    const q = st.q + 1;
    const n = row.length;
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const x = v[i]!;
      // NaN in the tick means "not sent"; NaN in the row means "never set".
      if (x === x && x !== row[i]) {
        row[i] = x;
        fq[i] = q;
        changed++;
      }
    }
    const texts = tick.texts;
    if (texts !== null && st.texts !== null) {
      for (const i of this.schema.textSlots) {
        const t = texts[i];
        if (t !== null && t !== undefined && t !== st.texts[i]) {
          st.texts[i] = t;
          fq[i] = q;
          changed++;
        }
      }
    }
    st.changedCount = changed;
    if (changed === 0) return null;
    st.q = q;
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
