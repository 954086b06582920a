/**
 * Decode and normalize: one source payload in, one canonical tick out (or a
 * reason why not). Per feed, the field mapping is resolved once at
 * construction so the per-tick work is a map lookup per source field.
 */
import { Unpackr } from 'msgpackr';
import { systemClock, type Clock } from '../clock.js';
import type { FeedConfig } from '../config.js';
import { LATENCY_BUCKETS, PlainHistogram } from '../histogram.js';
import { CANONICAL_SCHEMA, toText, type FieldSchema } from '../protocol/field-schema.js';
import { isValidSymbol } from '../protocol/fields.js';

/** Why a tick was rejected; used as a metric label, so the set is closed. */
export type InvalidReason = 'decode' | 'not_object' | 'no_symbol' | 'bad_symbol' | 'no_fields';

/** Why one field of an accepted tick was dropped. */
export type DroppedFieldReason = 'unknown' | 'bad_value';

/**
 * A normalized tick, one slot per field of the schema. `values` and `texts`
 * are reused by the normalizer for every tick: consume them before
 * normalizing the next one. NaN (numbers) or null (text) means "not in this tick".
 */
export interface Tick {
  symbol: string;
  values: Float64Array;
  /** Text slots' values (null elsewhere); null when the schema has no text field. */
  texts: (string | null)[] | null;
  /** The feed's counters, for what is counted after normalizing. */
  readonly counters: FeedCounters;
}

/** How a normalizer is set up beyond its feed. */
export interface NormalizerOptions {
  /** The deployment's fields (default: the canonical ones). */
  schema?: FieldSchema | undefined;
  /** Record ingest latency in {@link Normalizer.observe} (off only to measure what it costs). */
  latency?: boolean | undefined;
  clock?: Clock | undefined;
}


/** The tick, or why it was rejected. Both are preallocated: no per-tick garbage. */
export type NormalizeResult = Tick | InvalidReason;

/** Per-feed counters, plain numbers read at scrape time. */
export class FeedCounters {
  received = 0;
  accepted = 0;
  /** Accepted ticks whose processing failed unexpectedly (a bug, logged). */
  errors = 0;
  /** Source sequence numbers skipped (a live tick's `seq` more than one past the symbol's last on this feed). */
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

/** A number, or a numeric string's value; NaN for anything else. */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  // Some feeds send decimals as strings to keep their exact text.
  if (typeof v === 'string' && DECIMAL.test(v)) return Number(v);
  return NaN;
}

/** The result of decoding a payload that is not valid in its codec. */
export const UNDECODABLE: unique symbol = Symbol('undecodable');

/** The payload decoder of a codec: the decoded value, or UNDECODABLE. Chosen once per feed. */
export function payloadDecoder(codec: FeedConfig['codec']): (data: Uint8Array) => unknown {
  const text = new TextDecoder('utf-8', { fatal: true });
  const decode = codec === 'msgpack' ? (data: Uint8Array) => unpackr.unpack(data) : (data: Uint8Array) => JSON.parse(text.decode(data)) as unknown;
  return (data) => {
    // 0xc1 is never valid MessagePack, but msgpackr returns a marker for it.
    if (codec === 'msgpack' && data[0] === 0xc1) return UNDECODABLE;
    try {
      return decode(data);
    } catch {
      return UNDECODABLE;
    }
  };
}

/** Whether a decoded payload is a map (not an array, binary or scalar). */
export function isPayloadMap(obj: unknown): obj is Record<string, unknown> {
  return typeof obj === 'object' && obj !== null && !Array.isArray(obj) && !(obj instanceof Uint8Array);
}

/** {@link symbolOf}: the payload has no symbol. */
export const NO_SYMBOL = 0;
/** {@link symbolOf}: the payload's symbol is not a valid symbol. */
export const BAD_SYMBOL = 1;

/** The symbol of a payload, from its field or its subject token, or NO_SYMBOL / BAD_SYMBOL. */
export function symbolOf(feed: FeedConfig, subject: string, src: Record<string, unknown>): string | typeof NO_SYMBOL | typeof BAD_SYMBOL {
  let symbol: unknown;
  if (feed.symbolToken === null) {
    symbol = src[feed.symbolField];
  } else {
    const tokens = subject.split('.');
    const t = feed.symbolToken;
    symbol = tokens[t < 0 ? tokens.length + t : t];
  }
  if (symbol === undefined || symbol === null || symbol === '') return NO_SYMBOL;
  if (!isValidSymbol(symbol)) return BAD_SYMBOL;
  return symbol;
}

/** Normalizes payloads of one feed into canonical ticks. */
export class Normalizer {
  readonly counters = new FeedCounters();
  readonly schema: FieldSchema;
  private readonly values: Float64Array;
  private readonly texts: (string | null)[] | null;
  private readonly tick: Tick;
  /** Source field name -> state row index; the symbol field maps to -1. */
  private readonly index = new Map<string, number>();
  private readonly decode: (data: Uint8Array) => unknown;
  /** The last live `seq` per symbol, for gap and regression counts. */
  private readonly lastSeq = new Map<string, number>();
  private readonly latency: boolean;
  private readonly clock: Clock;

  constructor(
    readonly feed: FeedConfig,
    opts: NormalizerOptions = {},
  ) {
    const schema = (this.schema = opts.schema ?? CANONICAL_SCHEMA);
    this.latency = opts.latency ?? true;
    this.clock = opts.clock ?? systemClock;
    this.values = new Float64Array(schema.count);
    this.texts = schema.textSlots.length > 0 ? new Array<string | null>(schema.count).fill(null) : null;
    this.tick = { symbol: '', values: this.values, texts: this.texts, counters: this.counters };
    for (const [name, i] of schema.index) this.index.set(name, i);
    // A rename takes the source name's place; the target's own name stays accepted too.
    for (const [src, dst] of Object.entries(feed.fields)) {
      const i = schema.index.get(dst);
      if (i === undefined) throw new RangeError(`feed ${feed.name}: fields.${src}: ${JSON.stringify(dst)} is not a field of the schema`);
      this.index.set(src, i);
    }
    if (feed.symbolToken === null) this.index.set(feed.symbolField, -1);
    this.decode = payloadDecoder(feed.codec);
  }

  /** Decodes and normalizes one raw payload published on `subject`. */
  fromBytes(subject: string, data: Uint8Array): NormalizeResult {
    const obj = this.decode(data);
    if (obj === UNDECODABLE) {
      this.counters.received++;
      return this.reject('decode');
    }
    return this.fromObject(subject, obj);
  }

  /** Normalizes an already decoded payload. */
  fromObject(subject: string, obj: unknown): NormalizeResult {
    this.counters.received++;
    if (!isPayloadMap(obj)) return this.reject('not_object');
    const src = obj;
    const symbol = symbolOf(this.feed, subject, src);
    if (symbol === NO_SYMBOL) return this.reject('no_symbol');
    if (symbol === BAD_SYMBOL) return this.reject('bad_symbol');

    const values = this.values;
    values.fill(NaN);
    const texts = this.texts;
    const isText = this.schema.isText;
    if (texts !== null) for (const i of this.schema.textSlots) texts[i] = null;
    let count = 0;
    for (const key in src) {
      const i = this.index.get(key);
      if (i === undefined) {
        this.counters.droppedFields.unknown++;
        continue;
      }
      if (i < 0) continue;
      if (isText[i] === 1) {
        const t = toText(src[key]);
        if (t === null) {
          this.counters.droppedFields.bad_value++;
          continue;
        }
        texts![i] = t;
        count++;
        continue;
      }
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

  /**
   * Counts what only a live tick tells about its source: sequence gaps and
   * regressions against the symbol's last live `seq` on this feed, and the
   * source-to-receipt latency. Warm-start ticks never come here.
   */
  observe(tick: Tick): void {
    const v = tick.values;
    if (this.latency) {
      const ts = v[this.schema.ts]!;
      // Clamped at 0: a publisher's clock a little ahead of ours is not negative latency.
      if (ts === ts) this.counters.ingestLatency.record(Math.max(0, this.clock.preciseNow() - ts) / 1000);
    }
    const seq = v[this.schema.seq]!;
    if (seq !== seq) return;
    const prev = this.lastSeq.get(tick.symbol);
    if (prev !== undefined) {
      if (seq > prev + 1) this.counters.seqGaps += seq - prev - 1;
      else if (seq <= prev) this.counters.seqRegressions++;
    }
    this.lastSeq.set(tick.symbol, seq);
  }

  private reject(reason: InvalidReason): NormalizeResult {
    this.counters.invalid[reason]++;
    return reason;
  }
}
