/**
 * Books scenario of the benchmark suite: order books end to end, from an
 * open-loop book publisher through nats-server and tickgate's gateway to
 * load clients that keep every window and check every checksum.
 *
 * Processes: nats-server (the bus), the gateway from source with one book
 * feed (`book.>`, symbol in subject token 1), load/book-publisher.ts (one
 * snapshot per book, then change messages paced in level changes per
 * second), and `loadProcs` load/book-client.ts processes. The gateway is
 * pinned like in the fan-out scenario.
 *
 * Two phases on one warm gateway:
 * 1. Ingest only: at each rate, a window before any client subscribed:
 *    the gateway's CPU per level change with nobody to deliver to.
 * 2. With the clients: at each rate, a window of deliveries. The gateway's
 *    CPU per level change in, per bupd delivered, and per bupd above the
 *    ingest-only window of the same rate (the delivery share).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BookOpenedReport, BookWindowReport } from '../load/book-client.js';
import type { BookPublisherStats } from '../load/book-publisher.js';
import { BOOK_SIM_DEFAULTS, expectedBupdPerMessage, type BookPopulation } from '../load/book-sim.js';
import { mergeHistograms, summarize } from '../load/latency.js';
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
import type { BookDepthStep, BookIngestStep, BookStep, BooksResult } from './report.js';
import { waitFor, type Pinning } from './suite-fanout.js';

export interface BooksOptions {
  /** Level changes per second, one step each. */
  rates: number[];
  windowS: number;
  settleS: number;
  books: number;
  levels: number;
  clients: number;
  booksPerClient: number;
  depths: number[];
  throttledFraction: number;
  throttleMs: number;
  loadProcs: number;
  pinning: Pinning | null;
}

/** The suite's books workload, as in docs/PERFORMANCE.md. */
export const BOOKS_DEFAULTS: Omit<BooksOptions, 'rates' | 'windowS' | 'settleS' | 'pinning'> = {
  books: BOOK_SIM_DEFAULTS.books,
  levels: BOOK_SIM_DEFAULTS.levels,
  clients: 200,
  booksPerClient: 5,
  depths: [10, 25],
  throttledFraction: 0.2,
  throttleMs: 100,
  loadProcs: 2,
};

const SEED = 7;
const READY_MS = 30_000;
const OPEN_MS = 150_000;
const CMD_MS = 15_000;
const FIRST_WARMUP_S = 5;
const FEED = 'lob';
/** CPU busy above this (% of its cores): saturated, the step's figures are flagged. */
const SATURATED = 90;
/** Other processes' CPU (% of a core) above which a step's figures are called noisy. */
const NOISY = 20;

const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
const pct = (a: number | null | undefined, b: number | null | undefined, seconds: number) =>
  a === null || a === undefined || b === null || b === undefined || seconds <= 0 ? null : round1(((b - a) / USER_HZ / seconds) * 100);
const perSec = (n: number, s: number) => (s > 0 ? round1(n / s) : 0);
const div = (a: number, b: number, digits = 1) => (b > 0 ? Math.round((a / b) * 10 ** digits) / 10 ** digits : null);
const metricDelta = (m0: Map<string, number>, m1: Map<string, number>, key: string) => (m1.get(key) ?? 0) - (m0.get(key) ?? 0);
/** Sum of every series of a metric whose name and labels start with `prefix`. */
const prefixSum = (m: Map<string, number>, prefix: string) => [...m].reduce((a, [k, v]) => (k.startsWith(prefix) ? a + v : a), 0);

interface Rig {
  gateway: Proc;
  http: string;
  bus: Proc;
  publisher: Proc;
  clients: Proc[];
}

/**
 * The edges of a window. The gateway's counters and its CPU are read
 * together, so figures per message use the gateway's own count of what it
 * applied over the same interval as its CPU; the publisher's rates are over
 * its own clock (its stats reply may be late when the load side is busy).
 */
interface Sample {
  at: number;
  gateway: number | null;
  split: { user: number; system: number } | null;
  bus: number | null;
  publisher: number | null;
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
    clients: rig.clients.map((c) => procCpuTicks(c.pid)),
    machine: machineCpu(),
    metrics,
  };
}

async function pubStats(rig: Rig): Promise<BookPublisherStats> {
  rig.publisher.send('stats');
  return rig.publisher.next<BookPublisherStats>('stats', CMD_MS);
}

/** What a window's edges say about the gateway, the bus and the publisher. */
function common(s0: Sample, s1: Sample, p0: BookPublisherStats, p1: BookPublisherStats, rig: Rig) {
  const seconds = (s1.at - s0.at) / 1000;
  const pubSeconds = (p1.at - p0.at) / 1000;
  const levels = p1.levelChanges - p0.levelChanges;
  const messages = p1.messages - p0.messages;
  const levelsPerMessage = messages > 0 ? levels / messages : NaN;
  const cpuSeconds = s0.gateway !== null && s1.gateway !== null ? (s1.gateway - s0.gateway) / USER_HZ : null;
  // Book messages the gateway applied between the samples (its counter); without metrics, the publisher's count.
  const applied = s0.metrics.size > 0 && s1.metrics.size > 0 ? metricDelta(s0.metrics, s1.metrics, `tickgate_book_messages_total{feed="${FEED}"}`) : messages * (seconds / Math.max(pubSeconds, 1e-9));
  const levelsIn = applied * levelsPerMessage;
  return {
    seconds,
    cpuSeconds,
    applied,
    levelsIn,
    levelChangesPerSec: perSec(levels, pubSeconds),
    messagesPerSec: perSec(messages, pubSeconds),
    appliedPerSec: perSec(applied, seconds),
    publisherLagP99Ms: p1.lagMs.p99,
    cpuPercent: pct(s0.gateway, s1.gateway, seconds),
    systemPercent: pct(s0.split?.system, s1.split?.system, seconds),
    usPerLevelChange: cpuSeconds !== null && levelsIn > 0 ? round3((cpuSeconds * 1e6) / levelsIn) : null,
    rssMiB: (() => {
      const r = procRss(rig.gateway.pid);
      return r === null ? null : round1(r / 2 ** 20);
    })(),
    busCpuPercent: pct(s0.bus, s1.bus, seconds),
    publisherCpuPercent: pct(s0.publisher, s1.publisher, seconds),
    clientPercents: rig.clients.map((_, i) => pct(s0.clients[i], s1.clients[i], seconds)),
    machine: cpuBusy(s0.machine, s1.machine, null),
    ncpu: s1.machine.cpus.length,
  };
}

/** Busy time of the machine (% of one core) that is neither softirq nor one of the scenario's processes: someone else's work. */
function otherPercent(c: ReturnType<typeof common>): number | null {
  const ours = [c.cpuPercent, c.busCpuPercent, c.publisherCpuPercent, ...c.clientPercents];
  if (c.machine === null || ours.some((x) => x === null)) return null;
  return round1(Math.max(0, (c.machine.busy - c.machine.softirq) * c.ncpu - ours.reduce<number>((a, b) => a + b!, 0)));
}

async function startRig(o: BooksOptions, stops: Array<() => Promise<unknown>>, signal: AbortSignal): Promise<Rig> {
  const pin = o.pinning;
  const nats = await unlessAborted(startNats({ cpus: pin?.others ?? null }), signal);
  stops.push(() => nats.stop());
  const lifeS = String(Math.ceil(180 + 2 * o.rates.length * (o.windowS + o.settleS + 20)));
  const port = await freePort();
  const http = `http://127.0.0.1:${port}`;
  const tmp = mkdtempSync(join(tmpdir(), 'tickgate-bench-books-'));
  stops.push(async () => rmSync(tmp, { recursive: true, force: true }));
  const config = join(tmp, 'gateway.json');
  writeFileSync(
    config,
    JSON.stringify({
      feeds: [{ name: FEED, kind: 'book', subject: 'book.>', codec: 'msgpack', symbolToken: 1 }],
      limits: { maxConnectionsPerIp: 0, maxSymbolsPerClient: Math.max(2000, o.booksPerClient) },
      book: { maxDepth: Math.max(100, ...o.depths) },
    }),
  );
  const gateway = nodeScript('gateway', 'src/main.ts', ['--config', config], {
    env: gatewayEnv(nats.url, port),
    cpus: pin?.server ?? null,
  });
  stops.push(() => gateway.stop(10_000));
  await waitFor('gateway /readyz', async () => (await fetch(`${http}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, gateway, READY_MS, signal);
  const publisher = nodeScript(
    'book publisher',
    'load/book-publisher.ts',
    ['--url', nats.url, '--books', String(o.books), '--levels', String(o.levels), '--rate', String(o.rates[0] ?? 50_000), '--duration', lifeS, '--control'],
    { cpus: pin?.others ?? null, stdin: true },
  );
  stops.push(() => publisher.stop());
  await publisher.next('ready', READY_MS);
  await waitFor('gateway has every book', async () => ((await scrape(http)).get('tickgate_books') ?? 0) >= o.books, gateway, READY_MS, signal);
  return { gateway, http, bus: nats.proc, publisher, clients: [] };
}

async function setRate(rig: Rig, rate: number, settleS: number, signal: AbortSignal): Promise<void> {
  rig.publisher.send(`rate ${rate}`);
  await rig.publisher.next('rate', CMD_MS);
  await sleep(settleS * 1000, signal);
}

async function ingestStep(rig: Rig, rate: number, o: BooksOptions, first: boolean, signal: AbortSignal): Promise<BookIngestStep> {
  await setRate(rig, rate, o.settleS + (first ? Math.min(FIRST_WARMUP_S, o.settleS * 2) : 0), signal);
  const p0 = await pubStats(rig);
  const s0 = await sample(rig);
  await sleep(o.windowS * 1000, signal);
  const s1 = await sample(rig);
  const p1 = await pubStats(rig);
  const c = common(s0, s1, p0, p1, rig);
  const rejected = prefixSum(s1.metrics, 'tickgate_book_rejected_total{') - prefixSum(s0.metrics, 'tickgate_book_rejected_total{');
  const other = otherPercent(c);
  const warnings: string[] = [];
  if (c.levelChangesPerSec < 0.95 * rate) warnings.push('publisher behind');
  if (c.cpuPercent !== null && c.cpuPercent >= SATURATED) warnings.push('gateway CPU pinned');
  if (other !== null && other > NOISY) warnings.push(`other processes used ${Math.round(other)}% of a core: noisy`);
  return {
    rate,
    levelChangesPerSec: c.levelChangesPerSec,
    messagesPerSec: c.messagesPerSec,
    publisherLagP99Ms: c.publisherLagP99Ms,
    windowSeconds: round2(c.seconds),
    gatewayBookMessagesPerSec: s1.metrics.size > 0 ? c.appliedPerSec : null,
    rejected: s1.metrics.size > 0 ? rejected : null,
    gateway: { cpuPercent: c.cpuPercent, systemPercent: c.systemPercent, usPerLevelChange: c.usPerLevelChange, rssMiB: c.rssMiB },
    busCpuPercent: c.busCpuPercent,
    publisherCpuPercent: c.publisherCpuPercent,
    otherProcessesPercent: other,
    warnings,
  };
}

async function loadedStep(rig: Rig, rate: number, o: BooksOptions, bupdPerMessage: number, ingest: BookIngestStep | undefined, first: boolean, signal: AbortSignal): Promise<BookStep> {
  await setRate(rig, rate, o.settleS + (first ? Math.min(FIRST_WARMUP_S, o.settleS * 2) : 0), signal);
  const cmdMs = Math.max(20_000, 3 * o.windowS * 1000);
  const p0 = await pubStats(rig);
  for (const c of rig.clients) c.send('start');
  await Promise.all(rig.clients.map((c) => c.next('started', cmdMs)));
  const s0 = await sample(rig);
  await sleep(o.windowS * 1000, signal);
  const s1 = await sample(rig);
  for (const c of rig.clients) c.send('stop');
  const windows = await Promise.all(rig.clients.map((c) => c.next<BookWindowReport>('window', cmdMs)));
  const p1 = await pubStats(rig);
  const c = common(s0, s1, p0, p1, rig);
  const winS = windows.reduce((a, w) => a + w.seconds, 0) / Math.max(1, windows.length);
  const sum = (f: (w: BookWindowReport) => number) => windows.reduce((a, w) => a + f(w), 0);
  const bupd = sum((w) => w.bupd);
  const open = sum((w) => w.open);
  const latency = mergeHistograms(windows.map((w) => w.latencyUs));
  const age = mergeHistograms(windows.map((w) => w.throttledAgeUs));
  const depths = new Map<number, { bupd: number; bupdBytes: number; windowBytes: number; levels: number }>();
  for (const w of windows) {
    for (const d of w.byDepth) {
      const x = depths.get(d.depth) ?? { bupd: 0, bupdBytes: 0, windowBytes: 0, levels: 0 };
      x.bupd += d.bupd;
      x.bupdBytes += d.bupdBytes;
      x.windowBytes += d.windowBytes;
      x.levels += d.levels;
      depths.set(d.depth, x);
    }
  }
  const byDepth: BookDepthStep[] = [...depths]
    .sort((a, b) => a[0] - b[0])
    .map(([depth, x]) => ({
      depth,
      bupdPerSec: perSec(x.bupd, winS),
      bytesPerBupd: div(x.bupdBytes, x.bupd),
      wholeWindowBytes: div(x.windowBytes, x.bupd),
      ratio: div(x.bupdBytes, x.windowBytes, 3),
      levelsPerBupd: div(x.levels, x.bupd, 2),
    }));
  const allBupdBytes = [...depths.values()].reduce((a, x) => a + x.bupdBytes, 0);
  const allWindowBytes = [...depths.values()].reduce((a, x) => a + x.windowBytes, 0);
  const counted = [...depths.values()].reduce((a, x) => a + x.bupd, 0);
  const throttledBooks = sum((w) => w.throttledBooks);
  const clientPcts = c.clientPercents;
  const clientPct = clientPcts.some((x) => x === null) ? null : round1(clientPcts.reduce<number>((a, b) => a + b!, 0));
  const machine = c.machine;
  const other = otherPercent(c);
  const serverCore = o.pinning ? cpuBusy(s0.machine, s1.machine, o.pinning.server) : null;
  const otherCores = o.pinning ? cpuBusy(s0.machine, s1.machine, o.pinning.others) : null;
  const m = (key: string) => (s1.metrics.size > 0 ? metricDelta(s0.metrics, s1.metrics, key) : null);
  // The gateway's own count of bupd queued, over the same interval as its CPU; else the clients' count.
  const gwBupd = m('tickgate_messages_sent_total{type="bupd"}');
  const gwBook = m('tickgate_messages_sent_total{type="book"}');
  const bupdForCpu = gwBupd ?? bupd * (c.seconds / Math.max(winS, 1e-9));
  // Delivery: the CPU above what the ingest-only window spent per level change, for the level changes of this one.
  const ingestUs = ingest?.gateway.usPerLevelChange ?? null;
  const deliveryUs = c.cpuSeconds !== null && ingestUs !== null && bupdForCpu > 0 ? round3((c.cpuSeconds * 1e6 - ingestUs * c.levelsIn) / bupdForCpu) : null;
  const step: BookStep = {
    rate,
    levelChangesPerSec: c.levelChangesPerSec,
    messagesPerSec: c.messagesPerSec,
    publisherLagP99Ms: c.publisherLagP99Ms,
    windowSeconds: round2(winS),
    connections: open,
    bupdPerSec: perSec(bupd, winS),
    expectedBupdPerSec: round1(bupdPerMessage * c.appliedPerSec),
    emptyBupdShare: div(sum((w) => w.emptyBupd), bupd, 3),
    liveBooksPerSec: perSec(sum((w) => w.liveBooks), winS),
    throttledBooksPerSec: perSec(throttledBooks, winS),
    framesPerSec: perSec(sum((w) => w.frames), winS),
    bytesPerConnPerSec: open > 0 ? Math.round(sum((w) => w.bytes) / winS / open) : 0,
    gateway: {
      cpuPercent: c.cpuPercent,
      systemPercent: c.systemPercent,
      usPerLevelChange: c.usPerLevelChange,
      usPerBupd: c.cpuSeconds !== null && bupdForCpu > 0 ? round3((c.cpuSeconds * 1e6) / bupdForCpu) : null,
      deliveryUsPerBupd: deliveryUs,
      rssMiB: c.rssMiB,
    },
    gatewayBupdPerSec: gwBupd === null ? null : perSec(gwBupd, c.seconds),
    gatewayBooksPerSec: gwBook === null ? null : perSec(gwBook, c.seconds),
    latency: summarize(latency),
    throttledAge: summarize(age),
    unsampledBupd: sum((w) => w.unsampled),
    bytesPerBupd: div(allBupdBytes, counted),
    wholeWindowBytes: div(allWindowBytes, counted),
    bytesRatio: div(allBupdBytes, allWindowBytes, 3),
    byDepth,
    throttledBytesPerBook: div(sum((w) => w.throttledBookBytes), throttledBooks),
    checksumChecks: sum((w) => w.checksumChecks),
    checksumMismatches: sum((w) => w.checksumMismatches),
    qGaps: sum((w) => w.qGaps),
    badRemovals: sum((w) => w.badRemovals),
    resubscribes: sum((w) => w.resubscribes),
    closedEarly: sum((w) => w.closedEarly),
    conflated: m('tickgate_conflated_updates_total{reason="backpressure"}'),
    slowConsumers: m('tickgate_connections_closed_total{reason="SLOW_CONSUMER"}'),
    busCpuPercent: c.busCpuPercent,
    publisherCpuPercent: c.publisherCpuPercent,
    clientCpuPercent: clientPct,
    clientMaxProcPercent: clientPcts.some((x) => x === null) ? null : Math.max(...(clientPcts as number[])),
    clientProcs: rig.clients.length,
    clientEventLoopP99Ms: Math.max(...windows.map((w) => w.eventLoopDelayP99Ms)),
    machineBusyPercent: machine?.busy ?? null,
    otherProcessesPercent: other,
    serverCoreBusyPercent: serverCore?.busy ?? null,
    serverCoreSoftirqPercent: serverCore?.softirq ?? null,
    otherCoresBusyPercent: otherCores?.busy ?? null,
    warnings: [],
  };
  latency.destroy();
  age.destroy();
  const w = step.warnings;
  if (step.levelChangesPerSec < 0.95 * rate) w.push('publisher behind');
  if (step.expectedBupdPerSec > 0 && step.bupdPerSec < 0.9 * step.expectedBupdPerSec) w.push(`delivered ${Math.round((step.bupdPerSec / step.expectedBupdPerSec) * 100)}% of the expected bupd`);
  if (step.gateway.cpuPercent !== null && step.gateway.cpuPercent >= SATURATED) w.push('gateway CPU pinned');
  if (otherCores !== null && otherCores.busy >= SATURATED) w.push(`load side saturated (its CPUs ${Math.round(otherCores.busy)}% busy)`);
  else if (otherCores === null && machine !== null && machine.busy >= SATURATED) w.push('machine saturated');
  if (step.clientMaxProcPercent !== null && step.clientMaxProcPercent >= SATURATED) w.push('a load client process saturated');
  if (other !== null && other > NOISY) w.push(`other processes used ${Math.round(other)}% of a core: noisy`);
  if (step.checksumMismatches > 0) w.push(`${step.checksumMismatches} checksum mismatches`);
  if (step.closedEarly > 0) w.push(`${step.closedEarly} connections closed`);
  return step;
}

/** Runs the books scenario. Failures are recorded in the result, never thrown. */
export async function runBooks(o: BooksOptions, signal: AbortSignal, log: (s: string) => void): Promise<BooksResult> {
  const population: BookPopulation = {
    books: o.books,
    zipf: BOOK_SIM_DEFAULTS.zipf,
    clients: o.clients,
    booksPerClient: o.booksPerClient,
    pickZipf: 0,
    uniform: true,
    seed: SEED,
    depths: o.depths,
    throttledFraction: o.throttledFraction,
    throttleMs: o.throttleMs,
  };
  const bupdPerMessage = expectedBupdPerMessage(population);
  const result: BooksResult = {
    workload: {
      books: o.books,
      levelsPerSide: o.levels,
      zipf: BOOK_SIM_DEFAULTS.zipf,
      levelsPerMessage: BOOK_SIM_DEFAULTS.levelsPerMessage,
      clients: o.clients,
      booksPerClient: o.booksPerClient,
      pickZipf: 0,
      depths: o.depths,
      throttledFraction: o.throttledFraction,
      throttleMs: o.throttleMs,
      expectedBupdPerMessage: round2(bupdPerMessage),
      loadProcs: o.loadProcs,
    },
    ingest: [],
    steps: [],
    errors: [],
    notes: [],
  };
  const stops: Array<() => Promise<unknown>> = [];
  try {
    log('books: starting nats-server, gateway and book publisher');
    const rig = await startRig(o, stops, signal);
    for (const [i, rate] of o.rates.entries()) {
      const st = await ingestStep(rig, rate, o, i === 0, signal);
      result.ingest.push(st);
      log(`books: ingest only at ${rate} level changes/s: gateway ${st.gateway.cpuPercent}% (${st.gateway.usPerLevelChange} µs/level change)`);
    }
    const per = Math.ceil(o.clients / o.loadProcs);
    for (let k = 0; k < o.loadProcs; k++) {
      const n = Math.min(per, o.clients - k * per);
      if (n <= 0) break;
      const c = nodeScript(
        `book load ${k + 1}`,
        'load/book-client.ts',
        [
          '--url', `ws://127.0.0.1:${new URL(rig.http).port}/v1/stream`,
          '--books', String(o.books),
          '--books-per-client', String(o.booksPerClient),
          '--depths', o.depths.join(','),
          '--throttled-fraction', String(o.throttledFraction),
          '--throttle-ms', String(o.throttleMs),
          '--seed', String(SEED),
          '--client-offset', String(k * per),
          '--duration', String(Math.ceil(120 + o.rates.length * (o.windowS + o.settleS + 30))),
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
          return c.next<BookOpenedReport>('opened', OPEN_MS);
        }),
      ),
      signal,
    );
    const open = opened.reduce((a, r) => a + r.open, 0);
    if (open < o.clients) throw new Error(`only ${open} of ${o.clients} book clients connected and subscribed: ${opened.map((r) => JSON.stringify(r.failures)).join(' ')}`);
    log(`books: ${open} clients subscribed`);
    for (const [i, rate] of o.rates.entries()) {
      const st = await loadedStep(rig, rate, o, bupdPerMessage, result.ingest.find((x) => x.rate === rate), i === 0, signal);
      result.steps.push(st);
      log(
        `books: ${rate} level changes/s: ${Math.round(st.bupdPerSec)} bupd/s, p99 ${st.latency.p99} ms, gateway ${st.gateway.cpuPercent}% ` +
          `(${st.gateway.usPerLevelChange} µs/level change, ${st.gateway.usPerBupd} µs/bupd), ${st.checksumMismatches} checksum mismatches, clients ${st.clientCpuPercent}%` +
          (st.warnings.length > 0 ? `; ${st.warnings.join('; ')}` : ''),
      );
    }
  } catch (err) {
    result.errors.push((err as Error).message.slice(0, 2000));
    log(`books failed: ${(err as Error).message}`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
  return result;
}
