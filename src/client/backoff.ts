/**
 * Reconnect delays. Exponential backoff with full jitter: attempt k waits a
 * uniformly random time in [0, min(maxMs, initialMs * 2^(k-1))], which
 * spreads clients that dropped together across the whole window instead of
 * bunching them at its edge.
 */

/** Delay before reconnect attempt `attempt` (1-based), milliseconds. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const cap = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(random() * cap);
}

/**
 * Delay after a `bye` that asked for `retryMs`. The first attempt after it
 * (`first`, by default attempt 1) waits at least that, plus up to half of it
 * again (at least up to `initialMs`) at random, so clients told to go away
 * together come back spread out; and when connections cut short before it
 * have already taken the backoff to a later `attempt`, no less than that
 * backoff. A failed attempt afterwards falls back to the normal backoff,
 * never below `retryMs`.
 */
export function retryAfterDelay(retryMs: number, attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random, first = attempt <= 1): number {
  if (!first) return Math.max(retryMs, backoffDelay(attempt, initialMs, maxMs, random));
  const d = Math.round(retryMs + random() * Math.max(retryMs / 2, initialMs));
  return attempt > 1 ? Math.max(d, backoffDelay(attempt, initialMs, maxMs, random)) : d;
}
