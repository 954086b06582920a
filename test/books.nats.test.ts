/**
 * Integration: order books from a real nats-server to WebSocket clients
 * decoding with a standard MessagePack library. Each client keeps its book
 * by the protocol's rules and recomputes every checksum; at rest every
 * window must equal the published book cut to the client's depth.
 */
import { encode as mpEncode } from '@msgpack/msgpack';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { clientBook, type Level } from './helpers/client-book.js';
import { TestClient } from './helpers/ws-client.js';

let nats: NatsServer;
let gw: TestGateway;
let pub: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  gw = await startGateway({
    nats: { servers: [nats.url] },
    feeds: [
      { name: 'md', subject: 'md.>', codec: 'msgpack' },
      { name: 'lob', kind: 'book', subject: 'book.>', codec: 'msgpack', symbolToken: 1 },
    ],
    book: { maxDepth: 100 },
  });
  pub = await connect({ servers: nats.url });
});

afterAll(async () => {
  await pub?.close();
  await gw?.stop();
  await nats?.stop();
});

/** The publisher's own book, to compare with. */
class SourceBook {
  bids = new Map<number, number>();
  asks = new Map<number, number>();
  seq = 0;
  snapshot(bids: Level[], asks: Level[]) {
    this.bids = new Map(bids);
    this.asks = new Map(asks);
    return { snapshot: true, seq: ++this.seq, bids, asks };
  }
  change(bids: Level[], asks: Level[]) {
    for (const [p, s] of bids) s === 0 ? this.bids.delete(p) : this.bids.set(p, s);
    for (const [p, s] of asks) s === 0 ? this.asks.delete(p) : this.asks.set(p, s);
    return { seq: ++this.seq, bids, asks };
  }
  window(depth: number) {
    return {
      bids: [...this.bids].sort((a, b) => b[0] - a[0]).slice(0, depth),
      asks: [...this.asks].sort((a, b) => a[0] - b[0]).slice(0, depth),
    };
  }
}

describe('order books on a real nats-server', () => {
  it('keeps every client window exact at depths 5 and 25, plain and throttled, with matching checksums', async () => {
    const deep = await TestClient.connect(gw.url);
    const shallow = await TestClient.connect(gw.url);
    deep.send({ op: 'sub', id: 1, channel: 'book', symbols: ['BTC-USD'], depth: 25 });
    shallow.send({ op: 'sub', id: 2, channel: 'book', symbols: ['BTC-USD'], depth: 5, throttleMs: 50 });
    // The same connection also holds the symbol's quote.
    shallow.send({ op: 'sub', id: 3, symbols: ['BTC-USD'] });
    expect(await deep.next((m) => m.t === 'ack', 'ack')).toMatchObject({ id: 1, ok: ['BTC-USD'], channel: 'book', depth: 25 });
    expect(await shallow.next((m) => m.t === 'ack' && m['id'] === 2, 'ack')).toMatchObject({ channel: 'book', depth: 5, throttleMs: 50 });
    const ackQuote = await shallow.next((m) => m.t === 'ack' && m['id'] === 3, 'ack');
    expect(ackQuote['channel']).toBeUndefined();
    await deep.next((m) => m.t === 'stat' && m['ch'] === 'book' && m['st'] === 'unknown', 'stat unknown');

    const src = new SourceBook();
    let x = 7;
    const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
    const px = (i: number) => Math.round(i * 100) / 100;
    const bids0: Level[] = Array.from({ length: 40 }, (_, i) => [px(100 - 0.01 * (i + 1)), 1 + i]);
    const asks0: Level[] = Array.from({ length: 40 }, (_, i) => [px(100 + 0.01 * (i + 1)), 1 + i]);
    pub.publish('book.BTC-USD', mpEncode({ ...src.snapshot(bids0, asks0), ts: Date.now() }));
    pub.publish('md.x', mpEncode({ s: 'BTC-USD', bid: 99.99, ask: 100.01 }));
    for (let i = 0; i < 1500; i++) {
      const side = (): Level[] =>
        Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => [px(100 + (rnd() < 0.5 ? -1 : 1) * 0.01 * (1 + Math.floor(rnd() * 45))), rnd() < 0.3 ? 0 : 1 + Math.floor(rnd() * 50)] as Level);
      const uniq = (l: Level[]) => [...new Map(l).entries()];
      const bids = uniq(side()).filter(([p]) => p < 100);
      const asks = uniq(side()).filter(([p]) => p > 100);
      if (bids.length + asks.length === 0) continue;
      pub.publish('book.BTC-USD', mpEncode(src.change(bids, asks)));
      if (i % 200 === 0) await pub.flush();
    }
    await pub.flush();

    const want = src.window(25);
    const atRest = (c: TestClient, depth: number) => {
      const b = clientBook(c.messages, 'BTC-USD', depth);
      const w = src.window(depth);
      return JSON.stringify([b.bids, b.asks]) === JSON.stringify([w.bids, w.asks]) ? b : null;
    };
    const d = await deep.until((c) => atRest(c, 25), 'depth 25 at the published book', 10_000);
    const s = await shallow.until((c) => atRest(c, 5), 'depth 5 at the published book', 10_000);
    expect(d.problems).toEqual([]);
    expect(s.problems).toEqual([]);
    expect(d.bids).toEqual(want.bids);
    // The plain client got deltas; the throttled one fewer messages, as fresh books.
    const deepBupds = deep.messages.filter((m) => m.t === 'bupd').length;
    const shallowMsgs = shallow.messages.filter((m) => m.t === 'book' || m.t === 'bupd').length;
    expect(deepBupds).toBeGreaterThan(1000);
    expect(shallowMsgs).toBeLessThan(deepBupds / 2);
    // Quotes on the same connection are untouched by the book channel.
    expect(shallow.messages.find((m) => m.t === 'snap')).toMatchObject({ s: 'BTC-USD', d: { bid: 99.99, ask: 100.01 } });
    expect(await gw.metric('tickgate_book_messages_total', { feed: 'lob' })).toBeGreaterThan(1000);
    expect(await gw.metric('tickgate_books')).toBe(1);
    await Promise.all([deep.close(), shallow.close()]);
  });

  it('marks a book stale on a sequence gap, live again with a fresh book on the next snapshot; a resubscribe resyncs', async () => {
    const c = await TestClient.connect(gw.url);
    const src = new SourceBook();
    pub.publish('book.ETH-USD', mpEncode(src.snapshot([[10, 1]], [[11, 1]])));
    await pub.flush();
    c.send({ op: 'sub', channel: 'book', symbols: ['ETH-USD'], depth: 10 });
    await c.next((m) => m.t === 'book', 'book');
    pub.publish('book.ETH-USD', mpEncode(src.change([[10.5, 2]], [])));
    src.seq++; // one change lost on the way
    pub.publish('book.ETH-USD', mpEncode(src.change([[10.6, 2]], [])));
    await pub.flush();
    await c.next((m) => m.t === 'stat' && m['st'] === 'stale', 'stat stale');
    expect(c.messages.find((m) => m.t === 'stat' && m['st'] === 'stale')).toEqual({ t: 'stat', s: 'ETH-USD', st: 'stale', ch: 'book' });
    expect(await gw.metric('tickgate_book_gaps_total', { feed: 'lob' })).toBe(1);
    const staleAt = c.messages.length;
    pub.publish('book.ETH-USD', mpEncode(src.snapshot([[10.7, 3]], [[11, 1]])));
    await pub.flush();
    await c.until((x) => x.messages.length >= staleAt + 2, 'stat live and a book');
    expect(c.messages.slice(staleAt).map((m) => [m.t, m['st'] ?? null])).toEqual([
      ['stat', 'live'],
      ['book', null],
    ]);
    expect(c.messages.at(-1)).toMatchObject({ bids: [[10.7, 3]], asks: [[11, 1]] });
    // A resubscribe sends a fresh book and is counted.
    const before = c.messages.length;
    c.send({ op: 'sub', channel: 'book', symbols: ['ETH-USD'], depth: 10 });
    await c.until((x) => x.messages.slice(before).some((m) => m.t === 'book'), 'fresh book');
    expect(await gw.metric('tickgate_book_resubscribes_total')).toBe(1);
    // Bad depth and bad channel are refused with a clear error.
    c.send({ op: 'sub', id: 9, channel: 'book', symbols: ['ETH-USD'], depth: 7 });
    expect(await c.next((m) => m.t === 'err' && m['id'] === 9, 'err')).toMatchObject({ code: 'BAD_REQUEST' });
    c.send({ op: 'sub', id: 10, channel: 'book', symbols: ['ETH-USD'], depth: 500 });
    expect((await c.next((m) => m.t === 'err' && m['id'] === 10, 'err'))['msg']).toContain('maximum of 100');
    c.send({ op: 'sub', id: 11, channel: 'bok', symbols: ['ETH-USD'] });
    expect(await c.next((m) => m.t === 'err' && m['id'] === 11, 'err')).toMatchObject({ code: 'BAD_REQUEST' });
    await c.close();
  });

  it('counts malformed book messages by reason and keeps going', async () => {
    const bad: Array<[object, string]> = [
      [{ bids: [[1, 'x']] }, 'bad_number'],
      [{ asks: [[1, -2]] }, 'negative_size'],
      [{ bids: [[1, 1], [1, 2]] }, 'duplicate_price'],
      [{ bids: [[1, 1]] }, 'no_snapshot'],
    ];
    for (const [o] of bad) pub.publish('book.NEW-USD', mpEncode(o));
    await pub.flush();
    for (const [, reason] of bad) {
      const deadline = Date.now() + 2000;
      while ((await gw.metric('tickgate_book_rejected_total', { feed: 'lob', reason })) < 1) {
        if (Date.now() > deadline) throw new Error(`no ${reason} counted`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
});
