/**
 * The buffer budget: accounting from the points where sessions read their
 * socket's buffer, the choice of the biggest clients past the budget, and
 * the process-wide budget shared by workers. Sessions are the hub's own, on
 * sockets whose buffered amount the test sets; time is a ManualClock.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config.js';
import { ManualClock } from '../clock.js';
import { createLogger } from '../log.js';
import { RecordingSocket } from '../../test/helpers/recording-socket.js';
import { BufferBudget, LOW_WATER, budgetSlots, type BudgetedSession } from './buffer-budget.js';
import type { ClientSession } from './client-session.js';
import { Hub } from './hub.js';

const KIB = 1024;
const MAX = 256 * KIB;
const BUDGET = 1024 * KIB;
const LOW = 16 * KIB;

/** A socket that, like uWS, runs the session's close handler from close() and abort(). */
class BudgetSocket extends RecordingSocket {
  session: ClientSession | null = null;
  aborted = false;
  abort() {
    this.aborted = true;
    this.session?.onClose();
  }
  override close(code: number) {
    super.close(code);
    this.session?.onClose();
  }
}

function setup(budget = BUDGET) {
  const clock = new ManualClock(1_000_000);
  const config = loadConfig({
    env: {},
    overrides: {
      backpressure: { highWaterBytes: 200 * KIB, lowWaterBytes: LOW, maxBufferedBytes: MAX, maxTotalBufferedBytes: budget, slowConsumerMs: 0 },
      ws: { heartbeatMs: 600_000 },
    },
  });
  const hub = new Hub(config, createLogger('silent', false), clock);
  hub.start();
  const open = () => {
    const socket = new BudgetSocket();
    const session = hub.openSession(socket);
    socket.session = session;
    return { socket, session };
  };
  /** Sets a socket's buffered amount and makes its session flush (a message queued, then the turn's flush). */
  const flushAt = (c: { socket: BudgetSocket; session: ClientSession }, bytes: number) => {
    c.socket.buffered = bytes;
    c.session.push('pong', new Uint8Array([0x80]));
    hub.scheduler.run();
  };
  return { hub, clock, open, flushAt, budget: hub.registry.budget };
}

describe('buffer budget accounting', () => {
  it('keeps the total as the sum of what the open sessions buffer, from flushes, drains and the sweep', () => {
    const { hub, clock, open, flushAt, budget } = setup();
    const a = open();
    const b = open();
    hub.scheduler.run();
    expect(budget.total).toBe(0);
    flushAt(a, 100 * KIB);
    flushAt(b, 50 * KIB);
    expect(budget.total).toBe(150 * KIB);
    // A drain reports what is left.
    a.socket.buffered = 10 * KIB;
    a.session.onDrain();
    expect(budget.total).toBe(60 * KIB);
    // The sweep catches a socket that drained without a drain event.
    b.socket.buffered = 0;
    clock.advance(1000);
    expect(budget.total).toBe(10 * KIB);
    // A closed session leaves the total.
    a.session.onClose();
    expect(budget.total).toBe(0);
    expect(budget.closes).toBe(0);
  });

  it('closes a client past its own limit for that limit rather than for the budget, and counts its buffer for the time the transport keeps it', () => {
    const { hub, clock, open, flushAt, budget } = setup();
    const a = open();
    const b = open();
    hub.scheduler.run();
    flushAt(b, 200 * KIB);
    flushAt(a, MAX + 1);
    // The graceful close leaves the buffer with the transport: it still counts, as lingering bytes.
    expect(budget.total).toBe(200 * KIB + MAX + 1);
    expect(budget.lingered).toBe(MAX + 1);
    hub.scheduler.run();
    expect(a.socket.messages.at(-1)).toMatchObject({ t: 'bye', code: 'SLOW_CONSUMER' });
    expect(String(a.socket.messages.at(-1)!['reason'])).toContain('limit');
    expect(a.session.isOpen).toBe(false);
    expect(budget.total).toBe(200 * KIB + MAX + 1);
    expect(budget.closes).toBe(0);
    // Until about half the idle timeout (120 s by default) has passed.
    clock.advance(59_000);
    expect(budget.total).toBe(200 * KIB + MAX + 1);
    clock.advance(2_000);
    expect(budget.lingered).toBe(0);
    expect(budget.total).toBe(200 * KIB);
    expect(hub.counters.byes.SLOW_CONSUMER).toBe(1);
  });
});

describe('over the budget', () => {
  it('closes the clients buffering the most first, with bye SLOW_CONSUMER, until the total is under the low water mark', () => {
    const { hub, open, flushAt, budget } = setup();
    const clients = Array.from({ length: 8 }, () => open());
    hub.scheduler.run();
    // 8 clients buffering 40, 60, ... 180 KiB: 880 KiB under a 1024 KiB budget.
    clients.forEach((c, i) => flushAt(c, (40 + i * 20) * KIB));
    expect(budget.total).toBe(880 * KIB);
    expect(budget.closes).toBe(0);
    // The smallest grows to 200 KiB: 1040 KiB > 1024 KiB. Down to 90% (921.6 KiB)
    // means shedding 118.4 KiB: the biggest, the one at 200, is enough.
    flushAt(clients[0]!, 200 * KIB);
    expect(budget.closes).toBe(1);
    expect(budget.total).toBeLessThanOrEqual(BUDGET * LOW_WATER);
    const closed = clients.filter((c) => !c.session.isOpen);
    expect(closed.length).toBe(1);
    expect(closed[0]).toBe(clients[0]);
    expect(budget.total).toBe(840 * KIB);
    // The bye is queued and the connection cut at its flush (the client is far behind).
    hub.scheduler.run();
    expect(closed[0]!.socket.messages.at(-1)).toMatchObject({ t: 'bye', code: 'SLOW_CONSUMER', retryMs: 5000 });
    expect(String(closed[0]!.socket.messages.at(-1)!['reason'])).toContain('budget');
    expect(closed[0]!.socket.aborted).toBe(true);
    expect(hub.counters.byes.SLOW_CONSUMER).toBe(1);
    expect(hub.counters.closedBy.SLOW_CONSUMER).toBe(1);
    expect(hub.sessions.size).toBe(7);
  });

  it('closes several when one is not enough, biggest first, and each only once', () => {
    const { hub, open, flushAt, budget } = setup();
    const clients = Array.from({ length: 10 }, () => open());
    hub.scheduler.run();
    // Nine at 100 KiB, then the tenth brings the total to 1100 KiB.
    for (let i = 0; i < 9; i++) flushAt(clients[i]!, 100 * KIB);
    flushAt(clients[9]!, 200 * KIB);
    // 1100 - 921.6 = 178.4 KiB to shed: the 200 KiB one alone.
    expect(budget.closes).toBe(1);
    expect(clients[9]!.session.isOpen).toBe(false);
    // The nine grow to 110 KiB: 990 KiB, under the budget; then one to 190: 1070 KiB, shed 148.4: that one.
    for (let i = 0; i < 9; i++) flushAt(clients[i]!, 110 * KIB);
    expect(budget.closes).toBe(1);
    flushAt(clients[0]!, 190 * KIB);
    expect(budget.closes).toBe(2);
    expect(clients[0]!.session.isOpen).toBe(false);
    // Reports from a closed session count nothing.
    flushAt(clients[0]!, 500 * KIB);
    expect(budget.total).toBe(8 * 110 * KIB);
    // 1020 KiB after one grows to 250, 1150 after another to 240: shed 228.4, the 250 alone.
    clients[1]!.socket.buffered = 250 * KIB;
    clients[1]!.session.onDrain();
    expect(budget.closes).toBe(2);
    clients[2]!.socket.buffered = 240 * KIB;
    clients[2]!.session.onDrain();
    expect(budget.closes).toBe(3);
    expect(clients[1]!.session.isOpen).toBe(false);
    expect(clients[2]!.session.isOpen).toBe(true);
  });

  it('with no budget (0) closes nobody', () => {
    const { hub, open, flushAt, budget } = setup(0);
    const clients = Array.from({ length: 10 }, () => open());
    hub.scheduler.run();
    for (const c of clients) flushAt(c, 200 * KIB);
    expect(budget.total).toBe(2000 * KIB);
    expect(budget.closes).toBe(0);
    expect(hub.sessions.size).toBe(10);
  });

  it('closes gracefully a budget-closed client whose buffer drained before its flush', () => {
    const { hub, open, flushAt, budget } = setup();
    const clients = Array.from({ length: 5 }, () => open());
    hub.scheduler.run();
    for (const c of clients) flushAt(c, 220 * KIB);
    expect(budget.closes).toBe(1);
    const closed = clients.find((c) => !c.session.isOpen)!;
    closed.socket.buffered = 0;
    hub.scheduler.run();
    expect(closed.socket.aborted).toBe(false);
    expect(closed.socket.closedWith).toBe(1013);
  });
});

/** A session as the budget sees it, for the property and worker tests. */
class Plain implements BudgetedSession {
  budgeted = 0;
  isOpen = true;
  /** What it buffered when the budget closed it. */
  hadAtClose = -1;
  constructor(readonly id: number) {}
  closeForBudget() {
    this.isOpen = false;
    this.hadAtClose = this.budgeted;
  }
}

describe('budget invariants', () => {
  it('after every report the total is the sum of the open sessions, within the budget, and no closed session was smaller than an open one', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(19), fc.nat(300 * KIB)), { minLength: 1, maxLength: 300 }), (steps) => {
        const sessions = new Set<Plain>(Array.from({ length: 20 }, (_, i) => new Plain(i)));
        const all = [...sessions];
        const budget = new BufferBudget(BUDGET, sessions);
        let closes = 0;
        for (const [who, bytes] of steps) {
          const wasOpen = all.filter((s) => s.isOpen);
          budget.report(all[who]!, bytes);
          const open = all.filter((s) => s.isOpen);
          expect(budget.total).toBe(open.reduce((n, s) => n + s.budgeted, 0));
          expect(budget.total).toBeLessThanOrEqual(BUDGET);
          const biggestOpen = Math.max(0, ...open.map((s) => s.budgeted));
          for (const c of wasOpen) if (!c.isOpen) expect(c.hadAtClose).toBeGreaterThanOrEqual(biggestOpen);
          closes += wasOpen.length - open.length;
          expect(budget.closes).toBe(closes);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('shared by workers', () => {
  it('sees the other workers through the shared slots and lets the worker over its fair share close its own biggest', () => {
    const slots = budgetSlots(2);
    const aSessions = new Set(Array.from({ length: 4 }, (_, i) => new Plain(i)));
    const bSessions = new Set(Array.from({ length: 4 }, (_, i) => new Plain(10 + i)));
    const a = new BufferBudget(BUDGET, aSessions);
    const b = new BufferBudget(BUDGET, bSessions);
    a.share({ slots, slot: 0 });
    b.share({ slots, slot: 1 });
    const [a0, a1] = [...aSessions];
    const [b0, b1, b2] = [...bSessions];
    // a: 400 KiB (under its 512 KiB share).
    a.report(a0!, 200 * KIB);
    a.report(a1!, 200 * KIB);
    // b: 300 KiB, then 700 KiB: the process is at 1100 KiB > 1024.
    b.report(b0!, 300 * KIB);
    b.check();
    expect(b.processTotal).toBe(700 * KIB);
    b.report(b1!, 250 * KIB);
    b.report(b2!, 150 * KIB);
    // b is over its share (512): it closes its biggest (300) to 400 KiB, process 800 <= 921.6.
    expect(b.closes).toBe(1);
    expect(b0!.isOpen).toBe(false);
    expect(b.total).toBe(400 * KIB);
    a.check();
    expect(a.processTotal).toBe(800 * KIB);
    // a grows to 650 KiB: the process is at 1050 KiB; a is over its share: it sheds, b does not.
    a.report(a0!, 450 * KIB);
    expect(a.closes).toBe(1);
    expect(a0!.isOpen).toBe(false);
    b.check();
    expect(b.closes).toBe(1);
    expect(b.processTotal).toBe(600 * KIB);
  });

  it('lets a worker under its fair share keep its clients while another is over', () => {
    const slots = budgetSlots(2);
    const aSessions = new Set([new Plain(0)]);
    const bSessions = new Set([new Plain(1), new Plain(2), new Plain(3)]);
    const a = new BufferBudget(BUDGET, aSessions);
    const b = new BufferBudget(BUDGET, bSessions);
    a.share({ slots, slot: 0 });
    b.share({ slots, slot: 1 });
    const [b1, b2, b3] = [...bSessions];
    b.report(b1!, 250 * KIB);
    b.report(b2!, 250 * KIB);
    b.report(b3!, 250 * KIB);
    // a at 300 KiB: process 1050 KiB; a is under its share, so b (750) is the one to close.
    a.report([...aSessions][0]!, 300 * KIB);
    a.check();
    expect(a.processTotal).toBe(1050 * KIB);
    expect(a.closes).toBe(0);
    b.check();
    expect(b.closes).toBe(1);
    expect(b.processTotal).toBe(800 * KIB);
  });
});

describe('configuration', () => {
  it('refuses a budget smaller than one client\'s limit, naming both keys, and takes 0 as unlimited', () => {
    let err: unknown;
    try {
      loadConfig({ env: {}, overrides: { backpressure: { maxBufferedBytes: 4 * 1024 * 1024, maxTotalBufferedBytes: 1024 * 1024 } } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('backpressure.maxTotalBufferedBytes');
    expect((err as Error).message).toContain('backpressure.maxBufferedBytes');
    expect((err as Error).message).toContain('1048576');
    expect(loadConfig({ env: {}, overrides: { backpressure: { maxTotalBufferedBytes: 0 } } }).backpressure.maxTotalBufferedBytes).toBe(0);
    expect(loadConfig({ env: {} }).backpressure.maxTotalBufferedBytes).toBe(256 * 1024 * 1024);
    // Left at its default, the budget follows a per-client limit raised above it.
    expect(loadConfig({ env: {}, overrides: { backpressure: { maxBufferedBytes: 1 << 30 } } }).backpressure.maxTotalBufferedBytes).toBe(1 << 30);
    expect(loadConfig({ env: { TICKGATE_BACKPRESSURE_MAX_TOTAL_BUFFERED_BYTES: '67108864' } }).backpressure.maxTotalBufferedBytes).toBe(64 * 1024 * 1024);
  });
});

describe('lingering buffers', () => {
  it('count toward the budget, so the next client over it is closed for the budget while they last', () => {
    const clock = new ManualClock(0);
    const sessions = new Set<Plain>(Array.from({ length: 3 }, (_, i) => new Plain(i)));
    const [a, b, c] = [...sessions] as [Plain, Plain, Plain];
    const budget = new BufferBudget(BUDGET, sessions, clock, 1000);
    budget.report(a, 700 * KIB);
    // a is closed gracefully for its own limit: its 700 KiB stay with the transport.
    a.isOpen = false;
    budget.linger(a, 700 * KIB);
    sessions.delete(a);
    budget.release(a);
    expect(budget.total).toBe(700 * KIB);
    budget.report(b, 200 * KIB);
    expect(budget.closes).toBe(0);
    // 700 + 200 + 300 KiB is over the 1 MiB budget: the biggest open one goes.
    budget.report(c, 300 * KIB);
    expect(budget.closes).toBe(1);
    expect(c.isOpen).toBe(false);
    clock.advance(1000);
    budget.check();
    expect(budget.lingered).toBe(0);
  });
});
