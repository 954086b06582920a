/**
 * Authentication of a client's token: JWT (HS256 with a shared secret,
 * RS256/ES256 with a public key or a JWKS file) or hashed API keys. Keys are
 * loaded once at start; a bad key setting fails the start naming the key.
 */
import { createHash, createPublicKey, type KeyObject, type webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, errors, jwtVerify, type JWTHeaderParameters, type JSONWebKeySet } from 'jose';
import { systemClock, type Clock } from '../clock.js';
import { ConfigError, type ApiKeyConfig, type Config } from '../config.js';
import { Entitlements } from './entitlements.js';
import { isExpired, validUntil } from './expiry.js';

/** Why a token was refused; stable codes used in HTTP bodies, bye and metrics. */
export type AuthCode = 'AUTH_REQUIRED' | 'AUTH_INVALID' | 'AUTH_EXPIRED';

/** Who a connection belongs to and what it may see. */
export interface Principal {
  user: string;
  entitlements: Entitlements;
  /** Epoch ms of the credential's own expiry (the token's `exp`); null: never. */
  expiresAt: number | null;
  /** Epoch ms from which the gateway treats it as expired (`exp` + clock skew, see expiry.ts); null: never. */
  validUntil: number | null;
}

export type AuthResult = { ok: true; principal: Principal } | { ok: false; code: AuthCode; msg: string };

/** The principal of every connection when authentication is off: everything is visible. */
export const ANONYMOUS: Principal = { user: 'anonymous', entitlements: Entitlements.ALL, expiresAt: null, validUntil: null };

type KeyFor = (header: JWTHeaderParameters) => Promise<KeyObject | Uint8Array | webcrypto.CryptoKey>;

function readFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${path} (${(err as Error).message})`, { cause: err });
  }
}

export class Authenticator {
  private constructor(
    readonly mode: Config['auth']['mode'],
    private readonly verifyJwt: ((token: string) => Promise<AuthResult>) | null,
    private readonly apiKeys: Map<string, ApiKeyConfig>,
  ) {}

  /**
   * Builds the authenticator for the configured mode; throws ConfigError
   * naming the key. `clock` decides expiry (the same clock as the sessions').
   */
  static create(config: Config, clock: Clock = systemClock): Authenticator {
    const a = config.auth;
    if (a.mode === 'none') return new Authenticator('none', null, new Map());
    if (a.mode === 'apikey') {
      if (a.apiKeys.length === 0) throw new ConfigError('auth.apiKeys: auth.mode is apikey but no keys are configured');
      return new Authenticator('apikey', null, new Map(a.apiKeys.map((k) => [k.sha256, k])));
    }
    return new Authenticator('jwt', Authenticator.jwtVerifier(config, clock), new Map());
  }

  private static jwtVerifier(config: Config, clock: Clock): (token: string) => Promise<AuthResult> {
    const j = config.auth.jwt;
    const secret = j.secret ? new TextEncoder().encode(j.secret) : null;
    if (secret && secret.byteLength < 32) throw new ConfigError('auth.jwt.secret: expected at least 32 bytes for HS256');
    let publicKey: KeyObject | null = null;
    if (j.publicKeyFile) {
      try {
        publicKey = createPublicKey(readFile(j.publicKeyFile, 'auth.jwt.publicKeyFile'));
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new ConfigError(`auth.jwt.publicKeyFile: ${j.publicKeyFile} is not a PEM public key (${(err as Error).message})`, { cause: err });
      }
    }
    let jwks: ReturnType<typeof createLocalJWKSet> | null = null;
    if (j.jwksFile) {
      try {
        jwks = createLocalJWKSet(JSON.parse(readFile(j.jwksFile, 'auth.jwt.jwksFile')) as JSONWebKeySet);
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new ConfigError(`auth.jwt.jwksFile: ${j.jwksFile} is not a JWKS document (${(err as Error).message})`, { cause: err });
      }
    }
    if (!secret && !publicKey && !jwks) {
      throw new ConfigError('auth.jwt: auth.mode is jwt but none of auth.jwt.secret, auth.jwt.publicKeyFile, auth.jwt.jwksFile is set');
    }
    // Only algorithms we hold a key for: an HMAC algorithm is never verified
    // with a public key (algorithm confusion), and "none" is never accepted.
    const algorithms = j.algorithms.filter((alg) => (alg.startsWith('HS') ? secret !== null : publicKey !== null || jwks !== null));
    if (algorithms.length === 0) throw new ConfigError(`auth.jwt.algorithms: none of ${j.algorithms.join(', ')} has a configured key`);
    const keyFor: KeyFor = async (header) => {
      if (header.alg.startsWith('HS')) return secret!;
      if (jwks) return jwks(header);
      return publicKey!;
    };
    const options = {
      algorithms,
      clockTolerance: j.clockSkewSec,
      ...(j.issuer ? { issuer: j.issuer } : {}),
      ...(j.audience ? { audience: j.audience } : {}),
    };
    const expired: AuthResult = {
      ok: false,
      code: 'AUTH_EXPIRED',
      msg: `token expired (exp + ${j.clockSkewSec} s has passed): retrying with this token will keep failing; get a fresh token first`,
    };
    return async (token) => {
      try {
        // jose checks exp and nbf against the injected clock too, with the same tolerance.
        const now = clock.now();
        const { payload } = await jwtVerify(token, keyFor, { ...options, currentDate: new Date(now) });
        const exp = typeof payload.exp === 'number' ? payload.exp : undefined;
        const until = validUntil(exp, j.clockSkewSec);
        // The rule of expiry.ts decides, whatever jose rounds: the session sweep applies the same one.
        if (isExpired(until, now)) return expired;
        const user = payload[j.userClaim];
        if (typeof user !== 'string' || user === '') return { ok: false, code: 'AUTH_INVALID', msg: `token has no ${j.userClaim} claim` };
        const ent = payload[j.entitlementsClaim];
        const patterns = Array.isArray(ent) ? ent.filter((e): e is string => typeof e === 'string') : [];
        return {
          ok: true,
          principal: { user, entitlements: new Entitlements(patterns), expiresAt: exp === undefined ? null : exp * 1000, validUntil: until },
        };
      } catch (err) {
        if (err instanceof errors.JWTExpired) return expired;
        if (err instanceof errors.JWTClaimValidationFailed) return { ok: false, code: 'AUTH_INVALID', msg: `token claim ${err.claim} is not acceptable` };
        return { ok: false, code: 'AUTH_INVALID', msg: 'token is not valid' };
      }
    };
  }

  /** Checks a token (null: none presented). Never throws. */
  async authenticate(token: string | null): Promise<AuthResult> {
    if (this.mode === 'none') return { ok: true, principal: ANONYMOUS };
    if (token === null || token === '') return { ok: false, code: 'AUTH_REQUIRED', msg: 'a token is required' };
    if (token.length > 8192) return { ok: false, code: 'AUTH_INVALID', msg: 'token is too long' };
    if (this.verifyJwt !== null) return this.verifyJwt(token);
    const key = this.apiKeys.get(createHash('sha256').update(token).digest('hex'));
    if (key === undefined) return { ok: false, code: 'AUTH_INVALID', msg: 'unknown API key' };
    return { ok: true, principal: { user: key.user, entitlements: new Entitlements(key.entitlements), expiresAt: null, validUntil: null } };
  }
}
