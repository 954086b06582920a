/**
 * The one rule for "expired". A credential with an `exp` is accepted until
 * `exp + auth.jwt.clockSkewSec`, read from the injected clock, and from that
 * instant on it is expired everywhere: at the upgrade, by `op: auth`, and by
 * the session sweep that ends a connection with `bye AUTH_EXPIRED`. Using the
 * same instant for all three means a token admitted at the upgrade is not
 * already expired for the session it opens.
 */

/** The instant (epoch ms) from which a credential with `exp` (epoch seconds) is expired; null: never. */
export function validUntil(exp: number | undefined, clockSkewSec: number): number | null {
  return exp === undefined ? null : exp * 1000 + clockSkewSec * 1000;
}

/** Whether a credential valid until `until` (from {@link validUntil}) is expired at `now`. */
export function isExpired(until: number | null, now: number): boolean {
  return until !== null && now >= until;
}
