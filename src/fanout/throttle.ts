/**
 * Throttle wheel: subscriptions with `throttleMs` wait here until the next
 * multiple of their interval on the wall clock. Aligning on the clock means
 * every client with the same interval on the same symbol is due at the same
 * instant with the same merged fields, so their `upd` is encoded once and
 * shared; and a symbol's last change is delivered within one interval.
 */
import type { Subscription } from './subscription-index.js';

/** How often due slots are checked. */
const RESOLUTION_MS = 10;

export class ThrottleWheel {
  /** Due time (ms, a multiple of some throttleMs) -> subscriptions due then. */
  private readonly slots = new Map<number, Subscription[]>();
  private timer: NodeJS.Timeout | null = null;

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

  /** Hands every subscription due by `now` back to its session. */
  fire(now: number): void {
    for (const [due, list] of this.slots) {
      if (due > now) continue;
      this.slots.delete(due);
      for (const sub of list) sub.session.throttleDue(sub);
    }
  }

  start(): void {
    this.timer = setInterval(() => this.fire(Date.now()), RESOLUTION_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
