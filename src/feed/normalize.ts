/**
 * Decode and normalize: one source payload in, one canonical tick out (or a
 * reason why not). Per feed, the field mapping is resolved once at
 * construction so the per-tick work is a map lookup per source field.
 */
import { Unpackr } from 'msgpackr';
import type { FeedConfig } from '../config.js';
import { PlainHistogram } from '../histogram.js';
import { FIELD_COUNT, FIELD_INDEX, isValidSymbol } from '../protocol/fields.js';

/** Why a tick was rejected; used as a metric label, so the set is closed. */
export type InvalidReason = 'decode' | 'not_object' | 'no_symbol' | 'bad_symbol' | 'no_fields';

/** Why one field of an accepted tick was dropped. */
export type DroppedFieldReason = 'unknown' | 'bad_value';

/**
 * A normalized tick. `values` is reused by the normalizer for every tick:
 * consume it before normalizing the next one. NaN means "not in this tick".
 */
export interface Tick {
  symbol: string;
  values: Float64Array;
  /** The feed's counters, for what is counted after normalizing (sequence gaps, latency). */
  readonly counters: FeedCounters;
}

/** Latency buckets in seconds: 100 microseconds to 10 seconds. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The tick, or why it was rejected. Both are preallocated: no per-tick garbage. */
export type NormalizeResult = Tick | InvalidReason;

/** Per-feed counters, plain numbers read at scrape time. */
export class FeedCounters {
  received = 0;
  accepted = 0;
  /** Accepted ticks whose processing failed unexpectedly (a bug, logged). */
  errors = 0;
  /** Source sequence numbers skipped (a tick's `seq` more than one past the symbol's last). */
  seqGaps = 0;
  /** Ticks whose `seq` did not advance past the symbol's last (repeat, reorder or source restart). */
  seqRegressions = 0;
  /** Source event time (`ts`) to receipt, seconds. */
  readonly ingestLatency = new PlainHistogram(LATENCY_BUCKETS);
  /** Ticks read from the JetStream warm-start stream at start. */
  warmTicks = 0;
  /** The feed is stale now: its symbols' subscribers were told `stat stale`. */
  stale = false;
  /** `accepted` at the last health check, and when it last moved (ms). */
  seenAccepted = 0;
  lastTickAt = 0;
  readonly invalid: Record<InvalidReason, number> = { decode: 0, not_object: 0, no_symbol: 0, bad_symbol: 0, no_fields: 0 };
  readonly droppedFields: Record<DroppedFieldReason, number> = { unknown: 0, bad_value: 0 };
}

// Ingest payloads come from our own NATS, but are still decoded defensively:
// no structured-clone extension (CVE-2023-52079), 64-bit integers as plain
// numbers. msgpackr's self-describing records are accepted, so a publisher
// using msgpackr's default packing works too.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, int64AsType: 'number' });

/** Plain decimal text: digits, optional fraction and exponent, optional surrounding blanks (no hex or binary). */
const DECIMAL = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  // Some feeds send decimals as strings to keep their exact text.
  if (typeof v === 'string' && DECIMAL.test(v)) return Number(v);
  return NaN;
}

/** Normalizes payloads of one feed into canonical ticks. */
export class Normalizer {
  readonly counters = new FeedCounters();
  private readonly values = new Float64Array(FIELD_COUNT);
  private readonly tick: Tick = { symbol: '', values: this.values, counters: this.counters };
  /** Source field name -> state row index; the symbol field maps to -1. */
  private readonly index = new Map<string, number>();
  private readonly decode: (data: Uint8Array) => unknown;

  constructor(readonly feed: FeedConfig) {
    for (const [name, i] of FIELD_INDEX) this.index.set(name, i);
    // A rename takes the source name's place; the canonical name stays accepted too.
    for (const [src, dst] of Object.entries(feed.fields)) this.index.set(src, FIELD_INDEX.get(dst)!);
    if (feed.symbolToken === null) this.index.set(feed.symbolField, -1);
    const text = new TextDecoder('utf-8', { fatal: true });
    this.decode =
      feed.codec === 'msgpack' ? (data) => unpackr.unpack(data) : (data) => JSON.parse(text.decode(data)) as unknown;
  }

  /** Decodes and normalizes one raw payload published on `subject`. */
  fromBytes(subject: string, data: Uint8Array): NormalizeResult {
    let obj: unknown;
    // 0xc1 is never valid MessagePack, but msgpackr returns a marker for it.
    if (this.feed.codec === 'msgpack' && data[0] === 0xc1) {
      this.counters.received++;
      return this.reject('decode');
    }
    try {
      obj = this.decode(data);
    } catch {
      this.counters.received++;
      return this.reject('decode');
    }
    return this.fromObject(subject, obj);
  }

  /** Normalizes an already decoded payload. */
  fromObject(subject: string, obj: unknown): NormalizeResult {
    this.counters.received++;
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj) || obj instanceof Uint8Array) {
      return this.reject('not_object');
    }
    const src = obj as Record<string, unknown>;
    let symbol: unknown;
    if (this.feed.symbolToken === null) {
      symbol = src[this.feed.symbolField];
    } else {
      const tokens = subject.split('.');
      const t = this.feed.symbolToken;
      symbol = tokens[t < 0 ? tokens.length + t : t];
    }
    if (symbol === undefined || symbol === null || symbol === '') return this.reject('no_symbol');
    if (!isValidSymbol(symbol)) return this.reject('bad_symbol');

    const values = this.values;
    values.fill(NaN);
    let count = 0;
    for (const key in src) {
      const i = this.index.get(key);
      if (i === undefined) {
        this.counters.droppedFields.unknown++;
        continue;
      }
      if (i < 0) continue;
      const n = toNumber(src[key]);
      if (!Number.isFinite(n)) {
        this.counters.droppedFields.bad_value++;
        continue;
      }
      values[i] = n;
      count++;
    }
    if (count === 0) return this.reject('no_fields');
    this.counters.accepted++;
    this.tick.symbol = symbol;
    return this.tick;
  }

  private reject(reason: InvalidReason): NormalizeResult {
    this.counters.invalid[reason]++;
    return reason;
  }
}
