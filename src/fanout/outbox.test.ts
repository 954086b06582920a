import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { decode, ExtData } from '@msgpack/msgpack';
import { MAX_ARRAY_HEADER, encode, encodeData } from '../protocol/codec.js';
import { ManualClock } from '../clock.js';
import { FlushScheduler, HOLD_FULL_LOAD, HOLD_FROM_LOAD, LOAD_SAMPLE_MS, FrameCounters, Outbox, SendStatus, type FrameSink, type Flushable } from './outbox.js';

/** Keeps a copy of every frame: the outbox reuses its frame buffer after each call. */
class RecordingSink implements FrameSink {
  readonly frames: Uint8Array[] = [];
  /** Status answered for the n-th frame (0-based); Sent when not listed. */
  constructor(private readonly statuses: SendStatus[] = []) {}

  sendFrame(frame: Uint8Array): SendStatus {
    this.frames.push(Uint8Array.from(frame));
    return this.statuses[this.frames.length - 1] ?? SendStatus.Sent;
  }

  /** Each frame decoded with the reference decoder; each must be one array. */
  decoded(): unknown[][] {
    return this.frames.map((f) => {
      const v = decode(f);
      if (!Array.isArray(v)) throw new Error('frame is not an array');
      for (const m of v) if (m instanceof ExtData) throw new Error('extension in frame');
      return v;
    });
  }
}

function upd(i: number, pad = 0): Uint8Array {
  return encodeData({ t: 'upd', s: `S${i}`, q: i, d: { bid: i + 0.5 }, ...(pad > 0 ? { p: 'x'.repeat(pad) } : {}) });
}

/** Element count and header size of a frame's MessagePack array header. */
function arrayHeader(frame: Uint8Array): { count: number; size: number } {
  const b = frame[0]!;
  if (b >= 0x90 && b <= 0x9f) return { count: b & 0x0f, size: 1 };
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b === 0xdc) return { count: view.getUint16(1), size: 3 };
  if (b === 0xdd) return { count: view.getUint32(1), size: 5 };
  throw new Error(`frame does not start with an array header: 0x${b.toString(16)}`);
}

/**
 * Splits the frames back into the pieces they carry: checks that each frame
 * is a valid array (reference decoder), that the frame bodies are the pieces
 * byte for byte and in order, and returns the pieces of each frame.
 */
function piecesPerFrame(frames: Uint8Array[], pieces: Uint8Array[]): Uint8Array[][] {
  const out: Uint8Array[][] = [];
  let k = 0;
  for (const f of frames) {
    const { count, size } = arrayHeader(f);
    const decoded = decode(f);
    expect(Array.isArray(decoded) && decoded.length === count).toBe(true);
    const group = pieces.slice(k, k + count);
    expect(group).toHaveLength(count);
    const body = Buffer.concat(group);
    expect(Buffer.from(f.subarray(size)).equals(body)).toBe(true);
    out.push(group);
    k += count;
  }
  expect(k).toBe(pieces.length);
  return out;
}

describe('Outbox', () => {
  it('starts empty and tracks queued messages and bytes', () => {
    const ob = new Outbox(4096, new FrameCounters());
    expect(ob.length).toBe(0);
    expect(ob.bytes).toBe(0);
    const a = upd(1);
    const b = upd(2);
    ob.push(a);
    ob.push(b);
    expect(ob.length).toBe(2);
    expect(ob.bytes).toBe(a.byteLength + b.byteLength);
  });

  it('flushes pieces that fit as one frame holding them in order', () => {
    const counters = new FrameCounters();
    const ob = new Outbox(4096, counters);
    const sink = new RecordingSink();
    const msgs = [
      { t: 'snap', s: 'A', q: 1, d: { bid: 1, ask: 2 } },
      { t: 'stat', s: 'B', st: 'unknown' },
      { t: 'upd', s: 'A', q: 2, d: { ask: 3 } },
    ];
    ob.push(encodeData(msgs[0]!));
    ob.push(encode(msgs[1]!));
    ob.push(encodeData(msgs[2]!));
    expect(ob.flush(sink)).toBe(SendStatus.Sent);
    expect(sink.decoded()).toEqual([msgs]);
    expect(counters.frames).toBe(1);
    expect(counters.bytes).toBe(sink.frames[0]!.byteLength);
    expect(ob.length).toBe(0);
    expect(ob.bytes).toBe(0);
  });

  it('sends nothing when nothing is queued', () => {
    const counters = new FrameCounters();
    const ob = new Outbox(4096, counters);
    const sink = new RecordingSink();
    expect(ob.flush(sink)).toBe(SendStatus.Sent);
    expect(sink.frames).toHaveLength(0);
    expect(counters.frames).toBe(0);
    expect(counters.bytes).toBe(0);
  });

  it('uses a 16-bit array header for 16 or more messages', () => {
    const ob = new Outbox(1 << 20, new FrameCounters());
    const sink = new RecordingSink();
    for (let i = 0; i < 20; i++) ob.push(upd(i));
    ob.flush(sink);
    expect(sink.frames).toHaveLength(1);
    expect([...sink.frames[0]!.subarray(0, 3)]).toEqual([0xdc, 0, 20]);
    expect(sink.decoded()[0]!.map((m) => (m as { q: number }).q)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('splits pieces that exceed maxFrameBytes into several valid frames, in order', () => {
    const counters = new FrameCounters();
    const max = 256;
    const ob = new Outbox(max, counters);
    const sink = new RecordingSink();
    const pieces = Array.from({ length: 100 }, (_, i) => upd(i, i % 7));
    for (const p of pieces) ob.push(p);
    expect(ob.bytes).toBeGreaterThan(5 * max);
    expect(ob.flush(sink)).toBe(SendStatus.Sent);

    const frames = sink.decoded();
    expect(frames.length).toBeGreaterThan(5);
    expect(frames.flat()).toEqual(pieces.map((p) => decode(p)));
    for (const group of piecesPerFrame(sink.frames, pieces)) {
      expect(group.reduce((s, p) => s + p.byteLength, 0)).toBeLessThanOrEqual(max);
    }
    for (const f of sink.frames) expect(f.byteLength).toBeLessThanOrEqual(max + MAX_ARRAY_HEADER);
    expect(counters.frames).toBe(sink.frames.length);
    expect(counters.bytes).toBe(sink.frames.reduce((s, f) => s + f.byteLength, 0));
  });

  it('fills a frame up to exactly maxFrameBytes of messages', () => {
    const piece = upd(1, 10);
    const size = piece.byteLength;
    const run = (max: number, count: number): number[] => {
      const ob = new Outbox(max, new FrameCounters());
      const sink = new RecordingSink();
      for (let i = 0; i < count; i++) ob.push(piece);
      ob.flush(sink);
      return sink.decoded().map((f) => f.length);
    };
    expect(run(2 * size, 2)).toEqual([2]);
    expect(run(2 * size, 5)).toEqual([2, 2, 1]);
    expect(run(2 * size - 1, 3)).toEqual([1, 1, 1]);
    expect(run(3 * size + 1, 7)).toEqual([3, 3, 1]);
  });

  it('sends a piece larger than maxFrameBytes alone', () => {
    const ob = new Outbox(4096, new FrameCounters());
    const sink = new RecordingSink();
    const big = upd(2, 10_000);
    ob.push(upd(1));
    ob.push(big);
    ob.push(upd(3));
    ob.flush(sink);
    expect(sink.decoded().map((f) => f.map((m) => (m as { q: number }).q))).toEqual([[1], [2], [3]]);
    expect(sink.frames[1]!.byteLength).toBe(big.byteLength + 1);
  });

  it('sends a piece larger than its one-megabyte frame buffer intact', () => {
    const ob = new Outbox(4096, new FrameCounters());
    const sink = new RecordingSink();
    const huge = upd(7, 3 * 1024 * 1024);
    ob.push(huge);
    ob.push(upd(8));
    ob.flush(sink);
    expect(sink.frames).toHaveLength(2);
    expect(sink.frames[0]![0]).toBe(0x91);
    expect(Buffer.from(sink.frames[0]!.subarray(1)).equals(huge)).toBe(true);
    expect(sink.decoded()[1]).toEqual([decode(upd(8))]);
  });

  it('stops at a Dropped send, returns Dropped and clears the queue', () => {
    const counters = new FrameCounters();
    const ob = new Outbox(128, counters);
    const sink = new RecordingSink([SendStatus.Sent, SendStatus.Dropped]);
    for (let i = 0; i < 40; i++) ob.push(upd(i));
    expect(ob.flush(sink)).toBe(SendStatus.Dropped);
    expect(sink.frames).toHaveLength(2);
    expect(ob.length).toBe(0);
    expect(ob.bytes).toBe(0);
    // Only the frame the socket accepted counts as sent.
    expect(counters.frames).toBe(1);
    expect(counters.bytes).toBe(sink.frames[0]!.byteLength);
    // Nothing left over for the next flush.
    expect(ob.flush(sink)).toBe(SendStatus.Sent);
    expect(sink.frames).toHaveLength(2);
  });

  it('keeps sending under backpressure and returns the last status', () => {
    const ob = new Outbox(128, new FrameCounters());
    const sink = new RecordingSink([SendStatus.Backpressure, SendStatus.Backpressure]);
    const pieces = Array.from({ length: 40 }, (_, i) => upd(i));
    for (const p of pieces) ob.push(p);
    expect(ob.flush(sink)).toBe(SendStatus.Sent);
    expect(sink.frames.length).toBeGreaterThan(2);
    expect(sink.decoded().flat()).toEqual(pieces.map((p) => decode(p)));

    const last = new RecordingSink([SendStatus.Backpressure]);
    ob.push(upd(1));
    expect(ob.flush(last)).toBe(SendStatus.Backpressure);
  });

  it('drops everything on clear', () => {
    const ob = new Outbox(4096, new FrameCounters());
    const sink = new RecordingSink();
    ob.push(upd(1));
    ob.clear();
    expect(ob.length).toBe(0);
    expect(ob.flush(sink)).toBe(SendStatus.Sent);
    expect(sink.frames).toHaveLength(0);
  });

  it('frames any sequence of pieces greedily, in order and within the limit', () => {
    const pieceArb = fc.tuple(fc.nat(1000), fc.nat(600)).map(([q, pad]) => upd(q, pad));
    fc.assert(
      fc.property(fc.array(pieceArb, { maxLength: 60 }), fc.integer({ min: 16, max: 4096 }), (pieces, max) => {
        const counters = new FrameCounters();
        const ob = new Outbox(max, counters);
        const sink = new RecordingSink();
        for (const p of pieces) ob.push(p);
        ob.flush(sink);
        // Every element is one of the pieces, byte for byte, in order.
        const framed = piecesPerFrame(sink.frames, pieces);
        for (let i = 0; i < framed.length; i++) {
          const sizes = framed[i]!.map((e) => e.byteLength);
          const payload = sizes.reduce((s, n) => s + n, 0);
          expect(sizes.length).toBeGreaterThan(0);
          // Within the limit, unless a single piece is larger on its own.
          if (sizes.length > 1) expect(payload).toBeLessThanOrEqual(max);
          // As few frames as the limit allows: the next frame's first piece did not fit.
          const next = framed[i + 1];
          if (next) expect(payload + next[0]!.byteLength).toBeGreaterThan(max);
        }
        expect(counters.frames).toBe(sink.frames.length);
        expect(counters.bytes).toBe(sink.frames.reduce((s, f) => s + f.byteLength, 0));
      }),
      { numRuns: 200 },
    );
  });
});

class FakeClient implements Flushable {
  readonly outbox = new Outbox(4096, new FrameCounters());
  readonly sink = new RecordingSink();
  flushes = 0;
  /** performance.now() at each flush. */
  readonly flushedAt: number[] = [];
  onFlush: (() => void) | null = null;

  flush(): void {
    this.flushes++;
    this.flushedAt.push(performance.now());
    this.outbox.flush(this.sink);
    this.onFlush?.();
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('FlushScheduler', () => {
  it('flushes a client once per turn however often it was marked', async () => {
    const sched = new FlushScheduler();
    const c = new FakeClient();
    for (let i = 0; i < 5; i++) {
      c.outbox.push(upd(i));
      sched.mark(c);
    }
    expect(c.outbox.dirty).toBe(true);
    // Nothing is sent in the turn that queued the messages.
    expect(c.flushes).toBe(0);
    await nextTurn();
    expect(c.flushes).toBe(1);
    expect(c.outbox.dirty).toBe(false);
    expect(c.sink.frames).toHaveLength(1);
    expect(c.sink.decoded()[0]).toHaveLength(5);
  });

  it('flushes every marked client once', async () => {
    const sched = new FlushScheduler();
    const clients = Array.from({ length: 4 }, () => new FakeClient());
    for (let round = 0; round < 3; round++) {
      for (const c of clients) {
        c.outbox.push(upd(round));
        sched.mark(c);
      }
    }
    const idle = new FakeClient();
    await nextTurn();
    for (const c of clients) {
      expect(c.flushes).toBe(1);
      expect(c.sink.decoded()).toEqual([[0, 1, 2].map((r) => decode(upd(r)))]);
    }
    expect(idle.flushes).toBe(0);
  });

  it('schedules again for clients marked in a later turn', async () => {
    const sched = new FlushScheduler();
    const c = new FakeClient();
    c.outbox.push(upd(1));
    sched.mark(c);
    await nextTurn();
    c.outbox.push(upd(2));
    sched.mark(c);
    sched.mark(c);
    await nextTurn();
    expect(c.flushes).toBe(2);
    expect(c.sink.decoded()).toEqual([[decode(upd(1))], [decode(upd(2))]]);
  });

  it('flushes a client marked again during its own flush in the next turn, not in a loop', async () => {
    const sched = new FlushScheduler();
    const c = new FakeClient();
    let remarks = 1;
    c.onFlush = () => {
      if (remarks-- > 0) {
        c.outbox.push(upd(99));
        sched.mark(c);
      }
    };
    c.outbox.push(upd(1));
    sched.mark(c);
    await nextTurn();
    expect(c.flushes).toBe(1);
    expect(c.outbox.dirty).toBe(true);
    await nextTurn();
    expect(c.flushes).toBe(2);
    expect(c.sink.decoded()).toEqual([[decode(upd(1))], [decode(upd(99))]]);
  });

  it('run() flushes synchronously (shutdown) and the pending turn then finds nothing', async () => {
    const sched = new FlushScheduler();
    const a = new FakeClient();
    const b = new FakeClient();
    a.outbox.push(upd(1));
    b.outbox.push(upd(2));
    sched.mark(a);
    sched.mark(b);
    sched.run();
    expect(a.flushes).toBe(1);
    expect(b.flushes).toBe(1);
    expect(a.outbox.dirty).toBe(false);
    await nextTurn();
    expect(a.flushes).toBe(1);
    expect(b.flushes).toBe(1);
  });
});

describe('FlushScheduler with a fixed flush interval', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** Queues update `n` for `c` and marks it. */
  const queue = (sched: FlushScheduler, c: FakeClient, n: number) => {
    c.outbox.push(upd(n));
    sched.mark(c);
  };
  async function until(check: () => boolean, ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    while (!check()) {
      if (performance.now() > deadline) throw new Error(`not within ${ms} ms`);
      await sleep(5);
    }
  }

  it('sends the first message at once, then holds what follows until the interval has passed, in one frame', async () => {
    const sched = new FlushScheduler({ intervalMs: 200, adaptive: false });
    const c = new FakeClient();
    queue(sched, c, 1);
    await nextTurn();
    expect(c.flushes).toBe(1);
    for (let i = 2; i <= 4; i++) {
      queue(sched, c, i);
      await nextTurn();
    }
    expect(c.flushes).toBe(1);
    await until(() => c.flushes === 2, 5000);
    // An interval apart, give or take the event loop's cached clock (timers count from the
    // start of the loop iteration that set them); later is fine.
    expect(c.flushedAt[1]! - c.flushedAt[0]!).toBeGreaterThanOrEqual(190);
    expect(c.sink.decoded()).toEqual([[decode(upd(1))], [2, 3, 4].map((i) => decode(upd(i)))]);
    expect(c.outbox.dirty).toBe(false);
  });

  it('flushes in the same turn again after a quiet spell longer than the interval', async () => {
    const sched = new FlushScheduler({ intervalMs: 20, adaptive: false });
    const c = new FakeClient();
    queue(sched, c, 1);
    await nextTurn();
    await sleep(60);
    queue(sched, c, 2);
    await nextTurn();
    expect(c.flushes).toBe(2);
  });

  it('run() flushes at once and cancels the pending timer', async () => {
    const sched = new FlushScheduler({ intervalMs: 100, adaptive: false });
    const c = new FakeClient();
    queue(sched, c, 1);
    await nextTurn();
    queue(sched, c, 2);
    sched.run();
    expect(c.flushes).toBe(2);
    await sleep(150);
    expect(c.flushes).toBe(2);
    // Marked again after the forced flush: scheduled afresh, one interval after it.
    queue(sched, c, 3);
    await until(() => c.flushes === 3, 5000);
  });

  it('rejects a negative interval', () => {
    expect(() => new FlushScheduler({ intervalMs: -1 })).toThrow(/intervalMs: expected a number >= 0, got -1/);
  });
});

describe('FlushScheduler, adaptive', () => {
  const CEILING = 5;
  /** An adaptive scheduler on a manual clock whose utilisation the test sets. */
  function setup(initialLoad: number) {
    const clock = new ManualClock();
    clock.load = initialLoad;
    const load = {
      set value(v: number) {
        clock.load = v;
      },
    };
    const sched = new FlushScheduler({ intervalMs: CEILING, clock });
    sched.start();
    // Let the smoothed load settle on the given utilisation.
    clock.advance(LOAD_SAMPLE_MS * 40);
    return { clock, load, sched };
  }
  /** A client that records the manual clock's time at each flush. */
  class TimedClient extends FakeClient {
    readonly at: number[] = [];
    constructor(private readonly clock: ManualClock) {
      super();
    }
    override flush(): void {
      this.at.push(this.clock.now());
      super.flush();
    }
  }
  const queue = (sched: FlushScheduler, c: FakeClient, n: number) => {
    c.outbox.push(upd(n));
    sched.mark(c);
  };

  it('holds nothing while the loop is idle: every turn flushes', async () => {
    const { sched, clock } = setup(0.05);
    expect(sched.holdMs).toBe(0);
    const c = new TimedClient(clock);
    for (let i = 0; i < 3; i++) {
      queue(sched, c, i);
      await nextTurn();
      clock.advance(1);
    }
    expect(c.flushes).toBe(3);
  });

  it('gives an idle client its first update at once, even at full load', async () => {
    const { sched, clock } = setup(1);
    expect(sched.holdMs).toBe(CEILING);
    const c = new TimedClient(clock);
    queue(sched, c, 1);
    expect(c.flushes).toBe(0);
    await nextTurn();
    expect(c.flushes).toBe(1);
    // Another idle one later: its last frame was long ago.
    clock.advance(CEILING + 1);
    queue(sched, c, 2);
    await nextTurn();
    expect(c.flushes).toBe(2);
  });

  it('coalesces a busy client: what follows a frame within the hold leaves together when the hold has passed', async () => {
    const { sched, clock } = setup(1);
    const c = new TimedClient(clock);
    queue(sched, c, 1);
    await nextTurn();
    const first = c.at[0]!;
    for (let i = 2; i <= 4; i++) {
      clock.advance(1);
      queue(sched, c, i);
      await nextTurn();
    }
    expect(c.flushes).toBe(1);
    clock.advance(CEILING);
    expect(c.flushes).toBe(2);
    expect(c.at[1]! - first).toBeLessThanOrEqual(CEILING);
    expect(c.at[1]! - first).toBeGreaterThanOrEqual(CEILING - 1);
    expect(c.sink.decoded()).toEqual([[decode(upd(1))], [2, 3, 4].map((i) => decode(upd(i)))]);
  });

  it('scales the hold with load between the two thresholds', () => {
    const mid = (HOLD_FROM_LOAD + HOLD_FULL_LOAD) / 2;
    const { sched, load, clock } = setup(mid);
    expect(sched.holdMs).toBeCloseTo(CEILING / 2, 5);
    load.value = 0;
    clock.advance(LOAD_SAMPLE_MS * 20);
    expect(sched.holdMs).toBe(0);
  });

  it('never holds a frame longer than the ceiling, whatever the load does, and loses nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ client: fc.nat(3), gap: fc.integer({ min: 0, max: 7 }), load: fc.double({ min: 0, max: 1, noNaN: true }), again: fc.boolean() }), { minLength: 1, maxLength: 60 }),
        async (steps) => {
          const { sched, clock, load } = setup(0.5);
          const clients = Array.from({ length: 4 }, () => new TimedClient(clock));
          /** Clients that queue one more message from inside their next flush (as a close reply does). */
          const again = new Set<number>();
          /** For each client, when its oldest unsent message was queued. */
          const oldest: (number | null)[] = clients.map(() => null);
          const sent = clients.map(() => 0);
          let n = 0;
          clients.forEach((c, i) => {
            c.onFlush = () => {
              // What this flush sent is checked first, then the message queued inside it starts a new wait.
              expect(c.at[c.at.length - 1]! - oldest[i]!).toBeLessThanOrEqual(CEILING);
              sent[i] = c.flushes;
              oldest[i] = null;
              if (!again.delete(i)) return;
              oldest[i] = clock.now();
              queue(sched, c, n++);
            };
          });
          const observe = () => {
            clients.forEach((c, i) => {
              if (c.flushes > sent[i]!) {
                expect(c.at[c.at.length - 1]! - oldest[i]!).toBeLessThanOrEqual(CEILING);
                sent[i] = c.flushes;
                oldest[i] = null;
              }
            });
          };
          for (const step of steps) {
            load.value = step.load;
            // Advance one millisecond at a time, so that each held client's due time is seen.
            for (let t = 0; t < step.gap; t++) {
              clock.advance(1);
              observe();
            }
            const c = clients[step.client]!;
            if (step.again) again.add(step.client);
            if (oldest[step.client] === null) oldest[step.client] = clock.now();
            queue(sched, c, n++);
            await nextTurn();
            observe();
          }
          again.clear();
          await nextTurn();
          clock.advance(CEILING);
          await nextTurn();
          clock.advance(CEILING);
          observe();
          // Every message arrived, each on its own, in order per client.
          const total = clients.reduce((s, c) => s + c.sink.decoded().flat().length, 0);
          expect(total).toBe(n);
          for (const c of clients) expect(c.outbox.dirty).toBe(false);
          sched.stop();
        },
      ),
      { numRuns: 100 },
    );
  });

  it('run() flushes held clients too', async () => {
    const { sched, clock } = setup(1);
    const c = new TimedClient(clock);
    queue(sched, c, 1);
    await nextTurn();
    queue(sched, c, 2);
    expect(c.flushes).toBe(1);
    sched.run();
    expect(c.flushes).toBe(2);
  });
});
