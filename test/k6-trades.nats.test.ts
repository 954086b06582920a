/**
 * Integration: the trade helpers of the k6 reconnect scenario
 * (load/k6/lib/trades.ts and trade-feed.ts), run under Node against real
 * processes, since k6 itself is not installable here. The synthetic feed
 * publishes through nats-server's WebSocket listener as the scenario's feed
 * VU does; clients keep their positions with TradeTape, are cut off
 * mid-stream again and again, stay away a moment, and resume with `since`,
 * as the scenario's VUs do. Every resume must be recovered, TradeTape must
 * find nothing missing or twice, and each client must end with exactly the
 * ids the feed published after its first `ack`: on one gateway started with
 * load/k6/gateway-trades.json (positions it numbers itself, checked by `q`
 * and by id), and across two gateways reading a JetStream stream (checked
 * by id).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { natsPub } from '../load/k6/lib/book-feed.js';
import { SyntheticTape, tradeCount } from '../load/k6/lib/trade-feed.js';
import { TradeTape, type Gap, type Trade, type TradeAckFields, type TradeSequence } from '../load/k6/lib/trades.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { FeedSocket, startNatsWithWebSocket, type NatsWs } from './helpers/nats-websocket.js';
import { ROOT } from './helpers/process.js';
import { TestClient } from './helpers/ws-client.js';

/** The feed VU in Node: every 10 ms a text frame of PUBs, about `rate` trades a second, round robin over `symbols`. */
function runFeed(feed: FeedSocket, tape: SyntheticTape, prefix: string, symbols: string[], rate: number) {
  let running = true;
  let turn = 0;
  let carry = 0;
  const done = (async () => {
    while (running) {
      let out = '';
      for (carry += rate / 100; carry >= 1; ) {
        const s = symbols[turn++ % symbols.length]!;
        const m = tape.message(s, Date.now());
        out += natsPub(prefix + s, JSON.stringify(m));
        carry -= tradeCount(m);
      }
      if (out !== '') feed.send(out);
      await new Promise((r) => setTimeout(r, 10));
    }
    await feed.flush();
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** A scenario VU's trade side: its tape across connections, and everything it saw. */
class Resumer {
  readonly tape: TradeTape;
  readonly ids = new Map<string, number[]>();
  readonly problems: string[] = [];
  recovered = 0;
  resumes = 0;

  constructor(
    sequence: TradeSequence,
    readonly symbols: string[],
  ) {
    this.tape = new TradeTape(sequence);
    for (const s of symbols) this.ids.set(s, []);
  }

  /** One connection: subscribe (resuming from the second on), take trades until `enough`, then cut it without a close handshake. */
  async session(url: string, enough: (got: number) => boolean, ms = 10_000): Promise<void> {
    const c = await TestClient.connect(url);
    c.sendRaw(this.tape.request('trades', this.symbols), false);
    let i = 0;
    let got = 0;
    const drain = () => {
      for (; i < c.messages.length; i++) {
        const m = c.messages[i]!;
        if (m.t === 'ack' && m['id'] === 'trades') {
          const r = this.tape.acked(m as unknown as TradeAckFields);
          this.resumes += r.recovered.length + r.notRecovered.length;
          this.recovered += r.recovered.length;
          for (const s of r.notRecovered) this.problems.push(`${s}: not recovered`);
        } else if (m.t === 'trade') {
          const t = m as unknown as Trade;
          const r = this.tape.apply(t);
          if (r.kind !== 'ok') this.problems.push(`${t.s} q ${t.q} id ${String(t.id)}: ${r.kind}`);
          this.ids.get(t.s)?.push(t.id as number);
          got++;
        } else if (m.t === 'gap') {
          this.tape.gap(m as unknown as Gap);
          this.problems.push(`gap ${JSON.stringify(m)}`);
        }
      }
      return enough(got);
    };
    await c.until(drain, `trades on ${url}`, ms);
    c.ws.terminate();
    drain();
  }
}

describe('k6 trade helpers against nats-server over WebSocket and gateways', () => {
  let nats: NatsWs;
  const gateways: TestGateway[] = [];

  beforeAll(async () => {
    nats = await startNatsWithWebSocket({ jetstream: true });
    const nc = await connect({ servers: nats.url });
    await (await jetstreamManager(nc)).streams.add({ name: 'K6JS', subjects: ['k6js.>'], storage: StorageType.File });
    await nc.close();
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await nats?.stop();
  });

  const gateway = async (overrides: Record<string, unknown> = {}) => {
    const config = JSON.parse(readFileSync(join(ROOT, 'load/k6/gateway-trades.json'), 'utf8')) as Record<string, unknown>;
    const gw = await startGateway({ ...config, nats: { servers: [nats.url] }, ...overrides });
    gateways.push(gw);
    return gw;
  };

  /**
   * Resumers cut off after a few dozen to a few hundred trades, each away
   * up to 150 ms (trades meanwhile wait in the history), on `urls` in turn;
   * then the feed stops and each takes the rest. Returns the feed's tape.
   */
  async function storm(urls: string[], prefix: string, symbols: string[], resumers: Resumer[], sessions: number): Promise<SyntheticTape> {
    const tape = new SyntheticTape(prng(11));
    const feed = await FeedSocket.open(nats.wsUrl, `test-k6-trade-feed-${prefix}`);
    // Every symbol has trades before the clients come (the scenario starts its storm 2 s after the feed).
    const running = runFeed(feed, tape, prefix, symbols, 2000);
    await new Promise((r) => setTimeout(r, 300));
    const rand = prng(5);
    await Promise.all(
      resumers.map(async (r, k) => {
        for (let n = 0; n < sessions; n++) {
          const want = 20 + Math.floor(rand() * 300);
          await r.session(urls[(k + n) % urls.length]!, (got) => got >= want);
          await new Promise((res) => setTimeout(res, rand() * 150));
        }
      }),
    );
    await running.stop();
    expect(feed.errors).toEqual([]);
    feed.close();
    const all = (r: Resumer) => r.symbols.every((s) => (r.ids.get(s)!.at(-1) ?? 0) >= tape.published(s));
    await Promise.all(resumers.map((r, k) => r.session(urls[k % urls.length]!, () => all(r))));
    return tape;
  }

  const expectExact = (resumers: Resumer[], tape: SyntheticTape, sessions: number) => {
    for (const r of resumers) {
      expect(r.problems).toEqual([]);
      // Every connection after the first resumed every symbol, and each was recovered.
      expect(r.resumes).toBe(sessions * r.symbols.length);
      expect(r.recovered).toBe(r.resumes);
      for (const s of r.symbols) {
        // From the first trade after its first ack (it asked for no past) to the last published.
        const ids = r.ids.get(s)!;
        expect(ids.length, s).toBeGreaterThan(100);
        expect(ids, s).toEqual(Array.from({ length: tape.published(s) - ids[0]! + 1 }, (_, i) => ids[0]! + i));
      }
    }
  };

  it('on the gateway of gateway-trades.json, by position and by id: every resume recovered, nothing missing or twice', async () => {
    const gw = await gateway();
    const symbols = ['K6TRADE-1', 'K6TRADE-2', 'K6TRADE-3', 'K6TRADE-4'];
    const resumers = [new Resumer('q', symbols.slice(0, 3)), new Resumer('id', symbols.slice(1)), new Resumer('q', symbols)];
    const sessions = 8;
    const tape = await storm([gw.url], 'k6trade.', symbols, resumers, sessions);
    expectExact(resumers, tape, sessions);
    expect(await gw.metric('tickgate_trade_resumes_total', { recovered: 'true' })).toBe(resumers.reduce((n, r) => n + r.resumes, 0));
    expect(await gw.metric('tickgate_trade_resumes_total', { recovered: 'false' })).toBe(0);
    expect(await gw.metric('tickgate_trades_replayed_total')).toBeGreaterThan(0);
    expect(await gw.metric('tickgate_trades_total', { feed: 'k6trade' })).toBe(symbols.reduce((n, s) => n + tape.published(s), 0));
  });

  it('across two gateways reading one JetStream stream, by id: every resume recovered on the other gateway', async () => {
    const feeds = [{ name: 'k6trade', kind: 'trade', subject: 'k6js.>', codec: 'json', symbolToken: 1, jetstream: 'K6JS' }];
    const a = await gateway({ feeds });
    const b = await gateway({ feeds });
    const symbols = ['K6TRADE-1', 'K6TRADE-2', 'K6TRADE-3'];
    const resumers = [new Resumer('id', symbols), new Resumer('id', symbols.slice(1))];
    const sessions = 6;
    const tape = await storm([a.url, b.url], 'k6js.', symbols, resumers, sessions);
    expectExact(resumers, tape, sessions);
    const resumed = async (recovered: string) => (await a.metric('tickgate_trade_resumes_total', { recovered })) + (await b.metric('tickgate_trade_resumes_total', { recovered }));
    expect(await resumed('true')).toBe(resumers.reduce((n, r) => n + r.resumes, 0));
    expect(await resumed('false')).toBe(0);
    // Both gateways served resumes.
    expect(await a.metric('tickgate_trade_resumes_total', { recovered: 'true' })).toBeGreaterThan(0);
    expect(await b.metric('tickgate_trade_resumes_total', { recovered: 'true' })).toBeGreaterThan(0);
  });
});

/** A seeded generator in [0, 1) (Park-Miller). lib/protocol.ts has one, but it imports values with .ts paths, which this project's Node build does not take. */
function prng(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 48271) % 2147483647) / 2147483647;
}
