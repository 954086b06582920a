import { describe, it, expect } from 'vitest';
import { encode } from '@msgpack/msgpack';
import { parseFrame } from './protocol.ts';
import { SyntheticTape, tradeCount, type FeedTrade } from './trade-feed.ts';
import { TradeTape, tradeMessageError, tradeSubRequest, type Trade } from './trades.ts';
import { prng } from './protocol.ts';

const tr = (s: string, q: number, id?: number | string): Trade => ({ t: 'trade', s, q, px: 1, sz: 1, ...(id === undefined ? {} : { id }) });

describe('parseFrame with trades', () => {
  it('passes well-formed trade and gap messages', () => {
    const r = parseFrame(encode([tr('A', 1000, 7), { t: 'trade', s: 'A', q: 1001, px: 1.5, sz: 2, side: 's', id: 'T-1', ts: 1.5 }, { t: 'gap', s: 'A', from: 1001, to: 5000 }]));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.messages.map((m) => m.t)).toEqual(['trade', 'trade', 'gap']);
  });

  it('reports malformed ones', () => {
    const bad = [
      { t: 'trade', q: 1, px: 1, sz: 1 },
      { t: 'trade', s: 'A', q: '1', px: 1, sz: 1 },
      { t: 'trade', s: 'A', q: 1, sz: 1 },
      { t: 'trade', s: 'A', q: 1, px: 1, sz: 1, side: 'x' },
      { t: 'trade', s: 'A', q: 1, px: 1, sz: 1, id: [1] },
      { t: 'trade', s: 'A', q: 1, px: 1, sz: 1, ts: '1' },
      { t: 'gap', s: 'A', from: 5, to: 5 },
      { t: 'gap', s: 'A', from: 5 },
    ];
    for (const m of bad) {
      expect(parseFrame(encode([m])).ok, JSON.stringify(m)).toBe(false);
      expect(tradeMessageError(m as never)).not.toBeNull();
    }
  });
});

describe('tradeSubRequest', () => {
  it('names the channel, and since, last and throttleMs only when set', () => {
    expect(JSON.parse(tradeSubRequest('t', ['A']))).toEqual({ op: 'sub', id: 't', channel: 'trade', symbols: ['A'] });
    expect(JSON.parse(tradeSubRequest(1, ['A', 'B'], { since: { A: { e: 'E', q: 5 } }, last: 10, throttleMs: 50 }))).toEqual({
      op: 'sub',
      id: 1,
      channel: 'trade',
      symbols: ['A', 'B'],
      since: { A: { e: 'E', q: 5 } },
      last: 10,
      throttleMs: 50,
    });
    expect(JSON.parse(tradeSubRequest(1, ['A'], { since: {}, last: 0, throttleMs: 0 }))).toEqual({ op: 'sub', id: 1, channel: 'trade', symbols: ['A'] });
  });
});

describe('TradeTape', () => {
  it('subscribes fresh first, then resumes with the position of the last trade', () => {
    const tape = new TradeTape('q');
    expect(JSON.parse(tape.request('t', ['A', 'B']))).toEqual({ op: 'sub', id: 't', channel: 'trade', symbols: ['A', 'B'] });
    expect(tape.acked({ ok: ['A', 'B'], pos: { A: { e: 'E', q: 10 }, B: { e: 'E', q: 0 } } })).toEqual({ recovered: [], notRecovered: [] });
    expect(tape.apply(tr('A', 11))).toEqual({ kind: 'ok' });
    expect(tape.apply(tr('A', 12))).toEqual({ kind: 'ok' });
    expect(JSON.parse(tape.request('t', ['A', 'B'])).since).toEqual({ A: { e: 'E', q: 12 }, B: { e: 'E', q: 0 } });
    // Recovered: the position held stays, and the next trade must follow it.
    expect(tape.acked({ ok: ['A', 'B'], pos: { A: { e: 'E', q: 20 }, B: { e: 'E', q: 0 } }, rec: { A: true, B: true } })).toEqual({ recovered: ['A', 'B'], notRecovered: [] });
    expect(tape.position('A')).toEqual({ e: 'E', q: 12 });
    expect(tape.apply(tr('A', 13))).toEqual({ kind: 'ok' });
  });

  it('by position (q): finds duplicates and skips, and moves past a gap or rec false', () => {
    const tape = new TradeTape('q');
    tape.acked({ ok: ['A'], pos: { A: { e: 'E', q: 0 } } });
    expect(tape.apply(tr('A', 1))).toEqual({ kind: 'ok' });
    expect(tape.apply(tr('A', 1))).toEqual({ kind: 'duplicate' });
    expect(tape.apply(tr('A', 4))).toEqual({ kind: 'missing', n: 2 });
    expect(tape.position('A')).toEqual({ e: 'E', q: 4 });
    // A gap announces the loss: the next trade after it is in order.
    expect(tape.gap({ t: 'gap', s: 'A', from: 4, to: 9 })).toBe(5);
    expect(tape.apply(tr('A', 10))).toEqual({ kind: 'ok' });
    // Not recovered: the acked position, then trades after it.
    expect(tape.acked({ ok: ['A'], pos: { A: { e: 'F', q: 3 } }, rec: { A: false } })).toEqual({ recovered: [], notRecovered: ['A'] });
    expect(tape.position('A')).toEqual({ e: 'F', q: 3 });
    expect(tape.apply(tr('A', 4))).toEqual({ kind: 'ok' });
    // A symbol resumed but left out of rec is not recovered either.
    expect(tape.acked({ ok: ['A'], pos: { A: { e: 'F', q: 9 } }, rec: {} }).notRecovered).toEqual(['A']);
    expect(tape.apply(tr('B', 1))).toEqual({ kind: 'orphan' });
  });

  it('by id: positions may skip, ids may not', () => {
    const tape = new TradeTape('id');
    tape.acked({ ok: ['A'], pos: { A: { e: 'S', q: 5000 } } });
    // The first id after a fresh sub is the baseline; JetStream-like positions skip freely.
    expect(tape.apply(tr('A', 7000, 41))).toEqual({ kind: 'ok' });
    expect(tape.apply(tr('A', 7001, 42))).toEqual({ kind: 'ok' });
    expect(tape.apply(tr('A', 9000, 43))).toEqual({ kind: 'ok' });
    expect(tape.apply(tr('A', 9000, 43))).toEqual({ kind: 'duplicate' });
    expect(tape.apply(tr('A', 9500, 43))).toEqual({ kind: 'duplicate' });
    expect(tape.apply(tr('A', 9600, 47))).toEqual({ kind: 'missing', n: 3 });
    expect(tape.apply(tr('A', 9700, 'T-1'))).toEqual({ kind: 'unchecked' });
    // After an unchecked trade, or a gap, the next id is a new baseline.
    expect(tape.apply(tr('A', 9800, 100))).toEqual({ kind: 'ok' });
    tape.gap({ t: 'gap', s: 'A', from: 9800, to: 12_000 });
    expect(tape.apply(tr('A', 13_000, 300))).toEqual({ kind: 'ok' });
    expect(tape.apply(tr('A', 13_001, 301))).toEqual({ kind: 'ok' });
    // A resume across gateways (same stream epoch): ids go on.
    expect(tape.acked({ ok: ['A'], pos: { A: { e: 'S', q: 20_000 } }, rec: { A: true } }).recovered).toEqual(['A']);
    expect(tape.apply(tr('A', 14_000, 303))).toEqual({ kind: 'missing', n: 1 });
  });

  it('with none: duplicates only', () => {
    const tape = new TradeTape('none');
    tape.acked({ ok: ['A'], pos: { A: { e: 'E', q: 0 } } });
    expect(tape.apply(tr('A', 1000))).toEqual({ kind: 'ok' });
    expect(tape.apply(tr('A', 5000))).toEqual({ kind: 'ok' });
    expect(tape.apply(tr('A', 5000))).toEqual({ kind: 'duplicate' });
  });

  it('over the synthetic feed, resuming at random points, finds nothing wrong; dropping or repeating one trade is found', () => {
    const feed = new SyntheticTape(prng(3));
    // A gateway that numbers trades itself, and keeps them all.
    const history: Trade[] = [];
    for (let k = 0; k < 2000; k++) {
      const m = feed.message('A', k);
      const list: FeedTrade[] = 'trades' in m ? m.trades : [m];
      for (const t of list) history.push({ t: 'trade', s: 'A', q: history.length + 1, ...t });
    }
    for (const sequence of ['q', 'id'] as const) {
      const tape = new TradeTape(sequence);
      tape.acked({ ok: ['A'], pos: { A: { e: 'E', q: 0 } } });
      const rand = prng(9);
      let at = 0;
      while (at < history.length) {
        // A connection gets some trades, then drops; the resume sends every trade after the position.
        const n = 1 + Math.floor(rand() * 200);
        for (const t of history.slice(at, at + n)) expect(tape.apply(t)).toEqual({ kind: 'ok' });
        at = Math.min(history.length, at + n);
        const since = JSON.parse(tape.request('t', ['A'])).since.A as { q: number };
        expect(since.q).toBe(at);
        tape.acked({ ok: ['A'], pos: { A: { e: 'E', q: history.length } }, rec: { A: true } });
      }
      const lossy = new TradeTape(sequence);
      lossy.acked({ ok: ['A'], pos: { A: { e: 'E', q: 0 } } });
      const kinds = [...history.slice(0, 100), ...history.slice(101, 300), history[299]!, ...history.slice(300, 400)].map((t) => lossy.apply(t).kind);
      expect(kinds.filter((k) => k !== 'ok'), sequence).toEqual(['missing', 'duplicate']);
    }
  });
});

describe('SyntheticTape', () => {
  it('numbers each symbol 1, 2, 3, ... across single trades and batches, and repeats with its seed', () => {
    const run = (seed: number) => {
      const feed = new SyntheticTape(prng(seed));
      const ids: Record<string, number[]> = { A: [], B: [] };
      const msgs = [];
      for (let k = 0; k < 1000; k++) {
        const s = k % 3 === 0 ? 'B' : 'A';
        const m = feed.message(s, 1_764_100_000_000 + k);
        msgs.push(m);
        const list = 'trades' in m ? m.trades : [m];
        expect(list.length).toBe(tradeCount(m));
        for (const t of list) {
          ids[s]!.push(t.id);
          expect(t.ts).toBe(1_764_100_000_000 + k);
          expect(['b', 's']).toContain(t.side);
          expect(t.sz).toBeGreaterThan(0);
          expect(Math.round(t.px * 100) / 100).toBe(t.px);
        }
      }
      for (const s of ['A', 'B']) expect(ids[s]).toEqual(Array.from({ length: ids[s]!.length }, (_, i) => i + 1));
      expect(feed.published('A')).toBe(ids['A']!.length);
      return { msgs, batches: msgs.filter((m) => 'trades' in m).length };
    };
    const r = run(4);
    expect(r.batches).toBeGreaterThan(50);
    expect(r.batches).toBeLessThan(200);
    expect(run(4).msgs).toEqual(r.msgs);
    expect(run(5).msgs).not.toEqual(r.msgs);
  });
});
