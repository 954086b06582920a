/**
 * Unit tests of the SDK's local order book and its checksum: the CRC32 is
 * Node's `zlib.crc32`, the checksum is PROTOCOL.md's, and applying the
 * window diffs a gateway sends (changed levels, removed levels, levels
 * entering from below; never the levels pushed out) keeps exactly the
 * gateway's window.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32 } from './crc32.js';
import { bookChecksum, LocalBook } from './order-book.js';

type Level = [number, number];

/** PROTOCOL.md's checksum, written the obvious way in Node. */
function reference(asks: Level[], bids: Level[], depth: number): number {
  const k = Math.min(depth, 25);
  const levels = [...asks.slice(0, k), ...bids.slice(0, k)];
  const buf = Buffer.alloc(levels.length * 16);
  levels.forEach(([p, s], i) => {
    buf.writeDoubleBE(p, 16 * i);
    buf.writeDoubleBE(s, 16 * i + 8);
  });
  return zlibCrc32(buf) >>> 0;
}

describe('crc32', () => {
  it('equals zlib.crc32 (IEEE)', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        expect(crc32(bytes)).toBe(zlibCrc32(bytes) >>> 0);
      }),
    );
  });

  it('covers only the first `length` bytes', () => {
    const b = new Uint8Array([1, 2, 3, 4, 5]);
    expect(crc32(b, 3)).toBe(zlibCrc32(b.subarray(0, 3)) >>> 0);
  });
});

describe('bookChecksum', () => {
  const level = fc.tuple(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }));
  it('is the protocol checksum: top min(depth, 25) asks then bids, big-endian float64 price then size', () => {
    fc.assert(
      fc.property(fc.array(level, { maxLength: 40 }), fc.array(level, { maxLength: 40 }), fc.constantFrom(1, 5, 10, 25, 50, 100), (asks, bids, depth) => {
        expect(bookChecksum(asks, bids, depth)).toBe(reference(asks, bids, depth));
      }),
    );
  });

  it('tells a one-ulp difference apart', () => {
    const a: Level[] = [[100.01, 5]];
    expect(bookChecksum(a, [], 10)).not.toBe(bookChecksum([[100.01 + 1.4210854715202004e-14, 5]], [], 10));
  });
});

/** A gateway's full book and the window diffs it sends, per PROTOCOL.md's bupd. */
class Gateway {
  readonly bids = new Map<number, number>();
  readonly asks = new Map<number, number>();
  constructor(readonly depth: number) {}

  window(): { bids: Level[]; asks: Level[] } {
    return {
      bids: [...this.bids].sort((a, b) => b[0] - a[0]).slice(0, this.depth),
      asks: [...this.asks].sort((a, b) => a[0] - b[0]).slice(0, this.depth),
    };
  }

  /** Applies level changes to the full book; returns the bupd sides for a client at `depth`. */
  change(bids: Level[], asks: Level[]): { bids: Level[]; asks: Level[] } {
    const before = this.window();
    for (const [p, s] of bids) s === 0 ? this.bids.delete(p) : this.bids.set(p, s);
    for (const [p, s] of asks) s === 0 ? this.asks.delete(p) : this.asks.set(p, s);
    const after = this.window();
    const diff = (was: Level[], now: Level[], full: Map<number, number>): Level[] => {
      const old = new Map(was);
      const out: Level[] = now.filter(([p, s]) => old.get(p) !== s);
      // Removed from the book: named with size 0. Pushed below the window: not named.
      for (const [p] of was) if (!now.some((l) => l[0] === p) && !full.has(p)) out.push([p, 0]);
      return out;
    };
    return { bids: diff(before.bids, after.bids, this.bids), asks: diff(before.asks, after.asks, this.asks) };
  }
}

describe('LocalBook', () => {
  const price = fc.integer({ min: 1, max: 40 }).map((x) => x / 4);
  const levels = (max: number) => fc.uniqueArray(fc.tuple(price, fc.integer({ min: 0, max: 4 })), { selector: (l) => l[0], maxLength: max });

  it('a book then window diffs give exactly the gateway window, with its checksum', () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 5, 10, 25), levels(30), levels(30), fc.array(fc.tuple(levels(5), levels(5)), { maxLength: 60 }), (depth, bids0, asks0, changes) => {
        const gw = new Gateway(depth);
        const bidsOf = (l: Level[]): Level[] => l.map(([p, s]) => [p, s]);
        const asksOf = (l: Level[]): Level[] => l.map(([p, s]) => [20 + p, s]);
        gw.change(bidsOf(bids0).filter((l) => l[1] > 0), asksOf(asks0).filter((l) => l[1] > 0));
        const book = new LocalBook('B', depth);
        const w0 = gw.window();
        expect(book.replace(w0.bids, w0.asks, 1)).toBe(true);
        expect(book.checksum()).toBe(reference(w0.asks, w0.bids, depth));
        let q = 1;
        for (const [b, a] of changes) {
          const d = gw.change(bidsOf(b), asksOf(a));
          expect(book.apply(d.bids.length ? d.bids : undefined, d.asks.length ? d.asks : undefined, ++q)).toBe(true);
          const w = gw.window();
          expect(book.bids).toEqual(w.bids);
          expect(book.asks).toEqual(w.asks);
          expect(book.checksum()).toBe(reference(w.asks, w.bids, depth));
        }
        expect(book.q).toBe(q);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses malformed sides without changing the book', () => {
    const book = new LocalBook('B', 5);
    book.replace([[10, 1]], [[11, 2]], 1);
    for (const bad of ['x', [[10]], [[10, 'a']], [[10, -1]], [[Number.NaN, 1]], [[10, Infinity]], [null]]) {
      expect(book.apply(bad, undefined, 2)).toBe(false);
      expect(book.replace(bad, [], 2)).toBe(false);
    }
    expect(book.bids).toEqual([[10, 1]]);
    expect(book.asks).toEqual([[11, 2]]);
    expect(book.q).toBe(1);
  });

  it('cuts a book longer than its depth', () => {
    const book = new LocalBook('B', 1);
    book.replace(
      [
        [10, 1],
        [9, 1],
      ],
      [],
      1,
    );
    expect(book.bids).toEqual([[10, 1]]);
  });
});
