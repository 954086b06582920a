/**
 * L2 order books. A subscription's view is its depth. Live, a subscriber
 * gets `bupd` with the level changes inside its window, including levels
 * that enter it when others leave, and the checksum of its window; after a
 * snapshot it gets a fresh `book`. Clients at the same depth share the
 * bytes: one encoding per distinct depth per message.
 *
 * Held back (throttled or behind), a subscription keeps nothing but its
 * count: it is released as one fresh `book` of its window, so memory per
 * lagging subscription is constant whatever the update rate, and the
 * client's book is exact at the q it receives.
 *
 * The window diff needs no copy of the book before the change: for each
 * side the kind records the touched prices with their rank before the
 * change, and a level that was not touched entered the window exactly when
 * its rank before (its rank now, minus the levels inserted above it, plus
 * the levels deleted above it) was at or beyond the depth.
 */
import { crc32 } from 'node:zlib';
import type { Config } from '../config.js';
import type { BookEvent, LevelList } from '../feed/book-normalize.js';
import { encode, encodeData } from '../protocol/codec.js';
import { BOOK_DEPTHS, CHECKSUM_LEVELS } from '../protocol/messages.js';
import { BookSide, BookState, LevelChange } from '../state/book-state.js';
import type { ChannelStatus } from '../fanout/channel.js';
import type { MessageType } from '../fanout/counters.js';
import type { Kind } from '../fanout/kind.js';
import type { Subscription } from '../fanout/subscription.js';

/** Depth -> slot in per-depth caches. */
const SLOT_OF = new Int8Array(1001).fill(-1);
BOOK_DEPTHS.forEach((d, i) => (SLOT_OF[d] = i));

/** The prices a message touched on one side, sorted by key, with their rank before it. */
class Touched {
  keys = new Float64Array(64);
  /** Rank before the message, -1 when the level did not exist. */
  before = new Int32Array(64);
  /** 1 when the level exists after the message. */
  after = new Uint8Array(64);
  n = 0;

  reset(n: number): void {
    if (n > this.keys.length) {
      const cap = Math.max(n, this.keys.length * 2);
      this.keys = new Float64Array(cap);
      this.before = new Int32Array(cap);
      this.after = new Uint8Array(cap);
    }
    this.n = 0;
  }
}

type Level = [number, number];

export class BookKind implements Kind<BookState, BookEvent> {
  readonly name = 'book';
  readonly snapshotType = 'book';
  /** `book` after a snapshot, else `bupd`: set by apply() for the fan-out that follows it. */
  liveType: MessageType = 'bupd';
  readonly merges = true;
  /** A book whose status (live or stale) apply() just changed, for the hub to announce; else null. */
  statusChange: BookState | null = null;
  private readonly books = new Map<string, BookState>();
  private readonly maxLevels: number;
  private readonly bidTouched = new Touched();
  private readonly askTouched = new Touched();
  // Live bytes of the last applied message, per depth slot.
  private liveOf: BookState | null = null;
  private liveQ = 0;
  private readonly liveBytes: (Uint8Array | null)[] = new Array<Uint8Array | null>(BOOK_DEPTHS.length).fill(null);
  private readonly csScratch = Buffer.alloc(CHECKSUM_LEVELS * 2 * 16);

  constructor(config: Pick<Config, 'book'>) {
    this.maxLevels = config.book.maxLevels;
  }

  get size(): number {
    return this.books.size;
  }

  state(symbol: string): BookState | undefined {
    return this.books.get(symbol);
  }

  states(): Iterable<BookState> {
    return this.books.values();
  }

  /** Levels held across all books (a gauge, read at scrape time). */
  levels(): number {
    let n = 0;
    for (const b of this.books.values()) n += b.levels;
    return n;
  }

  /**
   * Applies one validated message. Returns the book when it changed, null
   * when it did not or the message was refused (counted on the feed).
   */
  apply(ev: BookEvent, feed: string): BookState | null {
    this.statusChange = null;
    const c = ev.counters;
    let st = this.books.get(ev.symbol);
    if (!ev.snapshot) {
      if (st === undefined || !st.hasSnapshot) {
        c.rejected.no_snapshot++;
        return null;
      }
      if (st.resyncing) {
        c.rejected.after_gap++;
        return null;
      }
      const seq = ev.seq;
      if (seq === seq && st.lastSeq === st.lastSeq && seq !== st.lastSeq + 1) {
        c.gaps++;
        st.resyncing = true;
        this.statusChange = st;
        return null;
      }
      if (seq === seq) st.lastSeq = seq;
      if (!this.applyChanges(st, ev)) return null;
      this.liveType = 'bupd';
    } else {
      if (st === undefined) {
        st = new BookState(ev.symbol, this.maxLevels, BOOK_DEPTHS.length);
        this.books.set(ev.symbol, st);
      }
      this.applySnapshot(st, ev);
      this.liveType = 'book';
    }
    st.q++;
    st.feed = feed;
    c.bookMessages++;
    if (st.crossed) c.crossed++;
    return st;
  }

  private applySnapshot(st: BookState, ev: BookEvent): void {
    const c = ev.counters;
    for (const [side, list] of [
      [st.bids, ev.bids],
      [st.asks, ev.asks],
    ] as const) {
      side.clear();
      for (let i = 0; i < list.n; i++) {
        if (side.set(list.pairs[2 * i]!, list.pairs[2 * i + 1]!) === LevelChange.Dropped) c.levelsDropped++;
      }
    }
    st.hasSnapshot = true;
    st.lastSeq = ev.seq;
    if (st.resyncing) {
      st.resyncing = false;
      this.statusChange = st;
    }
  }

  /** Applies a change message, recording what it touched; false when nothing changed. */
  private applyChanges(st: BookState, ev: BookEvent): boolean {
    const dropped = this.touch(st.bids, ev.bids, this.bidTouched) + this.touch(st.asks, ev.asks, this.askTouched);
    ev.counters.levelsDropped += dropped;
    return this.bidTouched.n + this.askTouched.n > 0 || dropped > 0;
  }

  /** Applies one side's changes; fills `t` with the levels that changed, sorted by key. Returns levels dropped. */
  private touch(side: BookSide, list: LevelList, t: Touched): number {
    const n = list.n;
    const p = list.pairs;
    t.reset(n);
    // Ranks before anything of this message is applied (prices are distinct within it).
    for (let i = 0; i < n; i++) {
      const key = side.sign * p[2 * i]!;
      const r = side.find(key);
      t.keys[i] = key;
      t.before[i] = r >= 0 ? r : -1;
    }
    let dropped = 0;
    let kept = 0;
    for (let i = 0; i < n; i++) {
      const change = side.set(p[2 * i]!, p[2 * i + 1]!);
      if (change === LevelChange.None) continue;
      if (change === LevelChange.Dropped) {
        dropped++;
        // Only an insertion that displaced the worst level left something to tell.
        if (side.find(t.keys[i]!) < 0) continue;
      }
      t.keys[kept] = t.keys[i]!;
      t.before[kept] = t.before[i]!;
      kept++;
    }
    t.n = kept;
    for (let i = 0; i < kept; i++) t.after[i] = side.find(t.keys[i]!) >= 0 ? 1 : 0;
    sortTouched(t);
    return dropped;
  }

  live(st: BookState, depth: number): Uint8Array {
    if (this.liveType === 'book') return this.snapshot(st, depth);
    const slot = SLOT_OF[depth]!;
    if (this.liveOf !== st || this.liveQ !== st.q) {
      this.liveOf = st;
      this.liveQ = st.q;
      this.liveBytes.fill(null);
    }
    let bytes = this.liveBytes[slot];
    if (bytes === null || bytes === undefined) {
      const bids = sideDiff(st.bids, this.bidTouched, depth);
      const asks = sideDiff(st.asks, this.askTouched, depth);
      const msg: Record<string, unknown> = { t: 'bupd', s: st.symbol, q: st.q };
      if (bids.length > 0) msg['bids'] = bids;
      if (asks.length > 0) msg['asks'] = asks;
      msg['cs'] = this.checksum(st, depth);
      bytes = encodeData(msg);
      this.liveBytes[slot] = bytes;
    }
    return bytes;
  }

  snapshot(st: BookState, depth: number): Uint8Array {
    const slot = SLOT_OF[depth]!;
    const cached = st.bookBytes[slot];
    if (cached !== null && cached !== undefined && st.bookQ[slot] === st.q) return cached;
    const msg = { t: 'book', s: st.symbol, q: st.q, bids: window(st.bids, depth), asks: window(st.asks, depth), cs: this.checksum(st, depth) };
    // Copied out of the encoder's shared slab, as quote snapshots are.
    const bytes = encodeData(msg).slice();
    st.bookBytes[slot] = bytes;
    st.bookQ[slot] = st.q;
    return bytes;
  }

  hold(_st: BookState, _sub: Subscription, _first: boolean): void {
    // Nothing to keep: the release is a fresh window.
  }

  release(st: BookState, sub: Subscription): void {
    sub.client.push('book', this.snapshot(st, sub.view));
  }

  status(symbol: string, status: ChannelStatus): Uint8Array {
    return encode({ t: 'stat', s: symbol, st: status, ch: 'book' });
  }

  /** CRC32 (IEEE) of the top min(depth, 25) asks then bids, each level as big-endian float64 price then size. */
  checksum(st: BookState, depth: number): number {
    return bookChecksum(st.asks, st.bids, Math.min(depth, CHECKSUM_LEVELS), this.csScratch);
  }
}

/**
 * The checksum of a window; `buf` holds at least 32 bytes per level. Written
 * through a DataView: its setFloat64 is several times cheaper per value than
 * Buffer.writeDoubleBE, and this runs once per depth per message.
 */
export function bookChecksum(asks: BookSide, bids: BookSide, k: number, buf: Buffer): number {
  const view = viewOf(buf);
  let off = 0;
  for (const side of [asks, bids]) {
    const n = Math.min(k, side.n);
    for (let i = 0; i < n; i++) {
      view.setFloat64(off, side.price(i));
      view.setFloat64(off + 8, side.sizes[i]!);
      off += 16;
    }
  }
  return crc32(buf.subarray(0, off)) >>> 0;
}

const views = new WeakMap<Buffer, DataView>();

/** A DataView over `buf`, made once per buffer. */
function viewOf(buf: Buffer): DataView {
  let v = views.get(buf);
  if (v === undefined) {
    v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    views.set(buf, v);
  }
  return v;
}

/** The top `depth` levels of a side as [price, size] pairs, best first. */
function window(side: BookSide, depth: number): Level[] {
  const n = Math.min(depth, side.n);
  const out: Level[] = new Array<Level>(n);
  for (let i = 0; i < n; i++) out[i] = [side.price(i), side.sizes[i]!];
  return out;
}

/**
 * The changes a client holding the top `depth` levels before the message
 * needs to hold the top `depth` after it, once it truncates: touched levels
 * now in the window (their size), touched levels deleted from its window
 * (size 0), and untouched levels that entered the window from below.
 */
function sideDiff(side: BookSide, t: Touched, depth: number): Level[] {
  const out: Level[] = [];
  const w = Math.min(depth, side.n);
  let ti = 0;
  let inserted = 0;
  let deleted = 0;
  for (let i = 0; i < w; i++) {
    const key = side.keys[i]!;
    // Touched keys before this one that are not in the book any more: deleted.
    while (ti < t.n && t.keys[ti]! < key) {
      const before = t.before[ti]!;
      // (A level inserted and dropped again by the same message was never there.)
      if (before >= 0) {
        deleted++;
        if (before < depth) out.push([side.sign * t.keys[ti]! + 0, 0]);
      }
      ti++;
    }
    if (ti < t.n && t.keys[ti] === key) {
      out.push([side.price(i), side.sizes[i]!]);
      if (t.before[ti]! < 0) inserted++;
      ti++;
    } else if (i - inserted + deleted >= depth) {
      // Untouched, and below the window before: it entered.
      out.push([side.price(i), side.sizes[i]!]);
    }
  }
  for (; ti < t.n; ti++) {
    if (t.after[ti] === 0 && t.before[ti]! >= 0 && t.before[ti]! < depth) out.push([side.sign * t.keys[ti]! + 0, 0]);
  }
  return out;
}

/** Insertion sort of the touched entries by key: a message touches few levels. */
function sortTouched(t: Touched): void {
  for (let i = 1; i < t.n; i++) {
    const k = t.keys[i]!;
    const b = t.before[i]!;
    const a = t.after[i]!;
    let j = i - 1;
    while (j >= 0 && t.keys[j]! > k) {
      t.keys[j + 1] = t.keys[j]!;
      t.before[j + 1] = t.before[j]!;
      t.after[j + 1] = t.after[j]!;
      j--;
    }
    t.keys[j + 1] = k;
    t.before[j + 1] = b;
    t.after[j + 1] = a;
  }
}
