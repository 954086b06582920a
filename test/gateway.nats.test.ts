/**
 * Integration: a real nats-server, the gateway in this process, real
 * WebSocket clients decoding with a standard MessagePack library.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { encode as mpEncode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { StateView, TestClient, type Msg } from './helpers/ws-client.js';

let nats: NatsServer;
let gw: TestGateway;
let pub: NatsConnection;
const clients: TestClient[] = [];

async function client(): Promise<TestClient> {
  const c = await TestClient.connect(gw.url);
  clients.push(c);
  await c.next((m) => m.t === 'hello', 'hello');
  return c;
}

/** Publishes and waits until the server has them (flush round-trip). */
async function publish(items: Array<[subject: string, payload: object | Uint8Array, codec: 'msgpack' | 'json']>): Promise<void> {
  for (const [subject, payload, codec] of items) {
    const data = payload instanceof Uint8Array ? payload : codec === 'json' ? JSON.stringify(payload) : mpEncode(payload);
    pub.publish(subject, data);
  }
  await pub.flush();
}

const forSymbol = (s: string) => (m: Msg) => m['s'] === s;

beforeAll(async () => {
  nats = await startNatsServer();
  gw = await startGateway({
    nats: { servers: [nats.url] },
    feeds: [
      { name: 'sim', subject: 'md.sim.>', codec: 'msgpack', symbolField: 's' },
      { name: 'fx', subject: 'fx.>', codec: 'json', symbolField: 'pair', fields: { b: 'bid', a: 'ask', px: 'last' } },
      { name: 'eq', subject: 'eq.*.quote', codec: 'json', symbolToken: 1 },
    ],
    ws: { heartbeatMs: 300 },
    limits: { maxSymbolsPerClient: 600, maxMessagesPerSec: 20, maxViolations: 5 },
  });
  pub = await connect({ servers: nats.url });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await pub?.close();
  await gw?.stop();
  await nats?.stop();
});

describe('gateway on a real nats-server', () => {
  it('greets with hello first, announcing version, heartbeat and limits', async () => {
    const c = await client();
    const hello = c.frames[0]![0]!;
    expect(hello.t).toBe('hello');
    expect(hello['v']).toBe(1);
    expect(typeof hello['sid']).toBe('string');
    expect(hello['hbMs']).toBe(300);
    expect(hello['limits']).toEqual({ maxSymbols: 600, maxMessageBytes: 65536, maxMessagesPerSec: 20 });
    expect(await fetch(`${gw.http}/readyz`).then((r) => r.status)).toBe(200);
  });

  it('serves both codecs, renames fields, and merges snap + upds to the published state', async () => {
    const c = await client();
    c.send({ op: 'sub', id: 1, symbols: ['AAPL', 'EUR/USD', 'MSFT'] });
    const ack = await c.next((m) => m.t === 'ack', 'ack');
    expect(ack).toMatchObject({ id: 1, op: 'sub', ok: ['AAPL', 'EUR/USD', 'MSFT'], err: [] });
    // Nothing is known yet: each symbol reports unknown, after the ack.
    await c.until((x) => x.messages.filter((m) => m.t === 'stat' && m['st'] === 'unknown').length === 3, '3 stat unknown');
    const ackAt = c.messages.indexOf(ack);
    expect(c.messages.findIndex((m) => m.t === 'stat')).toBeGreaterThan(ackAt);

    await publish([
      ['md.sim.AAPL', { s: 'AAPL', bid: 189.5, ask: 189.52, bidSize: 300, askSize: 200, ts: 1764100000000.25, seq: 1 }, 'msgpack'],
      ['fx.spot', { pair: 'EUR/USD', b: 1.08421, a: 1.08424, px: 1.08422, ts: 1764100000001 }, 'json'],
      ['md.sim.AAPL', { s: 'AAPL', bid: 189.51, last: 189.51, lastSize: 100, volume: 100, ts: 1764100000002, seq: 2 }, 'msgpack'],
      ['fx.spot', { pair: 'EUR/USD', a: '1.08425', ts: 1764100000003 }, 'json'],
      ['md.sim.AAPL', { s: 'AAPL', ask: 189.53, ts: 1764100000004, seq: 3 }, 'msgpack'],
    ]);
    const expected = {
      AAPL: { bid: 189.51, ask: 189.53, bidSize: 300, askSize: 200, last: 189.51, lastSize: 100, volume: 100, ts: 1764100000004, seq: 3 },
      'EUR/USD': { bid: 1.08421, ask: 1.08425, last: 1.08422, ts: 1764100000003 },
    };
    const view = await c.until((x) => {
      const v = new StateView().apply(x.messages);
      return JSON.stringify(v.state.get('AAPL')?.d) === JSON.stringify(sortLike(expected.AAPL, v.state.get('AAPL')?.d)) &&
        v.state.get('EUR/USD')?.q === 2
        ? v
        : undefined;
    }, 'merged state');
    expect(view.violations).toEqual([]);
    expect(view.state.get('AAPL')).toEqual({ q: 3, d: expected.AAPL });
    expect(view.state.get('EUR/USD')).toEqual({ q: 2, d: expected['EUR/USD'] });
    // The first data message per symbol is a snap; q starts at 1.
    const firstAapl = c.messages.find((m) => m['s'] === 'AAPL' && (m.t === 'snap' || m.t === 'upd'))!;
    expect(firstAapl).toMatchObject({ t: 'snap', q: 1 });
    // Only changed fields travel in an upd.
    const upd = c.messages.find((m) => m.t === 'upd' && m['s'] === 'AAPL' && m['q'] === 3)!;
    expect(upd['d']).toEqual({ ask: 189.53, ts: 1764100000004, seq: 3 });

    // A late subscriber gets the full state in one snap.
    const late = await client();
    late.send({ op: 'sub', symbols: ['AAPL'] }, 'json');
    const snap = await late.next((m) => m.t === 'snap', 'late snap');
    expect(snap).toEqual({ t: 'snap', s: 'AAPL', q: 3, d: expected.AAPL });
  });

  it('takes the symbol from a subject token when configured', async () => {
    const c = await client();
    c.send({ op: 'sub', symbols: ['IBM'] });
    await c.next((m) => m.t === 'stat' && m['s'] === 'IBM', 'stat IBM');
    await publish([['eq.IBM.quote', { bid: 221.1, ask: 221.2 }, 'json']]);
    const snap = await c.next((m) => m.t === 'snap' && m['s'] === 'IBM', 'IBM snap');
    expect(snap['d']).toEqual({ bid: 221.1, ask: 221.2 });
  });

  it('counts bad ticks and unknown fields per feed and reason, and keeps ingesting', async () => {
    const c = await client();
    c.send({ op: 'sub', symbols: ['BADT'] });
    await c.next((m) => m.t === 'stat', 'stat');
    await publish([
      ['md.sim.X', new Uint8Array([0xc1, 0xff, 0x00]), 'msgpack'], // not MessagePack
      ['md.sim.X', mpEncode([1, 2, 3]), 'msgpack'], // not a map
      ['md.sim.X', { bid: 1 }, 'msgpack'], // no symbol
      ['md.sim.X', { s: 42, bid: 1 }, 'msgpack'], // symbol not a string
      ['md.sim.X', { s: 'BADT', foo: 1 }, 'msgpack'], // nothing canonical
      ['fx.spot', new TextEncoder().encode('{"pair": "EUR/USD", '), 'json'], // truncated JSON
      ['md.sim.X', { s: 'BADT', bid: 10, ask: 'n/a', venue: 'X', ts: 5 }, 'msgpack'], // valid, 2 fields dropped
    ]);
    const snap = await c.next((m) => m.t === 'snap' && m['s'] === 'BADT', 'BADT snap');
    expect(snap['d']).toEqual({ bid: 10, ts: 5 });
    expect(await gw.metric('tickgate_ingest_invalid_ticks_total', { feed: 'sim', reason: 'decode' })).toBe(1);
    expect(await gw.metric('tickgate_ingest_invalid_ticks_total', { feed: 'sim', reason: 'not_object' })).toBe(1);
    expect(await gw.metric('tickgate_ingest_invalid_ticks_total', { feed: 'sim', reason: 'no_symbol' })).toBe(1);
    expect(await gw.metric('tickgate_ingest_invalid_ticks_total', { feed: 'sim', reason: 'bad_symbol' })).toBe(1);
    expect(await gw.metric('tickgate_ingest_invalid_ticks_total', { feed: 'sim', reason: 'no_fields' })).toBe(1);
    expect(await gw.metric('tickgate_ingest_invalid_ticks_total', { feed: 'fx', reason: 'decode' })).toBe(1);
    expect(await gw.metric('tickgate_ingest_dropped_fields_total', { feed: 'sim', reason: 'bad_value' })).toBeGreaterThanOrEqual(1);
    expect(await gw.metric('tickgate_ingest_dropped_fields_total', { feed: 'sim', reason: 'unknown' })).toBeGreaterThanOrEqual(2);
  });

  it('batches the updates of one event-loop turn into one frame', async () => {
    const c = await client();
    const symbols = ['B1', 'B2', 'B3', 'B4', 'B5'];
    c.send({ op: 'sub', symbols });
    await c.until((x) => x.messages.filter((m) => m.t === 'stat').length === 5, 'stats');
    const items: Array<[string, object, 'msgpack']> = [];
    for (let i = 1; i <= 40; i++) for (const s of symbols) items.push([`md.sim.${s}`, { s, bid: 100 + i, ask: 101 + i, ts: i }, 'msgpack']);
    await publish(items);
    await c.until((x) => new StateView().apply(x.messages).state.get('B5')?.d['bid'] === 140, 'all updates');
    const dataFrames = c.frames.filter((f) => f.some((m) => m.t === 'upd'));
    const biggest = Math.max(...dataFrames.map((f) => f.length));
    expect(biggest).toBeGreaterThan(1);
    // Fewer frames than updates: batching happened.
    const updates = c.messages.filter((m) => m.t === 'upd' || m.t === 'snap').length;
    expect(updates).toBe(200);
    expect(dataFrames.length).toBeLessThan(updates);
    const view = new StateView().apply(c.messages);
    expect(view.violations).toEqual([]);
  });

  it('stops sending a symbol after the unsub ack', async () => {
    const c = await client();
    c.send({ op: 'sub', symbols: ['U1', 'U2'] });
    await c.until((x) => x.messages.filter((m) => m.t === 'stat').length === 2, 'stats');
    await publish([
      ['md.sim.U1', { s: 'U1', bid: 1 }, 'msgpack'],
      ['md.sim.U2', { s: 'U2', bid: 1 }, 'msgpack'],
    ]);
    await c.until((x) => x.messages.filter((m) => m.t === 'snap').length === 2, 'snaps');
    c.send({ op: 'unsub', id: 'u', symbols: ['U1', 'NEVER'] });
    const ack = await c.next((m) => m.t === 'ack' && m['id'] === 'u', 'unsub ack');
    expect(ack).toMatchObject({ op: 'unsub', ok: ['U1', 'NEVER'], err: [] });
    const after = c.messages.length;
    await publish([
      ['md.sim.U1', { s: 'U1', bid: 2 }, 'msgpack'],
      ['md.sim.U2', { s: 'U2', bid: 2 }, 'msgpack'],
    ]);
    await c.next((m) => m.t === 'upd' && m['s'] === 'U2', 'U2 upd', 5000, after);
    expect(c.messages.slice(after).filter(forSymbol('U1'))).toEqual([]);
    expect(await gw.metric('tickgate_subscriptions')).toBeGreaterThan(0);
  });

  it('honours snapshot:false, and resends a snap on a repeated sub', async () => {
    await publish([['md.sim.RS', { s: 'RS', bid: 1, ask: 2 }, 'msgpack']]);
    const c = await client();
    c.send({ op: 'sub', id: 'n', symbols: ['RS'], snapshot: false });
    await c.next((m) => m.t === 'ack' && m['id'] === 'n', 'ack');
    await publish([['md.sim.RS', { s: 'RS', bid: 1.5 }, 'msgpack']]);
    const upd = await c.next((m) => m.t === 'upd' && m['s'] === 'RS', 'upd');
    expect(upd['d']).toEqual({ bid: 1.5 });
    expect(c.messages.filter((m) => m.t === 'snap' || m.t === 'stat')).toEqual([]);
    // Subscribing again with a snapshot resynchronises: full state, current q.
    c.send({ op: 'sub', id: 'r', symbols: ['RS'] });
    const snap = await c.next((m) => m.t === 'snap' && m['s'] === 'RS', 'resync snap');
    expect(snap).toEqual({ t: 'snap', s: 'RS', q: upd['q'], d: { bid: 1.5, ask: 2 } });
  });

  it('fans one symbol out to many clients, all converging on the same state', async () => {
    const many = await Promise.all(Array.from({ length: 60 }, () => client()));
    for (const c of many) c.send({ op: 'sub', symbols: ['HOT'] });
    await Promise.all(many.map((c) => c.next((m) => m.t === 'ack', 'ack')));
    const items: Array<[string, object, 'msgpack']> = [];
    for (let i = 1; i <= 300; i++) items.push(['md.sim.HOT', { s: 'HOT', last: 50 + (i % 17) / 100, volume: i, ts: i }, 'msgpack']);
    await publish(items);
    for (const c of many) {
      const v = await c.until((x) => {
        const s = new StateView().apply(x.messages);
        return s.state.get('HOT')?.d['volume'] === 300 ? s : undefined;
      }, 'HOT converged');
      expect(v.violations).toEqual([]);
      expect(v.state.get('HOT')!.d).toEqual({ last: 50 + (300 % 17) / 100, volume: 300, ts: 300 });
    }
    await Promise.all(many.map((c) => c.close()));
  });

  it('serves one client subscribed to many symbols', async () => {
    const c = await client();
    const symbols = Array.from({ length: 500 }, (_, i) => `M${i}`);
    c.send({ op: 'sub', symbols });
    await c.next((m) => m.t === 'ack', 'ack');
    const items: Array<[string, object, 'msgpack']> = [];
    for (const round of [1, 2]) for (const s of symbols) items.push([`md.sim.${s}`, { s, bid: round, ask: round + 1, ts: round }, 'msgpack']);
    await publish(items);
    const v = await c.until((x) => {
      const s = new StateView().apply(x.messages);
      return symbols.every((sym) => s.state.get(sym)?.d['bid'] === 2) ? s : undefined;
    }, '500 symbols at round 2', 10_000);
    expect(v.violations).toEqual([]);
    expect(v.state.size).toBe(500);
  });

  it('answers bad client input with err and keeps the connection', async () => {
    const c = await client();
    c.sendRaw(Buffer.from([0xc1]), true);
    c.sendRaw('{not json', false);
    c.send({ op: 'nope', id: 7 }, 'json');
    c.send({ nop: 1 });
    c.send({ op: 'sub', id: 's', symbols: 'AAPL' });
    c.send({ op: 'sub', id: 'b', symbols: ['', 'x'.repeat(65), 5, 'OK1'] });
    await c.until((x) => x.messages.filter((m) => m.t === 'err').length >= 5 && x.messages.some((m) => m.t === 'ack'), 'errs and ack');
    const errs = c.messages.filter((m) => m.t === 'err');
    expect(errs.map((e) => e['code'])).toEqual(['BAD_REQUEST', 'BAD_REQUEST', 'UNKNOWN_OP', 'BAD_REQUEST', 'BAD_REQUEST']);
    expect(errs[2]!['id']).toBe(7);
    expect(errs[4]!['id']).toBe('s');
    const ack = c.messages.find((m) => m.t === 'ack')!;
    expect(ack['ok']).toEqual(['OK1']);
    expect((ack['err'] as Array<{ code: string }>).map((e) => e.code)).toEqual(['BAD_SYMBOL', 'BAD_SYMBOL', 'BAD_SYMBOL']);
    // Still open and answering.
    c.send({ op: 'ping', id: 'p', ts: 123 });
    const pong = await c.next((m) => m.t === 'pong', 'pong');
    expect(pong).toMatchObject({ id: 'p', ts: 123 });
    expect(typeof pong['serverTs']).toBe('number');
    expect(c.closed).toBeNull();
    expect(await gw.metric('tickgate_client_messages_rejected_total', { code: 'UNKNOWN_OP' })).toBeGreaterThanOrEqual(1);
  });

  it('enforces the symbol limit in the ack', async () => {
    const c = await client();
    c.send({ op: 'sub', symbols: Array.from({ length: 610 }, (_, i) => `L${i}`) });
    const ack = await c.next((m) => m.t === 'ack', 'ack');
    expect((ack['ok'] as string[]).length).toBe(600);
    const err = ack['err'] as Array<{ s: string; code: string }>;
    expect(err.length).toBe(10);
    expect(err.every((e) => e.code === 'LIMIT_EXCEEDED')).toBe(true);
    expect(c.closed).toBeNull();
  });

  it('rate-limits client messages and closes a persistent abuser with bye', async () => {
    const bystander = await client();
    bystander.send({ op: 'sub', symbols: ['CALM'] });
    await bystander.next((m) => m.t === 'ack', 'ack');
    const c = await client();
    for (let i = 0; i < 60; i++) c.send({ op: 'ping', id: i });
    const bye = await c.next((m) => m.t === 'bye', 'bye');
    expect(bye).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(typeof bye['retryMs']).toBe('number');
    await c.until((x) => x.closed, 'close');
    expect(c.closed!.code).toBe(1008);
    expect(c.messages.some((m) => m.t === 'err' && m['code'] === 'LIMIT_EXCEEDED')).toBe(true);
    // Nobody else noticed.
    await publish([['md.sim.CALM', { s: 'CALM', bid: 1 }, 'msgpack']]);
    await bystander.next((m) => m.t === 'snap' && m['s'] === 'CALM', 'bystander snap');
    expect(bystander.closed).toBeNull();
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'LIMIT_EXCEEDED' })).toBe(1);
  });

  it('lists known symbols sorted, by prefix, bounded', async () => {
    const c = await client();
    c.send({ op: 'symbols', id: 'l', prefix: 'M1', limit: 5 });
    const r = await c.next((m) => m.t === 'symbols', 'symbols');
    expect(r).toEqual({ t: 'symbols', id: 'l', symbols: ['M1', 'M10', 'M100', 'M101', 'M102'], more: true });
    c.send({ op: 'symbols', id: 'all' });
    const all = await c.next((m) => m.t === 'symbols' && m['id'] === 'all', 'all symbols');
    const list = all['symbols'] as string[];
    expect(list).toEqual([...list].sort());
    expect(list).toContain('EUR/USD');
  });

  it('sends hb to an idle client', async () => {
    const c = await client();
    const hb = await c.next((m) => m.t === 'hb', 'hb', 3000);
    expect(typeof hb['ts']).toBe('number');
  });
});

/** Orders `want`'s keys like `have`'s so JSON comparison ignores key order. */
function sortLike(want: Record<string, unknown>, have: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!have) return undefined;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(have)) out[k] = want[k];
  for (const k of Object.keys(want)) if (!(k in out)) out[k] = want[k];
  return out;
}
