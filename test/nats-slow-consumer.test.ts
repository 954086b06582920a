/**
 * Integration: a gateway that cannot keep up with its NATS feeds (its tick
 * work slowed down here on purpose) keeps reading its socket, so the server
 * never cuts the connection; each feed's unprocessed messages are bounded
 * by nats.pendingMsgsLimit, the oldest dropped beyond it. Each episode is
 * counted and logged once, and state converges: quotes with the symbol's
 * next tick, a book (stale after the sequence gap) with its next snapshot.
 */
import { Writable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { encode as mpEncode } from '@msgpack/msgpack';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { Gateway } from '../src/gateway.js';
import { sampleValue } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { StateView, TestClient, type Msg } from './helpers/ws-client.js';

const LIMIT = 500;
const SYMBOLS = Array.from({ length: 100 }, (_, i) => `S${i}`);
let nats: NatsServer;
let pub: NatsConnection;
let gw: Gateway;
let http = '';
const logs: string[] = [];
/** While set, every quote tick and book message costs the gateway 50 µs more. */
let slow = false;

beforeAll(async () => {
  nats = await startNatsServer();
  pub = await connect({ servers: nats.url });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const config = loadConfig({
    env: {},
    overrides: {
      host: '127.0.0.1',
      port: 0,
      nats: { servers: [nats.url], pendingMsgsLimit: LIMIT },
      feeds: [
        { name: 'sim', subject: 'md.sim.>', staleAfterMs: 0 },
        { name: 'lob', kind: 'book', subject: 'book.>', symbolToken: 1, staleAfterMs: 0 },
      ],
    },
  });
  gw = new Gateway(config, pino({ level: 'info' }, sink));
  const hub = gw.hub;
  for (const k of ['onTick', 'onBook'] as const) {
    const real = hub[k].bind(hub) as (...a: unknown[]) => void;
    (hub as unknown as Record<string, (...a: unknown[]) => void>)[k] = (...a: unknown[]) => {
      if (slow) {
        const until = performance.now() + 0.05;
        while (performance.now() < until);
      }
      real(...a);
    };
  }
  await gw.start();
  http = `http://127.0.0.1:${gw.port}`;
});

afterAll(async () => {
  await pub?.close();
  await gw?.stop({ delayMs: 0, windowMs: 0, timeoutMs: 500 });
  await nats?.stop();
});

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  return sampleValue(await (await fetch(`${http}/metrics`)).text(), name, labels);
}

/** Waits until `f` holds, polling, or fails after `ms`. */
async function until(f: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const episodeLogs = (feed: string) => logs.filter((l) => l.includes('"msg":"NATS slow consumer: ') && l.includes(`"feed":"${feed}"`)).length;
const caughtUpLogs = (feed: string) => logs.filter((l) => l.includes('"msg":"NATS slow consumer caught up"') && l.includes(`"feed":"${feed}"`)).length;

let bookSeq = 0;
const level = (i: number): [number, number] => [Math.round((100 - i * 0.01) * 100) / 100, 1 + i];
const askLevel = (i: number): [number, number] => [Math.round((100.01 + i * 0.01) * 100) / 100, 1 + i];
function bookSnapshot(size: number) {
  return mpEncode({ snapshot: true, seq: ++bookSeq, bids: Array.from({ length: 5 }, (_, i) => level(i)), asks: Array.from({ length: 5 }, (_, i) => askLevel(i)).map(([p]) => [p, size]) });
}
const bookChange = (i: number) => mpEncode({ seq: ++bookSeq, bids: [[level(0)[0], 10 + (i % 50)]], asks: [] });

/** One burst, all at once: `rounds` ticks of every symbol, then 3,000 book changes. Returns the number of ticks. */
async function burst(from: number, rounds: number): Promise<number> {
  let n = 0;
  for (let r = from; r < from + rounds; r++) {
    for (const s of SYMBOLS) pub.publish(`md.sim.${s}`, mpEncode({ s, bid: r, ask: r + 1, seq: r }));
    n += SYMBOLS.length;
  }
  for (let k = 0; k < 3000; k++) pub.publish('book.BK', bookChange(k));
  await pub.flush();
  return n;
}

describe('a gateway behind its NATS feeds', () => {
  it('bounds each feed, counts and logs each episode once, and converges: quotes on the next tick, the book on its next snapshot', async () => {
    const c = await TestClient.connect(`ws://127.0.0.1:${gw.port}/v1/stream`);
    c.send({ op: 'sub', id: 1, symbols: SYMBOLS });
    c.send({ op: 'sub', id: 2, channel: 'book', symbols: ['BK'], depth: 5 });
    await c.until((x) => x.messages.filter((m) => m.t === 'ack').length === 2, 'acks');
    pub.publish('book.BK', bookSnapshot(7));
    await pub.flush();
    await c.next((m) => m.t === 'book' && m['s'] === 'BK', 'first book');

    let published = 0;
    const episodes = { sim: 0, lob: 0 };
    for (let burstNo = 0; burstNo < 2; burstNo++) {
      slow = true;
      published += await burst(1 + burstNo * 200, 200); // 20,000 ticks and 3,000 book changes, far past 500 pending each
      const over = async () =>
        (await metric('tickgate_nats_pending_messages', { feed: 'sim' })) === 0 &&
        (await metric('tickgate_nats_pending_messages', { feed: 'lob' })) === 0 &&
        (await metric('tickgate_nats_slow_consumer_total', { feed: 'lob' })) > episodes.lob &&
        caughtUpLogs('sim') === episodeLogs('sim') &&
        caughtUpLogs('lob') === episodeLogs('lob');
      await until(over, `burst ${burstNo + 1} worked off`, 20_000);
      slow = false;
      // Each feed went over its limit (again: the episode re-arms once caught up), and each episode was logged once.
      for (const feed of ['sim', 'lob'] as const) {
        const n = await metric('tickgate_nats_slow_consumer_total', { feed });
        expect(n).toBeGreaterThan(episodes[feed]);
        expect(episodeLogs(feed)).toBe(n);
        episodes[feed] = n;
      }
    }
    // Every message was either processed or dropped and counted; the connection never dropped.
    const dropped = await metric('tickgate_nats_dropped_messages_total', { feed: 'sim' });
    expect(dropped).toBeGreaterThan(0);
    expect((await metric('tickgate_ingest_ticks_total', { feed: 'sim' })) + dropped).toBe(published);
    expect(await metric('tickgate_feed_reconnects_total', { source: 'nats' })).toBe(0);
    expect(await metric('tickgate_nats_dropped_messages_total', { feed: 'lob' })).toBeGreaterThan(0);

    // The book missed changes: stale until its next snapshot.
    const stale = (m: Msg) => m.t === 'stat' && m['ch'] === 'book' && m['s'] === 'BK';
    await c.until((x) => x.messages.filter(stale).at(-1)?.['st'] === 'stale', 'book stale after the gap');
    const cut = c.messages.length;
    pub.publish('book.BK', bookSnapshot(9));
    // Each symbol's next tick heals whatever was dropped.
    for (const s of SYMBOLS) pub.publish(`md.sim.${s}`, mpEncode({ s, bid: 1000, ask: 1001, seq: 1000 }));
    await pub.flush();
    await c.next((m) => stale(m) && m['st'] === 'live', 'book live after the snapshot', 5000, cut);
    const book = await c.next((m) => m.t === 'book' && m['s'] === 'BK', 'fresh book', 5000, cut);
    expect((book['asks'] as number[][]).map((l) => l[1])).toEqual([9, 9, 9, 9, 9]);
    const view = await c.until((x) => {
      const v = new StateView().apply(x.messages);
      return SYMBOLS.every((s) => v.state.get(s)?.d['bid'] === 1000) ? v : undefined;
    }, 'every quote healed');
    expect(view.violations).toEqual([]);
    for (const s of SYMBOLS) expect(view.state.get(s)!.d).toEqual({ bid: 1000, ask: 1001, seq: 1000 });
    await c.close();
  }, 60_000);
});
