/**
 * Integration: the SDK's credentials against a real gateway process with
 * JWT authentication (no clock skew allowed, so a token is dead at its
 * `exp`) and 3 s tokens, over real WebSockets. Connections are counted by
 * the gateway's own metric (tickgate_connections_opened_total).
 *
 * - With getToken returning fresh tokens, the client refreshes in place and
 *   keeps streaming across several expiries on one connection.
 * - With getToken returning tokens the gateway refuses as a refresh (another
 *   user), every expiry ends the session with bye AUTH_EXPIRED and the client
 *   reconnects with a fresh token: one connection per expiry, no more.
 * - Without getToken, the session ends at expiry and the client stops,
 *   closed with an AuthError, instead of retrying.
 * - `updates()` after an awaited `subscribe` yields each symbol's snapshot first.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { AuthError, TickgateClient, type ConnectionStatus, type TickgateError, type WebSocketConstructor } from '../src/client/index.js';
import { sampleValue } from './helpers/gateway.js';
import { freePort } from './helpers/nats-server.js';
import { ensureBuilt, spawnGateway, waitReady, type RunningGateway } from './helpers/process.js';
import { until } from './helpers/until.js';

const SECRET = 'client-auth-test-secret-long-enough-for-hs256';
const WS = WebSocket as unknown as WebSocketConstructor;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let gw: RunningGateway;
let url: string;
let http: string;

beforeAll(async () => {
  ensureBuilt();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-client-auth-'));
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify({ auth: { mode: 'jwt', jwt: { secret: SECRET, clockSkewSec: 0 } }, embedded: { symbols: 50, ticksPerSec: 1000, books: 0, tradesPerSec: 0 } }));
  gw = spawnGateway({ TICKGATE_PORT: String(port), TICKGATE_LOG_LEVEL: 'warn' }, ['--config', cfg]);
  url = `ws://127.0.0.1:${port}/v1/stream`;
  http = `http://127.0.0.1:${port}`;
  await waitReady(`${http}/readyz`, 20_000, gw);
}, 180_000);

afterAll(async () => {
  gw?.proc.kill('SIGKILL');
  await gw?.exited;
});

/** A token for `user` that expires `sec` seconds from now. */
function token(user: string, sec: number): Promise<string> {
  return new SignJWT({ ent: ['*'] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setExpirationTime(Math.floor(Date.now() / 1000) + sec)
    .sign(new TextEncoder().encode(SECRET));
}

async function connectionsOpened(): Promise<number> {
  return sampleValue(await (await fetch(`${http}/metrics`)).text(), 'tickgate_connections_opened_total', {});
}

/** Records when updates arrive, statuses and errors; the client is closed when the test ends, passed or not. */
function watch(client: TickgateClient) {
  onTestFinished(() => client.close());
  const updateTimes: number[] = [];
  const statuses: ConnectionStatus[] = [];
  const errors: TickgateError[] = [];
  client.on('update', () => updateTimes.push(Date.now()));
  client.on('status', (s) => statuses.push(s));
  client.on('error', (e) => errors.push(e));
  return { updateTimes, statuses, errors };
}

describe('with 3 s tokens', () => {
  it('stays subscribed across expiries on one connection when getToken gives fresh tokens', async () => {
    const before = await connectionsOpened();
    let calls = 0;
    const client = new TickgateClient({ url, WebSocket: WS, getToken: () => (calls++, token('alice', 3)) });
    const seen = watch(client);
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT']);
    const t0 = Date.now();
    // Three lifetimes of the first token.
    await sleep(9000);
    expect(client.status.state).toBe('open');
    expect(seen.statuses.filter((s) => s.state !== 'open' && s.state !== 'connecting')).toEqual([]);
    expect((await connectionsOpened()) - before).toBe(1);
    // A refresh about every 2.25 s: at least three, and far from hammering.
    expect(calls).toBeGreaterThanOrEqual(4);
    expect(calls).toBeLessThanOrEqual(8);
    // Data after the first token's expiry, and after the second's.
    expect(seen.updateTimes.filter((t) => t > t0 + 3500).length).toBeGreaterThan(10);
    expect(seen.updateTimes.filter((t) => t > t0 + 7000).length).toBeGreaterThan(10);
    expect(seen.errors).toEqual([]);
    await client.close();
  }, 30_000);

  it('reconnects with a fresh token after each bye AUTH_EXPIRED: one connection per expiry, data on each', async () => {
    const before = await connectionsOpened();
    let calls = 0;
    // Every token is for another user: the gateway refuses each as a refresh (AUTH_INVALID), so every session ends at its expiry.
    const client = new TickgateClient({ url, WebSocket: WS, getToken: () => token(`user-${++calls}`, 3) });
    const seen = watch(client);
    const byes: string[] = [];
    client.on('bye', (b) => byes.push(b.code));
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT']);
    const t0 = Date.now();
    await sleep(9000);
    await until(() => client.status.state === 'open', 'open again', 5000);
    await client.close();
    const opened = (await connectionsOpened()) - before;
    // 9 s of 2-3 s tokens: at most one connection per token lifetime, plus the first.
    expect(opened).toBeGreaterThanOrEqual(3);
    expect(opened).toBeLessThanOrEqual(6);
    // Every connection the gateway counted is one the client opened, and each but the last ended with bye AUTH_EXPIRED.
    expect(seen.statuses.filter((s) => s.state === 'open').length).toBe(opened);
    expect(byes).toEqual(Array(opened - 1).fill('AUTH_EXPIRED'));
    expect(seen.statuses.filter((s) => s.state === 'reconnecting').length).toBe(opened - 1);
    // Refused refreshes are reported once per session, and getToken is not hammered.
    expect(seen.errors.every((e) => e instanceof AuthError)).toBe(true);
    expect(calls).toBeLessThan(opened * 6);
    expect(seen.updateTimes.filter((t) => t > t0 + 7000).length).toBeGreaterThan(10);
  }, 30_000);

  it('without getToken, stops at expiry: closed with an AuthError, no reconnect', async () => {
    const before = await connectionsOpened();
    const client = new TickgateClient({ url, WebSocket: WS, token: await token('alice', 3) });
    const seen = watch(client);
    await client.connect();
    await client.subscribe(['AAPL']);
    const closed = await until(() => seen.statuses.find((s) => s.state === 'closed'), 'closed', 8000);
    if (closed.state !== 'closed') throw new Error('unreachable');
    expect(closed.reason).toMatch(/^AUTH_EXPIRED: bye AUTH_EXPIRED: .*no getToken to fetch a fresh token$/);
    expect(closed.error).toBeInstanceOf(AuthError);
    expect((closed.error as AuthError).code).toBe('AUTH_EXPIRED');
    expect(seen.statuses.filter((s) => s.state === 'reconnecting')).toEqual([]);
    // Some time later: still the one connection.
    await sleep(2000);
    expect((await connectionsOpened()) - before).toBe(1);
    expect(client.status.state).toBe('closed');
    await client.close();
  }, 20_000);
});

it('yields a snapshot first from updates() after an awaited subscribe, in 10 runs of 10', async () => {
  const firsts: boolean[] = [];
  for (let run = 0; run < 10; run++) {
    const client = new TickgateClient({ url, WebSocket: WS, getToken: () => token('alice', 60) });
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT', 'NVDA']);
    const seen = new Set<string>();
    let ok = true;
    let n = 0;
    for await (const u of client.updates()) {
      if (n++ === 0) firsts.push(u.snapshot);
      // Every symbol's first update is its snapshot.
      if (!seen.has(u.symbol) && !u.snapshot) ok = false;
      seen.add(u.symbol);
      if (seen.size === 3 || n >= 200) break;
    }
    expect(ok).toBe(true);
    await client.close();
  }
  expect(firsts).toEqual(Array(10).fill(true));
}, 30_000);
