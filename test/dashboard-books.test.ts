/**
 * The Grafana dashboard's order-book row, against a gateway that carries
 * books. test/deploy-artifacts.test.ts checks that every metric name a
 * dashboard queries exists; this checks the book panels further: they cover
 * every book metric, and each of their queries, run by promtool over the
 * series scraped from a gateway fed through a real nats-server (snapshots,
 * changes, a crossed book, dropped levels, malformed messages, a gap,
 * clients, a resubscribe), parses and returns a value above zero. A wrong
 * label name or value, or a typo in PromQL, fails here.
 */
import { encode } from '@msgpack/msgpack';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rowPanels, runPanelQueries } from './helpers/dashboard-panels.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestClient } from './helpers/ws-client.js';

const BOOK_METRICS = [
  'tickgate_books',
  'tickgate_book_levels',
  'tickgate_book_messages_total',
  'tickgate_book_rejected_total',
  'tickgate_book_gaps_total',
  'tickgate_book_crossed_total',
  'tickgate_book_levels_dropped_total',
  'tickgate_book_resubscribes_total',
  'tickgate_messages_sent_total',
];

describe('dashboard: order books row', () => {
  let nats: NatsServer;
  let gw: TestGateway;
  let pub: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [{ name: 'lob', kind: 'book', subject: 'book.>', codec: 'msgpack', symbolToken: 1 }],
      // Small enough that a snapshot drops levels.
      book: { maxLevels: 30, maxDepth: 25 },
    });
    pub = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await pub?.close();
    await gw?.stop();
    await nats?.stop();
  });

  it('has a panel for every book metric, and for book and bupd messages sent', () => {
    const exprs = rowPanels('Order books').flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(0);
    for (const m of BOOK_METRICS) expect(exprs.some((e) => e.includes(`${m}{`)), m).toBe(true);
    expect(exprs.some((e) => e.includes('tickgate_messages_sent_total') && e.includes('type=~"book|bupd"'))).toBe(true);
  });

  it('queries that promtool runs over a real scrape, each returning a value above zero', async () => {
    const levels = (n: number, from: number, step: number) => Array.from({ length: n }, (_, i) => [Math.round((from + step * i) * 100) / 100, 1 + i]);
    // 35 levels a side, over book.maxLevels (30): 5 dropped per side.
    pub.publish('book.BTC-USD', encode({ snapshot: true, seq: 1, bids: levels(35, 99.99, -0.01), asks: levels(35, 100.01, 0.01) }));
    await pub.flush();
    const c = await TestClient.connect(gw.url);
    c.send({ op: 'sub', id: 1, channel: 'book', symbols: ['BTC-USD'], depth: 10 });
    await c.next((m) => m.t === 'book', 'book');
    for (let seq = 2; seq < 50; seq++) pub.publish('book.BTC-USD', encode({ seq, bids: [[99.99, seq]] }));
    // Crossed: a bid above the best ask.
    pub.publish('book.BTC-USD', encode({ seq: 50, bids: [[100.5, 1]] }));
    // A gap (seq 51 lost), then changes refused until the next snapshot.
    pub.publish('book.BTC-USD', encode({ seq: 52, bids: [[99.98, 3]] }));
    pub.publish('book.BTC-USD', encode({ seq: 53, bids: [[99.98, 4]] }));
    pub.publish('book.BTC-USD', encode({ bids: [[1, 'x']] }));
    pub.publish('book.BTC-USD', encode({ snapshot: true, seq: 60, bids: levels(5, 99.99, -0.01), asks: levels(5, 100.01, 0.01) }));
    await pub.flush();
    await c.until((x) => x.messages.filter((m) => m.t === 'book').length >= 2, 'the fresh book after the gap');
    c.send({ op: 'sub', id: 2, channel: 'book', symbols: ['BTC-USD'], depth: 10 });
    await c.until((x) => x.messages.filter((m) => m.t === 'book').length >= 3, 'the book answering the resubscribe');
    const deadline = Date.now() + 5000;
    while ((await gw.metric('tickgate_book_resubscribes_total')) < 1 || (await gw.metric('tickgate_book_rejected_total', { feed: 'lob', reason: 'bad_number' })) < 1) {
      if (Date.now() > deadline) throw new Error('the book counters did not move');
      await new Promise((r) => setTimeout(r, 20));
    }

    try {
      const panels = rowPanels('Order books');
      const r = runPanelQueries(await (await fetch(`${gw.http}/metrics`)).text(), BOOK_METRICS, panels);
      expect(r.queries).toBeGreaterThanOrEqual(panels.length);
      expect(r.output, 'promtool test rules').toContain('SUCCESS');
      expect(r.status).toBe(0);
    } finally {
      await c.close();
    }
  });
});
