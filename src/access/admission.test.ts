/**
 * Token expiry and the failed-attempt limit on a manual clock: one rule for
 * "expired" at the upgrade, in `op: auth` and in the session sweep, and the
 * per-address and per-user limit on failed attempts, without waiting.
 */
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.js';
import { loadConfig } from '../config.js';
import { Hub } from '../fanout/hub.js';
import { createLogger } from '../log.js';
import { RecordingSocket } from '../../test/helpers/recording-socket.js';
import { AccessControl, type Admission, type UpgradeInfo } from './admission.js';
import { addressKey, AttemptLimit } from './attempt-limit.js';
import { Authenticator } from './authenticator.js';

const SECRET = 'a-unit-test-secret-that-is-long-enough!!';
const key = new TextEncoder().encode(SECRET);
const START = 1_700_000_000_000;
const log = createLogger('silent', false);

function setup(failedAttempts: Record<string, number> = {}, clockSkewSec = 30) {
  const clock = new ManualClock(START);
  const config = loadConfig({ env: {}, overrides: { auth: { mode: 'jwt', jwt: { secret: SECRET, clockSkewSec }, failedAttempts } } });
  const auth = Authenticator.create(config, clock);
  const access = new AccessControl(config, auth, clock);
  return { clock, config, auth, access };
}

/** A token for `sub` expiring at `expSec` (epoch seconds). */
function token(expSec: number, sub = 'alice') {
  return new SignJWT({ ent: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(expSec).sign(key);
}

function info(tok: string | null, remoteAddress = '10.0.0.1'): UpgradeInfo {
  return { origin: '', authorization: tok === null ? '' : `Bearer ${tok}`, protocols: '', query: '', remoteAddress, forwardedFor: '' };
}

function refusal(a: Admission) {
  if (a.ok) throw new Error('expected a refusal');
  return a;
}

function admitted(a: Admission) {
  if (!a.ok) throw new Error(`expected admission, got ${a.status} ${a.code}: ${a.msg}`);
  return a;
}

const nowSec = Math.floor(START / 1000);

describe('one rule for expiry (exp + clockSkewSec, injected clock)', () => {
  it('admits a token that expired 10 s ago with 30 s of skew, valid until exp + 30 s', async () => {
    const { access } = setup();
    const a = admitted(await access.admit(info(await token(nowSec - 10))));
    expect(a.principal.expiresAt).toBe((nowSec - 10) * 1000);
    expect(a.principal.validUntil).toBe((nowSec + 20) * 1000);
  });

  it('refuses a token past exp + skew with 401 AUTH_EXPIRED, no Retry-After, and a message saying it is terminal', async () => {
    const { access, clock } = setup();
    const t = await token(nowSec + 5);
    admitted(await access.admit(info(t)));
    clock.advance(35_000 - 1);
    admitted(await access.admit(info(t)));
    clock.advance(1);
    const r = refusal(await access.admit(info(t)));
    expect(r).toMatchObject({ status: 401, code: 'AUTH_EXPIRED', retryAfterSec: null });
    expect(r.msg).toMatch(/fresh token/);
    expect(access.rejected.AUTH_EXPIRED).toBe(1);
  });

  it('ends the session with bye AUTH_EXPIRED without retryMs exactly when the upgrade would refuse the token', async () => {
    const { access, auth, clock } = setup({}, 30);
    const hub = new Hub(loadConfig({ env: {}, overrides: { auth: { mode: 'jwt', jwt: { secret: SECRET } }, limits: { subscribeTimeoutMs: 0 } } }), log, clock);
    hub.authenticator = auth;
    hub.start();
    const t = await token(nowSec - 10);
    const a = admitted(await access.admit(info(t)));
    const socket = new RecordingSocket();
    hub.openSession(socket, a.principal);
    hub.scheduler.run();
    expect(socket.messages.map((m) => m.t)).toEqual(['hello']);
    clock.advance(20_000 - 300);
    hub.scheduler.run();
    expect(socket.messages.map((m) => m.t)).not.toContain('bye');
    expect((await auth.authenticate(t)).ok).toBe(true);
    clock.advance(300);
    hub.scheduler.run();
    const bye = socket.messages.find((m) => m.t === 'bye');
    expect(bye).toMatchObject({ code: 'AUTH_EXPIRED' });
    expect(bye).not.toHaveProperty('retryMs');
    expect(await auth.authenticate(t)).toMatchObject({ ok: false, code: 'AUTH_EXPIRED' });
    hub.closeAll('DRAINING', 'test over', () => 0);
  });
});

describe('failed-attempt limit at the upgrade', () => {
  it('refuses an address with 429 TOO_MANY_ATTEMPTS after max failures, until the window ends', async () => {
    const { access, clock } = setup({ max: 3, windowMs: 10_000 });
    const expired = await token(nowSec - 60);
    for (let i = 0; i < 3; i++) expect(refusal(await access.admit(info(expired)))).toMatchObject({ status: 401, code: 'AUTH_EXPIRED' });
    clock.advance(4000);
    const r = refusal(await access.admit(info(expired)));
    expect(r).toMatchObject({ status: 429, code: 'TOO_MANY_ATTEMPTS', retryAfterSec: 6 });
    // The expired token took the address's allowance (one check per windowMs / max), so a valid token waits too.
    expect(refusal(await access.admit(info(await token(nowSec + 3600))))).toMatchObject({ code: 'TOO_MANY_ATTEMPTS' });
    // Other addresses are unaffected.
    admitted(await access.admit(info(await token(nowSec + 3600), '10.0.0.2')));
    expect(access.rejected.TOO_MANY_ATTEMPTS).toBe(2);
    clock.advance(6000);
    admitted(await access.admit(info(await token(nowSec + 3600))));
    // A fresh window: max more failures.
    for (let i = 0; i < 3; i++) expect(refusal(await access.admit(info(null)))).toMatchObject({ code: 'AUTH_REQUIRED' });
    expect(refusal(await access.admit(info(null)))).toMatchObject({ code: 'TOO_MANY_ATTEMPTS' });
  });

  it('counts a bye AUTH_EXPIRED soon after admission against the address and the user, not a late one', async () => {
    const { access, clock } = setup({ max: 2, windowMs: 10_000 }, 0);
    // Two short sessions for bob from two addresses, each ended by bye AUTH_EXPIRED.
    for (const ip of ['10.0.0.1', '10.0.0.2']) {
      const a = admitted(await access.admit(info(await token(nowSec + 60, 'bob'), ip)));
      clock.advance(1000);
      a.ended('AUTH_EXPIRED');
    }
    // bob is blocked from anywhere; neither address has reached the limit alone.
    const r = refusal(await access.admit(info(await token(nowSec + 3600, 'bob'), '10.0.0.3')));
    expect(r).toMatchObject({ status: 429, code: 'TOO_MANY_ATTEMPTS', retryAfterSec: 9 });
    expect(r.msg).toMatch(/per user/);
    admitted(await access.admit(info(await token(nowSec + 3600, 'carol'), '10.0.0.1')));
    // Other close reasons, and an expiry long after admission, do not count.
    const c = admitted(await access.admit(info(await token(nowSec + 3600, 'dave'), '10.0.0.4')));
    c.ended('LIMIT_EXCEEDED');
    c.ended('');
    const d = admitted(await access.admit(info(await token(nowSec + 3600, 'dave'), '10.0.0.4')));
    clock.advance(10_000);
    d.ended('AUTH_EXPIRED');
    expect(access.failedByUser.blockedFor('dave')).toBe(0);
    admitted(await access.admit(info(await token(nowSec + 3600, 'dave'), '10.0.0.4')));
  });

  it('counts verifications in flight: 200 parallel upgrades with a bad token and max 3 reach at most 3 signature checks, the rest get 429', async () => {
    const { access, auth, clock } = setup({ max: 3, windowMs: 10_000 });
    let verified = 0;
    const authenticate = auth.authenticate.bind(auth);
    auth.authenticate = (t) => {
      verified++;
      return authenticate(t);
    };
    const bad = (await token(nowSec + 3600)).slice(0, -4) + 'AAAA';
    const results = await Promise.all(Array.from({ length: 200 }, () => access.admit(info(bad))));
    expect(verified).toBeLessThanOrEqual(3);
    const codes = results.map((r) => refusal(r).code);
    expect(codes.filter((c) => c === 'AUTH_INVALID')).toHaveLength(verified);
    expect(codes.filter((c) => c === 'TOO_MANY_ATTEMPTS')).toHaveLength(200 - verified);
    for (const r of results) if (refusal(r).code === 'TOO_MANY_ATTEMPTS') expect(refusal(r).retryAfterSec).toBeGreaterThanOrEqual(1);
    // Nothing is left in flight: the address is blocked by its failures alone, and another one is not.
    expect(access.failedByIp.blockedFor('10.0.0.1')).toBe(10_000);
    admitted(await access.admit(info(await token(nowSec + 3600), '10.0.0.2')));
    expect(access.failedByIp.size).toBe(1);
    clock.advance(10_000);
    admitted(await access.admit(info(await token(nowSec + 3600))));
  });

  it('keys IPv6 addresses by their /64 prefix and IPv4-mapped addresses as IPv4', async () => {
    expect(addressKey('2001:db8:1:2::a')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:0db8:0001:0002:ffff:0000:0000:000b')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:DB8:1:2:3:4:5:6%eth0')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('0000:0000:0000:0000:0000:ffff:0a00:0001')).toBe('10.0.0.1');
    expect(addressKey('10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('not-an-address')).toBe('not-an-address');
    const { access } = setup({ max: 3, windowMs: 10_000, maxTracked: 2 });
    // Three failures from three interface identifiers of one /64 block the whole /64, in one entry.
    for (const host of ['a', 'b', 'c']) expect(refusal(await access.admit(info(null, `2001:db8:1:2::${host}`)))).toMatchObject({ code: 'AUTH_REQUIRED' });
    expect(access.failedByIp.size).toBe(1);
    expect(refusal(await access.admit(info(null, '2001:db8:1:2:dead:beef:0:1')))).toMatchObject({ code: 'TOO_MANY_ATTEMPTS' });
    // Another /64 is unaffected.
    admitted(await access.admit(info(await token(nowSec + 3600), '2001:db8:1:3::a')));
    // An IPv4 address and its IPv4-mapped form are one key.
    for (let i = 0; i < 3; i++) refusal(await access.admit(info(null, '::ffff:10.0.0.9')));
    expect(refusal(await access.admit(info(null, '10.0.0.9')))).toMatchObject({ code: 'TOO_MANY_ATTEMPTS' });
  });

  it('still admits a valid token from a blocked address, at most one check per windowMs / max; a success is not a failure', async () => {
    const { access, auth, clock } = setup({ max: 3, windowMs: 12_000 });
    let verified = 0;
    const authenticate = auth.authenticate.bind(auth);
    auth.authenticate = (t) => {
      verified++;
      return authenticate(t);
    };
    const valid = await token(nowSec + 3600);
    // Two failures, a success, then the third failure: the success did not count.
    for (let i = 0; i < 2; i++) refusal(await access.admit(info(null)));
    admitted(await access.admit(info(valid)));
    expect(refusal(await access.admit(info(null)))).toMatchObject({ status: 401, code: 'AUTH_REQUIRED' });
    expect(verified).toBe(4);
    // Blocked at t = 0: the first allowance comes 12000 / 3 = 4000 ms later.
    expect(refusal(await access.admit(info(valid)))).toMatchObject({ code: 'TOO_MANY_ATTEMPTS', retryAfterSec: 12 });
    clock.advance(3999);
    expect(refusal(await access.admit(info(valid)))).toMatchObject({ code: 'TOO_MANY_ATTEMPTS' });
    clock.advance(1);
    // Parallel upgrades share the one check of the interval.
    const parallel = await Promise.all(Array.from({ length: 50 }, () => access.admit(info(valid))));
    expect(parallel.filter((a) => a.ok)).toHaveLength(1);
    expect(parallel.filter((a) => !a.ok && a.code === 'TOO_MANY_ATTEMPTS')).toHaveLength(49);
    clock.advance(3999);
    expect(refusal(await access.admit(info(valid)))).toMatchObject({ code: 'TOO_MANY_ATTEMPTS' });
    // A bad token through the allowance gets 429 too, not its 401, and uses the allowance up.
    clock.advance(1);
    expect(refusal(await access.admit(info(null)))).toMatchObject({ status: 429, code: 'TOO_MANY_ATTEMPTS', retryAfterSec: 4 });
    expect(refusal(await access.admit(info(valid)))).toMatchObject({ code: 'TOO_MANY_ATTEMPTS' });
    // Within the window: max checks, then one per interval (at t = 4000 and 8000).
    expect(verified).toBe(4 + 1 + 1);
    clock.advance(4000);
    admitted(await access.admit(info(valid)));
  });

  it('does not count a connection the client closed, whatever reason its close frame gave; the server\'s bye AUTH_EXPIRED counts', async () => {
    const { access, auth, clock } = setup({ max: 2, windowMs: 10_000 });
    const hub = new Hub(loadConfig({ env: {}, overrides: { auth: { mode: 'jwt', jwt: { secret: SECRET } }, limits: { subscribeTimeoutMs: 0 } } }), log, clock);
    hub.authenticator = auth;
    hub.start();
    // The client closes first (with reason "AUTH_EXPIRED", for all the server knows): the session says 'remote'.
    for (let i = 0; i < 5; i++) {
      const a = admitted(await access.admit(info(await token(nowSec + 3600, 'mallory'))));
      const session = hub.openSession(new RecordingSocket(), a.principal);
      const by = session.onClose();
      expect(by).toBe('remote');
      a.ended(by);
    }
    expect(access.failedByIp.blockedFor('10.0.0.1')).toBe(0);
    expect(access.failedByUser.blockedFor('mallory')).toBe(0);
    // The server's own bye AUTH_EXPIRED is what the session reports.
    const a = admitted(await access.admit(info(await token(nowSec + 3600, 'mallory'))));
    const session = hub.openSession(new RecordingSocket(), a.principal);
    session.bye('AUTH_EXPIRED', 'token expired');
    expect(session.onClose()).toBe('AUTH_EXPIRED');
    hub.closeAll('DRAINING', 'test over', () => 0);
  });

  it('is off with max 0', async () => {
    const { access } = setup({ max: 0 });
    for (let i = 0; i < 50; i++) expect(refusal(await access.admit(info(null)))).toMatchObject({ code: 'AUTH_REQUIRED' });
    expect(access.failedByIp.size).toBe(0);
  });

  it('says when to retry for 429 TOO_MANY_CONNECTIONS and 503 DRAINING, and not for 401 or 403', async () => {
    const clock = new ManualClock(START);
    const config = loadConfig({ env: {}, overrides: { limits: { maxConnectionsPerIp: 1 }, origin: { allowMissing: false } } });
    const access = new AccessControl(config, Authenticator.create(config, clock), clock);
    expect(refusal(await access.admit(info(null)))).toMatchObject({ status: 403, retryAfterSec: null });
    const withOrigin = { ...info(null), origin: 'https://a.example' };
    admitted(await access.admit(withOrigin));
    expect(refusal(await access.admit(withOrigin))).toMatchObject({ status: 429, code: 'TOO_MANY_CONNECTIONS', retryAfterSec: 5 });
    access.closed = true;
    expect(refusal(await access.admit(withOrigin))).toMatchObject({ status: 503, code: 'DRAINING', retryAfterSec: 1 });
  });
});

describe('AttemptLimit', () => {
  it('tracks at most maxTracked keys, forgetting the least recently failed first', () => {
    const clock = new ManualClock(START);
    const l = new AttemptLimit(1, 60_000, 3, clock);
    for (const k of ['a', 'b', 'c']) l.fail(k);
    l.fail('a');
    l.fail('d');
    expect(l.size).toBe(3);
    expect(l.blockedFor('b')).toBe(0);
    for (const k of ['a', 'c', 'd']) expect(l.blockedFor(k)).toBe(60_000);
    for (let i = 0; i < 10_000; i++) l.fail(`k${i}`);
    expect(l.size).toBe(3);
  });

  it('forgets a key once its window has passed', () => {
    const clock = new ManualClock(START);
    const l = new AttemptLimit(2, 1000, 100, clock);
    l.fail('a');
    clock.advance(999);
    l.fail('a');
    expect(l.blockedFor('a')).toBe(1);
    clock.advance(1);
    expect(l.blockedFor('a')).toBe(0);
    expect(l.size).toBe(0);
  });
});
