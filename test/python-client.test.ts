/**
 * A plain Python client (websockets + msgpack from Debian) against the
 * gateway fed by a real nats-server in both codecs: proof that the wire is
 * standard MessagePack and the protocol is usable without our code.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ROOT } from './helpers/process.js';

let nats: NatsServer;
let gw: TestGateway;

beforeAll(async () => {
  nats = await startNatsServer();
  gw = await startGateway({
    nats: { servers: [nats.url] },
    feeds: [
      { name: 'sim', subject: 'md.sim.>', codec: 'msgpack' },
      { name: 'fx', subject: 'fx.>', codec: 'json', symbolField: 'pair', fields: { b: 'bid', a: 'ask', px: 'last' } },
    ],
  });
});

afterAll(async () => {
  await gw?.stop();
  await nats?.stop();
});

it('a Python websockets + msgpack client sees hello, ack, snap, upds that merge to the published state', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-py-'));
  const expectFile = join(dir, 'expected.json');
  const py = spawn('/usr/bin/python3', [`${ROOT}test/python/check_stream.py`, '--url', gw.url, '--symbols', 'AAPL,EUR/USD,NVDA', '--expect-file', expectFile, '--timeout', '20'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  py.stdout.on('data', (d: Buffer) => (out += d.toString()));
  py.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => py.once('exit', resolve));

  // Wait until the script has subscribed (3 subscriptions on the gateway).
  const deadline = Date.now() + 10_000;
  while ((await gw.metric('tickgate_subscriptions')) < 3) {
    if (Date.now() > deadline) throw new Error(`python client never subscribed: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  const nc = await connect({ servers: nats.url });
  const packr = new Packr({ useRecords: false });
  const expected: Record<string, Record<string, number>> = { AAPL: {}, 'EUR/USD': {}, NVDA: {} };
  let px = 100;
  for (let i = 1; i <= 200; i++) {
    px = Math.round((px + ((i * 7919) % 11) / 100 - 0.05) * 100) / 100;
    const eq = i % 2 ? { bid: px, bidSize: i } : { ask: px + 0.01, last: px, volume: i * 10 };
    for (const s of ['AAPL', 'NVDA']) {
      nc.publish(`md.sim.${s}`, packr.pack({ s, ...eq, ts: 1764100000000 + i + 0.5 }));
      Object.assign(expected[s]!, eq, { ts: 1764100000000 + i + 0.5 });
    }
    const fx = { b: 1.08 + i / 1e5, a: 1.08 + i / 1e5 + 0.00003 };
    nc.publish('fx.spot', JSON.stringify({ pair: 'EUR/USD', ...fx, ts: 1764100000000 + i }));
    Object.assign(expected['EUR/USD']!, { bid: fx.b, ask: fx.a, ts: 1764100000000 + i });
    if (i % 50 === 0) await nc.flush();
  }
  await nc.flush();
  await nc.close();
  writeFileSync(`${expectFile}.tmp`, JSON.stringify(expected));
  renameSync(`${expectFile}.tmp`, expectFile);

  const code = await exited;
  expect(err).toBe('');
  expect(code).toBe(0);
  const summary = JSON.parse(out) as { ok: boolean; symbols: Record<string, unknown>; maxBatch: number; messages: number };
  expect(summary.ok).toBe(true);
  expect(summary.symbols).toEqual(expected);
  expect(summary.messages).toBeGreaterThan(3);
});
