/**
 * Soak scenario of the benchmark suite: a steady load with client churn for
 * N minutes, watching the gateway process for what only shows over time.
 *
 *   npm run bench -- --only soak --minutes 10
 *
 * The gateway runs as its own process on a real nats-server, fed by the
 * bounded publisher (load/publisher.ts) at a fixed rate. A few hundred
 * WebSocket clients, each subscribed to uniformly picked symbols, stay open;
 * a steady number per second are closed and replaced by new ones (a close,
 * then a fresh connect and subscribe), so every session, subscription and
 * socket the gateway ever held must be released for memory and descriptors
 * to stay flat. The clients run in this process: at this load they are
 * light, and they only count what arrives.
 *
 * Every ~10 s: the gateway's RSS (/proc/<pid>/status), its open descriptors
 * (/proc/<pid>/fd), its event-loop lag p99 from its /metrics, connections
 * and updates delivered. The verdict: RSS growth from minute 1 (warm-up
 * done) to the end, descriptors back to the baseline once every client has
 * closed, and the largest lag p99.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { MarketSim } from '../src/feed/market-sim.js';
import { rng } from '../load/book-sim.js';
import { freePort, gatewayEnv, nodeScript, procCpuTicks, procRss, scrape, sleep, startNats, unlessAborted, USER_HZ, waitUntil } from './procs.js';
import { fmt, int, mdTable, type TargetResult } from './report.js';
import type { Pinning } from './suite-fanout.js';

export interface SoakOptions {
  minutes: number;
  /** Clients kept open. */
  clients: number;
  symbolsPerClient: number;
  /** Symbols the publisher cycles through. */
  symbols: number;
  /** Ticks per second. */
  rate: number;
  /** Clients closed and replaced per second. */
  churnPerSec: number;
  /** Seconds between samples. */
  sampleS: number;
  pinning: Pinning | null;
}

export const SOAK_DEFAULTS = { clients: 300, symbolsPerClient: 10, symbols: 2000, rate: 2000, churnPerSec: 5, sampleS: 10 } as const;

/** One sample of the gateway process. */
export interface SoakSample {
  /** Seconds since the clients were opened. */
  t: number;
  rssMiB: number | null;
  fds: number | null;
  /** Event-loop lag p99 (ms) as the gateway's /metrics reports it. */
  lagP99Ms: number | null;
  connections: number | null;
  /** Updates the clients received per second since the previous sample. */
  updatesPerSec: number;
  /** Clients replaced since the previous sample. */
  churned: number;
  /** Gateway CPU (% of one core) since the previous sample. */
  cpuPercent: number | null;
}

export interface SoakResult {
  options: Omit<SoakOptions, 'pinning'>;
  /** The lag metric read (its name changed once; whichever the gateway exports). */
  lagMetric: string | null;
  /** Before any client connected. */
  baseline: { rssMiB: number | null; fds: number | null };
  samples: SoakSample[];
  /** After every client closed and the gateway counted 0 connections. */
  after: { rssMiB: number | null; fds: number | null; connections: number | null } | null;
  churnedTotal: number;
  /** Connections that failed to open or closed without being asked to. */
  clientErrors: number;
  verdict: TargetResult[];
  error: string | null;
}

/** The gateway's event-loop lag p99 under its standard name; before it, prom-client's name had a prefix (tickgate_process_). */
const LAG_METRIC = 'nodejs_eventloop_lag_p99_seconds';

/** The name the gateway exports its event-loop lag p99 under: the standard one, else a prefixed one. */
function lagMetricOf(m: Map<string, number>): string | null {
  if (m.has(LAG_METRIC)) return LAG_METRIC;
  for (const name of m.keys()) if (name.endsWith(`_${LAG_METRIC}`)) return name;
  return null;
}
/** RSS growth from minute 1 to the end that still counts as flat. */
const RSS_GROWTH_LIMIT = 0.1;
/** Descriptors above the baseline that still count as back (a NATS reconnect, a timer fd). */
const FD_SLACK = 2;
const LAG_LIMIT_MS = 50;
const CONNECT_TIMEOUT_MS = 10_000;
const CLOSE_WAIT_MS = 15_000;

const round1 = (x: number) => Math.round(x * 10) / 10;
const mib = (b: number | null) => (b === null ? null : round1(b / 2 ** 20));

function procFds(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** The clients: open, subscribed, counting frames; replaced one at a time. */
class ClientPool {
  updates = 0;
  errors = 0;
  private readonly open = new Set<WebSocket>();
  private readonly pending = new Set<Promise<void>>();
  /** Clients closed by churn(), whose close is expected. */
  private readonly closing = new Set<WebSocket>();
  private stopping = false;

  constructor(
    private readonly url: string,
    private readonly symbols: readonly string[],
    private readonly perClient: number,
    private readonly random: () => number,
  ) {}

  get size(): number {
    return this.open.size;
  }

  /** Opens one client; resolves once it has subscribed (or failed, counted). */
  connect(): Promise<void> {
    const pick: string[] = [];
    for (let i = 0; i < this.perClient; i++) pick.push(this.symbols[Math.floor(this.random() * this.symbols.length)]!);
    const p = new Promise<void>((resolve) => {
      const ws = new WebSocket(this.url, { perMessageDeflate: false, handshakeTimeout: CONNECT_TIMEOUT_MS });
      let subscribed = false;
      const done = () => {
        this.pending.delete(p);
        resolve();
      };
      ws.on('message', () => {
        // The gateway says hello first; subscribe then.
        if (!subscribed) {
          subscribed = true;
          ws.send(JSON.stringify({ op: 'sub', id: 1, symbols: pick }));
          this.open.add(ws);
          done();
        } else this.updates++;
      });
      ws.on('error', () => undefined);
      ws.on('close', () => {
        this.open.delete(ws);
        // A close this pool did not ask for (refused, dropped, a bye) is an error.
        if (!this.closing.delete(ws) && !this.stopping) this.errors++;
        if (!subscribed) done();
      });
    });
    this.pending.add(p);
    return p;
  }

  /** Closes one open client (chosen at random) and opens another in its place. */
  churn(): Promise<void> {
    if (this.open.size === 0) return this.connect();
    const k = Math.floor(this.random() * this.open.size);
    let i = 0;
    for (const ws of this.open) {
      if (i++ !== k) continue;
      this.open.delete(ws);
      this.closing.add(ws);
      ws.close(1000);
      break;
    }
    return this.connect();
  }

  /** Closes every client; resolves once all are closed or after `ms`. */
  async closeAll(ms: number): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.pending]);
    const all = [...this.open];
    const closed = all.map((ws) => new Promise<void>((resolve) => (ws.readyState === WebSocket.CLOSED ? resolve() : ws.once('close', () => resolve()))));
    for (const ws of all) ws.close(1000);
    await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, ms).unref())]);
    for (const ws of all) ws.terminate();
  }
}

export async function runSoak(o: SoakOptions, signal: AbortSignal, log: (s: string) => void): Promise<SoakResult> {
  const { pinning, ...options } = o;
  const result: SoakResult = {
    options,
    lagMetric: null,
    baseline: { rssMiB: null, fds: null },
    samples: [],
    after: null,
    churnedTotal: 0,
    clientErrors: 0,
    verdict: [],
    error: null,
  };
  const stops: Array<() => Promise<unknown>> = [];
  let pool: ClientPool | null = null;
  try {
    const nats = await unlessAborted(startNats({ cpus: pinning?.others ?? null }), signal);
    stops.push(() => nats.stop());
    const port = await freePort();
    const metricsPort = await freePort();
    const http = `http://127.0.0.1:${metricsPort}`;
    const tmp = mkdtempSync(join(tmpdir(), 'tickgate-soak-'));
    stops.push(async () => rmSync(tmp, { recursive: true, force: true }));
    // All clients come from 127.0.0.1: no per-address cap.
    writeFileSync(join(tmp, 'gateway.json'), JSON.stringify({ limits: { maxConnectionsPerIp: 0 } }));
    const gw = nodeScript('gateway', 'src/main.ts', ['--config', join(tmp, 'gateway.json')], {
      env: gatewayEnv(nats.url, port, { TICKGATE_METRICS_PORT: String(metricsPort) }),
      cpus: pinning?.server ?? null,
    });
    stops.push(() => gw.stop(15_000));
    await waitUntil(async () => (await fetch(`${http}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, gw, signal);
    const runS = o.minutes * 60;
    const publisher = nodeScript(
      'publisher',
      'load/publisher.ts',
      ['--url', nats.url, '--symbols', String(o.symbols), '--rate', String(o.rate), '--duration', String(runS + 120), '--control'],
      { cpus: pinning?.others ?? null, stdin: true },
    );
    stops.push(() => publisher.stop());
    await publisher.next('ready', 30_000);
    await waitUntil(async () => ((await scrape(http)).get('tickgate_symbols') ?? 0) >= o.symbols, gw, signal);
    await sleep(2000, signal);
    const first = await scrape(http);
    result.lagMetric = lagMetricOf(first);
    result.baseline = { rssMiB: mib(procRss(gw.pid)), fds: procFds(gw.pid) };
    log(`soak: baseline RSS ${result.baseline.rssMiB} MiB, ${result.baseline.fds} fds; lag from ${result.lagMetric ?? 'no lag metric'}`);

    const symbols = new MarketSim({ symbols: o.symbols, seed: 1 }).symbols;
    // Seeded, so two runs open the same subscriptions.
    pool = new ClientPool(`ws://127.0.0.1:${port}/v1/stream`, symbols, o.symbolsPerClient, rng(7));
    // Open at 100 per second, so opening is not itself a storm.
    for (let i = 0; i < o.clients && !signal.aborted; i++) {
      void pool.connect();
      if (i % 10 === 9) await sleep(100, signal);
    }
    await waitUntil(async () => pool!.size >= o.clients, gw, signal);
    log(`soak: ${pool.size} clients open; churning ${o.churnPerSec}/s for ${o.minutes} min`);

    const t0 = performance.now();
    const churnEveryMs = 1000 / o.churnPerSec;
    let nextChurn = t0 + churnEveryMs;
    let nextSample = t0 + o.sampleS * 1000;
    let lastSample = t0;
    let lastUpdates = pool.updates;
    let lastCpu = procCpuTicks(gw.pid);
    let churned = 0;
    const end = t0 + runS * 1000;
    for (let last = false; !last && !signal.aborted; ) {
      const now = performance.now();
      // One more sample at the end, however the period falls.
      last = now >= end;
      if (!gw.running) throw new Error(`gateway exited: ${gw.stderr().slice(-2000)}`);
      while (!last && nextChurn <= now) {
        void pool.churn();
        churned++;
        nextChurn += churnEveryMs;
      }
      if (now >= nextSample || last) {
        const m = await scrape(http);
        const cpu = procCpuTicks(gw.pid);
        const secs = (now - lastSample) / 1000;
        const lag = result.lagMetric === null ? undefined : m.get(result.lagMetric);
        const s: SoakSample = {
          t: Math.round((now - t0) / 1000),
          rssMiB: mib(procRss(gw.pid)),
          fds: procFds(gw.pid),
          lagP99Ms: lag === undefined ? null : round1(lag * 1000),
          connections: m.get('tickgate_connections') ?? null,
          updatesPerSec: Math.round((pool.updates - lastUpdates) / secs),
          churned,
          cpuPercent: cpu !== null && lastCpu !== null ? round1(((cpu - lastCpu) / USER_HZ / secs) * 100) : null,
        };
        result.samples.push(s);
        result.churnedTotal += churned;
        log(`soak: ${s.t} s: RSS ${s.rssMiB} MiB, ${s.fds} fds, lag p99 ${s.lagP99Ms} ms, ${s.connections} connections, ${s.updatesPerSec} updates/s, ${s.churned} replaced`);
        churned = 0;
        lastSample = now;
        lastUpdates = pool.updates;
        lastCpu = cpu;
        nextSample += o.sampleS * 1000;
      }
      if (!last) await sleep(Math.max(1, Math.min(nextChurn, nextSample, end) - performance.now()), signal);
    }
    result.churnedTotal += churned;

    // Everyone leaves: descriptors and connections must return to the baseline.
    await pool.closeAll(CLOSE_WAIT_MS);
    result.clientErrors = pool.errors;
    await waitUntil(async () => (await scrape(http)).get('tickgate_connections') === 0, gw, signal, CLOSE_WAIT_MS).catch(() => undefined);
    await sleep(2000, signal);
    const m = await scrape(http);
    result.after = { rssMiB: mib(procRss(gw.pid)), fds: procFds(gw.pid), connections: m.get('tickgate_connections') ?? null };
  } catch (err) {
    result.error = (err as Error).message;
    log(`soak failed: ${result.error}`);
  } finally {
    await pool?.closeAll(2000).catch(() => undefined);
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
  result.verdict = soakVerdict(result);
  return result;
}

/** RSS growth from minute 1 to the end, descriptors after the churn, the largest lag p99. */
export function soakVerdict(r: SoakResult): TargetResult[] {
  const out: TargetResult[] = [];
  const s = r.samples;
  // Minute 1 (warm-up done): the first sample at or after 60 s, if one comes before the last.
  const target = `RSS growth from minute 1 to the end < ${RSS_GROWTH_LIMIT * 100}%`;
  const to = s.at(-1);
  const from = s.find((x) => x.t >= 60 && x !== to);
  const pct = (a: SoakSample, b: SoakSample) => {
    const g = ((b.rssMiB! - a.rssMiB!) / a.rssMiB!) * 100;
    return `${fmt(a.rssMiB)} MiB at ${a.t} s to ${fmt(b.rssMiB)} MiB at ${b.t} s (${g >= 0 ? '+' : ''}${fmt(g)}%)`;
  };
  if (from?.rssMiB == null || to?.rssMiB == null) {
    // A run of a minute or two is all warm-up: its growth is shown, not judged.
    const first = s[0];
    const seen = first?.rssMiB != null && to?.rssMiB != null && first !== to ? `; warm-up only: ${pct(first, to)}` : '';
    out.push({ target, verdict: 'not measured', detail: (r.error ?? 'no sample after minute 1 before the end (run at least 2 minutes)') + seen });
  } else {
    const growth = (to.rssMiB - from.rssMiB) / from.rssMiB;
    out.push({ target, verdict: growth < RSS_GROWTH_LIMIT ? 'met' : 'missed', detail: pct(from, to) });
  }
  const base = r.baseline.fds;
  const after = r.after?.fds ?? null;
  out.push(
    base === null || after === null
      ? { target: 'open fds back to baseline after the churn', verdict: 'not measured', detail: r.error ?? 'no sample' }
      : {
          target: 'open fds back to baseline after the churn',
          verdict: after <= base + FD_SLACK && r.after?.connections === 0 ? 'met' : 'missed',
          detail: `${base} before any client, ${int(Math.max(...s.map((x) => x.fds ?? 0)))} at most with ${int(r.options.clients)} clients, ${after} after all closed (${int(r.after?.connections)} connections), ${int(r.churnedTotal)} clients replaced`,
        },
  );
  const lags = s.map((x) => x.lagP99Ms).filter((x): x is number => x !== null);
  out.push(
    lags.length === 0
      ? { target: `event-loop lag p99 < ${LAG_LIMIT_MS} ms`, verdict: 'not measured', detail: r.lagMetric === null ? 'the gateway exports no lag p99 metric' : (r.error ?? 'no sample') }
      : {
          target: `event-loop lag p99 < ${LAG_LIMIT_MS} ms`,
          verdict: Math.max(...lags) < LAG_LIMIT_MS ? 'met' : 'missed',
          detail: `max ${fmt(Math.max(...lags))} ms over ${lags.length} samples (${r.lagMetric}; includes prom-client's 20 ms sampling resolution)`,
        },
  );
  return out;
}

/** The soak section of the report: a table over time and the verdict. */
export function soakText(r: SoakResult): string {
  const o = r.options;
  const out = [
    '## Soak',
    '',
    `${o.minutes} min, ${int(o.clients)} clients x ${o.symbolsPerClient} uniformly picked symbols of ${int(o.symbols)}, ${int(o.rate)} ticks/s, ` +
      `${o.churnPerSec} clients closed and replaced per second, a sample every ${o.sampleS} s. ` +
      `Baseline before any client: RSS ${fmt(r.baseline.rssMiB)} MiB, ${int(r.baseline.fds)} fds.`,
    '',
  ];
  if (r.error) out.push(`**Failed:** ${r.error}`, '');
  out.push(
    mdTable(
      ['s', 'gateway RSS MiB', 'open fds', 'lag p99 ms', 'connections', 'updates/s received', 'replaced', 'gateway % core'],
      r.samples.map((s) => [String(s.t), fmt(s.rssMiB), int(s.fds), fmt(s.lagP99Ms), int(s.connections), int(s.updatesPerSec), int(s.churned), fmt(s.cpuPercent)]),
      ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  if (r.after) out.push('', `After every client closed: RSS ${fmt(r.after.rssMiB)} MiB, ${int(r.after.fds)} fds, ${int(r.after.connections)} connections; ${int(r.clientErrors)} client errors.`);
  out.push('', mdTable(['check', 'verdict', 'detail'], r.verdict.map((v) => [v.target, v.verdict, v.detail]), ['l', 'l', 'l']));
  return out.join('\n') + '\n';
}
