/**
 * Security at the edge, with real WebSocket clients: authentication at the
 * upgrade (JWT and API keys), token refresh and expiry, entitlements, origin
 * checks, connection caps, message limits, idle timeout, and TLS.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { StateView, TestClient } from './helpers/ws-client.js';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!!';
const secretKey = new TextEncoder().encode(SECRET);
const dir = mkdtempSync(join(tmpdir(), 'tickgate-sec-'));
const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
});

async function hs256(claims: Record<string, unknown>, opts: { exp?: string | number; aud?: string; key?: Uint8Array } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject((claims['sub'] as string | undefined) ?? 'alice')
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? '1h')
    .setAudience(opts.aud ?? 'tickgate')
    .sign(opts.key ?? secretKey);
}

type Attempt = { ok: true; client: TestClient } | { ok: false; status: number; body: { code: string; msg: string } };

/** Tries an upgrade; resolves with the client, or the HTTP refusal and its JSON body. */
function attempt(url: string, opts: { headers?: Record<string, string>; protocols?: string[]; ca?: Buffer } = {}): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers ?? {}, ...(opts.ca ? { ca: opts.ca } : {}) });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ ok: false, status: res.statusCode ?? 0, body: JSON.parse(body) as { code: string; msg: string } }));
    });
    ws.once('error', reject);
    ws.once('open', () => {
      const c = TestClient.wrap(ws);
      cleanup.push(() => c.close());
      resolve({ ok: true, client: c });
    });
  });
}

async function refused(url: string, opts: Parameters<typeof attempt>[1] = {}) {
  const a = await attempt(url, opts);
  if (a.ok) throw new Error('expected the upgrade to be refused');
  return a;
}

async function accepted(url: string, opts: Parameters<typeof attempt>[1] = {}) {
  const a = await attempt(url, opts);
  if (!a.ok) throw new Error(`expected the upgrade to succeed, got ${a.status} ${JSON.stringify(a.body)}`);
  await a.client.next((m) => m.t === 'hello', 'hello');
  return a.client;
}

const bearer = (t: string) => ({ headers: { Authorization: `Bearer ${t}` } });

describe('JWT authentication at the upgrade', () => {
  let gw: TestGateway;
  type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  let rsPrivate: PrivateKey;
  let esPrivate: PrivateKey;
  beforeAll(async () => {
    const rs = await generateKeyPair('RS256', { extractable: true });
    rsPrivate = rs.privateKey;
    const pem = join(dir, 'rs256.pem');
    writeFileSync(pem, await exportSPKI(rs.publicKey));
    const es = await generateKeyPair('ES256', { extractable: true });
    esPrivate = es.privateKey;
    // RS256 via the PEM file; ES256 through a JWKS file would need its own gateway: covered below.
    gw = await startGateway({
      // A short skew keeps the expiry test short; the refusals below are well past it.
      auth: { mode: 'jwt', jwt: { secret: SECRET, publicKeyFile: pem, audience: 'tickgate', issuer: '', clockSkewSec: 3 } },
      embedded: { symbols: 50, ticksPerSec: 500 },
    });
    cleanup.push(() => gw.stop());
  });

  it('accepts a valid HS256 token from the header, a subprotocol or the query', async () => {
    const t = await hs256({ ent: ['*'] });
    await accepted(gw.url, bearer(t));
    const viaProtocol = await accepted(gw.url, { protocols: ['tickgate.v1', `bearer.${t}`] });
    expect(viaProtocol.ws.protocol).toBe('tickgate.v1');
    await accepted(`${gw.url}?token=${encodeURIComponent(t)}`);
  });

  it('refuses missing, expired, wrong-audience, unsigned, wrong-key and confused-algorithm tokens with 401 and a code', async () => {
    expect(await refused(gw.url)).toMatchObject({ status: 401, body: { code: 'AUTH_REQUIRED' } });
    expect(await refused(gw.url, bearer(await hs256({}, { exp: Math.floor(Date.now() / 1000) - 120 })))).toMatchObject({
      status: 401,
      body: { code: 'AUTH_EXPIRED' },
    });
    expect(await refused(gw.url, bearer(await hs256({}, { aud: 'someone-else' })))).toMatchObject({ status: 401, body: { code: 'AUTH_INVALID' } });
    const unsigned = new UnsecuredJWT({ sub: 'mallory', ent: ['*'] }).setAudience('tickgate').setExpirationTime('1h').encode();
    expect(await refused(gw.url, bearer(unsigned))).toMatchObject({ status: 401, body: { code: 'AUTH_INVALID' } });
    const wrongKey = new TextEncoder().encode('another-secret-that-is-also-long-enough-!!');
    expect(await refused(gw.url, bearer(await hs256({}, { key: wrongKey })))).toMatchObject({ status: 401, body: { code: 'AUTH_INVALID' } });
    // HS256 signed with the RSA public key's PEM as the HMAC secret.
    const pemAsSecret = new TextEncoder().encode((await import('node:fs')).readFileSync(join(dir, 'rs256.pem'), 'utf8'));
    expect(await refused(gw.url, bearer(await hs256({}, { key: pemAsSecret })))).toMatchObject({ status: 401, body: { code: 'AUTH_INVALID' } });
    expect(await refused(gw.url, bearer('not.a.jwt'))).toMatchObject({ status: 401, body: { code: 'AUTH_INVALID' } });
    expect(await gw.metric('tickgate_upgrades_rejected_total', { code: 'AUTH_INVALID' })).toBeGreaterThanOrEqual(5);
  });

  it('accepts RS256 signed by the configured key, refuses ES256 it has no key for', async () => {
    const rs = await new SignJWT({ ent: ['*'] }).setProtectedHeader({ alg: 'RS256' }).setSubject('bob').setAudience('tickgate').setExpirationTime('1h').sign(rsPrivate);
    await accepted(gw.url, bearer(rs));
    const es = await new SignJWT({ ent: ['*'] }).setProtectedHeader({ alg: 'ES256' }).setSubject('bob').setAudience('tickgate').setExpirationTime('1h').sign(esPrivate);
    expect(await refused(gw.url, bearer(es))).toMatchObject({ status: 401 });
  });

  it('ends the session with bye AUTH_EXPIRED at expiry, unless op auth brings a fresh token first', async () => {
    const soon = Math.floor(Date.now() / 1000) + 2;
    const expiring = await accepted(gw.url, bearer(await hs256({ ent: ['*'] }, { exp: soon })));
    const refreshed = await accepted(gw.url, bearer(await hs256({ ent: ['*'] }, { exp: soon })));
    for (const c of [expiring, refreshed]) c.send({ op: 'sub', symbols: ['AAPL'] });
    refreshed.send({ op: 'auth', id: 'r', token: await hs256({ ent: ['*'] }, { exp: '1h' }) });
    const ack = await refreshed.next((m) => m.t === 'ack' && m['op'] === 'auth', 'auth ack');
    expect(ack['id']).toBe('r');
    expect(ack['exp']).toBeGreaterThan(Date.now() + 3_000_000);
    // A token for another user is refused and changes nothing.
    refreshed.send({ op: 'auth', id: 'x', token: await hs256({ sub: 'eve', ent: ['*'] }) });
    expect(await refreshed.next((m) => m.t === 'err' && m['id'] === 'x', 'err')).toMatchObject({ code: 'AUTH_INVALID' });

    // At exp + auth.jwt.clockSkewSec (3 s), the instant the upgrade would refuse the token too.
    const bye = await expiring.next((m) => m.t === 'bye', 'bye', 15_000);
    expect(bye).toMatchObject({ code: 'AUTH_EXPIRED' });
    expect(Date.now()).toBeGreaterThanOrEqual((soon + 3) * 1000);
    // Reconnecting with the same token cannot succeed: no retryMs.
    expect(bye).not.toHaveProperty('retryMs');
    await expiring.until((x) => x.closed, 'close');
    expect(refreshed.closed).toBeNull();
    const after = refreshed.messages.length;
    await refreshed.next((m) => m.t === 'upd', 'still streaming', 3000, after);
  }, 30_000);
});

describe('entitlements', () => {
  let nats: NatsServer;
  let gw: TestGateway;
  let pub: NatsConnection;
  const packr = new Packr({ useRecords: false });
  beforeAll(async () => {
    nats = await startNatsServer();
    cleanup.push(() => nats.stop());
    gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [
        { name: 'sim', subject: 'md.sim.>' },
        { name: 'fx', subject: 'fx.>', codec: 'json', symbolField: 'pair' },
      ],
      auth: { mode: 'jwt', jwt: { secret: SECRET, audience: 'tickgate' } },
    });
    cleanup.push(() => gw.stop());
    pub = await connect({ servers: nats.url });
    cleanup.push(() => pub.close());
    for (const s of ['AAPL', 'AMZN', 'MSFT']) pub.publish(`md.sim.${s}`, packr.pack({ s, bid: 1, ask: 2 }));
    for (const p of ['EUR/USD', 'GBP/USD']) pub.publish('fx.spot', JSON.stringify({ pair: p, bid: 1.1, ask: 1.2 }));
    await pub.flush();
    await new Promise((r) => setTimeout(r, 100));
  });

  it('filters sub and symbols, and never sends data for a symbol outside them', async () => {
    const c = await accepted(gw.url, bearer(await hs256({ ent: ['sim:A*', 'fx:EUR/USD'] })));
    c.send({ op: 'sub', id: 1, symbols: ['AAPL', 'AMZN', 'MSFT', 'EUR/USD', 'GBP/USD', 'AXYZ', 'ZZZZ'] });
    const ack = await c.next((m) => m.t === 'ack', 'ack');
    expect(ack['ok']).toEqual(['AAPL', 'AMZN', 'EUR/USD', 'AXYZ']);
    expect((ack['err'] as Array<{ s: string; code: string }>).map((e) => [e.s, e.code])).toEqual([
      ['MSFT', 'NOT_ENTITLED'],
      ['GBP/USD', 'NOT_ENTITLED'],
      ['ZZZZ', 'NOT_ENTITLED'],
    ]);
    c.send({ op: 'symbols', id: 2 });
    const list = await c.next((m) => m.t === 'symbols', 'symbols');
    expect(list['symbols']).toEqual(['AAPL', 'AMZN', 'EUR/USD']);

    // AXYZ matched sim:A*, but its first tick comes from fx: no data, an err, and no subscription.
    pub.publish('fx.spot', JSON.stringify({ pair: 'AXYZ', bid: 5, ask: 6 }));
    for (const s of ['AAPL', 'MSFT']) pub.publish(`md.sim.${s}`, packr.pack({ s, bid: 3, ask: 4 }));
    pub.publish('fx.spot', JSON.stringify({ pair: 'GBP/USD', bid: 1.3, ask: 1.4 }));
    await pub.flush();
    const err = await c.next((m) => m.t === 'err' && m['code'] === 'NOT_ENTITLED', 'NOT_ENTITLED err');
    expect(err['s']).toBe('AXYZ');
    await c.next((m) => m.t === 'upd' && m['s'] === 'AAPL', 'AAPL upd');
    const seen = new Set(c.messages.filter((m) => m.t === 'snap' || m.t === 'upd').map((m) => m['s']));
    expect([...seen].sort()).toEqual(['AAPL', 'AMZN', 'EUR/USD']);
    expect(new StateView().apply(c.messages).violations).toEqual([]);
  });
});

describe('origin, caps, limits and idle connections', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      embedded: { symbols: 50, ticksPerSec: 500 },
      origin: { allowed: ['https://trading.example.com'], allowMissing: false },
      limits: { maxConnectionsPerIp: 3, subscribeTimeoutMs: 500, maxMessageBytes: 1024, trustProxyHeader: '' },
    });
    cleanup.push(() => gw.stop());
  });
  const from = (origin: string) => ({ headers: { Origin: origin } });

  it('refuses browser upgrades from other origins, and clients without an Origin when configured', async () => {
    expect(await refused(gw.url, from('https://evil.example.net'))).toMatchObject({ status: 403, body: { code: 'ORIGIN_NOT_ALLOWED' } });
    expect(await refused(gw.url)).toMatchObject({ status: 403, body: { code: 'ORIGIN_NOT_ALLOWED' } });
    const ok = await accepted(gw.url, from('https://trading.example.com'));
    await ok.close();
  });

  it('caps connections per address, and frees the slot on close', async () => {
    const three = await Promise.all([1, 2, 3].map(() => accepted(gw.url, from('https://trading.example.com'))));
    for (const c of three) c.send({ op: 'sub', symbols: ['AAPL'] });
    expect(await refused(gw.url, from('https://trading.example.com'))).toMatchObject({ status: 429, body: { code: 'TOO_MANY_CONNECTIONS' } });
    await three[0]!.close();
    await new Promise((r) => setTimeout(r, 100));
    const again = await accepted(gw.url, from('https://trading.example.com'));
    // The others never noticed.
    const n = three[1]!.messages.length;
    await three[1]!.next((m) => m.t === 'upd', 'still streaming', 3000, n);
    await Promise.all([again.close(), three[1]!.close(), three[2]!.close()]);
    await new Promise((r) => setTimeout(r, 100));
  });

  it('answers an oversized message with err, closes at 4x the size, and closes a client that never subscribes', async () => {
    const c = await accepted(gw.url, from('https://trading.example.com'));
    c.send({ op: 'ping', id: 'x'.repeat(1500) });
    expect(await c.next((m) => m.t === 'err', 'err')).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    c.sendRaw(Buffer.alloc(5000, 0x90), true);
    await c.until((x) => x.closed, 'close');
    // uWS drops the connection without a close frame: the client sees an abnormal close.
    expect([1006, 1009]).toContain(c.closed!.code);

    const idle = await accepted(gw.url, from('https://trading.example.com'));
    const bye = await idle.next((m) => m.t === 'bye', 'bye IDLE', 3000);
    expect(bye).toMatchObject({ code: 'IDLE' });
    await idle.until((x) => x.closed, 'close');
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'IDLE' })).toBeGreaterThanOrEqual(1);
  });
});

describe('per-user caps and trusted proxy addresses, with API keys', () => {
  it('counts connections per user and per forwarded address', async () => {
    const key = 'tg_live_0123456789abcdef';
    const gw = await startGateway({
      embedded: { symbols: 20, ticksPerSec: 100 },
      auth: { mode: 'apikey', apiKeys: [{ id: 'k1', sha256: createHash('sha256').update(key).digest('hex'), user: 'desk-1', entitlements: ['*'] }] },
      limits: { maxConnectionsPerUser: 2, maxConnectionsPerIp: 1, trustProxyHeader: 'x-forwarded-for' },
    });
    cleanup.push(() => gw.stop());
    const via = (ip: string) => ({ headers: { Authorization: `Bearer ${key}`, 'X-Forwarded-For': `198.51.100.7, ${ip}` } });
    expect(await refused(gw.url, { headers: { Authorization: 'Bearer wrong-key' } })).toMatchObject({ status: 401, body: { code: 'AUTH_INVALID' } });
    await accepted(gw.url, via('192.0.2.1'));
    // Same forwarded address: the per-address cap (1).
    expect(await refused(gw.url, via('192.0.2.1'))).toMatchObject({ status: 429 });
    await accepted(gw.url, via('192.0.2.2'));
    // Third connection of the same user from a new address: the per-user cap (2).
    expect(await refused(gw.url, via('192.0.2.3'))).toMatchObject({ status: 429, body: { code: 'TOO_MANY_CONNECTIONS' } });
  });
});

describe('TLS', () => {
  it('serves wss:// with the configured certificate', async () => {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
    const gw = await startGateway({ embedded: { symbols: 20, ticksPerSec: 100 }, tls: { certFile: cert, keyFile: key } });
    cleanup.push(() => gw.stop());
    const c = await accepted(gw.url.replace('ws://', 'wss://'), { ca: (await import('node:fs')).readFileSync(cert) });
    c.send({ op: 'sub', symbols: ['AAPL'] });
    await c.next((m) => m.t === 'snap', 'snap over TLS');
  });

  it('fails at start naming tls.keyFile when the key is missing', async () => {
    await expect(startGateway({ tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'nope.pem') } })).rejects.toThrow(/tls\.keyFile/);
  });
});

describe('JWKS keys', () => {
  it('verifies ES256 tokens by kid from a JWKS file', async () => {
    const es = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(es.publicKey)), kid: 'k-2026', alg: 'ES256', use: 'sig' };
    const jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [jwk] }));
    const gw = await startGateway({ embedded: { symbols: 20, ticksPerSec: 100 }, auth: { mode: 'jwt', jwt: { jwksFile: jwks } } });
    cleanup.push(() => gw.stop());
    const good = await new SignJWT({ ent: ['*'] }).setProtectedHeader({ alg: 'ES256', kid: 'k-2026' }).setSubject('carol').setExpirationTime('1h').sign(es.privateKey);
    await accepted(gw.url, bearer(good));
    const unknownKid = await new SignJWT({ ent: ['*'] }).setProtectedHeader({ alg: 'ES256', kid: 'other' }).setSubject('carol').setExpirationTime('1h').sign(es.privateKey);
    expect(await refused(gw.url, bearer(unknownKid))).toMatchObject({ status: 401, body: { code: 'AUTH_INVALID' } });
  });
});
