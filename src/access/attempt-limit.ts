/**
 * Failed-attempt limit: counts, per key (a client address or a user),
 * connection attempts that failed authentication at the upgrade or ended in
 * `bye AUTH_EXPIRED` soon after admission. A key with `max` failures within
 * a window of `windowMs` (starting at its first failure) is refused until
 * that window ends; then it starts afresh. A client that retries an unusable
 * token in a tight loop thus reaches authentication at most `max` times per
 * window, and every refusal after that is cheap (no signature check).
 *
 * Memory is bounded: at most `maxTracked` keys, the least recently failed
 * forgotten first. Time comes from the injected clock.
 */
import type { Clock } from '../clock.js';

interface Entry {
  /** When the current window started (its first failure). */
  start: number;
  count: number;
}

export class AttemptLimit {
  /** Insertion order is failure order: the first entry is the oldest. */
  private readonly entries = new Map<string, Entry>();

  constructor(
    /** Failures per window that block the key; 0: no limit. */
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxTracked: number,
    private readonly clock: Clock,
  ) {}

  /** Whether the limit is on at all. */
  get enabled(): boolean {
    return this.max > 0;
  }

  /** Keys currently tracked (at most maxTracked). */
  get size(): number {
    return this.entries.size;
  }

  /** Milliseconds until `key` may try again; 0: it may now. */
  blockedFor(key: string): number {
    const e = this.entries.get(key);
    if (e === undefined) return 0;
    const left = e.start + this.windowMs - this.clock.now();
    if (left <= 0) {
      this.entries.delete(key);
      return 0;
    }
    return e.count >= this.max ? left : 0;
  }

  /** Records one failure for `key`. */
  fail(key: string): void {
    if (this.max <= 0) return;
    const now = this.clock.now();
    let e = this.entries.get(key);
    if (e !== undefined) this.entries.delete(key);
    if (e === undefined || now - e.start >= this.windowMs) e = { start: now, count: 0 };
    e.count++;
    // Re-inserted at the end: the first entry is always the least recently failed.
    this.entries.set(key, e);
    if (this.entries.size > this.maxTracked) this.entries.delete(this.entries.keys().next().value!);
  }
}
