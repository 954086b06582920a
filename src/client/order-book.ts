/**
 * A client's copy of one order book window, kept by the protocol's rules
 * (docs/PROTOCOL.md, Order books): a `book` replaces both sides, a `bupd`
 * sets each level it names (size 0 removes it) and then each side is cut to
 * the subscription's depth. `checksum()` recomputes the gateway's `cs` over
 * the exact float64 values, so a wrong book is noticed on the first message
 * after it went wrong.
 *
 * Sides are plain arrays of `[price, size]`, best first, as decoded: a
 * `book`'s arrays become the sides without a copy, and a `bupd` level
 * replaces the element at its price (found by binary search), so a reader
 * holding an old level tuple never sees it change.
 */
import { crc32 } from './crc32.js';
import type { BookLevel, OrderBook } from './types.js';

/** The depths a gateway accepts for a book subscription. */
export const BOOK_DEPTHS: readonly number[] = [1, 5, 10, 25, 50, 100, 500, 1000];

/** Levels per side that `cs` covers at most. */
const CHECKSUM_LEVELS = 25;

// One scratch buffer for every book: the SDK is single-threaded and a checksum never yields.
const scratch = new DataView(new ArrayBuffer(CHECKSUM_LEVELS * 2 * 16));
const scratchBytes = new Uint8Array(scratch.buffer);

/**
 * The protocol's checksum of a window: CRC32 (IEEE) over the top
 * min(depth, 25) asks, then as many bids, each level as its price and then
 * its size in big-endian float64.
 */
export function bookChecksum(asks: readonly BookLevel[], bids: readonly BookLevel[], depth: number): number {
  const k = Math.min(depth, CHECKSUM_LEVELS);
  return crc32(scratchBytes, writeLevels(bids, k, writeLevels(asks, k, 0)));
}

/** Writes the top `k` levels of a side at `off` (DataView's default byte order is big-endian); returns the end. */
function writeLevels(side: readonly BookLevel[], k: number, off: number): number {
  const n = Math.min(k, side.length);
  for (let i = 0; i < n; i++) {
    const l = side[i]!;
    scratch.setFloat64(off, l[0]);
    scratch.setFloat64(off + 8, l[1]);
    off += 16;
  }
  return off;
}

/** A level as the wire must carry it: two finite numbers, a size not below 0. */
function isLevel(l: unknown): l is BookLevel {
  if (!Array.isArray(l) || l.length < 2) return false;
  const p: unknown = l[0];
  const s: unknown = l[1];
  return typeof p === 'number' && typeof s === 'number' && Number.isFinite(p) && Number.isFinite(s) && s >= 0;
}

function isSide(v: unknown): v is BookLevel[] {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!isLevel(v[i])) return false;
  return true;
}

/** Index of `price` in a side, or `~insertionPoint` when absent. Bids are sorted high to low, asks low to high. */
function search(side: readonly BookLevel[], price: number, bids: boolean): number {
  let lo = 0;
  let hi = side.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const p = side[mid]![0];
    if (p === price) return mid;
    if (bids ? p > price : p < price) lo = mid + 1;
    else hi = mid;
  }
  return ~lo;
}

/** Sets (size > 0) or removes (size 0) each level of `changes` in `side`. */
function setLevels(side: BookLevel[], changes: readonly BookLevel[], bids: boolean): void {
  for (let i = 0; i < changes.length; i++) {
    const l = changes[i]!;
    const at = search(side, l[0], bids);
    if (at >= 0) {
      if (l[1] === 0) side.splice(at, 1);
      else side[at] = l;
    } else if (l[1] !== 0) {
      side.splice(~at, 0, l);
    }
  }
}

const NONE: readonly BookLevel[] = [];

export class LocalBook implements OrderBook {
  bids: BookLevel[] = [];
  asks: BookLevel[] = [];
  q = 0;
  /** True while the window matches the gateway's last checksum on this connection. */
  synced = false;

  constructor(
    readonly symbol: string,
    public depth: number,
  ) {}

  /** Replaces the window with a `book`'s sides; false (and the book unchanged) when they are malformed. */
  replace(bids: unknown, asks: unknown, q: number): boolean {
    if (!isSide(bids) || !isSide(asks)) return false;
    this.bids = bids;
    this.asks = asks;
    if (bids.length > this.depth) bids.length = this.depth;
    if (asks.length > this.depth) asks.length = this.depth;
    this.q = q;
    return true;
  }

  /**
   * Applies a `bupd`'s sides (either may be absent) and cuts to depth. False
   * when a side is malformed, before anything is applied.
   */
  apply(bids: unknown, asks: unknown, q: number): boolean {
    const b = bids === undefined ? NONE : bids;
    const a = asks === undefined ? NONE : asks;
    if (!isSide(b) || !isSide(a)) return false;
    setLevels(this.bids, b, true);
    setLevels(this.asks, a, false);
    if (this.bids.length > this.depth) this.bids.length = this.depth;
    if (this.asks.length > this.depth) this.asks.length = this.depth;
    this.q = q;
    return true;
  }

  /** The window's checksum, to compare with the message's `cs`. */
  checksum(): number {
    return bookChecksum(this.asks, this.bids, this.depth);
  }
}
