/**
 * Horizontal scale on one machine: two gateway processes on one NATS, SDK
 * clients spread over both. Both serve identical state; draining one moves
 * its clients to the other through the SDK's reconnect, without data errors.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TickgateClient, type ConnectionStatus, type WebSocketConstructor } from '../src/client/index.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ensureBuilt, spawnGateway, waitReady, type RunningGateway } from './helpers/process.js';

const SYMBOLS = Array.from({ length: 20 }, (_, i) => `SC${i}`);
const packr = new Packr({ useRecords: false });
const cleanup: Array<() => Promise<unknown> | unknown> = [];
let nats: NatsServer;
let pub: NatsConnection;

beforeAll(async () => {
  ensureBuilt();
  nats = await startNatsServer();
  pub = await connect({ servers: nats.url });
}, 120_000);
afterAll(async () => {
  for (const f of cleanup.reverse()) await Promise.resolve(f()).catch(() => undefined);
  await pub?.close();
  await nats?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(pred: () => boolean, what: string, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The last values published per symbol: what every client must end on. */
const published = new Map<string, Record<string, number>>();
let seq = 0;
async function publishRound(n: number) {
  for (let r = 0; r < n; r++) {
    for (const s of SYMBOLS) {
      seq++;
      const d = { bid: seq / 100, ask: seq / 100 + 0.01, volume: seq, seq };
      pub.publish(`md.sim.${s}`, packr.pack({ s, ...d }));
      published.set(s, { ...(published.get(s) ?? {}), ...d });
    }
    await pub.flush();
    await sleep(5);
  }
}

async function gateway(): Promise<{ gw: RunningGateway; url: string }> {
  const port = await freePort();
  const gw = spawnGateway({
    TICKGATE_PORT: String(port),
    TICKGATE_NATS_SERVERS: nats.url,
    TICKGATE_DRAIN_WINDOW_MS: '500',
    TICKGATE_DRAIN_TIMEOUT_MS: '2000',
  });
  cleanup.push(() => gw.proc.kill('SIGKILL'));
  await waitReady(`http://127.0.0.1:${port}/readyz`);
  return { gw, url: `ws://127.0.0.1:${port}/v1/stream` };
}

function converged(c: TickgateClient): boolean {
  return SYMBOLS.every((s) => {
    const want = published.get(s)!;
    const have = c.state(s);
    return have !== undefined && Object.entries(want).every(([k, v]) => have[k as keyof typeof have] === v);
  });
}

it('serves identical state from two replicas and moves a drained replica\'s clients to the other', async () => {
  const a = await gateway();
  const b = await gateway();
  await publishRound(3);

  // Ten clients: half list A first, half list B first.
  const clients: Array<{ client: TickgateClient; seen: ConnectionStatus[]; qBack: string[] }> = [];
  for (let i = 0; i < 10; i++) {
    const client = new TickgateClient({
      url: i % 2 === 0 ? [a.url, b.url] : [b.url, a.url],
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      reconnect: { initialMs: 50, maxMs: 500 },
    });
    const seen: ConnectionStatus[] = [];
    client.onConnection((s) => seen.push(s));
    // q is per gateway process: it may restart lower after a move, but never within one connection.
    const qBack: string[] = [];
    const lastQ = new Map<string, number>();
    client.onConnection((s) => {
      if (s.state === 'open') lastQ.clear();
    });
    client.onUpdate((u) => {
      const prev = lastQ.get(u.symbol);
      if (prev !== undefined && !u.snapshot && u.q <= prev) qBack.push(`${u.symbol} ${prev} -> ${u.q}`);
      lastQ.set(u.symbol, u.q);
    });
    await client.connect();
    await client.subscribe(SYMBOLS);
    clients.push({ client, seen, qBack });
    cleanup.push(() => client.close());
  }

  await publishRound(20);
  await until(() => clients.every((c) => converged(c.client)), 'all clients on the published state');

  // Drain A: its clients get bye DRAINING and reconnect to B.
  a.gw.proc.kill('SIGTERM');
  const keepPublishing = (async () => {
    for (let i = 0; i < 20; i++) await publishRound(1);
  })();
  expect(await a.gw.exited).toBe(0);
  await keepPublishing;
  await publishRound(5);
  await until(() => clients.every((c) => converged(c.client)), 'all clients on the published state after the drain');

  const moved = clients.filter((c) => c.seen.filter((s) => s.state === 'open').length >= 2);
  expect(moved.length).toBe(5); // exactly A's clients reconnected
  for (const c of moved) {
    const reconnecting = c.seen.find((s) => s.state === 'reconnecting');
    expect(reconnecting).toBeDefined();
    if (reconnecting?.state === 'reconnecting') expect(reconnecting.last.bye?.code).toBe('DRAINING');
  }
  for (const c of clients) expect(c.qBack).toEqual([]);
  // Everyone is on B now, and B alone serves the final state.
  const metrics = await (await fetch(b.url.replace('ws://', 'http://').replace('/v1/stream', '/metrics'))).text();
  expect(/^tickgate_connections (\d+)/m.exec(metrics)?.[1]).toBe('10');
}, 60_000);
