import { Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { EMBEDDED_FEED } from '../src/feed/embedded-source.js';
import { TradeNormalizer } from '../src/feed/trade-normalize.js';
import { Hub } from '../src/fanout/hub.js';
import { SendStatus } from '../src/fanout/outbox.js';
import { createLogger } from '../src/log.js';
import { rng } from './book-sim.js';
import { expectedPerTrade, TradeSim, TradeTapes, tradeDigest, tradePicker } from './trade-sim.js';

const FEED = { ...EMBEDDED_FEED, name: 'trd', kind: 'trade' as const, subject: 'trade.>', symbolToken: 1 };

function request(o: object): ArrayBuffer {
  const b = new TextEncoder().encode(JSON.stringify(o));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

describe('trade simulator', () => {
  it('numbers each tape 1, 2, 3, ... and stamps the time given', () => {
    const tapes = new TradeTapes(2, rng(1));
    expect([tapes.next(0, 10).id, tapes.next(0, 11).id, tapes.next(1, 12).id, tapes.next(0, 13).id]).toEqual([1, 2, 1, 3]);
    expect(tapes.published(0)).toBe(3);
    const t = tapes.next(1, 1234.5678);
    expect(t.ts).toBe(1234.5678);
    expect(t.sz).toBeGreaterThan(0);
    expect(['b', 's']).toContain(t.side);
  });

  it('implies as many deliveries per trade as the subscriptions then receive', () => {
    const o = { symbols: 200, zipf: 1, clients: 200, perClient: 4, seed: 7 };
    const sim = new TradeSim({ symbols: o.symbols, zipf: o.zipf, seed: 13 });
    const subscribers = new Array<number>(o.symbols).fill(0);
    const pick = tradePicker(sim.symbols, o.seed);
    const index = new Map(sim.symbols.map((s, i) => [s, i]));
    for (let c = 0; c < o.clients; c++) for (const s of pick(c, o.perClient)) subscribers[index.get(s)!]!++;
    let delivered = 0;
    const n = 200_000;
    for (let k = 0; k < n; k++) delivered += subscribers[sim.pick()]!;
    expect(delivered / n).toBeCloseTo(expectedPerTrade(o), 1);
    // The picks do not depend on how clients are split over processes.
    expect(tradePicker(sim.symbols, o.seed)(17, 4)).toEqual(pick(17, 4));
  });

  it('gives the same digest to the prints published and the trades the gateway sends for them', () => {
    const hub = new Hub(loadConfig({ env: {} }), createLogger('silent', false));
    const frames: Uint8Array[] = [];
    const session = hub.openSession({
      sendFrame: (f) => (frames.push(new Uint8Array(f)), SendStatus.Sent),
      bufferedAmount: () => 0,
      close: () => undefined,
    });
    session.onMessage(request({ op: 'sub', channel: 'trade', symbols: ['CU-0'] }), false);
    const norm = new TradeNormalizer(FEED);
    const tapes = new TradeTapes(1, rng(3));
    let published = 0;
    for (let k = 0; k < 500; k++) {
      // Fractional times and sizes, as the publisher sends them.
      const t = tapes.next(0, 1_767_225_600_000 + k * 0.05);
      published = tradeDigest(published, t);
      const ev = norm.fromObject('trade.CU-0', t);
      if (typeof ev === 'string') throw new Error(ev);
      hub.onTrades(ev, 'trd');
    }
    hub.scheduler.run();
    let got = 0;
    let n = 0;
    const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
    for (const f of frames) {
      for (const m of unpackr.unpack(f) as Array<Record<string, unknown>>) {
        if (m['t'] !== 'trade') continue;
        expect(m['q']).toBe(m['id']);
        got = tradeDigest(got, m as { id: unknown; px: unknown; sz: unknown; side: unknown; ts: unknown });
        n++;
      }
    }
    expect(n).toBe(500);
    expect(got).toBe(published);
    expect(tradeDigest(0, { id: 1, px: 1, sz: 1, side: 'b', ts: 1 })).not.toBe(tradeDigest(0, { id: 1, px: 1, sz: 1, side: 's', ts: 1 }));
  });
});
