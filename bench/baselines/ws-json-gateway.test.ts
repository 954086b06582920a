/**
 * Integration: the ws + JSON baseline against a real nats-server.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startNatsServer, type NatsServer } from '../../test/helpers/nats-server.js';
import { startWsJsonGateway, type WsJsonGateway } from './ws-json-gateway.js';

let nats: NatsServer;
let gw: WsJsonGateway;
let pub: NatsConnection;
const packr = new Packr({ useRecords: false, variableMapSize: true });

beforeAll(async () => {
  nats = await startNatsServer();
  gw = await startWsJsonGateway({ natsUrl: nats.url });
  pub = await connect({ servers: nats.url });
});

afterAll(async () => {
  await pub?.close();
  await gw?.stop();
  await nats?.stop();
});

/** Messages received by a client, and a way to wait for one. */
function client(url: string) {
  const ws = new WebSocket(url);
  const got: Array<Record<string, unknown>> = [];
  ws.on('message', (d, isBinary) => {
    expect(isBinary).toBe(false);
    got.push(JSON.parse(d.toString()) as Record<string, unknown>);
  });
  const until = async (pred: (m: Record<string, unknown>) => boolean) => {
    for (let i = 0; i < 100; i++) {
      const m = got.find(pred);
      if (m !== undefined) return m;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`not received; got ${JSON.stringify(got)}`);
  };
  return { ws, got, until, open: new Promise((r) => ws.once('open', r)) };
}

describe('ws + JSON baseline gateway', () => {
  it('acks a subscription, sends the snapshot, then one JSON upd per tick with the changed fields', async () => {
    pub.publish('md.sim.AAPL', packr.pack({ s: 'AAPL', ts: 1000, seq: 1, bid: 189.5, ask: 189.52 }));
    await pub.flush();
    // The gateway has the state before the client subscribes.
    for (let i = 0; i < 50; i++) {
      const h = (await (await fetch(`http://127.0.0.1:${gw.port}/healthz`)).json()) as { symbols: number };
      if (h.symbols >= 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const c = client(`ws://127.0.0.1:${gw.port}`);
    await c.open;
    c.ws.send(JSON.stringify({ op: 'sub', id: 7, symbols: ['AAPL', 'MSFT'] }));
    expect(await c.until((m) => m['t'] === 'ack')).toEqual({ t: 'ack', id: 7, op: 'sub', ok: ['AAPL', 'MSFT'] });
    expect(await c.until((m) => m['t'] === 'snap')).toEqual({ t: 'snap', s: 'AAPL', d: { ts: 1000, seq: 1, bid: 189.5, ask: 189.52 } });

    pub.publish('md.sim.AAPL', packr.pack({ s: 'AAPL', ts: 1001, seq: 2, bid: 189.51 }));
    pub.publish('md.sim.MSFT', packr.pack({ s: 'MSFT', ts: 1002, seq: 1, last: 420 }));
    pub.publish('md.sim.TSLA', packr.pack({ s: 'TSLA', ts: 1003, seq: 1, last: 250 }));
    await pub.flush();
    expect(await c.until((m) => m['t'] === 'upd' && m['s'] === 'AAPL')).toEqual({ t: 'upd', s: 'AAPL', d: { ts: 1001, seq: 2, bid: 189.51 } });
    expect(await c.until((m) => m['t'] === 'upd' && m['s'] === 'MSFT')).toEqual({ t: 'upd', s: 'MSFT', d: { ts: 1002, seq: 1, last: 420 } });
    // Not subscribed: never sent.
    expect(c.got.some((m) => m['s'] === 'TSLA')).toBe(false);

    // After unsub, no more updates for the symbol.
    c.ws.send(JSON.stringify({ op: 'unsub', symbols: ['AAPL'] }));
    await c.until((m) => m['t'] === 'ack' && m['op'] === 'unsub');
    const before = c.got.length;
    pub.publish('md.sim.AAPL', packr.pack({ s: 'AAPL', ts: 1004, seq: 3, bid: 189.6 }));
    pub.publish('md.sim.MSFT', packr.pack({ s: 'MSFT', ts: 1005, seq: 2, last: 421 }));
    await pub.flush();
    await c.until((m) => m['t'] === 'upd' && m['s'] === 'MSFT' && (m['d'] as { seq: number }).seq === 2);
    expect(c.got.slice(before).some((m) => m['s'] === 'AAPL')).toBe(false);

    c.ws.send('not json');
    expect(await c.until((m) => m['t'] === 'err')).toEqual({ t: 'err', code: 'BAD_REQUEST' });
    c.ws.close();
  });
});
