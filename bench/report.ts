/**
 * The benchmark suite's results: their shape (also the JSON file), the
 * ratios between systems, the verdict on each target, and the Markdown
 * report. Pure functions of the results, so they can be tested and re-run on
 * a saved JSON file.
 */
import type { LatencySummary } from '../load/latency.js';
import type { ProfileSummary } from './cpu-profile.js';
import { profileTable } from './cpu-profile.js';

export type System = 'tickgate' | 'nats-ws' | 'ws-json';

export const SYSTEM_LABEL: Record<System, string> = {
  tickgate: 'tickgate',
  'nats-ws': 'nats-server WebSocket',
  'ws-json': 'ws + JSON gateway',
};

/**
 * How a tickgate run flushed: `'adaptive'` is its default configuration
 * (holds that follow load, `ws.flushIntervalMs` 5 as the ceiling); a number
 * is `ws.flushAdaptive: false` with that `ws.flushIntervalMs`, 0 being a
 * frame at the end of every event-loop turn.
 */
export type Flush = 'adaptive' | number;

/** What a step measured: the system, and for tickgate how it flushed when not the default. */
export function stepLabel(s: Pick<FanoutStep, 'system' | 'flush'>): string {
  if (s.system !== 'tickgate' || s.flush === 'adaptive' || s.flush === null) return SYSTEM_LABEL[s.system];
  return s.flush === 0 ? 'tickgate, immediate' : `tickgate, flush ${s.flush} ms`;
}

/** Order of tickgate's runs in tables: the default first, then immediate, then growing intervals. */
export const flushOrder = (f: Flush): number => (f === 'adaptive' ? -1 : f);

export interface Machine {
  cpus: number;
  model: string;
  node: string;
  kernel: string;
  memoryGiB: number;
  nats: string;
  openFiles: { soft: number; hard: number };
  ephemeralPorts: number;
  /** CPUs the server under test was pinned to, and the rest; null when not pinned. */
  pinning: { server: string; others: string } | null;
}

/** One step (tick rate) of the fan-out workload against one system. */
export interface FanoutStep {
  /** Which pass over the systems measured this step (0 unless `--rounds` > 1). */
  round: number;
  system: System;
  /** How tickgate flushed in this run; null for the baselines. */
  flush: Flush | null;
  /** Ticks per second the publisher was asked for. */
  rate: number;
  /** Ticks per second it published during the window. */
  publishedPerSec: number;
  publisherLagP99Ms: number | null;
  windowSeconds: number;
  /** Updates per second the clients received (not counting snapshots). */
  deliveredPerSec: number;
  /** What the clients should have received at the published rate, from their subscriptions and the feed's Zipf weights. */
  expectedPerSec: number;
  framesPerSec: number;
  /** Bytes per second received per connection. */
  bytesPerConnPerSec: number;
  connections: number;
  latency: LatencySummary;
  /** With HdrHistogram's expected-interval correction on top (an upper bound). */
  latencyCorrected: LatencySummary;
  /** The server under test: tickgate's gateway, nats-server (nats-ws) or the ws gateway. */
  /** `systemPercent`: the part of `cpuPercent` spent in the kernel on the process's behalf (system calls). */
  server: { cpuPercent: number | null; systemPercent: number | null; usPerUpdate: number | null; rssMiB: number | null };
  /** The server process's CPU by thread name (% of one core): the event loop (`main`) against V8's and libuv's helpers. */
  serverThreads: Array<{ name: string; percent: number }>;
  /** nats-server as the bus in front of tickgate or the ws gateway (null for nats-ws, where it is the server). */
  busCpuPercent: number | null;
  publisherCpuPercent: number | null;
  /** All load client processes together, % of one core; and the busiest one. */
  clientCpuPercent: number | null;
  clientMaxProcPercent: number | null;
  clientProcs: number;
  clientEventLoopP99Ms: number | null;
  /** All CPUs, every process and the kernel. */
  machineBusyPercent: number | null;
  /** Busy time of the machine (% of one core) that is neither kernel softirq nor one of the benchmark's processes. */
  otherProcessesPercent: number | null;
  /** When pinned: the server's CPU(s), its process plus the kernel's work there (softirq: loopback TCP), and the other CPUs. */
  serverCoreBusyPercent: number | null;
  serverCoreSoftirqPercent: number | null;
  otherCoresBusyPercent: number | null;
  /** tickgate: updates merged by backpressure (gateway counter); clients: updates with n > 1. */
  conflated: number | null;
  /** tickgate: SLOW_CONSUMER disconnects; nats-ws: nats-server slow consumers; ws-json: none exists. */
  slowConsumers: number | null;
  /** tickgate, adaptive: frames held per second (`tickgate_frames_held_total`) and the hold at the window's end (`tickgate_flush_hold_seconds`), ms. */
  held?: { perSec: number; holdMs: number } | null;
  closedEarly: number;
  qViolations: number;
  /** Why the ramp stopped after this step; empty when it did not. */
  stopReasons: string[];
  /** What makes this step's figures doubtful (a saturated load side). */
  warnings: string[];
}

export interface FanoutResult {
  symbols: number;
  clients: number;
  symbolsPerClient: number;
  /** Delivered updates per tick the subscriptions imply. */
  expectedFanout: number;
  /** Passes over every system and step; every other one in reverse order. */
  rounds: number;
  steps: FanoutStep[];
  /** Per run (labelled as in the tables), why it could not run, if it could not. */
  errors: Record<string, string>;
  /** Steps that could not be measured, and why. */
  notes: string[];
  /** tickgate's gateway under `node --cpu-prof`: top functions within each step's window. */
  /** tickgate's gateway under `node --cpu-prof`, one profile per run (default and each flush interval): top functions within each step's window. */
  profiles: Array<{ flush: Flush; file: string; steps: Array<{ rate: number; summary: ProfileSummary }> }>;
}

export interface ConnectionStep {
  target: number;
  open: number;
  failed: number;
  failures: Record<string, number>;
  rampSeconds: number;
  gatewayRssMiB: number | null;
  /** (RSS now - RSS before any connection) / open connections. */
  rssPerConnKiB: number | null;
  gatewayCpuPercent: number | null;
  subscribeMs: LatencySummary;
  connectMs: LatencySummary;
}

export interface ConnectionsResult {
  requested: number;
  /** What the file-descriptor limit allowed. */
  target: number;
  limitNote: string | null;
  symbolsPerClient: number;
  rate: number;
  sourceAddresses: string[];
  clientProcs: number;
  baselineRssMiB: number | null;
  steps: ConnectionStep[];
  /** A short window at the largest count: the idle-ish stream. */
  idle: { deliveredPerSec: number; latency: LatencySummary; gatewayCpuPercent: number | null; hbPerSec: number | null } | null;
  error: string | null;
}

export interface IsolationResult {
  args: string[];
  fastP99CleanMs: number | null;
  fastP99WithSlowMs: number | null;
  ratio: number | null;
  table: string;
  file: string;
  error: string | null;
}

/** What the books scenario's gateway spent on ingest alone: a window before any client subscribed. */
export interface BookIngestStep {
  /** Level changes per second the publisher was asked for. */
  rate: number;
  /** What it published during the window: level changes and change messages per second. */
  levelChangesPerSec: number;
  messagesPerSec: number;
  publisherLagP99Ms: number | null;
  windowSeconds: number;
  /** Book messages the gateway applied per second (its counter), and refused in the window. */
  gatewayBookMessagesPerSec: number | null;
  rejected: number | null;
  /** The gateway: % of one core (of which kernel), CPU per level change in. */
  gateway: { cpuPercent: number | null; systemPercent: number | null; usPerLevelChange: number | null; rssMiB: number | null };
  busCpuPercent: number | null;
  publisherCpuPercent: number | null;
  /** Busy time of the machine (% of one core) that is neither softirq nor one of the scenario's processes. */
  otherProcessesPercent: number | null;
  warnings: string[];
}

/** Per depth, what the live (unthrottled) clients at that depth received, per second and per bupd. */
export interface BookDepthStep {
  depth: number;
  bupdPerSec: number;
  /** MessagePack bytes per bupd, and per whole window as one `book` message (what a gateway without deltas would send each time). */
  bytesPerBupd: number | null;
  wholeWindowBytes: number | null;
  /** bupd bytes / whole-window bytes. */
  ratio: number | null;
  levelsPerBupd: number | null;
}

/** One step (level-change rate) of the books scenario with its clients. */
export interface BookStep {
  rate: number;
  levelChangesPerSec: number;
  messagesPerSec: number;
  publisherLagP99Ms: number | null;
  windowSeconds: number;
  connections: number;
  /** bupd the clients received per second, and what the subscriptions imply at the rate published. */
  bupdPerSec: number;
  expectedBupdPerSec: number;
  /** Share of the bupd that named no level inside the client's window (q and cs only). */
  emptyBupdShare: number | null;
  /** `book` received per second: by unthrottled clients (first window, resync, release after backpressure), by throttled ones. */
  liveBooksPerSec: number;
  throttledBooksPerSec: number;
  framesPerSec: number;
  /** Received bytes per second per connection (every message, frame headers included). */
  bytesPerConnPerSec: number;
  /**
   * The gateway: % of one core (of which kernel); CPU per level change in
   * (everything it did, divided by the level changes published); CPU per
   * bupd delivered; and the delivery share: CPU above the ingest-only window
   * at the same rate, per bupd (null without that window).
   */
  gateway: { cpuPercent: number | null; systemPercent: number | null; usPerLevelChange: number | null; usPerBupd: number | null; deliveryUsPerBupd: number | null; rssMiB: number | null };
  /** The gateway's own counters: bupd and book queued per second. */
  gatewayBupdPerSec: number | null;
  gatewayBooksPerSec: number | null;
  /** Source time (carried in the sizes set) to client decode, per bupd with a level to read it from. */
  latency: LatencySummary;
  /** Throttled clients: age of the newest level of each `book` at decode. */
  throttledAge: LatencySummary;
  /** bupd with no level to read a time from (only removals or nothing inside the window). */
  unsampledBupd: number;
  /** All live clients: bytes per bupd and per whole window, and their ratio; then by depth. */
  bytesPerBupd: number | null;
  wholeWindowBytes: number | null;
  bytesRatio: number | null;
  byDepth: BookDepthStep[];
  throttledBytesPerBook: number | null;
  checksumChecks: number;
  checksumMismatches: number;
  qGaps: number;
  badRemovals: number;
  resubscribes: number;
  closedEarly: number;
  /** Gateway counters over the window: updates merged by backpressure, SLOW_CONSUMER disconnects. */
  conflated: number | null;
  slowConsumers: number | null;
  busCpuPercent: number | null;
  publisherCpuPercent: number | null;
  clientCpuPercent: number | null;
  clientMaxProcPercent: number | null;
  clientProcs: number;
  clientEventLoopP99Ms: number | null;
  machineBusyPercent: number | null;
  /** Busy time of the machine (% of one core) that is neither softirq nor one of the scenario's processes. */
  otherProcessesPercent: number | null;
  serverCoreBusyPercent: number | null;
  serverCoreSoftirqPercent: number | null;
  otherCoresBusyPercent: number | null;
  warnings: string[];
}

export interface BooksResult {
  workload: {
    books: number;
    levelsPerSide: number;
    zipf: number;
    levelsPerMessage: number;
    clients: number;
    booksPerClient: number;
    /** Zipf exponent of the clients' picks (0: uniform). */
    pickZipf: number;
    depths: number[];
    throttledFraction: number;
    throttleMs: number;
    /** bupd per change message the subscriptions imply. */
    expectedBupdPerMessage: number;
    loadProcs: number;
  };
  ingest: BookIngestStep[];
  steps: BookStep[];
  errors: string[];
  notes: string[];
}

/** One catch-up: a client that missed `expected` trades comes back with `since`. */
export interface TradeCatchupRun {
  /** Fan-out trades per second published meanwhile; 0: a quiet gateway. */
  loadRate: number;
  /** A round before the measured ones (the gateway's replay path not yet compiled by the JIT): checked, not in the p50 / max. */
  warmup: boolean;
  expected: number;
  trades: number;
  /** New WebSocket to `hello`. */
  connectMs: number;
  /** From sending `sub` with since to its ack, to the first trade, and to the expected-th trade decoded (the catch-up time). */
  ackMs: number | null;
  firstMs: number | null;
  lastMs: number | null;
  /** The ack's `rec` was true for every symbol. */
  recovered: boolean;
  duplicates: number;
  missing: number;
  gapMessages: number;
  /** Recovered, every missed trade once and in order, ids and CRC32 equal to what the publisher sent, nothing else. */
  exact: boolean;
  timedOut: boolean;
  frames: number;
  bytes: number;
  /** The gateway's count of trades replayed from the history over the resume. */
  gatewayReplayed: number | null;
  /** Publisher: from the burst command to its last print flushed to NATS. */
  burstMs: number;
}

/** What the trades scenario's gateway spent on ingest alone: a window before any client subscribed. */
export interface TradeIngestStep {
  rate: number;
  /** What the publisher sent during the window. */
  tradesPerSec: number;
  publisherLagP99Ms: number | null;
  windowSeconds: number;
  /** Trades the gateway accepted per second (its counter), and refused in the window. */
  gatewayTradesPerSec: number | null;
  rejected: number | null;
  gateway: { cpuPercent: number | null; systemPercent: number | null; usPerTrade: number | null; rssMiB: number | null };
  busCpuPercent: number | null;
  publisherCpuPercent: number | null;
  otherProcessesPercent: number | null;
  warnings: string[];
}

/** One step (trade rate) of the trades scenario with its clients. */
export interface TradeStep {
  rate: number;
  tradesPerSec: number;
  publisherLagP99Ms: number | null;
  windowSeconds: number;
  connections: number;
  /** Trades the clients received per second, and what the subscriptions imply at the rate the gateway took in. */
  deliveredPerSec: number;
  expectedPerSec: number;
  /** The gateway's own count of trade messages queued per second. */
  gatewayDeliveredPerSec: number | null;
  framesPerSec: number;
  bytesPerConnPerSec: number;
  /**
   * The gateway: % of one core (of which kernel); CPU per trade in; CPU per
   * trade delivered (all of it, over the trade messages it queued); and the
   * delivery share: CPU above the ingest-only window at the same rate, per
   * trade delivered (null without that window).
   */
  gateway: { cpuPercent: number | null; systemPercent: number | null; usPerTradeIn: number | null; usPerDelivered: number | null; deliveryUsPerDelivered: number | null; rssMiB: number | null };
  /** Receive time - the trade's ts (its scheduled time at the open-loop publisher). */
  latency: LatencySummary;
  /** Client checks over the window: duplicates, trades skipped, q != the publisher's id, gap messages. */
  duplicates: number;
  missing: number;
  idMismatches: number;
  gapMessages: number;
  closedEarly: number;
  /** Gateway counters: held back by backpressure, SLOW_CONSUMER disconnects. */
  conflated: number | null;
  slowConsumers: number | null;
  busCpuPercent: number | null;
  publisherCpuPercent: number | null;
  clientCpuPercent: number | null;
  clientMaxProcPercent: number | null;
  clientProcs: number;
  clientEventLoopP99Ms: number | null;
  machineBusyPercent: number | null;
  otherProcessesPercent: number | null;
  serverCoreBusyPercent: number | null;
  serverCoreSoftirqPercent: number | null;
  otherCoresBusyPercent: number | null;
  warnings: string[];
}

/** After the publisher paused: every subscription against the publisher's count of its symbol. */
export interface TradeFinal {
  subscriptions: number;
  /** Subscriptions whose last trade is the symbol's last published. */
  complete: number;
  missingAtEnd: number;
  /** Since the clients subscribed. */
  trades: number;
  duplicates: number;
  missing: number;
  idMismatches: number;
  gapMessages: number;
  unacked: number;
  /** Trades published on the fan-out symbols in all. */
  published: number;
  /** Seconds waited after the pause for the last trades to arrive. */
  waitedS: number;
}

export interface TradesResult {
  workload: {
    symbols: number;
    zipf: number;
    clients: number;
    symbolsPerClient: number;
    /** Trades delivered per trade published that the subscriptions imply. */
    expectedPerTrade: number;
    loadProcs: number;
    catchupTrades: number;
    catchupSymbols: number;
    catchupRate: number;
    historySize: number;
  };
  catchup: TradeCatchupRun[];
  ingest: TradeIngestStep[];
  steps: TradeStep[];
  final: TradeFinal | null;
  errors: string[];
  notes: string[];
}

export interface SuiteResult {
  startedAt: string;
  seconds: number;
  command: string;
  quick: boolean;
  workers: number | null;
  machine: Machine;
  fanout: FanoutResult | null;
  connections: ConnectionsResult | null;
  isolation: IsolationResult | null;
  /** The books scenario; absent in reports written before it existed. */
  books?: BooksResult | null;
  /** The trades scenario; absent in reports written before it existed. */
  trades?: TradesResult | null;
}

/** a / b rounded to 2 decimals, or null when either is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  return Math.round((a / b) * 100) / 100;
}

/** ` (held N, hold M ms)` for an adaptive tickgate step, else nothing. */
export const heldText = (s: Pick<FanoutStep, 'held'>): string => (s.held ? ` (held ${int(s.held.perSec)}, hold ${fmt(s.held.holdMs, 1)} ms)` : '');

export const fmt = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
export const int = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US'));

/** A Markdown table; cells are escaped for pipes. */
export function mdTable(header: string[], rows: string[][], align?: Array<'l' | 'r'>): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const sep = header.map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  return [`| ${header.map(esc).join(' | ')} |`, `|${sep.join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

/** What the books and trades scenarios measure of the load side, per step. */
type LoadSide = { gateway: { rssMiB: number | null } } & Pick<
  BookStep,
  | 'connections'
  | 'framesPerSec'
  | 'bytesPerConnPerSec'
  | 'serverCoreBusyPercent'
  | 'serverCoreSoftirqPercent'
  | 'publisherCpuPercent'
  | 'publisherLagP99Ms'
  | 'busCpuPercent'
  | 'clientCpuPercent'
  | 'clientProcs'
  | 'clientMaxProcPercent'
  | 'otherCoresBusyPercent'
  | 'machineBusyPercent'
  | 'otherProcessesPercent'
  | 'clientEventLoopP99Ms'
>;

/** The "Load side" table of the books and trades scenarios: one row per step, led by its input rate. */
function loadSideTable(rateLabel: string, rows: Array<[rate: number, s: LoadSide]>): string {
  return mdTable(
    [rateLabel, 'connections', 'frames/s', 'B/s per conn', 'gateway core busy % (softirq)', 'gateway RSS MiB', 'publisher % / lag p99 ms', 'bus % core', 'load clients % (procs, max proc)', 'load CPUs busy %', 'other % core', 'client event-loop p99 ms'],
    rows.map(([rate, s]) => [
      int(rate),
      int(s.connections),
      int(s.framesPerSec),
      int(s.bytesPerConnPerSec),
      s.serverCoreBusyPercent === null ? '-' : `${fmt(s.serverCoreBusyPercent)} (${fmt(s.serverCoreSoftirqPercent)})`,
      fmt(s.gateway.rssMiB),
      `${fmt(s.publisherCpuPercent)} / ${fmt(s.publisherLagP99Ms, 2)}`,
      fmt(s.busCpuPercent),
      `${fmt(s.clientCpuPercent)} (${s.clientProcs}, ${fmt(s.clientMaxProcPercent)})`,
      s.otherCoresBusyPercent === null ? `machine ${fmt(s.machineBusyPercent)}` : fmt(s.otherCoresBusyPercent),
      fmt(s.otherProcessesPercent),
      fmt(s.clientEventLoopP99Ms, 2),
    ]),
  );
}

const lat = (l: LatencySummary) => `${fmt(l.p50, 2)} / ${fmt(l.p99, 2)} / ${fmt(l.p999, 2)} / ${fmt(l.max, 1)}`;

const keyOf = (s: FanoutStep) => `${s.system}|${s.flush ?? ''}|${s.rate}`;
const mean = (xs: Array<number | null>): number | null => {
  const ok = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  return ok.length === 0 ? null : ok.reduce((a, b) => a + b, 0) / ok.length;
};

/**
 * One step per system, flush interval and rate: with several rounds, the
 * mean of the rounds' throughput, CPU and p99 (run in alternating order, the
 * mean cancels a machine that drifts slower or faster during the run). The
 * other fields are the first round's. With one round, the steps themselves.
 */
export function meanOverRounds(steps: readonly FanoutStep[]): FanoutStep[] {
  const groups = new Map<string, FanoutStep[]>();
  for (const s of steps) {
    const g = groups.get(keyOf(s));
    if (g === undefined) groups.set(keyOf(s), [s]);
    else g.push(s);
  }
  return [...groups.values()].map((g) => {
    if (g.length === 1) return g[0]!;
    const first = g[0]!;
    return {
      ...first,
      deliveredPerSec: mean(g.map((s) => s.deliveredPerSec)) ?? first.deliveredPerSec,
      latency: { ...first.latency, p99: mean(g.map((s) => s.latency.p99)) },
      server: {
        ...first.server,
        cpuPercent: mean(g.map((s) => s.server.cpuPercent)),
        usPerUpdate: mean(g.map((s) => s.server.usPerUpdate)),
      },
      stopReasons: g.flatMap((s) => s.stopReasons),
    };
  });
}

/** Ratios of a baseline to tickgate at each step both ran. */
export interface StepRatio {
  rate: number;
  /** How the tickgate run flushed. */
  flush: Flush;
  baseline: System;
  /** Baseline server CPU per delivered update / tickgate's: how many times less CPU tickgate spends. */
  cpuPerUpdate: number | null;
  /** tickgate p99 / baseline p99: below 1 means tickgate is faster. */
  p99: number | null;
  tickgateDelivered: number;
  baselineDelivered: number;
}

export function stepRatios(all: readonly FanoutStep[]): StepRatio[] {
  const out: StepRatio[] = [];
  const steps = meanOverRounds(all);
  for (const t of steps.filter((s) => s.system === 'tickgate')) {
    for (const b of steps.filter((s) => s.system !== 'tickgate' && s.rate === t.rate)) {
      out.push({
        rate: t.rate,
        flush: t.flush ?? 'adaptive',
        baseline: b.system,
        cpuPerUpdate: ratio(b.server.usPerUpdate, t.server.usPerUpdate),
        p99: ratio(t.latency.p99, b.latency.p99),
        tickgateDelivered: t.deliveredPerSec,
        baselineDelivered: b.deliveredPerSec,
      });
    }
  }
  return out;
}

export type Verdict = 'met' | 'missed' | 'not measured';

export interface TargetResult {
  target: string;
  verdict: Verdict;
  detail: string;
}

/** The fan-out targets for one tickgate run; `steps` holds that run's steps and the baselines'. */
function tickgateTargets(all: readonly FanoutStep[], suffix: string): TargetResult[] {
  const out: TargetResult[] = [];
  const steps = meanOverRounds(all);
  const tg = steps.filter((s) => s.system === 'tickgate');
  const ratios = stepRatios(steps);
  const vsBaseline = (baseline: System, min: number, label: string) => {
    const rs = ratios.filter((x) => x.baseline === baseline);
    const tgRates = tg.map((s) => s.rate);
    const missing = tgRates.filter((rate) => !rs.some((x) => x.rate === rate));
    if (rs.length === 0) return out.push({ target: label, verdict: 'not measured', detail: `no common step with ${SYSTEM_LABEL[baseline]}` });
    const bad = rs.filter((x) => x.cpuPerUpdate === null || x.cpuPerUpdate < min);
    const detail =
      rs.map((x) => `${int(x.rate)}/s: ${fmt(x.cpuPerUpdate, 1)}x`).join(', ') +
      (missing.length > 0 ? `; no baseline figure at ${missing.map((m) => int(m)).join(', ')} ticks/s (its ramp stopped earlier)` : '');
    out.push({ target: label, verdict: bad.length === 0 ? 'met' : 'missed', detail });
  };
  vsBaseline('nats-ws', 4, 'server CPU per delivered update >= 4x lower than nats-server WebSocket, every step' + suffix);
  vsBaseline('ws-json', 10, 'server CPU per delivered update >= 10x lower than the ws + JSON gateway, every step' + suffix);

  const natsP99 = ratios.filter((x) => x.baseline === 'nats-ws');
  const p99Label = 'p99 no worse than nats-server WebSocket, every step' + suffix;
  if (natsP99.length === 0) out.push({ target: p99Label, verdict: 'not measured', detail: 'no common step' });
  else {
    const bad = natsP99.filter((x) => x.p99 === null || x.p99 > 1);
    out.push({
      target: p99Label,
      verdict: bad.length === 0 ? 'met' : 'missed',
      detail: natsP99.map((x) => `${int(x.rate)}/s: ${fmt(x.p99, 2)}x`).join(', ') + ' (tickgate p99 / nats p99)',
    });
  }

  const upTo200k = tg.filter((s) => s.deliveredPerSec <= 200_000);
  if (upTo200k.length === 0) out.push({ target: 'p99 < 5 ms up to 200k updates/s' + suffix, verdict: 'not measured', detail: 'no tickgate step at or below 200k updates/s' });
  else {
    const bad = upTo200k.filter((s) => s.latency.p99 === null || s.latency.p99 >= 5);
    out.push({
      target: 'p99 < 5 ms up to 200k updates/s' + suffix,
      verdict: bad.length === 0 ? 'met' : 'missed',
      detail: upTo200k.map((s) => `${int(s.deliveredPerSec)}/s: ${fmt(s.latency.p99, 2)} ms`).join(', '),
    });
  }

  const good = tg.filter((s) => s.latency.p99 !== null && s.latency.p99 < 50 && s.server.cpuPercent !== null && s.server.cpuPercent > 0);
  if (good.length === 0) out.push({ target: '>= 1M delivered updates/s per gateway core at p99 < 50 ms' + suffix, verdict: 'not measured', detail: 'no tickgate step with p99 < 50 ms' });
  else {
    const best = good.reduce((a, b) => (b.deliveredPerSec > a.deliveredPerSec ? b : a));
    const perCore = best.deliveredPerSec / (best.server.cpuPercent! / 100);
    const measured = best.deliveredPerSec >= 1_000_000;
    out.push({
      target: '>= 1M delivered updates/s per gateway core at p99 < 50 ms' + suffix,
      verdict: perCore >= 1_000_000 ? 'met' : 'missed',
      detail:
        `highest step with p99 < 50 ms: ${int(best.deliveredPerSec)} updates/s at ${fmt(best.server.cpuPercent)}% of a core (p99 ${fmt(best.latency.p99, 1)} ms), ` +
        `${int(perCore)} per core-second` +
        (measured ? '' : ' (extrapolated from CPU per update: the gateway\'s core was never saturated)'),
    });
  }
  return out;
}

/**
 * The adaptive default against tickgate's two fixed schedules and
 * nats-server at the same steps: p99 within 1.1x of the better of immediate
 * and 5 ms at every step; CPU per update within 1.25x of the 5 ms schedule's
 * from 2,500 ticks/s up; against nats-server, CPU per update at least 1.5x
 * lower and p99 no worse at every step. Only the comparisons whose runs took
 * place are judged.
 */
export function adaptiveTargets(all: readonly FanoutStep[]): TargetResult[] {
  const steps = meanOverRounds(all);
  const out: TargetResult[] = [];
  const of = (system: System, flush: Flush | null) => steps.filter((s) => s.system === system && (system !== 'tickgate' || (s.flush ?? 'adaptive') === flush));
  const adaptive = of('tickgate', 'adaptive');
  if (adaptive.length === 0) return out;
  const at = (xs: FanoutStep[], rate: number) => xs.find((s) => s.rate === rate);
  const immediate = of('tickgate', 0);
  const five = of('tickgate', 5);
  const nats = of('nats-ws', null);
  const judge = (target: string, pairs: Array<{ rate: number; value: number | null; limit: number | null; show: string }>) => {
    const judged = pairs.filter((p) => p.limit !== null);
    if (judged.length === 0) return out.push({ target, verdict: 'not measured', detail: 'no common step' });
    const bad = judged.filter((p) => p.value === null || p.value > p.limit!);
    out.push({ target, verdict: bad.length === 0 ? 'met' : 'missed', detail: judged.map((p) => `${int(p.rate)}/s: ${p.show}`).join(', ') });
  };
  if (immediate.length > 0 && five.length > 0) {
    judge(
      'adaptive p99 <= 1.1x the better of immediate and 5 ms, every step',
      adaptive.map((s) => {
        const best = [at(immediate, s.rate)?.latency.p99, at(five, s.rate)?.latency.p99].filter((x): x is number => typeof x === 'number');
        const limit = best.length === 2 ? 1.1 * Math.min(...best) : null;
        return { rate: s.rate, value: s.latency.p99, limit, show: `${fmt(s.latency.p99, 2)} ms vs ${limit === null ? '-' : fmt(limit / 1.1, 2)} ms (${fmt(ratio(s.latency.p99, limit === null ? null : limit / 1.1), 2)}x)` };
      }),
    );
  }
  if (five.length > 0) {
    judge(
      'adaptive CPU per update <= 1.25x the 5 ms schedule\'s, from 2,500 ticks/s',
      adaptive
        .filter((s) => s.rate >= 2500)
        .map((s) => {
          const f = at(five, s.rate)?.server.usPerUpdate ?? null;
          return { rate: s.rate, value: s.server.usPerUpdate, limit: f === null ? null : 1.25 * f, show: `${fmt(s.server.usPerUpdate, 2)} vs ${fmt(f, 2)} µs (${fmt(ratio(s.server.usPerUpdate, f), 2)}x)` };
        }),
    );
  }
  if (nats.length > 0) {
    judge(
      'adaptive CPU per update >= 1.5x lower than nats-server WebSocket, every step',
      adaptive.map((s) => {
        const n = at(nats, s.rate)?.server.usPerUpdate ?? null;
        const r = ratio(n, s.server.usPerUpdate);
        return { rate: s.rate, value: r === null ? null : 1 / r, limit: n === null ? null : 1 / 1.5, show: `${fmt(r, 2)}x` };
      }),
    );
    judge(
      'adaptive p99 no worse than nats-server WebSocket, every step',
      adaptive.map((s) => {
        const n = at(nats, s.rate)?.latency.p99 ?? null;
        return { rate: s.rate, value: s.latency.p99, limit: n, show: `${fmt(s.latency.p99, 2)} vs ${fmt(n, 2)} ms` };
      }),
    );
  }
  return out;
}

/** Each target of docs/PERFORMANCE.md against the results. */
export function evaluateTargets(r: SuiteResult): TargetResult[] {
  const out: TargetResult[] = [];
  const steps = r.fanout?.steps ?? [];
  // Each tickgate run (the default, and one per flush interval measured) against every target that concerns it.
  const variants = [...new Set(steps.filter((s) => s.system === 'tickgate').map((s) => s.flush ?? 'adaptive'))].sort((a, b) => flushOrder(a) - flushOrder(b));
  for (const flush of variants.length > 0 ? variants : ['adaptive' as const]) {
    const suffix = variants.length > 1 ? ` (${flush === 'adaptive' ? 'tickgate, adaptive default' : stepLabel({ system: 'tickgate', flush })})` : '';
    const own = steps.filter((s) => s.system !== 'tickgate' || (s.flush ?? 'adaptive') === flush);
    out.push(...tickgateTargets(own, suffix));
  }
  out.push(...adaptiveTargets(steps));
  const iso = r.isolation;
  if (iso === null || iso.ratio === null) out.push({ target: 'isolation: fast p99 rises < 20% with 5% slow + 1% stalled', verdict: 'not measured', detail: iso?.error ?? 'not run' });
  else {
    out.push({
      target: 'isolation: fast p99 rises < 20% with 5% slow + 1% stalled',
      verdict: iso.ratio < 1.2 ? 'met' : 'missed',
      detail: `fast p99 ${fmt(iso.fastP99CleanMs, 1)} ms clean, ${fmt(iso.fastP99WithSlowMs, 1)} ms with slow clients: ${fmt(iso.ratio, 2)}x`,
    });
  }

  if (r.books) out.push(...bookTargets(r.books));
  if (r.trades) out.push(...tradeTargets(r.trades));

  const c = r.connections;
  const last = c?.steps[c.steps.length - 1];
  if (c === null || last === undefined) out.push({ target: 'connections: 20,000 at < 10 KB gateway RSS each', verdict: 'not measured', detail: c?.error ?? 'not run' });
  else {
    const reached = last.open >= 20_000;
    const small = last.rssPerConnKiB !== null && last.rssPerConnKiB * 1024 < 10_000;
    out.push({
      target: 'connections: 20,000 at < 10 KB gateway RSS each',
      verdict: reached && small ? 'met' : 'missed',
      detail: `${int(last.open)} open, ${fmt(last.rssPerConnKiB, 2)} KiB each` + (c.limitNote ? ` (${c.limitNote})` : ''),
    });
  }
  return out;
}

/** The books scenario's targets (only when it ran). */
export function bookTargets(b: BooksResult): TargetResult[] {
  const label = 'books: every client window exact (0 checksum mismatches, 0 q gaps)';
  if (b.steps.length === 0) return [{ target: label, verdict: 'not measured', detail: b.errors[0]?.slice(0, 200) ?? 'no step measured' }];
  const bad = b.steps.filter((s) => s.checksumMismatches > 0 || s.qGaps > 0 || s.badRemovals > 0);
  const checks = b.steps.reduce((a, s) => a + s.checksumChecks, 0);
  return [
    {
      target: label,
      verdict: bad.length === 0 ? 'met' : 'missed',
      detail:
        b.steps.map((s) => `${int(s.levelChangesPerSec)} level changes/s: ${int(s.checksumMismatches)} mismatches, ${int(s.qGaps)} q gaps`).join('; ') +
        ` (${int(checks)} checksums checked)`,
    },
  ];
}

/** p50 and max of the catch-up times (`lastMs`) of the measured runs under one load (warm-up rounds apart), and how many were exact. */
export function catchupSummary(all: readonly TradeCatchupRun[]): {
  runs: number;
  exact: number;
  p50: number | null;
  max: number | null;
  ackP50: number | null;
  connectP50: number | null;
  warmupMs: Array<number | null>;
} {
  const runs = all.filter((r) => !r.warmup);
  const median = (xs: number[]) => {
    if (xs.length === 0) return null;
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const done = runs.flatMap((r) => (r.lastMs === null ? [] : [r.lastMs]));
  return {
    runs: runs.length,
    exact: runs.filter((r) => r.exact).length,
    p50: median(done),
    max: done.length === 0 ? null : Math.max(...done),
    ackP50: median(runs.flatMap((r) => (r.ackMs === null ? [] : [r.ackMs]))),
    connectP50: median(runs.map((r) => r.connectMs)),
    warmupMs: all.filter((r) => r.warmup).map((r) => r.lastMs),
  };
}

/** The trades scenario's targets (only when it ran). */
export function tradeTargets(t: TradesResult): TargetResult[] {
  const out: TargetResult[] = [];
  const label = 'trades: every client got every trade of its symbols, once and in order';
  const f = t.final;
  if (f === null) out.push({ target: label, verdict: 'not measured', detail: t.errors[0]?.slice(0, 200) ?? 'no final check' });
  else {
    const bad = t.steps.filter((s) => s.missing > 0 || s.duplicates > 0 || s.idMismatches > 0 || s.gapMessages > 0);
    const ok = bad.length === 0 && f.complete === f.subscriptions && f.missingAtEnd === 0 && f.duplicates === 0 && f.missing === 0 && f.idMismatches === 0 && f.gapMessages === 0 && f.unacked === 0;
    out.push({
      target: label,
      verdict: ok ? 'met' : 'missed',
      detail:
        `${int(f.complete)} of ${int(f.subscriptions)} subscriptions complete after the publisher paused; ${int(f.trades)} trades received, ` +
        `${int(f.missing + f.missingAtEnd)} missing, ${int(f.duplicates)} duplicated, ${int(f.idMismatches)} not numbered as published, ${int(f.gapMessages)} gaps`,
    });
  }
  const cLabel = `trades: a client resuming after ${int(t.workload.catchupTrades)} missed trades gets exactly those (rec true, each once, in order)`;
  if (t.catchup.length === 0) out.push({ target: cLabel, verdict: 'not measured', detail: t.errors[0]?.slice(0, 200) ?? 'no catch-up run' });
  else {
    const loads = [...new Set(t.catchup.map((r) => r.loadRate))];
    out.push({
      target: cLabel,
      // Warm-up rounds count here too: every resume must be exact.
      verdict: t.catchup.every((r) => r.exact) ? 'met' : 'missed',
      detail: loads
        .map((l) => {
          const runs = t.catchup.filter((r) => r.loadRate === l);
          const c = catchupSummary(runs);
          const warm = c.warmupMs.length > 0 ? ` (${c.warmupMs.length} warm-up)` : '';
          return `${l === 0 ? 'quiet gateway' : `under ${int(l)} trades/s`}: ${runs.filter((r) => r.exact).length} of ${runs.length} exact${warm}, p50 ${fmt(c.p50, 1)} ms, max ${fmt(c.max, 1)} ms`;
        })
        .join('; '),
    });
  }
  return out;
}

function tradesText(t: TradesResult): string {
  const w = t.workload;
  const out: string[] = [
    `## Trade prints: ${int(w.symbols)} symbols, ${w.clients} clients x ${w.symbolsPerClient} symbols`,
    '',
    `Single prints from load/trade-sim.ts (Zipf ${w.zipf} activity across symbols), published open-loop by load/trade-publisher.ts through nats-server, each stamped with its scheduled time. ` +
      `Clients (load/trade-client.ts, ${w.loadProcs} processes) subscribe to ${w.symbolsPerClient} symbols each, picked uniformly; the subscriptions imply ${fmt(w.expectedPerTrade, 2)} deliveries per trade. ` +
      'Each client checks every trade of its symbols arrives once and in order (q after q, numbered as the publisher did). Latency is the trade\'s `ts` to decode in the client.',
    '',
  ];
  if (t.catchup.length > 0) {
    out.push(
      `### Catch-up after ${int(w.catchupTrades)} missed trades`,
      '',
      `A client (load/trade-catchup.ts) subscribed to ${w.catchupSymbols} symbol${w.catchupSymbols === 1 ? '' : 's'} of its own goes away; ${int(w.catchupTrades)} trades are published on ${w.catchupSymbols === 1 ? 'it' : 'them'} at ${int(w.catchupRate)}/s; ` +
        `once the gateway has them all (history ${int(w.historySize)} per symbol), the client reconnects and subscribes with \`since\`. Catch-up: from sending that \`sub\` to the frame with the last missed trade decoded. ` +
        'Exact: `rec` true, every missed trade once and in order, ids and CRC32 equal to what the publisher sent, no `gap`. ' +
        'Warm-up rounds (the first on a fresh gateway, whose replay path the JIT has not compiled yet) are checked but kept out of p50 and max.',
      '',
      mdTable(
        ['load', 'rounds (+ warm-up)', 'exact', 'catch-up p50 / max ms', 'ack p50 ms', 'connect p50 ms', 'trades/s while catching up (p50)', 'frames', 'KiB', 'warm-up rounds ms'],
        [...new Set(t.catchup.map((r) => r.loadRate))].map((l) => {
          const runs = t.catchup.filter((r) => r.loadRate === l);
          const c = catchupSummary(runs);
          return [
            l === 0 ? 'quiet gateway' : `${int(l)} trades/s fan-out`,
            c.warmupMs.length === 0 ? String(c.runs) : `${c.runs} (+ ${c.warmupMs.length})`,
            `${runs.filter((r) => r.exact).length} of ${runs.length}`,
            `${fmt(c.p50, 2)} / ${fmt(c.max, 2)}`,
            fmt(c.ackP50, 2),
            fmt(c.connectP50, 2),
            c.p50 ? int((w.catchupTrades / c.p50) * 1000) : '-',
            int(runs[0]?.frames),
            fmt(runs[0] ? runs[0].bytes / 1024 : null, 1),
            c.warmupMs.length === 0 ? '-' : c.warmupMs.map((x) => fmt(x, 1)).join(', '),
          ];
        }),
      ),
      '',
    );
  }
  if (t.ingest.length > 0) {
    out.push(
      '### Ingest only (no subscribers)',
      '',
      mdTable(
        ['trades/s asked', 'trades/s in', 'gateway % core (of which kernel)', 'gateway µs per trade', 'trades per gateway core-second', 'publisher % / lag p99 ms', 'bus % core', 'other % core', 'notes'],
        t.ingest.map((s) => [
          int(s.rate),
          int(s.tradesPerSec),
          `${fmt(s.gateway.cpuPercent)} (${fmt(s.gateway.systemPercent)})`,
          fmt(s.gateway.usPerTrade, 3),
          s.gateway.usPerTrade ? int(1e6 / s.gateway.usPerTrade) : '-',
          `${fmt(s.publisherCpuPercent)} / ${fmt(s.publisherLagP99Ms, 2)}`,
          fmt(s.busCpuPercent),
          fmt(s.otherProcessesPercent),
          [...s.warnings, ...(s.rejected ? [`${int(s.rejected)} rejected`] : [])].join('; '),
        ]),
        ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
      '',
    );
  }
  if (t.steps.length > 0) {
    out.push(
      '### Delivery',
      '',
      'Gateway µs per trade in: all of its CPU over the trades it accepted. Per delivered: all of it over the trade messages it queued (its own counter; delivered/s is what the clients received). Delivery per delivered: its CPU minus the ingest-only window\'s cost per trade for the same trades, over the trades delivered.',
      '',
      mdTable(
        ['trades/s in', 'delivered/s (expected)', 'gateway % core (of which kernel)', 'µs per trade in', 'µs per delivered', 'delivery µs per delivered', 'p50 / p99 / p99.9 / max ms', 'missing / duplicated / misnumbered', 'conflated', 'notes'],
        t.steps.map((s) => [
          int(s.tradesPerSec),
          `${int(s.deliveredPerSec)} (${int(s.expectedPerSec)})`,
          `${fmt(s.gateway.cpuPercent)} (${fmt(s.gateway.systemPercent)})`,
          fmt(s.gateway.usPerTradeIn, 3),
          fmt(s.gateway.usPerDelivered, 3),
          fmt(s.gateway.deliveryUsPerDelivered, 3),
          lat(s.latency),
          `${int(s.missing)} / ${int(s.duplicates)} / ${int(s.idMismatches)}`,
          s.conflated === null ? '-' : int(s.conflated),
          s.warnings.join('; '),
        ]),
        ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
      '',
      '### Load side',
      '',
      loadSideTable('trades/s in', t.steps.map((s) => [s.tradesPerSec, s])),
    );
  }
  const f = t.final;
  if (f !== null) {
    out.push(
      '',
      `After the publisher paused (${int(f.published)} trades published on the fan-out symbols; checked ${fmt(f.waitedS, 1)} s later): ${int(f.complete)} of ${int(f.subscriptions)} subscriptions had their symbol's last trade; ` +
        `since subscribing the clients received ${int(f.trades)} trades, ${int(f.missing + f.missingAtEnd)} missing, ${int(f.duplicates)} duplicated, ${int(f.idMismatches)} not numbered as published, ${int(f.gapMessages)} gaps, ${int(f.unacked)} subscriptions never acked.`,
    );
  }
  for (const n of t.notes) out.push('', `Note: ${n}`);
  for (const e of t.errors) out.push('', `**Trades failed:** ${e}`);
  return out.join('\n');
}

function booksText(b: BooksResult): string {
  const w = b.workload;
  const out: string[] = [
    `## Order books: ${int(w.books)} books, ${w.clients} clients x ${w.booksPerClient} books`,
    '',
    `Book churn from load/book-sim.ts: about ${int(w.levelsPerSide)} levels a side, Zipf ${w.zipf} activity across books, ${w.levelsPerMessage} level changes per message on average, mostly near the top; ` +
      `published by load/book-publisher.ts through nats-server. Clients (load/book-client.ts, ${w.loadProcs} processes) subscribe to ${w.booksPerClient} books each, picked ${w.pickZipf === 0 ? 'uniformly' : `with Zipf ${w.pickZipf}`}, ` +
      `at depths ${w.depths.join(' and ')} in turn, ${Math.round(w.throttledFraction * 100)}% of them throttled at ${w.throttleMs} ms; they keep every window and check every checksum. ` +
      `The subscriptions imply ${fmt(w.expectedBupdPerMessage, 2)} bupd per change message. ` +
      'Latency is the source time (carried in the sizes a bupd sets) to decode in the client; bytes compare each bupd with the client\'s whole window sent as one `book`.',
    '',
  ];
  if (b.ingest.length > 0) {
    out.push(
      '### Ingest only (no subscribers)',
      '',
      mdTable(
        ['level changes/s asked', 'level changes/s in', 'messages/s', 'gateway % core (of which kernel)', 'gateway µs per level change', 'level changes per gateway core-second', 'publisher % / lag p99 ms', 'bus % core', 'other % core', 'notes'],
        b.ingest.map((s) => [
          int(s.rate),
          int(s.levelChangesPerSec),
          int(s.messagesPerSec),
          `${fmt(s.gateway.cpuPercent)} (${fmt(s.gateway.systemPercent)})`,
          fmt(s.gateway.usPerLevelChange, 3),
          s.gateway.usPerLevelChange ? int(1e6 / s.gateway.usPerLevelChange) : '-',
          `${fmt(s.publisherCpuPercent)} / ${fmt(s.publisherLagP99Ms, 2)}`,
          fmt(s.busCpuPercent),
          fmt(s.otherProcessesPercent),
          [...s.warnings, ...(s.rejected ? [`${int(s.rejected)} rejected`] : [])].join('; '),
        ]),
        ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
      '',
    );
  }
  if (b.steps.length > 0) {
    out.push(
      '### Delivery',
      '',
      'Gateway µs per level change: all of its CPU over the level changes it applied (its count of book messages x the publisher\'s level changes per message). Per bupd: all of it over the bupd it queued (its own counter; bupd/s is what the clients received). Delivery per bupd: its CPU minus the ingest-only window\'s cost per level change for the same level changes, over the bupd.',
      '',
      mdTable(
        ['level changes/s in', 'bupd/s (expected)', 'book/s live / throttled', 'gateway % core (of which kernel)', 'µs per level change', 'µs per bupd', 'delivery µs per bupd', 'bupd p50 / p99 / p99.9 / max ms', 'throttled book age p99 ms', 'checksums checked / mismatches', 'q gaps', 'conflated', 'notes'],
        b.steps.map((s) => [
          int(s.levelChangesPerSec),
          `${int(s.bupdPerSec)} (${int(s.expectedBupdPerSec)})`,
          `${int(s.liveBooksPerSec)} / ${int(s.throttledBooksPerSec)}`,
          `${fmt(s.gateway.cpuPercent)} (${fmt(s.gateway.systemPercent)})`,
          fmt(s.gateway.usPerLevelChange, 3),
          fmt(s.gateway.usPerBupd, 3),
          fmt(s.gateway.deliveryUsPerBupd, 3),
          lat(s.latency),
          fmt(s.throttledAge.p99, 2),
          `${int(s.checksumChecks)} / ${int(s.checksumMismatches)}`,
          int(s.qGaps),
          s.conflated === null ? '-' : int(s.conflated),
          s.warnings.join('; '),
        ]),
        ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
      '',
      '### Bytes per update',
      '',
      'MessagePack bytes of each bupd the live clients received, against their whole window after it as one `book` message (what a gateway without deltas would send on every change).',
      '',
      mdTable(
        ['level changes/s in', 'depth', 'bupd/s', 'levels per bupd', 'bytes per bupd', 'whole window bytes', 'bupd / whole window'],
        b.steps.flatMap((s) => [
          ...s.byDepth.map((d) => [int(s.levelChangesPerSec), String(d.depth), int(d.bupdPerSec), fmt(d.levelsPerBupd, 2), fmt(d.bytesPerBupd), fmt(d.wholeWindowBytes), fmt(d.ratio, 3)]),
          [int(s.levelChangesPerSec), 'all', int(s.bupdPerSec), '', fmt(s.bytesPerBupd), fmt(s.wholeWindowBytes), fmt(s.bytesRatio, 3)],
        ]),
      ),
      '',
      `Throttled clients' \`book\`: ${b.steps.map((s) => `${fmt(s.throttledBytesPerBook)} bytes each at ${int(s.levelChangesPerSec)} level changes/s`).join('; ')}. ` +
        `Empty bupd (no level inside the window, q and cs only): ${b.steps.map((s) => `${fmt(s.emptyBupdShare === null ? null : s.emptyBupdShare * 100)}%`).join(', ')}.`,
      '',
      '### Load side',
      '',
      loadSideTable('level changes/s in', b.steps.map((s) => [s.levelChangesPerSec, s])),
    );
  }
  for (const n of b.notes) out.push('', `Note: ${n}`);
  for (const e of b.errors) out.push('', `**Books failed:** ${e}`);
  return out.join('\n');
}

function machineText(m: Machine): string {
  return [
    `- ${m.cpus} x ${m.model}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, ${m.nats}`,
    `- open files limit ${m.openFiles.soft} (hard ${m.openFiles.hard}); ephemeral ports ${int(m.ephemeralPorts)} per source address`,
    m.pinning
      ? `- server under test pinned to CPU ${m.pinning.server} with taskset; nats bus, publisher and load clients on CPU ${m.pinning.others}`
      : '- nothing pinned: every process shares every CPU',
  ].join('\n');
}

function fanoutText(f: FanoutResult): string {
  const out: string[] = [];
  const multi = f.rounds > 1;
  // With several rounds: each system's steps together, round after round.
  const firstSeen = new Map<string, number>();
  for (const s of f.steps) if (!firstSeen.has(stepLabel(s))) firstSeen.set(stepLabel(s), firstSeen.size);
  const steps = multi ? [...f.steps].sort((a, b) => firstSeen.get(stepLabel(a))! - firstSeen.get(stepLabel(b))! || a.rate - b.rate || a.round - b.round) : f.steps;
  const label = (s: FanoutStep) => stepLabel(s) + (multi ? `, round ${s.round + 1}` : '');
  out.push(
    `## Fan-out: ${int(f.symbols)} Zipf symbols, ${f.clients} clients x ${f.symbolsPerClient} Zipf-picked symbols`,
    '',
    `Each tick reaches ${fmt(f.expectedFanout, 2)} clients on average (from the subscriptions and the feed's Zipf weights). ` +
      'Latency is source `ts` (the tick\'s scheduled time, open-loop publisher) to decode in the client, p50 / p99 / p99.9 / max in ms; ' +
      '"CO-corr. p99" adds HdrHistogram\'s expected-interval correction with each symbol\'s own interval at the publisher\'s rate (an upper bound). ' +
      'Delivered counts updates received, snapshots excluded; expected is what the subscriptions imply at the rate actually published.',
    '',
  );
  out.push(
    '### Throughput and latency',
    '',
    mdTable(
      ['system', 'ticks/s in', 'delivered upd/s', 'expected upd/s', 'frames/s', 'B/s per conn', 'p50 / p99 / p99.9 / max ms', 'CO-corr. p99 ms', 'conflated', 'slow consumers', 'closed'],
      steps.map((s) => [
        label(s),
        int(s.rate),
        int(s.deliveredPerSec),
        int(s.expectedPerSec),
        int(s.framesPerSec) + heldText(s),
        int(s.bytesPerConnPerSec),
        lat(s.latency),
        fmt(s.latencyCorrected.p99, 2),
        s.conflated === null ? '-' : int(s.conflated),
        s.slowConsumers === null ? '-' : int(s.slowConsumers),
        int(s.closedEarly),
      ]),
    ),
    '',
    '### CPU and memory',
    '',
    'Server: the server under test\'s process (% of one core, and per delivered update). Core busy: the CPU it is pinned to, including kernel work there (softirq: loopback TCP). ' +
      'Load side: the bus, the publisher (with its lag behind schedule) and the load clients, on the other CPU(s). Other: busy time of the machine belonging to none of these processes.',
    '',
    mdTable(
      ['system', 'ticks/s in', 'server µs/upd', 'server % core (of which kernel)', 'server RSS MiB', 'server core busy % (softirq)', 'bus % core', 'publisher % / lag p99 ms', 'load clients % (procs, max proc)', 'load CPUs busy %', 'other % core', 'notes'],
      steps.map((s) => [
        label(s),
        int(s.rate),
        fmt(s.server.usPerUpdate, 2),
        `${fmt(s.server.cpuPercent)} (${fmt(s.server.systemPercent)})`,
        fmt(s.server.rssMiB),
        s.serverCoreBusyPercent === null ? '-' : `${fmt(s.serverCoreBusyPercent)} (${fmt(s.serverCoreSoftirqPercent)})`,
        fmt(s.busCpuPercent),
        `${fmt(s.publisherCpuPercent)} / ${fmt(s.publisherLagP99Ms, 2)}`,
        `${fmt(s.clientCpuPercent)} (${s.clientProcs}, ${fmt(s.clientMaxProcPercent)})`,
        s.otherCoresBusyPercent === null ? `machine ${fmt(s.machineBusyPercent)}` : fmt(s.otherCoresBusyPercent),
        fmt(s.otherProcessesPercent),
        [...s.warnings, ...s.stopReasons.map((x) => `stopped: ${x}`)].join('; '),
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
    '',
    'Server CPU by thread (% of one core; `main` is the event loop):',
    '',
    ...steps.map((s) => `- ${label(s)} at ${int(s.rate)} ticks/s: ${s.serverThreads.map((t) => `${t.name} ${fmt(t.percent)}`).join(', ') || '-'}`),
  );
  if (multi) {
    out.push(
      '',
      `### Means over ${f.rounds} rounds`,
      '',
      `Rounds ran the systems in alternating order (forwards, then backwards), so a machine that drifts slower or faster during the run weighs on every system alike. Ratios and targets use these means.`,
      '',
      mdTable(
        ['system', 'ticks/s in', 'delivered upd/s', 'server µs/upd', 'server % core', 'p99 ms'],
        meanOverRounds(steps).map((s) => [stepLabel(s), int(s.rate), int(s.deliveredPerSec), fmt(s.server.usPerUpdate, 2), fmt(s.server.cpuPercent), fmt(s.latency.p99, 2)]),
      ),
    );
  }
  const ratios = stepRatios(f.steps);
  if (ratios.length > 0) {
    out.push(
      '',
      '### Ratios at the same steps',
      '',
      'CPU: baseline server CPU per delivered update / tickgate\'s (higher is better for tickgate). p99: tickgate p99 / baseline p99 (below 1: tickgate faster).' +
        (multi ? ` Means over ${f.rounds} rounds.` : ''),
      '',
      mdTable(
        ['ticks/s in', 'tickgate', 'baseline', 'CPU per update ratio', 'p99 ratio', 'delivered upd/s tickgate / baseline'],
        ratios.map((x) => [int(x.rate), stepLabel({ system: 'tickgate', flush: x.flush }), SYSTEM_LABEL[x.baseline], `${fmt(x.cpuPerUpdate, 1)}x`, fmt(x.p99, 2), `${int(x.tickgateDelivered)} / ${int(x.baselineDelivered)}`]),
      ),
    );
  }
  for (const n of f.notes) out.push('', `Not measured: ${n}`);
  for (const [sys, err] of Object.entries(f.errors)) out.push('', `**${sys} failed:** ${err}`);
  for (const prof of f.profiles) {
    out.push('', `### ${stepLabel({ system: 'tickgate', flush: prof.flush })}: gateway CPU profile (${prof.file})`);
    for (const p of prof.steps) out.push('', `At ${int(p.rate)} ticks/s, within the step's window:`, '', profileTable(p.summary));
  }
  return out.join('\n');
}

function connectionsText(c: ConnectionsResult): string {
  const out = [
    `## Connections: idle-ish clients, ${c.symbolsPerClient} uniformly picked symbols each, feed at ${int(c.rate)} ticks/s`,
    '',
    `Requested ${int(c.requested)}, ramped to ${int(c.target)}${c.limitNote ? ` (${c.limitNote})` : ''}; ${c.clientProcs} client processes from ${c.sourceAddresses.join(', ') || 'the default address'}. ` +
      `Gateway RSS before any connection: ${fmt(c.baselineRssMiB)} MiB. Subscribe latency is \`sub\` sent to \`ack\` received; connect is TCP connect to \`hello\`.`,
    '',
    mdTable(
      ['connections', 'failed', 'ramp s', 'gateway RSS MiB', 'RSS per conn KiB', 'gateway % core (ramp)', 'subscribe p50 / p99 / p99.9 / max ms', 'connect p50 / p99 ms'],
      c.steps.map((s) => [
        int(s.open),
        s.failed === 0 ? '0' : `${s.failed} (${Object.entries(s.failures).map(([k, v]) => `${k} ${v}`).join(', ')})`,
        fmt(s.rampSeconds),
        fmt(s.gatewayRssMiB),
        fmt(s.rssPerConnKiB, 2),
        fmt(s.gatewayCpuPercent),
        lat(s.subscribeMs),
        `${fmt(s.connectMs.p50, 2)} / ${fmt(s.connectMs.p99, 2)}`,
      ]),
    ),
  ];
  if (c.idle) {
    out.push(
      '',
      `At ${int(c.steps[c.steps.length - 1]?.open)} connections: ${int(c.idle.deliveredPerSec)} updates/s delivered, latency p50 / p99 / p99.9 / max ${lat(c.idle.latency)} ms, gateway ${fmt(c.idle.gatewayCpuPercent)}% of a core` +
        (c.idle.hbPerSec === null ? '.' : `, ${int(c.idle.hbPerSec)} hb/s.`),
    );
  }
  if (c.error) out.push('', `**Error:** ${c.error}`);
  return out.join('\n');
}

function isolationText(i: IsolationResult): string {
  const out = [`## Isolation (bench/isolation.ts ${i.args.join(' ')})`, ''];
  if (i.error) out.push(`**Error:** ${i.error}`);
  else out.push(i.table, '', `Fast clients' p99 with slow clients / without: ${fmt(i.ratio, 2)}. Full results: ${i.file}`);
  return out.join('\n');
}

/** The whole report as Markdown. */
export function renderReport(r: SuiteResult): string {
  const out: string[] = [
    `# tickgate benchmark report (${r.startedAt})`,
    '',
    `Command: \`${r.command}\`${r.quick ? ' (quick smoke run: short windows, few steps)' : ''}; ${Math.round(r.seconds)} s.` +
      (r.workers !== null ? ` Gateway started with TICKGATE_WORKERS=${r.workers}.` : ''),
    '',
    '## Machine',
    '',
    machineText(r.machine),
    '',
    '## Targets',
    '',
    mdTable(
      ['target', 'verdict', 'detail'],
      evaluateTargets(r).map((t) => [t.target, t.verdict, t.detail]),
      ['l', 'l', 'l'],
    ),
  ];
  if (r.fanout) out.push('', fanoutText(r.fanout));
  if (r.books) out.push('', booksText(r.books));
  if (r.trades) out.push('', tradesText(r.trades));
  if (r.connections) out.push('', connectionsText(r.connections));
  if (r.isolation) out.push('', isolationText(r.isolation));
  return out.join('\n') + '\n';
}
