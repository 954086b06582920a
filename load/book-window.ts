/**
 * A benchmark client's order book: one window of one book as the protocol
 * defines it (docs/PROTOCOL.md "Order books"): a `book` replaces it, a
 * `bupd` sets the levels it names (size 0 removes) and the client cuts each
 * side to its depth, then the window's CRC32 must equal `cs`.
 *
 * Also the MessagePack sizes the benchmark reports: of a message as decoded
 * (what it took on the wire, under the gateway's encoder options) and of the
 * whole window as one `book` message, what a naive gateway would send on
 * every change instead of a `bupd`.
 */
import { crc32 } from 'node:zlib';
import type { Level } from './book-sim.js';

/** Levels per side covered by `cs` (CHECKSUM_LEVELS in src/protocol/messages.ts). */
export const CHECKSUM_LEVELS = 25;

/**
 * Bytes of a number as msgpackr encodes it with the gateway's data options
 * (`useRecords: false`): positive integers below 2^32 and negative ones from
 * -2^31 in the smallest integer form, everything else as a float64.
 */
export function numberSize(x: number): number {
  if (x >>> 0 === x) return x < 0x80 ? 1 : x < 0x100 ? 2 : x < 0x10000 ? 3 : 5;
  if (x >> 0 === x) return x >= -0x20 ? 1 : x >= -0x80 ? 2 : x >= -0x8000 ? 3 : 5;
  return 9;
}

function strSize(s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  return (n < 0x20 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5) + n;
}

const containerHeader = (n: number) => (n < 16 ? 1 : n < 0x10000 ? 3 : 5);

/** Encoded size of a decoded MessagePack value (maps as plain objects), as the gateway's encoder writes it. */
export function packedSize(v: unknown): number {
  switch (typeof v) {
    case 'number':
      return numberSize(v);
    case 'string':
      return strSize(v);
    case 'boolean':
      return 1;
    case 'object': {
      if (v === null) return 1;
      if (Array.isArray(v)) {
        let n = containerHeader(v.length);
        for (const x of v) n += packedSize(x);
        return n;
      }
      if (v instanceof Uint8Array) return (v.length < 0x100 ? 2 : v.length < 0x10000 ? 3 : 5) + v.length;
      let n = 0;
      let keys = 0;
      for (const k in v) {
        keys++;
        n += strSize(k) + packedSize((v as Record<string, unknown>)[k]);
      }
      return containerHeader(keys) + n;
    }
    default:
      return 1;
  }
}

/** Keys of a `book` message and their encoded sizes: t, s, q, bids, asks, cs (six keys: a fixmap). */
const BOOK_FIXED = 1 + (2 + 5) + 2 + 2 + 5 + 5 + 3;

const levelSize = (p: number, s: number) => 1 + numberSize(p) + numberSize(s);

/** One side, best first: bids descending, asks ascending. */
class WindowSide {
  prices: number[] = [];
  sizes: number[] = [];
  /** Encoded bytes of the levels as `[p, s]` pairs (without the array header), kept as levels change. */
  private levelBytes = 0;

  constructor(readonly bid: boolean) {}

  /** Index of `price`, or -(insertion point) - 1. */
  find(price: number): number {
    const p = this.prices;
    let lo = 0;
    let hi = p.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const x = p[mid]!;
      if (this.bid ? x > price : x < price) lo = mid + 1;
      else hi = mid;
    }
    return lo < p.length && p[lo] === price ? lo : -lo - 1;
  }

  replace(levels: readonly Level[] | undefined): void {
    this.prices.length = 0;
    this.sizes.length = 0;
    this.levelBytes = 0;
    if (levels === undefined) return;
    for (const [p, s] of levels) {
      this.prices.push(p);
      this.sizes.push(s);
      this.levelBytes += levelSize(p, s);
    }
  }

  /** Sets each named level (size 0 removes); false when a removal named a level the window did not hold. */
  apply(levels: readonly Level[] | undefined): boolean {
    if (levels === undefined) return true;
    let ok = true;
    for (let i = 0; i < levels.length; i++) {
      const lv = levels[i]!;
      const p = lv[0];
      const s = lv[1];
      const at = this.find(p);
      if (at >= 0) {
        this.levelBytes -= levelSize(p, this.sizes[at]!);
        if (s === 0) {
          this.prices.splice(at, 1);
          this.sizes.splice(at, 1);
        } else {
          this.sizes[at] = s;
          this.levelBytes += levelSize(p, s);
        }
      } else if (s === 0) ok = false;
      else {
        const ins = -at - 1;
        this.prices.splice(ins, 0, p);
        this.sizes.splice(ins, 0, s);
        this.levelBytes += levelSize(p, s);
      }
    }
    return ok;
  }

  cut(depth: number): void {
    const n = this.prices.length;
    if (n <= depth) return;
    for (let i = depth; i < n; i++) this.levelBytes -= levelSize(this.prices[i]!, this.sizes[i]!);
    this.prices.length = depth;
    this.sizes.length = depth;
  }

  /** Encoded bytes of the side as `[[p, s], ...]`. */
  bytes(): number {
    return containerHeader(this.prices.length) + this.levelBytes;
  }
}

const scratch = new Uint8Array(CHECKSUM_LEVELS * 2 * 16);
// A DataView writes a big-endian float64 in about 1.5 ns; Buffer.writeDoubleBE, which validates its arguments on every call, in about 11.
const view = new DataView(scratch.buffer);

/** One client's window of one book. */
export class ClientBook {
  readonly bids = new WindowSide(true);
  readonly asks = new WindowSide(false);
  /** q of the state held; 0 before the first `book`. */
  q = 0;
  /** Waiting for a fresh `book` after a mismatch (bupds are ignored meanwhile). */
  resyncing = false;
  private readonly symbolBytes: number;

  constructor(
    readonly symbol: string,
    readonly depth: number,
  ) {
    this.symbolBytes = strSize(symbol);
  }

  /** A `book`: the whole window. */
  replace(q: number, bids: readonly Level[] | undefined, asks: readonly Level[] | undefined): void {
    this.bids.replace(bids);
    this.asks.replace(asks);
    this.q = q;
    this.resyncing = false;
  }

  /** A `bupd`: sets the named levels and cuts to depth. False when it removed a level the window did not hold. */
  apply(q: number, bids: readonly Level[] | undefined, asks: readonly Level[] | undefined): boolean {
    const ok = this.bids.apply(bids) && this.asks.apply(asks);
    this.bids.cut(this.depth);
    this.asks.cut(this.depth);
    this.q = q;
    return ok;
  }

  /** CRC32 (IEEE) of the top min(depth, 25) asks then bids, each price then size as big-endian float64. */
  checksum(): number {
    const k = Math.min(this.depth, CHECKSUM_LEVELS);
    let off = 0;
    for (const side of [this.asks, this.bids]) {
      const n = Math.min(k, side.prices.length);
      for (let i = 0; i < n; i++) {
        view.setFloat64(off, side.prices[i]!);
        view.setFloat64(off + 8, side.sizes[i]!);
        off += 16;
      }
    }
    return crc32(scratch.subarray(0, off)) >>> 0;
  }

  /** Encoded bytes of this window as one `book` message with checksum `cs`: what a gateway without deltas would send. */
  windowBytes(cs: number): number {
    return BOOK_FIXED + this.symbolBytes + numberSize(this.q) + this.bids.bytes() + this.asks.bytes() + numberSize(cs);
  }

  /** Levels held, both sides. */
  get levels(): number {
    return this.bids.prices.length + this.asks.prices.length;
  }

  /** The sizes of the window, both sides (to read the times they carry). */
  *allSizes(): IterableIterator<number> {
    yield* this.bids.sizes;
    yield* this.asks.sizes;
  }
}
