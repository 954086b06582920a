/**
 * Unit tests of the client's trade prints over a scripted in-memory socket
 * (no server): the sub it sends, trades placed by the ack's epoch (also in
 * the ack's own frame), duplicates dropped, resuming with `since` after a
 * reconnect (to the same URL or the next one), recovered or not, gaps, trade
 * status apart from the others, and a fresh start while nothing was
 * delivered yet.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { HELLO, ScriptedSocket, type Msg } from '../../test/helpers/scripted-socket.js';
import { TickgateClient, type Trade, type TradeGap, type TradeResume, type TickgateError, type WebSocketConstructor } from './index.js';

const WS = ScriptedSocket as unknown as WebSocketConstructor;
const E = 'TRADES.abc';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connected(client: TickgateClient): Promise<ScriptedSocket> {
  const p = client.connect();
  const sock = ScriptedSocket.last!;
  sock.frame(HELLO);
  await p;
  return sock;
}

/** The next socket the client opens after a drop, greeted with hello. */
async function reopened(previous: ScriptedSocket): Promise<ScriptedSocket> {
  for (let i = 0; i < 200 && ScriptedSocket.last === previous; i++) await sleep(2);
  const sock = ScriptedSocket.last!;
  expect(sock).not.toBe(previous);
  sock.frame(HELLO);
  return sock;
}

const trade = (s: string, q: number, extra: Msg = {}): Msg => ({ t: 'trade', s, q, px: 100 + q / 100, sz: q % 7, ...extra });

/** A trade ack for the last sub: each symbol at `pos`, and `rec` when given. */
function tradeAck(sock: ScriptedSocket, pos: Record<string, { e: string; q: number }>, rec?: Record<string, boolean>): Msg {
  const req = sock.requests('sub').at(-1)!;
  const ack: Msg = { t: 'ack', id: req['id'], op: 'sub', ok: req['symbols'], err: [], channel: 'trade', pos };
  if (req['throttleMs'] !== undefined) ack['throttleMs'] = req['throttleMs'];
  if (rec !== undefined) ack['rec'] = rec;
  return ack;
}

/** Records every trade event of a client. */
function record(client: TickgateClient) {
  const trades: Trade[] = [];
  const gaps: TradeGap[] = [];
  const resumes: TradeResume[] = [];
  const statuses: string[] = [];
  const others: string[] = [];
  const errors: TickgateError[] = [];
  client.onTrade((t) => trades.push(t));
  client.onTradeGap((g) => gaps.push(g));
  client.onTradeResume((r) => resumes.push(r));
  client.onTradeStatus((s, st) => statuses.push(`${s} ${st}`));
  client.onStatus((s, st) => others.push(`quote ${s} ${st}`));
  client.onBookStatus((s, st) => others.push(`book ${s} ${st}`));
  client.onError((e) => errors.push(e));
  return { trades, gaps, resumes, statuses, others, errors, qs: () => trades.map((t) => t.q) };
}

beforeEach(() => {
  ScriptedSocket.all = [];
});

describe('subscribeTrades', () => {
  it('sends a trade sub with last and throttle; resolves with the position; delivers typed trades with their epoch', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const p = client.subscribeTrades('AAPL', { last: 3, throttleMs: 100 });
    const req = sock.requests('sub').at(-1)!;
    expect(req).toEqual({ op: 'sub', id: req['id'], channel: 'trade', symbols: ['AAPL'], last: 3, throttleMs: 100 });
    // The ack and the recent trades behind it in one frame: the ack places them.
    sock.frame(tradeAck(sock, { AAPL: { e: E, q: 5000 } }), trade('AAPL', 3000, { side: 'b', id: 'T-1', ts: 1764100000000 }), trade('AAPL', 4000, { side: 's' }), trade('AAPL', 5000, { side: 'x', id: 7 }));
    expect(await p).toEqual({ ok: ['AAPL'], err: [], throttleMs: 100, position: { e: E, q: 5000 } });
    expect(ev.trades).toEqual([
      { symbol: 'AAPL', e: E, q: 3000, px: 130, sz: 3000 % 7, side: 'b', id: 'T-1', ts: 1764100000000 },
      { symbol: 'AAPL', e: E, q: 4000, px: 140, sz: 4000 % 7, side: 's' },
      // An unknown side is left out, not passed on.
      { symbol: 'AAPL', e: E, q: 5000, px: 150, sz: 5000 % 7, id: 7 },
    ]);
    expect(client.tradePosition('AAPL')).toEqual({ e: E, q: 5000 });
    expect(client.tradeSubscriptions()).toEqual(['AAPL']);
    expect(ev.resumes).toEqual([]);
    await client.close();
  });

  it('drops duplicates (q at or below the last delivered) and trades of symbols not subscribed', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const p = client.subscribeTrades('X');
    sock.frame(tradeAck(sock, { X: { e: 'g1', q: 10 } }));
    await p;
    // A fresh start without `last`: the acked position is where the tape starts.
    expect(client.tradePosition('X')).toEqual({ e: 'g1', q: 10 });
    sock.frame(trade('X', 9), trade('X', 10), trade('X', 11), trade('X', 11), trade('X', 13), trade('X', 12), trade('Y', 14), trade('X', 14));
    expect(ev.qs()).toEqual([11, 13, 14]);
    expect(ev.trades.every((t) => t.e === 'g1')).toBe(true);
    await client.close();
  });

  it('ignores trades before the ack: they cannot be placed in an epoch', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const p = client.subscribeTrades('X');
    sock.frame(trade('X', 11));
    sock.frame(tradeAck(sock, { X: { e: 'g1', q: 11 } }), trade('X', 12));
    await p;
    expect(ev.qs()).toEqual([12]);
    await client.close();
  });

  it('refuses bad options before sending anything, and forgets a symbol the server refuses', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const sock = await connected(client);
    await expect(client.subscribeTrades('X', { last: -1 })).rejects.toThrow(/last must be a non-negative integer/);
    await expect(client.subscribeTrades('X', { throttleMs: 1.5 })).rejects.toThrow(TypeError);
    await expect(client.subscribeTrades('X', { since: { e: 'g', q: -1 } })).rejects.toThrow(/since must be a position/);
    expect(await client.subscribeTrades('')).toMatchObject({ ok: [], err: [{ code: 'BAD_SYMBOL' }] });
    expect(sock.requests('sub')).toEqual([]);
    const p = client.subscribeTrades('SECRET');
    const req = sock.requests('sub').at(-1)!;
    sock.frame({ t: 'ack', id: req['id'], op: 'sub', ok: [], err: [{ s: 'SECRET', code: 'NOT_ENTITLED', msg: 'no' }], channel: 'trade', pos: {} });
    expect((await p).err).toEqual([{ symbol: 'SECRET', code: 'NOT_ENTITLED', msg: 'no' }]);
    expect(client.tradeSubscriptions()).toEqual([]);
    await client.close();
  });

  it('unsubscribes on the trade channel; later trades are ignored and the position forgotten', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const p = client.subscribeTrades('X');
    sock.frame(tradeAck(sock, { X: { e: 'g1', q: 0 } }), trade('X', 1));
    await p;
    const u = client.unsubscribeTrades('X');
    const req = sock.requests('unsub').at(-1)!;
    expect(req).toEqual({ op: 'unsub', id: req['id'], channel: 'trade', symbols: ['X'] });
    sock.frame(trade('X', 2), { t: 'ack', id: req['id'], op: 'unsub', ok: ['X'], err: [] });
    expect(await u).toEqual({ ok: ['X'], err: [] });
    expect(ev.qs()).toEqual([1]);
    expect(client.tradePosition('X')).toBeUndefined();
    await client.close();
  });

  it('keeps trade status apart from quote and book status', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const p = client.subscribeTrades('X');
    sock.frame(tradeAck(sock, { X: { e: 'g1', q: 0 } }));
    await p;
    expect(client.tradeStatus('X')).toBeUndefined();
    sock.frame({ t: 'stat', s: 'X', st: 'stale', ch: 'trade' }, { t: 'stat', s: 'X', st: 'stale', ch: 'trade' });
    expect(client.tradeStatus('X')).toBe('stale');
    sock.frame({ t: 'stat', s: 'X', st: 'live', ch: 'book' }, { t: 'stat', s: 'X', st: 'live' }, trade('X', 1));
    expect(client.tradeStatus('X')).toBe('stale');
    sock.frame({ t: 'stat', s: 'X', st: 'live', ch: 'trade' });
    expect(ev.statuses).toEqual(['X stale', 'X live']);
    expect(ev.others).toEqual([]);
    await client.close();
  });

  it('reports a gap as a typed event, cut to what lies after the position, and resumes after it', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: { initialMs: 1, maxMs: 1 } });
    const ev = record(client);
    const first = await connected(client);
    const p = client.subscribeTrades('X', { throttleMs: 1000 });
    first.frame(tradeAck(first, { X: { e: 'g1', q: 0 } }), trade('X', 1), trade('X', 2));
    await p;
    first.frame({ t: 'gap', s: 'X', from: 2, to: 40 }, trade('X', 41));
    // A gap wholly behind the position says nothing new.
    first.frame({ t: 'gap', s: 'X', from: 10, to: 20 });
    expect(ev.gaps).toEqual([{ symbol: 'X', e: 'g1', from: 2, to: 40 }]);
    expect(ev.qs()).toEqual([1, 2, 41]);
    first.frame({ t: 'gap', s: 'X', from: 30, to: 50 });
    expect(ev.gaps[1]).toEqual({ symbol: 'X', e: 'g1', from: 41, to: 50 });
    expect(client.tradePosition('X')).toEqual({ e: 'g1', q: 50 });
    first.drop();
    const second = await reopened(first);
    expect(second.requests('sub').at(-1)).toMatchObject({ channel: 'trade', symbols: ['X'], since: { X: { e: 'g1', q: 50 } }, throttleMs: 1000 });
    await client.close();
  });
});

describe('resuming after a reconnect', () => {
  it('resubscribes with since = the last delivered position; recovered: the trades in between follow, replayed duplicates dropped', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: { initialMs: 1, maxMs: 1 } });
    const ev = record(client);
    const first = await connected(client);
    const p = client.subscribeTrades('A');
    first.frame(tradeAck(first, { A: { e: E, q: 1000 } }));
    const q = client.subscribeTrades('B', { throttleMs: 50 });
    first.frame(tradeAck(first, { B: { e: E, q: 7000 } }));
    await Promise.all([p, q]);
    first.frame(trade('A', 2000), trade('A', 3001), trade('B', 8000));
    first.drop();
    const second = await reopened(first);
    const subs = second.requests('sub').map((m) => ({ channel: m['channel'], symbols: m['symbols'], since: m['since'], last: m['last'], throttleMs: m['throttleMs'] }));
    expect(subs).toEqual([
      { channel: 'trade', symbols: ['A'], since: { A: { e: E, q: 3001 } }, last: undefined, throttleMs: undefined },
      { channel: 'trade', symbols: ['B'], since: { B: { e: E, q: 8000 } }, last: undefined, throttleMs: 50 },
    ]);
    const [reqA, reqB] = second.requests('sub');
    // The other replica replays from the since it was sent; a defensive check drops anything at or below it.
    second.frame({ t: 'ack', id: reqA!['id'], op: 'sub', ok: ['A'], err: [], channel: 'trade', pos: { A: { e: E, q: 5000 } }, rec: { A: true } }, trade('A', 3001), trade('A', 4000), trade('A', 5000));
    second.frame({ t: 'ack', id: reqB!['id'], op: 'sub', ok: ['B'], err: [], channel: 'trade', throttleMs: 50, pos: { B: { e: E, q: 8000 } }, rec: { B: true } }, trade('B', 9000));
    expect(ev.trades.filter((t) => t.symbol === 'A').map((t) => t.q)).toEqual([2000, 3001, 4000, 5000]);
    expect(ev.trades.filter((t) => t.symbol === 'B').map((t) => t.q)).toEqual([8000, 9000]);
    expect(ev.resumes).toEqual([
      { symbol: 'A', since: { e: E, q: 3001 }, position: { e: E, q: 5000 }, recovered: true },
      { symbol: 'B', since: { e: E, q: 8000 }, position: { e: E, q: 8000 }, recovered: true },
    ]);
    expect(ev.gaps).toEqual([]);
    await client.close();
  });

  it('moves to the next URL of the list and resumes there', async () => {
    const client = new TickgateClient({ url: ['ws://a.test/v1/stream', 'ws://b.test/v1/stream'], WebSocket: WS, reconnect: { initialMs: 1, maxMs: 1 } });
    const ev = record(client);
    const first = await connected(client);
    expect(first.url).toBe('ws://a.test/v1/stream');
    const p = client.subscribeTrades('A');
    first.frame(tradeAck(first, { A: { e: E, q: 0 } }), trade('A', 1000), trade('A', 2000));
    await p;
    first.drop();
    const second = await reopened(first);
    expect(second.url).toBe('ws://b.test/v1/stream');
    expect(second.requests('sub').at(-1)).toMatchObject({ since: { A: { e: E, q: 2000 } } });
    second.frame(tradeAck(second, { A: { e: E, q: 3000 } }, { A: true }), trade('A', 3000));
    expect(ev.qs()).toEqual([1000, 2000, 3000]);
    await client.close();
  });

  it('not recovered: reports why (another epoch, or out of the history) and goes on from the gateway position', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: { initialMs: 1, maxMs: 1 } });
    const ev = record(client);
    const first = await connected(client);
    const p = client.subscribeTrades('A');
    first.frame(tradeAck(first, { A: { e: 'gw1', q: 0 } }), trade('A', 1), trade('A', 2));
    await p;
    first.drop();
    // A gateway restarted without a stream: another epoch, numbered from 1 again.
    const second = await reopened(first);
    second.frame(tradeAck(second, { A: { e: 'gw2', q: 1 } }, { A: false }), trade('A', 2), trade('A', 3));
    expect(ev.resumes).toEqual([{ symbol: 'A', since: { e: 'gw1', q: 2 }, position: { e: 'gw2', q: 1 }, recovered: false, reason: 'epoch' }]);
    // q 2 in the new epoch is a new trade, not a duplicate of the old epoch's q 2.
    expect(ev.trades.map((t) => `${t.e}:${t.q}`)).toEqual(['gw1:1', 'gw1:2', 'gw2:2', 'gw2:3']);
    second.drop();
    // The same epoch, but the history no longer reaches back that far.
    const third = await reopened(second);
    expect(third.requests('sub').at(-1)).toMatchObject({ since: { A: { e: 'gw2', q: 3 } } });
    third.frame(tradeAck(third, { A: { e: 'gw2', q: 900 } }, { A: false }), trade('A', 901));
    expect(ev.resumes[1]).toEqual({ symbol: 'A', since: { e: 'gw2', q: 3 }, position: { e: 'gw2', q: 900 }, recovered: false, reason: 'history' });
    expect(client.tradePosition('A')).toEqual({ e: 'gw2', q: 901 });
    await client.close();
  });

  it('a fresh start with last that delivered nothing yet starts fresh again; one that did resumes from its last trade', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: { initialMs: 1, maxMs: 1 } });
    const ev = record(client);
    const first = await connected(client);
    const a = client.subscribeTrades('A', { last: 20 });
    first.frame(tradeAck(first, { A: { e: E, q: 9000 } }));
    const b = client.subscribeTrades('B', { last: 20 });
    first.frame(tradeAck(first, { B: { e: E, q: 9000 } }), trade('B', 8000));
    expect((await a).position).toEqual({ e: E, q: 9000 });
    await b;
    expect(client.tradePosition('A')).toBeUndefined();
    first.drop();
    const second = await reopened(first);
    const subs = second.requests('sub');
    // One request per throttle and last: since for B, last still applies to A.
    expect(subs).toHaveLength(1);
    expect(subs[0]).toMatchObject({ channel: 'trade', symbols: ['A', 'B'], last: 20, since: { B: { e: E, q: 8000 } } });
    expect(subs[0]!['since']).not.toHaveProperty('A');
    second.frame(tradeAck(second, { A: { e: E, q: 9500 }, B: { e: E, q: 9500 } }, { B: true }), trade('A', 9100), trade('B', 9000));
    expect(ev.resumes.map((r) => r.symbol)).toEqual(['B']);
    expect(ev.trades.map((t) => `${t.symbol}${t.q}`)).toEqual(['B8000', 'A9100', 'B9000']);
    await client.close();
  });

  it('trades subscribed before connect go out at the first open, and since given as an option resumes there', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const a = client.subscribeTrades('A', { since: { e: E, q: 4000 } });
    const b = client.subscribeTrades('B', { since: { e: 'old', q: 2 } });
    const c = client.connect();
    const sock = ScriptedSocket.last!;
    sock.frame(HELLO);
    await c;
    expect(sock.requests('sub')).toEqual([expect.objectContaining({ channel: 'trade', symbols: ['A', 'B'], since: { A: { e: E, q: 4000 }, B: { e: 'old', q: 2 } } })]);
    sock.frame(tradeAck(sock, { A: { e: E, q: 6000 }, B: { e: E, q: 6000 } }, { A: true, B: false }), trade('A', 5000), trade('B', 6000), trade('B', 6001));
    expect(await a).toEqual({ ok: ['A'], err: [], position: { e: E, q: 6000 }, recovered: true });
    expect(await b).toEqual({ ok: ['B'], err: [], position: { e: E, q: 6000 }, recovered: false });
    expect(ev.resumes.map((r) => [r.symbol, r.recovered])).toEqual([
      ['A', true],
      ['B', false],
    ]);
    // B was not recovered: it goes on after the gateway's position.
    expect(ev.trades.map((t) => `${t.symbol}${t.q}`)).toEqual(['A5000', 'B6001']);
    await client.close();
  });

  it('a second subscribeTrades on a live subscription keeps the position: the replay it causes is not delivered twice', async () => {
    const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: WS, reconnect: false });
    const ev = record(client);
    const sock = await connected(client);
    const p = client.subscribeTrades('A');
    sock.frame(tradeAck(sock, { A: { e: E, q: 0 } }), trade('A', 1000));
    await p;
    const again = client.subscribeTrades('A', { throttleMs: 200 });
    const req = sock.requests('sub').at(-1)!;
    expect(req).toMatchObject({ since: { A: { e: E, q: 1000 } }, throttleMs: 200 });
    // Trades go on before the ack; the gateway then replays after the since it was sent.
    sock.frame(trade('A', 2000));
    sock.frame(tradeAck(sock, { A: { e: E, q: 2000 } }, { A: true }), trade('A', 2000), trade('A', 3000));
    await again;
    expect(ev.qs()).toEqual([1000, 2000, 3000]);
    expect(ev.errors).toEqual([]);
    await client.close();
  });
});
