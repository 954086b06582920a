/**
 * Unit tests of the client's order books over a scripted in-memory socket
 * (no server): the sub it sends, book then bupd applied and verified,
 * book status apart from quote status, a checksum or sequence mismatch
 * answered by a resubscription and a resync, giving up on a book that stays
 * wrong, and books renewed after a reconnect.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { HELLO, ScriptedSocket, type Msg } from '../../test/helpers/scripted-socket.js';
import { ProtocolError, TickgateClient, type BookMismatch, type BookResync, type BookUpdate, type TickgateError, type WebSocketConstructor } from './index.js';
import { bookChecksum } from './order-book.js';

type Level = [number, number];

const WS = ScriptedSocket as unknown as WebSocketConstructor;

/** A `book` message with its correct checksum at `depth`. */
function book(s: string, q: number, bids: Level[], asks: Level[], depth = 10): Msg {
  return { t: 'book', s, q, bids, asks, cs: bookChecksum(asks, bids, depth) };
}

/** A `bupd` whose checksum is that of `window` (the window after it) at `depth`. */
function bupd(s: string, q: number, change: { bids?: Level[]; asks?: Level[] }, window: { bids: Level[]; asks: Level[] }, depth = 10): Msg {
  return { t: 'bupd', s, q, ...change, cs: bookChecksum(window.asks, window.bids, depth) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connected(client: TickgateClient): Promise<ScriptedSocket> {
  const p = client.connect();
  const sock = ScriptedSocket.last!;
  sock.frame(HELLO);
  await p;
  return sock;
}

/** Records every book event of a client. */
function record(client: TickgateClient) {
  const updates: Array<{ q: number; snapshot: boolean; bids: Level[]; asks: Level[] }> = [];
  const mismatches: BookMismatch[] = [];
  const resyncs: BookResync[] = [];
  const statuses: string[] = [];
  const quoteStatuses: string[] = [];
  const errors: TickgateError[] = [];
  client.onBook((u: BookUpdate) => updates.push({ q: u.q, snapshot: u.snapshot, bids: u.book.bids.map((l) => [...l] as Level), asks: u.book.asks.map((l) => [...l] as Level) }));
  client.onBookMismatch((m) => mismatches.push(m));
  client.onBookResync((r) => resyncs.push(r));
  client.onBookStatus((s, st) => statuses.push(`${s} ${st}`));
  client.onStatus((s, st) => quoteStatuses.push(`${s} ${st}`));
  client.onError((e) => errors.push(e));
  return { updates, mismatches, resyncs, statuses, quoteStatuses, errors };
}

beforeEach(() => {
  ScriptedSocket.all = [];
});

describe('subscribeBook', () => {
  it('sends a book sub with depth and throttle, and resolves with the ack', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const sock = await connected(client);
    const p = client.subscribeBook('BTC/USDT', { depth: 25, throttleMs: 100 });
    const req = sock.ackLastSub();
    expect(req).toEqual({ op: 'sub', id: req['id'], channel: 'book', symbols: ['BTC/USDT'], depth: 25, throttleMs: 100 });
    expect(await p).toEqual({ ok: ['BTC/USDT'], err: [], depth: 25, throttleMs: 100 });
    const d = client.subscribeBook('ETH/USDT');
    expect(sock.ackLastSub()).toMatchObject({ depth: 10 });
    expect((await d).depth).toBe(10);
    expect(client.bookSubscriptions()).toEqual(['BTC/USDT', 'ETH/USDT']);
    await client.close();
  });

  it('refuses a depth outside the protocol set and a bad throttle before sending anything', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const sock = await connected(client);
    await expect(client.subscribeBook('X', { depth: 7 as 10 })).rejects.toThrow(/depth must be one of 1, 5, 10, 25, 50, 100, 500, 1000/);
    await expect(client.subscribeBook('X', { throttleMs: -1 })).rejects.toThrow(TypeError);
    expect(await client.subscribeBook('')).toMatchObject({ ok: [], err: [{ code: 'BAD_SYMBOL' }] });
    expect(sock.requests('sub')).toEqual([]);
    await client.close();
  });

  it('forgets a book the server refuses', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const sock = await connected(client);
    const p = client.subscribeBook('SECRET');
    const req = sock.requests('sub').at(-1)!;
    sock.frame({ t: 'ack', id: req['id'], op: 'sub', ok: [], err: [{ s: 'SECRET', code: 'NOT_ENTITLED', msg: 'no' }], channel: 'book', depth: 10 });
    expect((await p).err).toEqual([{ symbol: 'SECRET', code: 'NOT_ENTITLED', msg: 'no' }]);
    expect(client.bookSubscriptions()).toEqual([]);
    await client.close();
  });
});

describe('keeping a book', () => {
  it('applies a book then bupds (set, remove, cut to depth), verifies each, and reports live', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const p = client.subscribeBook('B', { depth: 5 });
    sock.ackLastSub();
    await p;
    expect(client.book('B')).toBeUndefined();
    const bids: Level[] = [
      [99, 1],
      [98, 2],
      [97, 3],
      [96, 4],
      [95, 5],
    ];
    const asks: Level[] = [
      [101, 1],
      [102, 2],
    ];
    sock.frame(book('B', 7, bids, asks, 5));
    expect(client.book('B')).toMatchObject({ symbol: 'B', depth: 5, q: 7, bids, asks, synced: true });
    expect(client.bookStatus('B')).toBe('live');
    // A better bid pushes 95 out of the window (not named: the cut removes it); an ask goes.
    const w1 = { bids: [[99.5, 1] as Level, ...bids.slice(0, 4)], asks: [[102, 2] as Level] };
    sock.frame(bupd('B', 8, { bids: [[99.5, 1]], asks: [[101, 0]] }, w1, 5));
    // A size changes.
    const w2 = { bids: [[99.5, 1] as Level, [99, 7] as Level, ...bids.slice(1, 4)], asks: w1.asks };
    sock.frame(bupd('B', 9, { bids: [[99, 7]] }, w2, 5));
    expect(ev.updates).toEqual([
      { q: 7, snapshot: true, bids, asks },
      { q: 8, snapshot: false, ...w1 },
      { q: 9, snapshot: false, ...w2 },
    ]);
    expect(ev.mismatches).toEqual([]);
    expect(ev.statuses).toEqual(['B live']);
    await client.close();
  });

  it('keeps book status apart from quote status (stat with ch: "book")', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const q = client.subscribe(['B']);
    sock.ackLastSub();
    await q;
    const b = client.subscribeBook('B');
    sock.ackLastSub();
    await b;
    sock.frame({ t: 'stat', s: 'B', st: 'unknown', ch: 'book' });
    expect(client.bookStatus('B')).toBe('unknown');
    expect(client.symbolStatus('B')).toBeUndefined();
    sock.frame(book('B', 1, [[1, 1]], [[2, 1]]), { t: 'stat', s: 'B', st: 'stale', ch: 'book' });
    expect(client.bookStatus('B')).toBe('stale');
    sock.frame({ t: 'stat', s: 'B', st: 'stale' });
    expect(client.symbolStatus('B')).toBe('stale');
    sock.frame({ t: 'stat', s: 'B', st: 'live', ch: 'book' });
    // Another channel's stat touches neither.
    sock.frame({ t: 'stat', s: 'B', st: 'live', ch: 'trade' });
    expect(ev.statuses).toEqual(['B unknown', 'B live', 'B stale', 'B live']);
    expect(ev.quoteStatuses).toEqual(['B stale']);
    expect(client.symbolStatus('B')).toBe('stale');
    await client.close();
  });

  it('ignores messages for a book after unsubscribeBook, which sends unsub for the book channel', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const b = client.subscribeBook('B');
    sock.ackLastSub();
    await b;
    const u = client.unsubscribeBook('B');
    const req = sock.requests('unsub').at(-1)!;
    expect(req).toMatchObject({ op: 'unsub', channel: 'book', symbols: ['B'] });
    sock.frame(book('B', 1, [[1, 1]], []), { t: 'ack', id: req['id'], op: 'unsub', ok: ['B'], err: [], channel: 'book' });
    expect((await u).ok).toEqual(['B']);
    expect(ev.updates).toEqual([]);
    expect(client.book('B')).toBeUndefined();
    await client.close();
  });
});

describe('mismatch and resync', () => {
  async function withBook() {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const p = client.subscribeBook('B', { depth: 10, throttleMs: 200 });
    sock.ackLastSub();
    await p;
    sock.frame(book('B', 1, [[10, 1]], [[11, 1]]));
    return { client, ev, sock };
  }

  it('on a checksum mismatch: reports it, resubscribes, ignores changes until the fresh book, then reports the resync', async () => {
    const { client, ev, sock } = await withBook();
    const subs = sock.requests('sub').length;
    sock.frame({ t: 'bupd', s: 'B', q: 2, bids: [[10, 2]], cs: 12345 });
    const actual = bookChecksum([[11, 1]], [[10, 2]], 10);
    expect(ev.mismatches).toEqual([{ symbol: 'B', q: 2, attempt: 1, resubscribing: true, reason: 'checksum', expected: 12345, actual }]);
    // The same subscription again: same depth and throttle.
    expect(sock.requests('sub').slice(subs)).toEqual([expect.objectContaining({ channel: 'book', symbols: ['B'], depth: 10, throttleMs: 200 })]);
    expect(client.book('B')!.synced).toBe(false);
    // Changes in flight before the fresh book are not applied to a wrong window.
    sock.frame({ t: 'bupd', s: 'B', q: 3, bids: [[10, 3]], cs: bookChecksum([[11, 1]], [[10, 3]], 10) });
    sock.ackLastSub();
    sock.frame(book('B', 3, [[10, 3]], [[11, 1]]));
    expect(ev.resyncs).toEqual([{ symbol: 'B', q: 3, attempts: 1 }]);
    expect(ev.updates.map((u) => [u.q, u.snapshot])).toEqual([
      [1, true],
      [3, true],
    ]);
    expect(client.book('B')).toMatchObject({ q: 3, bids: [[10, 3]], synced: true });
    // Verified again: the next change applies.
    sock.frame(bupd('B', 4, { asks: [[11, 0]] }, { bids: [[10, 3]], asks: [] }));
    expect(ev.updates.at(-1)).toEqual({ q: 4, snapshot: false, bids: [[10, 3]], asks: [] });
    expect(ev.errors).toEqual([]);
    await client.close();
  });

  it('treats a bupd whose q does not follow as a mismatch', async () => {
    const { client, ev, sock } = await withBook();
    sock.frame(bupd('B', 3, { bids: [[10, 2]] }, { bids: [[10, 2]], asks: [[11, 1]] }));
    expect(ev.mismatches).toEqual([{ symbol: 'B', q: 3, attempt: 1, resubscribing: true, reason: 'sequence', expected: 2 }]);
    expect(ev.updates).toHaveLength(1);
    await client.close();
  });

  it('treats a malformed book message as a mismatch', async () => {
    const { client, ev, sock } = await withBook();
    sock.frame({ t: 'bupd', s: 'B', q: 2, bids: [[10, 'x']], cs: 1 });
    expect(ev.mismatches).toMatchObject([{ reason: 'malformed', attempt: 1, resubscribing: true }]);
    await client.close();
  });

  it('gives up after 3 fresh books that fail too, with an error, and recovers if a later book verifies', async () => {
    const { client, ev, sock } = await withBook();
    const subs = sock.requests('sub').length;
    sock.frame({ t: 'bupd', s: 'B', q: 2, bids: [[10, 2]], cs: 1 });
    for (let i = 0; i < 3; i++) sock.frame({ ...book('B', 2, [[10, 2]], [[11, 1]]), cs: 1 });
    expect(ev.mismatches.map((m) => [m.attempt, m.resubscribing])).toEqual([
      [1, true],
      [2, true],
      [3, true],
      [4, false],
    ]);
    expect(sock.requests('sub').length - subs).toBe(3);
    expect(ev.errors).toHaveLength(1);
    expect(ev.errors[0]).toBeInstanceOf(ProtocolError);
    expect(ev.errors[0]!.message).toBe('book B: still wrong after 3 fresh books (checksum at q 2); not resubscribing');
    // A book that verifies (the gateway sends one after a feed snapshot) makes it right again.
    sock.frame(book('B', 5, [[10, 5]], [[11, 1]]));
    expect(ev.resyncs).toEqual([{ symbol: 'B', q: 5, attempts: 4 }]);
    expect(client.book('B')!.synced).toBe(true);
    await client.close();
  });
});

it('renews book subscriptions after a reconnect; the last book stays readable until the fresh one', async () => {
  const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: { initialMs: 1, maxMs: 1 } });
  const ev = record(client);
  const first = await connected(client);
  const a = client.subscribeBook('A', { depth: 5 });
  first.ackLastSub();
  await a;
  const b = client.subscribeBook('B', { depth: 25, throttleMs: 100 });
  first.ackLastSub();
  await b;
  first.frame(book('A', 40, [[1, 1]], [[2, 1]], 5));
  first.drop();
  for (let i = 0; i < 100 && ScriptedSocket.all.length < 2; i++) await sleep(2);
  const second = ScriptedSocket.last!;
  expect(second).not.toBe(first);
  second.frame(HELLO);
  const subs = second.requests('sub').map((m) => ({ channel: m['channel'], symbols: m['symbols'], depth: m['depth'], throttleMs: m['throttleMs'] }));
  expect(subs).toEqual([
    { channel: 'book', symbols: ['A'], depth: 5, throttleMs: undefined },
    { channel: 'book', symbols: ['B'], depth: 25, throttleMs: 100 },
  ]);
  expect(client.book('A')).toMatchObject({ q: 40, synced: false });
  expect(client.bookStatus('A')).toBeUndefined();
  // q restarts with the connection: a bupd before the fresh book is not applied.
  second.frame(bupd('A', 41, { bids: [[1, 9]] }, { bids: [[1, 9]], asks: [[2, 1]] }, 5));
  second.frame(book('A', 1, [[1, 2]], [[2, 1]], 5));
  expect(client.book('A')).toMatchObject({ q: 1, bids: [[1, 2]], synced: true });
  expect(ev.updates.map((u) => u.q)).toEqual([40, 1]);
  expect(ev.mismatches).toEqual([]);
  expect(ev.statuses).toEqual(['A live', 'A live']);
  await client.close();
});

it('books subscribed before connect are sent at the first open, one sub per depth and throttle; each call gets its own ack', async () => {
  const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
  const a = client.subscribeBook('A', { depth: 1 });
  const b = client.subscribeBook('B', { depth: 1 });
  const c = client.connect();
  const sock = ScriptedSocket.last!;
  sock.frame(HELLO);
  await c;
  expect(sock.requests('sub')).toEqual([expect.objectContaining({ channel: 'book', symbols: ['A', 'B'], depth: 1 })]);
  sock.ackLastSub();
  expect(await a).toEqual({ ok: ['A'], err: [], depth: 1 });
  expect(await b).toEqual({ ok: ['B'], err: [], depth: 1 });
  await client.close();
});
