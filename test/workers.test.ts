/**
 * Multi-core mode on the real process: two worker threads on one port and
 * one NATS, metrics aggregated on metrics.port (counters summed, gauges per
 * worker, process metrics once and equal to what /proc says), drain of all
 * workers.
 */
import { readFileSync, readdirSync } from 'node:fs';
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

/** Every sample of `name` whose labels include `labels`, as label string -> value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/gm)) if (m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  return out;
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

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
    // Gauges of per-worker state: one series per worker, adding up to the process's.
    const connections = samples(text, 'tickgate_connections');
    expect([...connections.keys()].sort()).toEqual(['worker="0"', 'worker="1"']);
    for (const v of connections.values()) expect(v).toBeGreaterThan(0);
    expect(sum(connections)).toBe(24);
    expect(sum(samples(text, 'tickgate_subscriptions'))).toBe(72);
    expect([...samples(text, 'tickgate_symbols').values()]).toEqual([3, 3]);
    expect([...samples(text, 'tickgate_ready').values()]).toEqual([1, 1]);
    // Event-loop lag is each thread's own: the main thread's and each worker's.
    expect([...samples(text, 'nodejs_eventloop_lag_p99_seconds').keys()].sort()).toEqual(['worker="0"', 'worker="1"', 'worker="main"']);
    // Process-wide metrics appear once, unlabelled, and are the process's own (not a sum over threads).
    const pid = gw.proc.pid!;
    for (const n of ['process_resident_memory_bytes', 'process_open_fds', 'process_max_fds', 'process_start_time_seconds', 'process_cpu_seconds_total']) {
      expect([...samples(text, n).keys()], n).toEqual(['']);
    }
    const rss = Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
    expect(sampleValue(text, 'process_resident_memory_bytes', {}) / rss).toBeGreaterThan(0.8);
    expect(sampleValue(text, 'process_resident_memory_bytes', {}) / rss).toBeLessThan(1.25);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    expect(Math.abs(sampleValue(text, 'process_open_fds', {}) - fds)).toBeLessThanOrEqual(4);
    const maxFds = Number(/^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))![1]);
    expect(sampleValue(text, 'process_max_fds', {})).toBe(maxFds);
    expect(Math.abs(sampleValue(text, 'process_start_time_seconds', {}) - Date.now() / 1000)).toBeLessThan(60);
    expect(samples(text, 'tickgate_build_info').size).toBe(1);
    expect(sampleValue(text, 'tickgate_build_info', {})).toBe(1);
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
