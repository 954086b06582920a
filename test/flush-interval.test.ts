/**
 * Integration: the flush schedules against a real nats-server and real
 * WebSocket clients. Three gateways read the same feed: one sending a frame
 * per event-loop turn (`ws.flushIntervalMs: 0`), one with a fixed interval
 * (`ws.flushAdaptive: false`) and one with the adaptive default. All must
 * deliver every tick as its own update, in order; the fixed interval in far
 * fewer frames. (How long the adaptive one holds depends on load, which a
 * test process cannot pin down: its rule is unit-tested on a manual clock in
 * src/fanout/outbox.test.ts.)
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { encode as mpEncode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { StateView, TestClient, type Msg } from './helpers/ws-client.js';

const INTERVAL_MS = 500;

let nats: NatsServer;
let perTurn: TestGateway;
let batched: TestGateway;
let adaptive: TestGateway;
let pub: NatsConnection;
const clients: TestClient[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function subscribed(gw: TestGateway, symbols: string[]): Promise<TestClient> {
  const c = await TestClient.connect(gw.url);
  clients.push(c);
  c.send({ op: 'sub', symbols });
  await c.until((x) => x.messages.filter((m) => m.t === 'snap').length === symbols.length, 'snaps');
  return c;
}

/** Publishes one tick and waits until nats-server has it. */
async function tick(s: string, i: number): Promise<void> {
  pub.publish(`md.sim.${s}`, mpEncode({ s, bid: 100 + i, ask: 101 + i, ts: Date.now() }));
  await pub.flush();
}

const updFrames = (c: TestClient) => c.frames.filter((f) => f.some((m) => m.t === 'upd'));
const bids = (frame: Msg[]) => frame.filter((m) => m.t === 'upd').map((m) => (m['d'] as Record<string, number>)['bid']);

beforeAll(async () => {
  nats = await startNatsServer();
  const common = { nats: { servers: [nats.url] }, feeds: [{ name: 'sim', subject: 'md.sim.>', codec: 'msgpack', symbolField: 's' }] };
  perTurn = await startGateway({ ...common, ws: { flushIntervalMs: 0 } });
  batched = await startGateway({ ...common, ws: { flushIntervalMs: INTERVAL_MS, flushAdaptive: false } });
  adaptive = await startGateway(common);
  pub = await connect({ servers: nats.url });
  // Every symbol known to both gateways before anyone subscribes.
  for (const s of ['F1', 'F2', 'F3', 'L1']) await tick(s, 0);
  await sleep(100);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await pub?.close();
  await perTurn?.stop();
  await batched?.stop();
  await adaptive?.stop();
  await nats?.stop();
});

describe('flush schedules', () => {
  it('delivers every tick in order, in about one frame per interval instead of one per tick', async () => {
    const symbols = ['F1', 'F2', 'F3'];
    const a = await subscribed(perTurn, symbols);
    const b = await subscribed(batched, symbols);
    const d = await subscribed(adaptive, symbols);
    await sleep(INTERVAL_MS);
    const started = performance.now();
    // 60 ticks 20 ms apart, each published on its own: about 1.2 s.
    for (let i = 1; i <= 60; i++) {
      await tick(symbols[i % 3]!, i);
      await sleep(20);
    }
    const publishedMs = performance.now() - started;
    for (const c of [a, b, d]) {
      await c.until((x) => x.messages.filter((m) => m.t === 'upd').length === 60, 'all 60 updates', 10_000);
      const view = new StateView().apply(c.messages);
      expect(view.violations).toEqual([]);
      // Every tick as its own update (no merging), in publication order.
      expect(c.messages.filter((m) => m.t === 'upd').map((m) => (m['d'] as Record<string, number>)['bid'])).toEqual(Array.from({ length: 60 }, (_, k) => 101 + k));
      expect(c.messages.filter((m) => m.t === 'upd').every((m) => m['n'] === undefined)).toBe(true);
    }
    const perTurnFrames = updFrames(a).length;
    const batchedFrames = updFrames(b).length;
    // One frame per interval that saw ticks, plus the leading one; however slow the machine, never more.
    expect(batchedFrames).toBeLessThanOrEqual(Math.ceil(publishedMs / INTERVAL_MS) + 2);
    expect(Math.max(...updFrames(b).map((f) => f.length))).toBeGreaterThan(5);
    // The default sends each tick as it comes: ticks 20 ms apart arrive in separate turns.
    expect(perTurnFrames).toBeGreaterThan(3 * batchedFrames);
  });

  it('sends the first tick after a quiet spell at once and holds the ones that follow it for the interval', async () => {
    const c = await subscribed(batched, ['L1']);
    await sleep(INTERVAL_MS * 2);
    const before = updFrames(c).length;
    await tick('L1', 1000);
    // The leading tick arrives on its own, long before the interval is over.
    await c.until((x) => updFrames(x).length === before + 1, 'leading tick', INTERVAL_MS - 100);
    for (let i = 1001; i <= 1003; i++) await tick('L1', i);
    await c.until((x) => x.messages.filter((m) => m.t === 'upd' && (m['d'] as Record<string, number>)['bid'] === 1103).length === 1, 'held ticks', 10_000);
    const frames = updFrames(c).slice(before);
    expect(frames.map(bids)).toEqual([[1100], [1101, 1102, 1103]]);
  });
});
