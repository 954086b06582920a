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
 * Delay after a `bye` that asked for `retryMs`: at least that, plus up to half
 * of it again (at least up to `initialMs`) at random, so clients told to go
 * away together come back spread out. A failed attempt afterwards falls back
 * to the normal backoff, never below `retryMs`.
 */
export function retryAfterDelay(retryMs: number, attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  if (attempt <= 1) return Math.round(retryMs + random() * Math.max(retryMs / 2, initialMs));
  return Math.max(retryMs, backoffDelay(attempt, initialMs, maxMs, random));
}
