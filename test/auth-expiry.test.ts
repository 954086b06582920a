/**
 * Token expiry without reconnect storms, with real gateways and real
 * WebSocket clients: a token is accepted until exp + auth.jwt.clockSkewSec
 * at the upgrade and by the session alike; bye AUTH_EXPIRED carries no
 * retryMs; failed attempts from one address are cut to 429
 * TOO_MANY_ATTEMPTS with Retry-After; a normal client never is; and the SDK
 * holding a short-lived token no longer cycles through connect and bye.
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { TickgateClient, type WebSocketConstructor } from '../src/client/index.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { TestClient } from './helpers/ws-client.js';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!!';
const secretKey = new TextEncoder().encode(SECRET);
const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
});

const nowSec = () => Math.floor(Date.now() / 1000);

function token(expSec: number, sub = 'alice') {
  return new SignJWT({ ent: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime(expSec).sign(secretKey);
}

async function jwtGateway(extra: Record<string, unknown> = {}, auth: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startGateway({
    auth: { mode: 'jwt', jwt: { secret: SECRET }, ...auth },
    embedded: { symbols: 20, ticksPerSec: 200 },
    ...extra,
  });
  cleanup.push(() => gw.stop());
  return gw;
}

type Outcome = { ok: true; client: TestClient } | { ok: false; status: number; retryAfter: string | undefined; code: string; msg: string };

/** One upgrade attempt with a bearer token: the open client, or the HTTP refusal. */
function attempt(url: string, tok: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [], { headers: { Authorization: `Bearer ${tok}` } });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        // Free the socket at once: a tight loop would otherwise run out of descriptors.
        req.socket?.destroy();
        const b = JSON.parse(body) as { code: string; msg: string };
        resolve({ ok: false, status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], code: b.code, msg: b.msg });
      });
    });
    ws.once('error', reject);
    ws.once('open', () => {
      const client = TestClient.wrap(ws);
      cleanup.push(() => client.close());
      resolve({ ok: true, client });
    });
  });
}

/** Connection attempts the gateway saw: opened plus every refused upgrade. */
async function attemptsSeen(gw: TestGateway): Promise<number> {
  const text = await (await fetch(`${gw.http}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^tickgate_(connections_opened_total|upgrades_rejected_total)(\{[^}]*\})? (\S+)$/gm)) n += Number(m[3]);
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('expiry: one rule at the upgrade and in the session (clockSkewSec 30)', () => {
  it('admits a token that expired 10 s ago, keeps it connected until exp + 30 s, then sends bye AUTH_EXPIRED without retryMs', async () => {
    const gw = await jwtGateway();
    const exp = nowSec() - 10;
    const a = await attempt(gw.url, await token(exp));
    if (!a.ok) throw new Error(`expected admission, got ${a.status} ${a.code}`);
    const c = a.client;
    await c.next((m) => m.t === 'hello', 'hello');
    c.send({ op: 'sub', symbols: ['AAPL'] });
    // Well past exp and past the moment the session used to end it: still streaming.
    await sleep(3000);
    expect(c.messages.find((m) => m.t === 'bye')).toBeUndefined();
    const n = c.messages.length;
    await c.next((m) => m.t === 'upd', 'still streaming', 3000, n);
    const bye = await c.next((m) => m.t === 'bye', 'bye AUTH_EXPIRED', 25_000);
    const at = Date.now();
    expect(bye).toMatchObject({ code: 'AUTH_EXPIRED' });
    expect(bye).not.toHaveProperty('retryMs');
    // Not before exp + 30 s, and within a sweep period or so after it.
    expect(at).toBeGreaterThanOrEqual((exp + 30) * 1000);
    expect(at).toBeLessThan((exp + 30) * 1000 + 2000);
    await c.until((x) => x.closed, 'close');
    expect(c.closed!.code).toBe(1008);
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })).toBe(1);
  }, 40_000);

  it('refuses a token past exp + skew with 401 AUTH_EXPIRED, no Retry-After, and says retrying it will keep failing', async () => {
    const gw = await jwtGateway();
    const r = await attempt(gw.url, await token(nowSec() - 31));
    expect(r).toMatchObject({ ok: false, status: 401, code: 'AUTH_EXPIRED', retryAfter: undefined });
    if (!r.ok) expect(r.msg).toMatch(/keep failing.*fresh token/);
  });
});

describe('failed-attempt limit with a naive client', () => {
  /** Reconnects as fast as it can with one token, for `ms` or `max` attempts, whichever ends first. */
  async function tightLoop(url: string, tok: string, ms: number, max: number) {
    const counts: Record<string, number> = {};
    const retryAfter = new Set<string>();
    const end = Date.now() + ms;
    for (let i = 0; i < max && Date.now() < end; i++) {
      const r = await attempt(url, tok);
      if (r.ok) {
        counts['open'] = (counts['open'] ?? 0) + 1;
        await r.client.close();
        continue;
      }
      counts[`${r.status} ${r.code}`] = (counts[`${r.status} ${r.code}`] ?? 0) + 1;
      if (r.retryAfter !== undefined) retryAfter.add(r.retryAfter);
    }
    return { counts, retryAfter };
  }

  it('cuts a tight reconnect loop with an expired token to 429 after max failures per window; without the limit every attempt is checked', async () => {
    const expired = await token(nowSec() - 3600);
    const off = await jwtGateway({}, { failedAttempts: { max: 0 } });
    const before = await tightLoop(off.url, expired, 5000, 20_000);
    const on = await jwtGateway({}, { failedAttempts: { max: 10, windowMs: 5000 } });
    const after = await tightLoop(on.url, expired, 5000, 20_000);
    console.log(`tight loop, 5 s: limit off ${JSON.stringify(before.counts)}; limit 10 per 5 s ${JSON.stringify(after.counts)}`);
    // Without the limit every attempt reaches authentication.
    expect(Object.keys(before.counts)).toEqual(['401 AUTH_EXPIRED']);
    expect(before.counts['401 AUTH_EXPIRED']).toBeGreaterThan(100);
    // With it, 10 per window (one window, and possibly the start of the next, within 5 s) and 429 after.
    const checked = after.counts['401 AUTH_EXPIRED'] ?? 0;
    expect(checked).toBeGreaterThanOrEqual(10);
    expect(checked).toBeLessThanOrEqual(20);
    expect(after.counts['429 TOO_MANY_ATTEMPTS']).toBeGreaterThan(0);
    expect(after.retryAfter.size).toBeGreaterThan(0);
    for (const v of after.retryAfter) expect(Number(v)).toSatisfy((s: number) => Number.isInteger(s) && s >= 1 && s <= 5);
    expect(await on.metric('tickgate_upgrades_rejected_total', { code: 'TOO_MANY_ATTEMPTS' })).toBe(after.counts['429 TOO_MANY_ATTEMPTS']);
    expect(await on.metric('tickgate_upgrades_rejected_total', { code: 'AUTH_EXPIRED' })).toBe(checked);
  }, 30_000);

  it('counts connections ended by bye AUTH_EXPIRED soon after admission: reconnecting each time with a token about to expire ends in 429', async () => {
    const gw = await jwtGateway({}, { jwt: { secret: SECRET, clockSkewSec: 0 }, failedAttempts: { max: 3, windowMs: 30_000 } });
    const byes: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 3; i++) {
      const a = await attempt(gw.url, await token(nowSec() + 2, 'dora'));
      if (!a.ok) throw new Error(`cycle ${i} refused: ${a.status} ${a.code}`);
      byes.push(await a.client.next((m) => m.t === 'bye', 'bye AUTH_EXPIRED', 5000));
      await a.client.until((x) => x.closed, 'close');
    }
    expect(byes.map((b) => b['code'])).toEqual(['AUTH_EXPIRED', 'AUTH_EXPIRED', 'AUTH_EXPIRED']);
    for (const b of byes) expect(b).not.toHaveProperty('retryMs');
    // A fourth attempt, even with a token valid for an hour: the address (and the user) used up the window.
    const r = await attempt(gw.url, await token(nowSec() + 3600, 'dora'));
    expect(r).toMatchObject({ ok: false, status: 429, code: 'TOO_MANY_ATTEMPTS' });
    if (!r.ok) expect(Number(r.retryAfter)).toBeGreaterThan(20);
    expect(await gw.metric('tickgate_upgrades_rejected_total', { code: 'TOO_MANY_ATTEMPTS' })).toBe(1);
  }, 20_000);

  it('never limits a normal client reconnecting with valid tokens at a modest rate (defaults), even with an expired token now and then', async () => {
    const gw = await jwtGateway();
    let refused = 0;
    for (let i = 0; i < 40; i++) {
      if (i % 10 === 9) {
        // The user's token ran out; the page gets a fresh one and retries.
        const stale = await attempt(gw.url, await token(nowSec() - 3600, 'carol'));
        expect(stale).toMatchObject({ ok: false, status: 401, code: 'AUTH_EXPIRED' });
        refused++;
      }
      const a = await attempt(gw.url, await token(nowSec() + 600, 'carol'));
      if (!a.ok) throw new Error(`attempt ${i} refused: ${a.status} ${a.code} ${a.msg}`);
      await a.client.next((m) => m.t === 'hello', 'hello');
      a.client.send({ op: 'sub', symbols: ['AAPL'] });
      await a.client.close();
      await sleep(100);
    }
    expect(refused).toBe(4);
    expect(await gw.metric('tickgate_upgrades_rejected_total', { code: 'TOO_MANY_ATTEMPTS' })).toBe(0);
    expect(await gw.metric('tickgate_connections_opened_total')).toBe(40);
  }, 30_000);
});

describe('the SDK with a short-lived token', () => {
  it('holds one connection for a 3 s token over 10 s instead of a connect/bye cycle per few hundred ms', async () => {
    const gw = await jwtGateway();
    const client = new TickgateClient({ url: gw.url, token: await token(nowSec() + 3), WebSocket: WebSocket as unknown as WebSocketConstructor });
    cleanup.push(() => client.close());
    await client.connect();
    await client.subscribe(['AAPL']);
    await sleep(10_000);
    const attempts = await attemptsSeen(gw);
    console.log(`SDK with a 3 s token, 10 s: ${attempts} connection attempts, ${await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })} bye AUTH_EXPIRED`);
    expect(attempts).toBe(1);
    expect(await gw.metric('tickgate_connections_opened_total')).toBe(1);
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })).toBe(0);
  }, 20_000);

  it('past exp + skew, the SDK reconnecting with its dead token reaches authentication a bounded number of times', async () => {
    const gw = await jwtGateway({}, { jwt: { secret: SECRET, clockSkewSec: 1 }, failedAttempts: { max: 5, windowMs: 10_000 } });
    const client = new TickgateClient({
      url: gw.url,
      token: await token(nowSec() + 2),
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      reconnect: { initialMs: 20, maxMs: 100 },
    });
    cleanup.push(() => client.close());
    await client.connect();
    await client.subscribe(['AAPL']);
    await sleep(10_000);
    await client.close();
    const attempts = await attemptsSeen(gw);
    const checked = (await gw.metric('tickgate_upgrades_rejected_total', { code: 'AUTH_EXPIRED' })) + (await gw.metric('tickgate_connections_opened_total'));
    console.log(
      `SDK past exp + skew, 10 s: ${attempts} attempts, ${checked} authenticated (opened or 401), ${await gw.metric('tickgate_upgrades_rejected_total', { code: 'TOO_MANY_ATTEMPTS' })} answered 429`,
    );
    expect(await gw.metric('tickgate_connections_opened_total')).toBe(1);
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })).toBe(1);
    // One admission, then at most max - 1 more failures in the window (the bye counts as one) before 429.
    expect(checked).toBeLessThanOrEqual(6);
  }, 20_000);
});
