/**
 * Integration: a short real run of the subscriber load tool against the
 * gateway in this process on its embedded feed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../test/helpers/gateway.js';
import { failed, parseSubscriberArgs, popularityOrder, runSubscribers, symbolPicker, UsageError, type SubscriberOptions } from './subscribers.js';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
});

afterAll(async () => {
  await gw?.stop();
});

function opts(...argv: string[]): SubscriberOptions {
  const o = parseSubscriberArgs(['--url', gw.url, ...argv]);
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
  ])('rejects %j naming %s', (argv, option) => {
    expect(() => parseSubscriberArgs(argv)).toThrow(UsageError);
    expect(() => parseSubscriberArgs(argv)).toThrow(option);
  });
});
