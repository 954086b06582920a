/**
 * Trades scenario of the benchmark suite: trade prints end to end, from an
 * open-loop trade publisher through nats-server and tickgate's gateway to
 * load clients that check every trade of their symbols arrives once and in
 * order, and a resuming client that times how long catching up takes.
 *
 * Processes: nats-server (the bus), the gateway from source with two trade
 * feeds (`trade.>` for the fan-out symbols, `catchup.>` for the catch-up
 * symbols, so that its per-feed counters tell when it has every trade of a
 * burst), load/trade-publisher.ts, load/trade-catchup.ts and `loadProcs`
 * load/trade-client.ts processes. The gateway is pinned like in the fan-out
 * scenario; everything else runs on the other CPU(s).
 *
 * Phases, on one warm gateway:
 * 1. Catch-up on a quiet gateway (publisher paused): the resuming client
 *    subscribes, goes away, the publisher sends `catchupTrades` on its
 *    symbols, the client comes back with `since`; `catchupRepeats` times.
 * 2. Ingest only: at each rate, a window before any client subscribed.
 * 3. The clients connect; at each rate, a window of deliveries: gateway CPU
 *    per trade in, per trade delivered and per trade above the ingest-only
 *    window (the delivery share), latency from each trade's `ts`.
 * 4. Catch-up again, with the fan-out running at the last rate.
 * 5. The publisher pauses; every subscription's last trade is compared
 *    with the publisher's count of its symbol: nothing may be missing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeHistograms, summarize } from '../load/latency.js';
import type { ResumedReport } from '../load/trade-catchup.js';
import type { TradeFinalReport, TradeOpenedReport, TradeWindowReport } from '../load/trade-client.js';
import type { TradeBurstReport, TradeCounts, TradePublisherStats } from '../load/trade-publisher.js';
import { expectedPerTrade, TRADE_SIM_DEFAULTS } from '../load/trade-sim.js';
import {
  cpuBusy,
  freePort,
  gatewayEnv,
  machineCpu,
  nodeScript,
  procCpuSplit,
  procCpuTicks,
  procRss,
  scrape,
  sleep,
  startNats,
  unlessAborted,
  USER_HZ,
  type Proc,
} from './procs.js';
import type { TradeCatchupRun, TradeFinal, TradeIngestStep, TradesResult, TradeStep } from './report.js';
import { waitFor, type Pinning } from './suite-fanout.js';

export interface TradesOptions {
  /** Trades per second, one step each. */
  rates: number[];
  windowS: number;
  settleS: number;
  symbols: number;
  zipf: number;
  clients: number;
  symbolsPerClient: number;
  loadProcs: number;
  /** Trades a resuming client missed, the symbols they are spread over, the rounds per phase, and the rate they are published at. */
  catchupTrades: number;
  catchupSymbols: number;
  catchupRepeats: number;
  catchupRate: number;
  pinning: Pinning | null;
}

/**
 * The suite's trades workload, as in docs/PERFORMANCE.md. 200 clients x 4
 * uniformly picked symbols of a Zipf feed: 5.16 deliveries per trade with
 * these seeds, about 103k trades/s at 20,000 trades/s in. On two cores the
 * load side (clients, publisher, bus and the catch-up client on one core)
 * takes that with room; 5 symbols (129k/s) already took it to 85-90% in
 * trials, so the step would measure the clients rather than the gateway.
 */
export const TRADES_DEFAULTS: Omit<TradesOptions, 'rates' | 'windowS' | 'settleS' | 'pinning'> = {
  symbols: TRADE_SIM_DEFAULTS.symbols,
  zipf: TRADE_SIM_DEFAULTS.zipf,
  clients: 200,
  symbolsPerClient: 4,
  loadProcs: 2,
  catchupTrades: 10_000,
  catchupSymbols: 1,
  catchupRepeats: 5,
  catchupRate: 20_000,
};

const SEED = 7;
const READY_MS = 30_000;
const OPEN_MS = 150_000;
const CMD_MS = 15_000;
const FIRST_WARMUP_S = 5;
const FEED = 'trd';
/** Catch-up rounds on the fresh gateway before the measured ones: its replay path is not compiled yet (the first two took 3 to 4x longer in trials). */
const CATCHUP_WARMUPS = 2;
const CATCHUP_FEED = 'cu';
/** CPU busy above this (% of its cores): saturated, the step's figures are flagged. */
const SATURATED = 90;
/** Other processes' CPU (% of a core) above which a step's figures are called noisy. */
const NOISY = 20;
/** Longest wait after the publisher paused for the last trades to reach every client. */
const FINAL_WAIT_S = 15;

const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
const pct = (a: number | null | undefined, b: number | null | undefined, seconds: number) =>
  a === null || a === undefined || b === null || b === undefined || seconds <= 0 ? null : round1(((b - a) / USER_HZ / seconds) * 100);
const perSec = (n: number, s: number) => (s > 0 ? round1(n / s) : 0);
const metricDelta = (m0: Map<string, number>, m1: Map<string, number>, key: string) => (m1.get(key) ?? 0) - (m0.get(key) ?? 0);
const prefixSum = (m: Map<string, number>, prefix: string) => [...m].reduce((a, [k, v]) => (k.startsWith(prefix) ? a + v : a), 0);
const tradesIn = (m: Map<string, number>, feed: string) => m.get(`tickgate_trades_total{feed="${feed}"}`) ?? 0;

interface Rig {
  gateway: Proc;
  http: string;
  ws: string;
  bus: Proc;
  publisher: Proc;
  catchup: Proc;
  clients: Proc[];
}

/** The edges of a window: the gateway's counters and CPU read together. */
interface Sample {
  at: number;
  gateway: number | null;
  split: { user: number; system: number } | null;
  bus: number | null;
  publisher: number | null;
  others: Array<number | null>;
  clients: Array<number | null>;
  machine: ReturnType<typeof machineCpu>;
  metrics: Map<string, number>;
}

async function sample(rig: Rig): Promise<Sample> {
  const metrics = await scrape(rig.http);
  return {
    at: performance.now(),
    gateway: procCpuTicks(rig.gateway.pid),
    split: procCpuSplit(rig.gateway.pid),
    bus: procCpuTicks(rig.bus.pid),
    publisher: procCpuTicks(rig.publisher.pid),
    others: [procCpuTicks(rig.catchup.pid)],
    clients: rig.clients.map((c) => procCpuTicks(c.pid)),
    machine: machineCpu(),
    metrics,
  };
}

async function pubStats(rig: Rig): Promise<TradePublisherStats> {
  rig.publisher.send('stats');
  return rig.publisher.next<TradePublisherStats>('stats', CMD_MS);
}

/** What a window's edges say about the gateway, the bus and the publisher. */
function common(s0: Sample, s1: Sample, p0: TradePublisherStats, p1: TradePublisherStats, rig: Rig) {
  const seconds = (s1.at - s0.at) / 1000;
  const pubSeconds = (p1.at - p0.at) / 1000;
  const published = p1.trades - p0.trades;
  const cpuSeconds = s0.gateway !== null && s1.gateway !== null ? (s1.gateway - s0.gateway) / USER_HZ : null;
  // Trades the gateway accepted between the samples (its counter); without metrics, the publisher's count.
  const applied = s0.metrics.size > 0 && s1.metrics.size > 0 ? tradesIn(s1.metrics, FEED) - tradesIn(s0.metrics, FEED) : published * (seconds / Math.max(pubSeconds, 1e-9));
  const r = procRss(rig.gateway.pid);
  return {
    seconds,
    cpuSeconds,
    applied,
    tradesPerSec: perSec(published, pubSeconds),
    appliedPerSec: perSec(applied, seconds),
    publisherLagP99Ms: p1.lagMs.p99,
    cpuPercent: pct(s0.gateway, s1.gateway, seconds),
    systemPercent: pct(s0.split?.system, s1.split?.system, seconds),
    usPerTrade: cpuSeconds !== null && applied > 0 ? round3((cpuSeconds * 1e6) / applied) : null,
    rssMiB: r === null ? null : round1(r / 2 ** 20),
    busCpuPercent: pct(s0.bus, s1.bus, seconds),
    publisherCpuPercent: pct(s0.publisher, s1.publisher, seconds),
    otherPercents: s1.others.map((x, i) => pct(s0.others[i], x, seconds)),
    clientPercents: rig.clients.map((_, i) => pct(s0.clients[i], s1.clients[i], seconds)),
    machine: cpuBusy(s0.machine, s1.machine, null),
    ncpu: s1.machine.cpus.length,
  };
}

/** Busy time of the machine (% of one core) that is neither softirq nor one of the scenario's processes: someone else's work. */
function otherPercent(c: ReturnType<typeof common>): number | null {
  const ours = [c.cpuPercent, c.busCpuPercent, c.publisherCpuPercent, ...c.otherPercents, ...c.clientPercents];
  if (c.machine === null || ours.some((x) => x === null)) return null;
  return round1(Math.max(0, (c.machine.busy - c.machine.softirq) * c.ncpu - ours.reduce<number>((a, b) => a + b!, 0)));
}

async function startRig(o: TradesOptions, stops: Array<() => Promise<unknown>>, signal: AbortSignal): Promise<Rig> {
  const pin = o.pinning;
  const nats = await unlessAborted(startNats({ cpus: pin?.others ?? null }), signal);
  stops.push(() => nats.stop());
  const lifeS = String(Math.ceil(240 + 2 * o.rates.length * (o.windowS + o.settleS + 20) + 4 * o.catchupRepeats));
  const port = await freePort();
  const http = `http://127.0.0.1:${port}`;
  const tmp = mkdtempSync(join(tmpdir(), 'tickgate-bench-trades-'));
  stops.push(async () => rmSync(tmp, { recursive: true, force: true }));
  const config = join(tmp, 'gateway.json');
  writeFileSync(
    config,
    JSON.stringify({
      feeds: [
        { name: FEED, kind: 'trade', subject: 'trade.>', codec: 'msgpack', symbolToken: 1 },
        { name: CATCHUP_FEED, kind: 'trade', subject: 'catchup.>', codec: 'msgpack', symbolToken: 1 },
      ],
      limits: { maxConnectionsPerIp: 0, maxSymbolsPerClient: Math.max(2000, o.symbolsPerClient, o.catchupSymbols) },
      trade: { history: { size: Math.max(10_000, o.catchupTrades) } },
    }),
  );
  const gateway = nodeScript('gateway', 'src/main.ts', ['--config', config], {
    env: gatewayEnv(nats.url, port),
    cpus: pin?.server ?? null,
  });
  stops.push(() => gateway.stop(10_000));
  await waitFor('gateway /readyz', async () => (await fetch(`${http}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, gateway, READY_MS, signal);
  // Paused until the catch-up phase on a quiet gateway is done.
  const publisher = nodeScript(
    'trade publisher',
    'load/trade-publisher.ts',
    [
      '--url', nats.url,
      '--symbols', String(o.symbols),
      '--zipf', String(o.zipf),
      '--rate', '0',
      '--catchup-symbols', String(o.catchupSymbols),
      '--catchup-rate', String(o.catchupRate),
      '--duration', lifeS,
      '--control',
    ],
    { cpus: pin?.others ?? null, stdin: true },
  );
  stops.push(() => publisher.stop());
  await publisher.next('ready', READY_MS);
  const ws = `ws://127.0.0.1:${port}/v1/stream`;
  const catchup = nodeScript('trade catch-up client', 'load/trade-catchup.ts', ['--url', ws, '--symbols', String(o.catchupSymbols), '--duration', lifeS], {
    cpus: pin?.others ?? null,
    stdin: true,
  });
  stops.push(() => catchup.stop());
  return { gateway, http, ws, bus: nats.proc, publisher, catchup, clients: [] };
}

async function setRate(rig: Rig, rate: number, settleS: number, signal: AbortSignal): Promise<void> {
  rig.publisher.send(`rate ${rate}`);
  await rig.publisher.next('rate', CMD_MS);
  await sleep(settleS * 1000, signal);
}

/** One catch-up: the client goes away, a burst is published, the client comes back with since. */
async function catchupRound(rig: Rig, o: TradesOptions, loadRate: number, warmup: boolean, signal: AbortSignal): Promise<TradeCatchupRun> {
  rig.catchup.send('drop');
  await rig.catchup.next('dropped', CMD_MS);
  const m0 = await scrape(rig.http);
  const burstMs = Math.max(CMD_MS, (o.catchupTrades / o.catchupRate) * 3000 + 5000);
  rig.publisher.send(`burst ${o.catchupTrades}`);
  const burst = await rig.publisher.next<TradeBurstReport>('burst', burstMs);
  // Every trade of the burst in the gateway's history before the client comes back.
  await waitFor(
    'gateway has every trade of the burst',
    async () => tradesIn(await scrape(rig.http), CATCHUP_FEED) >= tradesIn(m0, CATCHUP_FEED) + o.catchupTrades,
    rig.gateway,
    burstMs,
    signal,
  );
  const g0 = await scrape(rig.http);
  rig.catchup.send(`resume ${o.catchupTrades} ${JSON.stringify(burst.symbols)}`);
  const r = await rig.catchup.next<ResumedReport>('resumed', 60_000);
  const g1 = await scrape(rig.http);
  return {
    loadRate,
    warmup,
    expected: r.expected,
    trades: r.trades,
    connectMs: r.connectMs,
    ackMs: r.ackMs,
    firstMs: r.firstMs,
    lastMs: r.lastMs,
    recovered: r.recovered,
    duplicates: r.duplicates,
    missing: r.missing,
    gapMessages: r.gapMessages,
    exact: r.exact,
    timedOut: r.timedOut,
    frames: r.frames,
    bytes: r.bytes,
    gatewayReplayed: g0.size > 0 && g1.size > 0 ? metricDelta(g0, g1, 'tickgate_trades_replayed_total') : null,
    burstMs: burst.ms,
  };
}

async function ingestStep(rig: Rig, rate: number, o: TradesOptions, first: boolean, signal: AbortSignal): Promise<TradeIngestStep> {
  await setRate(rig, rate, o.settleS + (first ? Math.min(FIRST_WARMUP_S, o.settleS * 2) : 0), signal);
  const p0 = await pubStats(rig);
  const s0 = await sample(rig);
  await sleep(o.windowS * 1000, signal);
  const s1 = await sample(rig);
  const p1 = await pubStats(rig);
  const c = common(s0, s1, p0, p1, rig);
  const rejected = prefixSum(s1.metrics, `tickgate_trade_rejected_total{feed="${FEED}"`) - prefixSum(s0.metrics, `tickgate_trade_rejected_total{feed="${FEED}"`);
  const other = otherPercent(c);
  const warnings: string[] = [];
  if (c.tradesPerSec < 0.95 * rate) warnings.push('publisher behind');
  if (c.cpuPercent !== null && c.cpuPercent >= SATURATED) warnings.push('gateway CPU pinned');
  if (other !== null && other > NOISY) warnings.push(`other processes used ${Math.round(other)}% of a core: noisy`);
  return {
    rate,
    tradesPerSec: c.tradesPerSec,
    publisherLagP99Ms: c.publisherLagP99Ms,
    windowSeconds: round2(c.seconds),
    gatewayTradesPerSec: s1.metrics.size > 0 ? c.appliedPerSec : null,
    rejected: s1.metrics.size > 0 ? rejected : null,
    gateway: { cpuPercent: c.cpuPercent, systemPercent: c.systemPercent, usPerTrade: c.usPerTrade, rssMiB: c.rssMiB },
    busCpuPercent: c.busCpuPercent,
    publisherCpuPercent: c.publisherCpuPercent,
    otherProcessesPercent: other,
    warnings,
  };
}

async function loadedStep(rig: Rig, rate: number, o: TradesOptions, perTrade: number, ingest: TradeIngestStep | undefined, first: boolean, signal: AbortSignal): Promise<TradeStep> {
  await setRate(rig, rate, o.settleS + (first ? Math.min(FIRST_WARMUP_S, o.settleS * 2) : 0), signal);
  const cmdMs = Math.max(20_000, 3 * o.windowS * 1000);
  const p0 = await pubStats(rig);
  for (const c of rig.clients) c.send('start');
  await Promise.all(rig.clients.map((c) => c.next('started', cmdMs)));
  const s0 = await sample(rig);
  await sleep(o.windowS * 1000, signal);
  const s1 = await sample(rig);
  for (const c of rig.clients) c.send('stop');
  const windows = await Promise.all(rig.clients.map((c) => c.next<TradeWindowReport>('window', cmdMs)));
  const p1 = await pubStats(rig);
  const c = common(s0, s1, p0, p1, rig);
  const winS = windows.reduce((a, w) => a + w.seconds, 0) / Math.max(1, windows.length);
  const sum = (f: (w: TradeWindowReport) => number) => windows.reduce((a, w) => a + f(w), 0);
  const trades = sum((w) => w.trades);
  const open = windows.reduce((a, w) => a + w.open, 0);
  const latency = mergeHistograms(windows.map((w) => w.latencyUs));
  const clientPcts = c.clientPercents;
  const clientPct = clientPcts.some((x) => x === null) ? null : round1(clientPcts.reduce<number>((a, b) => a + b!, 0));
  const other = otherPercent(c);
  const serverCore = o.pinning ? cpuBusy(s0.machine, s1.machine, o.pinning.server) : null;
  const otherCores = o.pinning ? cpuBusy(s0.machine, s1.machine, o.pinning.others) : null;
  const m = (key: string) => (s1.metrics.size > 0 && s0.metrics.size > 0 ? metricDelta(s0.metrics, s1.metrics, key) : null);
  // The gateway's own count of trade messages queued, over the same interval as its CPU; else the clients' count.
  const gwSent = m('tickgate_messages_sent_total{type="trade"}');
  const sentForCpu = gwSent ?? trades * (c.seconds / Math.max(winS, 1e-9));
  const ingestUs = ingest?.gateway.usPerTrade ?? null;
  const deliveryUs = c.cpuSeconds !== null && ingestUs !== null && sentForCpu > 0 ? round3((c.cpuSeconds * 1e6 - ingestUs * c.applied) / sentForCpu) : null;
  const step: TradeStep = {
    rate,
    tradesPerSec: c.tradesPerSec,
    publisherLagP99Ms: c.publisherLagP99Ms,
    windowSeconds: round2(winS),
    connections: open,
    deliveredPerSec: perSec(trades, winS),
    expectedPerSec: round1(perTrade * c.appliedPerSec),
    gatewayDeliveredPerSec: gwSent === null ? null : perSec(gwSent, c.seconds),
    framesPerSec: perSec(sum((w) => w.frames), winS),
    bytesPerConnPerSec: open > 0 ? Math.round(sum((w) => w.bytes) / winS / open) : 0,
    gateway: {
      cpuPercent: c.cpuPercent,
      systemPercent: c.systemPercent,
      usPerTradeIn: c.usPerTrade,
      usPerDelivered: c.cpuSeconds !== null && sentForCpu > 0 ? round3((c.cpuSeconds * 1e6) / sentForCpu) : null,
      deliveryUsPerDelivered: deliveryUs,
      rssMiB: c.rssMiB,
    },
    latency: summarize(latency),
    duplicates: sum((w) => w.duplicates),
    missing: sum((w) => w.missing + w.gapTrades),
    idMismatches: sum((w) => w.idMismatches),
    gapMessages: sum((w) => w.gapMessages),
    closedEarly: sum((w) => w.closedEarly),
    conflated: m('tickgate_conflated_updates_total{reason="backpressure"}'),
    slowConsumers: m('tickgate_connections_closed_total{reason="SLOW_CONSUMER"}'),
    busCpuPercent: c.busCpuPercent,
    publisherCpuPercent: c.publisherCpuPercent,
    clientCpuPercent: clientPct,
    clientMaxProcPercent: clientPcts.some((x) => x === null) ? null : Math.max(...(clientPcts as number[])),
    clientProcs: rig.clients.length,
    clientEventLoopP99Ms: Math.max(...windows.map((w) => w.eventLoopDelayP99Ms)),
    machineBusyPercent: c.machine?.busy ?? null,
    otherProcessesPercent: other,
    serverCoreBusyPercent: serverCore?.busy ?? null,
    serverCoreSoftirqPercent: serverCore?.softirq ?? null,
    otherCoresBusyPercent: otherCores?.busy ?? null,
    warnings: [],
  };
  latency.destroy();
  const w = step.warnings;
  if (step.tradesPerSec < 0.95 * rate) w.push('publisher behind');
  if (step.expectedPerSec > 0 && step.deliveredPerSec < 0.9 * step.expectedPerSec) w.push(`delivered ${Math.round((step.deliveredPerSec / step.expectedPerSec) * 100)}% of the expected trades`);
  if (step.gateway.cpuPercent !== null && step.gateway.cpuPercent >= SATURATED) w.push('gateway CPU pinned');
  if (otherCores !== null && otherCores.busy >= SATURATED) w.push(`load side saturated (its CPUs ${Math.round(otherCores.busy)}% busy)`);
  else if (otherCores === null && c.machine !== null && c.machine.busy >= SATURATED) w.push('machine saturated');
  if (step.clientMaxProcPercent !== null && step.clientMaxProcPercent >= SATURATED) w.push('a load client process saturated');
  if (other !== null && other > NOISY) w.push(`other processes used ${Math.round(other)}% of a core: noisy`);
  if (step.missing > 0 || step.duplicates > 0 || step.idMismatches > 0) w.push(`${step.missing} trades missing, ${step.duplicates} duplicated, ${step.idMismatches} id mismatches`);
  if (step.closedEarly > 0) w.push(`${step.closedEarly} connections closed`);
  return step;
}

/** Pauses the publisher and compares every subscription with its symbol's count, until all match or FINAL_WAIT_S pass. */
async function finalCheck(rig: Rig, signal: AbortSignal): Promise<TradeFinal> {
  rig.publisher.send('rate 0');
  await rig.publisher.next('rate', CMD_MS);
  rig.publisher.send('counts');
  const counts = await rig.publisher.next<TradeCounts>('counts', CMD_MS);
  const published = Object.values(counts.published).reduce((a, b) => a + b, 0);
  const started = performance.now();
  const line = `final ${JSON.stringify(counts.published)}`;
  for (;;) {
    await sleep(500, signal);
    for (const c of rig.clients) c.send(line);
    const rs = await Promise.all(rig.clients.map((c) => c.next<TradeFinalReport>('final', CMD_MS)));
    const sum = (f: (r: TradeFinalReport) => number) => rs.reduce((a, r) => a + f(r), 0);
    const waitedS = round1((performance.now() - started) / 1000);
    const f: TradeFinal = {
      subscriptions: sum((r) => r.subscriptions),
      complete: sum((r) => r.complete),
      missingAtEnd: sum((r) => r.missingAtEnd),
      trades: sum((r) => r.trades),
      duplicates: sum((r) => r.duplicates),
      missing: sum((r) => r.missing),
      idMismatches: sum((r) => r.idMismatches),
      gapMessages: sum((r) => r.gapMessages),
      unacked: sum((r) => r.unacked),
      published,
      waitedS,
    };
    if (f.complete === f.subscriptions || waitedS >= FINAL_WAIT_S) return f;
  }
}

/** Runs the trades scenario. Failures are recorded in the result, never thrown. */
export async function runTrades(o: TradesOptions, signal: AbortSignal, log: (s: string) => void): Promise<TradesResult> {
  const perTrade = expectedPerTrade({ symbols: o.symbols, zipf: o.zipf, clients: o.clients, perClient: o.symbolsPerClient, seed: SEED });
  const result: TradesResult = {
    workload: {
      symbols: o.symbols,
      zipf: o.zipf,
      clients: o.clients,
      symbolsPerClient: o.symbolsPerClient,
      expectedPerTrade: round3(perTrade),
      loadProcs: o.loadProcs,
      catchupTrades: o.catchupTrades,
      catchupSymbols: o.catchupSymbols,
      catchupRate: o.catchupRate,
      historySize: Math.max(10_000, o.catchupTrades),
    },
    catchup: [],
    ingest: [],
    steps: [],
    final: null,
    errors: [],
    notes: [],
  };
  const stops: Array<() => Promise<unknown>> = [];
  const catchups = async (rig: Rig, loadRate: number, warmups: number) => {
    for (let i = 0; i < warmups + o.catchupRepeats; i++) {
      const r = await catchupRound(rig, o, loadRate, i < warmups, signal);
      result.catchup.push(r);
      log(
        `trades: catch-up${r.warmup ? ' (warm-up)' : ''} of ${r.expected} trades${loadRate > 0 ? ` under ${loadRate} trades/s` : ', quiet gateway'}: ${r.lastMs} ms (ack ${r.ackMs} ms, connect ${r.connectMs} ms), ` +
          `${r.trades} trades, ${r.exact ? 'exact' : `NOT exact (recovered ${r.recovered}, ${r.duplicates} duplicates, ${r.missing} missing, ${r.gapMessages} gaps${r.timedOut ? ', timed out' : ''})`}`,
      );
    }
  };
  try {
    log('trades: starting nats-server, gateway, trade publisher and catch-up client');
    const rig = await startRig(o, stops, signal);
    rig.catchup.send('connect');
    await rig.catchup.next('connected', CMD_MS);
    await catchups(rig, 0, CATCHUP_WARMUPS);
    for (const [i, rate] of o.rates.entries()) {
      const st = await ingestStep(rig, rate, o, i === 0, signal);
      result.ingest.push(st);
      log(`trades: ingest only at ${rate} trades/s: gateway ${st.gateway.cpuPercent}% (${st.gateway.usPerTrade} µs/trade)`);
    }
    const per = Math.ceil(o.clients / o.loadProcs);
    for (let k = 0; k < o.loadProcs; k++) {
      const n = Math.min(per, o.clients - k * per);
      if (n <= 0) break;
      const c = nodeScript(
        `trade load ${k + 1}`,
        'load/trade-client.ts',
        [
          '--url', rig.ws,
          '--symbols', String(o.symbols),
          '--symbols-per-client', String(o.symbolsPerClient),
          '--seed', String(SEED),
          '--client-offset', String(k * per),
          '--duration', String(Math.ceil(180 + o.rates.length * (o.windowS + o.settleS + 30) + 4 * o.catchupRepeats)),
          '--control',
        ],
        { cpus: o.pinning?.others ?? null, stdin: true },
      );
      rig.clients.push(c);
      stops.push(() => c.stop());
    }
    const opened = await unlessAborted(
      Promise.all(
        rig.clients.map((c, k) => {
          c.send(`open ${Math.min(per, o.clients - k * per)}`);
          return c.next<TradeOpenedReport>('opened', OPEN_MS);
        }),
      ),
      signal,
    );
    const open = opened.reduce((a, r) => a + r.open, 0);
    if (open < o.clients) throw new Error(`only ${open} of ${o.clients} trade clients connected and subscribed: ${opened.map((r) => JSON.stringify(r.failures)).join(' ')}`);
    log(`trades: ${open} clients subscribed`);
    for (const [i, rate] of o.rates.entries()) {
      const st = await loadedStep(rig, rate, o, perTrade, result.ingest.find((x) => x.rate === rate), i === 0, signal);
      result.steps.push(st);
      log(
        `trades: ${rate} trades/s: ${Math.round(st.deliveredPerSec)} delivered/s (expected ${Math.round(st.expectedPerSec)}), p99 ${st.latency.p99} ms, gateway ${st.gateway.cpuPercent}% ` +
          `(${st.gateway.usPerTradeIn} µs/trade in, ${st.gateway.usPerDelivered} µs/delivered), clients ${st.clientCpuPercent}%` +
          (st.warnings.length > 0 ? `; ${st.warnings.join('; ')}` : ''),
      );
    }
    const last = o.rates[o.rates.length - 1]!;
    await catchups(rig, last, 0);
    result.final = await finalCheck(rig, signal);
    const f = result.final;
    log(`trades: after the pause, ${f.complete} of ${f.subscriptions} subscriptions complete, ${f.missingAtEnd} trades missing, ${f.duplicates} duplicated (${f.trades} received, ${f.published} published)`);
  } catch (err) {
    result.errors.push((err as Error).message.slice(0, 2000));
    log(`trades failed: ${(err as Error).message}`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
  return result;
}
