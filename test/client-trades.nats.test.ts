/**
 * Integration: the SDK's trade prints against two real gateways reading one
 * JetStream stream from a real nats-server, over real WebSockets. The
 * client's connection is killed mid-stream (no close handshake) and it
 * reconnects to the other gateway: through a list of URLs, and through one
 * URL whose replica behind it changes (a TCP proxy). Either way the trades
 * the SDK delivered must be exactly the published list: nothing lost,
 * nothing twice, in order, every resume recovered and no gap.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { encode } from '@msgpack/msgpack';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { TickgateClient, type Trade, type TradeGap, type TradeResume, type WebSocketConstructor } from '../src/client/index.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { until } from './helpers/until.js';

let nats: NatsServer;
let pub: NatsConnection;
let a: TestGateway;
let b: TestGateway;

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  pub = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(pub);
  await jsm.streams.add({ name: 'TRADES', subjects: ['trade.>'], storage: StorageType.File });
  const config = { nats: { servers: [nats.url] }, feeds: [{ name: 'tape', kind: 'trade', subject: 'trade.>', jetstream: 'TRADES', staleAfterMs: 0 }] };
  [a, b] = await Promise.all([startGateway(config), startGateway(config)]);
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await pub?.close();
  await nats?.stop();
});

/** Trade i of a test tape: unique ids, so the delivered list compares exactly. */
const trade = (i: number) => ({ px: 100 + (i % 50) / 100, sz: 1 + (i % 7), side: i % 2 ? 'b' : 's', id: `T-${i}`, ts: 1764100000000 + i });

/**
 * Publishes trades [0, n) for `symbol`, some as batches of 3, about `perMs`
 * trades per millisecond, so a killed connection misses some of them.
 */
async function publishTape(symbol: string, n: number, perMs = 2): Promise<void> {
  for (let i = 0; i < n; ) {
    const k = i % 10 === 3 ? Math.min(3, n - i) : 1;
    const batch = Array.from({ length: k }, (_, j) => trade(i + j));
    pub.publish(`trade.${symbol}`, encode(k === 1 ? { s: symbol, ...batch[0] } : { s: symbol, trades: batch }));
    i += k;
    if (i % (perMs * 10) < k) {
      await pub.flush();
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  await pub.flush();
}

/** The `ws` WebSocket, keeping every socket the client opens so the test can kill one. */
function killableWebSocket(sockets: WebSocket[]): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  } as unknown as WebSocketConstructor;
}

/** Records what the SDK delivers. */
function record(client: TickgateClient) {
  const trades: Trade[] = [];
  const gaps: TradeGap[] = [];
  const resumes: TradeResume[] = [];
  client.onTrade((t) => trades.push(t));
  client.onTradeGap((g) => gaps.push(g));
  client.onTradeResume((r) => resumes.push(r));
  return { trades, gaps, resumes };
}

/** What the delivered list must be: the published tape, field for field. */
function expectExactly(trades: Trade[], symbol: string, n: number): void {
  expect(trades.map((t) => t.id)).toEqual(Array.from({ length: n }, (_, i) => `T-${i}`));
  expect(trades.map(({ px, sz, side, ts }) => ({ px, sz, side, ts }))).toEqual(Array.from({ length: n }, (_, i) => {
    const { px, sz, side, ts } = trade(i);
    return { px, sz, side, ts };
  }));
  expect(trades.every((t) => t.symbol === symbol && t.e.startsWith('TRADES.'))).toBe(true);
  const qs = trades.map((t) => t.q);
  expect(qs.every((q, i) => i === 0 || q > qs[i - 1]!)).toBe(true);
}

/**
 * A TCP proxy: one URL in front of a replica that can change. `switchTo`
 * points new connections at another port and cuts every open one.
 */
async function proxy(port: number): Promise<{ url: string; switchTo(port: number): void; close(): Promise<void> }> {
  let target = port;
  const open = new Set<Socket>();
  const srv: Server = createServer((down) => {
    const up = tcpConnect(target, '127.0.0.1');
    open.add(down).add(up);
    const cut = () => {
      down.destroy();
      up.destroy();
      open.delete(down);
      open.delete(up);
    };
    down.on('error', cut).on('close', cut);
    up.on('error', cut).on('close', cut);
    down.pipe(up).pipe(down);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const at = (srv.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${at}/v1/stream`,
    switchTo(p: number) {
      target = p;
      for (const s of open) s.destroy();
      open.clear();
    },
    close: () => new Promise((resolve) => srv.close(() => resolve())),
  };
}

const portOf = (g: TestGateway) => Number(new URL(g.url).port);

describe('subscribeTrades across replicas (JetStream positions)', () => {
  it('a list of URLs: the connection is killed mid-stream twice, the client resumes on the other gateway each time, and delivers exactly the published trades', async () => {
    const S = 'AAPL';
    const N = 3000;
    const sockets: WebSocket[] = [];
    const client = new TickgateClient({ url: [a.url, b.url], WebSocket: killableWebSocket(sockets), reconnect: { initialMs: 50, maxMs: 200 } });
    onTestFinished(() => client.close());
    const ev = record(client);
    await client.connect();
    const ack = await client.subscribeTrades(S);
    expect(ack.ok).toEqual([S]);
    expect(ack.position?.e).toMatch(/^TRADES\./);
    const resumedBefore = (await a.metric('tickgate_trade_resumes_total', { recovered: 'true' })) + (await b.metric('tickgate_trade_resumes_total', { recovered: 'true' }));

    const publishing = publishTape(S, N);
    await until(() => ev.trades.length >= 600, '600 trades', 15_000, 10);
    // Killed: no close handshake; the client moves to the next URL, gateway b.
    sockets.at(-1)!.terminate();
    await until(() => ev.resumes.length === 1 && ev.trades.length >= 1800, 'a resume on b, then 1800 trades', 15_000, 10);
    expect(sockets.at(-1)!.url).toBe(b.url);
    sockets.at(-1)!.terminate();
    await publishing;
    await until(() => ev.trades.length >= N, 'all trades', 15_000, 10);
    expect(sockets.at(-1)!.url).toBe(a.url);
    await new Promise((r) => setTimeout(r, 200)); // anything extra would show now

    expectExactly(ev.trades, S, N);
    expect(ev.gaps).toEqual([]);
    expect(ev.resumes).toHaveLength(2);
    expect(ev.resumes.every((r) => r.recovered)).toBe(true);
    expect(client.tradePosition(S)).toEqual({ e: ev.trades.at(-1)!.e, q: ev.trades.at(-1)!.q });
    // The gateways recovered both resumes (trades published while the client was away were replayed).
    const resumedAfter = (await a.metric('tickgate_trade_resumes_total', { recovered: 'true' })) + (await b.metric('tickgate_trade_resumes_total', { recovered: 'true' }));
    expect(resumedAfter - resumedBefore).toBe(2);
  }, 60_000);

  it('one URL whose replica changes behind it: killed mid-stream, reconnected to the other gateway, exactly the published trades', async () => {
    const S = 'MSFT';
    const N = 2000;
    const px = await proxy(portOf(a));
    onTestFinished(() => px.close());
    const client = new TickgateClient({ url: px.url, WebSocket: WebSocket as unknown as WebSocketConstructor, reconnect: { initialMs: 50, maxMs: 200 } });
    onTestFinished(() => client.close());
    const ev = record(client);
    const sids: string[] = [];
    client.onConnection((s) => s.state === 'open' && sids.push(s.hello.sid));
    await client.connect();
    await client.subscribeTrades(S, { last: 10 });
    const replayedBefore = await b.metric('tickgate_trades_replayed_total');

    const publishing = publishTape(S, N);
    await until(() => ev.trades.length >= 700, '700 trades', 15_000, 10);
    px.switchTo(portOf(b));
    await publishing;
    await until(() => ev.trades.length >= N, 'all trades', 15_000, 10);
    await new Promise((r) => setTimeout(r, 200));

    expectExactly(ev.trades, S, N);
    expect(ev.gaps).toEqual([]);
    expect(ev.resumes).toEqual([expect.objectContaining({ symbol: S, recovered: true })]);
    expect(sids).toHaveLength(2);
    // Gateway b replayed what the client missed while the proxy switched.
    expect(await b.metric('tickgate_trades_replayed_total')).toBeGreaterThan(replayedBefore);
  }, 60_000);
});
