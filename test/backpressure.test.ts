/**
 * Backpressure, conflation, throttling and the slow-consumer policy against
 * real parts: nats-server, the gateway, and WebSocket clients whose TCP
 * socket is paused so that they really stop reading.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { StateView, TestClient, type Msg } from './helpers/ws-client.js';

const packr = new Packr({ useRecords: false });
const HIGH = 64 * 1024;
const FRAME = 16 * 1024;

let nats: NatsServer;
let pub: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  pub = await connect({ servers: nats.url });
});

afterAll(async () => {
  await pub?.close();
  await nats?.stop();
});

/** Every field changes on every tick, so each upd is as large as it gets. */
function fatTick(s: string, i: number) {
  return { s, bid: i + 0.25, ask: i + 0.5, bidSize: i, askSize: i + 1, last: i + 0.375, lastSize: i + 2, volume: i * 10, high: i + 1.5, low: 0.5, ts: 1764100000000 + i + 0.5, seq: i };
}

type FatTick = ReturnType<typeof fatTick>;

/** Publishes `count` ticks round-robin over `symbols`, flushing every 2000; returns the final state per symbol. */
async function burst(symbols: string[], from: number, count: number) {
  const last = new Map<string, FatTick>();
  for (let i = from; i < from + count; i++) {
    const s = symbols[i % symbols.length]!;
    const t = fatTick(s, i);
    pub.publish(`md.sim.${s}`, packr.pack(t));
    last.set(s, t);
    if (i % 2000 === 0) await pub.flush();
  }
  await pub.flush();
  return last;
}

function pause(c: TestClient) {
  (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
}
function resume(c: TestClient) {
  (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
}

function expectState(view: StateView, symbol: string, want: FatTick) {
  const { s: _s, ...fields } = want;
  expect(view.state.get(symbol)?.d).toEqual(fields);
}

describe('a paused client next to a fast one', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      nats: { servers: [nats.url] },
      backpressure: { highWaterBytes: HIGH, lowWaterBytes: 16 * 1024, maxBufferedBytes: 256 * 1024 * 1024, slowConsumerMs: 0 },
      ws: { maxFrameBytes: FRAME },
    });
  });
  afterAll(() => gw?.stop());

  it('conflates for the paused client only, bounds its memory, and converges when it reads again', async () => {
    const symbols = Array.from({ length: 200 }, (_, i) => `P${i}`);
    const fast = await TestClient.connect(gw.url);
    const slow = await TestClient.connect(gw.url);
    for (const c of [fast, slow]) {
      c.send({ op: 'sub', symbols });
      await c.next((m) => m.t === 'ack', 'ack');
    }
    const slowSid = slow.messages[0]!['sid'];
    const session = [...gw.gateway.hub.sessions].find((s) => s.sid === slowSid)!;
    pause(slow);

    // Publish until the paused client is conflating (bounded: at most 400k ticks).
    let published = 0;
    let final = new Map<string, FatTick>();
    while (!session.conflating && published < 400_000) {
      final = new Map([...final, ...(await burst(symbols, published, 20_000))]);
      published += 20_000;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(session.conflating).toBe(true);
    const bufferedAtStart = (session as unknown as { socket: { bufferedAmount(): number } }).socket.bufferedAmount();
    // Keep the ticks coming while it stays paused: its buffer must not grow with them.
    final = new Map([...final, ...(await burst(symbols, published, 60_000))]);
    published += 60_000;
    await new Promise((r) => setTimeout(r, 200));
    const buffered = (session as unknown as { socket: { bufferedAmount(): number } }).socket.bufferedAmount();
    expect(buffered).toBeLessThanOrEqual(Math.max(bufferedAtStart, HIGH) + 4 * FRAME);
    for (const sub of session.subscriptions()) expect(sub.pendingN).toBeGreaterThan(0);
    expect(await gw.metric('tickgate_clients_conflating')).toBe(1);

    // The fast client got every tick, one by one, without n.
    await fast.until((c) => new StateView().apply(c.messages).state.get(symbols[(published - 1) % 200]!)?.d['seq'] === published - 1, 'fast caught up', 20_000);
    // (Each symbol's first tick arrives as its snap.)
    const fastData = fast.messages.filter((m) => m.t === 'upd' || m.t === 'snap');
    expect(fastData.length).toBe(published);
    expect(fastData.every((m) => m['n'] === undefined)).toBe(true);
    const fastView = new StateView().apply(fast.messages);
    expect(fastView.violations).toEqual([]);

    // The paused client reads again: merged upds with n > 1, ending on the published state.
    resume(slow);
    const slowView = await slow.until((c) => {
      const v = new StateView().apply(c.messages);
      return symbols.every((s) => v.state.get(s)?.d['seq'] === final.get(s)!['seq']) ? v : undefined;
    }, 'paused client converged', 30_000);
    expect(slowView.violations).toEqual([]);
    for (const s of symbols) expectState(slowView, s, final.get(s)!);
    const merged = slow.messages.filter((m) => m.t === 'upd' && typeof m['n'] === 'number');
    expect(merged.length).toBeGreaterThan(0);
    expect(merged.every((m) => (m['n'] as number) > 1)).toBe(true);
    // Nothing silently dropped: what the slow client did not get one by one is counted.
    const slowData = slow.messages.filter((m) => m.t === 'upd' || m.t === 'snap');
    const counted = await gw.metric('tickgate_conflated_updates_total', { reason: 'backpressure' });
    const reported = slowData.reduce((k, m) => k + ((m['n'] as number | undefined) ?? 1) - 1, 0);
    expect(counted).toBeGreaterThanOrEqual(reported);
    expect(slowData.length + counted).toBe(published);
    await Promise.all([fast.close(), slow.close()]);
  });
});

describe('throttled subscriptions', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ nats: { servers: [nats.url] } });
  });
  afterAll(() => gw?.stop());

  it('get at most about one update per interval per symbol and end on the final state', async () => {
    const c = await TestClient.connect(gw.url);
    const symbols = ['T1', 'T2'];
    c.send({ op: 'sub', id: 't', symbols, throttleMs: 200 });
    const ack = await c.next((m) => m.t === 'ack', 'ack');
    expect(ack['throttleMs']).toBe(200);
    // ~1.2 s of ticks at ~1000/s per symbol.
    const started = Date.now();
    let final = new Map<string, FatTick>();
    let i = 0;
    while (Date.now() - started < 1200) {
      final = new Map([...final, ...(await burst(symbols, i, 40))]);
      i += 40;
      await new Promise((r) => setTimeout(r, 20));
    }
    const elapsed = Date.now() - started;
    const view = await c.until((x) => {
      const v = new StateView().apply(x.messages);
      return symbols.every((s) => v.state.get(s)?.d['seq'] === final.get(s)!['seq']) ? v : undefined;
    }, 'throttled client converged', 5000);
    expect(view.violations).toEqual([]);
    for (const s of symbols) {
      expectState(view, s, final.get(s)!);
      const data = c.messages.filter((m: Msg) => (m.t === 'upd' || m.t === 'snap') && m['s'] === s);
      // One per 200 ms slot while ticking, plus the first and the last.
      expect(data.length).toBeLessThanOrEqual(Math.ceil(elapsed / 200) + 2);
      expect(data.length).toBeGreaterThanOrEqual(3);
    }
    expect(await gw.metric('tickgate_conflated_updates_total', { reason: 'throttle' })).toBeGreaterThan(i / 2);
    await c.close();
  });
});

describe('slow-consumer policy', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      nats: { servers: [nats.url] },
      backpressure: { highWaterBytes: HIGH, lowWaterBytes: 16 * 1024, maxBufferedBytes: 256 * 1024 * 1024, slowConsumerMs: 500, retryMs: 3000 },
      ws: { heartbeatMs: 200 },
    });
  });
  afterAll(() => gw?.stop());

  it('closes a client that never reads with bye SLOW_CONSUMER after the configured time, and counts it', async () => {
    const symbols = Array.from({ length: 200 }, (_, i) => `S${i}`);
    const bystander = await TestClient.connect(gw.url);
    const c = await TestClient.connect(gw.url);
    for (const x of [bystander, c]) {
      x.send({ op: 'sub', symbols });
      await x.next((m) => m.t === 'ack', 'ack');
    }
    pause(c);
    const before = await gw.metric('tickgate_connections_closed_total', { reason: 'SLOW_CONSUMER' });
    let published = 0;
    const deadline = Date.now() + 20_000;
    while ((await gw.metric('tickgate_connections_closed_total', { reason: 'SLOW_CONSUMER' })) === before && Date.now() < deadline) {
      await burst(symbols, published, 20_000);
      published += 20_000;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'SLOW_CONSUMER' })).toBe(before + 1);
    // When it finally reads, the last thing it finds is the bye, then the close.
    resume(c);
    const bye = await c.next((m) => m.t === 'bye', 'bye', 20_000);
    expect(bye).toMatchObject({ code: 'SLOW_CONSUMER', retryMs: 3000 });
    await c.until((x) => x.closed, 'close', 20_000);
    expect(c.closed!.code).toBe(1013);
    // The bystander kept its stream and its hb reports no lag of its own.
    expect(bystander.closed).toBeNull();
    const hb = await bystander.next((m) => m.t === 'hb', 'hb', 5000, bystander.messages.length);
    expect(hb).toMatchObject({ cf: 0 });
    expect(typeof hb['buf']).toBe('number');
    await bystander.close();
  });
});
