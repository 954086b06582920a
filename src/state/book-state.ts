/**
 * Order-book state: per symbol, two sides of price levels kept sorted best
 * first, at most `maxLevels` each, with the gateway's own per-book sequence
 * `q`. A side stores each level's key (the price for asks, minus the price
 * for bids) so that both sides sort ascending and share one code path.
 */

/** What setting one level did. */
export const LevelChange = { None: 0, Inserted: 1, Updated: 2, Deleted: 3, Dropped: 4 } as const;
export type LevelChange = (typeof LevelChange)[keyof typeof LevelChange];

export class BookSide {
  /** Sort keys, ascending: best level first. */
  keys: Float64Array;
  sizes: Float64Array;
  n = 0;

  constructor(
    /** 1 for asks (lowest price best), -1 for bids (highest price best). */
    readonly sign: 1 | -1,
    readonly maxLevels: number,
  ) {
    const cap = Math.min(maxLevels, 64);
    this.keys = new Float64Array(cap);
    this.sizes = new Float64Array(cap);
  }

  price(i: number): number {
    // + 0: a bid at price 0 has key -0; its price is 0.
    return this.sign * this.keys[i]! + 0;
  }

  /** Index of `key`, or -(insertion point) - 1 when absent. */
  find(key: number): number {
    const k = this.keys;
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (k[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.n && k[lo] === key ? lo : -lo - 1;
  }

  /** Sets the level at `price` to `size` (0 deletes). */
  set(price: number, size: number): LevelChange {
    const key = this.sign * price;
    const i = this.find(key);
    if (i >= 0) {
      if (size === 0) {
        this.keys.copyWithin(i, i + 1, this.n);
        this.sizes.copyWithin(i, i + 1, this.n);
        this.n--;
        return LevelChange.Deleted;
      }
      if (this.sizes[i] === size) return LevelChange.None;
      this.sizes[i] = size;
      return LevelChange.Updated;
    }
    if (size === 0) return LevelChange.None;
    const at = -i - 1;
    if (this.n === this.maxLevels) {
      // Full: the new level is dropped if it is the worst, else the worst goes.
      if (at === this.n) return LevelChange.Dropped;
      this.n--;
      this.insertAt(at, key, size);
      return LevelChange.Dropped;
    }
    this.insertAt(at, key, size);
    return LevelChange.Inserted;
  }

  private insertAt(at: number, key: number, size: number): void {
    if (this.n === this.keys.length) {
      const cap = Math.min(this.maxLevels, this.keys.length * 2);
      const keys = new Float64Array(cap);
      const sizes = new Float64Array(cap);
      keys.set(this.keys);
      sizes.set(this.sizes);
      this.keys = keys;
      this.sizes = sizes;
    }
    this.keys.copyWithin(at + 1, at, this.n);
    this.sizes.copyWithin(at + 1, at, this.n);
    this.keys[at] = key;
    this.sizes[at] = size;
    this.n++;
  }

  clear(): void {
    this.n = 0;
  }
}

/** One symbol's book. */
export class BookState {
  /** Gateway sequence: +1 per message that changed the book (a snapshot always does). */
  q = 0;
  feed = '';
  readonly bids: BookSide;
  readonly asks: BookSide;
  /** A snapshot arrived since the gateway started (changes before it are refused). */
  hasSnapshot = false;
  /** A sequence gap was seen: the book is wrong until the next snapshot. */
  resyncing = false;
  /** The source's last seq, NaN when it sends none. */
  lastSeq = NaN;
  /** Its feed is stale (disconnected or silent). */
  feedStale = false;
  /** Encoded `book` messages by depth slot, for `bookQ[slot]`. */
  readonly bookBytes: (Uint8Array | null)[];
  readonly bookQ: Float64Array;

  constructor(
    readonly symbol: string,
    maxLevels: number,
    depthSlots: number,
  ) {
    this.bids = new BookSide(-1, maxLevels);
    this.asks = new BookSide(1, maxLevels);
    this.bookBytes = new Array<Uint8Array | null>(depthSlots).fill(null);
    this.bookQ = new Float64Array(depthSlots);
  }

  /** Stale for clients: its feed is, or it waits for a snapshot after a gap. */
  get stale(): boolean {
    return this.feedStale || this.resyncing;
  }

  set stale(v: boolean) {
    this.feedStale = v;
  }

  /** Best bid >= best ask. */
  get crossed(): boolean {
    return this.bids.n > 0 && this.asks.n > 0 && this.bids.price(0) >= this.asks.price(0);
  }

  /** Levels held on both sides. */
  get levels(): number {
    return this.bids.n + this.asks.n;
  }
}
