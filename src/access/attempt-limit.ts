/**
 * Failed-attempt limit: counts, per key (a client address or a user),
 * connection attempts that failed authentication at the upgrade or ended in
 * `bye AUTH_EXPIRED` soon after admission. A key with `max` failures within
 * a window of `windowMs` (starting at its first failure) is blocked until
 * that window ends; then it starts afresh.
 *
 * Verifications still running count too: {@link begin} takes a slot before
 * the (asynchronous) signature check and {@link settle} gives it back, and a
 * key is blocked while its failures plus its verifications in flight reach
 * `max`. So parallel upgrades cannot all pass the check before the first of
 * them fails.
 *
 * A blocked key keeps a small allowance: one verification per
 * `windowMs / max`, so that a valid token from a shared address (a NAT, an
 * ingress without a trusted proxy header) is still admitted while someone
 * else behind it fails. A key thus reaches authentication at most `max`
 * times per window, plus at most `max` more through the allowance, one at a
 * time; every other refusal is cheap (no signature check).
 *
 * Memory is bounded: at most `maxTracked` keys, the least recently used
 * forgotten first. Time comes from the injected clock.
 */
import { isIPv6 } from 'node:net';
import type { Clock } from '../clock.js';

/** One tracked key (internal; exported only as part of {@link Attempt}). */
export interface Entry {
  /** When the current window started (its first failure); meaningful while count > 0. */
  start: number;
  count: number;
  /** Verifications begun and not yet settled. */
  inFlight: number;
  /** While blocked by failures: from when the next verification is allowed. */
  nextAllowance: number;
}

/** A verification in flight, from {@link AttemptLimit.begin}; settle it exactly once. */
export interface Attempt {
  readonly key: string;
  /** Taken through the allowance of a blocked key. */
  readonly allowance: boolean;
  /** @internal the entry it was counted in (possibly forgotten since). */
  readonly entry: Entry | null;
}

/** While a key's only block is verifications in flight: they end within moments. */
const IN_FLIGHT_RETRY_MS = 1000;

export class AttemptLimit {
  /** Insertion order is use order: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  /** Time between two verifications of a blocked key. */
  private readonly allowanceMs: number;

  constructor(
    /** Failures per window that block the key; 0: no limit. */
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxTracked: number,
    private readonly clock: Clock,
  ) {
    this.allowanceMs = max > 0 ? windowMs / max : 0;
  }

  /** Whether the limit is on at all. */
  get enabled(): boolean {
    return this.max > 0;
  }

  /** Keys currently tracked (at most maxTracked). */
  get size(): number {
    return this.entries.size;
  }

  /** Milliseconds until the failures of `key` stop blocking it; 0: they do not. Ignores the allowance and verifications in flight. */
  blockedFor(key: string): number {
    const e = this.current(key);
    if (e === undefined || e.count < this.max) return 0;
    return e.start + this.windowMs - this.clock.now();
  }

  /**
   * Starts a verification for `key`: the attempt to {@link settle} when it
   * ends, or the milliseconds the key is blocked for.
   */
  begin(key: string): Attempt | number {
    if (this.max <= 0) return { key, allowance: false, entry: null };
    const now = this.clock.now();
    let e = this.current(key);
    if (e === undefined) e = { start: now, count: 0, inFlight: 0, nextAllowance: 0 };
    let allowance = false;
    if (e.count + e.inFlight >= this.max) {
      if (e.count < this.max) return IN_FLIGHT_RETRY_MS;
      if (now < e.nextAllowance) return e.start + this.windowMs - now;
      e.nextAllowance = now + this.allowanceMs;
      allowance = true;
    }
    e.inFlight++;
    this.touch(key, e);
    return { key, allowance, entry: e };
  }

  /** Ends a verification from {@link begin}; `failed` records it as a failure. */
  settle(attempt: Attempt, failed: boolean): void {
    const e = attempt.entry;
    if (e === null) return;
    e.inFlight--;
    if (failed) this.fail(attempt.key);
    else if (e.count === 0 && e.inFlight === 0 && this.entries.get(attempt.key) === e) this.entries.delete(attempt.key);
  }

  /** Records one failure for `key`. */
  fail(key: string): void {
    if (this.max <= 0) return;
    const now = this.clock.now();
    let e = this.current(key);
    if (e === undefined) e = { start: now, count: 0, inFlight: 0, nextAllowance: 0 };
    if (e.count === 0) e.start = now;
    e.count++;
    // Blocked from now: the allowance starts one interval later.
    if (e.count === this.max) e.nextAllowance = now + this.allowanceMs;
    this.touch(key, e);
  }

  /** The entry of `key` with its window brought up to date; undefined once nothing is left of it. */
  private current(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e === undefined || e.count === 0 || this.clock.now() - e.start < this.windowMs) return e;
    e.count = 0;
    if (e.inFlight > 0) return e;
    this.entries.delete(key);
    return undefined;
  }

  /** (Re-)inserts at the end, so the first entry is always the least recently used; forgets the first beyond maxTracked. */
  private touch(key: string, e: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, e);
    if (this.entries.size > this.maxTracked) this.entries.delete(this.entries.keys().next().value!);
  }
}

/**
 * The key of a client address for the limit: an IPv6 address by its /64
 * prefix (one subscriber's allocation, so a host cannot make itself new keys
 * by changing its interface identifier), an IPv4-mapped IPv6 address as its
 * IPv4 address, anything else as it is.
 */
export function addressKey(address: string): string {
  const zone = address.indexOf('%');
  const a = zone >= 0 ? address.slice(0, zone) : address;
  if (!isIPv6(a)) return address;
  const g = ipv6Groups(a.toLowerCase());
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  }
  return `${g.slice(0, 4).map((n) => n.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (compressed, full, or with a trailing dotted quad). */
function ipv6Groups(a: string): number[] {
  const parse = (s: string): number[] => {
    const out: number[] = [];
    if (s === '') return out;
    for (const part of s.split(':')) {
      if (part.includes('.')) {
        const [b0, b1, b2, b3] = part.split('.').map(Number) as [number, number, number, number];
        out.push((b0 << 8) | b1, (b2 << 8) | b3);
      } else out.push(parseInt(part, 16));
    }
    return out;
  };
  const gap = a.indexOf('::');
  if (gap < 0) return parse(a);
  const head = parse(a.slice(0, gap));
  const tail = parse(a.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}
