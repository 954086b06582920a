import { describe, expect, it } from 'vitest';
import { summarizeProfile } from './cpu-profile.js';
import {
  adaptiveTargets,
  catchupSummary,
  evaluateTargets,
  mdTable,
  meanOverRounds,
  ratio,
  renderReport,
  stepRatios,
  type BookStep,
  type BooksResult,
  type FanoutStep,
  type Flush,
  type SuiteResult,
  type System,
  type TradeCatchupRun,
  type TradesResult,
  type TradeStep,
} from './report.js';

const lat = (p99: number) => ({ count: 1000, p50: p99 / 4, p90: p99 / 2, p99, p999: p99 * 1.5, max: p99 * 2 });

function step(system: System, rate: number, deliveredPerSec: number, usPerUpdate: number, p99: number, flush: Flush = 'adaptive'): FanoutStep {
  return {
    round: 0,
    system,
    flush: system === 'tickgate' ? flush : null,
    rate,
    publishedPerSec: rate,
    publisherLagP99Ms: 1,
    windowSeconds: 8,
    deliveredPerSec,
    expectedPerSec: deliveredPerSec,
    framesPerSec: deliveredPerSec / 2,
    bytesPerConnPerSec: 1000,
    connections: 200,
    latency: lat(p99),
    latencyCorrected: lat(p99),
    server: { cpuPercent: (deliveredPerSec * usPerUpdate) / 1e4, systemPercent: 1, usPerUpdate, rssMiB: 100 },
    serverThreads: [{ name: 'main', percent: 20 }],
    busCpuPercent: 3,
    publisherCpuPercent: 4,
    clientCpuPercent: 50,
    clientMaxProcPercent: 25,
    clientProcs: 2,
    clientEventLoopP99Ms: 10,
    machineBusyPercent: 50,
    otherProcessesPercent: 0,
    serverCoreBusyPercent: 40,
    serverCoreSoftirqPercent: 5,
    otherCoresBusyPercent: 60,
    conflated: system === 'tickgate' ? 0 : null,
    slowConsumers: 0,
    closedEarly: 0,
    qViolations: 0,
    stopReasons: [],
    warnings: [],
  };
}

function suite(steps: FanoutStep[]): SuiteResult {
  return {
    startedAt: '2026-01-01T00:00:00.000Z',
    seconds: 300,
    command: 'npm run bench',
    quick: false,
    workers: null,
    machine: {
      cpus: 2,
      model: 'test cpu',
      node: 'v20.20.2',
      kernel: '6.1',
      memoryGiB: 8,
      nats: 'nats-server: v2.9.10',
      openFiles: { soft: 20000, hard: 20000 },
      ephemeralPorts: 28232,
      pinning: { server: '1', others: '0' },
    },
    fanout: { symbols: 2000, clients: 200, symbolsPerClient: 20, expectedFanout: 77, rounds: 1, steps, errors: {}, notes: [], profiles: [] },
    connections: {
      requested: 20000,
      target: 19900,
      limitNote: 'open-files hard limit 20000',
      symbolsPerClient: 10,
      rate: 100,
      sourceAddresses: ['127.0.0.2'],
      clientProcs: 4,
      baselineRssMiB: 100,
      steps: [{ target: 19900, open: 19900, failed: 0, failures: {}, rampSeconds: 10, gatewayRssMiB: 180, rssPerConnKiB: 4.1, gatewayCpuPercent: 50, subscribeMs: lat(20), connectMs: lat(40) }],
      idle: null,
      error: null,
    },
    isolation: { args: [], fastP99CleanMs: 10, fastP99WithSlowMs: 11, ratio: 1.1, table: '| |', file: 'x.json', error: null },
  };
}

describe('report helpers', () => {
  it('computes ratios, or null when one side is missing', () => {
    expect(ratio(9, 3)).toBe(3);
    expect(ratio(1, 3)).toBe(0.33);
    expect(ratio(1, 0)).toBeNull();
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(2, undefined)).toBeNull();
  });

  it('renders Markdown tables with escaped cells', () => {
    expect(mdTable(['a', 'b'], [['x|y', '2']])).toBe('| a | b |\n|---|---:|\n| x\\|y | 2 |');
  });

  it('pairs each baseline step with tickgate at the same rate', () => {
    const rs = stepRatios([step('tickgate', 1000, 100_000, 1, 2), step('nats-ws', 1000, 100_000, 6, 4), step('ws-json', 1000, 90_000, 20, 8), step('tickgate', 2000, 200_000, 1, 3)]);
    expect(rs).toEqual([
      { rate: 1000, flush: 'adaptive', baseline: 'nats-ws', cpuPerUpdate: 6, p99: 0.5, tickgateDelivered: 100_000, baselineDelivered: 100_000 },
      { rate: 1000, flush: 'adaptive', baseline: 'ws-json', cpuPerUpdate: 20, p99: 0.25, tickgateDelivered: 100_000, baselineDelivered: 90_000 },
    ]);
  });

  it('judges every target from the results', () => {
    const steps = [
      step('tickgate', 1000, 100_000, 1, 2),
      step('tickgate', 2000, 300_000, 0.8, 30),
      step('nats-ws', 1000, 100_000, 6, 4),
      step('nats-ws', 2000, 300_000, 3, 20),
      step('ws-json', 1000, 100_000, 20, 8),
    ];
    const v = evaluateTargets(suite(steps)).map((x) => x.verdict);
    expect(v).toEqual([
      // CPU per update 6x and 3.75x lower than nats: missed at the second step.
      'missed',
      // 20x lower than the ws gateway at its only step.
      'met',
      // p99 30 ms against nats's 20 ms at the second step.
      'missed',
      // Below 200k updates/s: p99 2 ms.
      'met',
      // 300k/s at 24% of a core: 1.25M per core.
      'met',
      // The adaptive default against nats: CPU 6x and 3.75x lower; p99 30 ms against 20 ms at the second step.
      'met',
      'missed',
      'met',
      // 19,900 connections are not 20,000.
      'missed',
    ]);
    const md = renderReport(suite(steps));
    expect(md).toContain('## Targets');
    expect(md).toContain('### Ratios at the same steps');
    expect(md).toContain('| 1,000 | tickgate | nats-server WebSocket | 6.0x | 0.50 |');
  });

  it('judges the adaptive default against immediate, 5 ms and nats-server at the same steps', () => {
    const steps = [
      // 1,250: adaptive p99 7.5 vs best 7.0 (1.07x, met); 2,500: 9 vs min(12, 8) = 8 (1.125x, missed).
      step('tickgate', 1250, 100_000, 4, 7.5),
      step('tickgate', 2500, 200_000, 1.5, 9),
      step('tickgate', 1250, 100_000, 8, 7, 0),
      step('tickgate', 2500, 200_000, 3.4, 12, 0),
      step('tickgate', 1250, 100_000, 2.2, 8, 5),
      step('tickgate', 2500, 200_000, 1.3, 8, 5),
      // nats: CPU 6 and 4 (1.5x and 2.67x, met); p99 8 and 10 (met).
      step('nats-ws', 1250, 100_000, 6, 8),
      step('nats-ws', 2500, 200_000, 4, 10),
    ];
    const t = adaptiveTargets(steps);
    const row = (start: string) => t.find((x) => x.target.startsWith(start));
    expect(row('adaptive p99 <= 1.1x')).toMatchObject({ verdict: 'missed' });
    expect(row('adaptive p99 <= 1.1x')?.detail).toContain('1,250/s: 7.50 ms vs 7.00 ms (1.07x)');
    // Only from 2,500 ticks/s: 1.5 vs 1.3 = 1.15x.
    expect(row('adaptive CPU per update <= 1.25x')).toMatchObject({ verdict: 'met', detail: '2,500/s: 1.50 vs 1.30 µs (1.15x)' });
    expect(row('adaptive CPU per update >= 1.5x lower')).toMatchObject({ verdict: 'met', detail: '1,250/s: 1.50x, 2,500/s: 2.67x' });
    expect(row('adaptive p99 no worse')?.verdict).toBe('met');
    // Without the fixed runs, only the nats comparisons are judged.
    expect(adaptiveTargets(steps.filter((s) => s.flush === 'adaptive' || s.system === 'nats-ws')).map((x) => x.target)).toHaveLength(2);
  });

  it('judges each tickgate run (the adaptive default and each fixed schedule) against the same baselines', () => {
    const steps = [
      { ...step('tickgate', 1000, 100_000, 2, 2), held: { perSec: 31_942.4, holdMs: 5 } },
      step('tickgate', 1000, 100_000, 1, 6, 5),
      step('nats-ws', 1000, 100_000, 6, 4),
      step('ws-json', 1000, 100_000, 12, 8),
    ];
    const t = evaluateTargets(suite(steps));
    const row = (start: string, suffix: string) => t.find((x) => x.target.startsWith(start) && x.target.endsWith(suffix));
    // Default run: 3x and 6x cheaper than the baselines, p99 half of nats's.
    expect(row('server CPU per delivered update >= 4x', '(tickgate, adaptive default)')).toMatchObject({ verdict: 'missed', detail: '1,000/s: 3.0x' });
    expect(row('server CPU per delivered update >= 10x', '(tickgate, adaptive default)')?.verdict).toBe('missed');
    expect(row('p99 no worse', '(tickgate, adaptive default)')?.verdict).toBe('met');
    // Flush 5 ms: 6x and 12x cheaper, p99 1.5x nats's and above 5 ms.
    expect(row('server CPU per delivered update >= 4x', '(tickgate, flush 5 ms)')).toMatchObject({ verdict: 'met', detail: '1,000/s: 6.0x' });
    expect(row('server CPU per delivered update >= 10x', '(tickgate, flush 5 ms)')?.verdict).toBe('met');
    expect(row('p99 no worse', '(tickgate, flush 5 ms)')?.verdict).toBe('missed');
    expect(row('p99 < 5 ms', '(tickgate, flush 5 ms)')?.verdict).toBe('missed');
    // Isolation and connections once each.
    expect(t.filter((x) => x.target.startsWith('isolation'))).toHaveLength(1);
    const md = renderReport(suite(steps));
    expect(md).toContain('| tickgate, flush 5 ms | 1,000 |');
    // The adaptive run's frames cell also shows what the gateway held; the fixed schedule's does not.
    expect(md).toContain('| tickgate | 1,000 | 100,000 | 100,000 | 50,000 (held 31,942, hold 5.0 ms) |');
    expect(md).toContain('| tickgate, flush 5 ms | 1,000 | 100,000 | 100,000 | 50,000 |');
    expect(md).toContain('| 1,000 | tickgate, flush 5 ms | ws + JSON gateway | 12.0x | 0.75 |');
  });

  it('averages the rounds of a step before taking ratios and judging targets', () => {
    const r = (round: number, s: FanoutStep): FanoutStep => ({ ...s, round });
    const steps = [
      r(0, step('tickgate', 1000, 100_000, 1, 2)),
      r(0, step('nats-ws', 1000, 100_000, 6, 4)),
      // The machine got slower between the rounds: every system costs more.
      r(1, step('nats-ws', 1000, 100_000, 10, 8)),
      r(1, step('tickgate', 1000, 100_000, 3, 6)),
    ];
    const means = meanOverRounds(steps);
    expect(means).toHaveLength(2);
    expect(means.find((s) => s.system === 'tickgate')).toMatchObject({ server: { usPerUpdate: 2 }, latency: { p99: 4 } });
    // (6 + 10) / 2 over (1 + 3) / 2, and 4 / 6.
    expect(stepRatios(steps)).toEqual([
      { rate: 1000, flush: 'adaptive', baseline: 'nats-ws', cpuPerUpdate: 4, p99: 0.67, tickgateDelivered: 100_000, baselineDelivered: 100_000 },
    ]);
    const md = renderReport({ ...suite(steps), fanout: { ...suite(steps).fanout!, rounds: 2 } });
    expect(md).toContain('### Means over 2 rounds');
    expect(md).toContain('| tickgate, round 2 | 1,000 |');
    expect(evaluateTargets(suite(steps)).find((t) => t.target.startsWith('server CPU per delivered update >= 4x'))?.verdict).toBe('met');
  });

  it('summarizes a CPU profile by self time, within windows', () => {
    const frame = (functionName: string) => ({ functionName, url: 'file:///x.js', lineNumber: 9 });
    const profile = {
      nodes: [
        { id: 1, callFrame: frame('(root)') },
        { id: 2, callFrame: frame('hot') },
        { id: 3, callFrame: frame('cold') },
        { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      ],
      startTime: 1000,
      samples: [2, 2, 2, 3, 4, 2],
      timeDeltas: [0, 100, 100, 100, 100, 100],
    };
    const all = summarizeProfile(profile, 10);
    expect(all.top[0]).toMatchObject({ fn: 'hot', where: '/x.js:10', selfMs: 0.3, percent: 75 });
    expect(all.idleMs).toBe(0);
    // Samples at 1000, 1100, 1200, 1300, ...: only the first two fall in [1000, 1150).
    const win = summarizeProfile(profile, 10, [[1000, 1150]]);
    expect(win.top.map((e) => e.fn)).toEqual(['hot']);
  });

  it('adds the books scenario: its tables, and the exact-window target only when it ran', () => {
    const bookStep = (mismatches: number): BookStep => ({
      rate: 50_000,
      levelChangesPerSec: 50_010,
      messagesPerSec: 16_700,
      publisherLagP99Ms: 2,
      windowSeconds: 8,
      connections: 200,
      bupdPerSec: 67_000,
      expectedBupdPerSec: 67_300,
      emptyBupdShare: 0.07,
      liveBooksPerSec: 0,
      throttledBooksPerSec: 1800,
      framesPerSec: 30_000,
      bytesPerConnPerSec: 30_000,
      gateway: { cpuPercent: 25, systemPercent: 5, usPerLevelChange: 5, usPerBupd: 3.7, deliveryUsPerBupd: 1.2, rssMiB: 120 },
      gatewayBupdPerSec: 67_100,
      gatewayBooksPerSec: 1800,
      latency: lat(4),
      throttledAge: lat(90),
      unsampledBupd: 100,
      bytesPerBupd: 87,
      wholeWindowBytes: 677,
      bytesRatio: 0.128,
      byDepth: [
        { depth: 10, bupdPerSec: 37_000, bytesPerBupd: 85.1, wholeWindowBytes: 420.6, ratio: 0.202, levelsPerBupd: 2.7 },
        { depth: 25, bupdPerSec: 30_000, bytesPerBupd: 89, wholeWindowBytes: 992.6, ratio: 0.09, levelsPerBupd: 2.9 },
      ],
      throttledBytesPerBook: 700,
      checksumChecks: 540_000,
      checksumMismatches: mismatches,
      qGaps: 0,
      badRemovals: 0,
      resubscribes: mismatches,
      closedEarly: 0,
      conflated: 0,
      slowConsumers: 0,
      busCpuPercent: 5,
      publisherCpuPercent: 15,
      clientCpuPercent: 30,
      clientMaxProcPercent: 16,
      clientProcs: 2,
      clientEventLoopP99Ms: 5,
      machineBusyPercent: 50,
      otherProcessesPercent: 0,
      serverCoreBusyPercent: 30,
      serverCoreSoftirqPercent: 2,
      otherCoresBusyPercent: 60,
      warnings: [],
    });
    const books = (mismatches: number): BooksResult => ({
      workload: { books: 200, levelsPerSide: 100, zipf: 1, levelsPerMessage: 3, clients: 200, booksPerClient: 5, pickZipf: 0, depths: [10, 25], throttledFraction: 0.2, throttleMs: 100, expectedBupdPerMessage: 4, loadProcs: 2 },
      ingest: [
        { rate: 50_000, levelChangesPerSec: 50_000, messagesPerSec: 16_700, publisherLagP99Ms: 2, windowSeconds: 8, gatewayBookMessagesPerSec: 16_700, rejected: 0, gateway: { cpuPercent: 10, systemPercent: 2, usPerLevelChange: 2, rssMiB: 100 }, busCpuPercent: 5, publisherCpuPercent: 15, otherProcessesPercent: 0, warnings: [] },
      ],
      steps: [bookStep(mismatches)],
      errors: [],
      notes: [],
    });
    const base = suite([step('tickgate', 1000, 100_000, 1, 2)]);
    expect(evaluateTargets(base).some((t) => t.target.startsWith('books:'))).toBe(false);
    const ok = evaluateTargets({ ...base, books: books(0) }).find((t) => t.target.startsWith('books:'));
    expect(ok).toMatchObject({ verdict: 'met' });
    expect(ok?.detail).toContain('540,000 checksums checked');
    expect(evaluateTargets({ ...base, books: books(3) }).find((t) => t.target.startsWith('books:'))?.verdict).toBe('missed');
    expect(evaluateTargets({ ...base, books: { ...books(0), steps: [], errors: ['gateway exited'] } }).find((t) => t.target.startsWith('books:'))).toMatchObject({ verdict: 'not measured', detail: 'gateway exited' });
    const md = renderReport({ ...base, books: books(0) });
    expect(md).toContain('## Order books: 200 books, 200 clients x 5 books');
    expect(md).toContain('### Ingest only (no subscribers)');
    expect(md).toContain('| 50,000 | 50,000 | 16,700 | 10.0 (2.0) | 2.000 | 500,000 |');
    expect(md).toContain('| 50,010 | 10 | 37,000 | 2.70 | 85.1 | 420.6 | 0.202 |');
    expect(md).toContain('| 50,010 | all | 67,000 |  | 87.0 | 677.0 | 0.128 |');
    expect(md).toContain('67,000 (67,300)');
  });

  it('adds the trades scenario: catch-up p50 and max without the warm-up rounds, and its two targets', () => {
    const run = (loadRate: number, lastMs: number, warmup = false, exact = true): TradeCatchupRun => ({
      loadRate,
      warmup,
      expected: 10_000,
      trades: 10_000,
      connectMs: 1.5,
      ackMs: 6,
      firstMs: 6.5,
      lastMs,
      recovered: true,
      duplicates: 0,
      missing: 0,
      gapMessages: 0,
      exact,
      timedOut: false,
      frames: 3,
      bytes: 697_000,
      gatewayReplayed: 10_000,
      burstMs: 510,
    });
    const tradeStep: TradeStep = {
      rate: 20_000,
      tradesPerSec: 20_001,
      publisherLagP99Ms: 2,
      windowSeconds: 8,
      connections: 200,
      deliveredPerSec: 103_000,
      expectedPerSec: 103_100,
      gatewayDeliveredPerSec: 103_050,
      framesPerSec: 20_000,
      bytesPerConnPerSec: 36_000,
      gateway: { cpuPercent: 30, systemPercent: 12, usPerTradeIn: 15, usPerDelivered: 2.9, deliveryUsPerDelivered: 1.7, rssMiB: 140 },
      latency: lat(6),
      duplicates: 0,
      missing: 0,
      idMismatches: 0,
      gapMessages: 0,
      closedEarly: 0,
      conflated: 0,
      slowConsumers: 0,
      busCpuPercent: 5,
      publisherCpuPercent: 9,
      clientCpuPercent: 50,
      clientMaxProcPercent: 26,
      clientProcs: 2,
      clientEventLoopP99Ms: 8,
      machineBusyPercent: 50,
      otherProcessesPercent: 0,
      serverCoreBusyPercent: 33,
      serverCoreSoftirqPercent: 3,
      otherCoresBusyPercent: 70,
      warnings: [],
    };
    const trades = (catchup: TradeCatchupRun[], missingAtEnd = 0): TradesResult => ({
      workload: { symbols: 200, zipf: 1, clients: 200, symbolsPerClient: 4, expectedPerTrade: 5.16, loadProcs: 2, catchupTrades: 10_000, catchupSymbols: 1, catchupRate: 20_000, historySize: 10_000 },
      catchup,
      ingest: [
        { rate: 20_000, tradesPerSec: 20_000, publisherLagP99Ms: 2, windowSeconds: 8, gatewayTradesPerSec: 20_000, rejected: 0, gateway: { cpuPercent: 13, systemPercent: 2, usPerTrade: 6.5, rssMiB: 120 }, busCpuPercent: 5, publisherCpuPercent: 9, otherProcessesPercent: 0, warnings: [] },
      ],
      steps: [tradeStep],
      final: { subscriptions: 800, complete: missingAtEnd > 0 ? 799 : 800, missingAtEnd, trades: 2_000_000, duplicates: 0, missing: 0, idMismatches: 0, gapMessages: 0, unacked: 0, published: 400_000, waitedS: 0.5 },
      errors: [],
      notes: [],
    });
    const runs = [run(0, 90, true), run(0, 20), run(0, 30), run(0, 25), run(20_000, 60), run(20_000, 80)];
    expect(catchupSummary(runs.filter((r) => r.loadRate === 0))).toMatchObject({ runs: 3, exact: 3, p50: 25, max: 30, warmupMs: [90] });
    expect(catchupSummary(runs.filter((r) => r.loadRate === 20_000))).toMatchObject({ runs: 2, p50: 70, max: 80, warmupMs: [] });
    const base = suite([step('tickgate', 1000, 100_000, 1, 2)]);
    expect(evaluateTargets(base).some((t) => t.target.startsWith('trades:'))).toBe(false);
    const ok = evaluateTargets({ ...base, trades: trades(runs) }).filter((t) => t.target.startsWith('trades:'));
    expect(ok.map((t) => t.verdict)).toEqual(['met', 'met']);
    expect(ok[1]?.detail).toBe('quiet gateway: 4 of 4 exact (1 warm-up), p50 25.0 ms, max 30.0 ms; under 20,000 trades/s: 2 of 2 exact, p50 70.0 ms, max 80.0 ms');
    // A warm-up round that was not exact still fails the catch-up target; a trade missing at the end fails delivery.
    const bad = evaluateTargets({ ...base, trades: trades([run(0, 90, true, false), ...runs.slice(1)], 3) }).filter((t) => t.target.startsWith('trades:'));
    expect(bad.map((t) => t.verdict)).toEqual(['missed', 'missed']);
    expect(evaluateTargets({ ...base, trades: { ...trades([]), final: null, steps: [], errors: ['gateway exited'] } }).filter((t) => t.target.startsWith('trades:'))).toMatchObject([
      { verdict: 'not measured', detail: 'gateway exited' },
      { verdict: 'not measured', detail: 'gateway exited' },
    ]);
    const md = renderReport({ ...base, trades: trades(runs) });
    expect(md).toContain('## Trade prints: 200 symbols, 200 clients x 4 symbols');
    expect(md).toContain('### Catch-up after 10,000 missed trades');
    expect(md).toContain('| quiet gateway | 3 (+ 1) | 4 of 4 | 25.00 / 30.00 | 6.00 | 1.50 | 400,000 | 3 | 680.7 | 90.0 |');
    expect(md).toContain('| 20,000 | 20,000 | 13.0 (2.0) | 6.500 | 153,846 |');
    expect(md).toContain('| 20,001 | 103,000 (103,100) | 30.0 (12.0) | 15.000 | 2.900 | 1.700 |');
    expect(md).toContain('800 of 800 subscriptions');
  });
});
