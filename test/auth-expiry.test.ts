/**
 * Token expiry without reconnect storms, with real gateways and real
 * WebSocket clients: a token is accepted until exp + auth.jwt.clockSkewSec
 * at the upgrade and by the session alike; bye AUTH_EXPIRED carries no
 * retryMs; failed attempts from one address are cut to 429
 * TOO_MANY_ATTEMPTS with Retry-After; a normal client never is; and the SDK
 * holding a short-lived token keeps one connection for its lifetime.
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
/** The first whole second (epoch s) at least `ms` from now: an exp that far away, give or take a second. */
const secAfter = (ms: number) => Math.ceil((Date.now() + ms) / 1000);

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
/** Sleeps until epoch ms `t` (not at all if it has passed). */
const sleepUntil = (t: number) => sleep(Math.max(0, t - Date.now()));

// The cases run side by side, each against its own gateway (its own limits,
// counters and metrics), except the tight loops, which keep the event loop
// busy and so run on their own at the end.

const SKEW_SEC = 3;

describe.concurrent(`expiry: one rule at the upgrade and in the session (clockSkewSec ${SKEW_SEC})`, () => {
  it(`admits a token that expired a second ago, keeps it connected until exp + ${SKEW_SEC} s, then sends bye AUTH_EXPIRED without retryMs`, async ({ expect }) => {
    const gw = await jwtGateway({}, { jwt: { secret: SECRET, clockSkewSec: SKEW_SEC } });
    // Just after a whole second, so that exp is 1 s behind and exp + skew 2 s ahead.
    await sleepUntil(secAfter(0) * 1000 + 50);
    const exp = nowSec() - 1;
    const until = (exp + SKEW_SEC) * 1000;
    const a = await attempt(gw.url, await token(exp));
    if (!a.ok) throw new Error(`expected admission, got ${a.status} ${a.code}`);
    const c = a.client;
    await c.next((m) => m.t === 'hello', 'hello');
    c.send({ op: 'sub', symbols: ['AAPL'] });
    // Two seconds past exp and several sweeps after admission, a second before exp + skew: still streaming.
    await sleepUntil(until - 1000);
    expect(c.messages.find((m) => m.t === 'bye')).toBeUndefined();
    const n = c.messages.length;
    await c.next((m) => m.t === 'upd', 'still streaming', 900, n);
    const bye = await c.next((m) => m.t === 'bye', 'bye AUTH_EXPIRED', until - Date.now() + 5000);
    const at = Date.now();
    expect(bye).toMatchObject({ code: 'AUTH_EXPIRED' });
    expect(bye).not.toHaveProperty('retryMs');
    // Not before exp + skew, and within a sweep period or so after it.
    expect(at).toBeGreaterThanOrEqual(until);
    expect(at).toBeLessThan(until + 2000);
    await c.until((x) => x.closed, 'close');
    expect(c.closed!.code).toBe(1008);
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })).toBe(1);
  });

  it('refuses a token past exp + skew with 401 AUTH_EXPIRED, no Retry-After, and says retrying it will keep failing', async ({ expect }) => {
    const gw = await jwtGateway({}, { jwt: { secret: SECRET, clockSkewSec: SKEW_SEC } });
    // exp + skew passed a second ago or more.
    const r = await attempt(gw.url, await token(nowSec() - SKEW_SEC - 1));
    expect(r).toMatchObject({ ok: false, status: 401, code: 'AUTH_EXPIRED', retryAfter: undefined });
    if (!r.ok) expect(r.msg).toMatch(/keep failing.*fresh token/);
  });
});

describe.concurrent('failed-attempt limit with a naive client', () => {
  it('counts connections ended by bye AUTH_EXPIRED soon after admission: reconnecting each time with a token about to expire ends in 429', async ({ expect }) => {
    const gw = await jwtGateway({}, { jwt: { secret: SECRET, clockSkewSec: 0 }, failedAttempts: { max: 3, windowMs: 30_000 } });
    const byes: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 3; i++) {
      // Valid for another 0.5 to 1.5 s.
      const a = await attempt(gw.url, await token(secAfter(500), 'dora'));
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
  });

  it('does not count a connection the client closed with reason AUTH_EXPIRED: only the server\'s own bye counts', async ({ expect }) => {
    const gw = await jwtGateway({}, { jwt: { secret: SECRET, clockSkewSec: 0 }, failedAttempts: { max: 3, windowMs: 30_000 } });
    for (let i = 0; i < 5; i++) {
      const ws = new WebSocket(gw.url, [], { headers: { Authorization: `Bearer ${await token(nowSec() + 3600, 'mallory')}` } });
      await new Promise<void>((resolve, reject) => {
        ws.once('unexpected-response', (_req, res) => reject(new Error(`cycle ${i} refused: ${res.statusCode}`)));
        ws.once('error', reject);
        ws.once('open', () => {
          ws.once('close', () => resolve());
          ws.close(1000, 'AUTH_EXPIRED');
        });
      });
    }
    const a = await attempt(gw.url, await token(nowSec() + 3600, 'mallory'));
    if (!a.ok) throw new Error(`refused after client closes: ${a.status} ${a.code}`);
    await a.client.next((m) => m.t === 'hello', 'hello');
    expect(await gw.metric('tickgate_upgrades_rejected_total', { code: 'TOO_MANY_ATTEMPTS' })).toBe(0);
    expect(await gw.metric('tickgate_connections_opened_total')).toBe(6);
  });

  it('never limits a normal client reconnecting with valid tokens at a modest rate (defaults), even with an expired token now and then', async ({ expect }) => {
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
  });
});

describe.concurrent('the SDK with a short-lived token', () => {
  it(`holds one connection for a token with about a second left, past its exp until exp + ${SKEW_SEC} s, instead of a connect/bye cycle per few hundred ms`, async ({ expect }) => {
    const gw = await jwtGateway({}, { jwt: { secret: SECRET, clockSkewSec: SKEW_SEC } });
    const exp = secAfter(500);
    const client = new TickgateClient({ url: gw.url, token: await token(exp), WebSocket: WebSocket as unknown as WebSocketConstructor });
    cleanup.push(() => client.close());
    await client.connect();
    await client.subscribe(['AAPL']);
    // Over two seconds past exp (many sweeps), half a second before exp + skew.
    await sleepUntil((exp + SKEW_SEC) * 1000 - 500);
    const attempts = await attemptsSeen(gw);
    console.log(`SDK with a token expiring in ~1 s, ${SKEW_SEC - 0.5} s past its exp: ${attempts} connection attempts, ${await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })} bye AUTH_EXPIRED`);
    expect(attempts).toBe(1);
    expect(await gw.metric('tickgate_connections_opened_total')).toBe(1);
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })).toBe(0);
  });

  it('past exp + skew, the SDK reconnecting with its dead token reaches authentication a bounded number of times', async ({ expect }) => {
    const gw = await jwtGateway({}, { jwt: { secret: SECRET, clockSkewSec: 1 }, failedAttempts: { max: 5, windowMs: 10_000 } });
    const exp = secAfter(500);
    const client = new TickgateClient({
      url: gw.url,
      token: await token(exp),
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      reconnect: { initialMs: 20, maxMs: 100 },
    });
    cleanup.push(() => client.close());
    await client.connect();
    await client.subscribe(['AAPL']);
    // exp + skew, then 2 s in which a client retrying every 20 to 100 ms would try 20 times or more.
    await sleepUntil((exp + 1) * 1000 + 2000);
    await client.close();
    const attempts = await attemptsSeen(gw);
    const checked = (await gw.metric('tickgate_upgrades_rejected_total', { code: 'AUTH_EXPIRED' })) + (await gw.metric('tickgate_connections_opened_total'));
    console.log(
      `SDK past exp + skew, 2 s: ${attempts} attempts, ${checked} authenticated (opened or 401), ${await gw.metric('tickgate_upgrades_rejected_total', { code: 'TOO_MANY_ATTEMPTS' })} answered 429`,
    );
    expect(await gw.metric('tickgate_connections_opened_total')).toBe(1);
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })).toBe(1);
    // One admission, then at most max - 1 more failures in the window (the bye counts as one) before 429.
    expect(checked).toBeLessThanOrEqual(6);
  });
});

describe('failed-attempt limit with a naive client in a tight loop', () => {
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

  const WINDOW_MS = 2000;

  it('cuts a tight reconnect loop with an expired token to 429 after max failures per window; without the limit every attempt is checked', async () => {
    const expired = await token(nowSec() - 3600);
    // Each loop for one window; one after the other, so that the one without the limit has the CPU to itself.
    const off = await jwtGateway({}, { failedAttempts: { max: 0 } });
    const before = await tightLoop(off.url, expired, WINDOW_MS, 20_000);
    const on = await jwtGateway({}, { failedAttempts: { max: 10, windowMs: WINDOW_MS } });
    const after = await tightLoop(on.url, expired, WINDOW_MS, 20_000);
    console.log(`tight loop, ${WINDOW_MS / 1000} s: limit off ${JSON.stringify(before.counts)}; limit 10 per ${WINDOW_MS / 1000} s ${JSON.stringify(after.counts)}`);
    // Without the limit every attempt reaches authentication.
    expect(Object.keys(before.counts)).toEqual(['401 AUTH_EXPIRED']);
    expect(before.counts['401 AUTH_EXPIRED']).toBeGreaterThan(100);
    // With it, 10 per window (one window, and possibly the start of the next, within the loop) and 429 after.
    const checked = after.counts['401 AUTH_EXPIRED'] ?? 0;
    expect(checked).toBeGreaterThanOrEqual(10);
    expect(checked).toBeLessThanOrEqual(20);
    expect(after.counts['429 TOO_MANY_ATTEMPTS']).toBeGreaterThan(0);
    expect(after.retryAfter.size).toBeGreaterThan(0);
    for (const v of after.retryAfter) expect(Number(v)).toSatisfy((s: number) => Number.isInteger(s) && s >= 1 && s <= WINDOW_MS / 1000);
    expect(await on.metric('tickgate_upgrades_rejected_total', { code: 'TOO_MANY_ATTEMPTS' })).toBe(after.counts['429 TOO_MANY_ATTEMPTS']);
    expect(await on.metric('tickgate_upgrades_rejected_total', { code: 'AUTH_EXPIRED' })).toBe(checked);
  });
});
