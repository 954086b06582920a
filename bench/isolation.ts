/**
 * Isolation benchmark: what do slow readers cost the clients that keep up?
 *
 * One invocation starts nats-server, the gateway (from source, as its own
 * process), the market simulator and the subscriber load (each in its own
 * process, so none shares another's event loop), then runs the same
 * subscriber workload twice, back to back, against the same gateway and feed:
 *
 *   (a) clean: every client reads continuously;
 *   (b) with slow clients: a fraction reads in bursts (its TCP socket paused
 *       --slow-pause-ms out of every --slow-period-ms) and a smaller fraction
 *       stops reading once subscribed.
 *
 *   npm run bench:isolation -- [--clients 50] [--symbols 2000] [--per-client 200] [--rate 10000] [--duration 30] [--slow-fraction 0.1]
 *
 * The fast clients run in one load process and the clients that turn slow or
 * stalled in (b) in another, each with its own seed, so every client
 * subscribes to the same symbols in both runs and only how some of them read
 * differs; and a slow client catching up does not delay the fast clients'
 * reads inside a shared load process. Reported per run: the fast
 * clients' delivered updates/s and latency, the slow clients' figures, the
 * gateway's CPU and RSS (from /proc, sampled once a second), and the gateway's
 * conflation and disconnect counters (from /metrics); then the ratio of the
 * fast clients' p99 with slow clients to their p99 without. A Markdown table
 * goes to stdout and everything, full load reports included, to
 * bench/results/isolation-<timestamp>.json.
 *
 * Every process it starts is stopped at the end, on error and on Ctrl-C.
 *
 * Why these defaults. On loopback the kernel holds about 4 MiB per
 * connection (the server's send buffer autotunes to tcp_wmem's maximum; the
 * client's receive buffer adds a little) before the gateway's own buffer
 * grows at all, so a paused client is conflated only once it is more than
 * that behind. The load client's cost is per message, so on two shared cores
 * the total stream stays near 350k updates/s: many light clients would each
 * need minutes of pause to fall 4 MiB behind. Hence fewer, heavier clients
 * (each about 7,000 updates/s, 0.55 MB/s) and 12 s pauses: every slow client
 * conflates for a few seconds per pause, and the stalled one stays behind
 * long enough (15 s, the gateway's default) to be closed with SLOW_CONSUMER.
 * Latency is measured against the wall clock the feed stamps ticks with, so
 * everything runs on this machine.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { freePort, startNatsServer, type NatsServer } from '../test/helpers/nats-server.js';
import type { SubscriberReport } from '../load/subscribers.js';
import { runIfEntry, UsageError, numberOption as num, parseOptions } from '../src/cli-tool.js';
import { machineCpu, nodeScript, procCpuTicks, procRss, ROOT, scrape, sleep, unlessAborted, USER_HZ, type CpuTicks, type Proc } from './procs.js';

const MAX_DURATION_S = 600;
const SAMPLE_MS = 1000;
const READY_TIMEOUT_MS = 30_000;
/** Between the two runs: the gateway closes the first run's connections and settles. */
const GAP_MS = 3000;
/** How much of a child's output an error message quotes. */
const STDERR_TAIL = 8 * 1024;
/** Other processes' CPU (% of a core) above which a run's figures are called noisy. */
const NOISY_OTHER_CPU = 20;

export { UsageError };

export interface IsolationOptions {
  clients: number;
  symbols: number;
  perClient: number;
  /** Feed ticks per second. */
  rate: number;
  /** Seconds per run. */
  duration: number;
  slowFraction: number;
  stalledFraction: number;
  slowPauseMs: number;
  slowPeriodMs: number;
  /** Seconds between the feed's start and the first run. */
  warmup: number;
  seed: number;
}

export const USAGE = `usage: npm run bench:isolation -- [options]

  --clients N            subscriber connections per run (default 50)
  --symbols N            symbols the feed publishes (default 2000)
  --per-client N         symbols per connection, Zipf-picked (default 200)
  --rate N               feed ticks per second (default 10000)
  --duration S           seconds per run, 3 to ${MAX_DURATION_S} (default 30)
  --slow-fraction F      fraction of clients reading in bursts in the second run (default 0.1)
  --stalled-fraction F   fraction of clients that stop reading in the second run (default 0.02)
  --slow-pause-ms N      a slow client leaves its socket unread this long per period (default 12000)
  --slow-period-ms N     period of a slow client's pause-then-read cycle (default 14000)
  --warmup S             seconds of feed before the first run (default 3)
  --seed N               seed of the subscriptions and of the slow clients' choice (default 1)
  --help                 show this help

Needs nats-server on PATH. Prints a Markdown table; writes
bench/results/isolation-<timestamp>.json.`;

const intIn = (min: number, max: number) => (n: number) => Number.isInteger(n) && n >= min && n <= max;
const fraction = (n: number) => Number.isFinite(n) && n >= 0 && n <= 1;

/** Parses CLI arguments (without node and script). Throws {@link UsageError} naming the option. */
export function parseIsolationArgs(argv: readonly string[]): IsolationOptions | 'help' {
  const v = parseOptions(argv, {
    clients: { type: 'string' },
    symbols: { type: 'string' },
    'per-client': { type: 'string' },
    rate: { type: 'string' },
    duration: { type: 'string' },
    'slow-fraction': { type: 'string' },
    'stalled-fraction': { type: 'string' },
    'slow-pause-ms': { type: 'string' },
    'slow-period-ms': { type: 'string' },
    warmup: { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  const slowFraction = num('slow-fraction', v['slow-fraction'] ?? '0.1', 'a fraction from 0 to 1', fraction);
  const stalledFraction = num('stalled-fraction', v['stalled-fraction'] ?? '0.02', 'a fraction from 0 to 1', fraction);
  if (slowFraction + stalledFraction > 1) {
    throw new UsageError(`--stalled-fraction: expected at most 1 - --slow-fraction (${1 - slowFraction}), got ${stalledFraction}`);
  }
  const slowPeriodMs = num('slow-period-ms', v['slow-period-ms'] ?? '14000', 'milliseconds, an integer from 2 to 600000', intIn(2, 600_000));
  const opts = {
    clients: num('clients', v.clients ?? '50', 'an integer from 1 to 20000', intIn(1, 20_000)),
    symbols: num('symbols', v.symbols ?? '2000', 'an integer from 1 to 1000000', intIn(1, 1_000_000)),
    perClient: num('per-client', v['per-client'] ?? '200', 'an integer from 1 to 10000', intIn(1, 10_000)),
    rate: num('rate', v.rate ?? '10000', 'ticks per second, a number > 0 and <= 1000000', (n) => n > 0 && n <= 1_000_000),
    duration: num('duration', v.duration ?? '30', `seconds, a number >= 3 and <= ${MAX_DURATION_S}`, (n) => n >= 3 && n <= MAX_DURATION_S),
    slowFraction,
    stalledFraction,
    slowPauseMs: num('slow-pause-ms', v['slow-pause-ms'] ?? '12000', `milliseconds, an integer from 1 to ${slowPeriodMs - 1} (less than --slow-period-ms)`, intIn(1, slowPeriodMs - 1)),
    slowPeriodMs,
    warmup: num('warmup', v.warmup ?? '3', 'seconds, a number from 0 to 60', (n) => n >= 0 && n <= 60),
    seed: num('seed', v.seed ?? '1', 'an integer from 0 to 1000000000', intIn(0, 1_000_000_000)),
  };
  if (splitClients(opts).fast === 0) {
    throw new UsageError(`--slow-fraction: with --stalled-fraction it leaves no fast client of ${opts.clients}`);
  }
  return opts;
}

/** How many clients are fast, slow and stalled in the second run: round(clients x fraction). */
export function splitClients(o: Pick<IsolationOptions, 'clients' | 'slowFraction' | 'stalledFraction'>): { fast: number; slow: number; stalled: number } {
  const stalled = Math.round(o.clients * o.stalledFraction);
  const slow = Math.min(o.clients - stalled, Math.round(o.clients * o.slowFraction));
  return { fast: o.clients - slow - stalled, slow, stalled };
}

/** The pid of the nats-server listening on `port`, found by its command line; null if not found. */
function natsPid(port: number): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('nats-server') && argv.includes(String(port))) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

/** Sum of every sample of `name`, by the value of `label` (all under '' without a label). */
function byLabel(m: Map<string, number>, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, value] of m) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    const lv = new RegExp(`${label}="([^"]*)"`).exec(k)?.[1] ?? '';
    out[lv] = (out[lv] ?? 0) + value;
  }
  return out;
}

interface Sample {
  at: number;
  gwTicks: number | null;
  loadTicks: number | null;
  feedTicks: number | null;
  natsTicks: number | null;
  gwRss: number | null;
  machine: CpuTicks;
  connections: number;
  conflating: number;
}

/** One load process of a run: the fast clients, or the clients that are slow or stalled in the second run. */
export interface LoadResult {
  group: 'fast' | 'others';
  args: string[];
  exitCode: number | null;
  report: SubscriberReport | null;
}

export interface RunResult {
  name: 'clean' | 'with-slow';
  loads: LoadResult[];
  /** Seconds of the window the CPU figures cover: every client connected, or the whole run. */
  cpuWindow: { kind: 'all-connected' | 'whole-run'; seconds: number };
  gateway: { cpuPercent: number | null; rssMiBMax: number | null; rssMiBMean: number | null };
  /** % of one core. */
  feedCpuPercent: number | null;
  /** % of one core, all load processes together. */
  loadCpuPercent: number | null;
  natsCpuPercent: number | null;
  /**
   * % of one core used by everything else on the machine: a large figure
   * means the run shared the CPUs with someone else and its figures are noisy.
   */
  otherCpuPercent: number | null;
  /** % of all cores together, every process on the machine. */
  machineBusyPercent: number | null;
  /** Deltas of the gateway's counters over the run. */
  metrics: {
    conflatedBackpressure: number;
    conflatedThrottle: number;
    disconnects: Record<string, number>;
    updSent: number;
    sendDropped: number;
    maxClientsConflating: number;
  };
}

const round1 = (x: number) => Math.round(x * 10) / 10;

function pctOfCore(t0: number | null, t1: number | null, seconds: number): number | null {
  return t0 === null || t1 === null || seconds <= 0 ? null : round1(((t1 - t0) / USER_HZ / seconds) * 100);
}

const CLOSED = 'tickgate_connections_closed_total';

function delta(after: Record<string, number>, before: Record<string, number>, skip?: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    if (k === skip) continue;
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

/** Machine busy time not spent in the processes of the benchmark, in % of one core. */
function otherCpu(first: Sample, last: Sample, seconds: number): number | null {
  const ours = (s: Sample) => sumTicks([s.gwTicks, s.loadTicks, s.feedTicks, s.natsTicks]);
  const o0 = ours(first);
  const o1 = ours(last);
  if (o0 === null || o1 === null || seconds <= 0) return null;
  // /proc/stat counts in USER_HZ too.
  return round1(Math.max(0, ((last.machine.busy - first.machine.busy - (o1 - o0)) / USER_HZ / seconds) * 100));
}

const sumTicks = (xs: Array<number | null>) => (xs.some((x) => x === null) ? null : xs.reduce<number>((a, b) => a + b!, 0));

/**
 * Runs one load process per group at once, sampling the gateway meanwhile,
 * and waits for all of them.
 */
async function runLoad(
  name: RunResult['name'],
  groups: Array<{ group: LoadResult['group']; args: string[] }>,
  gw: Proc,
  feed: Proc,
  natsPidOf: number | null,
  http: string,
  clients: number,
  signal: AbortSignal,
): Promise<RunResult> {
  const before = await scrape(http);
  const loads = groups.map((g) => nodeScript(`load ${g.group} (${name})`, 'load/subscribers.ts', g.args, { keepStdout: true }));
  const samples: Sample[] = [];
  const sample = async () => {
    // A gateway too busy to answer within 5 s gives an empty map, and still gets its /proc figures.
    const m = await scrape(http);
    samples.push({
      at: performance.now(),
      gwTicks: procCpuTicks(gw.pid),
      loadTicks: sumTicks(loads.map((l) => procCpuTicks(l.pid))),
      feedTicks: procCpuTicks(feed.pid),
      natsTicks: natsPidOf === null ? null : procCpuTicks(natsPidOf),
      gwRss: procRss(gw.pid),
      machine: machineCpu().all,
      connections: m.get('tickgate_connections') ?? 0,
      conflating: m.get('tickgate_clients_conflating') ?? 0,
    });
  };
  await sample();
  const timer = setInterval(() => void sample(), SAMPLE_MS);
  let exitCodes: Array<number | null>;
  try {
    exitCodes = await unlessAborted(Promise.all(loads.map((l) => l.exited)), signal);
  } finally {
    clearInterval(timer);
    await Promise.all(loads.map((l) => l.stop()));
  }
  // Let the gateway see the closes before the counters are read.
  await sleep(1000, signal);
  const after = await scrape(http);

  const results = groups.map((g, i): LoadResult => {
    const load = loads[i]!;
    let report: SubscriberReport | null = null;
    try {
      report = JSON.parse(load.stdout()) as SubscriberReport;
    } catch {
      process.stderr.write(`bench:isolation: ${load.name} printed no report (exit ${exitCodes[i]}): ${load.stderr()}\n`);
    }
    return { group: g.group, args: g.args, exitCode: exitCodes[i] ?? null, report };
  });

  // CPU over the samples where every client was connected; the whole run if there are too few.
  const full = samples.filter((s) => s.connections >= clients);
  const usable = full.length >= 3 ? full : samples;
  const first = usable[0];
  const last = usable[usable.length - 1];
  const seconds = first !== undefined && last !== undefined ? (last.at - first.at) / 1000 : 0;
  const rss = samples.map((s) => s.gwRss).filter((x): x is number => x !== null);
  const mib = (x: number) => round1(x / 1024 / 1024);
  const get = (m: Map<string, number>, k: string) => m.get(k) ?? 0;
  return {
    name,
    loads: results,
    cpuWindow: { kind: usable === full ? 'all-connected' : 'whole-run', seconds: round1(seconds) },
    gateway: {
      cpuPercent: first && last ? pctOfCore(first.gwTicks, last.gwTicks, seconds) : null,
      rssMiBMax: rss.length > 0 ? mib(Math.max(...rss)) : null,
      rssMiBMean: rss.length > 0 ? mib(rss.reduce((a, b) => a + b, 0) / rss.length) : null,
    },
    feedCpuPercent: first && last ? pctOfCore(first.feedTicks, last.feedTicks, seconds) : null,
    loadCpuPercent: first && last ? pctOfCore(first.loadTicks, last.loadTicks, seconds) : null,
    natsCpuPercent: first && last ? pctOfCore(first.natsTicks, last.natsTicks, seconds) : null,
    otherCpuPercent: first && last ? otherCpu(first, last, seconds) : null,
    machineBusyPercent:
      first && last && last.machine.total > first.machine.total
        ? round1(((last.machine.busy - first.machine.busy) / (last.machine.total - first.machine.total)) * 100)
        : null,
    metrics: {
      conflatedBackpressure: get(after, 'tickgate_conflated_updates_total{reason="backpressure"}') - get(before, 'tickgate_conflated_updates_total{reason="backpressure"}'),
      conflatedThrottle: get(after, 'tickgate_conflated_updates_total{reason="throttle"}') - get(before, 'tickgate_conflated_updates_total{reason="throttle"}'),
      // Closes the gateway began (by bye code); closes by clients are left out.
      disconnects: delta(byLabel(after, CLOSED, 'reason'), byLabel(before, CLOSED, 'reason'), 'remote'),
      updSent: get(after, 'tickgate_messages_sent_total{type="upd"}') - get(before, 'tickgate_messages_sent_total{type="upd"}'),
      sendDropped: get(after, 'tickgate_send_dropped_total') - get(before, 'tickgate_send_dropped_total'),
      maxClientsConflating: Math.max(0, ...samples.map((s) => s.conflating)),
    },
  };
}

/** Waits until `url` answers 200. */
async function waitReady(url: string, child: Proc, signal: AbortSignal): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(2000) })).status === 200) return;
    } catch {
      // not listening yet
    }
    if (!child.running) throw new Error(`${child.name} exited before it was ready: ${child.stderr() || child.stdout().slice(-STDERR_TAIL)}`);
    if (performance.now() > deadline) throw new Error(`${url} not ready within ${READY_TIMEOUT_MS / 1000} s`);
    await sleep(100, signal);
  }
}

const fmt = (x: number | null | undefined, digits = 1) => (x === null || x === undefined ? '-' : x.toFixed(digits));
const int = (x: number | null | undefined) => (x === null || x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
const counts = (o: Record<string, number>) => {
  const e = Object.entries(o);
  return e.length === 0 ? '-' : e.map(([k, v]) => `${k} ${v}`).join(', ');
};

const reportOf = (r: RunResult, group: LoadResult['group']) => r.loads.find((l) => l.group === group)?.report ?? null;

/**
 * The Markdown table of both runs. "Slow" columns of the clean run show the
 * same clients as the second run's slow and stalled ones, reading continuously.
 */
export function table(runs: RunResult[]): string {
  const fast = (r: RunResult) => reportOf(r, 'fast');
  const others = (r: RunResult) => reportOf(r, 'others');
  const slowing = (r: RunResult) => r.name === 'with-slow';
  const rows: Array<[string, (r: RunResult) => string]> = [
    ['fast clients', (r) => int(fast(r)?.clients.connected)],
    ['fast: delivered upd/s', (r) => int(fast(r)?.rates.updPerSec)],
    ['fast: latency p50 / p99 / p99.9 / max (ms)', (r) => latency(fast(r)?.latencyMs)],
    ['fast: merged upd (n>1)', (r) => int(fast(r)?.received.mergedUpdates)],
    ['slow (+ stalled) clients', (r) => {
      const o = others(r);
      if (o === null) return '-';
      return slowing(r) ? `${o.slow.clients} (+ ${o.stalled.clients})` : `${o.clients.connected} reading continuously`;
    }],
    ['slow: delivered upd/s', (r) => int(slowing(r) ? others(r)?.slow.rates.updPerSec : others(r)?.rates.updPerSec)],
    ['slow: latency p50 / p99 / p99.9 / max (ms)', (r) => latency(slowing(r) ? others(r)?.slow.latencyMs : others(r)?.latencyMs)],
    ['slow: merged upd (n>1) / ticks merged', (r) => {
      const o = others(r);
      const m = o === null ? undefined : slowing(r) ? o.slow : o.received;
      return m === undefined ? '-' : `${int(m.mergedUpdates)} / ${int(m.ticksMerged)}`;
    }],
    ['stalled: bye received', (r) => {
      const o = others(r);
      return o !== null && slowing(r) ? counts(o.stalled.byes) : '-';
    }],
    ['q violations (all clients)', (r) => int(r.loads.reduce((k, l) => k + (l.report ? l.report.qViolations + l.report.updWithoutSnap : 0), 0))],
    ['gateway CPU (% of a core)', (r) => fmt(r.gateway.cpuPercent)],
    ['gateway RSS max / mean (MiB)', (r) => `${fmt(r.gateway.rssMiBMax)} / ${fmt(r.gateway.rssMiBMean)}`],
    ['gateway conflated updates (backpressure)', (r) => int(r.metrics.conflatedBackpressure)],
    ['gateway clients conflating (max sampled)', (r) => int(r.metrics.maxClientsConflating)],
    ['gateway disconnects', (r) => counts(r.metrics.disconnects)],
    ['nats-server / feed / load clients CPU (% of a core)', (r) => `${fmt(r.natsCpuPercent)} / ${fmt(r.feedCpuPercent)} / ${fmt(r.loadCpuPercent)}`],
    ['load event-loop p99, fast / slow process (ms)', (r) => `${fmt(fast(r)?.loadClient.eventLoopDelayP99Ms, 2)} / ${fmt(others(r)?.loadClient.eventLoopDelayP99Ms, 2)}`],
    ['machine busy (% of all cores)', (r) => fmt(r.machineBusyPercent)],
    ['other processes on the machine (% of a core)', (r) => fmt(r.otherCpuPercent)],
  ];
  const lines = [`| | ${runs.map((r) => r.name).join(' | ')} |`, `|---|${runs.map(() => '---:').join('|')}|`];
  for (const [label, cell] of rows) lines.push(`| ${label} | ${runs.map(cell).join(' | ')} |`);
  return lines.join('\n');
}

function latency(l: SubscriberReport['latencyMs'] | undefined): string {
  return l === undefined ? '-' : `${fmt(l.p50)} / ${fmt(l.p99)} / ${fmt(l.p999)} / ${fmt(l.max)}`;
}

/** Runs the whole benchmark; stops everything it started before returning or throwing. */
export async function runIsolation(opts: IsolationOptions, signal: AbortSignal): Promise<{ runs: RunResult[]; file: string; text: string }> {
  const children: Proc[] = [];
  let nats: NatsServer | null = null;
  const natsStarting = startNatsServer();
  const tmp = mkdtempSync(join(tmpdir(), 'tickgate-isolation-'));
  try {
    nats = await unlessAborted(natsStarting, signal);
    const port = await freePort();
    const http = `http://127.0.0.1:${port}`;
    // The symbols request must list the whole universe for the load to pick from all of it.
    const configFile = join(tmp, 'gateway.json');
    writeFileSync(configFile, JSON.stringify({ limits: { maxListSymbols: Math.max(1000, opts.symbols) } }));
    const gw = nodeScript('gateway', 'src/main.ts', ['--config', configFile], {
      env: {
        TICKGATE_NATS_SERVERS: nats.url,
        TICKGATE_HOST: '127.0.0.1',
        TICKGATE_PORT: String(port),
        TICKGATE_LOG_LEVEL: 'warn',
      },
      keepStdout: true,
    });
    children.push(gw);
    await waitReady(`${http}/readyz`, gw, signal);

    // The feed outlives both runs; it is stopped at the end in any case.
    const feedSeconds = Math.ceil(opts.warmup + 2 * (opts.duration + 30));
    const feedArgs = ['--url', nats.url, '--symbols', String(opts.symbols), '--rate', String(opts.rate), '--duration', String(feedSeconds)];
    const feed = nodeScript('feed', 'feeds/sim.ts', feedArgs);
    children.push(feed);
    // Every symbol known (the feed's warm-up sends one tick each), then the warm-up time.
    const known = performance.now() + READY_TIMEOUT_MS;
    while (((await scrape(http)).get('tickgate_symbols') ?? 0) < opts.symbols) {
      if (!feed.running) throw new Error(`the feed exited: ${feed.stderr()}`);
      if (performance.now() > known) throw new Error(`the gateway did not learn all ${opts.symbols} symbols within ${READY_TIMEOUT_MS / 1000} s`);
      await sleep(200, signal);
    }
    await sleep(opts.warmup * 1000, signal);

    // Fast clients in one load process, the clients that turn slow or stalled
    // in another: a slow client catching up decodes megabytes at once, and in
    // a shared process that would delay the fast clients' reads and show up
    // as their latency. Each group keeps its seed, hence its subscriptions,
    // in both runs.
    const split = splitClients(opts);
    const natsProc = natsPid(nats.port);
    const url = `ws://127.0.0.1:${port}/v1/stream`;
    const args = (clients: number, seed: number) => [
      '--url', url,
      '--clients', String(clients),
      '--symbols-per-client', String(opts.perClient),
      '--duration', String(opts.duration),
      '--universe', String(opts.symbols),
      '--seed', String(seed),
    ];
    const fastArgs = args(split.fast, opts.seed);
    const othersArgs = args(split.slow + split.stalled, opts.seed + 1);
    const slowArgs = [
      '--slow-fraction', String(split.slow / (split.slow + split.stalled)),
      '--stalled-fraction', String(split.stalled / (split.slow + split.stalled)),
      '--slow-pause-ms', String(opts.slowPauseMs),
      '--slow-period-ms', String(opts.slowPeriodMs),
    ];
    const withOthers = split.slow + split.stalled > 0;
    const groups = (slowing: boolean) => [
      { group: 'fast' as const, args: fastArgs },
      ...(withOthers ? [{ group: 'others' as const, args: slowing ? [...othersArgs, ...slowArgs] : othersArgs }] : []),
    ];
    const runs: RunResult[] = [];
    runs.push(await runLoad('clean', groups(false), gw, feed, natsProc, http, opts.clients, signal));
    await sleep(GAP_MS, signal);
    runs.push(await runLoad('with-slow', groups(true), gw, feed, natsProc, http, opts.clients, signal));
    if (!feed.running) throw new Error(`the feed stopped before the runs ended: ${feed.stderr()}`);
    if (!gw.running) throw new Error(`the gateway exited during the runs: ${gw.stderr()}`);

    const p99 = (r: RunResult | undefined) => (r === undefined ? null : (reportOf(r, 'fast')?.latencyMs.p99 ?? null));
    const clean = p99(runs[0]);
    const slow = p99(runs[1]);
    const ratio = clean !== null && slow !== null && clean > 0 ? Math.round((slow / clean) * 100) / 100 : null;
    const cpu = cpus();
    const machine = { cpus: cpu.length, model: cpu[0]?.model ?? 'unknown', node: process.version, kernel: release(), memoryGiB: round1(totalmem() / 2 ** 30) };
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `isolation-${stamp}.json`);
    writeFileSync(file, JSON.stringify({ machine, options: opts, fastP99Ratio: ratio, feed: { args: feedArgs }, runs }, null, 2) + '\n');

    const text = [
      `## Isolation: ${opts.clients} clients x ${opts.perClient} symbols, ${opts.symbols} symbols at ${opts.rate} ticks/s, ${opts.duration} s per run`,
      '',
      `Machine: ${machine.cpus} x ${machine.model}, Node ${machine.node}, Linux ${machine.kernel}. ` +
        `Second run: ${split.slow} slow clients (socket paused ${opts.slowPauseMs} ms of every ${opts.slowPeriodMs} ms) and ${split.stalled} stalled, ` +
        `in a load process of their own; ${split.fast} fast clients in another.`,
      '',
      table(runs),
      '',
      `Fast clients' p99 with slow clients / without: ${ratio === null ? '-' : ratio.toFixed(2)}`,
      '',
      ...(runs.some((r) => (r.otherCpuPercent ?? 0) > NOISY_OTHER_CPU)
        ? [`Other processes used more than ${NOISY_OTHER_CPU}% of a core during a run: the latency figures are noisy, run again on a quiet machine.`, '']
        : []),
      `Results: ${file}`,
    ].join('\n');
    return { runs, file, text };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    // Started even if interrupted meanwhile: stop it all the same.
    nats ??= await natsStarting.catch(() => null);
    await nats?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

runIfEntry(import.meta.url, {
  name: 'bench:isolation',
  usage: USAGE,
  parse: (argv) => parseIsolationArgs(argv),
  stopping: 'stopping everything it started',
  // Whatever happens, the benchmark ends: both runs, start-up and shutdown with room to spare.
  timeLimitS: (opts) => opts.warmup + 2 * (opts.duration + 60) + 60,
  async run(opts, signal) {
    const { runs, text } = await runIsolation(opts, signal);
    process.stdout.write(text + '\n');
    const clean = (l: LoadResult) => l.report !== null && l.report.qViolations === 0 && l.report.updWithoutSnap === 0;
    return runs.every((r) => r.loads.every(clean)) ? 0 : 1;
  },
});
