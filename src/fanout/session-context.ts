/**
 * What a client session needs from the gateway around it: configuration,
 * the clock, counters, the flush scheduler, the delivery decision and the
 * subscription index. The hub provides it; sessions never see the hub.
 */
import type { Authenticator } from '../access/authenticator.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { PlainHistogram } from '../histogram.js';
import type { Logger } from '../log.js';
import type { ByeCode, Channel } from '../protocol/messages.js';
import type { TradeKind } from '../kinds/trade-kind.js';
import type { SymbolStore } from '../state/symbol-state.js';
import type { HubCounters } from './counters.js';
import type { Delivery } from './delivery.js';
import type { Kind } from './kind.js';
import type { FlushScheduler } from './outbox.js';
import type { SubscriptionIndex } from './subscription-index.js';

export interface SessionContext {
  readonly config: Config;
  readonly log: Logger;
  readonly clock: Clock;
  readonly counters: HubCounters;
  readonly scheduler: FlushScheduler;
  readonly delivery: Delivery;
  readonly index: SubscriptionIndex;
  /** Kinds by number, as subscriptions name them. */
  readonly kinds: readonly Kind[];
  /** The kind number of a channel. */
  kindOf(channel: Channel): number;
  /** Trades: positions and histories, for trade subscriptions. */
  readonly trades: TradeKind;
  /** Quote state, for the symbol list. */
  readonly store: SymbolStore;
  /** Verifies `op: auth` tokens; null when authentication is off. */
  readonly authenticator: Authenticator | null;
  /** First message queued -> frame written, seconds; null when latency metrics are off. */
  readonly deliveryLatency: PlainHistogram | null;
  /** Socket buffered bytes per client, sampled by the sweep. */
  readonly bufferedBytes: PlainHistogram;
  /** The encoded `hello` for a new session. */
  helloFor(sid: string, now: number): Uint8Array;
  /** A session's connection is closed; `by` is its bye code, or remote. */
  sessionClosed(session: { readonly sid: string }, by: ByeCode | 'remote'): void;
}
