/**
 * Integration: trade prints from a real nats-server (and a JetStream
 * stream) to WebSocket clients decoding with a standard MessagePack
 * library. A client whose socket is killed resumes with `since`, on the same
 * gateway and on another one, and must end with exactly the published list:
 * nothing lost, nothing twice. Stalled and throttled clients hold a cursor,
 * and one that falls out of the history gets a gap naming exactly the
 * positions lost.
 */
import { encode as mpEncode } from '@msgpack/msgpack';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestClient, type Msg } from './helpers/ws-client.js';

let nats: NatsServer;
let pub: NatsConnection;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  pub = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(pub);
  await jsm.streams.add({ name: 'TRADES', subjects: ['trade.>'], storage: StorageType.File });
});

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await pub?.close();
  await nats?.stop();
});

async function gateway(overrides: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startGateway({
    nats: { servers: [nats.url] },
    feeds: [
      { name: 'tape', kind: 'trade', subject: 'trade.>', jetstream: 'TRADES', staleAfterMs: 0, volume: true },
      { name: 'raw', kind: 'trade', subject: 'rawtrade.>', staleAfterMs: 0 },
    ],
    ...overrides,
  });
  gateways.push(gw);
  return gw;
}

/** Trade i of the test tape: ids are unique, so the received list can be compared exactly. */
function trade(i: number) {
  return { px: 100 + (i % 50) / 100, sz: 1 + (i % 7), side: i % 2 ? 'b' : 's', id: `T-${i}`, ts: 1764100000000 + i };
}

/** Publishes trades [from, to) for one symbol, some as batches, flushing as it goes. */
async function publishTrades(subject: string, symbol: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; ) {
    const n = i % 10 === 3 ? Math.min(3, to - i) : 1;
    const batch = Array.from({ length: n }, (_, k) => trade(i + k));
    pub.publish(subject, mpEncode(n === 1 ? { s: symbol, ...batch[0] } : { s: symbol, trades: batch }));
    i += n;
    if (i % 250 < n) await pub.flush();
  }
  await pub.flush();
}

const tradesOf = (c: TestClient, s: string) => c.messages.filter((m) => m.t === 'trade' && m['s'] === s);

/** Subscribes (optionally resuming) and waits for the ack. */
async function subscribe(url: string, symbol: string, extra: Record<string, unknown> = {}): Promise<{ c: TestClient; ack: Msg }> {
  const c = await TestClient.connect(url);
  c.send({ op: 'sub', id: 1, channel: 'trade', symbols: [symbol], ...extra });
  const ack = await c.next((m) => m.t === 'ack', 'ack');
  return { c, ack };
}

describe('trade prints', () => {
  it('resume after a killed socket, on the same gateway and on another, loses and repeats nothing (JetStream positions)', async () => {
    const a = await gateway();
    const b = await gateway();
    const S = 'AAPL';
    const first = await subscribe(a.url, S);
    const pos0 = (first.ack['pos'] as Record<string, { e: string; q: number }>)[S]!;
    expect(pos0.q).toBe(0);
    expect(pos0.e).toMatch(/^TRADES\./);
    const received: Msg[] = [];
    await publishTrades('trade.AAPL', S, 0, 1000);
    await first.c.until((c) => tradesOf(c, S).length >= 400, '400 trades');
    // Killed mid-stream: no close handshake.
    first.c.ws.terminate();
    received.push(...tradesOf(first.c, S));
    const at = received.at(-1)!;
    const publishing = publishTrades('trade.AAPL', S, 1000, 2000);

    // Resume on the same gateway.
    const again = await subscribe(a.url, S, { since: { [S]: { e: pos0.e, q: at['q'] } } });
    expect(again.ack['rec']).toEqual({ [S]: true });
    await publishing;
    await again.c.until((c) => tradesOf(c, S).length >= 300, 'more trades');
    again.c.ws.terminate();
    received.push(...tradesOf(again.c, S));

    // Resume on the other gateway: the same positions, from the same stream.
    const other = await subscribe(b.url, S, { since: { [S]: { e: pos0.e, q: received.at(-1)!['q'] } } });
    expect(other.ack['rec']).toEqual({ [S]: true });
    await publishTrades('trade.AAPL', S, 2000, 2500);
    await other.c.until((c) => received.length + tradesOf(c, S).length >= 2500, 'all trades', 10_000);
    received.push(...tradesOf(other.c, S));

    expect(received.map((m) => m['id'])).toEqual(Array.from({ length: 2500 }, (_, i) => `T-${i}`));
    const qs = received.map((m) => m['q'] as number);
    expect(qs.every((q, i) => i === 0 || q > qs[i - 1]!)).toBe(true);
    expect(received[5]).toEqual({ t: 'trade', s: S, q: received[5]!['q'], ...trade(5) });
    // The quote follows the tape (last, lastSize, and volume on this feed).
    const quote = a.gateway.hub.store.get(S)!.fields();
    expect(quote).toMatchObject({ last: trade(2499).px, lastSize: trade(2499).sz });
    expect(quote['volume']).toBe(Array.from({ length: 2500 }, (_, i) => trade(i).sz).reduce((x, y) => x + y, 0));
    expect(await a.metric('tickgate_trade_resumes_total', { recovered: 'true' })).toBe(1);
    // A gateway started after all of it reads the recent past from the stream: a resume from far back works there too.
    const late = await gateway();
    const back = await subscribe(late.url, S, { since: { [S]: { e: pos0.e, q: received[99]!['q'] } } });
    expect(back.ack['rec']).toEqual({ [S]: true });
    const replayed = await back.c.until((c) => (tradesOf(c, S).length >= 2400 ? tradesOf(c, S) : null), '2400 replayed trades');
    expect(replayed.map((m) => m['id'])).toEqual(received.slice(100).map((m) => m['id']));
    expect(replayed.map((m) => m['q'])).toEqual(received.slice(100).map((m) => m['q']));
    await back.c.close();
    // The resumes were served from the histories, not only from live trades.
    expect((await a.metric('tickgate_trades_replayed_total')) + (await b.metric('tickgate_trades_replayed_total'))).toBeGreaterThan(0);
    await other.c.close();
  });

  it('a client that subscribed before a stream-backed symbol had trades resumes from q 0 with nothing lost', async () => {
    const gw = await gateway();
    const first = await subscribe(gw.url, 'FRESH');
    const pos = (first.ack['pos'] as Record<string, { e: string; q: number }>)['FRESH']!;
    expect(pos.q).toBe(0);
    first.c.ws.terminate();
    await publishTrades('trade.FRESH', 'FRESH', 0, 30);
    await new Promise((r) => setTimeout(r, 100));
    const again = await subscribe(gw.url, 'FRESH', { since: { FRESH: pos } });
    expect(again.ack['rec']).toEqual({ FRESH: true });
    const got = await again.c.until((c) => (tradesOf(c, 'FRESH').length >= 30 ? tradesOf(c, 'FRESH') : null), '30 trades');
    expect(got.map((m) => m['id'])).toEqual(Array.from({ length: 30 }, (_, i) => `T-${i}`));
    expect(again.c.messages.some((m) => m.t === 'gap')).toBe(false);
    await again.c.close();
  });

  it('last: N sends the N most recent trades first, then live ones above the acked position', async () => {
    const gw = await gateway();
    await publishTrades('rawtrade.MSFT', 'MSFT', 0, 60);
    await new Promise((r) => setTimeout(r, 100));
    const { c, ack } = await subscribe(gw.url, 'MSFT', { last: 10 });
    const pos = (ack['pos'] as Record<string, { e: string; q: number }>)['MSFT']!;
    expect(pos.q).toBe(60); // numbered by this gateway: 1, 2, 3, ...
    await c.until((x) => tradesOf(x, 'MSFT').length >= 10, '10 trades');
    await publishTrades('rawtrade.MSFT', 'MSFT', 60, 65);
    await c.until((x) => tradesOf(x, 'MSFT').length >= 15, '15 trades');
    const got = tradesOf(c, 'MSFT');
    expect(got.map((m) => m['q'])).toEqual(Array.from({ length: 15 }, (_, i) => 51 + i));
    // Another epoch (say, a gateway restarted without a stream): not recovered, live only.
    const r = await subscribe(gw.url, 'MSFT', { since: { MSFT: { e: 'gone', q: 3 } } });
    expect(r.ack['rec']).toEqual({ MSFT: false });
    await c.close();
    await r.c.close();
  });

  it('a stalled client that resumes within the history loses nothing, and holds only a cursor meanwhile', async () => {
    const gw = await gateway({
      trade: { history: { size: 200_000, ttlSec: 0 } },
      backpressure: { highWaterBytes: 16 * 1024, lowWaterBytes: 4 * 1024, maxBufferedBytes: 256 * 1024 * 1024, slowConsumerMs: 0 },
    });
    const stalled = await subscribe(gw.url, 'AMD');
    const fast = await subscribe(gw.url, 'AMD');
    const batched = await subscribe(gw.url, 'AMD', { throttleMs: 50 });
    (stalled.c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    let sent = 0;
    // Until the gateway sees the stalled client behind (bounded: 200,000 trades).
    while ((await gw.metric('tickgate_clients_conflating')) < 1 && sent < 200_000) {
      await publishTrades('rawtrade.AMD', 'AMD', sent, sent + 10_000);
      sent += 10_000;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await gw.metric('tickgate_clients_conflating')).toBe(1);
    await publishTrades('rawtrade.AMD', 'AMD', sent, sent + 5000);
    sent += 5000;
    await fast.c.until((x) => tradesOf(x, 'AMD').length >= sent, 'the fast client has all', 20_000);
    (stalled.c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const got = await stalled.c.until((x) => (tradesOf(x, 'AMD').length >= sent ? tradesOf(x, 'AMD') : null), 'the stalled client has all', 20_000);
    expect(got.map((m) => m['id'])).toEqual(Array.from({ length: sent }, (_, i) => `T-${i}`));
    expect(stalled.c.messages.some((m) => m.t === 'gap')).toBe(false);
    // The throttled client got every print too, batched into fewer frames.
    const all = await batched.c.until((x) => (tradesOf(x, 'AMD').length >= sent ? tradesOf(x, 'AMD') : null), 'the batched client has all', 20_000);
    expect(all.map((m) => m['id'])).toEqual(got.map((m) => m['id']));
    expect(batched.c.frames.length).toBeLessThan(fast.c.frames.length);
    // Trades are never counted as conflated: nothing was merged.
    expect(await gw.metric('tickgate_conflated_updates_total', { reason: 'backpressure' })).toBe(0);
    await Promise.all([stalled.c.close(), fast.c.close(), batched.c.close()]);
  });

  it('a client whose cursor left the history gets a gap naming exactly what was lost, then every trade after it', async () => {
    const gw = await gateway({ trade: { history: { size: 100, ttlSec: 0 } }, throttle: { minMs: 10, maxMs: 5000 } });
    const slow = await subscribe(gw.url, 'NVDA', { throttleMs: 1500 });
    await publishTrades('rawtrade.NVDA', 'NVDA', 0, 20);
    await slow.c.until((x) => tradesOf(x, 'NVDA').length >= 20, 'first 20');
    // The throttled client's next release comes at most 1.5 s from now; 500 trades go past its history of 100.
    await publishTrades('rawtrade.NVDA', 'NVDA', 20, 520);
    await slow.c.until((x) => x.messages.some((m) => m.t === 'gap'), 'a gap', 5000);
    await slow.c.until((x) => tradesOf(x, 'NVDA').at(-1)?.['id'] === 'T-519', 'the last trade', 5000);
    const msgs = slow.c.messages.filter((m) => m['s'] === 'NVDA' && (m.t === 'trade' || m.t === 'gap'));
    const gi = msgs.findIndex((m) => m.t === 'gap');
    const gap = msgs[gi]!;
    expect(gap['from']).toBe(msgs[gi - 1]!['q']);
    expect(gap['to']).toBe((msgs[gi + 1]!['q'] as number) - 1);
    const lost = (gap['to'] as number) - (gap['from'] as number);
    expect(tradesOf(slow.c, 'NVDA').length + lost).toBe(520);
    expect(await gw.metric('tickgate_trade_gaps_sent_total')).toBe(1);
    // After the gap, the history's last 100 trades in order.
    expect(tradesOf(slow.c, 'NVDA').slice(-100).map((m) => m['id'])).toEqual(Array.from({ length: 100 }, (_, i) => `T-${420 + i}`));
    await slow.c.close();
  });
});
