/**
 * Integration: the simulator publisher against a real nats-server, read back
 * by a plain NATS subscriber and decoded with standard decoders
 * (@msgpack/msgpack, JSON.parse), not the library that encoded it.
 */
import { decode } from '@msgpack/msgpack';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientBook } from '../test/helpers/client-book.js';
import { startGateway } from '../test/helpers/gateway.js';
import { NatsListener, type Received } from '../test/helpers/nats-listener.js';
import { startNatsServer, type NatsServer } from '../test/helpers/nats-server.js';
import { TestClient } from '../test/helpers/ws-client.js';
import { parseSimArgs, runSim, subjectToken, UsageError, type SimOptions } from './sim.js';

let nats: NatsServer;
let sub: NatsConnection;
let listener: NatsListener;

beforeAll(async () => {
  nats = await startNatsServer();
  sub = await connect({ servers: nats.url });
  listener = new NatsListener(sub);
});

afterAll(async () => {
  await sub?.close();
  await nats?.stop();
});

afterEach(() => listener?.stop());

function opts(...argv: string[]): SimOptions {
  const o = parseSimArgs(['--url', nats.url, ...argv], {});
  if (o === 'help') throw new Error('unexpected help');
  return o;
}

describe('feed:sim on a real nats-server', () => {
  it.each(['msgpack', 'json'] as const)('publishes exactly --count ticks (warm-up included) in %s', async (codec) => {
    const got = await listener.listen('md.sim.>');
    const count = 3000;
    const rate = 20_000;
    const symbols = 50;
    const summary = await runSim(opts('--count', String(count), '--rate', String(rate), '--symbols', String(symbols), '--codec', codec));
    // The publisher flushed before returning; a round trip on the subscriber's
    // connection then comes back after every message routed to it.
    await sub.flush();

    expect(summary.stoppedBy).toBe('count');
    expect(summary.published).toBe(count);
    expect(summary.warm).toBe(symbols);
    expect(got).toHaveLength(count);
    // The paced part ran on the clock: a loose lower bound only, never a tight timing.
    expect(summary.seconds).toBeGreaterThanOrEqual((0.5 * (count - symbols)) / rate);

    const lastTs = new Map<string, number>();
    const lastSeq = new Map<string, number>();
    got.forEach(({ subject, data }, i) => {
      const tick = (codec === 'msgpack' ? decode(data) : JSON.parse(new TextDecoder().decode(data))) as Record<string, unknown>;
      expect(typeof tick['s']).toBe('string');
      expect(typeof tick['ts']).toBe('number');
      const s = tick['s'] as string;
      const ts = tick['ts'] as number;
      expect(subject).toBe(`md.sim.${subjectToken(s)}`);
      expect(ts).toBeGreaterThanOrEqual(lastTs.get(s) ?? -Infinity);
      lastTs.set(s, ts);
      // One connection keeps order: each symbol's own sequence has no gap.
      expect(tick['seq']).toBe((lastSeq.get(s) ?? 0) + 1);
      lastSeq.set(s, tick['seq'] as number);
      // The warm-up comes first: one full tick per symbol.
      if (i < symbols) expect(tick).toMatchObject({ seq: 1, bid: expect.any(Number), ask: expect.any(Number), close: expect.any(Number) });
    });
    expect(lastTs.size).toBe(symbols);
    // The universe mixes dotted share classes (sanitized in the subject) and pairs ('/' kept).
    expect(got.some((m) => m.subject === 'md.sim.BRK_B')).toBe(true);
    expect(got.some((m) => m.subject === 'md.sim.EUR/USD')).toBe(true);
  });

  it('stops at --duration with floor(duration x rate) paced ticks after the warm-up', async () => {
    const got = await listener.listen('md.sim.>');
    const summary = await runSim(opts('--duration', '0.3', '--rate', '1000', '--symbols', '20'));
    await sub.flush();
    expect(summary).toMatchObject({ stoppedBy: 'duration', warm: 20, published: 320 });
    expect(got).toHaveLength(320);
  });

  it('runs unbounded with --duration 0 until the signal aborts, then flushes', async () => {
    const got = await listener.listen('md.sim.>');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const summary = await runSim(opts('--duration', '0', '--rate', '2000', '--symbols', '10', '--no-warm'), ac.signal);
    await sub.flush();
    expect(summary.stoppedBy).toBe('signal');
    expect(summary.warm).toBe(0);
    expect(summary.published).toBeGreaterThan(0);
    expect(got).toHaveLength(summary.published);
  });

  it('publishes --books order books on book.sim.<token>: a snapshot first, consecutive seq, never crossed, same payloads every run', async () => {
    const run = async () => {
      const books: Received[] = [];
      const bookSub = sub.subscribe('book.sim.>', {
        callback: (_e, m) => {
          books.push({ subject: m.subject, data: m.data });
        },
      });
      await sub.flush();
      const ticks = await listener.listen('md.sim.>');
      const summary = await runSim(opts('--symbols', '50', '--rate', '1000', '--books', '5', '--book-rate', '2000', '--duration', '0.5', '--seed', '9'));
      await sub.flush();
      bookSub.unsubscribe();
      return { summary, ticks, books };
    };
    const { summary, ticks, books } = await run();
    // Warm-up: 50 full ticks and 5 snapshots; then 0.5 s of each schedule.
    expect(summary).toMatchObject({ stoppedBy: 'duration', warm: 50, published: 550, bookMessages: 1005 });
    expect(ticks).toHaveLength(550);
    expect(books).toHaveLength(1005);

    const held = new Map<string, { seq: number; bids: Map<number, number>; asks: Map<number, number> }>();
    books.forEach(({ subject, data }, i) => {
      const m = decode(data) as { s: string; seq: number; ts: number; snapshot?: boolean; bids: [number, number][]; asks: [number, number][] };
      expect(subject).toBe(`book.sim.${subjectToken(m.s)}`);
      expect(typeof m.ts).toBe('number');
      let b = held.get(m.s);
      if (i < 5) expect(m).toMatchObject({ seq: 1, snapshot: true });
      if (b === undefined) {
        expect(m.snapshot).toBe(true);
        b = { seq: 0, bids: new Map(), asks: new Map() };
        held.set(m.s, b);
      }
      expect(m.seq).toBe(b.seq + 1);
      b.seq = m.seq;
      if (m.snapshot) {
        b.bids.clear();
        b.asks.clear();
      }
      for (const [side, levels] of [
        [b.bids, m.bids],
        [b.asks, m.asks],
      ] as const) {
        for (const [p, size] of levels) size === 0 ? side.delete(p) : side.set(p, size);
      }
      expect(Math.max(...b.bids.keys())).toBeLessThan(Math.min(...b.asks.keys()));
    });
    expect([...held.keys()]).toEqual(expect.arrayContaining(['AAPL', 'EUR/USD', 'BTC/USDT']));
    expect(held.size).toBe(5);

    // Due-time order makes every payload but ts the same on every run.
    const again = await run();
    const noTs = (r: Received[]) => r.map(({ subject, data }) => ({ subject, ...(decode(data) as object), ts: 0 }));
    expect(noTs(again.books)).toEqual(noTs(books));
    expect(noTs(again.ticks)).toEqual(noTs(ticks));
  });

  it('feeds a gateway with a book feed: each client window equals the published book, checksums match', async () => {
    const gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [
        { name: 'sim', subject: 'md.sim.>' },
        { name: 'simbook', kind: 'book', subject: 'book.sim.>' },
      ],
    });
    const c = await TestClient.connect(gw.url);
    try {
      const symbols = ['AAPL', 'EUR/USD', 'BTC/USDT'];
      c.send({ op: 'sub', id: 1, channel: 'book', symbols, depth: 10 });
      await c.next((m) => m.t === 'ack', 'ack');
      const books = await listener.listen('book.sim.>');
      const summary = await runSim(opts('--symbols', '20', '--rate', '500', '--books', '3', '--book-rate', '1000', '--duration', '0.5'));
      await sub.flush();
      expect(summary.bookMessages).toBe(3 + 500);
      // The publisher's books, folded from what it published.
      const want = new Map<string, { bids: Map<number, number>; asks: Map<number, number> }>();
      for (const { data } of books) {
        const m = decode(data) as { s: string; snapshot?: boolean; bids: [number, number][]; asks: [number, number][] };
        const b = m.snapshot ? { bids: new Map<number, number>(), asks: new Map<number, number>() } : want.get(m.s)!;
        want.set(m.s, b);
        for (const [p, size] of m.bids) size === 0 ? b.bids.delete(p) : b.bids.set(p, size);
        for (const [p, size] of m.asks) size === 0 ? b.asks.delete(p) : b.asks.set(p, size);
      }
      const window = (s: string) => ({
        bids: [...want.get(s)!.bids].sort((a, b) => b[0] - a[0]).slice(0, 10),
        asks: [...want.get(s)!.asks].sort((a, b) => a[0] - b[0]).slice(0, 10),
      });
      const atRest = (s: string) => {
        const b = clientBook(c.messages, s, 10);
        return JSON.stringify([b.bids, b.asks]) === JSON.stringify([window(s).bids, window(s).asks]);
      };
      await c.until(() => symbols.every(atRest), 'every window at the published book', 10_000);
      for (const s of symbols) {
        const b = clientBook(c.messages, s, 10);
        expect(b.problems, s).toEqual([]);
        expect({ bids: b.bids, asks: b.asks }).toEqual(window(s));
      }
      expect(await gw.metric('tickgate_book_messages_total', { feed: 'simbook' })).toBe(503);
      expect(await gw.metric('tickgate_book_gaps_total', { feed: 'simbook' })).toBe(0);
    } finally {
      await c.close();
      await gw.stop();
    }
  });

  it('publishes --trades trade messages on trade.sim.<token>, each printed at the quote and followed by its quote tick, same payloads every run', async () => {
    const run = async () => {
      // One subscription for both: the messages in the order the publisher sent them.
      const got = await listener.listen('*.sim.>');
      const summary = await runSim(opts('--symbols', '30', '--rate', '1000', '--trades', '600', '--duration', '0.5', '--seed', '4'));
      await sub.flush();
      return { summary, got };
    };
    const { summary, got } = await run();
    // 0.5 s of each schedule after the 30 warm-up ticks; each trade message adds its tick on md.sim.
    expect(summary).toMatchObject({ stoppedBy: 'duration', warm: 30, published: 530, tradeMessages: 300 });
    expect(got.filter((m) => m.subject.startsWith('trade.sim.'))).toHaveLength(300);
    expect(got.filter((m) => m.subject.startsWith('md.sim.'))).toHaveLength(530 + 300);

    type Print = { px: number; sz: number; side?: string; id: string; ts: number };
    const quote = new Map<string, Record<string, number>>();
    const ids = new Map<string, number>();
    let prints = 0;
    let batches = 0;
    got.forEach(({ subject, data }, i) => {
      const m = decode(data) as Record<string, unknown> & { s: string };
      if (subject.startsWith('md.sim.')) {
        quote.set(m.s, Object.assign(quote.get(m.s) ?? {}, m) as Record<string, number>);
        return;
      }
      expect(subject).toBe(`trade.sim.${subjectToken(m.s)}`);
      const list = (m['trades'] as Print[] | undefined) ?? [m as unknown as Print];
      if (m['trades'] !== undefined) {
        batches++;
        expect(Object.keys(m).sort()).toEqual(['s', 'trades']);
      }
      const q = quote.get(m.s)!;
      for (const p of list) {
        prints++;
        const n = (ids.get(m.s) ?? 0) + 1;
        ids.set(m.s, n);
        expect(p.id).toBe(`${m.s}-${n}`);
        expect(typeof p.ts).toBe('number');
        expect(Number.isSafeInteger(p.sz) && p.sz > 0).toBe(true);
        // At the touch of the quote published before it: the ask for a buy, the bid for a sell, inside otherwise.
        if (p.side === 'b') expect(p.px).toBe(q['ask']);
        else if (p.side === 's') expect(p.px).toBe(q['bid']);
        else expect(p.side === undefined && p.px > q['bid']! && p.px < q['ask']!).toBe(true);
      }
      // Next on the wire: the quote tick the prints make.
      const next = got[i + 1]!;
      expect(next.subject).toBe(`md.sim.${subjectToken(m.s)}`);
      const tick = decode(next.data) as Record<string, number>;
      expect(tick['volume']).toBe(q['volume']! + list.reduce((x, p) => x + p.sz, 0));
      expect(tick['last'] ?? q['last']).toBe(list.at(-1)!.px);
      expect(tick['lastSize'] ?? q['lastSize']).toBe(list.at(-1)!.sz);
      expect(tick['bid']).toBeUndefined();
    });
    expect(summary.trades).toBe(prints);
    expect(batches).toBeGreaterThan(0);

    // Due-time order makes every payload but ts the same on every run.
    const again = await run();
    const noTs = (r: Received[]) =>
      r.map(({ subject, data }) => {
        const m = decode(data) as Record<string, unknown>;
        const trades = m['trades'] as Record<string, unknown>[] | undefined;
        return { subject, ...m, ts: 0, ...(trades ? { trades: trades.map((t) => ({ ...t, ts: 0 })) } : {}) };
      });
    expect(noTs(again.got)).toEqual(noTs(got));
  });

  it('rejects when NATS cannot be reached', async () => {
    await expect(runSim(opts('--url', 'nats://127.0.0.1:1', '--count', '1'))).rejects.toThrow();
  });
});

describe('feed:sim --trades-jetstream on a nats-server with JetStream', () => {
  let js: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    js = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: js.url });
  });

  afterAll(async () => {
    await nc?.close();
    await js?.stop();
  });

  const simOpts = (...argv: string[]) => {
    const o = parseSimArgs(['--url', js.url, '--symbols', '20', '--rate', '200', '--duration', '0.4', ...argv], {});
    if (o === 'help') throw new Error('unexpected help');
    return o;
  };

  it('keeps every trade message in an ordinary stream; a gateway reading it gives clients positions under the stream epoch', async () => {
    const first = await runSim(simOpts('--trades', '500', '--trades-jetstream', 'SIM_TRADES', '--seed', '2'));
    expect(first.tradeMessages).toBe(200);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('SIM_TRADES');
    // Every message kept, not one per subject like the quote warm-start stream.
    expect(info.config).toMatchObject({ subjects: ['trade.sim.>'], storage: 'file' });
    expect(info.config.max_msgs_per_subject).not.toBe(1);
    expect(info.state.messages).toBe(200);

    const gw = await startGateway({
      nats: { servers: [js.url] },
      feeds: [
        { name: 'sim', subject: 'md.sim.>' },
        { name: 'simtrade', kind: 'trade', subject: 'trade.sim.>', jetstream: 'SIM_TRADES', staleAfterMs: 0 },
      ],
    });
    const c = await TestClient.connect(gw.url);
    try {
      const S = 'AAPL';
      c.send({ op: 'sub', id: 1, channel: 'trade', symbols: [S], last: 5 });
      const ack = await c.next((m) => m.t === 'ack', 'ack');
      const pos = (ack['pos'] as Record<string, { e: string; q: number }>)[S]!;
      // The stream's epoch; the position of a trade is (its message's stream sequence - 1) x 1000 + its index + 1.
      expect(pos.e.startsWith('SIM_TRADES.')).toBe(true);
      expect(Math.floor((pos.q - 1) / 1000) + 1).toBeLessThanOrEqual(200);
      const trades = (c: TestClient) => c.messages.filter((m) => m.t === 'trade' && m['s'] === S);
      await c.until((x) => trades(x).length >= 5, 'the last 5 trades');
      // A second run: live trades, read by the gateway from the stream too.
      const published: Record<string, unknown>[] = [];
      const watch = nc.subscribe('trade.sim.>', { callback: (_e, msg) => void published.push(decode(msg.data) as Record<string, unknown>) });
      await nc.flush();
      await runSim(simOpts('--trades', '500', '--trades-jetstream', 'SIM_TRADES', '--seed', '3', '--no-warm'));
      await nc.flush();
      watch.unsubscribe();
      const mine = published.filter((m) => m['s'] === S).flatMap((m) => (m['trades'] as Record<string, unknown>[] | undefined) ?? [m]);
      const want = mine.length;
      expect(want).toBeGreaterThan(0);
      await c.until((x) => trades(x).length >= 5 + want, `${5 + want} trades`, 10_000);
      const got = trades(c);
      const qs = got.map((m) => m['q'] as number);
      expect(qs.every((q, i) => i === 0 || q > qs[i - 1]!)).toBe(true);
      expect(qs.slice(0, 5).every((q) => q <= pos.q)).toBe(true);
      expect(qs[4]).toBe(pos.q);
      // Live positions are the stream's sequences (200 messages stored before the second run).
      expect(qs.slice(5).every((q) => Math.floor((q - 1) / 1000) + 1 > 200 && (q - 1) % 1000 < 5)).toBe(true);
      expect(got.slice(5).map((m) => m['id'])).toEqual(mine.map((p) => p['id']));
      expect(c.messages.some((m) => m.t === 'gap')).toBe(false);
    } finally {
      await c.close();
      await gw.stop();
    }
  });

  it('refuses a trade stream that keeps one message per subject', async () => {
    await runSim(simOpts('--count', '25', '--jetstream', 'SIM_LAST', '--prefix', 'last.sim'));
    await expect(runSim(simOpts('--trades', '10', '--trade-prefix', 'last.sim', '--prefix', 'q.sim', '--trades-jetstream', 'SIM_LAST'))).rejects.toThrow(/keeps only the last message per subject/);
  });
});

describe('feed:sim options', () => {
  it('has documented defaults', () => {
    expect(parseSimArgs([], {})).toEqual({
      url: 'nats://127.0.0.1:4222',
      symbols: 500,
      rate: 2000,
      seed: 1,
      zipf: 1.1,
      codec: 'msgpack',
      prefix: 'md.sim',
      books: 0,
      bookRate: 2000,
      bookPrefix: 'book.sim',
      trades: 0,
      tradePrefix: 'trade.sim',
      tradesJetstream: null,
      duration: 60,
      count: null,
      warm: true,
      jetstream: null,
    });
    expect(parseSimArgs([], { NATS_URL: 'nats://10.0.0.1:4222' })).toMatchObject({ url: 'nats://10.0.0.1:4222' });
  });

  it('bounds the run by --count alone when no --duration is given, and --duration 0 means unbounded', () => {
    expect(parseSimArgs(['--count', '10'], {})).toMatchObject({ count: 10, duration: null });
    expect(parseSimArgs(['--duration', '0'], {})).toMatchObject({ count: null, duration: null });
    expect(parseSimArgs(['--count', '10', '--duration', '5'], {})).toMatchObject({ count: 10, duration: 5 });
  });

  it.each([
    [['--rate', 'fast'], '--rate'],
    [['--rate', '0'], '--rate'],
    [['--symbols', '2.5'], '--symbols'],
    [['--symbols', '0'], '--symbols'],
    [['--seed', 'x'], '--seed'],
    [['--zipf', '-1'], '--zipf'],
    [['--codec', 'protobuf'], '--codec'],
    [['--prefix', 'md.*'], '--prefix'],
    [['--prefix', 'md..sim'], '--prefix'],
    [['--duration', '-1'], '--duration'],
    [['--count', '0'], '--count'],
    [['--count', ''], '--count'],
    [['--url', 'http://x'], '--url'],
    [['--bogus'], '--bogus'],
    [['--symbols', '50', '--books', '51'], '--books'],
    [['--books', '-1'], '--books'],
    [['--books', '1.5'], '--books'],
    [['--book-rate', '0'], '--book-rate'],
    [['--book-prefix', 'book.*'], '--book-prefix'],
    [['--books', '5', '--book-prefix', 'md.sim.book'], '--book-prefix'],
    [['--books', '5', '--prefix', 'md', '--book-prefix', 'md'], '--book-prefix'],
    [['--trades', '-1'], '--trades'],
    [['--trades', 'many'], '--trades'],
    [['--trade-prefix', 'trade.>'], '--trade-prefix'],
    [['--trades', '5', '--trade-prefix', 'md.sim.t'], '--trade-prefix'],
    [['--trades', '5', '--prefix', 'x.y', '--trade-prefix', 'x'], '--trade-prefix'],
    [['--trades', '5', '--books', '5', '--trade-prefix', 'book.sim'], '--trade-prefix'],
    [['--trades', '5', '--trades-jetstream', 'BAD NAME'], '--trades-jetstream'],
    [['--trades-jetstream', 'TRADES'], '--trades-jetstream'],
    [['--trades', '5', '--jetstream', 'MD', '--trades-jetstream', 'MD'], '--trades-jetstream'],
  ])('rejects %j naming %s', (argv, option) => {
    expect(() => parseSimArgs(argv, {})).toThrow(UsageError);
    expect(() => parseSimArgs(argv, {})).toThrow(option);
  });

  it('sanitizes symbols into one subject token', () => {
    expect(subjectToken('BRK.B')).toBe('BRK_B');
    expect(subjectToken('EUR/USD')).toBe('EUR/USD');
    expect(subjectToken('a b*c>d\te')).toBe('a_b_c_d_e');
  });
});
