/**
 * Throttle wheel: subscriptions with `throttleMs` wait here until the next
 * multiple of their interval on the wall clock. Aligning on the clock means
 * every client with the same interval on the same channel is due at the
 * same instant with the same held-back data, so their message is encoded
 * once and shared; and a channel's last change is delivered within one
 * interval.
 */
import type { Clock, Repeating } from '../clock.js';
import type { Subscription } from './subscription.js';

/** How often due slots are checked. */
const RESOLUTION_MS = 10;

export class ThrottleWheel {
  /** Due time (ms, a multiple of some throttleMs) -> subscriptions due then. */
  private readonly slots = new Map<number, Subscription[]>();
  private timer: Repeating | null = null;

  constructor(
    private readonly clock: Clock,
    /** Called for each subscription as it falls due. */
    private readonly onDue: (sub: Subscription) => void,
  ) {}

  /** Queues a subscription for the first multiple of its interval after now. */
  schedule(sub: Subscription, now: number): void {
    const t = sub.throttleMs;
    const due = (Math.floor(now / t) + 1) * t;
    let list = this.slots.get(due);
    if (list === undefined) {
      list = [];
      this.slots.set(due, list);
    }
    list.push(sub);
  }

  /** Hands every subscription due by `now` to onDue. */
  fire(now: number): void {
    for (const [due, list] of this.slots) {
      if (due > now) continue;
      this.slots.delete(due);
      for (const sub of list) this.onDue(sub);
    }
  }

  start(): void {
    this.timer = this.clock.every(RESOLUTION_MS, () => this.fire(this.clock.now()));
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}
