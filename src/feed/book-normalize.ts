/**
 * Decode and validate order-book payloads: one map per message,
 *
 *   { s, bids: [[price, size], ...], asks: [...], snapshot?: bool, seq?, ts? }
 *
 * into a reused {@link BookEvent}. A message is accepted or rejected whole,
 * with a reason counter; nothing a feed sends can throw past here.
 */
import type { FeedConfig } from '../config.js';
import { FeedCounters, toNumber } from './normalize.js';
import { PayloadNormalizer } from './payload-normalizer.js';

/** Why a book message was rejected; a metric label, so the set is closed. */
export type BookRejectReason =
  | 'decode'
  | 'not_object'
  | 'no_symbol'
  | 'bad_symbol'
  | 'bad_shape'
  | 'bad_number'
  | 'negative_size'
  | 'duplicate_price'
  | 'empty'
  | 'no_snapshot'
  | 'after_gap';

export const BOOK_REJECT_REASONS: readonly BookRejectReason[] = [
  'decode',
  'not_object',
  'no_symbol',
  'bad_symbol',
  'bad_shape',
  'bad_number',
  'negative_size',
  'duplicate_price',
  'empty',
  'no_snapshot',
  'after_gap',
];

/** A feed's book counters, read at scrape time. */
export class BookCounters extends FeedCounters {
  /** Book messages applied (snapshots and changes). */
  bookMessages = 0;
  readonly rejected: Record<BookRejectReason, number> = Object.fromEntries(BOOK_REJECT_REASONS.map((r) => [r, 0])) as Record<BookRejectReason, number>;
  /** Changes whose seq was not the previous one + 1: the book waits for a snapshot. */
  gaps = 0;
  /** Messages after which the book was crossed (best bid >= best ask); delivered all the same. */
  crossed = 0;
  /** Levels dropped because a side held book.maxLevels already. */
  levelsDropped = 0;
}

/** One side's levels of a message: `n` pairs, price at 2i and size at 2i + 1. */
export class LevelList {
  pairs = new Float64Array(64);
  n = 0;

  clear(): void {
    this.n = 0;
  }

  push(price: number, size: number): void {
    if (2 * this.n + 2 > this.pairs.length) {
      const bigger = new Float64Array(this.pairs.length * 2);
      bigger.set(this.pairs);
      this.pairs = bigger;
    }
    this.pairs[2 * this.n] = price;
    this.pairs[2 * this.n + 1] = size;
    this.n++;
  }
}

/** A validated book message; reused for every message of the feed: consume it before the next. */
export interface BookEvent {
  symbol: string;
  /** Replaces the whole book (else: level changes, size 0 deletes). */
  snapshot: boolean;
  readonly bids: LevelList;
  readonly asks: LevelList;
  /** The source's sequence number, NaN when absent. */
  seq: number;
  /** Source event time, NaN when absent. */
  ts: number;
  readonly counters: BookCounters;
}

export class BookNormalizer extends PayloadNormalizer<BookEvent, BookRejectReason> {
  readonly counters = new BookCounters();
  private readonly event: BookEvent;

  constructor(feed: FeedConfig) {
    super(feed);
    this.event = { symbol: '', snapshot: false, bids: new LevelList(), asks: new LevelList(), seq: NaN, ts: NaN, counters: this.counters };
  }

  protected fromMap(_subject: string, symbol: string, obj: Record<string, unknown>): BookEvent | BookRejectReason {
    const ev = this.event;
    const snap = obj['snapshot'] ?? false;
    if (typeof snap !== 'boolean') return this.reject('bad_shape');
    const seq = obj['seq'] ?? null;
    const ts = obj['ts'] ?? null;
    const seqN = seq === null ? NaN : toNumber(seq);
    const tsN = ts === null ? NaN : toNumber(ts);
    if ((seq !== null && !Number.isFinite(seqN)) || (ts !== null && !Number.isFinite(tsN))) return this.reject('bad_number');
    const bad = readSide(obj['bids'], ev.bids) ?? readSide(obj['asks'], ev.asks);
    if (bad !== null) return this.reject(bad);
    if (!snap && ev.bids.n === 0 && ev.asks.n === 0) return this.reject('empty');
    ev.symbol = symbol;
    ev.snapshot = snap;
    ev.seq = seqN;
    ev.ts = tsN;
    this.counters.accepted++;
    return ev;
  }

  /** Counts a message the book itself refused (no snapshot yet, or waiting after a gap). */
  reject(reason: BookRejectReason): BookRejectReason {
    this.counters.rejected[reason]++;
    return reason;
  }
}

/** Reads one side into `out`; null when valid, else why not. Absent means no levels. */
function readSide(raw: unknown, out: LevelList): BookRejectReason | null {
  out.clear();
  if (raw === undefined || raw === null) return null;
  if (!Array.isArray(raw)) return 'bad_shape';
  for (const level of raw) {
    if (!Array.isArray(level) || level.length !== 2) return 'bad_shape';
    const p = toNumber(level[0]);
    const sz = toNumber(level[1]);
    if (!Number.isFinite(p) || !Number.isFinite(sz)) return 'bad_number';
    if (sz < 0) return 'negative_size';
    // + 0 turns -0 into 0: checksums are over the exact bytes of each value.
    out.push(p + 0, sz + 0);
  }
  return hasDuplicatePrice(out) ? 'duplicate_price' : null;
}

function hasDuplicatePrice(l: LevelList): boolean {
  const n = l.n;
  const p = l.pairs;
  if (n < 16) {
    for (let i = 1; i < n; i++) for (let j = 0; j < i; j++) if (p[2 * i] === p[2 * j]) return true;
    return false;
  }
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const x = p[2 * i]!;
    if (seen.has(x)) return true;
    seen.add(x);
  }
  return false;
}
