import { describe, it, expect } from 'vitest';
import { encode } from '@msgpack/msgpack';
import { OrderBooks, bookChecksum, bookMessageError, bookSubRequest, crc32, type Book, type Bupd, type Level } from './book.ts';
import type { MsgpackMap } from './msgpack.ts';
import { parseFrame } from './protocol.ts';

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const px = (x: number) => Math.round(x * 100) / 100;
// 30 levels per side around 100, as in the Python reference below.
const asks30: Level[] = Array.from({ length: 30 }, (_, i) => [px(100 + 0.01 * (i + 1)), i + 1]);
const bids30: Level[] = Array.from({ length: 30 }, (_, i) => [px(100 - 0.01 * (i + 1)), 0.5 + i]);

describe('crc32', () => {
  it('gives the standard check values (zlib, IEEE polynomial)', () => {
    expect(crc32(ascii('123456789'))).toBe(0xcbf43926);
    expect(crc32(ascii('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
    expect(crc32(new Uint8Array(0))).toBe(0);
    // Only the first `length` bytes count.
    expect(crc32(ascii('123456789xyz'), 9)).toBe(0xcbf43926);
  });
});

describe('bookChecksum', () => {
  // Reference values from Python, as docs/PROTOCOL.md gives it:
  // zlib.crc32(b"".join(struct.pack(">dd", p, s) for p, s in asks[:k] + bids[:k])), k = min(depth, 25)
  it('equals the protocol reference computed with Python zlib and struct', () => {
    expect(bookChecksum([[100.01, 3]], [[99.99, 1.5]], 10)).toBe(1533944699);
    expect(bookChecksum(asks30, bids30, 5)).toBe(584618709);
    expect(bookChecksum(asks30, bids30, 1)).toBe(1180394315);
    expect(bookChecksum(asks30.slice(0, 3), [], 10)).toBe(4272160295);
    expect(bookChecksum([], [], 10)).toBe(0);
  });

  it('covers at most 25 levels per side, asks first', () => {
    expect(bookChecksum(asks30, bids30, 50)).toBe(2172329780);
    expect(bookChecksum(asks30, bids30, 25)).toBe(2172329780);
    expect(bookChecksum(asks30.slice(0, 25), bids30.slice(0, 25), 100)).toBe(2172329780);
    expect(bookChecksum(bids30, asks30, 25)).not.toBe(2172329780);
  });
});

const cs = (asks: Level[], bids: Level[], depth: number) => bookChecksum(asks, bids, depth);

describe('OrderBooks', () => {
  it('replaces on book, sets and removes levels on bupd, cuts to depth, and checks every cs', () => {
    const books = new OrderBooks(3);
    const bids: Level[] = [[99, 1], [98, 2], [97, 3]];
    const asks: Level[] = [[101, 1], [102, 2]];
    expect(books.apply({ t: 'book', s: 'A', q: 5, bids, asks, cs: cs(asks, bids, 3) })).toBe('ok');
    // A better bid pushes 97 below the window; 102 leaves and 103 enters from below.
    const b2: Level[] = [[99.5, 4], [99, 1], [98, 2]];
    const a2: Level[] = [[101, 7], [103, 1]];
    const up: Bupd = { t: 'bupd', s: 'A', q: 6, bids: [[99.5, 4]], asks: [[101, 7], [102, 0], [103, 1]], cs: cs(a2, b2, 3) };
    expect(books.apply(up)).toBe('ok');
    expect(books.window('A')).toEqual({ q: 6, bids: b2, asks: a2 });
    // A side left out is unchanged; a removal of a level not held changes nothing.
    const b3: Level[] = [[99.5, 4], [98, 2]];
    expect(books.apply({ t: 'bupd', s: 'A', q: 7, bids: [[99, 0], [50, 0]], cs: cs(a2, b3, 3) })).toBe('ok');
    expect(books.window('A')).toEqual({ q: 7, bids: b3, asks: a2 });
    // The book's own arrays are not kept.
    expect(bids).toEqual([[99, 1], [98, 2], [97, 3]]);
  });

  it('sorts and cuts a book it is given, whatever its order', () => {
    const books = new OrderBooks(2);
    const m: Book = { t: 'book', s: 'A', q: 1, bids: [[1, 1], [3, 1], [2, 1]], asks: [[9, 1], [7, 1], [8, 1]], cs: cs([[7, 1], [8, 1]], [[3, 1], [2, 1]], 2) };
    expect(books.apply(m)).toBe('ok');
    expect(books.window('A')).toEqual({ q: 1, bids: [[3, 1], [2, 1]], asks: [[7, 1], [8, 1]] });
  });

  it('drops a book on a checksum mismatch or a q that is not the previous + 1, and ignores bupds until a fresh book', () => {
    const books = new OrderBooks(10);
    const bids: Level[] = [[99, 1]];
    const asks: Level[] = [[101, 1]];
    const book = (q: number): Book => ({ t: 'book', s: 'A', q, bids, asks, cs: cs(asks, bids, 10) });
    const same = (q: number): Bupd => ({ t: 'bupd', s: 'A', q, bids: [[99, 1]], cs: cs(asks, bids, 10) });
    expect(books.apply({ t: 'bupd', s: 'A', q: 1, bids: [[99, 1]], cs: 0 })).toBe('ignored');
    expect(books.apply(book(1))).toBe('ok');
    expect(books.apply({ ...same(2), cs: 12345 })).toBe('mismatch');
    expect(books.window('A')).toBeUndefined();
    expect(books.apply(same(3))).toBe('ignored');
    expect(books.apply(book(3))).toBe('ok');
    expect(books.apply(same(5))).toBe('break');
    expect(books.apply(same(6))).toBe('ignored');
    expect(books.apply(book(6))).toBe('ok');
    expect(books.apply(same(7))).toBe('ok');
    // A book with a wrong cs is a mismatch too.
    expect(books.apply({ ...book(8), cs: 1 })).toBe('mismatch');
    expect(books.size).toBe(0);
  });

  it('keeps an exact window through many random changes, against a plain reference book', () => {
    let x = 3;
    const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
    for (const depth of [1, 5, 25, 50]) {
      const ref = { bids: new Map<number, number>(), asks: new Map<number, number>() };
      const win = () => ({
        bids: [...ref.bids].sort((a, b) => b[0] - a[0]).slice(0, depth),
        asks: [...ref.asks].sort((a, b) => a[0] - b[0]).slice(0, depth),
      });
      const books = new OrderBooks(depth);
      let q = 1;
      let w = win();
      expect(books.apply({ t: 'book', s: 'A', q, bids: w.bids, asks: w.asks, cs: cs(w.asks, w.bids, depth) })).toBe('ok');
      for (let i = 0; i < 2000; i++) {
        const before = win();
        const changes = { bids: new Map<number, number>(), asks: new Map<number, number>() };
        for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) {
          const bid = rnd() < 0.5;
          const p = px(100 + (bid ? -1 : 1) * 0.01 * (1 + Math.floor(rnd() * 80)));
          (bid ? changes.bids : changes.asks).set(p, rnd() < 0.3 ? 0 : 1 + Math.floor(rnd() * 50));
        }
        for (const [p, s] of changes.bids) s === 0 ? ref.bids.delete(p) : ref.bids.set(p, s);
        for (const [p, s] of changes.asks) s === 0 ? ref.asks.delete(p) : ref.asks.set(p, s);
        w = win();
        // What a gateway sends: every level of the new window that is new or changed, and size 0 for those that left.
        const diff = (was: Level[], now: Level[]): Level[] => {
          const old = new Map(was);
          const out: Level[] = now.filter(([p, s]) => old.get(p) !== s);
          for (const [p] of was) if (!now.some(([np]) => np === p)) out.push([p, 0]);
          return out;
        };
        const db = diff(before.bids, w.bids);
        const da = diff(before.asks, w.asks);
        if (db.length + da.length === 0) continue;
        const m: Bupd = { t: 'bupd', s: 'A', q: ++q, cs: cs(w.asks, w.bids, depth), ...(db.length ? { bids: db } : {}), ...(da.length ? { asks: da } : {}) };
        expect(books.apply(m)).toBe('ok');
      }
      expect(books.window('A')).toEqual({ q, ...w });
    }
  });
});

describe('book messages in frames', () => {
  it('parseFrame keeps book and bupd and refuses malformed ones', () => {
    const good = encode([
      { t: 'ack', op: 'sub', ok: ['A'], err: [], channel: 'book', depth: 10 },
      { t: 'book', s: 'A', q: 1, bids: [[99.5, 1]], asks: [], cs: 7 },
      { t: 'bupd', s: 'A', q: 2, asks: [[100, 2]], cs: 8 },
      { t: 'stat', s: 'A', st: 'stale', ch: 'book' },
    ]);
    const r = parseFrame(good);
    expect(r.ok && r.messages.map((m) => m.t)).toEqual(['ack', 'book', 'bupd', 'stat']);
    const bad: MsgpackMap[] = [
      { t: 'book', s: 'A', q: 1, bids: [], cs: 1 },
      { t: 'book', s: 'A', q: 1, bids: [], asks: [], cs: '1' },
      { t: 'bupd', s: 'A', q: 2, bids: [[1]], cs: 1 },
      { t: 'bupd', s: 'A', q: 2, bids: [[1, '2']], cs: 1 },
      { t: 'bupd', q: 2, cs: 1 },
      { t: 'bupd', s: 'A', q: 2, asks: { 1: 2 }, cs: 1 },
    ];
    for (const m of bad) {
      expect(bookMessageError(m), JSON.stringify(m)).not.toBeNull();
      expect(parseFrame(encode([m])).ok).toBe(false);
    }
    expect(bookMessageError({ t: 'bupd', s: 'A', q: 2, cs: 1 })).toBeNull();
  });

  it('bookSubRequest writes the book channel, the depth and a throttle only when set', () => {
    expect(JSON.parse(bookSubRequest('b', ['A', 'B'], 10))).toEqual({ op: 'sub', id: 'b', channel: 'book', symbols: ['A', 'B'], depth: 10 });
    expect(JSON.parse(bookSubRequest(2, ['A'], 25, 100))).toEqual({ op: 'sub', id: 2, channel: 'book', symbols: ['A'], depth: 25, throttleMs: 100 });
  });
});
