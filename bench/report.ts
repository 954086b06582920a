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

/** What a step measured: the system, and for tickgate its `ws.flushIntervalMs` when not the default 0. */
export function stepLabel(s: Pick<FanoutStep, 'system' | 'flushIntervalMs'>): string {
  return s.system === 'tickgate' && s.flushIntervalMs ? `tickgate, flush ${s.flushIntervalMs} ms` : SYSTEM_LABEL[s.system];
}

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
  /** tickgate's `ws.flushIntervalMs` for this run (0: a frame per event-loop turn); null for the baselines. */
  flushIntervalMs: number | null;
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
  profiles: Array<{ flushIntervalMs: number; file: string; steps: Array<{ rate: number; summary: ProfileSummary }> }>;
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
}

/** a / b rounded to 2 decimals, or null when either is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  return Math.round((a / b) * 100) / 100;
}

export const fmt = (x: number | null | undefined, digits = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
export const int = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US'));

/** A Markdown table; cells are escaped for pipes. */
export function mdTable(header: string[], rows: string[][], align?: Array<'l' | 'r'>): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const sep = header.map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  return [`| ${header.map(esc).join(' | ')} |`, `|${sep.join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

const lat = (l: LatencySummary) => `${fmt(l.p50, 2)} / ${fmt(l.p99, 2)} / ${fmt(l.p999, 2)} / ${fmt(l.max, 1)}`;

const keyOf = (s: FanoutStep) => `${s.system}|${s.flushIntervalMs ?? ''}|${s.rate}`;
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
  /** The tickgate run's `ws.flushIntervalMs`. */
  flushIntervalMs: number;
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
        flushIntervalMs: t.flushIntervalMs ?? 0,
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

/** Each target of docs/PERFORMANCE.md against the results. */
export function evaluateTargets(r: SuiteResult): TargetResult[] {
  const out: TargetResult[] = [];
  const steps = r.fanout?.steps ?? [];
  // Each tickgate run (the default, and one per flush interval measured) against every target that concerns it.
  const variants = [...new Set(steps.filter((s) => s.system === 'tickgate').map((s) => s.flushIntervalMs ?? 0))].sort((a, b) => a - b);
  for (const flush of variants.length > 0 ? variants : [0]) {
    const suffix = variants.length > 1 ? ` (${stepLabel({ system: 'tickgate', flushIntervalMs: flush })})` : '';
    const own = steps.filter((s) => s.system !== 'tickgate' || (s.flushIntervalMs ?? 0) === flush);
    out.push(...tickgateTargets(own, suffix));
  }
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
      mdTable(
        ['level changes/s in', 'connections', 'frames/s', 'B/s per conn', 'gateway core busy % (softirq)', 'gateway RSS MiB', 'publisher % / lag p99 ms', 'bus % core', 'load clients % (procs, max proc)', 'load CPUs busy %', 'other % core', 'client event-loop p99 ms'],
        b.steps.map((s) => [
          int(s.levelChangesPerSec),
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
      ),
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
        int(s.framesPerSec),
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
        ratios.map((x) => [int(x.rate), stepLabel({ system: 'tickgate', flushIntervalMs: x.flushIntervalMs }), SYSTEM_LABEL[x.baseline], `${fmt(x.cpuPerUpdate, 1)}x`, fmt(x.p99, 2), `${int(x.tickgateDelivered)} / ${int(x.baselineDelivered)}`]),
      ),
    );
  }
  for (const n of f.notes) out.push('', `Not measured: ${n}`);
  for (const [sys, err] of Object.entries(f.errors)) out.push('', `**${sys} failed:** ${err}`);
  for (const prof of f.profiles) {
    out.push('', `### ${stepLabel({ system: 'tickgate', flushIntervalMs: prof.flushIntervalMs })}: gateway CPU profile (${prof.file})`);
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
  if (r.connections) out.push('', connectionsText(r.connections));
  if (r.isolation) out.push('', isolationText(r.isolation));
  return out.join('\n') + '\n';
}
