/**
 * Integration: a short real run of the subscriber load tool against the
 * gateway in this process on its embedded feed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../test/helpers/gateway.js';
import { assignRoles, failed, parseSubscriberArgs, popularityOrder, runSubscribers, symbolPicker, UsageError, type SubscriberOptions } from './subscribers.js';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
});

afterAll(async () => {
  await gw?.stop();
});

function opts(...argv: string[]): SubscriberOptions {
  return optsFor(gw, ...argv);
}

function optsFor(g: TestGateway, ...argv: string[]): SubscriberOptions {
  const o = parseSubscriberArgs(['--url', g.url, ...argv]);
  if (o === 'help') throw new Error('unexpected help');
  return o;
}

describe('load:subscribers against a real gateway', () => {
  it('connects every client, receives a consistent stream and measures latency', async () => {
    const report = await runSubscribers(opts('--clients', '20', '--symbols-per-client', '10', '--duration', '2'));
    expect(report.error).toBeUndefined();
    expect(report.clients).toEqual({ requested: 20, connected: 20, failed: 0, closedEarly: 0 });
    expect(report.symbols).toMatchObject({ listed: 200, more: false, perClient: 10 });
    expect(report.received.messages).toBeGreaterThan(0);
    expect(report.received.snap).toBeGreaterThanOrEqual(20 * 10);
    expect(report.received.upd).toBeGreaterThan(0);
    expect(report.qViolations).toBe(0);
    expect(report.updWithoutSnap).toBe(0);
    expect(report.badFrames).toBe(0);
    expect(report.latencyMs.samples).toBeGreaterThan(0);
    expect(report.latencyMs.p50).not.toBeNull();
    expect(report.byes).toEqual({});
    expect(report.received.mergedUpdates).toBe(0);
    expect(report.slow.clients).toBe(0);
    expect(report.stalled.clients).toBe(0);
    expect(failed(report)).toBe(false);
  });

  it('reports a failure when nothing listens', async () => {
    const report = await runSubscribers({ ...opts('--clients', '2', '--duration', '2'), url: 'ws://127.0.0.1:1/v1/stream' });
    expect(report.clients.connected).toBe(0);
    expect(report.clients.failed).toBe(1);
    expect(report.failures).toEqual({ ECONNREFUSED: 1 });
    expect(failed(report)).toBe(true);
  });
});

describe('load:subscribers with slow clients against a real gateway', () => {
  // A paused loopback connection holds about 4 MiB in kernel buffers before
  // the gateway's own buffer grows at all, so a slow client must fall further
  // behind than that during one pause to be conflated: every client takes all
  // 200 symbols of a 30,000 ticks/s feed (about 2.3 MB/s each) and the slow
  // one pauses 2.5 s. Five clients keep this process's load light.
  let slowGw: TestGateway;

  beforeAll(async () => {
    slowGw = await startGateway({
      embedded: { symbols: 200, ticksPerSec: 30_000 },
      backpressure: { highWaterBytes: 16_384, lowWaterBytes: 4096 },
    });
  });

  afterAll(async () => {
    await slowGw?.stop();
  });

  it('conflates for the slow client only, and reports it apart from the fast ones', async () => {
    const argv = ['--clients', '5', '--symbols-per-client', '200', '--duration', '3', '--slow-fraction', '0.2', '--slow-pause-ms', '2500', '--slow-period-ms', '2600'];
    const report = await runSubscribers(optsFor(slowGw, ...argv));
    expect(report.error).toBeUndefined();
    expect(report.clients).toEqual({ requested: 5, connected: 5, failed: 0, closedEarly: 0 });
    expect(report.slow.clients).toBe(1);
    expect(report.stalled.clients).toBe(0);

    // Fast clients: every update one by one, never merged.
    expect(report.received.upd).toBeGreaterThan(0);
    expect(report.received.mergedUpdates).toBe(0);
    expect(report.received.ticksMerged).toBe(0);
    expect(report.latencyMs.samples).toBeGreaterThan(0);

    // The slow client: merged updates, as many ticks merged as the gateway counted for it.
    expect(report.slow.messages).toBeGreaterThan(0);
    expect(report.slow.mergedUpdates).toBeGreaterThan(0);
    expect(report.slow.ticksMerged).toBeGreaterThanOrEqual(report.slow.mergedUpdates);
    expect(report.slow.latencyMs.samples).toBeGreaterThan(0);
    const counted = await slowGw.metric('tickgate_conflated_updates_total', { reason: 'backpressure' });
    expect(counted).toBeGreaterThan(0);
    expect(counted).toBeGreaterThanOrEqual(report.slow.ticksMerged);

    expect(report.qViolations).toBe(0);
    expect(report.updWithoutSnap).toBe(0);
    expect(report.badFrames).toBe(0);
    expect(failed(report)).toBe(false);
  });
});

describe('load:subscribers client roles', () => {
  it('chooses round(n x fraction) slow and stalled clients, spread over the list, the same for the same seed', () => {
    const roles = assignRoles(100, 0.1, 0.03, 7);
    expect(roles.filter((r) => r === 'slow')).toHaveLength(10);
    expect(roles.filter((r) => r === 'stalled')).toHaveLength(3);
    expect(assignRoles(100, 0.1, 0.03, 7)).toEqual(roles);
    // Evenly spread: one slow client in each tenth of the list.
    for (let i = 0; i < 100; i += 10) expect(roles.slice(i, i + 10).filter((r) => r !== 'fast').length).toBeGreaterThanOrEqual(1);
  });

  it('never gives a client two roles, even when the fractions fill the list', () => {
    const roles = assignRoles(7, 0.5, 0.5, 3);
    expect(roles.filter((r) => r === 'fast')).toHaveLength(0);
    expect(roles.filter((r) => r === 'stalled')).toHaveLength(4);
    expect(roles.filter((r) => r === 'slow')).toHaveLength(3);
    expect(assignRoles(5, 0, 0, 1)).toEqual(['fast', 'fast', 'fast', 'fast', 'fast']);
  });
});

describe('load:subscribers symbol choice', () => {
  const rand = () => 0.5;

  it('ranks names the simulator knows by its activity, the rest after', () => {
    expect(popularityOrder(['ZZZZ9', 'MSFT', 'EUR/USD', 'AAPL'], false, rand)).toEqual(['AAPL', 'EUR/USD', 'MSFT', 'ZZZZ9']);
  });

  it('picks distinct symbols, all of them when asked for more than exist', () => {
    let seed = 1;
    const lcg = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
    const order = Array.from({ length: 50 }, (_, i) => `S${i}`);
    const pick = symbolPicker(order, 1.1, false, lcg);
    const some = pick(10);
    expect(new Set(some).size).toBe(10);
    expect(new Set(pick(80))).toEqual(new Set(order));
  });
});

describe('load:subscribers options', () => {
  it('has documented defaults', () => {
    expect(parseSubscriberArgs([])).toEqual({
      url: 'ws://127.0.0.1:8080/v1/stream',
      clients: 100,
      symbolsPerClient: 20,
      duration: 10,
      uniform: false,
      zipf: 1.1,
      seed: 1,
      universe: 1000,
      connectRate: 500,
      slowFraction: 0,
      slowPauseMs: 900,
      slowPeriodMs: 1000,
      stalledFraction: 0,
    });
  });

  it('reads the slow and stalled options', () => {
    expect(parseSubscriberArgs(['--slow-fraction', '0.25', '--slow-pause-ms', '50', '--slow-period-ms', '200', '--stalled-fraction', '0.05'])).toMatchObject({
      slowFraction: 0.25,
      slowPauseMs: 50,
      slowPeriodMs: 200,
      stalledFraction: 0.05,
    });
  });

  it.each([
    [['--clients', '20001'], '--clients'],
    [['--clients', '0'], '--clients'],
    [['--symbols-per-client', 'many'], '--symbols-per-client'],
    [['--duration', '3601'], '--duration'],
    [['--duration', '0'], '--duration'],
    [['--url', 'http://127.0.0.1:8080/v1/stream'], '--url'],
    [['--zipf', 'x'], '--zipf'],
    [['--connect-rate', '0'], '--connect-rate'],
    [['--uniform=yes'], '--uniform'],
    [['--slow-fraction', '1.5'], '--slow-fraction'],
    [['--slow-fraction', '-0.1'], '--slow-fraction'],
    [['--stalled-fraction', 'x'], '--stalled-fraction'],
    [['--slow-fraction', '0.7', '--stalled-fraction', '0.4'], '--stalled-fraction'],
    [['--slow-pause-ms', '1000'], '--slow-pause-ms'],
    [['--slow-pause-ms', '0'], '--slow-pause-ms'],
    [['--slow-period-ms', '1'], '--slow-period-ms'],
    [['--slow-period-ms', '600001'], '--slow-period-ms'],
  ])('rejects %j naming %s', (argv, option) => {
    expect(() => parseSubscriberArgs(argv)).toThrow(UsageError);
    expect(() => parseSubscriberArgs(argv)).toThrow(option);
  });
});
