/**
 * Admission at the WebSocket upgrade, before any per-connection state
 * exists: origin allowlist, per-address and per-user connection caps, the
 * failed-attempt limit, and authentication. A refusal is an HTTP status with
 * a stable code, counted; the ones that a later retry with the same
 * credential may pass (429, 503) say when in `Retry-After`.
 */
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config.js';
import { addressKey, AttemptLimit } from './attempt-limit.js';
import { Authenticator, type AuthCode, type AuthResult, type Principal } from './authenticator.js';

/** Stable codes of refused upgrades. */
export type RejectCode = AuthCode | 'ORIGIN_NOT_ALLOWED' | 'TOO_MANY_CONNECTIONS' | 'TOO_MANY_ATTEMPTS' | 'DRAINING';

export const REJECT_CODES: readonly RejectCode[] = [
  'AUTH_REQUIRED',
  'AUTH_INVALID',
  'AUTH_EXPIRED',
  'ORIGIN_NOT_ALLOWED',
  'TOO_MANY_CONNECTIONS',
  'TOO_MANY_ATTEMPTS',
  'DRAINING',
];

const STATUS: Record<RejectCode, number> = {
  AUTH_REQUIRED: 401,
  AUTH_INVALID: 401,
  AUTH_EXPIRED: 401,
  ORIGIN_NOT_ALLOWED: 403,
  TOO_MANY_CONNECTIONS: 429,
  TOO_MANY_ATTEMPTS: 429,
  DRAINING: 503,
};

/**
 * Retry-After (seconds) of the refusals a retry with the same credential may
 * pass; null: retrying the same request will not help (401, 403), so none is
 * sent. TOO_MANY_ATTEMPTS computes its own from the blocked window.
 */
const RETRY_AFTER_SEC: Record<RejectCode, number | null> = {
  AUTH_REQUIRED: null,
  AUTH_INVALID: null,
  AUTH_EXPIRED: null,
  ORIGIN_NOT_ALLOWED: null,
  // A slot frees when one of the client's connections closes.
  TOO_MANY_CONNECTIONS: 5,
  TOO_MANY_ATTEMPTS: null,
  // Through a load balancer, the next attempt reaches another instance.
  DRAINING: 1,
};

/** What the upgrade request carried (read synchronously in the uWS handler). */
export interface UpgradeInfo {
  origin: string;
  authorization: string;
  /** Sec-WebSocket-Protocol as sent: comma-separated offers. */
  protocols: string;
  query: string;
  /** The socket's remote address. */
  remoteAddress: string;
  /** The trusted proxy header's value, when configured. */
  forwardedFor: string;
}

/** The subprotocol a client offers to say it speaks this protocol (and that other offers may carry a token). */
export const SUBPROTOCOL = 'tickgate.v1';
const BEARER_PROTOCOL = 'bearer.';

export type Admission =
  | {
      ok: true;
      principal: Principal;
      ip: string;
      protocol: string;
      /** The connection closed: `by` is the bye code the server ended it with, or 'remote' (never the client's own close reason). */
      ended(by: string): void;
    }
  | { ok: false; status: number; code: RejectCode; msg: string; /** Seconds for the Retry-After header; null: none. */ retryAfterSec: number | null };

export class AccessControl {
  readonly rejected: Record<RejectCode, number> = {
    AUTH_REQUIRED: 0,
    AUTH_INVALID: 0,
    AUTH_EXPIRED: 0,
    ORIGIN_NOT_ALLOWED: 0,
    TOO_MANY_CONNECTIONS: 0,
    TOO_MANY_ATTEMPTS: 0,
    DRAINING: 0,
  };
  private readonly perIp = new Map<string, number>();
  private readonly perUser = new Map<string, number>();
  private readonly origins: Set<string>;
  /** Failed attempts (and verifications in flight) per client address (keyed by {@link addressKey}), and failed attempts per user (where the token was valid). */
  readonly failedByIp: AttemptLimit;
  readonly failedByUser: AttemptLimit;
  /** Refuse new upgrades (draining). */
  closed = false;

  constructor(
    private readonly config: Config,
    readonly authenticator: Authenticator,
    private readonly clock: Clock = systemClock,
  ) {
    this.origins = new Set(config.origin.allowed.map((o) => o.toLowerCase().replace(/\/$/, '')));
    const f = config.auth.failedAttempts;
    this.failedByIp = new AttemptLimit(f.max, f.windowMs, f.maxTracked, clock);
    this.failedByUser = new AttemptLimit(authenticator.mode === 'none' ? 0 : f.max, f.windowMs, f.maxTracked, clock);
  }

  /** The client address: the socket's, or the trusted proxy header's last entry. */
  clientIp(info: UpgradeInfo): string {
    if (this.config.limits.trustProxyHeader && info.forwardedFor) {
      const parts = info.forwardedFor.split(',');
      const last = parts[parts.length - 1]!.trim();
      if (last) return last;
    }
    return info.remoteAddress;
  }

  /** The token from Authorization: Bearer, a bearer.<token> subprotocol, or ?token= (when allowed). */
  token(info: UpgradeInfo): string | null {
    const m = /^Bearer\s+(\S+)$/i.exec(info.authorization.trim());
    if (m) return m[1]!;
    for (const p of info.protocols.split(',')) {
      const t = p.trim();
      if (t.startsWith(BEARER_PROTOCOL)) return t.slice(BEARER_PROTOCOL.length);
    }
    if (this.config.auth.allowQueryToken && info.query) {
      const q = new URLSearchParams(info.query).get('token');
      if (q) return q;
    }
    return null;
  }

  /**
   * Decides an upgrade. On success the connection is counted against its
   * address and user until {@link release}.
   */
  async admit(info: UpgradeInfo): Promise<Admission> {
    if (this.closed) return this.reject('DRAINING', 'server is draining; connect to another instance');
    const origin = info.origin.toLowerCase().replace(/\/$/, '');
    if (origin === '' ? !this.config.origin.allowMissing : this.origins.size > 0 && !this.origins.has(origin)) {
      return this.reject('ORIGIN_NOT_ALLOWED', origin === '' ? 'an Origin header is required' : `origin ${info.origin} is not allowed`);
    }
    const ip = this.clientIp(info);
    const ipKey = addressKey(ip);
    const l = this.config.limits;
    if (l.maxConnectionsPerIp > 0 && (this.perIp.get(ip) ?? 0) >= l.maxConnectionsPerIp) {
      return this.reject('TOO_MANY_CONNECTIONS', `at most ${l.maxConnectionsPerIp} connections per address`);
    }
    // Before authentication, and counted while it runs: a blocked client
    // costs no signature check, and parallel upgrades cannot all reach one
    // before the first of them fails.
    const attempt = this.failedByIp.begin(ipKey);
    if (typeof attempt === 'number') return this.tooManyAttempts('address', attempt);
    let auth: AuthResult;
    let failed = false;
    try {
      auth = await this.authenticator.authenticate(this.token(info));
      failed = !auth.ok;
    } finally {
      this.failedByIp.settle(attempt, failed);
    }
    if (!auth.ok) {
      // Through the allowance of a blocked address only a valid token gets further; the address stays blocked.
      if (attempt.allowance) return this.tooManyAttempts('address', this.failedByIp.blockedFor(ipKey));
      return this.reject(auth.code, auth.msg);
    }
    const user = auth.principal.user;
    const userBlocked = this.failedByUser.blockedFor(user);
    if (userBlocked > 0) return this.tooManyAttempts('user', userBlocked);
    const perUser = this.authenticator.mode !== 'none' && l.maxConnectionsPerUser > 0;
    // Re-checked after the await: other upgrades may have been admitted meanwhile.
    if (
      (l.maxConnectionsPerIp > 0 && (this.perIp.get(ip) ?? 0) >= l.maxConnectionsPerIp) ||
      (perUser && (this.perUser.get(user) ?? 0) >= l.maxConnectionsPerUser)
    ) {
      return this.reject('TOO_MANY_CONNECTIONS', `at most ${perUser ? l.maxConnectionsPerUser : l.maxConnectionsPerIp} connections per ${perUser ? 'user' : 'address'}`);
    }
    this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    if (perUser) this.perUser.set(user, (this.perUser.get(user) ?? 0) + 1);
    const offered = info.protocols.split(',').map((p) => p.trim());
    const admittedAt = this.clock.now();
    return {
      ok: true,
      principal: auth.principal,
      ip,
      protocol: offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : '',
      ended: (by) => this.ended(ipKey, user, admittedAt, by),
    };
  }

  /**
   * A connection that the server ended with bye AUTH_EXPIRED within the
   * window after its admission is a failed attempt too: a client that keeps
   * reconnecting with a token about to expire is limited like one whose token
   * is refused outright. `by` must come from the server's own record of the
   * session: a client may close with any reason it likes.
   */
  private ended(ipKey: string, user: string, admittedAt: number, by: string): void {
    if (by !== 'AUTH_EXPIRED') return;
    if (this.clock.now() - admittedAt >= this.config.auth.failedAttempts.windowMs) return;
    this.failedByIp.fail(ipKey);
    this.failedByUser.fail(user);
  }

  private tooManyAttempts(by: 'address' | 'user', blockedMs: number): Admission {
    const f = this.config.auth.failedAttempts;
    const retryAfterSec = Math.max(1, Math.ceil(blockedMs / 1000));
    this.rejected.TOO_MANY_ATTEMPTS++;
    return {
      ok: false,
      status: STATUS.TOO_MANY_ATTEMPTS,
      code: 'TOO_MANY_ATTEMPTS',
      msg: `${f.max} failed (or still verifying) connection attempts per ${by} within ${f.windowMs} ms: retry after ${retryAfterSec} s, with a fresh token`,
      retryAfterSec,
    };
  }

  /** A connection admitted for (ip, user) has ended (or its upgrade was aborted). */
  release(ip: string, user: string): void {
    dec(this.perIp, ip);
    if (this.authenticator.mode !== 'none') dec(this.perUser, user);
  }

  private reject(code: RejectCode, msg: string): Admission {
    this.rejected[code]++;
    return { ok: false, status: STATUS[code], code, msg, retryAfterSec: RETRY_AFTER_SEC[code] };
  }
}

function dec(m: Map<string, number>, k: string): void {
  const n = (m.get(k) ?? 0) - 1;
  if (n <= 0) m.delete(k);
  else m.set(k, n);
}
