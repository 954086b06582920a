/**
 * A channel: one kind of market data for one symbol. What every kind's
 * per-symbol state offers the shared delivery path.
 */

/** What routing, staleness and entitlements need of every channel's state. */
export interface ChannelState {
  readonly symbol: string;
  /** The channel's own sequence: 0 until its first event, then +1 per change. */
  readonly q: number;
  /** Feed that last updated the channel (entitlements are per feed). */
  readonly feed: string;
  /** Its feed is stale: the state is the last known, not current. */
  stale: boolean;
}

/** Channel status carried by `stat`. */
export type ChannelStatus = 'live' | 'stale' | 'unknown';
