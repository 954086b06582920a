import { describe, it, expect } from 'vitest';
import { MarketSim, type SimTick } from './market-sim.js';

const FULL_STATE = ['bid', 'ask', 'bidSize', 'askSize', 'last', 'lastSize', 'volume', 'open', 'high', 'low', 'close'] as const;
type Field = (typeof FULL_STATE)[number];
type State = Omit<SimTick, 'seq'>;

function run(sim: MarketSim, count: number, t0 = 1_700_000_000_000): SimTick[] {
  const out: SimTick[] = [];
  for (let i = 0; i < count; i++) out.push(sim.next(t0 + i));
  return out;
}

/** Most decimals a price of this symbol may have; crypto ticks scale with the price, up to 8 decimals. */
function maxDecimals(symbol: string): number {
  if (symbol === 'BTC/USDT' || symbol === 'ETH/USDT') return 2;
  if (symbol.endsWith('/USDT') || symbol.endsWith('/USDC') || symbol.endsWith('/BTC')) return 8;
  if (symbol.includes('/')) return symbol.includes('JPY') ? 3 : 5;
  return 2;
}

function onGrid(price: number, decimals: number): boolean {
  return Number(price.toFixed(decimals)) === price;
}

describe('MarketSim universe', () => {
  it.each([1, 7, 2000, 100_000])('has exactly %i unique, well-formed symbols', (n) => {
    const sim = new MarketSim({ symbols: n, seed: 1 });
    expect(sim.symbols).toHaveLength(n);
    expect(new Set(sim.symbols).size).toBe(n);
    for (const s of sim.symbols) expect(s).toMatch(/^[A-Z]+(\.[A-Z]|\/[A-Z]+)?$/);
  });

  it('leads with well-known names across asset classes', () => {
    const sim = new MarketSim({ symbols: 7, seed: 1 });
    expect(sim.symbols.slice(0, 4)).toEqual(['AAPL', 'EUR/USD', 'BTC/USDT', 'MSFT']);
  });

  it('mixes plain, dotted, FX and crypto names', () => {
    const syms = new MarketSim({ symbols: 2000, seed: 1 }).symbols;
    expect(syms).toContain('BRK.B');
    expect(syms).toContain('USD/JPY');
    expect(syms).toContain('ETH/USDT');
    expect(syms.filter((s) => /^[A-Z]{3,5}$/.test(s)).length).toBeGreaterThan(1500);
    expect(syms.filter((s) => /^[A-Z]{4}\.B$/.test(s)).length).toBeGreaterThan(0);
  });

  it('names do not depend on the seed', () => {
    expect(new MarketSim({ symbols: 500, seed: 1 }).symbols).toEqual(new MarketSim({ symbols: 500, seed: 99 }).symbols);
  });

  it('rejects invalid options naming the key', () => {
    expect(() => new MarketSim({ symbols: 0, seed: 1 })).toThrow(/symbols/);
    expect(() => new MarketSim({ symbols: 1.5, seed: 1 })).toThrow(/symbols/);
    expect(() => new MarketSim({ symbols: 1_000_001, seed: 1 })).toThrow(/symbols/);
    expect(() => new MarketSim({ symbols: 10, seed: 0.5 })).toThrow(/seed/);
    expect(() => new MarketSim({ symbols: 10, seed: 1, zipf: -1 })).toThrow(/zipf/);
    expect(() => new MarketSim({ symbols: 10, seed: 1, tradeRatio: 1.2 })).toThrow(/tradeRatio/);
    expect(() => new MarketSim({ symbols: 10, seed: 1, tradeRatio: NaN })).toThrow(/tradeRatio/);
  });
});

describe('MarketSim determinism', () => {
  it('replays the same ticks for the same seed', () => {
    const a = run(new MarketSim({ symbols: 300, seed: 42 }), 20_000);
    const b = run(new MarketSim({ symbols: 300, seed: 42 }), 20_000);
    expect(a).toEqual(b);
  });

  it('produces different ticks for a different seed', () => {
    const a = run(new MarketSim({ symbols: 300, seed: 42 }), 1000);
    const b = run(new MarketSim({ symbols: 300, seed: 43 }), 1000);
    expect(a).not.toEqual(b);
  });

  it('accepts negative and large seeds deterministically', () => {
    for (const seed of [-7, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]) {
      expect(run(new MarketSim({ symbols: 50, seed }), 500)).toEqual(run(new MarketSim({ symbols: 50, seed }), 500));
    }
  });
});

describe('MarketSim ticks', () => {
  const TICKS = 200_000;
  const sim = new MarketSim({ symbols: 2000, seed: 7 });
  const ticks = run(sim, TICKS);
  const folded = new Map<string, State>();
  const violations: string[] = [];
  let trades = 0;
  let later = 0;

  // Fold every tick while checking it against the state before it, collecting violations.
  for (const t of ticks) {
    const fail = (what: string): void => {
      if (violations.length < 20) violations.push(`${t.s} seq ${t.seq}: ${what} ${JSON.stringify(t)}`);
    };
    const prev = folded.get(t.s);
    const { seq, ...fields } = t;
    const keys = Object.keys(fields).filter((k) => k !== 's' && k !== 'ts') as Field[];
    if (prev === undefined) {
      if (seq !== 1) fail('first seq is not 1');
      if (keys.length !== FULL_STATE.length || !FULL_STATE.every((f) => t[f] !== undefined)) fail('first tick not full');
      folded.set(t.s, { ...fields });
      continue;
    }
    later++;
    if (keys.length === 0) fail('empty tick');
    for (const k of keys) if (t[k] === prev[k]) fail(`unchanged ${k} sent`);
    if (t.open !== undefined || t.close !== undefined) fail('open/close resent');
    const isTrade = t.volume !== undefined;
    if (isTrade) {
      trades++;
      if (!(t.volume! > prev.volume!)) fail('volume not increasing');
      if (t.bid !== undefined || t.ask !== undefined || t.bidSize !== undefined || t.askSize !== undefined) {
        fail('quote fields in a trade');
      }
    } else if (t.last !== undefined || t.lastSize !== undefined || t.high !== undefined || t.low !== undefined) {
      fail('trade fields without volume');
    }
    Object.assign(prev, fields);
    if (isTrade && !(prev.last! >= prev.bid! && prev.last! <= prev.ask!)) fail('trade outside the touch');
  }

  it('numbers each symbol 1, 2, 3, ...', () => {
    const next = new Map<string, number>();
    const gaps: string[] = [];
    for (const t of ticks) {
      const want = (next.get(t.s) ?? 0) + 1;
      if (t.seq !== want && gaps.length < 20) gaps.push(`${t.s}: ${t.seq} instead of ${want}`);
      next.set(t.s, want);
    }
    expect(gaps).toEqual([]);
  });

  it('sends full state first and only changed fields after', () => {
    expect(violations).toEqual([]);
    expect(later).toBeGreaterThan(TICKS / 2);
  });

  it('keeps quotes, trades and session fields consistent', () => {
    const bad: string[] = [];
    const state = new Map<string, State>();
    for (const t of ticks) {
      const st = state.get(t.s);
      const { seq: _seq, ...fields } = t;
      const cur: State = st === undefined ? { ...fields } : Object.assign(st, fields);
      state.set(t.s, cur);
      const d = maxDecimals(t.s);
      const prices = [cur.bid!, cur.ask!, cur.last!, cur.open!, cur.high!, cur.low!, cur.close!];
      const sizes = [cur.bidSize!, cur.askSize!, cur.lastSize!, cur.volume!];
      const ok =
        cur.bid! < cur.ask! &&
        prices.every((p) => p > 0 && onGrid(p, d)) &&
        sizes.every((x) => Number.isSafeInteger(x) && x > 0) &&
        cur.high! >= cur.low! &&
        cur.last! >= cur.low! &&
        cur.last! <= cur.high! &&
        cur.open! >= cur.low! &&
        cur.open! <= cur.high! &&
        cur.volume! >= cur.lastSize!;
      if (!ok && bad.length < 20) bad.push(`${t.s} seq ${t.seq}: ${JSON.stringify(cur)}`);
    }
    expect(bad).toEqual([]);
  });

  it('trades at about tradeRatio', () => {
    expect(trades / later).toBeGreaterThan(0.28);
    expect(trades / later).toBeLessThan(0.32);
  });

  it('stateOf equals the fold of all emitted ticks', () => {
    const fold = new Map<string, State>();
    for (const t of ticks) {
      const { seq: _seq, ...fields } = t;
      fold.set(t.s, Object.assign(fold.get(t.s) ?? {}, fields) as State);
    }
    for (const s of sim.symbols) expect(sim.stateOf(s)).toEqual(fold.get(s));
    expect(sim.stateOf('NOT A SYMBOL')).toBeUndefined();
  });

  it('keeps prices near their previous close over a long run', () => {
    for (const s of ['AAPL', 'EUR/USD', 'USD/JPY', 'BTC/USDT']) {
      const st = sim.stateOf(s)!;
      const move = Math.abs(st.last! / st.close! - 1);
      expect(move).toBeLessThan(0.3);
    }
  });

  it('uses asset-class tick sizes', () => {
    const a = sim.stateOf('EUR/USD')!;
    const j = sim.stateOf('USD/JPY')!;
    expect(a.bid! > 0.5 && a.bid! < 2).toBe(true);
    expect(j.bid! > 50 && j.bid! < 300).toBe(true);
    expect(onGrid(a.ask!, 5) && onGrid(j.ask!, 3)).toBe(true);
    // FX sizes are in round millions.
    expect(a.bidSize! % 1_000_000).toBe(0);
  });
});

describe('MarketSim Zipf activity', () => {
  function counts(zipf: number, n: number, draws: number): number[] {
    const sim = new MarketSim({ symbols: n, seed: 3, zipf });
    const rank = new Map(sim.symbols.map((s, i) => [s, i]));
    const c = new Array<number>(n).fill(0);
    for (let i = 0; i < draws; i++) {
      const r = rank.get(sim.next(i).s)!;
      c[r] = c[r]! + 1;
    }
    return c;
  }

  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

  it('skews activity to the top ranks with zipf 1.1', () => {
    const n = 2000;
    const draws = 200_000;
    const c = counts(1.1, n, draws);
    expect(c[0]!).toBeGreaterThan(100 * Math.max(1, median(c)));
    // Rank 1's share matches 1 / H(n, 1.1) within 5%.
    let h = 0;
    for (let r = 1; r <= n; r++) h += r ** -1.1;
    expect(Math.abs(c[0]! / draws - 1 / h) / (1 / h)).toBeLessThan(0.05);
    expect(c[0]!).toBeGreaterThan(c[9]!);
    expect(c[9]!).toBeGreaterThan(c[99]!);
  });

  it('is roughly uniform with zipf 0', () => {
    const n = 2000;
    const c = counts(0, n, 200_000);
    // Expected 100 per symbol, Poisson stdev 10.
    expect(Math.min(...c)).toBeGreaterThan(50);
    expect(Math.max(...c)).toBeLessThan(150);
    expect(c[0]! / median(c)).toBeLessThan(1.5);
  });
});
