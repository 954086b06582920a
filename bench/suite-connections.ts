/**
 * Connections scenario of the benchmark suite: idle-ish clients, 10
 * uniformly picked symbols each on a slow feed, ramped in steps towards
 * 20,000 connections. Per step: gateway RSS and RSS per connection (RSS
 * growth since before the first connection, divided by the connections
 * open), subscribe latency (`sub` sent to `ack` received) and connect
 * latency; at the largest count, a short window of the idle stream.
 *
 * Each client process holds at most 5,000 connections, from a source address
 * of its own (127.0.0.2, 127.0.0.3, ...; see load/source-addresses.ts). The
 * gateway holds one file descriptor per connection, so the count is capped
 * by the open-files hard limit, which this process cannot raise; the report
 * says so when it applies.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OpenedReport, WindowReport } from '../load/bench-client.js';
import { mergeHistograms, summarize } from '../load/latency.js';
import { loopbackAddress } from '../load/source-addresses.js';
import {
  freePort,
  gatewayEnv,
  nodeScript,
  openFileLimits,
  procCpuTicks,
  procRss,
  scrape,
  sleep,
  startNats,
  unlessAborted,
  USER_HZ,
  waitUntil,
  type Proc,
} from './procs.js';
import type { ConnectionStep, ConnectionsResult } from './report.js';
import type { Pinning } from './suite-fanout.js';

export interface ConnectionsOptions {
  connections: number;
  quick: boolean;
  workers: number | null;
  pinning: Pinning | null;
}

const SYMBOLS = 2000;
const PER_CLIENT = 10;
/** Ticks per second: with uniform picks each symbol has ~100 subscribers at 20,000 connections, so ~10,000 updates/s. */
const RATE = 100;
const PER_PROC = 5000;
/** Descriptors the gateway needs besides its connections (listen sockets, NATS, epoll, stdio, files). */
const FD_RESERVE = 100;
const FIRST_SOURCE = '127.0.0.2';
const OPEN_MS = 180_000;
const SETTLE_MS = 2000;

const round1 = (x: number) => Math.round(x * 10) / 10;

export async function runConnections(o: ConnectionsOptions, signal: AbortSignal, log: (s: string) => void): Promise<ConnectionsResult> {
  const limits = openFileLimits();
  const cap = Number.isFinite(limits.hard) ? limits.hard - FD_RESERVE : Infinity;
  const target = Math.max(1, Math.min(o.connections, cap));
  const limitNote =
    target < o.connections
      ? `open-files hard limit ${limits.hard} per process, which cannot be raised here (no CAP_SYS_RESOURCE); ${FD_RESERVE} kept for the gateway's other descriptors`
      : null;
  const nofile = limits.soft < target + FD_RESERVE ? Math.min(limits.hard, target + FD_RESERVE) : undefined;
  const procs = Math.ceil(target / PER_PROC);
  const fractions = o.quick ? [0.5, 1] : [0.25, 0.5, 0.75, 1];
  const result: ConnectionsResult = {
    requested: o.connections,
    target,
    limitNote,
    symbolsPerClient: PER_CLIENT,
    rate: RATE,
    sourceAddresses: [],
    clientProcs: procs,
    baselineRssMiB: null,
    steps: [],
    idle: null,
    error: null,
  };
  const stops: Array<() => Promise<unknown>> = [];
  const pin = o.pinning;
  try {
    const nats = await unlessAborted(startNats({ cpus: pin?.others ?? null }), signal);
    stops.push(() => nats.stop());
    const port = await freePort();
    // Several workers serve their aggregated metrics and probes on a port of their own.
    const metricsPort = o.workers !== null && o.workers > 1 ? await freePort() : null;
    const http = `http://127.0.0.1:${metricsPort ?? port}`;
    const tmp = mkdtempSync(join(tmpdir(), 'tickgate-bench-'));
    stops.push(async () => rmSync(tmp, { recursive: true, force: true }));
    writeFileSync(join(tmp, 'gateway.json'), JSON.stringify({ limits: { maxConnectionsPerIp: 0 } }));
    const gw = nodeScript('gateway', 'src/main.ts', ['--config', join(tmp, 'gateway.json')], {
      env: gatewayEnv(nats.url, port, {
        ...(o.workers !== null ? { TICKGATE_WORKERS: String(o.workers) } : {}),
        ...(metricsPort !== null ? { TICKGATE_METRICS_PORT: String(metricsPort) } : {}),
      }),
      cpus: pin?.server ?? null,
      ...(nofile !== undefined ? { nofile } : {}),
    });
    stops.push(() => gw.stop(15_000));
    await waitUntil(async () => (await fetch(`${http}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, gw, signal);
    const lifeS = String(600);
    const publisher = nodeScript('publisher', 'load/publisher.ts', ['--url', nats.url, '--symbols', String(SYMBOLS), '--rate', String(RATE), '--duration', lifeS, '--control'], {
      cpus: pin?.others ?? null,
      stdin: true,
    });
    stops.push(() => publisher.stop());
    await publisher.next('ready', 30_000);
    await waitUntil(async () => ((await scrape(http)).get('tickgate_symbols') ?? 0) >= SYMBOLS, gw, signal);
    await sleep(1000, signal);
    const rss0 = procRss(gw.pid);
    result.baselineRssMiB = rss0 === null ? null : round1(rss0 / 2 ** 20);

    const clients: Proc[] = [];
    for (let k = 0; k < procs; k++) {
      const src = loopbackAddress(FIRST_SOURCE, k);
      result.sourceAddresses.push(src);
      const c = nodeScript(
        `connections load ${k + 1}`,
        'load/bench-client.ts',
        [
          '--protocol', 'tickgate',
          '--url', `ws://127.0.0.1:${port}/v1/stream`,
          '--symbols-per-client', String(PER_CLIENT),
          '--universe', String(SYMBOLS),
          '--uniform',
          '--seed', '11',
          '--client-offset', String(k * PER_PROC),
          '--source-address', src,
          '--connect-rate', o.quick ? '1000' : '1500',
          '--duration', lifeS,
          '--control',
        ],
        { cpus: pin?.others ?? null, stdin: true, ...(nofile !== undefined ? { nofile: Math.min(limits.hard, PER_PROC + FD_RESERVE) } : {}) },
      );
      clients.push(c);
      stops.push(() => c.stop());
    }

    for (const f of fractions) {
      const want = Math.round(target * f);
      const g0 = procCpuTicks(gw.pid);
      const t0 = performance.now();
      const opened = await unlessAborted(
        Promise.all(
          clients.map((c, k) => {
            c.send(`open ${Math.floor(want / procs) + (k < want % procs ? 1 : 0)}`);
            return c.next<OpenedReport>('opened', OPEN_MS);
          }),
        ),
        signal,
      );
      const rampS = (performance.now() - t0) / 1000;
      const g1 = procCpuTicks(gw.pid);
      await sleep(SETTLE_MS, signal);
      const rss = procRss(gw.pid);
      const open = (await scrape(http)).get('tickgate_connections') ?? opened.reduce((a, r) => a + r.open, 0);
      const failures: Record<string, number> = {};
      for (const r of opened) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
      const sub = mergeHistograms(opened.map((r) => r.subscribeUs));
      const con = mergeHistograms(opened.map((r) => r.connectUs));
      const step: ConnectionStep = {
        target: want,
        open,
        failed: opened.reduce((a, r) => a + r.failed, 0),
        failures,
        rampSeconds: round1(rampS),
        gatewayRssMiB: rss === null ? null : round1(rss / 2 ** 20),
        rssPerConnKiB: rss !== null && rss0 !== null && open > 0 ? Math.round(((rss - rss0) / open / 1024) * 100) / 100 : null,
        gatewayCpuPercent: g0 !== null && g1 !== null && rampS > 0 ? round1(((g1 - g0) / USER_HZ / rampS) * 100) : null,
        subscribeMs: summarize(sub),
        connectMs: summarize(con),
      };
      sub.destroy();
      con.destroy();
      result.steps.push(step);
      log(`connections: ${open} open, RSS ${step.gatewayRssMiB} MiB (${step.rssPerConnKiB} KiB each), subscribe p99 ${step.subscribeMs.p99} ms`);
      if (step.failed > 0 && open < want * 0.9) break;
    }

    // The idle-ish stream at the largest count.
    const windowS = o.quick ? 3 : 5;
    const m0 = await scrape(http);
    const g0 = procCpuTicks(gw.pid);
    const t0 = performance.now();
    for (const c of clients) c.send(`start ${RATE}`);
    await Promise.all(clients.map((c) => c.next('started', 15_000)));
    await sleep(windowS * 1000, signal);
    for (const c of clients) c.send('stop');
    const windows = await Promise.all(clients.map((c) => c.next<WindowReport>('window', 15_000)));
    const secs = (performance.now() - t0) / 1000;
    const g1 = procCpuTicks(gw.pid);
    const m1 = await scrape(http);
    const lat = mergeHistograms(windows.map((w) => w.latencyUs));
    const hb = (m1.get('tickgate_messages_sent_total{type="hb"}') ?? NaN) - (m0.get('tickgate_messages_sent_total{type="hb"}') ?? NaN);
    result.idle = {
      deliveredPerSec: round1(windows.reduce((a, w) => a + w.updates, 0) / secs),
      latency: summarize(lat),
      gatewayCpuPercent: g0 !== null && g1 !== null ? round1(((g1 - g0) / USER_HZ / secs) * 100) : null,
      hbPerSec: Number.isFinite(hb) ? round1(hb / secs) : null,
    };
    lat.destroy();
  } catch (err) {
    result.error = (err as Error).message;
    log(`connections failed: ${result.error}`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
  return result;
}
