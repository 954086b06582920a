/**
 * What the client reads of a token without verifying it: a JWT's `exp`, so
 * that it never connects or refreshes with a token it knows has expired.
 * The signature is the server's business; a token that is not a JWT (an
 * API key) has no known expiry.
 */

/** A JWT's `exp` in epoch milliseconds, or null when the token is not a JWT or has no numeric `exp`. */
export function tokenExpiry(token: string): number | null {
  const a = token.indexOf('.');
  const b = a < 0 ? -1 : token.indexOf('.', a + 1);
  if (a <= 0 || b < 0) return null;
  const json = base64urlText(token.slice(a + 1, b));
  if (json === null) return null;
  let claims: unknown;
  try {
    claims = JSON.parse(json);
  } catch {
    return null;
  }
  if (typeof claims !== 'object' || claims === null) return null;
  const exp = (claims as Record<string, unknown>)['exp'];
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
}

/** Decodes base64url (no padding) to UTF-8 text with `atob`, which browsers and Node.js 20 both have; null when malformed. */
function base64urlText(s: string): string | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  let bin: string;
  try {
    bin = atob(b64);
  } catch {
    return null;
  }
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}
