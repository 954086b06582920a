/**
 * Subscription index: (kind, symbol) -> the subscriptions that want it.
 * Adding and removing touch one channel's set; nothing here walks all
 * clients or all symbols.
 */
import type { Subscription } from './subscription.js';

export class SubscriptionIndex {
  /** One map per kind, indexed by the kind's number: no key is built per event. */
  private readonly byKind: Map<string, Set<Subscription>>[];
  private count = 0;

  constructor(kinds: number) {
    this.byKind = Array.from({ length: kinds }, () => new Map());
  }

  /** Total subscriptions across all channels and clients. */
  get size(): number {
    return this.count;
  }

  /** Channels with at least one subscriber, across kinds. */
  get channelCount(): number {
    let n = 0;
    for (const m of this.byKind) n += m.size;
    return n;
  }

  add(sub: Subscription): void {
    const map = this.byKind[sub.kind]!;
    let set = map.get(sub.symbol);
    if (set === undefined) {
      set = new Set();
      map.set(sub.symbol, set);
    }
    if (!set.has(sub)) {
      set.add(sub);
      this.count++;
    }
  }

  remove(sub: Subscription): void {
    const map = this.byKind[sub.kind]!;
    const set = map.get(sub.symbol);
    if (set !== undefined && set.delete(sub)) {
      this.count--;
      // Drop empty sets so unsubscribed channels cost no memory.
      if (set.size === 0) map.delete(sub.symbol);
    }
  }

  /** The subscriptions for a channel, or undefined when nobody wants it. */
  of(kind: number, symbol: string): ReadonlySet<Subscription> | undefined {
    return this.byKind[kind]!.get(symbol);
  }
}
