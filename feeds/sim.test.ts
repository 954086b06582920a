/**
 * Integration: the simulator publisher against a real nats-server, read back
 * by a plain NATS subscriber and decoded with standard decoders
 * (@msgpack/msgpack, JSON.parse), not the library that encoded it.
 */
import { decode } from '@msgpack/msgpack';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NatsListener } from '../test/helpers/nats-listener.js';
import { startNatsServer, type NatsServer } from '../test/helpers/nats-server.js';
import { parseSimArgs, runSim, subjectToken, UsageError, type SimOptions } from './sim.js';

let nats: NatsServer;
let sub: NatsConnection;
let listener: NatsListener;

beforeAll(async () => {
  nats = await startNatsServer();
  sub = await connect({ servers: nats.url });
  listener = new NatsListener(sub);
});

afterAll(async () => {
  await sub?.close();
  await nats?.stop();
});

afterEach(() => listener?.stop());

function opts(...argv: string[]): SimOptions {
  const o = parseSimArgs(['--url', nats.url, ...argv], {});
  if (o === 'help') throw new Error('unexpected help');
  return o;
}

describe('feed:sim on a real nats-server', () => {
  it.each(['msgpack', 'json'] as const)('publishes exactly --count ticks (warm-up included) in %s', async (codec) => {
    const got = await listener.listen('md.sim.>');
    const count = 3000;
    const rate = 20_000;
    const symbols = 50;
    const summary = await runSim(opts('--count', String(count), '--rate', String(rate), '--symbols', String(symbols), '--codec', codec));
    // The publisher flushed before returning; a round trip on the subscriber's
    // connection then comes back after every message routed to it.
    await sub.flush();

    expect(summary.stoppedBy).toBe('count');
    expect(summary.published).toBe(count);
    expect(summary.warm).toBe(symbols);
    expect(got).toHaveLength(count);
    // The paced part ran on the clock: a loose lower bound only, never a tight timing.
    expect(summary.seconds).toBeGreaterThanOrEqual((0.5 * (count - symbols)) / rate);

    const lastTs = new Map<string, number>();
    const lastSeq = new Map<string, number>();
    got.forEach(({ subject, data }, i) => {
      const tick = (codec === 'msgpack' ? decode(data) : JSON.parse(new TextDecoder().decode(data))) as Record<string, unknown>;
      expect(typeof tick['s']).toBe('string');
      expect(typeof tick['ts']).toBe('number');
      const s = tick['s'] as string;
      const ts = tick['ts'] as number;
      expect(subject).toBe(`md.sim.${subjectToken(s)}`);
      expect(ts).toBeGreaterThanOrEqual(lastTs.get(s) ?? -Infinity);
      lastTs.set(s, ts);
      // One connection keeps order: each symbol's own sequence has no gap.
      expect(tick['seq']).toBe((lastSeq.get(s) ?? 0) + 1);
      lastSeq.set(s, tick['seq'] as number);
      // The warm-up comes first: one full tick per symbol.
      if (i < symbols) expect(tick).toMatchObject({ seq: 1, bid: expect.any(Number), ask: expect.any(Number), close: expect.any(Number) });
    });
    expect(lastTs.size).toBe(symbols);
    // The universe mixes dotted share classes (sanitized in the subject) and pairs ('/' kept).
    expect(got.some((m) => m.subject === 'md.sim.BRK_B')).toBe(true);
    expect(got.some((m) => m.subject === 'md.sim.EUR/USD')).toBe(true);
  });

  it('stops at --duration with floor(duration x rate) paced ticks after the warm-up', async () => {
    const got = await listener.listen('md.sim.>');
    const summary = await runSim(opts('--duration', '0.3', '--rate', '1000', '--symbols', '20'));
    await sub.flush();
    expect(summary).toMatchObject({ stoppedBy: 'duration', warm: 20, published: 320 });
    expect(got).toHaveLength(320);
  });

  it('runs unbounded with --duration 0 until the signal aborts, then flushes', async () => {
    const got = await listener.listen('md.sim.>');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const summary = await runSim(opts('--duration', '0', '--rate', '2000', '--symbols', '10', '--no-warm'), ac.signal);
    await sub.flush();
    expect(summary.stoppedBy).toBe('signal');
    expect(summary.warm).toBe(0);
    expect(summary.published).toBeGreaterThan(0);
    expect(got).toHaveLength(summary.published);
  });

  it('rejects when NATS cannot be reached', async () => {
    await expect(runSim(opts('--url', 'nats://127.0.0.1:1', '--count', '1'))).rejects.toThrow();
  });
});

describe('feed:sim options', () => {
  it('has documented defaults', () => {
    expect(parseSimArgs([], {})).toEqual({
      url: 'nats://127.0.0.1:4222',
      symbols: 500,
      rate: 2000,
      seed: 1,
      zipf: 1.1,
      codec: 'msgpack',
      prefix: 'md.sim',
      duration: 60,
      count: null,
      warm: true,
      jetstream: null,
    });
    expect(parseSimArgs([], { NATS_URL: 'nats://10.0.0.1:4222' })).toMatchObject({ url: 'nats://10.0.0.1:4222' });
  });

  it('bounds the run by --count alone when no --duration is given, and --duration 0 means unbounded', () => {
    expect(parseSimArgs(['--count', '10'], {})).toMatchObject({ count: 10, duration: null });
    expect(parseSimArgs(['--duration', '0'], {})).toMatchObject({ count: null, duration: null });
    expect(parseSimArgs(['--count', '10', '--duration', '5'], {})).toMatchObject({ count: 10, duration: 5 });
  });

  it.each([
    [['--rate', 'fast'], '--rate'],
    [['--rate', '0'], '--rate'],
    [['--symbols', '2.5'], '--symbols'],
    [['--symbols', '0'], '--symbols'],
    [['--seed', 'x'], '--seed'],
    [['--zipf', '-1'], '--zipf'],
    [['--codec', 'protobuf'], '--codec'],
    [['--prefix', 'md.*'], '--prefix'],
    [['--prefix', 'md..sim'], '--prefix'],
    [['--duration', '-1'], '--duration'],
    [['--count', '0'], '--count'],
    [['--count', ''], '--count'],
    [['--url', 'http://x'], '--url'],
    [['--bogus'], '--bogus'],
  ])('rejects %j naming %s', (argv, option) => {
    expect(() => parseSimArgs(argv, {})).toThrow(UsageError);
    expect(() => parseSimArgs(argv, {})).toThrow(option);
  });

  it('sanitizes symbols into one subject token', () => {
    expect(subjectToken('BRK.B')).toBe('BRK_B');
    expect(subjectToken('EUR/USD')).toBe('EUR/USD');
    expect(subjectToken('a b*c>d\te')).toBe('a_b_c_d_e');
  });
});
