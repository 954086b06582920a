/**
 * Integration tests of the client SDK against real gateways: in this process
 * (startGateway) where the test needs the gateway's own state, and as a
 * separate process (spawnGateway) where it needs to kill, pause or restart
 * the server under the client.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import WebSocket from 'ws';
import { startGateway, type TestGateway } from '../../test/helpers/gateway.js';
import { freePort } from '../../test/helpers/nats-server.js';
import { ensureBuilt, spawnGateway, waitReady, type RunningGateway } from '../../test/helpers/process.js';
import { until } from '../../test/helpers/until.js';
import { ConnectError, RequestError, TickgateClient, type ConnectionStatus, type Update, type WebSocketConstructor } from './index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The `ws` WebSocket, recording every request the client sends. */
function recordingWebSocket(log: Array<Record<string, unknown>>): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url);
      const send = this.send.bind(this);
      this.send = ((data: string) => {
        log.push(JSON.parse(data) as Record<string, unknown>);
        send(data);
      }) as typeof this.send;
    }
  };
}

/** Records every connection status, in order. */
function statuses(client: TickgateClient): ConnectionStatus[] {
  const seen: ConnectionStatus[] = [];
  client.onConnection((s) => seen.push(s));
  return seen;
}

const SYMBOLS = ['AAPL', 'MSFT', 'NVDA', 'EUR/USD', 'USD/JPY', 'BTC/USDT', 'ETH/USDT', 'SPY'];

describe('against an in-process gateway', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
  });
  afterAll(() => gw?.stop());

  it('merges snapshots and deltas into exactly the gateway state, in q order', async () => {
    // Its own gateway: the test stops its feed.
    const gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
    onTestFinished(() => gw.stop());
    const client = new TickgateClient({ url: gw.url, WebSocket });
    const seen = new Map<string, number>();
    const violations: string[] = [];
    let snaps = 0;
    let upds = 0;
    client.onUpdate((u) => {
      const prev = seen.get(u.symbol);
      if (!u.snapshot && (prev === undefined || u.q <= prev)) violations.push(`${u.symbol} q ${u.q} after ${prev}`);
      seen.set(u.symbol, u.q);
      if (u.snapshot) snaps++;
      else upds++;
    });
    const hello = await client.connect();
    expect(hello.hbMs).toBeGreaterThan(0);
    expect(client.status.state).toBe('open');
    const ack = await client.subscribe(SYMBOLS);
    expect(ack.ok.sort()).toEqual([...SYMBOLS].sort());
    expect(ack.err).toEqual([]);
    await until(() => upds >= 300, '300 updates');
    expect(snaps).toBe(SYMBOLS.length);

    // Quiesce the feed, then every symbol must converge to the gateway's own state.
    await gw.gateway.source.stop();
    const store = gw.gateway.hub.store;
    await until(() => SYMBOLS.every((s) => seen.get(s) === store.get(s)!.q), 'client q to reach the gateway q');
    for (const s of SYMBOLS) {
      const st = store.get(s)!;
      expect({ s, state: client.state(s) }).toEqual({ s, state: st.fields() });
    }
    expect(violations).toEqual([]);
    await client.close();
    expect(client.status).toEqual({ state: 'closed', reason: 'closed by client' });
  });

  it('yields updates from updates(), reports unknown symbols, unsubscribes, and answers ping and symbols', async () => {
    const client = new TickgateClient({ url: gw.url, WebSocket });
    const status: Array<[string, string]> = [];
    client.onStatus((s, st) => status.push([s, st]));
    // Subscribed before connect: sent once connected.
    const subscribed = client.subscribe(['AAPL', 'EUR/USD', 'NOT.TRADED', '']);
    await client.connect();
    const ack = await subscribed;
    expect(ack.ok.sort()).toEqual(['AAPL', 'EUR/USD', 'NOT.TRADED']);
    expect(ack.err.map((e) => [e.symbol, e.code])).toEqual([['', 'BAD_SYMBOL']]);
    await until(() => status.some(([s, st]) => s === 'NOT.TRADED' && st === 'unknown'), 'stat unknown');
    expect(client.symbolStatus('AAPL')).toBe('live');
    expect(client.state('NOT.TRADED')).toBeUndefined();

    const got: Update[] = [];
    for await (const u of client.updates()) {
      got.push(u);
      if (got.length === 50) break;
    }
    expect(got.every((u) => u.symbol === 'AAPL' || u.symbol === 'EUR/USD')).toBe(true);

    const unsub = await client.unsubscribe(['EUR/USD']);
    expect(unsub.ok).toEqual(['EUR/USD']);
    expect(client.state('EUR/USD')).toBeUndefined();
    let eur = 0;
    client.onUpdate((u) => {
      if (u.symbol === 'EUR/USD') eur++;
    });
    await sleep(300);
    expect(eur).toBe(0);
    expect(client.subscriptions().sort()).toEqual(['AAPL', 'NOT.TRADED']);

    const rtt = await client.ping();
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(rtt).toBeLessThan(1000);
    const list = await client.symbols('EUR', 3);
    expect(list.symbols).toHaveLength(3);
    expect(list.symbols.every((s) => s.startsWith('EUR'))).toBe(true);
    expect(list.more).toBe(true);

    const err = await client.symbols('x'.repeat(65)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RequestError);
    expect((err as RequestError).code).toBe('BAD_REQUEST');
    expect(client.status.state).toBe('open');
    await client.close();
  });

  it('passes throttleMs through: the ack carries it and updates per symbol are spaced by it', async () => {
    const sent: Array<Record<string, unknown>> = [];
    const client = new TickgateClient({ url: gw.url, WebSocket: recordingWebSocket(sent) });
    const times = new Map<string, number[]>();
    client.onUpdate((u) => {
      if (u.snapshot) return;
      let t = times.get(u.symbol);
      if (t === undefined) times.set(u.symbol, (t = []));
      t.push(Date.now());
    });
    await client.connect();
    const ack = await client.subscribe(['AAPL', 'BTC/USDT'], { throttleMs: 250 });
    expect(ack.throttleMs).toBe(250);
    expect(sent.find((m) => m['op'] === 'sub')).toMatchObject({ symbols: ['AAPL', 'BTC/USDT'], throttleMs: 250 });
    await sleep(1600);
    for (const [s, t] of times) {
      // At most one delivery per 250 ms slot: 1.6 s holds at most 7 slots.
      expect(t.length, s).toBeLessThanOrEqual(8);
      expect(t.length, s).toBeGreaterThanOrEqual(2);
    }
    await client.close();
  });

  it('waits at least bye.retryMs, with jitter, before reconnecting to a gateway that said goodbye', async () => {
    const port = await freePort();
    let a: TestGateway | null = await startGateway({ port, embedded: { symbols: 50, ticksPerSec: 500 } });
    let b: TestGateway | null = null;
    try {
      const client = new TickgateClient({ url: a.url, WebSocket, reconnect: { initialMs: 20, maxMs: 50 } });
      const seen = statuses(client);
      await client.connect();
      await client.subscribe(['AAPL']);
      const before = await until(() => client.state('AAPL'), 'AAPL snapshot');

      // The gateway draws each client's retryMs from [0, windowMs]; pin the draw to the middle
      // (its bye is queued synchronously) so the wait is long enough to measure.
      const random = vi.spyOn(Math, 'random').mockReturnValue(0.5);
      const stopped = a.gateway.stop({ delayMs: 0, windowMs: 3000, timeoutMs: 1000 });
      random.mockRestore();
      const rec = await until(() => seen.find((s) => s.state === 'reconnecting'), 'reconnecting');
      const droppedAt = Date.now();
      await stopped;
      a = null;
      if (rec.state !== 'reconnecting') throw new Error('unreachable');
      expect(rec.last.bye).toEqual({ code: 'DRAINING', reason: expect.any(String), retryMs: expect.any(Number) });
      const retryMs = rec.last.bye!.retryMs!;
      expect(retryMs).toBeGreaterThanOrEqual(1000);
      expect(rec.last.code).toBe(1001);
      // At least retryMs, at most half of it again as jitter; the client's own backoff (<= 50 ms) does not apply.
      expect(rec.delayMs).toBeGreaterThanOrEqual(retryMs);
      expect(rec.delayMs).toBeLessThanOrEqual(retryMs * 1.5 + 1);

      b = await startGateway({ port, embedded: { symbols: 50, ticksPerSec: 500 } });
      const n = seen.length;
      await until(() => seen.slice(n).find((s) => s.state === 'open'), 'reopen', 5000);
      // No attempt before retryMs: the first status after reconnecting is the delayed attempt.
      const firstAttempt = seen.indexOf(rec) + 1;
      // The first connection lasted under reconnect.stableMs: the count goes on from it.
      expect(seen[firstAttempt]).toMatchObject({ state: 'connecting', attempt: 2 });
      expect(Date.now() - droppedAt).toBeGreaterThanOrEqual(retryMs - 50);
      // Resubscribed, and the old state replaced by the new gateway's snapshot.
      await until(() => client.state('AAPL') !== before && client.symbolStatus('AAPL') === 'live', 'AAPL snapshot from the new gateway');
      await client.close();
    } finally {
      await a?.stop();
      await b?.stop();
    }
  });

  it('fails connect() with a ConnectError naming the cause when nothing listens', async () => {
    const port = await freePort();
    const client = new TickgateClient({ url: `ws://127.0.0.1:${port}/v1/stream`, token: 's3cret', WebSocket });
    const err = await client.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).message).toBe(`cannot connect to ws://127.0.0.1:${port}/v1/stream: ECONNREFUSED`);
    expect((err as ConnectError).cause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(client.status).toMatchObject({ state: 'closed' });
  });
});

describe('against a gateway process that is killed, restarted and paused', () => {
  beforeAll(() => ensureBuilt(), 120_000);
  const procs: RunningGateway[] = [];
  afterAll(() => {
    for (const p of procs) {
      p.proc.kill('SIGCONT');
      p.proc.kill('SIGKILL');
    }
  });
  const spawn = async (port: number, args: string[] = []): Promise<RunningGateway> => {
    const p = spawnGateway({ TICKGATE_PORT: String(port), TICKGATE_LOG_LEVEL: 'warn' }, args);
    procs.push(p);
    await waitReady(`http://127.0.0.1:${port}/readyz`, 20_000, p);
    return p;
  };

  it('reconnects after the server drops, resubscribes with the same throttle, and replaces state with fresh snaps', async () => {
    const port = await freePort();
    const first = await spawn(port);
    const sent: Array<Record<string, unknown>> = [];
    const client = new TickgateClient({
      url: `ws://127.0.0.1:${port}/v1/stream`,
      WebSocket: recordingWebSocket(sent),
      reconnect: { initialMs: 100, maxMs: 400 },
    });
    const seen = statuses(client);
    const snaps: Update[] = [];
    client.onUpdate((u) => {
      if (u.snapshot) snaps.push(u);
    });
    await client.connect();
    await client.subscribe(['AAPL', 'EUR/USD'], { throttleMs: 100 });
    await client.subscribe(['BTC/USDT']);
    await sleep(1500);
    const nBefore = snaps.length;
    const sidBefore = client.serverHello!.sid;
    expect(nBefore).toBe(3);
    const lastQ = new Map<string, number>();
    client.onUpdate((u) => lastQ.set(u.symbol, u.q));
    await until(() => lastQ.size === 3, 'updates on every symbol');

    first.proc.kill('SIGKILL');
    await first.exited;
    const rec = await until(() => seen.find((s) => s.state === 'reconnecting'), 'reconnecting');
    // The connection lasted under reconnect.stableMs (10 s): the first connect was attempt 1, this is 2.
    expect(rec).toMatchObject({ state: 'reconnecting', attempt: 2, last: { code: 1006 } });
    const subsBefore = sent.filter((m) => m['op'] === 'sub').length;
    // Nothing listens for a while: attempts fail and back off.
    await sleep(600);
    expect(client.status.state === 'reconnecting' || client.status.state === 'connecting').toBe(true);

    await spawn(port);
    await until(() => client.status.state === 'open', 'reopen', 10_000);
    expect(client.serverHello!.sid).not.toBe(sidBefore);
    await until(() => snaps.length >= nBefore + 3, 'fresh snapshots');

    const resubs = sent.filter((m) => m['op'] === 'sub').slice(subsBefore);
    expect(resubs.map((m) => ({ symbols: (m['symbols'] as string[]).sort(), throttleMs: m['throttleMs'] }))).toEqual(
      expect.arrayContaining([
        { symbols: ['AAPL', 'EUR/USD'], throttleMs: 100 },
        { symbols: ['BTC/USDT'], throttleMs: undefined },
      ]),
    );
    expect(resubs).toHaveLength(2);
    // The new process numbers q afresh: each fresh snap replaced the old state whatever its q,
    // and later updates merge into it.
    const fresh = snaps.slice(nBefore);
    expect(fresh.map((u) => u.symbol).sort()).toEqual(['AAPL', 'BTC/USDT', 'EUR/USD']);
    for (const u of fresh) {
      expect(client.state(u.symbol)).toBe(u.state);
      expect(snaps.slice(0, nBefore).find((o) => o.symbol === u.symbol)!.state).not.toBe(u.state);
    }
    const afterSnap = new Map<string, number>();
    client.onUpdate((u) => afterSnap.set(u.symbol, u.q));
    await until(() => afterSnap.size === 3, 'updates after the fresh snaps');
    for (const u of fresh) expect(afterSnap.get(u.symbol)!).toBeGreaterThan(u.q);
    await client.close();
  });

  it('detects a dead connection from missing heartbeats (server paused) and reconnects when it resumes', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'tickgate-hb-'));
    const cfg = join(dir, 'hb.json');
    writeFileSync(cfg, JSON.stringify({ ws: { heartbeatMs: 200 } }));
    const gw = await spawn(port, ['--config', cfg]);
    const client = new TickgateClient({
      url: `ws://127.0.0.1:${port}/v1/stream`,
      WebSocket,
      heartbeatMultiplier: 3,
      connectTimeoutMs: 500,
      reconnect: { initialMs: 50, maxMs: 200 },
    });
    const seen = statuses(client);
    const hello = await client.connect();
    expect(hello.hbMs).toBe(200);
    // Idle (no subscriptions): only heartbeats keep the connection alive.
    await sleep(1000);
    expect(client.status.state).toBe('open');

    gw.proc.kill('SIGSTOP');
    const t0 = Date.now();
    const rec = await until(() => seen.find((s) => s.state === 'reconnecting'), 'heartbeat timeout', 5000);
    const detectedMs = Date.now() - t0;
    expect(rec).toMatchObject({ state: 'reconnecting', last: { code: 4000 } });
    if (rec.state === 'reconnecting') expect(rec.last.reason).toMatch(/no frame for \d+ ms/);
    // 3 x hbMs after the last frame, which came up to one heartbeat before the pause.
    expect(detectedMs).toBeLessThan(3000);
    // While paused, attempts time out without a hello.
    await until(() => seen.filter((s) => s.state === 'reconnecting').length >= 2, 'a failed attempt', 5000);

    gw.proc.kill('SIGCONT');
    await until(() => client.status.state === 'open', 'reopen after resume', 10_000);
    await client.close();
  });
});

describe('against a gateway that requires a token', () => {
  const secret = 'client-test-secret-that-is-long-enough-for-hs256';
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ embedded: { symbols: 50, ticksPerSec: 500 }, auth: { mode: 'jwt', jwt: { secret } } });
  });
  afterAll(() => gw?.stop());
  const token = async (expSec: number) => {
    const { SignJWT } = await import('jose');
    return new SignJWT({ ent: ['*'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('sdk-user')
      .setExpirationTime(Math.floor(Date.now() / 1000) + expSec)
      .sign(new TextEncoder().encode(secret));
  };

  it('sends the token as a subprotocol, refreshes it with setToken before expiry, and fails clearly without one', async () => {
    const client = new TickgateClient({ url: gw.url, WebSocket: WebSocket as unknown as WebSocketConstructor, token: await token(2), reconnect: false });
    onTestFinished(() => client.close());
    await client.connect();
    await client.subscribe(['AAPL']);
    await until(() => client.state('AAPL'), 'AAPL state');
    const exp = await client.setToken(await token(3600));
    expect(exp).toBeGreaterThan(Date.now() + 3_000_000);
    await sleep(3000);
    // Past the first token's expiry and still streaming on the same connection.
    const seen: string[] = [];
    client.onConnection((s) => seen.push(s.state));
    const before = client.state('AAPL')!.ts;
    await until(() => client.state('AAPL')!.ts !== before, 'a fresh update');
    expect(seen).toEqual([]);

    const anonymous = new TickgateClient({ url: gw.url, WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: false });
    await expect(anonymous.connect()).rejects.toBeInstanceOf(ConnectError);
    await anonymous.close();
  }, 20_000);
});
