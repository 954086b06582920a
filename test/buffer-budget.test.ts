/**
 * The process-wide buffer budget against real parts: nats-server, the built
 * gateway as its own process, and many WebSocket clients whose TCP socket is
 * paused so that they really stop reading, next to clients that keep up.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sampleValue } from './helpers/gateway.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ensureBuilt, spawnGateway, waitReady, type RunningGateway } from './helpers/process.js';
import { StateView, TestClient } from './helpers/ws-client.js';

const MIB = 1024 * 1024;
const BUDGET = 8 * MIB;
const CLIENT_MAX = 8 * MIB;
const HIGH = 6 * MIB;
const HEAVY = 16;
const LIGHT = 16;
const SYMBOLS = Array.from({ length: 100 }, (_, i) => `B${i}`);
/** Light clients subscribe to a tenth of what heavy ones do: their buffers grow ten times slower. */
const LIGHT_SYMBOLS = SYMBOLS.slice(0, 10);
const FAST_SYMBOLS = SYMBOLS.slice(0, 4);

let nats: NatsServer;
let pub: NatsConnection;
let gw: RunningGateway;
let dir: string;
let port: number;

beforeAll(async () => {
  ensureBuilt();
  nats = await startNatsServer();
  pub = await connect({ servers: nats.url });
  dir = mkdtempSync(join(tmpdir(), 'tickgate-budget-'));
  port = await freePort();
  const config = {
    host: '127.0.0.1',
    port,
    nats: { servers: [nats.url] },
    backpressure: { highWaterBytes: HIGH, lowWaterBytes: 256 * 1024, maxBufferedBytes: CLIENT_MAX, maxTotalBufferedBytes: BUDGET, slowConsumerMs: 0 },
    ws: { heartbeatMs: 60_000 },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  gw = spawnGateway({ TICKGATE_CONFIG: join(dir, 'config.json') });
  await waitReady(`http://127.0.0.1:${port}/readyz`, 20_000, gw);
}, 120_000);

afterAll(async () => {
  gw?.proc.kill('SIGTERM');
  await gw?.exited;
  await pub?.close();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const packr = new Packr({ useRecords: false });
/** Every field changes on every tick, so each upd is as large as it gets. */
function fatTick(s: string, i: number) {
  return { s, bid: i + 0.25, ask: i + 0.5, bidSize: i, askSize: i + 1, last: i + 0.375, lastSize: i + 2, volume: i * 10, high: i + 1.5, low: 0.5, ts: 1764100000000 + i + 0.5, seq: i };
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

function socketOf(c: TestClient) {
  return (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
}

async function subscribed(symbols: string[]): Promise<TestClient> {
  const c = await TestClient.connect(`ws://127.0.0.1:${port}/v1/stream`);
  c.send({ op: 'sub', symbols });
  await c.next((m) => m.t === 'ack', 'ack');
  return c;
}

it('keeps the total under the budget by closing the biggest stalled clients first, bounds memory, and leaves fast clients alone', async () => {
  const pid = gw.proc.pid!;
  const fast = await Promise.all([subscribed(FAST_SYMBOLS), subscribed(FAST_SYMBOLS)]);
  const heavy = await Promise.all(Array.from({ length: HEAVY }, () => subscribed(SYMBOLS)));
  const light = await Promise.all(Array.from({ length: LIGHT }, () => subscribed(LIGHT_SYMBOLS)));
  for (const c of [...heavy, ...light]) socketOf(c).pause();
  let text = await metrics();
  expect(sampleValue(text, 'tickgate_buffer_budget_bytes', {})).toBe(BUDGET);
  expect(sampleValue(text, 'tickgate_buffered_bytes', {})).toBe(0);
  const rssBefore = rssKiB(pid);

  // Paced publishing (bounded: 150k ticks, about 25k/s), sampling the gauge and RSS meanwhile.
  let published = 0;
  let maxGauge = 0;
  let maxRss = rssBefore;
  const started = Date.now();
  while (published < 150_000 && Date.now() - started < 15_000) {
    for (let k = 0; k < 2500; k++, published++) {
      const s = SYMBOLS[published % SYMBOLS.length]!;
      pub.publish(`md.sim.${s}`, packr.pack(fatTick(s, published)));
    }
    await pub.flush();
    await new Promise((r) => setTimeout(r, 100));
    text = await metrics();
    maxGauge = Math.max(maxGauge, sampleValue(text, 'tickgate_buffered_bytes', {}));
    maxRss = Math.max(maxRss, rssKiB(pid));
  }
  await new Promise((r) => setTimeout(r, 500));
  text = await metrics();
  const budgetCloses = sampleValue(text, 'tickgate_budget_closes_total', {});
  const gauge = sampleValue(text, 'tickgate_buffered_bytes', {});
  maxRss = Math.max(maxRss, rssKiB(pid));
  const growthMiB = (maxRss - rssBefore) / 1024;
  console.log(
    `buffer budget: ${published} ticks; ${budgetCloses} budget closes; gauge max ${(maxGauge / MIB).toFixed(1)} MiB, end ${(gauge / MIB).toFixed(1)} MiB; ` +
      `RSS ${(rssBefore / 1024).toFixed(0)} -> max ${(maxRss / 1024).toFixed(0)} MiB (+${growthMiB.toFixed(1)} MiB)`,
  );

  // The stalled clients asked for far more than the budget (16 heavy clients up to the 6 MiB high water mark each).
  expect(budgetCloses).toBeGreaterThan(0);
  expect(maxGauge).toBeGreaterThan(BUDGET / 2);
  expect(maxGauge).toBeLessThanOrEqual(BUDGET + CLIENT_MAX);
  expect(gauge).toBeLessThanOrEqual(BUDGET);
  // Every budget close is a bye SLOW_CONSUMER, counted with the others.
  expect(sampleValue(text, 'tickgate_connections_closed_total', { reason: 'SLOW_CONSUMER' })).toBe(budgetCloses);
  // Without the budget the heavy clients would hold 16 x 6 MiB = 96 MiB in the gateway (the same run
  // with maxTotalBufferedBytes 0 grew RSS by about 145 MiB); with it, about 40 MiB, most of it the heap.
  expect(growthMiB).toBeLessThan(80);

  // The fast clients got every update of their symbols one by one, in sequence, and no bye.
  const perFast = published * (FAST_SYMBOLS.length / SYMBOLS.length);
  for (const c of fast) {
    await c.until((x) => x.messages.filter((m) => m.t === 'upd' || m.t === 'snap').length >= perFast, 'fast client caught up', 15_000);
    const view = new StateView().apply(c.messages);
    expect(view.violations).toEqual([]);
    const data = c.messages.filter((m) => m.t === 'upd' || m.t === 'snap');
    expect(data.length).toBe(perFast);
    expect(data.every((m) => m['n'] === undefined)).toBe(true);
    expect(c.messages.some((m) => m.t === 'bye')).toBe(false);
    expect(c.closed).toBeNull();
  }

  // The stalled clients read again: those closed for the budget find their
  // connection cut (their buffer was discarded, bye and all); the rest are open.
  for (const c of [...heavy, ...light]) socketOf(c).resume();
  // Bounded: each has at most its kernel buffers and the gateway's high water mark to read.
  const deadline = Date.now() + 20_000;
  while (heavy.filter((c) => c.closed !== null).length < budgetCloses && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500));
  const closedHeavy = heavy.filter((c) => c.closed !== null);
  const closedLight = light.filter((c) => c.closed !== null);
  // The biggest first: the light clients, buffering a tenth as fast, were never the ones closed.
  expect(closedLight.length).toBe(0);
  expect(closedHeavy.length).toBe(budgetCloses);
  expect(closedHeavy.length).toBeLessThan(HEAVY);
  for (const c of closedHeavy) expect(c.closed!.code).toBe(1006);
  await Promise.all([...fast, ...heavy, ...light].filter((c) => c.closed === null).map((c) => c.close()));
}, 60_000);
