/**
 * Integration: configured instrument fields (schema.fields), end to end.
 * A real nats-server, a gateway declaring 41 extra numeric fields and a
 * text field (55 fields in all, past any 32-bit mask), published ticks with
 * random subsets of them, and clients that decode with standard
 * MessagePack libraries: @msgpack/msgpack in Node and msgpack in Python.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encode as mpEncode } from '@msgpack/msgpack';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ROOT } from './helpers/process.js';
import { StateView, TestClient } from './helpers/ws-client.js';

const NUMERIC = Array.from({ length: 40 }, (_, i) => `f${i}`);
const SYMBOLS = ['BTC-PERP', 'ETH-PERP', 'SOL-PERP'];
const STATUSES = ['trading', 'halted', 'auction', 'pre-open'];

let nats: NatsServer;
let gw: TestGateway;
let pub: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  gw = await startGateway({
    nats: { servers: [nats.url] },
    schema: { fields: [...NUMERIC.map((name) => ({ name, type: 'number' })), { name: 'mark', type: 'number' }, { name: 'status', type: 'text' }] },
    // `mk` on this feed is the configured field `mark`.
    feeds: [{ name: 'perp', subject: 'perp.>', codec: 'msgpack', fields: { mk: 'mark' } }],
  });
  pub = await connect({ servers: nats.url });
});

afterAll(async () => {
  await pub?.close();
  await gw?.stop();
  await nats?.stop();
});

/** A small deterministic generator, so a failure replays. */
function lcg(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

it('ingests, merges, conflates and sends configured number and text fields like canonical ones', async () => {
  const plain = await TestClient.connect(gw.url);
  const throttled = await TestClient.connect(gw.url);
  plain.send({ op: 'sub', id: 1, symbols: SYMBOLS });
  throttled.send({ op: 'sub', id: 1, symbols: SYMBOLS, throttleMs: 50 });
  for (const c of [plain, throttled]) await c.next((m) => m.t === 'ack', 'ack');

  // A Python client with the standard msgpack package, checking the same final state.
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-schema-'));
  const expectFile = join(dir, 'expected.json');
  const py = spawn('/usr/bin/python3', [`${ROOT}test/python/check_stream.py`, '--url', gw.url, '--symbols', SYMBOLS.join(','), '--expect-file', expectFile, '--timeout', '20'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let pyOut = '';
  let pyErr = '';
  py.stdout.on('data', (d: Buffer) => (pyOut += d.toString()));
  py.stderr.on('data', (d: Buffer) => (pyErr += d.toString()));
  const pyExited = new Promise<number | null>((resolve) => py.once('exit', resolve));
  const deadline = Date.now() + 10_000;
  while ((await gw.metric('tickgate_subscriptions')) < 9) {
    if (Date.now() > deadline) throw new Error(`python client never subscribed: ${pyErr}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  const rnd = lcg(42);
  const expected: Record<string, Record<string, number | string>> = Object.fromEntries(SYMBOLS.map((s) => [s, {}]));
  let badText = 0;
  let unknown = 0;
  const TICKS = 600;
  for (let i = 1; i <= TICKS; i++) {
    const s = SYMBOLS[i % SYMBOLS.length]!;
    const tick: Record<string, unknown> = { s, seq: i, bid: 100 + i / 100 };
    const sent: Record<string, number | string> = { seq: i, bid: 100 + i / 100 };
    for (const f of NUMERIC) {
      if (rnd() < 0.3) {
        const v = Math.round(rnd() * 1e6) / 100;
        tick[f] = v;
        sent[f] = v;
      }
    }
    if (i % 3 === 0) {
      tick['mk'] = 100 + i / 1000;
      sent['mark'] = 100 + i / 1000;
    }
    if (i % 7 === 0) {
      const st = STATUSES[Math.floor(rnd() * STATUSES.length)]!;
      tick['status'] = st;
      sent['status'] = st;
    } else if (i % 50 === 1) {
      // Too long, or with a control character: dropped and counted, the rest of the tick kept.
      tick['status'] = i % 100 === 1 ? 'x'.repeat(65) : 'bad\nstatus';
      badText++;
    }
    if (i % 40 === 0) {
      tick['undeclared'] = 1;
      unknown++;
    }
    pub.publish(`perp.${s}`, mpEncode(tick));
    Object.assign(expected[s]!, sent);
    if (i % 100 === 0) await pub.flush();
  }
  await pub.flush();
  writeFileSync(`${expectFile}.tmp`, JSON.stringify(expected));
  renameSync(`${expectFile}.tmp`, expectFile);

  const converged = (c: TestClient) => {
    const view = new StateView().apply(c.messages);
    return SYMBOLS.every((s) => view.state.get(s)?.d['seq'] === expected[s]!['seq']) ? view : null;
  };
  const plainView = await plain.until(converged, 'plain client at the last tick', 10_000);
  const throttledView = await throttled.until(converged, 'throttled client at the last tick', 10_000);
  for (const view of [plainView, throttledView]) {
    expect(view.violations).toEqual([]);
    for (const s of SYMBOLS) expect(view.state.get(s)!.d).toEqual(expected[s]);
  }
  // The plain client got every tick as its own upd; the throttled one had them merged.
  const plainData = plain.messages.filter((m) => m.t === 'upd' || m.t === 'snap');
  expect(plainData.length).toBe(TICKS);
  const throttledData = throttled.messages.filter((m) => m.t === 'upd' || m.t === 'snap');
  expect(throttledData.length).toBeLessThan(TICKS);
  expect(throttledData.some((m) => (m['n'] as number) > 1)).toBe(true);

  // A text field's value is a string on the wire, a number field's a number.
  const withStatus = plainData.find((m) => typeof (m['d'] as Record<string, unknown>)['status'] === 'string');
  expect(withStatus).toBeDefined();

  // A client arriving now gets one snap per symbol with every field ever sent.
  const late = await TestClient.connect(gw.url);
  late.send({ op: 'sub', symbols: SYMBOLS });
  await late.until((c) => c.messages.filter((m) => m.t === 'snap').length === SYMBOLS.length, '3 snaps');
  for (const m of late.messages.filter((x) => x.t === 'snap')) expect(m['d']).toEqual(expected[m['s'] as string]);

  expect(await pyExited).toBe(0);
  expect(pyErr).toBe('');
  const summary = JSON.parse(pyOut) as { ok: boolean; symbols: Record<string, unknown> };
  expect(summary.ok).toBe(true);
  expect(summary.symbols).toEqual(expected);

  expect(await gw.metric('tickgate_ingest_dropped_fields_total', { feed: 'perp', reason: 'bad_value' })).toBe(badText);
  expect(await gw.metric('tickgate_ingest_dropped_fields_total', { feed: 'perp', reason: 'unknown' })).toBe(unknown);
  await Promise.all([plain.close(), throttled.close(), late.close()]);
});
