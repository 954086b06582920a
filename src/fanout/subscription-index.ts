/**
 * Subscription index: symbol -> the subscriptions that want it. Adding and
 * removing touch one symbol's set; nothing here walks all clients or all
 * symbols.
 */
import type { ClientSession } from './client-session.js';

/** One client's interest in one symbol. Shared by the index and the session. */
export class Subscription {
  /** The client still needs a full `snap` before any `upd` (it subscribed before the symbol had state). */
  needsSnap = false;

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
