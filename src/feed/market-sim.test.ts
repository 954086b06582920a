import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { MarketSim, type SimBook, type SimLevel, type SimTick, type SimTrade, type SimTradeMessage } from './market-sim.js';

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

describe('MarketSim books', () => {
  type Side = Map<number, number>;
  interface ClientBook {
    bids: Side;
    asks: Side;
    seq: number;
  }

  /**
   * Applies book messages (interleaved with ticks, as a feed mixes them) the
   * way the gateway does, checking each against the contract; returns the
   * first violations found, the books and the messages.
   */
  function check(sim: MarketSim, steps: ReadonlyArray<'tick' | 'book'>, t0 = 1_700_000_000_000) {
    const books = new Map<string, ClientBook>();
    const messages: SimBook[] = [];
    const bad: string[] = [];
    const fail = (m: SimBook, what: string) => {
      if (bad.length < 10) bad.push(`${m.s} seq ${m.seq}: ${what}`);
    };
    steps.forEach((step, i) => {
      if (step === 'tick') {
        sim.next(t0 + i);
        return;
      }
      const m = sim.nextBook(t0 + i);
      messages.push(m);
      const d = maxDecimals(m.s);
      let b = books.get(m.s);
      if (b === undefined) {
        if (m.seq !== 1 || m.snapshot !== true) fail(m, 'first message is not a snapshot with seq 1');
        b = { bids: new Map(), asks: new Map(), seq: 0 };
        books.set(m.s, b);
      }
      if (m.seq !== b.seq + 1) fail(m, `seq after ${b.seq}`);
      b.seq = m.seq;
      for (const [name, levels, side, dir] of [
        ['bids', m.bids, b.bids, -1],
        ['asks', m.asks, b.asks, 1],
      ] as const) {
        const prices = levels.map(([p]) => p);
        if (new Set(prices).size !== prices.length) fail(m, `duplicate price in ${name}`);
        if (prices.some((p, j) => j > 0 && dir * (p - prices[j - 1]!) <= 0)) fail(m, `${name} not best first`);
        if (m.snapshot) {
          side.clear();
          if (levels.length === 0) fail(m, `empty ${name} in a snapshot`);
          if (levels.some(([, s]) => !(s > 0))) fail(m, `size <= 0 in a snapshot's ${name}`);
        }
        for (const [p, s] of levels) {
          if (!(p > 0 && onGrid(p, d))) fail(m, `price ${p} off the grid`);
          if (!Number.isSafeInteger(s) || s < 0) fail(m, `size ${s}`);
          if (!m.snapshot && (side.get(p) ?? 0) === s) fail(m, `${name} ${p}: no change (size ${s})`);
          if (s === 0) side.delete(p);
          else side.set(p, s);
        }
      }
      if (!m.snapshot && m.bids.length + m.asks.length === 0) fail(m, 'empty change');
      const bestBid = Math.max(...b.bids.keys());
      const bestAsk = Math.min(...b.asks.keys());
      // Never crossed: no auctions are simulated.
      if (!(bestBid < bestAsk)) fail(m, `crossed: ${bestBid} >= ${bestAsk}`);
      // The touch is the quote, once the symbol has one.
      const q = sim.stateOf(m.s);
      if (q !== undefined && (q.bid !== bestBid || q.ask !== bestAsk)) fail(m, `touch ${bestBid}/${bestAsk}, quote ${q.bid}/${q.ask}`);
    });
    return { bad, books, messages };
  }

  const sorted = (side: Map<number, number>, dir: 1 | -1): SimLevel[] => [...side].sort((a, b) => dir * (a[0] - b[0]));

  it('keeps every book consistent: snapshot first, consecutive seq, no duplicates, never crossed, touch = quote', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1000, max: 1_000_000 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.constantFrom<'tick' | 'book'>('tick', 'book', 'book'), { minLength: 1, maxLength: 3000 }),
        (seed, symbols, books, steps) => {
          const sim = new MarketSim({ symbols, seed, books: Math.min(books, symbols) });
          const { bad, books: got } = check(sim, steps);
          expect(bad).toEqual([]);
          // The client's books are the simulator's.
          for (const [s, b] of got) expect({ bids: sorted(b.bids, -1), asks: sorted(b.asks, 1) }).toEqual(sim.bookOf(s));
        },
      ),
      { numRuns: 60 },
    );
  });

  describe('over a long run', () => {
    const sim = new MarketSim({ symbols: 500, seed: 11, books: 50 });
    const steps: Array<'tick' | 'book'> = [];
    // Like the embedded feed: as many book messages as ticks.
    for (let i = 0; i < 100_000; i++) steps.push(i % 2 === 0 ? 'tick' : 'book');
    const { bad, messages } = check(sim, steps);

    it('holds the contract', () => {
      expect(bad).toEqual([]);
      expect(new Set(messages.map((m) => m.s)).size).toBe(50);
      expect(sim.bookSymbols).toEqual(sim.symbols.slice(0, 50));
    });

    it('is deterministic from the seed', () => {
      expect(check(new MarketSim({ symbols: 500, seed: 11, books: 50 }), steps).messages).toEqual(messages);
      expect(check(new MarketSim({ symbols: 500, seed: 12, books: 50 }), steps.slice(0, 1000)).messages).not.toEqual(messages.slice(0, 500));
    });

    it('changes mostly the top few levels, with size changes, adds and deletes', () => {
      const book = new Map<string, { bids: Map<number, number>; asks: Map<number, number> }>();
      let changes = 0;
      let top3 = 0;
      let adds = 0;
      let deletes = 0;
      let sizes = 0;
      for (const m of messages) {
        if (m.snapshot) {
          book.set(m.s, { bids: new Map(m.bids), asks: new Map(m.asks) });
          continue;
        }
        const b = book.get(m.s)!;
        for (const [levels, side, dir] of [
          [m.bids, b.bids, -1],
          [m.asks, b.asks, 1],
        ] as const) {
          for (const [p, s] of levels) {
            const depth = [...side.keys(), ...(side.has(p) ? [] : [p])].sort((x, y) => dir * (x - y)).indexOf(p);
            changes++;
            if (depth < 3) top3++;
            if (s === 0) deletes++;
            else if (side.has(p)) sizes++;
            else adds++;
            if (s === 0) side.delete(p);
            else side.set(p, s);
          }
        }
      }
      expect(top3 / changes).toBeGreaterThan(0.7);
      expect(sizes / changes).toBeGreaterThan(0.3);
      expect(adds / changes).toBeGreaterThan(0.1);
      expect(deletes / changes).toBeGreaterThan(0.1);
    });

    it('has larger sizes away from the touch and 10 to 40 levels a side', () => {
      const mean = (levels: SimLevel[]) => levels.reduce((x, [, z]) => x + z, 0) / levels.length;
      let deeperIsLarger = 0;
      let sides = 0;
      for (const s of sim.bookSymbols) {
        const b = sim.bookOf(s)!;
        for (const side of [b.bids, b.asks]) {
          expect(side.length).toBeGreaterThanOrEqual(10);
          expect(side.length).toBeLessThanOrEqual(40);
          sides++;
          if (mean(side.slice(5, 10)) > mean(side.slice(0, 3))) deeperIsLarger++;
        }
      }
      // Random sizes: most sides, not all.
      expect(deeperIsLarger / sides).toBeGreaterThan(0.7);
    });

    it('sends an occasional snapshot, at least every 5 s of message time per book', () => {
      const snaps = messages.filter((m) => m.snapshot && m.seq > 1);
      expect(snaps.length).toBeGreaterThan(10);
      const last = new Map<string, number>();
      for (const m of messages) {
        if (m.snapshot) last.set(m.s, m.ts);
        else expect(m.ts - last.get(m.s)!).toBeLessThan(5000);
      }
    });

    it('follows the mid: the touch moves with the quote', () => {
      const touches = new Set(messages.filter((m) => m.s === 'AAPL' && m.bids.length > 0).map((m) => m.bids[0]![0]));
      expect(touches.size).toBeGreaterThan(20);
    });
  });

  it('does not change the ticks', () => {
    const plain = new MarketSim({ symbols: 200, seed: 5 });
    const withBooks = new MarketSim({ symbols: 200, seed: 5, books: 20 });
    for (let i = 0; i < 5000; i++) {
      withBooks.nextBook(i);
      expect(withBooks.next(i)).toEqual(plain.next(i));
    }
  });

  it('rejects invalid books options and refuses book calls without books', () => {
    expect(() => new MarketSim({ symbols: 10, seed: 1, books: 11 })).toThrow(/books/);
    expect(() => new MarketSim({ symbols: 10, seed: 1, books: -1 })).toThrow(/books/);
    expect(() => new MarketSim({ symbols: 10, seed: 1, books: 1.5 })).toThrow(/books/);
    const none = new MarketSim({ symbols: 10, seed: 1 });
    expect(() => none.nextBook(0)).toThrow(/no books/);
    expect(() => new MarketSim({ symbols: 10, seed: 1, books: 3 }).nextBookFor(3, 0)).toThrow(RangeError);
    expect(none.bookOf('AAPL')).toBeUndefined();
  });
});

describe('MarketSim trade prints', () => {
  type Step = 'tick' | 'trade';
  const printsOf = (m: SimTradeMessage): SimTrade[] => ('trades' in m ? m.trades : [m]);

  /**
   * Runs ticks and trade messages interleaved, folding every tick (the trade
   * messages' own included) the way a quote consumer does, and checks each
   * trade message against the quote it printed at; returns the first
   * violations and the messages.
   */
  function check(sim: MarketSim, steps: readonly Step[], t0 = 1_700_000_000_000) {
    const bad: string[] = [];
    const messages: SimTradeMessage[] = [];
    const ticks: SimTick[] = [];
    const fold = new Map<string, State>();
    const nextId = new Map<string, number>();
    steps.forEach((step, i) => {
      const now = t0 + i;
      if (step === 'tick') {
        const t = sim.next(now);
        ticks.push(t);
        const { seq: _seq, ...fields } = t;
        fold.set(t.s, Object.assign(fold.get(t.s) ?? {}, fields) as State);
        return;
      }
      const { trade: m, tick } = sim.nextTrade(now);
      messages.push(m);
      ticks.push(tick);
      const fail = (what: string) => {
        if (bad.length < 10) bad.push(`${m.s}: ${what} ${JSON.stringify(m)} ${JSON.stringify(tick)}`);
      };
      const prev = fold.get(m.s);
      const prevState = prev === undefined ? undefined : { ...prev };
      const { seq: _seq, ...fields } = tick;
      const cur = Object.assign(prev ?? {}, fields) as State;
      fold.set(m.s, cur);
      const prints = printsOf(m);
      // One symbol per message; a batch is a `trades` array of 2 to 5, a single print is flat.
      if (tick.s !== m.s) fail('tick for another symbol');
      if ('trades' in m) {
        if (Object.keys(m).sort().join() !== 's,trades') fail('batch keys');
        if (prints.length < 2 || prints.length > 5) fail('batch size');
      }
      if (prevState === undefined && tick.seq !== 1) fail('first tick not seq 1');
      if (prevState !== undefined) {
        // The quote did not move, and only changed fields were sent.
        if (tick.bid !== undefined || tick.ask !== undefined || tick.bidSize !== undefined || tick.askSize !== undefined) fail('quote fields in a trade tick');
        for (const k of Object.keys(fields) as Field[]) if (k !== ('s' as Field) && k !== ('ts' as Field) && fields[k] === prevState[k]) fail(`unchanged ${k} sent`);
      } else if (!FULL_STATE.every((f) => tick[f] !== undefined)) fail('first tick not full');
      const d = maxDecimals(m.s);
      for (const p of prints) {
        // Within the spread; the side says which touch.
        if (!(p.px >= cur.bid! && p.px <= cur.ask!)) fail(`px ${p.px} outside ${cur.bid}/${cur.ask}`);
        if (p.side === 'b' && p.px !== cur.ask) fail('buy not at the ask');
        if (p.side === 's' && p.px !== cur.bid) fail('sell not at the bid');
        if (p.side === undefined && !(p.px > cur.bid! && p.px < cur.ask!)) fail('no side at the touch');
        if (p.side !== undefined && p.side !== 'b' && p.side !== 's') fail(`side ${String(p.side)}`);
        if (!onGrid(p.px, d)) fail(`px ${p.px} off the grid`);
        if (!(Number.isSafeInteger(p.sz) && p.sz > 0)) fail(`sz ${p.sz}`);
        if (p.ts !== now) fail('ts');
        const n = (nextId.get(m.s) ?? 0) + 1;
        nextId.set(m.s, n);
        if (p.id !== `${m.s}-${n}`) fail(`id ${p.id}, expected ${m.s}-${n}`);
      }
      // The tick is the prints folded into the quote.
      const last = prints.at(-1)!;
      if (cur.last !== last.px || cur.lastSize !== last.sz) fail('last/lastSize not the last print');
      const printed = prints.reduce((x, p) => x + p.sz, 0);
      if (prevState !== undefined && cur.volume !== prevState.volume! + printed) fail('volume not increased by the prints');
      if (!(cur.high! >= Math.max(...prints.map((p) => p.px)) && cur.low! <= Math.min(...prints.map((p) => p.px)))) fail('prints outside high/low');
    });
    return { bad, messages, ticks, fold };
  }

  it('prints within the spread, sides at their touch, ids unique per symbol, one symbol per batch, ticks folding them', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1000, max: 1_000_000 }),
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.constantFrom<Step>('tick', 'trade', 'trade'), { minLength: 1, maxLength: 3000 }),
        (seed, symbols, steps) => {
          const sim = new MarketSim({ symbols, seed });
          const { bad, messages, fold } = check(sim, steps);
          expect(bad).toEqual([]);
          const ids = messages.flatMap(printsOf).map((p) => p.id);
          expect(new Set(ids).size).toBe(ids.length);
          // The fold of all ticks, trade ticks included, is the simulator's state.
          for (const [s, st] of fold) expect(sim.stateOf(s)).toEqual(st);
        },
      ),
      { numRuns: 60 },
    );
  });

  describe('over a long run', () => {
    const steps: Step[] = [];
    for (let i = 0; i < 60_000; i++) steps.push(i % 3 === 0 ? 'trade' : 'tick');
    const sim = new MarketSim({ symbols: 500, seed: 21 });
    const { bad, messages } = check(sim, steps);
    const prints = messages.flatMap(printsOf);

    it('holds the contract', () => {
      expect(bad).toEqual([]);
      expect(messages).toHaveLength(20_000);
    });

    it('mixes buys, sells, a few inside prints and occasional batches', () => {
      const buys = prints.filter((p) => p.side === 'b').length;
      const sells = prints.filter((p) => p.side === 's').length;
      const inside = prints.filter((p) => p.side === undefined).length;
      expect(buys / (buys + sells)).toBeGreaterThan(0.45);
      expect(buys / (buys + sells)).toBeLessThan(0.55);
      expect(inside).toBeGreaterThan(0);
      expect(inside / prints.length).toBeLessThan(0.15);
      const batches = messages.filter((m) => 'trades' in m).length;
      expect(batches / messages.length).toBeGreaterThan(0.07);
      expect(batches / messages.length).toBeLessThan(0.13);
      // Equities print odd lots too; FX in round millions.
      expect(prints.some((p) => p.sz % 100 !== 0)).toBe(true);
      const fx = messages.filter((m) => m.s === 'EUR/USD').flatMap(printsOf);
      expect(fx.length).toBeGreaterThan(0);
      expect(fx.every((p) => p.sz % 1_000_000 === 0)).toBe(true);
    });

    it('is deterministic from the seed', () => {
      expect(check(new MarketSim({ symbols: 500, seed: 21 }), steps).messages).toEqual(messages);
      expect(check(new MarketSim({ symbols: 500, seed: 22 }), steps.slice(0, 3000)).messages).not.toEqual(messages.slice(0, 1000));
    });

    it('follows the Zipf activity', () => {
      const count = (s: string) => messages.filter((m) => m.s === s).length;
      expect(count(sim.symbols[0]!)).toBeGreaterThan(count(sim.symbols[9]!));
      expect(count(sim.symbols[9]!)).toBeGreaterThan(count(sim.symbols[99]!));
    });
  });

  it('leaves the ticks alone while no trade message is asked for', () => {
    // Trade messages draw from their own stream: a simulator never asked for one ticks exactly as before.
    expect(run(new MarketSim({ symbols: 200, seed: 5 }), 5000)).toEqual(run(new MarketSim({ symbols: 200, seed: 5 }), 5000));
    const plain = new MarketSim({ symbols: 200, seed: 5 });
    const asked = new MarketSim({ symbols: 200, seed: 5 });
    // Books and trades do not share a stream either: asking for books does not change the prints.
    const withBooks = new MarketSim({ symbols: 200, seed: 5, books: 10 });
    for (let i = 0; i < 2000; i++) {
      expect(asked.next(i)).toEqual(plain.next(i));
      withBooks.next(i);
      withBooks.nextBook(i);
      if (i % 100 === 0) {
        expect(withBooks.nextTrade(i)).toEqual(asked.nextTrade(i));
        plain.nextTrade(i);
      }
    }
  });

  it('opens a symbol that has not ticked with a full first tick', () => {
    const sim = new MarketSim({ symbols: 10, seed: 3 });
    const { trade, tick } = sim.nextTradeFor(4, 1000);
    expect(tick.seq).toBe(1);
    for (const f of FULL_STATE) expect(tick[f], f).toBeDefined();
    expect(trade.s).toBe(sim.symbols[4]);
    expect(printsOf(trade)[0]!.id).toBe(`${sim.symbols[4]}-1`);
    const { seq: _seq, ...state } = tick;
    expect(sim.stateOf(trade.s)).toEqual(state);
    expect(() => sim.nextTradeFor(10, 0)).toThrow(RangeError);
    expect(() => sim.nextTradeFor(-1, 0)).toThrow(RangeError);
  });
});
