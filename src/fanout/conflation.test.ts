/**
 * Property tests of conflation: a hub with sessions whose socket buffer is
 * driven by the test (above or below the water marks), random ticks, random
 * drain points. Frames are decoded with a standard MessagePack decoder and
 * replayed as a client would.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { Normalizer, type Tick } from '../feed/normalize.js';
import { createLogger } from '../log.js';
import { CANONICAL_FIELDS } from '../protocol/fields.js';
import { ManualClock } from '../clock.js';
import { Hub } from './hub.js';
import { RecordingSocket } from '../../test/helpers/recording-socket.js';

type Msg = { t: string; s?: string; q?: number; d?: Record<string, number>; n?: number };

class ScriptedSocket extends RecordingSocket<Msg> {}

/** A client's view: snap replaces, upd merges; records every ordering violation. */
function replay(messages: Msg[]) {
  const held = new Map<string, { q: number; d: Record<string, number> }>();
  const violations: string[] = [];
  for (const m of messages) {
    if (m.t === 'snap') held.set(m.s!, { q: m.q!, d: { ...m.d } });
    if (m.t === 'upd') {
      const h = held.get(m.s!);
      if (!h) violations.push(`upd before snap ${m.s}`);
      else {
        if (m.q! <= h.q) violations.push(`q ${m.q} <= ${h.q} for ${m.s}`);
        h.q = m.q!;
        Object.assign(h.d, m.d);
      }
    }
  }
  return { held, violations };
}

const SYMBOLS = ['A', 'B', 'C'];
const HIGH = 4096;
const LOW = 1024;

function setup(throttleMs = 0, clock = new ManualClock(1_000_000)) {
  const config = loadConfig({
    env: {},
    overrides: {
      backpressure: { highWaterBytes: HIGH, lowWaterBytes: LOW, maxBufferedBytes: 1 << 30, slowConsumerMs: 0 },
      throttle: { minMs: 1, maxMs: 1000 },
      ws: { heartbeatMs: 600_000 },
    },
  });
  const hub = new Hub(config, createLogger('silent', false), clock);
  const norm = new Normalizer({ name: 'sim', kind: 'quote', subject: 'x', codec: 'json', symbolField: 's', symbolToken: null, fields: {}, queue: null, staleAfterMs: 10_000, jetstream: null, volume: false });
  const fast = new ScriptedSocket();
  const slow = new ScriptedSocket();
  const sessions = [hub.openSession(fast), hub.openSession(slow)];
  const sub = new TextEncoder().encode(JSON.stringify({ op: 'sub', symbols: SYMBOLS, throttleMs }));
  sessions[1]!.onMessage(sub.buffer as ArrayBuffer, false);
  const plain = new TextEncoder().encode(JSON.stringify({ op: 'sub', symbols: SYMBOLS }));
  sessions[0]!.onMessage(plain.buffer as ArrayBuffer, false);
  hub.scheduler.run();
  return { hub, norm, fast, slow, slowSession: sessions[1]! };
}

/** Random ticks: a symbol and a random non-empty subset of fields. */
const tickArb = fc.record({
  s: fc.constantFrom(...SYMBOLS),
  fields: fc.dictionary(fc.constantFrom(...CANONICAL_FIELDS), fc.integer({ min: -5, max: 5 }), { minKeys: 1 }),
});

const stepArb = fc.oneof(
  { weight: 6, arbitrary: tickArb.map((t) => ({ kind: 'tick' as const, ...t })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'turn' as const }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 500, 2000, 5000).map((b) => ({ kind: 'buffer' as const, bytes: b })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'drain' as const }) },
);

function applyTick(hub: Hub, norm: Normalizer, t: { s: string; fields: Record<string, number> }) {
  const r = norm.fromObject('x', { s: t.s, ...t.fields });
  if (typeof r !== 'string') hub.onTick(r as Tick, 'sim');
}

/** The gateway's own state, as a client would hold it. */
function gatewayState(hub: Hub, symbol: string) {
  const st = hub.store.get(symbol);
  if (!st) return undefined;
  return { q: st.q, d: st.fields() };
}

describe('conflation under backpressure', () => {
  it('always converges, keeps q strictly increasing, and never delays the fast client', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 120 }), (steps) => {
        const { hub, norm, fast, slow, slowSession } = setup();
        let ticksForFast = 0;
        for (const step of steps) {
          if (step.kind === 'tick') {
            const before = hub.counters.stateUpdates;
            applyTick(hub, norm, step);
            ticksForFast += hub.counters.stateUpdates - before;
          } else if (step.kind === 'turn') hub.scheduler.run();
          else if (step.kind === 'buffer') slow.buffered = step.bytes;
          else slowSession.onDrain();
        }
        // The feed goes quiet and the slow client catches up.
        hub.scheduler.run();
        slow.buffered = 0;
        slowSession.onDrain();
        hub.scheduler.run();

        for (const sock of [fast, slow]) {
          const { held, violations } = replay(sock.messages);
          expect(violations).toEqual([]);
          for (const s of SYMBOLS) expect(held.get(s)).toEqual(gatewayState(hub, s));
        }
        // The fast client got every state change, one upd or snap each, none merged.
        const fastData = fast.messages.filter((m) => m.t === 'upd' || m.t === 'snap');
        expect(fastData.length).toBe(ticksForFast);
        expect(fastData.every((m) => m.n === undefined)).toBe(true);
        // Every tick the slow client did not get one by one is counted.
        const slowData = slow.messages.filter((m) => m.t === 'upd' || m.t === 'snap');
        const merged = slowData.reduce((k, m) => k + (m.n ?? 1) - 1, 0);
        expect(hub.counters.conflated.backpressure).toBeGreaterThanOrEqual(merged);
        expect(slowData.length + hub.counters.conflated.backpressure).toBe(ticksForFast);
        expect(hub.counters.conflatingNow).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('holds one pending delta per symbol whatever the tick count', () => {
    const { hub, norm, slow, slowSession } = setup();
    applyTick(hub, norm, { s: 'A', fields: { bid: 1 } });
    hub.scheduler.run();
    slow.buffered = HIGH; // crosses the high water mark at the next flush
    applyTick(hub, norm, { s: 'A', fields: { bid: 2 } });
    hub.scheduler.run();
    expect(slowSession.conflating).toBe(true);
    const sent = slow.messages.length;
    for (let i = 0; i < 10_000; i++) applyTick(hub, norm, { s: SYMBOLS[i % 3]!, fields: { bid: i, ask: i + 1 } });
    hub.scheduler.run();
    // Nothing was queued for the slow client while it was behind.
    expect(slow.messages.length).toBe(sent);
    expect(slowSession.outbox.length).toBe(0);
    for (const sub of slowSession.subscriptions()) expect(sub.pendingN).toBeGreaterThan(3000);
    slow.buffered = LOW - 1;
    slowSession.onDrain();
    hub.scheduler.run();
    const merged = slow.messages.slice(sent);
    // A had state before: one merged upd. B and C first ticked while the
    // client was behind: their first message is the snap, sent on catch-up.
    expect(merged.map((m) => [m.t, m.s]).sort()).toEqual([
      ['snap', 'B'],
      ['snap', 'C'],
      ['upd', 'A'],
    ]);
    expect(merged.find((m) => m.t === 'upd')!.n).toBeGreaterThan(3000);
  });
});

describe('throttled subscriptions', () => {
  it('deliver at most once per interval on the clock grid, and converge', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ dt: fc.integer({ min: 0, max: 40 }), tick: tickArb }), { minLength: 1, maxLength: 150 }),
        fc.constantFrom(20, 50, 100),
        (events, throttleMs) => {
          const clock = new ManualClock(1_000_000);
          const { hub, norm, slow } = setup(throttleMs, clock);
          let now = 1_000_000;
          const deliveredAt = new Map<string, number[]>();
          const record = (from: number) => {
            for (const m of slow.messages.slice(from)) {
              if (m.t !== 'upd') continue;
              const list = deliveredAt.get(m.s!) ?? [];
              list.push(now);
              deliveredAt.set(m.s!, list);
            }
          };
          for (const e of events) {
            now += e.dt;
            clock.advance(e.dt);
            const before = slow.messages.length;
            hub.throttle.fire(now);
            hub.scheduler.run();
            record(before);
            // ticks arrive between wheel checks; the wheel is driven by `now`
            applyTick(hub, norm, e.tick);
            hub.scheduler.run();
          }
          // Quiet: one more interval delivers what is left.
          now += throttleMs;
          const before = slow.messages.length;
          hub.throttle.fire(now);
          hub.scheduler.run();
          record(before);
          const { held, violations } = replay(slow.messages);
          expect(violations).toEqual([]);
          for (const s of SYMBOLS) expect(held.get(s)).toEqual(gatewayState(hub, s));
          for (const times of deliveredAt.values()) {
            const slots = times.map((t) => Math.floor(t / throttleMs));
            expect(new Set(slots).size).toBe(slots.length); // one upd per grid slot at most
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
