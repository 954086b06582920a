/**
 * Integration: the embedded feed's order books (feed `simbook`, no NATS) to
 * real WebSocket clients decoding with a standard MessagePack library. Each
 * client keeps its book by the protocol's rules and recomputes every
 * checksum.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientBook } from './helpers/client-book.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { MarketSim } from '../src/feed/market-sim.js';
import { TestClient } from './helpers/ws-client.js';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({ embedded: { symbols: 100, ticksPerSec: 1000, books: 10, bookChangesPerSec: 2000 } });
});

afterAll(() => gw?.stop());

const bookMsgs = (c: TestClient, s: string) => c.messages.filter((m) => m['s'] === s && (m.t === 'book' || m.t === 'bupd'));

describe('embedded order books', () => {
  it('streams a book then bupds whose checksums match at depths 10 and 25, plain and throttled', async () => {
    const symbols = ['AAPL', 'EUR/USD', 'BTC/USDT'];
    const plain = await TestClient.connect(gw.url);
    const throttled = await TestClient.connect(gw.url);
    try {
      plain.send({ op: 'sub', id: 1, channel: 'book', symbols, depth: 10 });
      plain.send({ op: 'sub', id: 2, channel: 'book', symbols: ['AAPL'], depth: 25 }, 'json');
      throttled.send({ op: 'sub', id: 3, channel: 'book', symbols, depth: 10, throttleMs: 100 });
      expect(await plain.next((m) => m.t === 'ack' && m['id'] === 1, 'ack')).toMatchObject({ ok: symbols, channel: 'book', depth: 10 });
      await plain.until((c) => symbols.every((s) => bookMsgs(c, s).filter((m) => m.t === 'bupd').length >= 50), '50 bupds per symbol', 10_000);
      await throttled.until((c) => symbols.every((s) => bookMsgs(c, s).length >= 5), '5 book messages per symbol', 10_000);

      for (const s of symbols) {
        const msgs = bookMsgs(plain, s);
        // The embedded books had their snapshot at start: a book at once, no stat unknown.
        expect(msgs[0]!.t).toBe('book');
        expect(plain.messages.some((m) => m.t === 'stat' && m['s'] === s)).toBe(false);
      }
      // The resubscribe at depth 25 replaced AAPL's view: check each depth over its own messages.
      const ackDeep = plain.messages.findIndex((m) => m.t === 'ack' && m['id'] === 2);
      const before = plain.messages.slice(0, ackDeep);
      const after = plain.messages.slice(ackDeep);
      const books = [
        ...symbols.map((s) => ({ s, depth: 10, b: clientBook(s === 'AAPL' ? before : plain.messages, s, 10) })),
        { s: 'AAPL', depth: 25, b: clientBook(after, 'AAPL', 25) },
        ...symbols.map((s) => ({ s, depth: 10, b: clientBook(throttled.messages, s, 10) })),
      ];
      for (const { s, depth, b } of books) {
        expect(b.problems, `${s} at depth ${depth}`).toEqual([]);
        expect(b.bids.length, s).toBeGreaterThan(0);
        expect(b.bids.length + b.asks.length, s).toBeLessThanOrEqual(2 * depth);
        // The simulator's books are never crossed.
        expect(b.bids[0]![0], s).toBeLessThan(b.asks[0]![0]);
      }
      expect(books.find((x) => x.depth === 25)!.b.applied).toBeGreaterThan(1);

      expect(await gw.metric('tickgate_book_messages_total', { feed: 'simbook' })).toBeGreaterThan(100);
      expect(await gw.metric('tickgate_book_gaps_total', { feed: 'simbook' })).toBe(0);
      expect(await gw.metric('tickgate_book_crossed_total', { feed: 'simbook' })).toBe(0);
      expect(await gw.metric('tickgate_books')).toBe(10);
      const text = await (await fetch(`${gw.http}/metrics`)).text();
      const rejected = [...text.matchAll(/^tickgate_book_rejected_total\{[^}]*feed="simbook"[^}]*\} (\S+)$/gm)].map((m) => Number(m[1]));
      expect(rejected.length).toBeGreaterThan(0);
      expect(rejected.every((v) => v === 0)).toBe(true);
    } finally {
      await Promise.all([plain.close(), throttled.close()]);
    }
  }, 20_000);

  it('has books for the most active symbols only', async () => {
    const ranks = new MarketSim({ symbols: 100, seed: 1 }).symbols;
    const quiet = ranks[50]!;
    const c = await TestClient.connect(gw.url);
    try {
      c.send({ op: 'sub', id: 1, channel: 'book', symbols: [ranks[9]!, quiet], depth: 5 });
      expect(await c.next((m) => m.t === 'stat' && m['s'] === quiet, `stat for ${quiet}`)).toMatchObject({ st: 'unknown', ch: 'book' });
      await c.next((m) => m.t === 'book' && m['s'] === ranks[9], `${ranks[9]} book`);
    } finally {
      await c.close();
    }
  });

  it('runs no book feed with embedded.books 0', async () => {
    const off = await startGateway({ embedded: { symbols: 20, ticksPerSec: 100, books: 0 } });
    const c = await TestClient.connect(off.url);
    try {
      c.send({ op: 'sub', id: 1, channel: 'book', symbols: ['AAPL'], depth: 5 });
      expect(await c.next((m) => m.t === 'stat' && m['s'] === 'AAPL', 'stat')).toMatchObject({ st: 'unknown', ch: 'book' });
      const text = await (await fetch(`${off.http}/metrics`)).text();
      expect(text).not.toContain('feed="simbook"');
      expect(await off.metric('tickgate_books')).toBe(0);
    } finally {
      await c.close();
      await off.stop();
    }
  });
});
