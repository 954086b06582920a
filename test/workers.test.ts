/**
 * Multi-core mode on the real process: two worker threads on one port and
 * one NATS, metrics aggregated on metrics.port, drain of all workers.
 */
import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sampleValue } from './helpers/gateway.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ensureBuilt, spawnGateway, waitReady } from './helpers/process.js';
import { StateView, TestClient } from './helpers/ws-client.js';

let nats: NatsServer;
beforeAll(async () => {
  ensureBuilt();
  nats = await startNatsServer();
}, 120_000);
afterAll(() => nats?.stop());

it('runs two workers on one port, aggregates their metrics, serves the same state from both, and drains both', async () => {
  const port = await freePort();
  const admin = await freePort();
  const gw = spawnGateway({
    TICKGATE_PORT: String(port),
    TICKGATE_METRICS_PORT: String(admin),
    TICKGATE_NATS_SERVERS: nats.url,
    TICKGATE_WORKERS: '2',
    TICKGATE_DRAIN_WINDOW_MS: '200',
  });
  try {
    await waitReady(`http://127.0.0.1:${admin}/readyz`, 20_000);
    const url = `ws://127.0.0.1:${port}/v1/stream`;
    const symbols = ['W1', 'W2', 'W3'];
    const clients = await Promise.all(Array.from({ length: 24 }, () => TestClient.connect(url)));
    for (const c of clients) c.send({ op: 'sub', symbols });
    await Promise.all(clients.map((c) => c.next((m) => m.t === 'ack', 'ack')));
    // Connections are spread over both workers (session ids carry the thread).
    const threads = new Set(clients.map((c) => /^[0-9a-z]+\.(\d+)\./.exec(c.messages[0]!['sid'] as string)?.[1]));
    expect(threads.has(undefined)).toBe(false);
    expect(threads.size).toBe(2);

    const pub = await connect({ servers: nats.url });
    const packr = new Packr({ useRecords: false });
    for (let i = 1; i <= 200; i++) for (const s of symbols) pub.publish(`md.sim.${s}`, packr.pack({ s, bid: i, ask: i + 1, seq: i }));
    await pub.flush();
    await pub.close();
    for (const c of clients) {
      const v = await c.until((x) => {
        const view = new StateView().apply(x.messages);
        return symbols.every((s) => view.state.get(s)?.d['seq'] === 200) ? view : undefined;
      }, 'final state');
      expect(v.violations).toEqual([]);
      for (const s of symbols) expect(v.state.get(s)!.d).toEqual({ bid: 200, ask: 201, seq: 200 });
    }

    const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    expect(sampleValue(text, 'tickgate_connections', {})).toBe(24);
    expect(sampleValue(text, 'tickgate_subscriptions', {})).toBe(72);
    // Each worker ingests every tick.
    expect(sampleValue(text, 'tickgate_ingest_ticks_total', { feed: 'sim' })).toBe(2 * 600);
    const updSent = sampleValue(text, 'tickgate_messages_sent_total', { type: 'upd' }) + sampleValue(text, 'tickgate_messages_sent_total', { type: 'snap' });
    expect(updSent).toBe(clients.reduce((n, c) => n + c.messages.filter((m) => m.t === 'upd' || m.t === 'snap').length, 0));

    gw.proc.kill('SIGTERM');
    await Promise.all(clients.map((c) => c.next((m) => m.t === 'bye' && m['code'] === 'DRAINING', 'bye', 10_000)));
    expect(await gw.exited).toBe(0);
    expect(gw.stdout()).not.toContain('terminating it');
  } finally {
    gw.proc.kill('SIGKILL');
  }
}, 60_000);
