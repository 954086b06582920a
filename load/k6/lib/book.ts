/**
 * Order books as a protocol client keeps them (docs/PROTOCOL.md, Order
 * books): a `book` replaces the window, a `bupd` sets the levels it names
 * (size 0 removes one) and then each side is cut to the depth; after each
 * message the window's checksum must equal `cs`.
 *
 * k6 has no zlib, so CRC32 is computed here (the table-driven IEEE CRC, the
 * value of Node's and Python's `zlib.crc32`); the tests check it against
 * Node's. Plain TypeScript with type-only imports and no k6 modules, so it
 * runs under Node too: the unit tests and the integration test against a
 * real gateway (test/k6-books.nats.test.ts) use this very file.
 */
import type { MsgpackMap, MsgpackValue } from './msgpack.ts';

/** One price level, `[price, size]`. */
export type Level = [number, number];

export interface Book {
  t: 'book';
  s: string;
  q: number;
  /** Best (highest) first. */
  bids: Level[];
  /** Best (lowest) first. */
  asks: Level[];
  cs: number;
}

export interface Bupd {
  t: 'bupd';
  s: string;
  q: number;
  /** Absent when the side has no change inside the window. */
  bids?: Level[];
  asks?: Level[];
  cs: number;
}

/** The depths a subscription may ask for (at most the gateway's `book.maxDepth`). */
export const BOOK_DEPTHS: readonly number[] = [1, 5, 10, 25, 50, 100, 500, 1000];

/** Levels per side covered by `cs`: the top min(depth, this). */
export const CHECKSUM_LEVELS = 25;

const CRC_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32 (IEEE 802.3, reflected, as zlib) of the first `length` bytes. */
export function crc32(bytes: Uint8Array, length = bytes.length): number {
  let c = 0xffffffff;
  for (let i = 0; i < length; i++) c = (CRC_TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// Room for the most a checksum covers: 25 levels per side, 16 bytes each. Reused by every call.
const CS_BYTES = new Uint8Array(2 * CHECKSUM_LEVELS * 16);
const CS_VIEW = new DataView(CS_BYTES.buffer);

function putLevels(levels: readonly Level[], k: number, at: number): number {
  const n = Math.min(k, levels.length);
  for (let i = 0; i < n; i++) {
    const l = levels[i] as Level;
    CS_VIEW.setFloat64(at, l[0], false);
    CS_VIEW.setFloat64(at + 8, l[1], false);
    at += 16;
  }
  return at;
}

/**
 * The protocol's `cs` of a window: CRC32 over the top min(depth, 25) asks,
 * then as many bids, each level's price and size as big-endian float64.
 */
export function bookChecksum(asks: readonly Level[], bids: readonly Level[], depth: number): number {
  const k = Math.min(depth, CHECKSUM_LEVELS);
  return crc32(CS_BYTES, putLevels(bids, k, putLevels(asks, k, 0)));
}

function isLevelList(v: MsgpackValue | undefined): boolean {
  if (!Array.isArray(v)) return false;
  for (const l of v) if (!Array.isArray(l) || l.length !== 2 || typeof l[0] !== 'number' || typeof l[1] !== 'number') return false;
  return true;
}

/**
 * Why a decoded `book` or `bupd` map breaks the protocol, or null when it is
 * well-formed: `s`, `q` and `cs` present, each side a list of
 * `[price, size]` numbers (required in `book`, optional in `bupd`).
 */
export function bookMessageError(m: MsgpackMap): string | null {
  const t = m['t'];
  if (typeof m['s'] !== 'string' || typeof m['q'] !== 'number' || typeof m['cs'] !== 'number') return `${String(t)} without s, q or cs`;
  for (const side of ['bids', 'asks']) {
    const v = m[side];
    if (v === undefined && t === 'bupd') continue;
    if (!isLevelList(v)) return `${String(t)} ${m['s']}: ${side} is not a list of [price, size]`;
  }
  return null;
}

/** `sub` to the book channel as a JSON text frame. */
export function bookSubRequest(id: string | number, symbols: readonly string[], depth: number, throttleMs = 0): string {
  const req: Record<string, unknown> = { op: 'sub', id, channel: 'book', symbols, depth };
  if (throttleMs > 0) req['throttleMs'] = throttleMs;
  return JSON.stringify(req);
}

/**
 * What applying a message did: `ok` (applied, checksum matches);
 * `mismatch` (applied, checksum differs) and `break` (a `bupd` whose `q` is
 * not the previous + 1), after both of which the book is dropped and the
 * client must resubscribe; `ignored` for a `bupd` with no book to apply to
 * (none yet, or dropped and waiting for the fresh one).
 */
export type BookOutcome = 'ok' | 'mismatch' | 'break' | 'ignored';

/** One symbol's window; sides best first. */
export interface BookWindow {
  q: number;
  bids: Level[];
  asks: Level[];
}

/** Index of `price` in a side sorted best first, or where it would go. */
function seek(side: readonly Level[], price: number, highestFirst: boolean): number {
  let lo = 0;
  let hi = side.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const p = (side[mid] as Level)[0];
    if (highestFirst ? p > price : p < price) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function setLevels(side: Level[], changes: readonly Level[], highestFirst: boolean): void {
  for (const [price, size] of changes) {
    const i = seek(side, price, highestFirst);
    const found = i < side.length && (side[i] as Level)[0] === price;
    if (size === 0) {
      if (found) side.splice(i, 1);
    } else if (found) (side[i] as Level)[1] = size;
    else side.splice(i, 0, [price, size]);
  }
}

function sortedCopy(levels: readonly Level[], highestFirst: boolean, depth: number): Level[] {
  const out = levels.map((l): Level => [l[0], l[1]]);
  out.sort(highestFirst ? (a, b) => b[0] - a[0] : (a, b) => a[0] - b[0]);
  if (out.length > depth) out.length = depth;
  return out;
}

/** The books of one subscription depth, per symbol. */
export class OrderBooks {
  private readonly held = new Map<string, BookWindow>();

  constructor(readonly depth: number) {}

  apply(m: Book | Bupd): BookOutcome {
    let w = this.held.get(m.s);
    if (m.t === 'book') {
      // A book arrives sorted and cut; sorting again is cheap and trusts nothing.
      w = { q: m.q, bids: sortedCopy(m.bids, true, this.depth), asks: sortedCopy(m.asks, false, this.depth) };
      this.held.set(m.s, w);
    } else {
      if (w === undefined) return 'ignored';
      if (m.q !== w.q + 1) {
        this.held.delete(m.s);
        return 'break';
      }
      if (m.bids !== undefined) setLevels(w.bids, m.bids, true);
      if (m.asks !== undefined) setLevels(w.asks, m.asks, false);
      if (w.bids.length > this.depth) w.bids.length = this.depth;
      if (w.asks.length > this.depth) w.asks.length = this.depth;
      w.q = m.q;
    }
    if (bookChecksum(w.asks, w.bids, this.depth) !== m.cs) {
      this.held.delete(m.s);
      return 'mismatch';
    }
    return 'ok';
  }

  /** The held window (the live object), or undefined while there is none. */
  window(symbol: string): Readonly<BookWindow> | undefined {
    return this.held.get(symbol);
  }

  /** Forgets a symbol (after an `unsub` ack, or to wait for a fresh book). */
  drop(symbol: string): void {
    this.held.delete(symbol);
  }

  get size(): number {
    return this.held.size;
  }
}
