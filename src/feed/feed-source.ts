/**
 * Feed source: where ticks come from. A source decodes and normalizes its
 * payloads and hands each accepted tick to the sink synchronously.
 */
import type { Normalizer, Tick } from './normalize.js';

/** Receives every accepted tick; `tick` is only valid during the call. */
export type TickSink = (tick: Tick, feed: string) => void;

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
  readonly normalizers: readonly Normalizer[];
  /** Reconnects since start. */
  readonly reconnects: number;
  /**
   * Connects and starts delivering live ticks to `sink`. Where configured,
   * first-start state is read from a store and handed to `warm` (older than
   * anything live: it may only fill what live ticks have not set). Resolves
   * once live delivery runs and the warm load is done.
   */
  start(sink: TickSink, warm: TickSink): Promise<void>;
  stop(): Promise<void>;
}
