/**
 * Property tests of order books on the shared delivery path: random books,
 * random level changes, random depths, throttled and lagging clients with
 * random drain points. Every client replays its frames (decoded with a
 * standard MessagePack decoder) as the protocol says: `book` replaces the
 * window, `bupd` sets or removes levels, then each side is cut to the
 * depth. Every message's checksum must match the client's window, and at
 * rest every window must equal the gateway's.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.js';
import { loadConfig } from '../config.js';
import { Hub } from '../fanout/hub.js';
import { BookNormalizer, type BookEvent } from '../feed/book-normalize.js';
import { createLogger } from '../log.js';
import { bookChecksum } from '../../test/helpers/client-book.js';
import { RecordingSocket } from '../../test/helpers/recording-socket.js';

type Level = [number, number];
type Msg = { t: string; s?: string; q?: number; bids?: Level[]; asks?: Level[]; cs?: number; st?: string; ch?: string; n?: number };

class Socket extends RecordingSocket<Msg> {}

/** A client's book: what PROTOCOL.md tells a client to do, with every violation recorded. */
class ClientBook {
  bids = new Map<number, number>();
  asks = new Map<number, number>();
  q = 0;
  readonly problems: string[] = [];
  constructor(readonly depth: number) {}

  side(levels: Map<number, number>, bid: boolean): Level[] {
    return [...levels].sort((a, b) => (bid ? b[0] - a[0] : a[0] - b[0]));
  }

  apply(m: Msg): void {
    if (m.t === 'book') {
      this.bids = new Map(m.bids);
      this.asks = new Map(m.asks);
    } else if (m.t === 'bupd') {
      if (m.q! !== this.q + 1) this.problems.push(`bupd q ${m.q} after ${this.q}`);
      for (const [p, s] of m.bids ?? []) s === 0 ? this.bids.delete(p) : this.bids.set(p, s);
      for (const [p, s] of m.asks ?? []) s === 0 ? this.asks.delete(p) : this.asks.set(p, s);
    } else return;
    if (m.q! <= this.q && m.t === 'book' && this.q > 0 && m.q! < this.q) this.problems.push(`book q ${m.q} after ${this.q}`);
    this.q = m.q!;
    this.bids = new Map(this.side(this.bids, true).slice(0, this.depth));
    this.asks = new Map(this.side(this.asks, false).slice(0, this.depth));
    const cs = bookChecksum(this.side(this.asks, false), this.side(this.bids, true), this.depth);
    if (cs !== m.cs) this.problems.push(`cs mismatch at q ${m.q} (${m.t})`);
  }
}

const DEPTHS = [1, 5, 10, 25] as const;

function setup(clients: Array<{ depth: number; throttleMs: number }>) {
  const clock = new ManualClock(1_000_000);
  const config = loadConfig({
    env: {},
    overrides: {
      backpressure: { highWaterBytes: 4096, lowWaterBytes: 1024, maxBufferedBytes: 1 << 30, slowConsumerMs: 0 },
      throttle: { minMs: 1, maxMs: 1000 },
      ws: { heartbeatMs: 600_000 },
      book: { maxLevels: 40, maxDepth: 25 },
    },
  });
  const hub = new Hub(config, createLogger('silent', false), clock);
  const norm = new BookNormalizer({ name: 'lob', kind: 'book', subject: 'x', codec: 'json', symbolField: 's', symbolToken: null, fields: {}, queue: null, staleAfterMs: 0, jetstream: null, volume: false });
  const sessions = clients.map((c) => {
    const socket = new Socket();
    const session = hub.openSession(socket);
    const req = new TextEncoder().encode(JSON.stringify({ op: 'sub', channel: 'book', symbols: ['B'], depth: c.depth, throttleMs: c.throttleMs }));
    session.onMessage(req.buffer as ArrayBuffer, false);
    return { socket, session, book: new ClientBook(c.depth), seen: 0 };
  });
  hub.scheduler.run();
  const send = (o: object) => {
    const r = norm.fromObject('x', o);
    if (typeof r !== 'string') hub.onBook(r as BookEvent, 'lob');
    return r;
  };
  return { clock, hub, sessions, send, norm };
}

/** Prices on a coarse grid so that changes hit existing levels often. */
const priceArb = fc.integer({ min: 1, max: 60 }).map((x) => x / 4);
const levelsArb = (max: number) => fc.uniqueArray(fc.tuple(priceArb, fc.integer({ min: 0, max: 5 })), { selector: (l) => l[0], maxLength: max });

const stepArb = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('change' as const), bids: levelsArb(4), asks: levelsArb(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), bids: levelsArb(50), asks: levelsArb(50) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('turn' as const), ms: fc.integer({ min: 0, max: 60 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('buffer' as const), client: fc.nat(5), bytes: fc.constantFrom(0, 5000) }) },
);

describe('order books on the delivery path', () => {
  it('every client window equals the gateway window, and every checksum matches', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ depth: fc.constantFrom(...DEPTHS), throttleMs: fc.constantFrom(0, 0, 20, 50) }), { minLength: 1, maxLength: 6 }),
        levelsArb(50),
        levelsArb(50),
        fc.array(stepArb, { maxLength: 80 }),
        (clients, bids0, asks0, steps) => {
          const { clock, hub, sessions, send } = setup(clients);
          // Bids below 8, asks from 8 up, mostly: a crossed book may happen and is delivered too.
          const bidsOf = (l: Level[]) => l.map(([p, s]): Level => [p / 2, s]);
          const asksOf = (l: Level[]) => l.map(([p, s]): Level => [7.5 + p / 2, s]);
          send({ s: 'B', snapshot: true, bids: bidsOf(bids0), asks: asksOf(asks0) });
          const drain = () => {
            hub.scheduler.run();
            for (const c of sessions) {
              for (const m of c.socket.messages.slice(c.seen)) c.book.apply(m);
              c.seen = c.socket.messages.length;
            }
          };
          drain();
          for (const step of steps) {
            if (step.kind === 'change') send({ s: 'B', bids: bidsOf(step.bids), asks: asksOf(step.asks) });
            else if (step.kind === 'snapshot') send({ s: 'B', snapshot: true, bids: bidsOf(step.bids), asks: asksOf(step.asks) });
            else if (step.kind === 'turn') {
              clock.advance(step.ms);
              hub.throttle.fire(clock.now());
              drain();
            } else {
              const c = sessions[step.client % sessions.length]!;
              c.socket.buffered = step.bytes;
              if (step.bytes === 0) c.session.onDrain();
              drain();
            }
          }
          // Rest: everyone drains, every interval passes.
          for (const c of sessions) {
            c.socket.buffered = 0;
            c.session.onDrain();
          }
          drain();
          clock.advance(1000);
          hub.throttle.fire(clock.now());
          drain();
          const st = hub.books.state('B')!;
          for (const c of sessions) {
            expect(c.book.problems).toEqual([]);
            expect(c.book.q).toBe(st.q);
            const want = (side: typeof st.bids): Level[] => Array.from({ length: Math.min(c.book.depth, side.n) }, (_, i) => [side.price(i), side.sizes[i]!]);
            expect(c.book.side(c.book.bids, true)).toEqual(want(st.bids));
            expect(c.book.side(c.book.asks, false)).toEqual(want(st.asks));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps at most book.maxLevels per side and counts what it drops', () => {
    const { hub, send, norm } = setup([{ depth: 5, throttleMs: 0 }]);
    const bids = Array.from({ length: 60 }, (_, i): Level => [100 - i, 1]);
    send({ s: 'B', snapshot: true, bids, asks: [] });
    expect(hub.books.state('B')!.bids.n).toBe(40);
    expect(norm.counters.levelsDropped).toBe(20);
  });

  it('refuses changes before a snapshot, marks a gap stale until the next snapshot, and counts a crossed book', () => {
    const { hub, sessions, send, norm } = setup([{ depth: 5, throttleMs: 0 }]);
    expect(send({ s: 'B', bids: [[1, 1]] })).toMatchObject({ symbol: 'B' });
    expect(norm.counters.rejected.no_snapshot).toBe(1);
    send({ s: 'B', snapshot: true, seq: 10, bids: [[1, 1]], asks: [[2, 1]] });
    send({ s: 'B', seq: 11, bids: [[1.5, 2]] });
    send({ s: 'B', seq: 13, bids: [[1.6, 2]] });
    expect(norm.counters.gaps).toBe(1);
    send({ s: 'B', seq: 14, bids: [[1.7, 2]] });
    expect(norm.counters.rejected.after_gap).toBe(1);
    hub.scheduler.run();
    const msgs = sessions[0]!.socket.messages;
    expect(msgs.find((m) => m.t === 'stat' && m.st === 'stale')).toEqual({ t: 'stat', s: 'B', st: 'stale', ch: 'book' });
    send({ s: 'B', snapshot: true, seq: 20, bids: [[3, 1]], asks: [[2, 1]] });
    hub.scheduler.run();
    const after = msgs.slice(msgs.findIndex((m) => m.st === 'stale') + 1);
    expect(after.map((m) => m.t)).toEqual(['stat', 'book']);
    expect(after[0]).toMatchObject({ st: 'live', ch: 'book' });
    expect(norm.counters.crossed).toBe(1);
  });

  it('rejects malformed messages by reason', () => {
    const { norm } = setup([]);
    const cases: Array<[object, string]> = [
      [{ s: 'B', bids: 'x' }, 'bad_shape'],
      [{ s: 'B', bids: [[1]] }, 'bad_shape'],
      [{ s: 'B', bids: [[1, 'x']] }, 'bad_number'],
      [{ s: 'B', asks: [[1, -1]] }, 'negative_size'],
      [{ s: 'B', asks: [[1, 1], [1, 2]] }, 'duplicate_price'],
      [{ s: 'B' }, 'empty'],
      [{ s: 'B', snapshot: 'yes', bids: [] }, 'bad_shape'],
      [{ bids: [[1, 1]] }, 'no_symbol'],
    ];
    for (const [o, reason] of cases) expect(norm.fromObject('x', o)).toBe(reason);
    expect(norm.fromObject('x', { s: 'B', snapshot: true, bids: [['1.5', '2']] })).toMatchObject({ snapshot: true });
  });
});
