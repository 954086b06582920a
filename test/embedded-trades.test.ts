/**
 * Integration: the embedded feed's trade prints (feed `simtrade`, no NATS)
 * to real WebSocket clients decoding with a standard MessagePack library:
 * the ack's position, the most recent trades first, then live ones, in
 * increasing `q`, each a valid print at the quote of its time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { TestClient, type Msg } from './helpers/ws-client.js';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({ embedded: { symbols: 100, ticksPerSec: 1000, books: 0, tradesPerSec: 2000 } });
});

afterAll(() => gw?.stop());

const tradesOf = (c: TestClient, s: string) => c.messages.filter((m) => m.t === 'trade' && m['s'] === s);

describe('embedded trade prints', () => {
  it('acks positions, sends the last 5 then live trades in increasing q, each a valid print at the touch', async () => {
    const symbols = ['AAPL', 'EUR/USD', 'BTC/USDT'];
    // Let each symbol print a few times first, so `last` has something to send.
    await new Promise((r) => setTimeout(r, 300));
    const c = await TestClient.connect(gw.url);
    try {
      // The quote first, on the same connection: a live trade can be checked against the quote before it.
      c.send({ op: 'sub', id: 1, symbols });
      await c.next((m) => m.t === 'ack' && m['id'] === 1, 'quote ack');
      c.send({ op: 'sub', id: 2, channel: 'trade', symbols, last: 5 });
      const ack = await c.next((m) => m.t === 'ack' && m['id'] === 2, 'trade ack');
      expect(ack).toMatchObject({ ok: symbols, channel: 'trade' });
      const pos = ack['pos'] as Record<string, { e: string; q: number }>;
      expect(Object.keys(pos).sort()).toEqual([...symbols].sort());
      await c.until(() => symbols.every((s) => tradesOf(c, s).length >= 30), '30 trades per symbol', 10_000);

      const ackAt = c.messages.indexOf(ack);
      for (const s of symbols) {
        const p = pos[s]!;
        expect(typeof p.e, s).toBe('string');
        expect(p.e.length, s).toBeGreaterThan(0);
        // The most active symbols had printed more than 5 times before the subscription.
        expect(p.q, s).toBeGreaterThanOrEqual(5);
        const got = tradesOf(c, s);
        const qs = got.map((m) => m['q'] as number);
        // Numbered by the gateway: the 5 before the ack's position, then every later one, none twice, none missed.
        expect(qs.slice(0, 6), s).toEqual([p.q - 4, p.q - 3, p.q - 2, p.q - 1, p.q, p.q + 1]);
        expect(qs.every((q, i) => i === 0 || q === qs[i - 1]! + 1), s).toBe(true);
        let lastId = 0;
        for (const m of got) {
          expect(Object.keys(m).every((k) => ['t', 's', 'q', 'px', 'sz', 'side', 'id', 'ts'].includes(k)), JSON.stringify(m)).toBe(true);
          expect(m['px'] as number).toBeGreaterThan(0);
          expect(Number.isSafeInteger(m['sz']) && (m['sz'] as number) > 0, JSON.stringify(m)).toBe(true);
          expect([undefined, 'b', 's']).toContain(m['side']);
          expect(typeof m['ts']).toBe('number');
          // Ids "<symbol>-<n>", rising per symbol.
          const id = /^(.+)-(\d+)$/.exec(m['id'] as string);
          expect(id?.[1], JSON.stringify(m)).toBe(s);
          expect(Number(id![2])).toBeGreaterThan(lastId);
          lastId = Number(id![2]);
        }
      }
      expect(c.messages.some((m) => m.t === 'gap')).toBe(false);

      // Each live trade printed at the quote this client had just before it: at the ask for a buy, the bid for a sell, between them otherwise.
      const quote = new Map<string, Record<string, unknown>>();
      let checked = 0;
      c.messages.forEach((m: Msg, i) => {
        const s = m['s'] as string;
        if (m.t === 'snap') quote.set(s, { ...(m['d'] as object) });
        else if (m.t === 'upd') Object.assign(quote.get(s)!, m['d']);
        else if (m.t === 'trade' && i > ackAt && (m['q'] as number) > pos[s]!.q) {
          const { bid, ask } = quote.get(s)! as { bid: number; ask: number };
          const px = m['px'] as number;
          if (m['side'] === 'b') expect(px, JSON.stringify(m)).toBe(ask);
          else if (m['side'] === 's') expect(px, JSON.stringify(m)).toBe(bid);
          else expect(px > bid && px < ask, JSON.stringify(m)).toBe(true);
          checked++;
        }
      });
      expect(checked).toBeGreaterThan(50);

      expect(await gw.metric('tickgate_trades_total', { feed: 'simtrade' })).toBeGreaterThan(100);
      const text = await (await fetch(`${gw.http}/metrics`)).text();
      const rejected = [...text.matchAll(/^tickgate_trade_rejected_total\{[^}]*feed="simtrade"[^}]*\} (\S+)$/gm)].map((m) => Number(m[1]));
      expect(rejected.length).toBeGreaterThan(0);
      expect(rejected.every((v) => v === 0)).toBe(true);
    } finally {
      await c.close();
    }
  }, 20_000);

  it('runs no trade feed with embedded.tradesPerSec 0', async () => {
    const off = await startGateway({ embedded: { symbols: 20, ticksPerSec: 100, books: 0, tradesPerSec: 0 } });
    const c = await TestClient.connect(off.url);
    try {
      c.send({ op: 'sub', id: 1, channel: 'trade', symbols: ['AAPL'], last: 5 });
      expect(await c.next((m) => m.t === 'ack', 'ack')).toMatchObject({ pos: { AAPL: { q: 0 } } });
      await new Promise((r) => setTimeout(r, 200));
      expect(tradesOf(c, 'AAPL')).toEqual([]);
      const text = await (await fetch(`${off.http}/metrics`)).text();
      expect(text).not.toContain('feed="simtrade"');
    } finally {
      await c.close();
      await off.stop();
    }
  });
});
