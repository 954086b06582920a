/**
 * Trade history: per symbol, a bounded ring of its recent trades in
 * position order. Subscriptions hold a cursor (a position) into it, never
 * copies of trades; the ring keeps at most `size` trades and none older
 * than `ttlMs`.
 */

/** One symbol's trades. */
export class TradeState {
  /** Position of the newest trade: 0 before any. */
  q = 0;
  feed = '';
  stale = false;
  /** Every trade with a position above this is in the ring (trades up to it were evicted or never seen). */
  heldFrom = 0;
  /** Subject of the last message, to read older trades back from a stream. */
  subject = '';
  // Ring storage, grown on demand up to `size`.
  private cap = 0;
  private start = 0;
  count = 0;
  private qs = new Float64Array(0);
  private px = new Float64Array(0);
  private sz = new Float64Array(0);
  private ts = new Float64Array(0);
  private at = new Float64Array(0);
  private side = new Uint8Array(0);
  private id: (string | number | null)[] = [];

  constructor(
    readonly symbol: string,
    /** The epoch of the positions: the gateway incarnation, or the stream. */
    public epoch: string,
    private readonly size: number,
    private readonly ttlMs: number,
    /** Every trade above this position will be seen (0: from the first one). */
    heldFrom = 0,
  ) {
    this.heldFrom = heldFrom;
  }

  /** Appends a trade at position `q` (above every held one); `now` is its receipt time. */
  append(q: number, px: number, sz: number, side: number, id: string | number | null, ts: number, now: number): void {
    if (this.count === this.cap) {
      if (this.cap < this.size) this.grow();
      else this.evict();
    }
    const i = (this.start + this.count) % this.cap;
    this.qs[i] = q;
    this.px[i] = px;
    this.sz[i] = sz;
    this.side[i] = side;
    this.id[i] = id;
    this.ts[i] = ts;
    this.at[i] = now;
    this.count++;
    this.q = q;
  }

  /** Drops trades older than the TTL; cheap when there are none (one comparison). */
  trim(now: number): void {
    if (this.ttlMs <= 0) return;
    while (this.count > 0 && now - this.at[this.start]! > this.ttlMs) this.evict();
  }

  private evict(): void {
    this.heldFrom = this.qs[this.start]!;
    this.id[this.start] = null;
    this.start = (this.start + 1) % this.cap;
    this.count--;
  }

  private grow(): void {
    const cap = Math.min(this.size, Math.max(16, this.cap * 2));
    const move = <T extends Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      for (let k = 0; k < this.count; k++) b[k] = a[(this.start + k) % this.cap]!;
      return b;
    };
    this.qs = move(this.qs, (n) => new Float64Array(n));
    this.px = move(this.px, (n) => new Float64Array(n));
    this.sz = move(this.sz, (n) => new Float64Array(n));
    this.ts = move(this.ts, (n) => new Float64Array(n));
    this.at = move(this.at, (n) => new Float64Array(n));
    this.side = move(this.side, (n) => new Uint8Array(n));
    const id = new Array<string | number | null>(cap).fill(null);
    for (let k = 0; k < this.count; k++) id[k] = this.id[(this.start + k) % this.cap]!;
    this.id = id;
    this.start = 0;
    this.cap = cap;
  }

  /** Index (0 = oldest held) of the first trade with a position above `q`; `count` when none. */
  after(q: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.qAt(mid) <= q) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  qAt(k: number): number {
    return this.qs[(this.start + k) % this.cap]!;
  }

  /** The trade at index `k` (0 = oldest held) as its wire message (`t: "trade"`). */
  message(k: number): Record<string, unknown> {
    const i = (this.start + k) % this.cap;
    const m: Record<string, unknown> = { t: 'trade', s: this.symbol, q: this.qs[i], px: this.px[i], sz: this.sz[i] };
    const side = this.side[i];
    if (side === 1) m['side'] = 'b';
    else if (side === 2) m['side'] = 's';
    const id = this.id[i];
    if (id !== null && id !== undefined) m['id'] = id;
    const ts = this.ts[i]!;
    if (ts === ts) m['ts'] = ts;
    return m;
  }
}
