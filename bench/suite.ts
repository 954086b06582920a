/**
 * The benchmark suite: tickgate end to end against two baselines on one
 * machine, in one invocation, every process started and stopped here.
 *
 *   npm run bench                      # everything, well under 10 minutes
 *   npm run bench -- --quick           # smoke run, about two minutes
 *   npm run bench -- --only fanout,baselines --steps 10000,20000
 *
 * Scenarios:
 * - fanout: tickgate at increasing tick rates (see bench/suite-fanout.ts),
 *   with the default flush and again with each `--flush-ms` interval;
 * - baselines: the same workload and steps against nats-server's own
 *   WebSocket listener and a plain `ws` + JSON gateway;
 * - books: order books end to end, ingest alone and then delivered to
 *   clients that keep every window and check every checksum
 *   (bench/suite-books.ts);
 * - trades: trade prints end to end: a resuming client's catch-up time
 *   after missed trades, then ingest alone and the fan-out to clients that
 *   check every trade arrives once and in order (bench/suite-trades.ts);
 * - connections: idle-ish connections ramped towards 20,000
 *   (bench/suite-connections.ts);
 * - isolation: bench/isolation.ts with 5% slow and 1% stalled clients;
 * - soak (only with `--only soak`): steady load with client churn for
 *   `--minutes N`, the gateway's RSS, open fds and event-loop lag over time
 *   (bench/suite-soak.ts).
 *
 * Writes bench/results/report-<timestamp>.md (also printed) and .json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { ephemeralPortCount } from '../load/source-addresses.js';
import { parseIsolationArgs, runIsolation, table as isolationTable } from './isolation.js';
import { cpuCount, hasTaskset, openFileLimits, ROOT } from './procs.js';
import { renderReport, type IsolationResult, type Machine, type SuiteResult } from './report.js';
import { BOOKS_DEFAULTS, runBooks } from './suite-books.js';
import { runConnections } from './suite-connections.js';
import { runTrades, TRADES_DEFAULTS } from './suite-trades.js';
import { runFanout, type FanoutOptions, type Pinning } from './suite-fanout.js';
import { runSoak, SOAK_DEFAULTS, soakText, type SoakResult } from './suite-soak.js';
import { runIfEntry, UsageError, parseOptions } from '../src/cli-tool.js';

export const SCENARIOS = ['fanout', 'baselines', 'books', 'trades', 'connections', 'isolation', 'soak'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** What runs without --only: everything but the soak, which lasts as long as asked. */
const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => s !== 'soak');

export interface SuiteOptions {
  quick: boolean;
  only: Set<Scenario>;
  workers: number | null;
  flushMs: number[];
  rounds: number;
  pin: boolean;
  profile: boolean;
  steps: number[];
  windowS: number;
  settleS: number;
  loadProcs: number;
  clients: number;
  symbolsPerClient: number;
  symbols: number;
  connections: number;
  /** Books scenario: level changes per second of each step, clients, books per client. */
  bookRates: number[];
  bookClients: number;
  booksPerClient: number;
  /** Trades scenario: trades per second of each step, clients, symbols per client; catch-up trades and rounds. */
  tradeRates: number[];
  tradeClients: number;
  tradeSymbolsPerClient: number;
  catchupTrades: number;
  catchupRepeats: number;
  /** Soak scenario: minutes of steady load with churn. */
  minutes: number;
}

export { UsageError };

export const USAGE = `usage: npm run bench -- [options]

  --quick              smoke run: two steps, short windows, 2,000 connections (about two minutes)
  --only LIST          comma-separated scenarios: ${SCENARIOS.join(', ')} (default: all but soak)
  --steps LIST         tick rates of the fan-out steps (default 625,1250,2500,5000,10000; quick 625,1250)
  --window S           measured seconds per step, fan-out and books (default 8; quick 4)
  --settle S           seconds after a rate change before measuring, fan-out and books (default 3; quick 2)
  --clients N          fan-out clients (default 200)
  --symbols-per-client N  fan-out symbols per client (default 20)
  --symbols N          symbols the feed publishes (default 2000)
  --load-procs N       load client processes for fan-out and books (default 2)
  --connections N      connections to ramp to (default 20000; quick 2000)
  --book-rates LIST    books: level changes per second of each step (default 50000)
  --book-clients N     books: clients, at depths 10 and 25 in turn, 20% throttled at 100 ms (default ${BOOKS_DEFAULTS.clients})
  --books-per-client N books: books per client, picked uniformly of ${BOOKS_DEFAULTS.books} (default ${BOOKS_DEFAULTS.booksPerClient})
  --trade-rates LIST   trades: trades per second of each step (default 20000)
  --trade-clients N    trades: clients (default ${TRADES_DEFAULTS.clients})
  --trade-symbols-per-client N  trades: symbols per client, picked uniformly of ${TRADES_DEFAULTS.symbols} (default ${TRADES_DEFAULTS.symbolsPerClient})
  --catchup-trades N   trades: trades a resuming client missed (default ${TRADES_DEFAULTS.catchupTrades})
  --catchup-repeats N  trades: catch-up rounds, on a quiet gateway and again under load (default ${TRADES_DEFAULTS.catchupRepeats}; quick 2)
  --flush-ms LIST      after the default (adaptive) run, run tickgate again with ws.flushAdaptive false and
                       each ws.flushIntervalMs here, 0 being immediate (default 0,5; none: only the default run)
  --minutes N          soak: minutes of steady load, ${SOAK_DEFAULTS.clients} clients, ${SOAK_DEFAULTS.churnPerSec} replaced per second (default 10)
  --rounds N           pass over the fan-out systems N times, every other pass in reverse order; ratios
                       and targets use the means (default 1; a drifting machine needs 2 or more)
  --workers N          start the gateway with TICKGATE_WORKERS=N (ignored by a gateway without multi-core mode)
  --no-pin             do not pin the server under test to its own CPU with taskset
  --profile            run tickgate's gateway under node --cpu-prof during fan-out and report its top functions
  --help               show this help`;

function intList(name: string, raw: string, lo = 1, hi = 1_000_000): number[] {
  const xs = raw.split(',').map((s) => Number(s.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < lo || x > hi)) {
    throw new UsageError(`--${name}: expected comma-separated integers from ${lo} to ${hi}, got ${JSON.stringify(raw)}`);
  }
  return xs;
}

/** `--flush-ms`: fixed flush intervals in ms (ws.flushIntervalMs's range, 0: immediate), or none. */
function flushList(raw: string): number[] {
  if (raw.trim() === 'none') return [];
  return [...new Set(intList('flush-ms', raw, 0, 1000))];
}

function oneInt(name: string, raw: string | undefined, def: number, lo: number, hi: number): number {
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`--${name}: expected an integer from ${lo} to ${hi}, got ${JSON.stringify(raw)}`);
  return n;
}

export function parseSuiteArgs(argv: readonly string[]): SuiteOptions | 'help' {
  const v = parseOptions(argv, {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    steps: { type: 'string' },
    window: { type: 'string' },
    settle: { type: 'string' },
    clients: { type: 'string' },
    'symbols-per-client': { type: 'string' },
    symbols: { type: 'string' },
    'load-procs': { type: 'string' },
    connections: { type: 'string' },
    'book-rates': { type: 'string' },
    'book-clients': { type: 'string' },
    'books-per-client': { type: 'string' },
    'trade-rates': { type: 'string' },
    'trade-clients': { type: 'string' },
    'trade-symbols-per-client': { type: 'string' },
    'catchup-trades': { type: 'string' },
    'catchup-repeats': { type: 'string' },
    workers: { type: 'string' },
    'flush-ms': { type: 'string' },
    rounds: { type: 'string' },
    minutes: { type: 'string' },
    pin: { type: 'boolean', default: true },
    profile: { type: 'boolean', default: false },
    help: { type: 'boolean' },
  }, true);
  if (v.help) return 'help';
  const quick = v.quick ?? false;
  const only = new Set<Scenario>();
  for (const s of (v.only ?? DEFAULT_SCENARIOS.join(',')).split(',').map((x) => x.trim())) {
    if (!(SCENARIOS as readonly string[]).includes(s)) throw new UsageError(`--only: expected some of ${SCENARIOS.join(', ')}, got ${JSON.stringify(s)}`);
    only.add(s as Scenario);
  }
  return {
    quick,
    only,
    workers: v.workers === undefined ? null : oneInt('workers', v.workers, 1, 1, 256),
    flushMs: flushList(v['flush-ms'] ?? '0,5'),
    rounds: oneInt('rounds', v.rounds, 1, 1, 10),
    pin: v.pin ?? true,
    profile: v.profile ?? false,
    steps: intList('steps', v.steps ?? (quick ? '625,1250' : '625,1250,2500,5000,10000')),
    windowS: oneInt('window', v.window, quick ? 4 : 8, 1, 300),
    settleS: oneInt('settle', v.settle, quick ? 2 : 3, 0, 60),
    clients: oneInt('clients', v.clients, 200, 1, 20_000),
    symbolsPerClient: oneInt('symbols-per-client', v['symbols-per-client'], 20, 1, 2000),
    symbols: oneInt('symbols', v.symbols, 2000, 1, 100_000),
    loadProcs: oneInt('load-procs', v['load-procs'], 2, 1, 16),
    connections: oneInt('connections', v.connections, quick ? 2000 : 20_000, 1, 100_000),
    bookRates: intList('book-rates', v['book-rates'] ?? '50000', 100, 5_000_000),
    bookClients: oneInt('book-clients', v['book-clients'], BOOKS_DEFAULTS.clients, 1, 20_000),
    booksPerClient: oneInt('books-per-client', v['books-per-client'], BOOKS_DEFAULTS.booksPerClient, 1, BOOKS_DEFAULTS.books),
    tradeRates: intList('trade-rates', v['trade-rates'] ?? '20000', 100, 1_000_000),
    tradeClients: oneInt('trade-clients', v['trade-clients'], TRADES_DEFAULTS.clients, 1, 20_000),
    tradeSymbolsPerClient: oneInt('trade-symbols-per-client', v['trade-symbols-per-client'], TRADES_DEFAULTS.symbolsPerClient, 1, TRADES_DEFAULTS.symbols),
    catchupTrades: oneInt('catchup-trades', v['catchup-trades'], TRADES_DEFAULTS.catchupTrades, 1, 1_000_000),
    minutes: oneInt('minutes', v.minutes, 10, 1, 240),
    catchupRepeats: oneInt('catchup-repeats', v['catchup-repeats'], quick ? 2 : TRADES_DEFAULTS.catchupRepeats, 1, 100),
  };
}

function machineInfo(pinning: Pinning | null): Machine {
  const cpu = cpus();
  const nats = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  return {
    cpus: cpu.length,
    model: cpu[0]?.model ?? 'unknown',
    node: process.version,
    kernel: release(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    nats: nats.status === 0 ? nats.stdout.trim() : 'nats-server not found',
    openFiles: openFileLimits(),
    ephemeralPorts: ephemeralPortCount(),
    pinning,
  };
}

/**
 * Pins the server under test to the last CPU(s) and everything else to the
 * others, so its CPU figure is its own and the load cannot steal its core.
 */
function pinningFor(opts: SuiteOptions): Pinning | null {
  const n = cpuCount();
  if (!opts.pin || n < 2 || !hasTaskset()) return null;
  const serverCores = Math.min(opts.workers ?? 1, n - 1);
  const first = n - serverCores;
  return {
    server: serverCores === 1 ? String(first) : `${first}-${n - 1}`,
    serverCores,
    others: first === 1 ? '0' : `0-${first - 1}`,
    otherCores: first,
  };
}

async function runIsolationScenario(quick: boolean, signal: AbortSignal): Promise<IsolationResult> {
  // 100 clients: exactly 5 slow and 1 stalled. Each takes 200 Zipf-picked
  // symbols of a 5,000 ticks/s feed, about 270 KB/s. Loopback holds about
  // 4 MiB per connection in kernel buffers before the gateway sees any
  // backpressure (see bench/isolation.ts), so a slow client pauses 20 s to
  // fall about 5.4 MB behind and be conflated for the rest of the pause; the
  // stalled one is conflated after about 17 s and closed 15 s later.
  const common = ['--clients', '100', '--per-client', '200', '--rate', '5000', '--slow-fraction', '0.05', '--stalled-fraction', '0.01'];
  const args = quick
    ? [...common, '--duration', '6', '--warmup', '1', '--slow-pause-ms', '3000', '--slow-period-ms', '4000']
    : [...common, '--duration', '35', '--slow-pause-ms', '20000', '--slow-period-ms', '22000'];
  try {
    const opts = parseIsolationArgs(args);
    if (opts === 'help') throw new Error('unexpected help');
    const { runs, file } = await runIsolation(opts, signal);
    const fast = (i: number) => runs[i]?.loads.find((l) => l.group === 'fast')?.report?.latencyMs.p99 ?? null;
    const clean = fast(0);
    const slow = fast(1);
    return {
      args,
      fastP99CleanMs: clean,
      fastP99WithSlowMs: slow,
      ratio: clean !== null && slow !== null && clean > 0 ? Math.round((slow / clean) * 100) / 100 : null,
      table: isolationTable(runs),
      file: file.replace(ROOT, ''),
      error: null,
    };
  } catch (err) {
    return { args, fastP99CleanMs: null, fastP99WithSlowMs: null, ratio: null, table: '', file: '', error: (err as Error).message };
  }
}

export async function runSuite(opts: SuiteOptions, command: string, signal: AbortSignal): Promise<{ result: SuiteResult; md: string; files: string[] }> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const pinning = pinningFor(opts);
  const result: SuiteResult = {
    startedAt,
    seconds: 0,
    command,
    quick: opts.quick,
    workers: opts.workers,
    machine: machineInfo(pinning),
    fanout: null,
    connections: null,
    isolation: null,
    books: null,
    trades: null,
  };
  const stamp = startedAt.replace(/[:.]/g, '-');
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

  if (opts.only.has('fanout') || opts.only.has('baselines')) {
    const fo: FanoutOptions = {
      systems: [...(opts.only.has('fanout') ? (['tickgate'] as const) : []), ...(opts.only.has('baselines') ? (['nats-ws', 'ws-json'] as const) : [])],
      flushMs: opts.flushMs,
      rounds: opts.rounds,
      steps: opts.steps,
      windowS: opts.windowS,
      settleS: opts.settleS,
      clients: opts.clients,
      symbolsPerClient: opts.symbolsPerClient,
      symbols: opts.symbols,
      loadProcs: opts.loadProcs,
      workers: opts.workers,
      pinning,
      profileDir: opts.profile ? join(dir, `profile-${stamp}`) : null,
    };
    result.fanout = await runFanout(fo, signal, log);
  }
  if (opts.only.has('books') && !signal.aborted) {
    log('books');
    result.books = await runBooks(
      {
        ...BOOKS_DEFAULTS,
        rates: opts.bookRates,
        windowS: opts.windowS,
        settleS: opts.settleS,
        clients: opts.bookClients,
        booksPerClient: opts.booksPerClient,
        loadProcs: Math.min(opts.loadProcs, opts.bookClients),
        pinning,
      },
      signal,
      log,
    );
  }
  if (opts.only.has('trades') && !signal.aborted) {
    log('trades');
    result.trades = await runTrades(
      {
        ...TRADES_DEFAULTS,
        rates: opts.tradeRates,
        windowS: opts.windowS,
        settleS: opts.settleS,
        clients: opts.tradeClients,
        symbolsPerClient: opts.tradeSymbolsPerClient,
        loadProcs: Math.min(opts.loadProcs, opts.tradeClients),
        catchupTrades: opts.catchupTrades,
        catchupRepeats: opts.catchupRepeats,
        pinning,
      },
      signal,
      log,
    );
  }
  if (opts.only.has('connections') && !signal.aborted) {
    log('connections');
    result.connections = await runConnections({ connections: opts.connections, quick: opts.quick, workers: opts.workers, pinning }, signal, log);
  }
  if (opts.only.has('isolation') && !signal.aborted) {
    log('isolation (bench/isolation.ts)');
    result.isolation = await runIsolationScenario(opts.quick, signal);
  }
  let soak: SoakResult | null = null;
  if (opts.only.has('soak') && !signal.aborted) {
    log(`soak (${opts.minutes} min)`);
    soak = await runSoak({ ...SOAK_DEFAULTS, minutes: opts.minutes, pinning }, signal, log);
  }
  result.seconds = Math.round((performance.now() - started) / 100) / 10;
  const md = renderReport(result) + (soak ? `\n${soakText(soak)}` : '');
  const mdFile = join(dir, `report-${stamp}.md`);
  const jsonFile = join(dir, `report-${stamp}.json`);
  writeFileSync(mdFile, md);
  writeFileSync(jsonFile, JSON.stringify(soak ? { ...result, soak } : result, null, 2) + '\n');
  return { result, md, files: [mdFile, jsonFile] };
}

runIfEntry(import.meta.url, {
  name: 'bench',
  usage: USAGE,
  parse: (argv) => parseSuiteArgs(argv),
  stopping: 'stopping everything it started',
  // Whatever happens, the suite ends: generous bounds over the expected 3 and 8-10 minutes (books and trades included, once; each extra round about 7 more).
  timeLimitS: (opts) => (opts.quick ? 360 + 150 * (opts.rounds - 1) : 1200 + 600 * (opts.rounds - 1)) + (opts.only.has('soak') ? opts.minutes * 60 + 180 : 0),
  async run(opts, signal) {
    const command = ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');
    const { md, files } = await runSuite(opts, command, signal);
    process.stdout.write(md);
    process.stderr.write(`bench: wrote ${files.map((f) => f.replace(ROOT, '')).join(' and ')}\n`);
    return signal.aborted ? 130 : 0;
  },
});
