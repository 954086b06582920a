/**
 * A kind of market data (quotes today; books and trades plug in the same
 * way). The delivery path is shared: routing, the send-now / hold /
 * snapshot decision, water marks, the throttle wheel and the outbox know
 * nothing of fields or levels. What differs between kinds is small and
 * lives behind this interface:
 *
 * - how a normalized event changes per-symbol state (the kind's own store);
 * - what bytes a subscriber gets live, encoded once per distinct view;
 * - what a subscription holds while it is throttled or behind (its
 *   `since` position and `pendingN` count; a kind may keep more), and the
 *   one message that brings it back to the current state.
 */
import type { ChannelState, ChannelStatus } from './channel.js';
import type { MessageType } from './counters.js';
import type { Subscription } from './subscription.js';

/**
 * One kind of market data. `E` is its normalized event; `apply` is the only
 * place where an event changes state, and returns the state when something
 * changed (then the hub fans the change out) or null when nothing did.
 */
export interface Kind<S extends ChannelState = ChannelState, E = unknown> {
  /** The channel name on the wire (`channel` in sub). */
  readonly name: string;
  /** Message types, for the counters: of a snapshot and of the live message of the change just applied. */
  readonly snapshotType: MessageType;
  readonly liveType: MessageType;
  /** Applies one event from `feed`. */
  apply(event: E, feed: string): S | null;
  /** The channel's state, once it had an event. */
  state(symbol: string): S | undefined;
  /** Every channel of this kind (rare whole-store walks, such as a feed going stale). */
  states(): Iterable<S>;
  /** Number of channels with state. */
  readonly size: number;
  /**
   * The live message for `view` of the change just applied to `st`. Called
   * once per subscriber during a fan-out: the kind encodes once per
   * distinct view and returns the same bytes to every caller.
   */
  live(st: S, view: number): Uint8Array;
  /** The full state for `view` (cached while current). */
  snapshot(st: S, view: number): Uint8Array;
  /**
   * `sub` misses the change just applied to `st` (throttled or behind).
   * `first`: nothing was held for it before, so it stands at the state
   * before this change.
   */
  hold(st: S, sub: Subscription, first: boolean): void;
  /**
   * Pushes to `sub.client` what brings a holding `sub` to the current state:
   * one merged message for kinds that merge, every held event in order for
   * kinds that never do (trades).
   */
  release(st: S, sub: Subscription): void;
  /** Whether held events are merged (counted as conflated) or each delivered (trades). */
  readonly merges: boolean;
  /** The `stat` message for a channel of this kind. */
  status(symbol: string, status: ChannelStatus): Uint8Array;
}
