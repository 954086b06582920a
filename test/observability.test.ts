/**
 * Observability against real parts: a gateway fed by nats-server, real
 * clients, the scrape checked by promtool and against what the clients
 * counted themselves, the alert rules tested by promtool, and readiness
 * following the feed.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parse as parseYaml } from 'yaml';
import { runPanelQueries, type Panel } from './helpers/dashboard-panels.js';
import { sampleValue, startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ROOT } from './helpers/process.js';
import { TestClient } from './helpers/ws-client.js';

let nats: NatsServer;
let gw: TestGateway;
let pub: NatsConnection;

beforeAll(async () => {
  nats = await startNatsServer();
  gw = await startGateway({ nats: { servers: [nats.url], reconnectWaitMs: 50 }, ws: { heartbeatMs: 600_000 } });
  pub = await connect({ servers: nats.url });
});

afterAll(async () => {
  await pub?.close().catch(() => undefined);
  await gw?.stop();
  await nats?.stop();
});

const scrape = async () => (await fetch(`${gw.http}/metrics`)).text();

function promtool(args: string[], input?: string) {
  const r = spawnSync('promtool', args, { cwd: ROOT, input, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool not runnable (apt-get install prometheus): ${r.error.message}`);
  return r;
}

describe('metrics under load', () => {
  it('are promtool-clean and agree with what the clients received', async () => {
    const symbols = Array.from({ length: 50 }, (_, i) => `O${i}`);
    const clients = await Promise.all(Array.from({ length: 10 }, () => TestClient.connect(gw.url)));
    for (const c of clients) {
      c.send({ op: 'sub', symbols: symbols.slice(0, 20 + (clients.indexOf(c) % 30)) });
    }
    await Promise.all(clients.map((c) => c.next((m) => m.t === 'ack', 'ack')));
    const packr = new Packr({ useRecords: false });
    const ticks = 5000;
    for (let i = 0; i < ticks; i++) {
      const s = symbols[i % symbols.length]!;
      pub.publish(`md.sim.${s}`, packr.pack({ s, bid: i, ask: i + 1, seq: Math.floor(i / symbols.length) * (i % 7 === 0 ? 2 : 1), ts: Date.now() }));
      if (i % 500 === 0) await pub.flush();
    }
    await pub.flush();
    // Quiet: wait until the counters stop moving, then compare.
    let last = '';
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = String(sampleValue(await scrape(), 'tickgate_frames_sent_total', {}));
      if (now === last) break;
      last = now;
    }
    const text = await scrape();
    const check = promtool(['check', 'metrics'], text);
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);

    const received = { frames: 0, bytes: 0, byType: new Map<string, number>() };
    for (const c of clients) {
      received.frames += c.frames.length;
      received.bytes += c.bytes;
      for (const m of c.messages) received.byType.set(m.t, (received.byType.get(m.t) ?? 0) + 1);
    }
    expect(sampleValue(text, 'tickgate_frames_sent_total', {})).toBe(received.frames);
    expect(sampleValue(text, 'tickgate_sent_bytes_total', {})).toBe(received.bytes);
    for (const t of ['hello', 'ack', 'snap', 'upd', 'stat']) {
      expect(sampleValue(text, 'tickgate_messages_sent_total', { type: t })).toBe(received.byType.get(t) ?? 0);
    }
    expect(sampleValue(text, 'tickgate_ingest_ticks_total', { feed: 'sim' })).toBe(ticks);
    expect(sampleValue(text, 'tickgate_connections', {})).toBe(10);
    expect(sampleValue(text, 'tickgate_subscriptions', {})).toBe(clients.reduce((n, c, i) => n + 20 + (i % 30), 0));
    // Latency histograms: one ingest observation per tick with ts, one delivery observation per frame.
    expect(sampleValue(text, 'tickgate_ingest_latency_seconds_count', { feed: 'sim' })).toBe(ticks);
    expect(sampleValue(text, 'tickgate_ingest_latency_seconds_bucket', { feed: 'sim', le: '+Inf' })).toBe(ticks);
    expect(sampleValue(text, 'tickgate_delivery_latency_seconds_count', {})).toBe(received.frames);
    // On loopback nearly everything is delivered within 100 ms.
    const within100ms = sampleValue(text, 'tickgate_delivery_latency_seconds_bucket', { le: '0.1' });
    expect(within100ms / received.frames).toBeGreaterThan(0.9);
    // seq jumps by 2 on every 7th tick of a round: gaps are counted.
    expect(sampleValue(text, 'tickgate_ingest_seq_gaps_total', { feed: 'sim' })).toBeGreaterThan(0);

    await Promise.all(clients.map((c) => c.close()));
    await new Promise((r) => setTimeout(r, 100));
    const after = await scrape();
    expect(sampleValue(after, 'tickgate_connections_closed_total', { reason: 'remote' })).toBe(10);
    expect(sampleValue(after, 'tickgate_connections', {})).toBe(0);
  });

  it('references only exported metrics in the dashboards and alert rules', async () => {
    const text = await scrape();
    const exported = new Set([...text.matchAll(/^# TYPE (\w+) (\w+)/gm)].flatMap((m) => (m[2] === 'histogram' ? [m[1]!, `${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1]!])));
    const files = readdirSync(`${ROOT}dashboards`).filter((f) => /\.(json|ya?ml)$/.test(f) && !f.includes('.test.'));
    expect(files).toContain('alerts.yml');
    const referenced = new Set(files.flatMap((f) => [...readFileSync(`${ROOT}dashboards/${f}`, 'utf8').matchAll(/\b(?:tickgate|process|nodejs)_\w+/g)].map((m) => m[0])));
    expect(referenced.size).toBeGreaterThan(20);
    expect([...referenced].filter((n) => !exported.has(n))).toEqual([]);
  });

  it('has alert rules that pass promtool check and promtool test', () => {
    const check = promtool(['check', 'rules', 'dashboards/alerts.yml']);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const test = promtool(['test', 'rules', 'dashboards/alerts.test.yml']);
    expect(test.status, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toContain('SUCCESS');
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const h = fenced ? null : /^#{1,6} +(.+?) *#*$/.exec(line);
    if (!h) continue;
    const text = h[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replaceAll(' ', '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

describe('alert rules', () => {
  type Rule = { alert: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  const rules = (parseYaml(readFileSync(`${ROOT}dashboards/alerts.yml`, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
  const operations = readFileSync(`${ROOT}docs/OPERATIONS.md`, 'utf8');

  it('finds GitHub anchors as GitHub makes them', () => {
    expect([...headingAnchors('# Operating it\n## Health, readiness and rolling deploys\n```\n# not a heading\n```\n### `tap` and [SDK](x.md)\n## Health, readiness and rolling deploys\n')]).toEqual([
      'operating-it',
      'health-readiness-and-rolling-deploys',
      'tap-and-sdk',
      'health-readiness-and-rolling-deploys-1',
    ]);
  });

  it('give every alert a severity, critical or warning, and a runbook section of docs/OPERATIONS.md', () => {
    expect(rules.length).toBeGreaterThanOrEqual(8);
    const anchors = headingAnchors(operations);
    for (const r of rules) {
      expect(['critical', 'warning'], `${r.alert} severity`).toContain(r.labels?.['severity']);
      const url = r.annotations?.['runbook_url'] ?? '';
      expect(url, `${r.alert} runbook_url`).toBe(`docs/OPERATIONS.md#${r.alert.toLowerCase()}`);
      expect(anchors.has(url.split('#')[1]!), `${r.alert}: no heading in docs/OPERATIONS.md gives #${url.split('#')[1]}`).toBe(true);
      // The severity table there says why.
      expect(operations, `${r.alert} in the severity table`).toMatch(new RegExp(`^\\| \`${r.alert}\` \\| ${r.labels?.['severity']} \\|`, 'm'));
    }
  });

  it('watch file descriptors on the standard process metrics', () => {
    const fd = rules.find((r) => r.alert === 'TickgateFileDescriptorsNearLimit');
    expect(fd?.expr).toMatch(/process_open_fds \/ process_max_fds/);
  });
});

describe('dashboard panels of closes, upgrades, buffers, feeds and the process', () => {
  const dashboard = JSON.parse(readFileSync(`${ROOT}dashboards/tickgate.json`, 'utf8')) as { panels: Panel[] };
  const titled = (...titles: string[]) =>
    titles.map((t) => {
      const p = dashboard.panels.find((x) => x.title === t);
      expect(p, `panel "${t}"`).toBeDefined();
      return p!;
    });
  const METRICS = [
    'tickgate_connections_closed_total',
    'tickgate_upgrades_rejected_total',
    'tickgate_buffered_bytes',
    'tickgate_buffer_budget_bytes',
    'tickgate_feed_up',
    'tickgate_feed_stale',
    'tickgate_ready',
    'tickgate_build_info',
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'process_open_fds',
    'process_max_fds',
    'nodejs_eventloop_lag_p99_seconds',
    'nodejs_heap_size_used_bytes',
    'nodejs_heap_size_total_bytes',
    'nodejs_gc_duration_seconds_sum',
  ];

  it('return data over a real scrape: a slow client behind and then closed, a refused upgrade, a silent feed', async () => {
    const own = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [
        { name: 'sim', subject: 'md.sim.>', codec: 'msgpack', symbolField: 's' },
        { name: 'quiet', subject: 'md.quiet.>', codec: 'msgpack', symbolField: 's', staleAfterMs: 300 },
      ],
      origin: { allowed: ['https://trading.example.com'] },
      backpressure: { highWaterBytes: 64 * 1024, lowWaterBytes: 16 * 1024, slowConsumerMs: 1500 },
      ws: { heartbeatMs: 600_000 },
    });
    const metrics = async () => (await fetch(`${own.http}/metrics`)).text();
    try {
      // An upgrade from an origin not allowed is refused before any connection state.
      const status = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(own.url, { headers: { Origin: 'https://evil.example.net' } });
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => reject(new Error('upgrade from a refused origin was accepted')));
        ws.once('error', reject);
      });
      expect(status).toBe(403);

      // A client that stops reading falls behind (bytes buffered), then is closed as a slow consumer.
      const symbols = Array.from({ length: 200 }, (_, i) => `P${i}`);
      const slow = await TestClient.connect(own.url);
      slow.send({ op: 'sub', symbols });
      await slow.next((m) => m.t === 'ack', 'ack');
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const packr = new Packr({ useRecords: false });
      let i = 0;
      const round = async () => {
        for (const end = i + 2000; i < end; i++) {
          const s = symbols[i % symbols.length]!;
          pub.publish(`md.sim.${s}`, packr.pack({ s, bid: i + 0.25, ask: i + 0.5, bidSize: i, askSize: i + 1, last: i + 0.375, volume: i * 10, seq: i, ts: Date.now() }));
        }
        await pub.flush();
      };
      let behind = '';
      for (let n = 0; n < 200 && behind === ''; n++) {
        await round();
        const text = await metrics();
        if (sampleValue(text, 'tickgate_buffered_bytes', {}) > 0) behind = text;
      }
      expect(behind, 'a scrape with bytes buffered for the paused client').not.toBe('');
      const budget = runPanelQueries(behind, METRICS, titled('Bytes buffered for clients and the global budget'));
      expect(budget.output).toContain('SUCCESS');
      expect(budget.status, budget.output).toBe(0);
      expect(budget.queries).toBe(2);

      // Still publishing, so the paused client stays above its high water mark until it is closed.
      let closed = '';
      for (let n = 0; n < 200 && closed === ''; n++) {
        await round();
        await new Promise((r) => setTimeout(r, 50));
        const text = await metrics();
        const done = sampleValue(text, 'tickgate_connections_closed_total', { reason: 'SLOW_CONSUMER' }) > 0 && sampleValue(text, 'tickgate_feed_stale', { feed: 'quiet' }) === 1;
        if (done) closed = text;
      }
      expect(closed, 'a scrape after the slow consumer was closed and the quiet feed went stale').not.toBe('');
      const panels = titled(
        'Connections closed /s by reason',
        'Slow-consumer disconnects /s',
        'Upgrades rejected /s by code',
        'Feed up',
        'Feed stale',
        'Ready',
        'CPU',
        'Resident memory',
        'Event-loop lag p99',
        'Heap',
        'GC time /s',
        'File descriptors, share of limit',
        'Versions running',
      );
      const r = runPanelQueries(closed, METRICS, panels);
      expect(r.output).toContain('SUCCESS');
      expect(r.status, r.output).toBe(0);
      expect(r.queries).toBe(14);
      expect(sampleValue(closed, 'tickgate_upgrades_rejected_total', { code: 'ORIGIN_NOT_ALLOWED' })).toBe(1);
      expect(sampleValue(closed, 'tickgate_build_info', {})).toBe(1);
      expect(sampleValue(closed, 'process_start_time_seconds', {})).toBeGreaterThan(0);
    } finally {
      await own.stop();
    }
  }, 60_000);
});

describe('a separate metrics port', () => {
  it('serves /metrics, /healthz and /readyz there and only the stream on the main port', async () => {
    const own = await startGateway({ metrics: { port: 0 } });
    try {
      const admin = `http://127.0.0.1:${own.gateway.adminPort}`;
      expect(own.gateway.adminPort).not.toBe(own.gateway.port);
      expect((await fetch(`${admin}/metrics`)).status).toBe(200);
      expect((await fetch(`${admin}/readyz`)).status).toBe(200);
      expect((await fetch(`${admin}/healthz`)).status).toBe(200);
      expect((await fetch(`${own.http}/metrics`)).status).toBe(404);
      const c = await TestClient.connect(own.url);
      await c.next((m) => m.t === 'hello', 'hello');
      await c.close();
    } finally {
      await own.stop();
    }
  });
});

describe('health endpoints', () => {
  it('report alive, and ready only while the feed is connected, saying why not', async () => {
    const health = await fetch(`${gw.http}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${gw.http}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, reasons: [] });
    expect(sampleValue(await scrape(), 'tickgate_ready', {})).toBe(1);

    // The feed goes away: not ready, with the reason; /healthz is unaffected.
    await nats.stop();
    let body: { ready: boolean; reasons: string[] } = { ready: true, reasons: [] };
    let status = 200;
    for (let i = 0; i < 100 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const r = await fetch(`${gw.http}/readyz`);
      status = r.status;
      body = (await r.json()) as typeof body;
    }
    expect(status).toBe(503);
    expect(body.ready).toBe(false);
    expect(body.reasons.join(' ')).toMatch(/feed source nats is reconnecting/);
    const text = await scrape();
    expect(sampleValue(text, 'tickgate_ready', {})).toBe(0);
    expect(sampleValue(text, 'tickgate_feed_up', { source: 'nats' })).toBe(0);
    expect((await fetch(`${gw.http}/healthz`)).status).toBe(200);
  });
});
