/**
 * Integration: the book helpers of the k6 scenario (load/k6/lib/book.ts and
 * book-feed.ts), run under Node against real processes, since k6 itself is
 * not installable here. The synthetic feed publishes through nats-server's
 * WebSocket listener as the scenario's feed VU does (NATS text protocol in
 * WebSocket text frames, PONG to PING), into a gateway configured with
 * load/k6/gateway-books.json; subscribers keep their books with OrderBooks
 * and check every checksum. At rest every window equals the feed's book cut
 * to its depth, and every `bupd` carried the stamp the latency is read from.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { OrderBooks, bookChecksum, bookSubRequest, crc32, type Book, type BookOutcome, type Bupd } from '../load/k6/lib/book.js';
import { SyntheticBook, natsPub } from '../load/k6/lib/book-feed.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { FeedSocket, startNatsWithWebSocket, type NatsWs } from './helpers/nats-websocket.js';
import { ROOT } from './helpers/process.js';
import { TestClient, type Msg } from './helpers/ws-client.js';

/** A subscriber as the scenario keeps it: outcomes of every message, and whether each bupd named the stamp. */
function subscriberView(messages: Msg[], depth: number) {
  const books = new OrderBooks(depth);
  const outcomes: Record<BookOutcome, number> = { ok: 0, mismatch: 0, break: 0, ignored: 0 };
  let bupds = 0;
  let unstamped = 0;
  for (const m of messages) {
    if (m.t !== 'book' && m.t !== 'bupd') continue;
    const msg = m as unknown as Book | Bupd;
    outcomes[books.apply(msg)]++;
    if (msg.t !== 'bupd') continue;
    bupds++;
    // The feed restamps its best bid with every change, so every bupd names it first.
    const stamp = msg.bids?.[0];
    const best = books.window(msg.s)?.bids[0];
    if (stamp === undefined || stamp[0] !== 100 || best?.[1] !== stamp[1]) unstamped++;
  }
  return { books, outcomes, bupds, unstamped };
}

describe('k6 book helpers against nats-server over WebSocket and the gateway', () => {
  let nats: NatsWs;
  let gw: TestGateway;

  beforeAll(async () => {
    nats = await startNatsWithWebSocket();
    const config = JSON.parse(readFileSync(join(ROOT, 'load/k6/gateway-books.json'), 'utf8')) as Record<string, unknown>;
    gw = await startGateway({ ...config, nats: { servers: [nats.url] } });
  });

  afterAll(async () => {
    await gw?.stop();
    await nats?.stop();
  });

  it('keeps every window exact with matching checksums, at two depths, plain and throttled, and every bupd carries the stamp', async () => {
    const symbols = ['K6BOOK-1', 'K6BOOK-2', 'K6BOOK-3'];
    let seed = 0;
    const books = new Map(symbols.map((s) => [s, new SyntheticBook(40, prngFor(++seed))]));
    const feed = await FeedSocket.open(nats.wsUrl, 'test-k6-book-feed');
    const t0 = Date.now();
    feed.send(symbols.map((s) => natsPub(`book.${s}`, JSON.stringify(books.get(s)!.snapshot(t0)))).join(''));
    await feed.flush();

    const subs = [
      { depth: 10, throttleMs: 0, c: await TestClient.connect(gw.url) },
      { depth: 25, throttleMs: 0, c: await TestClient.connect(gw.url) },
      { depth: 5, throttleMs: 50, c: await TestClient.connect(gw.url) },
    ];
    for (const { depth, throttleMs, c } of subs) c.sendRaw(bookSubRequest('books', symbols, depth, throttleMs), false);
    for (const { depth, c } of subs) {
      expect(await c.next((m) => m.t === 'ack', 'ack')).toMatchObject({ ok: symbols, err: [], channel: 'book', depth });
      await c.until((x) => symbols.every((s) => x.messages.some((m) => m.t === 'book' && m['s'] === s)), 'a book per symbol');
    }

    // As the feed VU does: ticks of several PUBs in one text frame. Distinct stamps, so that every change changes its book.
    let turn = 0;
    for (let tick = 1; tick <= 300; tick++) {
      let out = '';
      for (let i = 0; i < 5; i++) {
        const s = symbols[turn++ % symbols.length]!;
        out += natsPub(`book.${s}`, JSON.stringify(books.get(s)!.change(t0 + 10 * tick + i)));
      }
      feed.send(out);
      if (tick % 50 === 0) await feed.flush();
    }
    await feed.flush();
    expect(feed.errors).toEqual([]);

    for (const { depth, c } of subs) {
      const atRest = (x: TestClient) => {
        const v = subscriberView(x.messages, depth);
        return symbols.every((s) => {
          const w = v.books.window(s);
          return w !== undefined && JSON.stringify([w.bids, w.asks]) === JSON.stringify(Object.values(books.get(s)!.window(depth)));
        })
          ? v
          : null;
      };
      const v = await c.until(atRest, `depth ${depth} at the feed's books`, 10_000);
      expect(v.outcomes, `depth ${depth}`).toMatchObject({ mismatch: 0, break: 0, ignored: 0 });
      expect(v.unstamped, `depth ${depth}: bupds without the stamp first`).toBe(0);
    }
    const [plain10, plain25, throttled] = subs.map((x) => subscriberView(x.c.messages, x.depth));
    expect(plain10!.bupds).toBeGreaterThan(1000);
    expect(plain25!.bupds).toBeGreaterThan(1000);
    // The throttled subscriber got fresh books instead, fewer of them.
    expect(throttled!.outcomes.ok).toBeLessThan(plain10!.outcomes.ok / 2);
    expect(await gw.metric('tickgate_book_messages_total', { feed: 'k6book' })).toBe(3 + 1500);
    expect(await gw.metric('tickgate_book_rejected_total', { feed: 'k6book', reason: 'bad_shape' })).toBe(0);
    feed.close();
    await Promise.all(subs.map((x) => x.c.close()));
  });

  it('answers nats-server PINGs, and a feed that reconnects starts over with snapshots the gateway accepts', async () => {
    const book = new SyntheticBook(10, prngFor(99));
    const c = await TestClient.connect(gw.url);
    c.sendRaw(bookSubRequest('b', ['K6BOOK-R'], 10), false);
    for (let round = 0; round < 2; round++) {
      const feed = await FeedSocket.open(nats.wsUrl, `test-feed-${round}`);
      feed.send(natsPub('book.K6BOOK-R', JSON.stringify(book.snapshot(round))));
      // Past several of the server's pings: unanswered, they would close the connection ("Stale Connection").
      const deadline = Date.now() + 5000;
      while (feed.pings < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(feed.pings).toBeGreaterThanOrEqual(4);
      for (let i = 0; i < 20; i++) feed.send(natsPub('book.K6BOOK-R', JSON.stringify(book.change(1000 * round + i))));
      await feed.flush();
      expect(feed.errors).toEqual([]);
      feed.close();
    }
    const want = book.window(10);
    const v = await c.until((x) => {
      const w = subscriberView(x.messages, 10).books.window('K6BOOK-R');
      return w !== undefined && JSON.stringify([w.bids, w.asks]) === JSON.stringify([want.bids, want.asks]) ? w : null;
    }, 'the book after the second snapshot');
    expect(v.bids[0]).toEqual([100, 1019]);
    expect(await gw.metric('tickgate_book_gaps_total', { feed: 'k6book' })).toBe(0);
    await c.close();
  });
});

describe('k6 CRC32 and checksum', () => {
  it('equal node:zlib crc32 on random bytes and on windows packed as big-endian float64', () => {
    for (let n = 0; n < 200; n++) {
      const b = randomBytes(n * 7);
      expect(crc32(b)).toBe(zlibCrc32(b));
    }
    const levels = (n: number, sign: number) => Array.from({ length: n }, (_, i): [number, number] => [100 + sign * (i + 1) * 0.01, Math.random() * 1000]);
    for (const depth of [1, 5, 10, 25, 50]) {
      const asks = levels(depth, 1);
      const bids = levels(depth, -1);
      const k = Math.min(depth, 25);
      const buf = Buffer.alloc(32 * k);
      [...asks.slice(0, k), ...bids.slice(0, k)].forEach(([p, s], i) => (buf.writeDoubleBE(p, 16 * i), buf.writeDoubleBE(s, 16 * i + 8)));
      expect(bookChecksum(asks, bids, depth)).toBe(zlibCrc32(buf));
    }
  });
});

/** A seeded generator in [0, 1) (Park-Miller). */
function prngFor(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 48271) % 2147483647) / 2147483647;
}
