/**
 * The Grafana dashboard's trades row, against a gateway that carries trade
 * prints. test/deploy-artifacts.test.ts checks that every metric name a
 * dashboard queries exists; this checks the trade panels further: they
 * cover every trade metric, and each of their queries, run by promtool over
 * the series scraped from a gateway fed through a real nats-server (a
 * JetStream-backed feed and a plain one: trades, batches, a bad trade,
 * clients, a resume recovered and one not, a throttled client that falls
 * out of the history and gets a gap), parses and returns a value above
 * zero. A wrong label name or value, or a typo in PromQL, fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode } from '@msgpack/msgpack';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowPanels, runPanelQueries } from './helpers/dashboard-panels.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ROOT } from './helpers/process.js';
import { TestClient, type Msg } from './helpers/ws-client.js';

const TRADE_METRICS = [
  'tickgate_trades_total',
  'tickgate_trade_rejected_total',
  'tickgate_trade_resumes_total',
  'tickgate_trades_replayed_total',
  'tickgate_trade_gaps_sent_total',
  'tickgate_trade_history',
  'tickgate_messages_sent_total',
];

const trade = (i: number) => ({ px: 100 + (i % 50) / 100, sz: 1 + (i % 7), side: i % 2 ? 'b' : 's', id: `T-${i}` });
const tradesOf = (c: TestClient, s: string) => c.messages.filter((m) => m.t === 'trade' && m['s'] === s);

describe('dashboard: trades row', () => {
  let nats: NatsServer;
  let gw: TestGateway;
  let pub: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    pub = await connect({ servers: nats.url });
    await (await jetstreamManager(pub)).streams.add({ name: 'TRADES', subjects: ['trade.>'], storage: StorageType.File });
    gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [
        { name: 'tape', kind: 'trade', subject: 'trade.>', jetstream: 'TRADES', symbolToken: 1, staleAfterMs: 0 },
        { name: 'raw', kind: 'trade', subject: 'rawtrade.>', symbolToken: 1, staleAfterMs: 0 },
      ],
      // Small enough that a throttled client falls out of it.
      trade: { history: { size: 50, ttlSec: 0 } },
      throttle: { minMs: 10, maxMs: 5000 },
    });
  });

  afterAll(async () => {
    await pub?.close();
    await gw?.stop();
    await nats?.stop();
  });

  it('has a panel for every trade metric, and for trade and gap messages sent', () => {
    const exprs = rowPanels('Trades').flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(0);
    for (const m of TRADE_METRICS) expect(exprs.some((e) => e.includes(`${m}{`)), m).toBe(true);
    expect(exprs.some((e) => e.includes('tickgate_messages_sent_total') && e.includes('type=~"trade|gap"'))).toBe(true);
    expect(exprs.some((e) => e.includes('tickgate_trade_resumes_total') && e.includes('sum by (recovered)'))).toBe(true);
  });

  it('queries that promtool runs over a real scrape, each returning a value above zero', async () => {
    const sub = async (extra: Record<string, unknown>, symbol = 'AAPL') => {
      const c = await TestClient.connect(gw.url);
      c.send({ op: 'sub', id: 1, channel: 'trade', symbols: [symbol], ...extra });
      const ack = await c.next((m) => m.t === 'ack', 'ack');
      return { c, ack };
    };
    const clients: TestClient[] = [];
    try {
      // Trades on the stream, one message a batch with a bad trade in it (refused on its own).
      const first = await sub({});
      clients.push(first.c);
      const epoch = (first.ack['pos'] as Record<string, { e: string }>)['AAPL']!.e;
      for (let i = 0; i < 20; i++) pub.publish('trade.AAPL', encode(trade(i)));
      pub.publish('trade.AAPL', encode({ trades: [trade(20), { px: 'x', sz: 1 }, trade(21)] }));
      await pub.flush();
      await first.c.until((c) => tradesOf(c, 'AAPL').length >= 22, '22 trades');
      // Killed; more trades meanwhile; the resume replays them from the history.
      first.c.ws.terminate();
      const at = tradesOf(first.c, 'AAPL').at(-1) as Msg;
      for (let i = 22; i < 30; i++) pub.publish('trade.AAPL', encode(trade(i)));
      await pub.flush();
      await new Promise((r) => setTimeout(r, 200));
      const again = await sub({ since: { AAPL: { e: epoch, q: at['q'] } } });
      clients.push(again.c);
      expect(again.ack['rec']).toEqual({ AAPL: true });
      await again.c.until((c) => tradesOf(c, 'AAPL').length >= 8, 'the 8 trades missed');
      // Another epoch: not recovered.
      const lost = await sub({ since: { AAPL: { e: 'gone', q: 3 } } });
      clients.push(lost.c);
      expect(lost.ack['rec']).toEqual({ AAPL: false });

      // A throttled client on the plain feed: 200 trades go past a history of 50 before its next release.
      const slow = await sub({ throttleMs: 1500 }, 'MSFT');
      clients.push(slow.c);
      for (let i = 0; i < 5; i++) pub.publish('rawtrade.MSFT', encode(trade(i)));
      await pub.flush();
      await slow.c.until((c) => tradesOf(c, 'MSFT').length >= 5, 'the first 5');
      for (let i = 5; i < 205; i++) pub.publish('rawtrade.MSFT', encode(trade(i)));
      await pub.flush();
      await slow.c.until((c) => c.messages.some((m) => m.t === 'gap'), 'a gap', 5000);

      const deadline = Date.now() + 5000;
      while ((await gw.metric('tickgate_trade_gaps_sent_total')) < 1 || (await gw.metric('tickgate_trade_rejected_total', { feed: 'tape', reason: 'bad_px' })) < 1) {
        if (Date.now() > deadline) throw new Error('the trade counters did not move');
        await new Promise((r) => setTimeout(r, 20));
      }

      const panels = rowPanels('Trades');
      const r = runPanelQueries(await (await fetch(`${gw.http}/metrics`)).text(), TRADE_METRICS, panels);
      expect(r.queries).toBeGreaterThanOrEqual(panels.length);
      expect(panels.length).toBeGreaterThanOrEqual(9);
      expect(r.output, 'promtool test rules').toContain('SUCCESS');
      expect(r.status).toBe(0);
    } finally {
      await Promise.all(clients.map((c) => (c.closed ? undefined : c.close())));
    }
  });

  it('is shipped by the helm chart as the same file', () => {
    expect(readFileSync(join(ROOT, 'helm/tickgate/files/tickgate-dashboard.json'), 'utf8')).toBe(readFileSync(join(ROOT, 'dashboards/tickgate.json'), 'utf8'));
  });
});
