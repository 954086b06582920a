/**
 * Integration: the SDK's order books against a real gateway fed by a real
 * nats-server, over real WebSockets. The client's book must equal the
 * published book cut to its depth with every checksum verified; a message
 * corrupted on the way in must be caught, answered by a resubscription and
 * healed by the fresh book; and a book subscription must survive a gateway
 * restart.
 */
import { decode, encode } from '@msgpack/msgpack';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { TickgateClient, type BookMismatch, type BookResync, type ConnectionStatus, type WebSocketConstructor } from '../src/client/index.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { until } from './helpers/until.js';

type Level = [number, number];

let nats: NatsServer;
let pub: NatsConnection;

const bookFeeds = (subject: string) => ({
  nats: { servers: [nats.url], reconnectWaitMs: 100 },
  feeds: [{ name: 'lob', kind: 'book', subject, codec: 'msgpack' }],
});

beforeAll(async () => {
  nats = await startNatsServer();
  pub = await connect({ servers: nats.url });
});

afterAll(async () => {
  await pub?.close();
  await nats?.stop();
});

/** The publisher's own full book, to compare with. */
class SourceBook {
  bids = new Map<number, number>();
  asks = new Map<number, number>();
  seq = 0;
  constructor(
    readonly subject: string,
    readonly symbol: string,
  ) {}
  snapshot(bids: Level[], asks: Level[]): void {
    this.bids = new Map(bids);
    this.asks = new Map(asks);
    pub.publish(this.subject, encode({ s: this.symbol, snapshot: true, seq: ++this.seq, bids, asks }));
  }
  change(bids: Level[], asks: Level[]): void {
    for (const [p, s] of bids) s === 0 ? this.bids.delete(p) : this.bids.set(p, s);
    for (const [p, s] of asks) s === 0 ? this.asks.delete(p) : this.asks.set(p, s);
    pub.publish(this.subject, encode({ s: this.symbol, seq: ++this.seq, bids, asks }));
  }
  window(depth: number): { bids: Level[]; asks: Level[] } {
    return {
      bids: [...this.bids].sort((a, b) => b[0] - a[0]).slice(0, depth),
      asks: [...this.asks].sort((a, b) => a[0] - b[0]).slice(0, depth),
    };
  }
}

/** Random level changes around 100, on a 0.01 grid: bids below, asks above. */
function randomChanges(src: SourceBook, n: number, seed: number): void {
  let x = seed;
  const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
  const px = (i: number) => Math.round(i * 100) / 100;
  for (let i = 0; i < n; i++) {
    const side = (sign: number): Level[] => {
      const m = new Map<number, number>();
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) m.set(px(100 + sign * 0.01 * (1 + Math.floor(rnd() * 30))), rnd() < 0.3 ? 0 : 1 + Math.floor(rnd() * 50));
      return [...m];
    };
    src.change(side(-1), side(1));
  }
}

const initial = (): [Level[], Level[]] => [
  Array.from({ length: 30 }, (_, i): Level => [Math.round((99.99 - 0.01 * i) * 100) / 100, 1 + i]),
  Array.from({ length: 30 }, (_, i): Level => [Math.round((100.01 + 0.01 * i) * 100) / 100, 1 + i]),
];

/**
 * The `ws` WebSocket, with a way to corrupt the next `bupd` that names a
 * level on its way to the client: one level's size is raised by one, as a
 * lost or misapplied message would leave it.
 */
function corruptingWebSocket(plan: { corrupt: number; corrupted: string[] }): WebSocketConstructor {
  const tamper = (data: ArrayBuffer): ArrayBuffer => {
    const frame = decode(new Uint8Array(data)) as Array<Record<string, unknown>>;
    const m = frame.find((x) => x['t'] === 'bupd' && ((x['bids'] as Level[] | undefined)?.length ?? 0) > 0);
    if (m === undefined) return data;
    const l = (m['bids'] as Level[])[0]!;
    plan.corrupted.push(`${String(m['s'])} q ${String(m['q'])} bid ${l[0]}: size ${l[1]} -> ${l[1] + 1}`);
    l[1] += 1;
    plan.corrupt--;
    const bytes = encode(frame);
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  };
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      let handler: ((ev: { data: unknown }) => void) | null = null;
      this.on('message', (data: ArrayBuffer) => handler?.({ data: plan.corrupt > 0 ? tamper(data) : data }));
      // The client sets onmessage: keep its handler and call it from the listener above.
      Object.defineProperty(this, 'onmessage', { get: () => handler, set: (fn: typeof handler) => (handler = fn), configurable: true });
    }
  } as unknown as WebSocketConstructor;
}

describe('SDK order books on a real gateway', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ ...bookFeeds('book.a.>'), book: { maxDepth: 100 } });
  });
  afterAll(() => gw?.stop());

  it('keeps the book exact with every checksum verified, plain and throttled; a corrupted bupd is caught and resynced', async () => {
    const plan = { corrupt: 0, corrupted: [] as string[] };
    const client = new TickgateClient({ url: gw.url, WebSocket: corruptingWebSocket(plan) });
    const throttled = new TickgateClient({ url: gw.url, WebSocket });
    onTestFinished(() => Promise.all([client.close(), throttled.close()]).then(() => undefined));
    const mismatches: BookMismatch[] = [];
    const resyncs: BookResync[] = [];
    let deltas = 0;
    let throttledMessages = 0;
    client.onBookMismatch((m) => mismatches.push(m));
    client.onBookResync((r) => resyncs.push(r));
    client.onBook((u) => (deltas += u.snapshot ? 0 : 1));
    throttled.onBook(() => throttledMessages++);
    throttled.onBookMismatch((m) => mismatches.push(m));
    await Promise.all([client.connect(), throttled.connect()]);

    expect(await client.subscribeBook('BTC-USD', { depth: 10 })).toEqual({ ok: ['BTC-USD'], err: [], depth: 10 });
    expect(await throttled.subscribeBook('BTC-USD', { depth: 5, throttleMs: 50 })).toEqual({ ok: ['BTC-USD'], err: [], depth: 5, throttleMs: 50 });
    // No book yet on the gateway.
    await until(() => client.bookStatus('BTC-USD') === 'unknown', 'book status unknown');
    expect(client.book('BTC-USD')).toBeUndefined();

    const src = new SourceBook('book.a.BTC-USD', 'BTC-USD');
    src.snapshot(...initial());
    randomChanges(src, 1500, 7);
    await pub.flush();
    // At rest: the client holds the gateway's latest q, and its window is the published book's.
    const atRest = (c: TickgateClient, depth: number) => {
      const b = c.book('BTC-USD');
      const w = src.window(depth);
      return b !== undefined && b.synced && b.q === gw.gateway.hub.books.state('BTC-USD')?.q && JSON.stringify([b.bids, b.asks]) === JSON.stringify([w.bids, w.asks]);
    };
    await until(() => atRest(client, 10) && atRest(throttled, 5), 'both books at the published window');
    expect(mismatches).toEqual([]);
    expect(client.bookStatus('BTC-USD')).toBe('live');
    // Every source message that changed the book (a few remove absent levels) is one q.
    expect(client.book('BTC-USD')!.q).toBeGreaterThan(1400);
    expect(deltas).toBeGreaterThan(1000);
    expect(throttledMessages).toBeLessThan(deltas / 2);

    // Corrupt one bupd on its way in: the client notices, resubscribes, and the fresh book heals it.
    const resubscribes = await gw.metric('tickgate_book_resubscribes_total');
    plan.corrupt = 1;
    randomChanges(src, 200, 11);
    await pub.flush();
    await until(() => resyncs.length === 1, 'the resync');
    await until(() => atRest(client, 10), 'the book at the published window again');
    expect(plan.corrupted).toHaveLength(1);
    expect(mismatches).toEqual([expect.objectContaining({ symbol: 'BTC-USD', reason: 'checksum', attempt: 1, resubscribing: true })]);
    const m = mismatches[0] as Extract<BookMismatch, { reason: 'checksum' }>;
    expect(m.actual).not.toBe(m.expected);
    expect(resyncs[0]).toMatchObject({ symbol: 'BTC-USD', attempts: 1 });
    expect(resyncs[0]!.q).toBeGreaterThan(m.q);
    expect(await gw.metric('tickgate_book_resubscribes_total')).toBe(resubscribes + 1);
    await until(() => atRest(throttled, 5), 'the throttled book at the published window');
    expect(mismatches).toHaveLength(1);
  });

  it('reports a book stale on a source gap and live again, with a fresh book, on the next snapshot', async () => {
    const client = new TickgateClient({ url: gw.url, WebSocket });
    onTestFinished(() => client.close());
    const statuses: string[] = [];
    client.onBookStatus((_s, st) => statuses.push(st));
    await client.connect();
    const src = new SourceBook('book.a.ETH-USD', 'ETH-USD');
    src.snapshot([[10, 1]], [[11, 1]]);
    await pub.flush();
    await client.subscribeBook('ETH-USD', { depth: 5 });
    await until(() => client.book('ETH-USD'), 'the book');
    src.seq++; // one message lost upstream
    src.change([[10.5, 1]], []);
    await pub.flush();
    await until(() => client.bookStatus('ETH-USD') === 'stale', 'stale');
    src.snapshot([[10.6, 2]], [[11, 1]]);
    await pub.flush();
    await until(() => client.bookStatus('ETH-USD') === 'live' && client.book('ETH-USD')!.bids[0]![0] === 10.6, 'live with the new book');
    expect(statuses).toEqual(['live', 'stale', 'live']);
  });
});

it('renews a book subscription after the gateway restarts', async () => {
  const port = await freePort();
  let gw = await startGateway({ ...bookFeeds('book.r.>'), port });
  const client = new TickgateClient({ url: gw.url, WebSocket, reconnect: { initialMs: 50, maxMs: 200 } });
  onTestFinished(async () => {
    await client.close();
    await gw.stop();
  });
  const seen: ConnectionStatus['state'][] = [];
  client.onConnection((s) => seen.push(s.state));
  await client.connect();
  const src = new SourceBook('book.r.SOL-USD', 'SOL-USD');
  src.snapshot([[20, 1]], [[21, 1]]);
  await pub.flush();
  await client.subscribeBook('SOL-USD', { depth: 5, throttleMs: 100 });
  await until(() => client.book('SOL-USD'), 'the first book');
  const sid = client.serverHello!.sid;

  await gw.stop();
  gw = await startGateway({ ...bookFeeds('book.r.>'), port });
  // The new gateway has no book until the source's next snapshot.
  await until(() => client.status.state === 'open' && client.serverHello!.sid !== sid && client.bookStatus('SOL-USD') === 'unknown', 'reconnected, book unknown');
  expect(client.book('SOL-USD')).toMatchObject({ q: 1, synced: false, bids: [[20, 1]] });
  src.snapshot([[19, 3]], [[21, 2]]);
  await pub.flush();
  await until(() => client.book('SOL-USD')?.synced, 'the fresh book');
  expect(client.book('SOL-USD')).toMatchObject({ q: 1, bids: [[19, 3]], asks: [[21, 2]] });
  expect(client.bookStatus('SOL-USD')).toBe('live');
  expect(seen).toContain('reconnecting');
});
