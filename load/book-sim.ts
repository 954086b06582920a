/**
 * Order-book churn for benchmarks: `books` L2 books, each kept here as the
 * source's own truth, and a stream of change messages in the payload shape
 * of a book feed (`{s, bids, asks, seq, ts}`, docs/PROTOCOL.md "Order
 * books"), shared by the in-process benchmark (bench/book-fanout.ts) and the
 * NATS publisher (load/book-publisher.ts) so that both measure one workload.
 *
 * The churn, per message:
 * - the book: Zipf-weighted by rank (the busiest books change most);
 * - its levels: 1 + a geometric count (mean `levelsPerMessage`), each on a
 *   random side; 60% size updates, 20% deletions, 20% insertions of a new
 *   price (more of one or the other when a side drifts from its size);
 * - where: mostly near the top (rank exponential with mean `topMean`), a
 *   `deepFraction` anywhere in the side; prices on a 0.01 grid, never
 *   crossing the other side;
 * - every message changes the book (sizes always differ), so the gateway's
 *   `q` advances once per message.
 *
 * Sizes carry the message's time: a size is an integer part (1 to 999) plus
 * a fraction that is the message's `ts` in microseconds modulo 2^32, over
 * 2^32 (exact in a float64: 10 + 32 bits). The gateway's `bupd` names the
 * changed levels but carries no `ts`, so this is how a client measures
 * source-to-client latency without a side channel. Real sizes are
 * fractional too (0.0153 BTC), so a size costs what it would on the wire: a
 * MessagePack float64.
 */

import { symbolPicker } from './subscribers.js';

/** 2^32: the period of the time carried in sizes, in microseconds (about 71.6 minutes). */
export const TS_PERIOD_US = 4294967296;

/** mulberry32: a small seeded generator. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A size whose fraction carries `tsMs` (wall-clock ms) to the microsecond; `whole` from 1 to 999. */
export function sizeAt(whole: number, tsMs: number): number {
  const us = Math.round(tsMs * 1000);
  const mod = ((us % TS_PERIOD_US) + TS_PERIOD_US) % TS_PERIOD_US;
  return whole + mod / TS_PERIOD_US;
}

/**
 * The time a size carries, in wall-clock ms, read against `nowMs` (the
 * receiver's clock): the latest time congruent to it modulo 2^32 µs that is
 * not after `nowMs` plus a little clock skew. NaN for a size without one (0).
 */
export function tsOfSize(size: number, nowMs: number): number {
  if (!(size > 0)) return NaN;
  const mod = Math.round((size - Math.floor(size)) * TS_PERIOD_US);
  const nowUs = Math.round(nowMs * 1000);
  const nowMod = ((nowUs % TS_PERIOD_US) + TS_PERIOD_US) % TS_PERIOD_US;
  let back = nowMod - mod;
  // Up to a second in the future is clock skew or rounding; anything else is from the previous period.
  if (back < -1_000_000) back += TS_PERIOD_US;
  return (nowUs - back) / 1000;
}

export type Level = [number, number];

/** A book message as a feed publishes it (decoded form). */
export interface BookMessage {
  s: string;
  snapshot?: boolean;
  bids?: Level[];
  asks?: Level[];
  seq: number;
  ts: number;
}

/** One side of a source book: price ticks sorted best first, with sizes. */
class Side {
  /** sign x ticks, ascending: best first (bids: -ticks). */
  keys: number[] = [];
  sizes: number[] = [];

  constructor(readonly sign: 1 | -1) {}

  find(key: number): number {
    const k = this.keys;
    let lo = 0;
    let hi = k.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (k[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  get n(): number {
    return this.keys.length;
  }
}

export interface BookSimOptions {
  books: number;
  /** Levels per side at the start, and the size each side hovers around. */
  levels: number;
  /** Zipf exponent of activity across books (0: uniform). */
  zipf: number;
  /** Mean levels per change message. */
  levelsPerMessage: number;
  /** Mean rank (from the top) of a change near the top. */
  topMean: number;
  /** Share of changes anywhere in the side instead of near the top. */
  deepFraction: number;
  seed: number;
}

export const BOOK_SIM_DEFAULTS: BookSimOptions = { books: 200, levels: 100, zipf: 1, levelsPerMessage: 3, topMean: 3, deepFraction: 0.15, seed: 11 };

/** The symbol of book i: `BK-000` ... (a valid NATS subject token and gateway symbol). */
export function bookSymbol(i: number): string {
  return `BK-${String(i).padStart(3, '0')}`;
}

/** Each book's share of the change messages (Zipf weights by index). */
export function bookShares(books: number, zipf: number): Float64Array {
  const w = new Float64Array(books);
  let sum = 0;
  for (let i = 0; i < books; i++) sum += w[i] = (i + 1) ** -zipf;
  for (let i = 0; i < books; i++) w[i]! /= sum;
  return w;
}

export class BookSim {
  readonly opts: BookSimOptions;
  readonly symbols: string[];
  private readonly bids: Side[] = [];
  private readonly asks: Side[] = [];
  private readonly seq: number[] = [];
  private readonly rand: () => number;
  private readonly cumulative: Float64Array;
  /** Prices already used on each side by the message being built (no duplicate price within a message). */
  private readonly usedBid = new Set<number>();
  private readonly usedAsk = new Set<number>();

  constructor(opts: Partial<BookSimOptions> = {}) {
    this.opts = { ...BOOK_SIM_DEFAULTS, ...opts };
    const o = this.opts;
    this.rand = rng(o.seed);
    this.symbols = Array.from({ length: o.books }, (_, i) => bookSymbol(i));
    const shares = bookShares(o.books, o.zipf);
    this.cumulative = new Float64Array(o.books);
    let c = 0;
    for (let i = 0; i < o.books; i++) this.cumulative[i] = c += shares[i]!;
    for (let i = 0; i < o.books; i++) {
      // Mid prices from 10 to 50,000 on a 0.01 grid, log-uniform.
      const mid = Math.round(100 * Math.exp(Math.log(10) + this.rand() * Math.log(5000)));
      const bid = new Side(-1);
      const ask = new Side(1);
      let b = mid - 1;
      let a = mid + 1;
      for (let k = 0; k < o.levels; k++) {
        // About 80% of the ticks near the top hold a level.
        while (this.rand() < 0.2) b--;
        while (this.rand() < 0.2) a++;
        if (b <= 0) break;
        bid.keys.push(-b);
        bid.sizes.push(0);
        ask.keys.push(a);
        ask.sizes.push(0);
        b--;
        a++;
      }
      this.bids.push(bid);
      this.asks.push(ask);
      this.seq.push(0);
    }
  }

  /** A whole book as a snapshot message, sizes stamped with `tsMs`. */
  snapshot(i: number, tsMs: number): BookMessage {
    const bid = this.bids[i]!;
    const ask = this.asks[i]!;
    for (const side of [bid, ask]) for (let k = 0; k < side.n; k++) side.sizes[k] = sizeAt(this.whole(), tsMs);
    return { s: this.symbols[i]!, snapshot: true, bids: levelsOf(bid), asks: levelsOf(ask), seq: ++this.seq[i]!, ts: tsMs };
  }

  /** The book a change message goes to: Zipf-weighted. */
  pickBook(): number {
    const u = this.rand();
    const c = this.cumulative;
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The next change message (of a Zipf-picked book), stamped `tsMs`; `levels` changes were applied to the source book. */
  next(tsMs: number): BookMessage {
    return this.change(this.pickBook(), tsMs);
  }

  /** A change message for book i. */
  change(i: number, tsMs: number): BookMessage {
    const o = this.opts;
    const bid = this.bids[i]!;
    const ask = this.asks[i]!;
    this.usedBid.clear();
    this.usedAsk.clear();
    const bids: Level[] = [];
    const asks: Level[] = [];
    // 1 + geometric: mean levelsPerMessage, at most 20.
    const more = Math.max(0, o.levelsPerMessage - 1);
    const q = more / (1 + more);
    let n = 1;
    while (n < 20 && this.rand() < q) n++;
    for (let k = 0; k < n; k++) {
      const isBid = this.rand() < 0.5;
      // A side whose own move is impossible (a full tick grid between the sides) is skipped; bounded retries.
      for (let tries = 0; tries < 4; tries++) {
        const lv = isBid ? this.touch(bid, ask, this.usedBid, tsMs) : this.touch(ask, bid, this.usedAsk, tsMs);
        if (lv !== null) {
          (isBid ? bids : asks).push(lv);
          break;
        }
      }
    }
    if (bids.length + asks.length === 0) {
      // Always a change: the best bid's size (a side never goes below two levels).
      const size = sizeAt(this.whole(), tsMs);
      bid.sizes[0] = size === bid.sizes[0] ? size + 1 : size;
      bids.push([priceOf(bid, 0), bid.sizes[0]]);
    }
    // Best first, as a feed would send them.
    bids.sort((x, y) => y[0] - x[0]);
    asks.sort((x, y) => x[0] - y[0]);
    const msg: BookMessage = { s: this.symbols[i]!, seq: ++this.seq[i]!, ts: tsMs };
    if (bids.length > 0) msg.bids = bids;
    if (asks.length > 0) msg.asks = asks;
    return msg;
  }

  /** The best levels of book i, as a quote would carry them. */
  top(i: number): { bid: number; bidSize: number; ask: number; askSize: number } {
    const b = this.bids[i]!;
    const a = this.asks[i]!;
    return { bid: priceOf(b, 0), bidSize: b.sizes[0] ?? 0, ask: priceOf(a, 0), askSize: a.sizes[0] ?? 0 };
  }

  /** The top `depth` levels of book i, best first (the source's truth, for checks). */
  window(i: number, depth: number): { bids: Level[]; asks: Level[] } {
    return { bids: levelsOf(this.bids[i]!).slice(0, depth), asks: levelsOf(this.asks[i]!).slice(0, depth) };
  }

  private whole(): number {
    return 1 + Math.floor(this.rand() * 999);
  }

  private rank(side: Side): number {
    if (side.n === 0) return 0;
    if (this.rand() < this.opts.deepFraction) return Math.floor(this.rand() * side.n);
    return Math.min(side.n - 1, Math.floor(-Math.log(1 - this.rand()) * this.opts.topMean));
  }

  /** One level change on `side` (the other side bounds insertions at the top); null when none was possible. */
  private touch(side: Side, other: Side, used: Set<number>, tsMs: number): Level | null {
    const target = this.opts.levels;
    const r = this.rand();
    // Drift back towards `target` levels: fewer deletions when thin, fewer insertions when thick.
    const pDelete = side.n <= 2 ? 0 : side.n < target * 0.8 ? 0.1 : side.n > target * 1.2 ? 0.3 : 0.2;
    const pInsert = side.n < target * 0.8 ? 0.3 : side.n > target * 1.2 ? 0.1 : 0.2;
    if (r < pDelete) {
      const at = this.rank(side);
      const key = side.keys[at]!;
      if (used.has(key)) return null;
      used.add(key);
      const price = priceOf(side, at);
      side.keys.splice(at, 1);
      side.sizes.splice(at, 1);
      return [price, 0];
    }
    if (r < pDelete + pInsert) {
      const at = this.rank(side);
      // A free tick just outside level `at` (towards the worse side), or better than the best without crossing.
      let key: number;
      if (at === 0 && side.n > 0) {
        key = side.keys[0]! - 1;
        // The other side's best key, mirrored: a bid key -b must stay above -(best ask).
        const otherBest = other.n > 0 ? -other.keys[0]! : -Infinity;
        if (!(key > otherBest)) return null;
      } else {
        const base = side.n > 0 ? side.keys[Math.min(at, side.n - 1)]! : side.sign > 0 ? 100 : -100;
        key = base + 1;
        while (side.find(key) < side.n && side.keys[side.find(key)] === key) key++;
      }
      if (side.sign < 0 && key >= 0) return null; // a bid price must stay positive
      if (used.has(key)) return null;
      used.add(key);
      const at2 = side.find(key);
      const size = sizeAt(this.whole(), tsMs);
      side.keys.splice(at2, 0, key);
      side.sizes.splice(at2, 0, size);
      return [priceOf(side, at2), size];
    }
    if (side.n === 0) return null;
    const at = this.rank(side);
    const key = side.keys[at]!;
    if (used.has(key)) return null;
    used.add(key);
    let size = sizeAt(this.whole(), tsMs);
    if (size === side.sizes[at]) size += size < 998 ? 1 : -1;
    side.sizes[at] = size;
    return [priceOf(side, at), size];
  }
}

function priceOf(side: Side, i: number): number {
  return (side.sign * side.keys[i]!) / 100;
}

function levelsOf(side: Side): Level[] {
  const out: Level[] = new Array<Level>(side.n);
  for (let i = 0; i < side.n; i++) out[i] = [priceOf(side, i), side.sizes[i]!];
  return out;
}

/** Level changes in a message (both sides). */
export function levelCount(m: BookMessage): number {
  return (m.bids?.length ?? 0) + (m.asks?.length ?? 0);
}

/**
 * The books of client `index` (a global index, so the picks do not depend
 * on how clients are split over processes): `k` books from its own seeded
 * stream, uniformly or Zipf-weighted by book rank.
 */
export function bookPicker(symbols: readonly string[], zipf: number, uniform: boolean, seed: number): (index: number, k: number) => string[] {
  let current = rng(seed);
  const pick = symbolPicker(symbols, zipf, uniform, () => current());
  return (index, k) => {
    current = rng(Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b));
    return pick(k);
  };
}

/** How client `index` subscribes: depths in turn, and a `throttledFraction` of the clients, evenly spread, throttled. */
export function clientProfile(index: number, depths: readonly number[], throttledFraction: number, throttleMs: number): { depth: number; throttleMs: number } {
  const throttled = Math.floor((index + 1) * throttledFraction) > Math.floor(index * throttledFraction);
  return { depth: depths[index % depths.length]!, throttleMs: throttled ? throttleMs : 0 };
}

export interface BookPopulation {
  books: number;
  zipf: number;
  clients: number;
  booksPerClient: number;
  pickZipf: number;
  uniform: boolean;
  seed: number;
  depths: readonly number[];
  throttledFraction: number;
  throttleMs: number;
}

/**
 * Per change message, the `bupd`s the subscriptions imply: the sum over
 * unthrottled clients of their books' shares of the messages (every message
 * that changes a book reaches each of its live subscribers, with or without
 * levels inside their window). Throttled subscriptions get at most one
 * `book` per interval instead.
 */
export function expectedBupdPerMessage(p: BookPopulation): number {
  const shares = bookShares(p.books, p.zipf);
  const index = new Map(Array.from({ length: p.books }, (_, i) => [bookSymbol(i), i]));
  const pick = bookPicker([...index.keys()], p.pickZipf, p.uniform, p.seed);
  let sum = 0;
  for (let c = 0; c < p.clients; c++) {
    if (clientProfile(c, p.depths, p.throttledFraction, p.throttleMs).throttleMs > 0) continue;
    for (const s of pick(c, p.booksPerClient)) sum += shares[index.get(s)!]!;
  }
  return sum;
}
