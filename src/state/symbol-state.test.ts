import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { decode } from '@msgpack/msgpack';
import { FeedCounters, type Tick } from '../feed/normalize.js';
import { encodeData } from '../protocol/codec.js';
import { CANONICAL_FIELDS, FIELD_COUNT, FIELD_INDEX, type CanonicalField } from '../protocol/fields.js';
import { FieldSchema } from '../protocol/field-schema.js';
import { SymbolStore, type SymbolState } from './symbol-state.js';

type Fields = Partial<Record<CanonicalField, number>>;

function tick(symbol: string, fields: Fields): Tick {
  const values = new Float64Array(FIELD_COUNT).fill(NaN);
  for (const [f, v] of Object.entries(fields)) values[FIELD_INDEX.get(f)!] = v;
  return { symbol, values, texts: null, counters: new FeedCounters() };
}

function mask(...fields: CanonicalField[]): number {
  return fields.reduce((m, f) => m | (1 << FIELD_INDEX.get(f)!), 0);
}

/** Bit i: field i changed in the last applied tick. */
function changedMask(st: SymbolState): number {
  return st.changedCount === 0 ? 0 : mask(...(st.fieldsSince(st.q - 1) as CanonicalField[]));
}

/** Bit i: field i has a value. */
function presentMask(st: SymbolState): number {
  return mask(...(st.fieldsSince(0) as CanonicalField[]));
}

describe('SymbolStore.apply', () => {
  it('starts a new symbol at q = 1 with the fields it was sent', () => {
    const store = new SymbolStore();
    const st = store.apply(tick('AAPL', { bid: 10, ask: 11 }), 'eq');
    expect(st).not.toBeNull();
    expect(st!.symbol).toBe('AAPL');
    expect(st!.q).toBe(1);
    expect(st!.feed).toBe('eq');
    expect(changedMask(st!)).toBe(mask('bid', 'ask'));
    expect(presentMask(st!)).toBe(mask('bid', 'ask'));
    expect(st!.fields()).toEqual({ bid: 10, ask: 11 });
    expect(store.size).toBe(1);
    expect(store.get('AAPL')).toBe(st);
  });

  it('advances q by one per changing tick and reports only the changed fields', () => {
    const store = new SymbolStore();
    store.apply(tick('A', { bid: 10, ask: 11 }), 'f');
    const st = store.apply(tick('A', { bid: 10, ask: 12, last: 11.5 }), 'f')!;
    expect(st.q).toBe(2);
    expect(changedMask(st)).toBe(mask('ask', 'last'));
    expect(presentMask(st)).toBe(mask('bid', 'ask', 'last'));
    expect(st.fields(st.q - 1)).toEqual({ ask: 12, last: 11.5 });
    expect(store.apply(tick('A', { volume: 100 }), 'f')!.q).toBe(3);
    expect(presentMask(st)).toBe(mask('bid', 'ask', 'last', 'volume'));
  });

  it('returns null for a tick that repeats the state, without advancing q', () => {
    const store = new SymbolStore();
    store.apply(tick('A', { bid: 10, ask: 11 }), 'f');
    expect(store.apply(tick('A', { bid: 10 }), 'f')).toBeNull();
    expect(store.apply(tick('A', { bid: 10, ask: 11 }), 'f')).toBeNull();
    const st = store.get('A')!;
    expect(st.q).toBe(1);
    expect(changedMask(st)).toBe(0);
    expect(presentMask(st)).toBe(mask('bid', 'ask'));
    expect(store.apply(tick('A', { bid: 10.5 }), 'f')!.q).toBe(2);
  });

  it('treats NaN slots as absent: they neither change nor clear a field', () => {
    const store = new SymbolStore();
    store.apply(tick('A', { bid: 10, ask: 11 }), 'f');
    // An all-NaN tick carries nothing.
    expect(store.apply(tick('A', {}), 'f')).toBeNull();
    const st = store.apply(tick('A', { ask: 12 }), 'f')!;
    expect(st.fields()).toEqual({ bid: 10, ask: 12 });
    // Fields never sent stay NaN in the row and out of `present`.
    expect(st.values[FIELD_INDEX.get('last')!]).toBeNaN();
    expect(presentMask(st) & mask('last')).toBe(0);
  });

  it('a new symbol whose first tick carries nothing exists with q = 0', () => {
    const store = new SymbolStore();
    expect(store.apply(tick('EMPTY', {}), 'f')).toBeNull();
    expect(store.get('EMPTY')?.q).toBe(0);
    expect(presentMask(store.get('EMPTY')!)).toBe(0);
  });

  it('keeps symbols apart and records the feed that last changed each one', () => {
    const store = new SymbolStore();
    store.apply(tick('A', { bid: 1 }), 'f1');
    store.apply(tick('B', { bid: 1 }), 'f2');
    store.apply(tick('A', { bid: 2 }), 'f2');
    // An unchanged tick from another feed does not take the symbol over.
    expect(store.apply(tick('B', { bid: 1 }), 'f3')).toBeNull();
    expect(store.get('A')!.q).toBe(2);
    expect(store.get('A')!.feed).toBe('f2');
    expect(store.get('B')!.q).toBe(1);
    expect(store.get('B')!.feed).toBe('f2');
    expect(store.get('C')).toBeUndefined();
    expect(store.size).toBe(2);
  });

  it('copies tick values (the normalizer reuses its array)', () => {
    const store = new SymbolStore();
    const t = tick('A', { bid: 1 });
    store.apply(t, 'f');
    t.values[FIELD_INDEX.get('bid')!] = 99;
    expect(store.get('A')!.values[FIELD_INDEX.get('bid')!]).toBe(1);
  });

  it('tracks every canonical field in its own bit', () => {
    const store = new SymbolStore();
    CANONICAL_FIELDS.forEach((f, i) => {
      const st = store.apply(tick('A', { [f]: i + 1 }), 'f')!;
      expect(changedMask(st)).toBe(1 << i);
      expect(st.q).toBe(i + 1);
    });
    const st = store.get('A')!;
    expect(presentMask(st)).toBe((1 << FIELD_COUNT) - 1);
    expect(Object.keys(st.fields())).toEqual([...CANONICAL_FIELDS]);
  });
});

describe('SymbolState.fields', () => {
  it('keeps the fields changed since a q, in canonical order', () => {
    const store = new SymbolStore();
    // One tick per field: field i changes at q = i + 1, to i + 0.5.
    CANONICAL_FIELDS.forEach((f, i) => store.apply(tick('A', { [f]: i + 0.5 }), 'f'));
    const st = store.get('A')!;
    expect(st.fields(FIELD_COUNT)).toEqual({});
    expect(st.fields(FIELD_COUNT - 1)).toEqual({ seq: 12.5 });
    store.apply(tick('A', { bid: 0.25, last: 4.25 }), 'f');
    expect(st.fields(FIELD_COUNT)).toEqual({ bid: 0.25, last: 4.25 });
    expect(Object.keys(st.fields(0))).toEqual([...CANONICAL_FIELDS]);
  });
});

describe('SymbolStore.apply, configured fields', () => {
  it('merges numeric and text fields of the schema like canonical ones', () => {
    const schema = new FieldSchema([
      { name: 'mark', type: 'number' },
      { name: 'status', type: 'text' },
    ]);
    const store = new SymbolStore(schema);
    const values = new Float64Array(schema.count).fill(NaN);
    const texts: (string | null)[] = new Array(schema.count).fill(null);
    values[schema.index.get('bid')!] = 1;
    values[schema.index.get('mark')!] = 2;
    texts[schema.index.get('status')!] = 'auction';
    const t: Tick = { symbol: 'X', values, texts, counters: new FeedCounters() };
    const st = store.apply(t, 'f')!;
    expect(st.fields()).toEqual({ bid: 1, mark: 2, status: 'auction' });
    // The same text again changes nothing; a new one is a change of its own.
    values.fill(NaN);
    expect(store.apply(t, 'f')).toBeNull();
    texts[schema.index.get('status')!] = 'halted';
    expect(store.apply(t, 'f')!.fields(1)).toEqual({ status: 'halted' });
    expect(st.q).toBe(2);
  });
});

describe('SymbolStore.list', () => {
  function storeWith(symbols: string[]): SymbolStore {
    const store = new SymbolStore();
    for (const s of symbols) store.apply(tick(s, { bid: 1 }), 'f');
    return store;
  }

  it('is empty for an empty store', () => {
    expect(new SymbolStore().list('', 10)).toEqual({ symbols: [], more: false });
  });

  it('lists all symbols sorted when the prefix is empty', () => {
    const store = storeWith(['MSFT', 'AAPL', 'EUR/USD', 'BTC/USDT', 'AMZN']);
    expect(store.list('', 100)).toEqual({ symbols: ['AAPL', 'AMZN', 'BTC/USDT', 'EUR/USD', 'MSFT'], more: false });
  });

  it('keeps only symbols starting with the prefix', () => {
    const store = storeWith(['MSFT', 'AAPL', 'EUR/USD', 'EUR/GBP', 'AMZN', 'EU', 'XEUR']);
    expect(store.list('EUR', 100)).toEqual({ symbols: ['EUR/GBP', 'EUR/USD'], more: false });
    expect(store.list('A', 100)).toEqual({ symbols: ['AAPL', 'AMZN'], more: false });
    expect(store.list('EU', 100)).toEqual({ symbols: ['EU', 'EUR/GBP', 'EUR/USD'], more: false });
    expect(store.list('ZZZ', 100)).toEqual({ symbols: [], more: false });
    expect(store.list('eur', 100)).toEqual({ symbols: [], more: false });
  });

  it('cuts at limit and says so with more', () => {
    const store = storeWith(['A1', 'A2', 'A3', 'B1']);
    expect(store.list('A', 2)).toEqual({ symbols: ['A1', 'A2'], more: true });
    expect(store.list('', 3)).toEqual({ symbols: ['A1', 'A2', 'A3'], more: true });
  });

  it('is not "more" when the matches fill the limit exactly', () => {
    const store = storeWith(['A1', 'A2', 'A3', 'B1']);
    expect(store.list('A', 3)).toEqual({ symbols: ['A1', 'A2', 'A3'], more: false });
    expect(store.list('', 4)).toEqual({ symbols: ['A1', 'A2', 'A3', 'B1'], more: false });
  });

  it('sees symbols added after a previous list (the sorted cache is invalidated)', () => {
    const store = storeWith(['B', 'D']);
    expect(store.list('', 10).symbols).toEqual(['B', 'D']);
    store.apply(tick('C', { bid: 1 }), 'f');
    store.apply(tick('A', { bid: 1 }), 'f');
    expect(store.list('', 10).symbols).toEqual(['A', 'B', 'C', 'D']);
    // Updating known symbols keeps the list as is.
    store.apply(tick('A', { bid: 2 }), 'f');
    expect(store.list('', 10).symbols).toEqual(['A', 'B', 'C', 'D']);
    store.apply(tick('E', { ask: 1 }), 'f');
    expect(store.list('', 10)).toEqual({ symbols: ['A', 'B', 'C', 'D', 'E'], more: false });
  });

  it('returns a fresh array the caller may keep', () => {
    const store = storeWith(['A', 'B']);
    const first = store.list('', 10).symbols;
    first.push('Z');
    expect(store.list('', 10).symbols).toEqual(['A', 'B']);
  });

  it('matches filter, sort and slice for random symbols and queries', () => {
    const symbolArb = fc.string({ unit: fc.constantFrom('A', 'B', 'a', '/', '.', 'Ü', '1'), minLength: 1, maxLength: 5 });
    const queryArb = fc.record({
      prefix: fc.string({ unit: fc.constantFrom('A', 'B', 'a', '/', '.', 'Ü', '1'), maxLength: 3 }),
      limit: fc.integer({ min: 1, max: 8 }),
    });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.array(symbolArb, { maxLength: 10 }), queryArb), { minLength: 1, maxLength: 6 }), (batches) => {
        const store = new SymbolStore();
        const known = new Set<string>();
        for (const [symbols, { prefix, limit }] of batches) {
          for (const s of symbols) {
            store.apply(tick(s, { bid: 1 }), 'f');
            known.add(s);
          }
          const all = [...known].sort().filter((s) => s.startsWith(prefix));
          expect(store.list(prefix, limit)).toEqual({ symbols: all.slice(0, limit), more: all.length > limit });
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('SymbolStore, properties', () => {
  const SYMBOLS = ['A', 'B', 'C'] as const;
  // Few distinct values, so that repeated values (unchanged ticks) are common.
  const valueArb = fc.oneof(fc.constantFrom(0, 1, 2.5, -3, 100.25), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }));
  const fieldsArb = fc.dictionary(fc.constantFrom(...CANONICAL_FIELDS), valueArb, { maxKeys: 5 }).map((d) => {
    // -0 and 0 are the same price; keep the model free of that distinction.
    const out: Fields = {};
    for (const [k, v] of Object.entries(d)) out[k as CanonicalField] = v === 0 ? 0 : v;
    return out;
  });
  const ticksArb = fc.array(fc.tuple(fc.constantFrom(...SYMBOLS), fieldsArb), { maxLength: 60 });

  it('folding ticks gives the same state as merging them into plain objects', () => {
    fc.assert(
      fc.property(ticksArb, (ticks) => {
        const store = new SymbolStore();
        const model = new Map<string, { q: number; fields: Fields }>();
        for (const [symbol, fields] of ticks) {
          const m = model.get(symbol) ?? { q: 0, fields: {} };
          model.set(symbol, m);
          const changed: Fields = {};
          for (const [k, v] of Object.entries(fields) as [CanonicalField, number][]) {
            if (m.fields[k] !== v) changed[k] = v;
          }
          Object.assign(m.fields, changed);
          const anyChange = Object.keys(changed).length > 0;
          if (anyChange) m.q++;

          const st = store.apply(tick(symbol, fields), 'f');
          if (!anyChange) {
            expect(st).toBeNull();
            continue;
          }
          expect(st).not.toBeNull();
          expect(st!.q).toBe(m.q);
          expect(st!.fields(st!.q - 1)).toEqual(changed);
        }
        expect(store.size).toBe(model.size);
        for (const [symbol, m] of model) {
          const st = store.get(symbol)!;
          expect(st.q).toBe(m.q);
          expect(st.fields()).toEqual(m.fields);
          // present is exactly the set of fields ever sent, and the rest are NaN.
          CANONICAL_FIELDS.forEach((f, i) => {
            expect((presentMask(st) & (1 << i)) !== 0).toBe(f in m.fields);
            if (!(f in m.fields)) expect(st.values[i]).toBeNaN();
          });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a snap followed by each upd, as sent on the wire, reproduces the state', () => {
    fc.assert(
      fc.property(ticksArb, fc.array(fc.nat(60), { minLength: SYMBOLS.length, maxLength: SYMBOLS.length }), (ticks, joinAt) => {
        const store = new SymbolStore();
        // One client per symbol, joining after a random number of that symbol's changes.
        const clients = new Map<string, { q: number; view: Record<string, number> } | null>();
        const seen = new Map<string, number>();
        const wire = (msg: object): { q: number; d: Record<string, number> } =>
          decode(encodeData(msg)) as { q: number; d: Record<string, number> };

        for (const [symbol, fields] of ticks) {
          const st = store.apply(tick(symbol, fields), 'f');
          if (st === null) continue;
          const n = (seen.get(symbol) ?? 0) + 1;
          seen.set(symbol, n);
          const client = clients.get(symbol);
          if (client) {
            const upd = wire({ t: 'upd', s: symbol, q: st.q, d: st.fields(st.q - 1) });
            // No gap: each upd is the next sequence number.
            expect(upd.q).toBe(client.q + 1);
            client.q = upd.q;
            Object.assign(client.view, upd.d);
          } else if (n >= joinAt[SYMBOLS.indexOf(symbol as (typeof SYMBOLS)[number])]!) {
            const snap = wire({ t: 'snap', s: symbol, q: st.q, d: st.fields() });
            clients.set(symbol, { q: snap.q, view: { ...snap.d } });
          }
        }
        for (const [symbol, client] of clients) {
          const st = store.get(symbol)!;
          expect(client!.q).toBe(st.q);
          expect(client!.view).toEqual(st.fields());
        }
      }),
      { numRuns: 300 },
    );
  });
});
