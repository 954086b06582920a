/**
 * One client's interest in one channel: a (kind, symbol) pair. Shared by the
 * subscription index, the client's session and the delivery decision; it
 * knows neither the session class nor the hub, only the small
 * {@link Subscriber} interface of what delivery needs from a client.
 */
import type { ChannelState } from './channel.js';
import type { ConflationReason, MessageType } from './counters.js';

/** What delivery needs from the client a subscription belongs to. */
export interface Subscriber {
  /** Above the high water mark: every change is held back, nothing sent one by one. */
  readonly conflating: boolean;
  /** Queues one encoded message for the client's next frame. */
  push(type: MessageType, bytes: Uint8Array): void;
  /** Keeps `sub` until backpressure clears (the session's held-back list). */
  holdBack(sub: Subscription): void;
  /**
   * Whether the client may see `st` now that its feed is known; if not, the
   * subscription ends with err NOT_ENTITLED and nothing is ever sent.
   */
  admit(sub: Subscription, st: ChannelState): boolean;
  /** Counts `n` updates merged away for this client. */
  countMerged(reason: ConflationReason, n: number): void;
}

export class Subscription {
  /** The client still needs a full snapshot before any delta (it subscribed before the channel had state, or while behind). */
  needsSnap = false;
  /** Deliver at most once per this many ms, on multiples of it (0: every update). */
  throttleMs = 0;
  /** Which view of the channel the client gets (a kind's own parameter; 0 for quotes). */
  view = 0;
  /**
   * Where the client stands while changes are held back: its kind's own
   * position (for quotes, the q of the last state the client has). Memory
   * per held subscription is this number, whatever the update rate.
   */
  since = 0;
  /** Source events held back since the client's last message for this channel. */
  pendingN = 0;
  /** Why the held-back data was started; counts the events merged away. */
  pendingReason: ConflationReason = 'backpressure';
  /** In the session's held-back list or the throttle wheel. */
  queued = false;
  /** False once unsubscribed or closed; queued references to it are skipped. */
  active = true;

  constructor(
    readonly client: Subscriber,
    /** Index of the kind in the hub's kinds. */
    readonly kind: number,
    readonly symbol: string,
  ) {}
}
