/**
 * Subscription index: symbol -> the subscriptions that want it. Adding and
 * removing touch one symbol's set; nothing here walks all clients or all
 * symbols.
 */
import type { ClientSession } from './client-session.js';

/** Why updates were held back and merged instead of sent one by one. */
export type ConflationReason = 'backpressure' | 'throttle';

/**
 * One client's interest in one symbol. Shared by the index and the session.
 * While updates are held back (backpressure or throttle) it also carries the
 * pending delta: which fields changed and how many ticks that merges. The
 * values themselves are read from the symbol state when the delta is sent,
 * so they are always the newest and the memory per held symbol is constant.
 */
export class Subscription {
  /** The client still needs a full `snap` before any `upd` (it subscribed before the symbol had state). */
  needsSnap = false;
  /** Deliver at most once per this many ms, on multiples of it (0: every update). */
  throttleMs = 0;
  /** Bit i: field i changed since the client's last message for this symbol. */
  pendingMask = 0;
  /** Source ticks merged into the pending delta. */
  pendingN = 0;
  /** Why the pending delta was started; counts the ticks merged away. */
  pendingReason: ConflationReason = 'backpressure';
  /** In the session's pending list or the throttle wheel. */
  queued = false;
  /** False once unsubscribed or closed; queued references to it are skipped. */
  active = true;

  constructor(
    readonly session: ClientSession,
    readonly symbol: string,
  ) {}
}

/** symbol -> subscriptions. */
export class SubscriptionIndex {
  private readonly bySymbol = new Map<string, Set<Subscription>>();
  private count = 0;

  /** Total subscriptions across all symbols and clients. */
  get size(): number {
    return this.count;
  }

  /** Symbols with at least one subscriber. */
  get symbolCount(): number {
    return this.bySymbol.size;
  }

  add(sub: Subscription): void {
    let set = this.bySymbol.get(sub.symbol);
    if (set === undefined) {
      set = new Set();
      this.bySymbol.set(sub.symbol, set);
    }
    if (!set.has(sub)) {
      set.add(sub);
      this.count++;
    }
  }

  remove(sub: Subscription): void {
    const set = this.bySymbol.get(sub.symbol);
    if (set !== undefined && set.delete(sub)) {
      this.count--;
      // Drop empty sets so unsubscribed symbols cost no memory.
      if (set.size === 0) this.bySymbol.delete(sub.symbol);
    }
  }

  /** The subscriptions for a symbol, or undefined when nobody wants it. */
  of(symbol: string): ReadonlySet<Subscription> | undefined {
    return this.bySymbol.get(symbol);
  }
}
