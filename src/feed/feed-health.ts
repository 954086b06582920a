/**
 * Feed health: a feed is stale while its source is disconnected or it has
 * been silent longer than its `staleAfterMs`, and live again on its next
 * tick. Liveness is read from the feed's accepted count on a timer, so the
 * tick path pays one flag test; the transitions are handed to `onChange`
 * (the hub tells the feed's subscribers).
 */
import type { Clock, Repeating } from '../clock.js';
import type { Logger } from '../log.js';
import type { FeedSource } from './feed-source.js';
import type { FeedCounters } from './normalize.js';

/** How often feed health (connection, silence) is checked. */
export const FEED_HEALTH_MS = 250;

export class FeedHealth {
  private timer: Repeating | null = null;

  constructor(
    private readonly source: FeedSource,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** A feed turned stale (true) or live again (false). */
    private readonly onChange: (feed: string, stale: boolean) => void,
  ) {}

  /** Called with every live tick or book message before it is applied: a stale feed's message makes it live again. */
  seen(event: { readonly counters: FeedCounters }, feed: string): void {
    const c = event.counters;
    if (!c.stale) return;
    c.stale = false;
    this.onChange(feed, false);
  }

  /** Starts the periodic check. */
  start(): void {
    const start = this.clock.now();
    for (const n of this.source.normalizers) {
      n.counters.lastTickAt = start;
      n.counters.seenAccepted = n.counters.accepted;
    }
    this.timer = this.clock.every(FEED_HEALTH_MS, () => this.check());
  }

  /** One check of every feed: marks stale the disconnected and the silent ones. */
  check(): void {
    const now = this.clock.now();
    const connected = this.source.status.state === 'connected';
    for (const n of this.source.normalizers) {
      const c = n.counters;
      if (c.accepted !== c.seenAccepted) {
        c.seenAccepted = c.accepted;
        c.lastTickAt = now;
      }
      if (c.stale) continue;
      const silent = n.feed.staleAfterMs > 0 && now - c.lastTickAt > n.feed.staleAfterMs;
      if (!connected || silent) {
        this.log.warn({ feed: n.feed.name, reason: connected ? 'silent' : 'disconnected', silentMs: now - c.lastTickAt }, 'feed stale');
        c.stale = true;
        this.onChange(n.feed.name, true);
      }
    }
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}
