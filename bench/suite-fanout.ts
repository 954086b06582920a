/**
 * Fan-out scenario of the benchmark suite: one open-loop publisher, one
 * server under test, `loadProcs` processes of subscribers, and the tick rate
 * raised step by step until the server or the machine gives out.
 *
 * Per system: nats-server (the bus; for nats-ws it is the server under
 * test, with its WebSocket listener), the server (tickgate's gateway from
 * source, or bench/baselines/ws-json-gateway.ts), load/publisher.ts warming
 * every symbol, then the clients (load/bench-client.ts) connect and
 * subscribe. Each step sets the publisher's rate, lets it settle, then
 * measures a window: the clients count and histogram what arrives, and CPU
 * and RSS of every process come from /proc at the window's edges.
 */
import { readdirSync, mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientSymbolPicker, type WindowReport, type OpenedReport } from '../load/bench-client.js';
import { mergeHistograms, summarize, tickShares } from '../load/latency.js';
import { MarketSim } from '../src/feed/market-sim.js';
import type { PublisherStats } from '../load/publisher.js';
import { summarizeProfileFile, type MonoWindow } from './cpu-profile.js';
import {
  freePort,
  cpuBusy,
  gatewayEnv,
  machineCpu,
  nodeScript,
  procCpuSplit,
  procCpuTicks,
  procThreadTicks,
  procRss,
  ROOT,
  scrape,
  sleep,
  startNats,
  unlessAborted,
  USER_HZ,
  varz,
  type Nats,
  type Proc,
} from './procs.js';
import { heldText, int, stepLabel, type FanoutResult, type FanoutStep, type Flush, type System } from './report.js';

export interface Pinning {
  server: string;
  serverCores: number;
  others: string;
  otherCores: number;
}

export interface FanoutOptions {
  systems: System[];
  /** Extra tickgate runs after the default (adaptive) one, with `ws.flushAdaptive: false` and each `ws.flushIntervalMs` here (0: immediate). */
  flushMs: number[];
  /** Passes over all runs; every other one in reverse order, each run repeating the steps it completed in the first. */
  rounds: number;
  steps: number[];
  windowS: number;
  settleS: number;
  clients: number;
  symbolsPerClient: number;
  symbols: number;
  loadProcs: number;
  workers: number | null;
  pinning: Pinning | null;
  /** Write the tickgate gateway's CPU profiles here, one folder per run; null: no profiling. */
  profileDir: string | null;
}

/** Seed of the subscriptions: the same clients want the same symbols in every run. */
const SEED = 7;
const ZIPF = 1.1;
const READY_MS = 30_000;
const OPEN_MS = 150_000;
/** Commands answered at once by an idle process; a load process drowning in data may take far longer. */
const CMD_MS = 15_000;
/** How long a window's start and report may take: generous, but a drowned load process should not hold the run for minutes. */
const windowCmdMs = (o: FanoutOptions) => Math.max(20_000, 3 * o.windowS * 1000);
/** Load-side CPUs busier than this: the next step would measure the load clients, not the server. */
const LOAD_SATURATED = 95;
/** Extra settling before the first step: JIT warm-up of every process. */
const FIRST_WARMUP_S = 5;
// Step verdicts.
const P99_LIMIT_MS = 50;
/** A p99 this high stops the ramp at once; one between P99_LIMIT_MS and this only when the step before was above P99_LIMIT_MS too. */
const P99_FAR_OVER_MS = 500;
const BEHIND = 0.9;
const PINNED = 90;
/** Other processes' CPU (% of a core) above which a step's figures are called noisy. */
const NOISY = 20;

const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Updates per tick the subscriptions imply: the sum, over every client's
 * symbols, of the symbol's share of the feed's ticks.
 */
export function expectedFanout(symbols: number, clients: number, perClient: number, seed: number, zipf: number): number {
  const pick = clientSymbolPicker(symbols, zipf, false, seed);
  // Same universe and order as the publisher's MarketSim.
  const shares = tickShares(new MarketSim({ symbols, seed: 1 }).symbols, zipf);
  let sum = 0;
  for (let i = 0; i < clients; i++) for (const s of pick(i, perClient)) sum += shares.get(s) ?? 0;
  return sum;
}

interface Sample {
  at: number;
  server: number | null;
  serverThreads: Map<string, number>;
  serverSplit: { user: number; system: number } | null;
  bus: number | null;
  publisher: number | null;
  clients: Array<number | null>;
  machine: ReturnType<typeof machineCpu>;
}

/** One system's run: tickgate with a flush schedule, or a baseline (flush null). */
interface Run {
  system: System;
  flush: Flush | null;
  round: number;
}

/** The processes of one system's run. */
interface Rig {
  nats: Nats;
  /** The process whose CPU is "server": the gateway, the ws gateway, or nats-server. */
  serverPid: number;
  busPid: number | null;
  gateway: Proc | null;
  http: string | null;
  publisher: Proc;
  clients: Proc[];
}

function sample(rig: Rig): Sample {
  return {
    at: performance.now(),
    server: procCpuTicks(rig.serverPid),
    serverThreads: procThreadTicks(rig.serverPid),
    serverSplit: procCpuSplit(rig.serverPid),
    bus: rig.busPid === null ? null : procCpuTicks(rig.busPid),
    publisher: procCpuTicks(rig.publisher.pid),
    clients: rig.clients.map((c) => procCpuTicks(c.pid)),
    machine: machineCpu(),
  };
}

const pct = (a: number | null | undefined, b: number | null | undefined, seconds: number) =>
  a === null || a === undefined || b === null || b === undefined || seconds <= 0 ? null : round1(((b - a) / USER_HZ / seconds) * 100);

/** Polls `check` every 200 ms until it holds; fails if `proc` exits or `ms` pass. */
export async function waitFor(what: string, check: () => Promise<boolean>, proc: Proc | null, ms: number, signal: AbortSignal): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (proc !== null && !proc.running) throw new Error(`${proc.name} exited while waiting for ${what}: ${proc.stderr().slice(-2000)}`);
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await sleep(200, signal);
  }
}

const metricDelta = (m0: Map<string, number>, m1: Map<string, number>, key: string) => (m1.get(key) ?? 0) - (m0.get(key) ?? 0);

/** Starts everything for `system`; `stops` collects what to stop, in reverse order. */
async function startRig({ system, flush, round }: Run, o: FanoutOptions, stops: Array<() => Promise<unknown>>, signal: AbortSignal, log: (s: string) => void): Promise<Rig> {
  const pin = o.pinning;
  const nats = await unlessAborted(startNats({ websocket: system === 'nats-ws', cpus: system === 'nats-ws' ? (pin?.server ?? null) : (pin?.others ?? null) }), signal);
  stops.push(() => nats.stop());
  // Bounded life of every child: all steps, with a wide margin.
  const lifeS = String(Math.ceil(120 + o.steps.length * (o.windowS + o.settleS + 20)));
  let gateway: Proc | null = null;
  let http: string | null = null;
  let url: string;
  if (system === 'tickgate') {
    const port = await freePort();
    // Several workers serve their aggregated metrics and probes on a port of their own.
    const metricsPort = o.workers !== null && o.workers > 1 ? await freePort() : null;
    http = `http://127.0.0.1:${metricsPort ?? port}`;
    const tmp = mkdtempSync(join(tmpdir(), 'tickgate-bench-'));
    stops.push(async () => rmSync(tmp, { recursive: true, force: true }));
    const config = join(tmp, 'gateway.json');
    // No per-address cap (every client comes from loopback); lists and subscriptions as large as the universe.
    writeFileSync(
      config,
      JSON.stringify({
        limits: { maxConnectionsPerIp: 0, maxListSymbols: Math.max(1000, o.symbols), maxSymbolsPerClient: Math.max(2000, o.symbolsPerClient) },
        ws: flush === null || flush === 'adaptive' ? {} : { flushIntervalMs: flush, flushAdaptive: false },
      }),
    );
    const g = nodeScript('gateway', 'src/main.ts', ['--config', config], {
      env: gatewayEnv(nats.url, port, {
        ...(o.workers !== null ? { TICKGATE_WORKERS: String(o.workers) } : {}),
        ...(metricsPort !== null ? { TICKGATE_METRICS_PORT: String(metricsPort) } : {}),
      }),
      cpus: pin?.server ?? null,
      nodeArgs: o.profileDir && round === 0 ? ['--cpu-prof', `--cpu-prof-dir=${profileDirFor(o.profileDir, flush ?? 'adaptive')}`] : [],
    });
    gateway = g;
    stops.push(() => g.stop(10_000));
    await waitFor('gateway /readyz', async () => (await fetch(`${http}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, g, READY_MS, signal);
    url = `ws://127.0.0.1:${port}/v1/stream`;
  } else if (system === 'ws-json') {
    const port = await freePort();
    http = `http://127.0.0.1:${port}`;
    const g = nodeScript('ws-json gateway', 'bench/baselines/ws-json-gateway.ts', ['--nats', nats.url, '--port', String(port)], { cpus: pin?.server ?? null });
    gateway = g;
    stops.push(() => g.stop());
    await g.next('listening', READY_MS);
    url = `ws://127.0.0.1:${port}`;
  } else {
    url = nats.wsUrl!;
  }

  const publisher = nodeScript(
    'publisher',
    'load/publisher.ts',
    ['--url', nats.url, '--symbols', String(o.symbols), '--rate', String(o.steps[0] ?? 1000), '--duration', lifeS, '--control'],
    { cpus: pin?.others ?? null, stdin: true },
  );
  stops.push(() => publisher.stop());
  await publisher.next('ready', READY_MS);
  // The server knows every symbol (each had its warm-up tick) before clients subscribe.
  if (system === 'tickgate') {
    await waitFor('gateway knows every symbol', async () => ((await scrape(http!)).get('tickgate_symbols') ?? 0) >= o.symbols, gateway, READY_MS, signal);
  } else if (system === 'ws-json') {
    await waitFor('ws gateway knows every symbol', async () => ((await (await fetch(`${http}/healthz`)).json()) as { symbols: number }).symbols >= o.symbols, gateway, READY_MS, signal);
  }

  const clients: Proc[] = [];
  const per = Math.ceil(o.clients / o.loadProcs);
  for (let k = 0; k < o.loadProcs; k++) {
    const n = Math.min(per, o.clients - k * per);
    if (n <= 0) break;
    const c = nodeScript(
      `load ${k + 1}`,
      'load/bench-client.ts',
      [
        '--protocol', system,
        '--url', url,
        '--clients', String(n),
        '--symbols-per-client', String(o.symbolsPerClient),
        '--universe', String(o.symbols),
        '--zipf', String(ZIPF),
        '--feed-zipf', String(ZIPF),
        '--seed', String(SEED),
        '--client-offset', String(k * per),
        '--connect-rate', '500',
        '--duration', lifeS,
        '--control',
      ],
      { cpus: pin?.others ?? null, stdin: true },
    );
    clients.push(c);
    stops.push(() => c.stop());
  }
  const opened = await unlessAborted(
    Promise.all(
      clients.map((c, k) => {
        c.send(`open ${Math.min(per, o.clients - k * per)}`);
        return c.next<OpenedReport>('opened', OPEN_MS);
      }),
    ),
    signal,
  );
  const open = opened.reduce((a, r) => a + r.open, 0);
  if (open < o.clients) {
    const failures = opened.map((r) => JSON.stringify(r.failures)).join(' ');
    throw new Error(`only ${open} of ${o.clients} clients connected and subscribed: ${failures}`);
  }
  log(`${system}: ${open} clients subscribed`);
  const busPid = system === 'nats-ws' ? null : nats.proc.pid;
  const serverPid = system === 'nats-ws' ? nats.proc.pid : gateway!.pid;
  return { nats, serverPid, busPid, gateway, http, publisher, clients };
}

/** Runs one step: set the rate, settle, measure a window. */
/** Now on the monotonic clock in microseconds, the clock of `--cpu-prof` timestamps. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

/** A step that could not be measured: the load processes stopped answering. */
export class StepFailed extends Error {
  override readonly name = 'StepFailed';
}

async function runStep({ system, flush, round }: Run, rig: Rig, rate: number, o: FanoutOptions, fanout: number, signal: AbortSignal, profiled: MonoWindow[], first: boolean): Promise<FanoutStep> {
  const { publisher, clients } = rig;
  publisher.send(`rate ${rate}`);
  await publisher.next('rate', CMD_MS);
  await sleep((o.settleS + (first ? Math.min(FIRST_WARMUP_S, o.settleS * 2) : 0)) * 1000, signal);

  publisher.send('stats');
  const pub0 = await publisher.next<PublisherStats>('stats', CMD_MS);
  const m0 = rig.http !== null && system === 'tickgate' ? await scrape(rig.http) : new Map<string, number>();
  const v0 = await varz(rig.nats.monitorUrl);
  const s0 = sample(rig);
  for (const c of clients) c.send(`start ${rate}`);
  await Promise.all(clients.map((c) => c.next('started', windowCmdMs(o)))).catch((err: unknown) => {
    throw new StepFailed(`load clients did not start a window within ${windowCmdMs(o) / 1000} s (saturated): ${(err as Error).message}`, { cause: err });
  });
  const w0 = monoUs();
  await sleep(o.windowS * 1000, signal);
  profiled.push([w0, monoUs()]);
  for (const c of clients) c.send('stop');
  const windows = await Promise.all(clients.map((c) => c.next<WindowReport>('window', windowCmdMs(o)))).catch((err: unknown) => {
    throw new StepFailed(`load clients did not report within ${windowCmdMs(o) / 1000} s (saturated): ${(err as Error).message}`, { cause: err });
  });
  const s1 = sample(rig);
  publisher.send('stats');
  const pub1 = await publisher.next<PublisherStats>('stats', CMD_MS);
  const m1 = rig.http !== null && system === 'tickgate' ? await scrape(rig.http) : new Map<string, number>();
  const v1 = await varz(rig.nats.monitorUrl);

  const seconds = (s1.at - s0.at) / 1000;
  const winS = windows.reduce((a, w) => a + w.seconds, 0) / Math.max(1, windows.length);
  const sum = (f: (w: WindowReport) => number) => windows.reduce((a, w) => a + f(w), 0);
  const updates = sum((w) => w.updates);
  const open = sum((w) => w.open);
  const latency = mergeHistograms(windows.map((w) => w.latencyUs));
  const corrected = mergeHistograms(windows.map((w) => w.latencyCorrectedUs));
  const serverPct = pct(s0.server, s1.server, seconds);
  const serverCpuSeconds = s0.server !== null && s1.server !== null ? (s1.server - s0.server) / USER_HZ : null;
  const clientPcts = clients.map((_, i) => pct(s0.clients[i], s1.clients[i], seconds));
  const clientPct = clientPcts.some((x) => x === null) ? null : round1(clientPcts.reduce<number>((a, b) => a + b!, 0));
  const machine = cpuBusy(s0.machine, s1.machine, null);
  const serverCore = o.pinning ? cpuBusy(s0.machine, s1.machine, o.pinning.server) : null;
  const otherCores = o.pinning ? cpuBusy(s0.machine, s1.machine, o.pinning.others) : null;
  const publishedPerSec = round1((pub1.published - pub0.published) / seconds);
  const delivered = round1(updates / winS);
  const step: FanoutStep = {
    round,
    system,
    flush,
    rate,
    publishedPerSec,
    publisherLagP99Ms: pub1.lagMs.p99,
    windowSeconds: round2(winS),
    deliveredPerSec: delivered,
    expectedPerSec: round1(fanout * publishedPerSec),
    framesPerSec: round1(sum((w) => w.frames) / winS),
    bytesPerConnPerSec: open > 0 ? Math.round(sum((w) => w.bytes) / winS / open) : 0,
    connections: open,
    latency: summarize(latency),
    latencyCorrected: summarize(corrected),
    server: {
      cpuPercent: serverPct,
      systemPercent: pct(s0.serverSplit?.system, s1.serverSplit?.system, seconds),
      usPerUpdate: serverCpuSeconds !== null && updates > 0 ? round2((serverCpuSeconds * 1e6) / (updates * (seconds / winS))) : null,
      rssMiB: (() => {
        const r = procRss(rig.serverPid);
        return r === null ? null : round1(r / 2 ** 20);
      })(),
    },
    serverThreads: [...s1.serverThreads]
      .map(([name, t]) => ({ name, percent: pct(s0.serverThreads.get(name) ?? 0, t, seconds) ?? 0 }))
      .filter((x) => x.percent >= 0.5)
      .sort((a, b) => b.percent - a.percent),
    busCpuPercent: rig.busPid === null ? null : pct(s0.bus, s1.bus, seconds),
    publisherCpuPercent: pct(s0.publisher, s1.publisher, seconds),
    clientCpuPercent: clientPct,
    clientMaxProcPercent: clientPcts.some((x) => x === null) ? null : Math.max(...(clientPcts as number[])),
    clientProcs: clients.length,
    clientEventLoopP99Ms: Math.max(...windows.map((w) => w.eventLoopDelayP99Ms)),
    machineBusyPercent: machine?.busy ?? null,
    otherProcessesPercent: (() => {
      // Busy time (all CPUs, in % of one core) that is neither softirq nor one of our processes: someone else's work.
      const ours = [serverPct, rig.busPid === null ? 0 : pct(s0.bus, s1.bus, seconds), pct(s0.publisher, s1.publisher, seconds), clientPct];
      if (machine === null || ours.some((x) => x === null)) return null;
      const n = s1.machine.cpus.length;
      return round1(Math.max(0, (machine.busy - machine.softirq) * n - ours.reduce<number>((a, b) => a + b!, 0)));
    })(),
    serverCoreBusyPercent: serverCore?.busy ?? null,
    serverCoreSoftirqPercent: serverCore?.softirq ?? null,
    otherCoresBusyPercent: otherCores?.busy ?? null,
    conflated: system === 'tickgate' ? metricDelta(m0, m1, 'tickgate_conflated_updates_total{reason="backpressure"}') : null,
    slowConsumers:
      system === 'tickgate'
        ? metricDelta(m0, m1, 'tickgate_connections_closed_total{reason="SLOW_CONSUMER"}')
        : system === 'nats-ws' && v0 !== null && v1 !== null
          ? v1.slow_consumers - v0.slow_consumers
          : null,
    held:
      system === 'tickgate' && flush === 'adaptive' && m1.has('tickgate_flush_hold_seconds')
        ? { perSec: round1(metricDelta(m0, m1, 'tickgate_frames_held_total') / seconds), holdMs: round2(m1.get('tickgate_flush_hold_seconds')! * 1000) }
        : null,
    closedEarly: sum((w) => w.closedEarly),
    qViolations: sum((w) => w.qViolations),
    stopReasons: [],
    warnings: [],
  };
  latency.destroy();
  corrected.destroy();

  const r = step.stopReasons;
  if (step.latency.p99 !== null && step.latency.p99 > P99_LIMIT_MS) r.push(`p99 > ${P99_LIMIT_MS} ms`);
  if (step.expectedPerSec > 0 && step.deliveredPerSec < BEHIND * step.expectedPerSec) r.push(`delivered ${Math.round((step.deliveredPerSec / step.expectedPerSec) * 100)}% of expected`);
  if (step.closedEarly > 0) r.push(`${step.closedEarly} connections closed`);
  const serverCores = o.pinning?.serverCores ?? (system === 'nats-ws' ? (o.pinning === null ? Infinity : 1) : (o.workers ?? 1));
  if ((serverPct !== null && serverPct >= PINNED * serverCores) || (serverCore !== null && serverCore.busy >= 95)) r.push('server CPU pinned');
  // Not a reason to stop by itself (the figures may still hold), but a flag on every figure of the step.
  const w = step.warnings;
  if (otherCores !== null) {
    if (otherCores.busy >= PINNED) w.push(`load side saturated (its CPUs ${Math.round(otherCores.busy)}% busy)`);
    if (otherCores.busy >= LOAD_SATURATED) r.push('load side saturated');
  } else if (machine !== null && machine.busy >= LOAD_SATURATED) {
    w.push('machine saturated');
    r.push('machine saturated');
  }
  if (step.clientMaxProcPercent !== null && step.clientMaxProcPercent >= PINNED) w.push('a load client process saturated');
  if (step.otherProcessesPercent !== null && step.otherProcessesPercent > NOISY) w.push(`other processes used ${Math.round(step.otherProcessesPercent)}% of a core: noisy`);
  if (publishedPerSec < 0.95 * rate) r.push('publisher behind');
  return step;
}

/** Runs the fan-out workload against each system, at the same steps. */
export async function runFanout(o: FanoutOptions, signal: AbortSignal, log: (s: string) => void): Promise<FanoutResult> {
  const fanout = expectedFanout(o.symbols, o.clients, o.symbolsPerClient, SEED, ZIPF);
  const result: FanoutResult = {
    symbols: o.symbols,
    clients: o.clients,
    symbolsPerClient: o.symbolsPerClient,
    expectedFanout: round2(fanout),
    rounds: o.rounds,
    steps: [],
    errors: {},
    notes: [],
    profiles: [],
  };
  // Baselines run the steps of tickgate's default run: up to the one where it stopped, or all when tickgate did not run.
  // Each tickgate run ramps through every step on its own.
  let baselineSteps = o.steps;
  /** The current tickgate run's measurement windows, to read its profile step by step. */
  let windows: MonoWindow[] = [];
  const order = o.systems.flatMap((system): Array<Omit<Run, 'round'>> =>
    system === 'tickgate' ? (['adaptive', ...o.flushMs] as Flush[]).map((flush) => ({ system, flush })) : [{ system, flush: null }],
  );
  const runs: Run[] = [];
  for (let round = 0; round < o.rounds; round++) runs.push(...(round % 2 === 0 ? order : [...order].reverse()).map((r) => ({ ...r, round })));
  /** The steps each run completed in the first round: what later rounds repeat. */
  const firstRound = new Map<string, number[]>();
  for (const run of runs) {
    const { system, flush, round } = run;
    const label = stepLabel(run);
    if (signal.aborted) break;
    const rates = round > 0 ? (firstRound.get(label) ?? []) : system === 'tickgate' ? o.steps : baselineSteps;
    if (rates.length === 0) continue;
    const stops: Array<() => Promise<unknown>> = [];
    const tag = o.rounds > 1 ? `${label}, round ${round + 1}` : label;
    try {
      log(`fanout: ${tag}`);
      const rig = await startRig(run, o, stops, signal, log);
      for (const [i, rate] of rates.entries()) {
        let step: FanoutStep;
        try {
          step = await runStep(run, rig, rate, o, fanout, signal, windows, i === 0);
        } catch (err) {
          if (!(err instanceof StepFailed)) throw err;
          result.notes.push(`${tag} at ${rate.toLocaleString('en-US')} ticks/s: ${err.message.slice(0, 200)}`);
          log(`fanout: ${tag} ${rate} ticks/s: ${err.message}`);
          break;
        }
        // On a shared machine one stall of the load side can push a single step's p99 past the limit:
        // a lone moderate excess is flagged, and the next step decides whether the server is saturated.
        const prev = i > 0 ? result.steps.at(-1) : undefined;
        const p99 = step.latency.p99 ?? 0;
        const prevOver = prev !== undefined && prev.round === round && stepLabel(prev) === label && (prev.latency.p99 ?? 0) > P99_LIMIT_MS;
        if (p99 > P99_LIMIT_MS && p99 < P99_FAR_OVER_MS && !prevOver && i < rates.length - 1) {
          step.stopReasons = step.stopReasons.filter((x) => !x.startsWith('p99 >'));
          step.warnings.push(`p99 > ${P99_LIMIT_MS} ms at this step only so far: measuring the next one`);
        }
        result.steps.push(step);
        log(
          `fanout: ${tag} ${rate} ticks/s: ${Math.round(step.deliveredPerSec)} upd/s, p99 ${step.latency.p99} ms, server ${step.server.cpuPercent}% (${step.server.usPerUpdate} µs/upd), clients ${step.clientCpuPercent}%` +
            (step.held ? `, ${int(step.framesPerSec)} frames/s${heldText(step)}` : '') +
            (step.warnings.length > 0 ? `; ${step.warnings.join('; ')}` : '') +
            (step.stopReasons.length > 0 ? `; stop: ${step.stopReasons.join('; ')}` : ''),
        );
        if (step.stopReasons.length > 0) break;
      }
      const mine = result.steps.filter((s) => s.round === round && stepLabel(s) === label).map((s) => s.rate);
      if (round === 0) firstRound.set(label, mine);
      // Baselines run the steps of tickgate's default run.
      if (round === 0 && system === 'tickgate' && flush === 'adaptive') baselineSteps = mine;
    } catch (err) {
      result.errors[tag] = (err as Error).message;
      log(`fanout: ${tag} failed: ${(err as Error).message}`);
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    }
    if (system === 'tickgate' && round === 0 && o.profileDir !== null) {
      const file = mainThreadProfile(profileDirFor(o.profileDir, flush ?? 'adaptive'));
      const measured = result.steps.filter((s) => s.round === 0 && s.system === 'tickgate' && s.flush === flush).map((s) => s.rate);
      if (file !== null) {
        result.profiles.push({
          flush: flush ?? 'adaptive',
          file: file.replace(ROOT, ''),
          steps: measured.map((rate, i) => ({ rate, summary: summarizeProfileFile(file, 15, windows[i] ? [windows[i]] : []) })),
        });
      }
    }
    windows = [];
  }
  return result;
}

const profileDirFor = (dir: string, flush: Flush) => join(dir, flush === 'adaptive' ? 'flush-adaptive' : `flush-${flush}ms`);

function mainThreadProfile(dir: string): string | null {
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f));
    // One profile per thread (tsx runs its loader in a worker): the main thread's is the largest.
    files.sort((a, b) => statSync(b).size - statSync(a).size);
    return files[0] ?? null;
  } catch {
    return null;
  }
}
