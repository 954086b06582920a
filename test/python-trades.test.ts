/**
 * examples/python/trades.py (on the tickgate package), run with Debian's Python. Against two gateways
 * fed by a real nats-server with a JetStream stream, its connection is
 * ended from the server side twice while trades flow: the gateway it is on
 * stops (it moves to the second URL), then that one restarts on its port.
 * Each time it resumes with `since`, and the trades it printed must be
 * exactly the published ones: nothing lost, nothing twice. Against scripted
 * servers, it reports `rec: false` and a `gap` as it should, skips a
 * duplicate, and exits 1 when no URL answers.
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { decode, encode } from '@msgpack/msgpack';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ROOT } from './helpers/process.js';

const SCRIPT = `${ROOT}examples/python/trades.py`;

type Line = Record<string, unknown> & { t: string; s: string };

function tradesPy(args: string[]) {
  const proc = spawn('/usr/bin/python3', [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const lines = (): Line[] =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  const trades = (s?: string) => lines().filter((l) => l.t === 'trade' && (s === undefined || l.s === s));
  return { proc, out: () => out, err: () => err, lines, trades, exited };
}

async function waitFor<T>(f: () => T | undefined | false, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Trade i of a symbol's tape: ids are unique per symbol, so printed lists compare exactly. */
function trade(s: string, i: number) {
  return { px: 100 + (i % 50) / 100, sz: 1 + (i % 7), side: i % 2 ? 'b' : 's', id: `${s}-${i}`, ts: 1764100000000 + i };
}

describe('trades.py against gateways fed by nats-server with a JetStream stream', () => {
  let nats: NatsServer;
  let pub: NatsConnection;
  const gateways: TestGateway[] = [];
  const gateway = async (port = 0) => {
    const gw = await startGateway({
      port,
      nats: { servers: [nats.url] },
      feeds: [{ name: 'tape', kind: 'trade', subject: 'trade.>', jetstream: 'TRADES', staleAfterMs: 0 }],
    });
    gateways.push(gw);
    return gw;
  };

  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    pub = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(pub);
    await jsm.streams.add({ name: 'TRADES', subjects: ['trade.>'], storage: StorageType.File });
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await pub?.close();
    await nats?.stop();
  });

  it('prints exactly the published trades across a gateway that stops and one that restarts on its port', async () => {
    const symbols = ['AAPL', 'MSFT'];
    const published = new Map(symbols.map((s) => [s, [] as string[]]));
    let n = 0;
    /** Publishes `count` trades, alternating symbols, every 7th message a batch of 3. */
    const publish = (count: number) => {
      for (let k = 0; k < count; n++) {
        const s = symbols[n % 2]!;
        const ids = published.get(s)!;
        const batch = Array.from({ length: n % 7 === 3 ? 3 : 1 }, (_, j) => trade(s, ids.length + j));
        pub.publish(`trade.${s}`, encode(batch.length === 1 ? { s, ...batch[0] } : { s, trades: batch }));
        for (const t of batch) ids.push(t.id);
        k += batch.length;
      }
    };

    const a = await gateway();
    const bPort = await freePort();
    const b = await gateway(bPort);
    publish(200);
    await pub.flush();
    const deadline = Date.now() + 10_000;
    while ((await a.metric('tickgate_trades_total', { feed: 'tape' })) < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    // The trades before the client came, as `last` sends them, then everything live.
    const py = tradesPy([...symbols, '--url', a.url, '--url', b.url, '--last', '1000', '--json']);
    try {
      await waitFor(() => py.trades().length >= 200, `the first 200 trades; stderr: ${py.err()}`);
      // Trades keep flowing (500/s) while the gateways go away and come back.
      let publishing = true;
      const feeder = (async () => {
        while (publishing) {
          publish(20);
          await pub.flush();
          await new Promise((r) => setTimeout(r, 40));
        }
      })();
      try {
        await waitFor(() => py.trades().length >= 600, `600 trades on gateway A; stderr: ${py.err()}`);
        // From the server side: A shuts down (bye DRAINING, then close).
        await a.stop();
        const resumed = (n: number) => symbols.every((s) => py.err().split(`resumed ${s} on ${b.url}\n`).length === n + 1);
        await waitFor(() => resumed(1), `the resume on gateway B; stderr: ${py.err()}`);
        expect(await b.metric('tickgate_trade_resumes_total', { recovered: 'true' })).toBe(2);
        const onB = py.trades().length;
        await waitFor(() => py.trades().length >= onB + 400, `400 trades on gateway B; stderr: ${py.err()}`);
        // B restarts on the same port: it reads the stream's recent trades back at start.
        await b.stop();
        await new Promise((r) => setTimeout(r, 300));
        const b2 = await gateway(bPort);
        await waitFor(() => resumed(2), `the resume on the restarted gateway B; stderr: ${py.err()}`);
        expect(await b2.metric('tickgate_trade_resumes_total', { recovered: 'true' })).toBe(2);
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        publishing = false;
        await feeder;
      }
      const total = [...published.values()].reduce((x, ids) => x + ids.length, 0);
      await waitFor(() => py.trades().length >= total, `all ${total} trades; stderr: ${py.err()}`);
      await new Promise((r) => setTimeout(r, 200));
      py.proc.kill('SIGINT');
      expect(await py.exited).toBe(0);

      // Nothing lost, nothing twice, in order, per symbol; as published.
      for (const s of symbols) {
        const got = py.trades(s);
        expect(got.map((l) => l['id']), s).toEqual(published.get(s));
        const qs = got.map((l) => l['q'] as number);
        expect(qs.every((q, i) => i === 0 || q > qs[i - 1]!), `${s}: q increasing`).toBe(true);
      }
      expect(py.trades('AAPL')[3]).toEqual({ t: 'trade', s: 'AAPL', q: py.trades('AAPL')[3]!['q'], ...trade('AAPL', 3) });
      expect(total).toBeGreaterThan(1200);
      expect(py.lines().filter((l) => l.t !== 'trade')).toEqual([]);
      const err = py.err();
      expect(err).toContain('server says bye: DRAINING');
      expect(err).toMatch(new RegExp(`connection lost \\(.*\\); reconnecting to ${b.url.replaceAll('/', '\\/')} in \\d+\\.\\d s`));
      // After B went, it tried A (gone) before B came back.
      expect(err).toMatch(new RegExp(`cannot connect \\(.*\\); reconnecting to ${b.url.replaceAll('/', '\\/')}`));
      expect(err).not.toMatch(/GAP|NOT RECOVERED|skipped$/m);
      expect(err).toMatch(new RegExp(`^trades\\.py: ${total} trades, 0 duplicates skipped, 0 gaps \\(0 positions lost\\), 4 resumes \\(4 recovered\\)$`, 'm'));
    } finally {
      py.proc.kill('SIGKILL');
    }
  });
});

/** A scripted gateway: answers each request of each connection with the next reply list; `end` cuts the connection after it. */
async function scriptedServer(replies: Array<{ frames: object[][]; end?: boolean }>) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const requests: Record<string, unknown>[] = [];
  server.on('connection', (ws: WebSocket) => {
    ws.send(encode([{ t: 'hello', v: 1, sid: 'test', hbMs: 5000, serverTs: Date.now(), limits: {} }]));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const req = (isBinary ? decode(data) : JSON.parse(data.toString())) as Record<string, unknown>;
      requests.push(req);
      const reply = replies[requests.length - 1];
      if (reply === undefined) return;
      // An ack echoes the request's id, as the gateway's does.
      for (const f of reply.frames) ws.send(encode(f.map((m) => ((m as { t?: string }).t === 'ack' ? { ...m, id: req['id'] } : m))));
      // Killed, not closed: no close handshake.
      if (reply.end) setTimeout(() => ws.terminate(), 50);
    });
  });
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/stream`,
    requests,
    close: () => new Promise((r) => server.close(r)),
  };
}

describe('trades.py against scripted servers', () => {
  it('moves to the next URL, resumes with since, and reports rec false, a gap and a duplicate', async () => {
    const S = 'X';
    const tr = (q: number) => ({ t: 'trade', s: S, q, px: 10 + q / 100, sz: q, side: 'b', id: q });
    const first = await scriptedServer([
      {
        // `last`: the three most recent trades, then live ones; a gap; then the connection dies.
        frames: [[{ t: 'ack', id: 'trades', op: 'sub', ok: [S], err: [], channel: 'trade', pos: { [S]: { e: 'E1', q: 3 } } }, tr(1), tr(2), tr(3)], [tr(5)], [{ t: 'gap', s: S, from: 5, to: 9 }, tr(10)]],
        end: true,
      },
    ]);
    const second = await scriptedServer([
      {
        // Another epoch: not recovered; live from 50. A repeat of 51 must be skipped.
        frames: [[{ t: 'ack', id: 'trades', op: 'sub', ok: [S], err: [], channel: 'trade', pos: { [S]: { e: 'E2', q: 50 } }, rec: { [S]: false } }], [tr(51), tr(51), tr(52)]],
      },
    ]);
    try {
      const py = tradesPy([S, '--url', first.url, '--url', second.url, '--last', '3', '--json', '--count', '7']);
      const code = await Promise.race([py.exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
      py.proc.kill('SIGKILL');
      expect(code, py.err()).toBe(0);

      const noId = (reqs: Record<string, unknown>[]) => reqs.map(({ id: _id, ...r }) => r);
      expect(noId(first.requests)).toEqual([{ op: 'sub', channel: 'trade', symbols: [S], last: 3 }]);
      expect(noId(second.requests)).toEqual([{ op: 'sub', channel: 'trade', symbols: [S], since: { [S]: { e: 'E1', q: 10 } } }]);
      expect(py.lines().map((l) => (l.t === 'trade' ? l['q'] : l.t))).toEqual([1, 2, 3, 5, 'gap', 10, 'unrecovered', 51, 52]);
      expect(py.lines().find((l) => l.t === 'gap')).toEqual({ t: 'gap', s: S, from: 5, to: 9 });
      expect(py.lines().find((l) => l.t === 'unrecovered')).toEqual({ t: 'unrecovered', s: S, since: { e: 'E1', q: 10 }, pos: { e: 'E2', q: 50 } });
      expect(py.trades()[0]).toEqual(tr(1));
      const err = py.err();
      expect(err).toContain(`${S}: GAP: trades with 5 < q <= 9 were lost (they left the gateway's history); continuing after q=9`);
      expect(err).toContain(`${S}: NOT RECOVERED (rec false): trades after q=10 (epoch E1) may be lost (another epoch); continuing live from q=50 (epoch E2)`);
      expect(err).toContain(`${S}: trade q=51 at or below the position held (q=51): skipped`);
      expect(err).toMatch(new RegExp(`connection lost \\(.*\\); reconnecting to ${second.url.replaceAll('/', '\\/')} in \\d\\.\\d s`));
      expect(err).toMatch(/^trades\.py: 7 trades, 1 duplicate skipped, 1 gap \(4 positions lost\), 1 resume \(0 recovered\)$/m);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('exits 1 with a message when no URL answers', async () => {
    const urls = [`ws://127.0.0.1:${await freePort()}/v1/stream`, `ws://127.0.0.1:${await freePort()}/v1/stream`];
    const py = tradesPy(['X', '--url', urls[0]!, '--url', urls[1]!]);
    expect(await py.exited).toBe(1);
    expect(py.err()).toContain(`trades.py: cannot connect to ${urls.join(', ')}`);
    expect(py.err()).not.toContain('trades.py: 0 trades');
  });
});
