/**
 * Feed source: where ticks come from. A source decodes and normalizes its
 * payloads and hands each accepted tick to the sink synchronously.
 */
import type { FeedConfig } from '../config.js';
import type { BookEvent } from './book-normalize.js';
import type { TradeEvent } from './trade-normalize.js';
import type { FeedCounters, Tick } from './normalize.js';

/** Receives every accepted tick; `tick` is only valid during the call. */
export type TickSink = (tick: Tick, feed: string) => void;

/** Receives every accepted book message; `event` is only valid during the call. */
export type BookSink = (event: BookEvent, feed: string) => void;

/** Receives every accepted trade message; `event` is only valid during the call. */
export type TradeSink = (event: TradeEvent, feed: string) => void;

/** Where a source hands what it receives. */
export interface FeedSinks {
  /** Live quote ticks. */
  tick: TickSink;
  /** Quote ticks from a warm-start store: older than anything live, they may only fill what live ticks have not set. */
  warm: TickSink;
  /** Live book messages. */
  book: BookSink;
  /** Trade messages, live (and, from a stream, the recent past at start). */
  trade: TradeSink;
  /** A trade feed's positions come from a stream with this epoch (said before its first trade). */
  tradeEpoch(feed: string, epoch: string): void;
}

/** What feed health and metrics read of each feed. */
export interface FeedNormalizer {
  readonly feed: FeedConfig;
  readonly counters: FeedCounters;
}

/** Connection status of a source, for readiness and metrics. */
export type SourceStatus =
  | { state: 'starting' }
  | { state: 'connected'; server: string }
  | { state: 'reconnecting'; since: number }
  | { state: 'stopped' };

export interface FeedSource {
  /** Short name for logs ("nats", "embedded"). */
  readonly kind: string;
  readonly status: SourceStatus;
  /** One normalizer per configured feed, for their counters. */
  readonly normalizers: readonly FeedNormalizer[];
  /** Reconnects since start. */
  readonly reconnects: number;
  /**
   * Connects and starts delivering live ticks and book messages to `sinks`.
   * Where configured, first-start quote state is read from a store and
   * handed to `sinks.warm`. Resolves once live delivery runs and the warm
   * load is done.
   */
  start(sinks: FeedSinks): Promise<void>;
  stop(): Promise<void>;
}
