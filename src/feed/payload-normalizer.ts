/**
 * What the normalizers of book and trade feeds share before their own
 * validation: decode per codec, count, require a map, find the symbol.
 * Each kind then reads its own keys in `fromMap`.
 */
import type { FeedConfig } from '../config.js';
import { BAD_SYMBOL, isPayloadMap, NO_SYMBOL, payloadDecoder, symbolOf, UNDECODABLE, type FeedCounters } from './normalize.js';

/** Reasons every payload kind can reject a message for. */
export type PayloadRejectReason = 'decode' | 'not_object' | 'no_symbol' | 'bad_symbol';

export abstract class PayloadNormalizer<E, R extends string> {
  abstract readonly counters: FeedCounters;
  private readonly decode: (data: Uint8Array) => unknown;

  constructor(readonly feed: FeedConfig) {
    this.decode = payloadDecoder(feed.codec);
  }

  /** Decodes and validates one raw payload published on `subject`. */
  fromBytes(subject: string, data: Uint8Array): E | R {
    const obj = this.decode(data);
    if (obj === UNDECODABLE) {
      this.counters.received++;
      return this.reject('decode');
    }
    return this.fromObject(subject, obj);
  }

  /** Validates an already decoded payload. */
  fromObject(subject: string, obj: unknown): E | R {
    this.counters.received++;
    if (!isPayloadMap(obj)) return this.reject('not_object');
    const symbol = symbolOf(this.feed, subject, obj);
    if (symbol === NO_SYMBOL) return this.reject('no_symbol');
    if (symbol === BAD_SYMBOL) return this.reject('bad_symbol');
    return this.fromMap(subject, symbol, obj);
  }

  /** The kind's own keys of a map with a valid symbol. */
  protected abstract fromMap(subject: string, symbol: string, src: Record<string, unknown>): E | R;

  /** Counts a refusal by reason and returns the reason. */
  abstract reject(reason: R | PayloadRejectReason): R;
}
