/**
 * The delivery decision, in one place: for each subscription, whether a
 * change is sent now (the bytes shared by every subscriber of the same
 * view), held back (throttled, or the client is behind), or whether the
 * client first needs a (deferred) snapshot; and what a held-back
 * subscription gets when it falls due or its client drains.
 *
 * It knows kinds only through {@link Kind} and clients only through
 * {@link Subscriber}: no fields, levels or sessions here.
 */
import type { Clock } from '../clock.js';
import type { ChannelState } from './channel.js';
import type { Kind } from './kind.js';
import type { SubscriptionIndex } from './subscription-index.js';
import type { Subscription } from './subscription.js';
import { ThrottleWheel } from './throttle.js';

export class Delivery {
  readonly throttle: ThrottleWheel;

  constructor(
    /** Kinds by number (a subscription's `kind`). */
    private readonly kinds: readonly Kind[],
    private readonly index: SubscriptionIndex,
    private readonly clock: Clock,
  ) {
    this.throttle = new ThrottleWheel(clock, (sub) => this.due(sub));
  }

  /** The hot path: a change was applied to `st` of kind number `k`. */
  changed(k: number, st: ChannelState): void {
    const subs = this.index.of(k, st.symbol);
    if (subs === undefined) return;
    const kind = this.kinds[k]!;
    const liveType = kind.liveType;
    for (const sub of subs) {
      const c = sub.client;
      // A subscription that already stands at or past this position (a trade
      // tape resumed ahead of this replica) has this event. Held quotes stand
      // below q, books at 0, so for them this never holds.
      if (sub.since >= st.q) continue;
      if (c.conflating || sub.pendingN > 0) {
        // Behind, or already holding data for this channel: merge, keep order.
        this.hold(kind, st, sub);
      } else if (sub.needsSnap) {
        // First data for a channel subscribed before its feed was known.
        if (!c.admit(sub, st)) continue;
        sub.needsSnap = false;
        c.push(kind.snapshotType, kind.snapshot(st, sub.view));
      } else if (sub.throttleMs > 0) {
        this.hold(kind, st, sub);
      } else {
        c.push(liveType, kind.live(st, sub.view));
      }
    }
  }

  /** A channel's status changed: every subscriber that has its state is told (shared bytes). */
  statusChanged(k: number, st: ChannelState): void {
    const subs = this.index.of(k, st.symbol);
    if (subs === undefined) return;
    const bytes = this.kinds[k]!.status(st.symbol, st.stale ? 'stale' : 'live');
    for (const sub of subs) if (!sub.needsSnap) sub.client.push('stat', bytes);
  }

  /**
   * A new (or renewed) subscription: its snapshot now, or deferred until the
   * channel has state or the client has caught up. `snapshot` false: deltas
   * only, from the next change.
   */
  started(sub: Subscription, snapshot: boolean): void {
    const kind = this.kinds[sub.kind]!;
    const c = sub.client;
    const st = kind.state(sub.symbol);
    if (!snapshot) {
      sub.needsSnap = false;
    } else if (st === undefined || st.q === 0) {
      sub.needsSnap = true;
      c.push('stat', kind.status(sub.symbol, 'unknown'));
    } else if (c.conflating) {
      // Behind already: the snapshot waits with the other held-back data.
      sub.needsSnap = true;
      if (!sub.queued) {
        sub.queued = true;
        c.holdBack(sub);
      }
    } else {
      // The snapshot supersedes anything held.
      c.countMerged(sub.pendingReason, sub.pendingN);
      sub.pendingN = 0;
      sub.needsSnap = false;
      c.push(kind.snapshotType, kind.snapshot(st, sub.view));
      if (st.stale) c.push('stat', kind.status(st.symbol, 'stale'));
    }
  }

  /**
   * A subscription that starts from a position (trades: a resume, or the
   * start of a tape): everything after `since` is sent now, in order, or
   * once the client has caught up.
   */
  startAt(sub: Subscription, since: number): void {
    sub.needsSnap = false;
    sub.since = since;
    const kind = this.kinds[sub.kind]!;
    const st = kind.state(sub.symbol);
    if (st === undefined || st.q <= since) return;
    const c = sub.client;
    if (c.conflating) {
      sub.pendingN = 1;
      sub.pendingReason = 'backpressure';
      if (!sub.queued) {
        sub.queued = true;
        c.holdBack(sub);
      }
      return;
    }
    kind.release(st, sub);
  }

  /** The client drained below its low water mark: everything it held back goes out, in as few frames as the outbox makes. */
  resumed(list: readonly Subscription[]): void {
    const now = this.clock.now();
    for (const sub of list) {
      // A throttled subscription keeps its rhythm: back to the wheel.
      if (sub.active && sub.throttleMs > 0 && !sub.needsSnap) this.throttle.schedule(sub, now);
      else {
        sub.queued = false;
        this.release(sub);
      }
    }
  }

  private hold(kind: Kind, st: ChannelState, sub: Subscription): void {
    const c = sub.client;
    const first = sub.pendingN++ === 0;
    if (first) sub.pendingReason = c.conflating ? 'backpressure' : 'throttle';
    kind.hold(st, sub, first);
    if (sub.queued) return;
    sub.queued = true;
    if (c.conflating || sub.throttleMs === 0) c.holdBack(sub);
    else this.throttle.schedule(sub, this.clock.now());
  }

  /** The throttle wheel says `sub` is due. */
  private due(sub: Subscription): void {
    if (sub.client.conflating && sub.active) {
      sub.client.holdBack(sub); // still queued; resumed() sends it
      return;
    }
    sub.queued = false;
    this.release(sub);
  }

  /** Sends what a subscription holds (or its deferred snapshot) as one message. */
  private release(sub: Subscription): void {
    if (!sub.active || (sub.pendingN === 0 && !sub.needsSnap)) return;
    const kind = this.kinds[sub.kind]!;
    const st = kind.state(sub.symbol);
    if (st === undefined || st.q === 0) return; // still unknown: the first event brings the snapshot
    const c = sub.client;
    if (sub.needsSnap) {
      if (!c.admit(sub, st)) return;
      sub.needsSnap = false;
      c.push(kind.snapshotType, kind.snapshot(st, sub.view));
      if (st.stale) c.push('stat', kind.status(st.symbol, 'stale'));
    } else {
      kind.release(st, sub);
    }
    if (kind.merges) c.countMerged(sub.pendingReason, sub.pendingN - 1);
    sub.pendingN = 0;
  }
}
