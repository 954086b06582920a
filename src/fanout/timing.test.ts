/**
 * The timing rules of sessions, the throttle wheel, rate limits and feed
 * health, on a manual clock: each test moves time and checks what the
 * client was sent, without waiting.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.js';
import { loadConfig } from '../config.js';
import { FeedHealth } from '../feed/feed-health.js';
import type { FeedSource, SourceStatus } from '../feed/feed-source.js';
import { Normalizer, type Tick } from '../feed/normalize.js';
import { createLogger } from '../log.js';
import { Hub } from './hub.js';
import { TokenBucket, ViolationWindow } from './rate-limit.js';
import { RecordingSocket } from '../../test/helpers/recording-socket.js';

type Msg = Record<string, unknown> & { t: string };

class Socket extends RecordingSocket {
  types() {
    return this.messages.map((m) => m.t);
  }
}

const log = createLogger('silent', false);
const FEED = { name: 'sim', kind: 'quote' as const, subject: 'x', codec: 'json' as const, symbolField: 's', symbolToken: null, fields: {}, queue: null, staleAfterMs: 1000, jetstream: null, volume: false };

function setup(overrides: Record<string, unknown> = {}) {
  const clock = new ManualClock(1_000_000);
  const hub = new Hub(loadConfig({ env: {}, overrides }), log, clock);
  hub.start();
  const norm = new Normalizer(FEED, { clock });
  const tick = (o: object) => {
    const t = norm.fromObject('x', o) as Tick;
    hub.onTick(t, 'sim');
  };
  const open = () => {
    const socket = new Socket();
    const session = hub.openSession(socket);
    hub.scheduler.run();
    return { socket, session };
  };
  const send = (session: { onMessage(d: ArrayBuffer, b: boolean): void }, req: object) => {
    const b = new TextEncoder().encode(JSON.stringify(req));
    session.onMessage(b.buffer as ArrayBuffer, false);
    hub.scheduler.run();
  };
  /** Moves the clock and flushes what the timers queued. */
  const advance = (ms: number) => {
    clock.advance(ms);
    hub.scheduler.run();
  };
  return { clock, hub, tick, open, send, advance };
}

describe('session timing on the injected clock', () => {
  it('sends hb after heartbeatMs of silence, and not before', () => {
    const { open, send, advance } = setup({ ws: { heartbeatMs: 1000 } });
    const { socket, session } = open();
    send(session, { op: 'sub', symbols: ['A'] });
    advance(900);
    expect(socket.types()).not.toContain('hb');
    advance(400);
    expect(socket.types().filter((t) => t === 'hb')).toHaveLength(1);
  });

  it('closes a client that never subscribes with bye IDLE after subscribeTimeoutMs', () => {
    const { open, advance } = setup({ limits: { subscribeTimeoutMs: 2000 } });
    const { socket } = open();
    advance(1900);
    expect(socket.types()).not.toContain('bye');
    advance(500);
    expect(socket.messages.find((m) => m.t === 'bye')).toMatchObject({ code: 'IDLE' });
    expect(socket.closedWith).toBe(1000);
  });

  it('closes a client that stays above the high water mark for slowConsumerMs', () => {
    const { open, send, tick, advance, hub } = setup({ backpressure: { slowConsumerMs: 3000 } });
    const { socket, session } = open();
    send(session, { op: 'sub', symbols: ['A'] });
    socket.buffered = 600 * 1024;
    tick({ s: 'A', bid: 1 });
    hub.scheduler.run();
    expect(session.conflating).toBe(true);
    advance(2900);
    expect(socket.types()).not.toContain('bye');
    advance(400);
    expect(socket.messages.find((m) => m.t === 'bye')).toMatchObject({ code: 'SLOW_CONSUMER' });
  });

  it('delivers a throttled subscription on the next multiple of its interval', () => {
    const { open, send, tick, advance, clock } = setup({ throttle: { minMs: 10 } });
    const { socket, session } = open();
    send(session, { op: 'sub', symbols: ['A'], throttleMs: 100 });
    tick({ s: 'A', bid: 1 });
    advance(0);
    // The first tick after subscribing waits for the grid too.
    const dueIn = 100 - (clock.now() % 100);
    tick({ s: 'A', bid: 2 });
    tick({ s: 'A', bid: 3 });
    advance(dueIn - 20);
    expect(socket.messages.filter((m) => m.t === 'upd')).toHaveLength(0);
    advance(30);
    const upds = socket.messages.filter((m) => m.t === 'upd');
    expect(upds).toHaveLength(1);
    expect(upds[0]).toMatchObject({ d: { bid: 3 }, n: 2 });
  });
});

describe('rate limits on the injected clock', () => {
  it('a token bucket refills at its rate', () => {
    const clock = new ManualClock();
    const b = new TokenBucket(2, clock);
    expect([b.take(), b.take(), b.take()]).toEqual([true, true, false]);
    clock.advance(499);
    expect(b.take()).toBe(false);
    clock.advance(2);
    expect(b.take()).toBe(true);
  });

  it('a violation window resets after its window', () => {
    const clock = new ManualClock();
    const w = new ViolationWindow(2, 10_000, clock);
    expect([w.record(), w.record(), w.record()]).toEqual([false, false, true]);
    clock.advance(10_001);
    expect(w.record()).toBe(false);
  });
});

describe('feed health on the injected clock', () => {
  it('marks a silent feed stale after staleAfterMs and a disconnected one at the next check', () => {
    const clock = new ManualClock();
    const norm = new Normalizer(FEED, { clock });
    const source: FeedSource & { status: SourceStatus } = {
      kind: 'test',
      status: { state: 'connected', server: 'x' },
      normalizers: [norm],
      reconnects: 0,
      start: async () => {},
      stop: async () => {},
    };
    const changes: Array<[string, boolean]> = [];
    const health = new FeedHealth(source, clock, log, (feed, stale) => changes.push([feed, stale]));
    health.start();
    clock.advance(900);
    // Seen by the check at 1000 ms: silent from then on.
    norm.fromObject('x', { s: 'A', bid: 1 });
    clock.advance(1100);
    expect(changes).toEqual([]);
    clock.advance(250);
    expect(changes).toEqual([['sim', true]]);
    health.seen(norm.fromObject('x', { s: 'A', bid: 2 }) as Tick, 'sim');
    expect(changes).toEqual([['sim', true], ['sim', false]]);
    source.status = { state: 'reconnecting', since: clock.now() };
    clock.advance(250);
    expect(changes.at(-1)).toEqual(['sim', true]);
    health.stop();
  });
});
