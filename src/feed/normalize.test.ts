import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { encode as stdEncode } from '@msgpack/msgpack';
import { Packr, Unpackr } from 'msgpackr';
import type { FeedConfig } from '../config.js';
import { CANONICAL_FIELDS, FIELD_COUNT, FIELD_INDEX, isValidSymbol, type CanonicalField } from '../protocol/fields.js';
import { Normalizer, type InvalidReason, type NormalizeResult, type Tick } from './normalize.js';

const REASONS: readonly InvalidReason[] = ['decode', 'not_object', 'no_symbol', 'bad_symbol', 'no_fields'];

function feed(overrides: Partial<FeedConfig> = {}): FeedConfig {
  return {
    name: 'test',
    kind: 'quote',
    subject: 'md.test.>',
    codec: 'msgpack',
    symbolField: 's',
    symbolToken: null,
    fields: {},
    queue: null,
    staleAfterMs: 10_000,
    jetstream: null, volume: false,
    ...overrides,
  };
}

/** The JSON feed of the README example: renamed fields, symbol in "pair". */
const FX_FEED = feed({ name: 'fx', codec: 'json', symbolField: 'pair', fields: { b: 'bid', a: 'ask', px: 'last' } });

const utf8 = new TextEncoder();
const json = (v: unknown): Uint8Array => utf8.encode(JSON.stringify(v));

function isTick(r: NormalizeResult): r is Tick {
  return typeof r !== 'string';
}

function expectTick(r: NormalizeResult): Tick {
  if (!isTick(r)) throw new Error(`expected a tick, got ${r}`);
  return r;
}

/** The tick's values as a plain object of the fields it carries (NaN slots left out). */
function fieldsOfTick(t: Tick): Partial<Record<CanonicalField, number>> {
  const out: Partial<Record<CanonicalField, number>> = {};
  CANONICAL_FIELDS.forEach((f, i) => {
    const v = t.values[i]!;
    if (!Number.isNaN(v)) out[f] = v;
  });
  return out;
}

function invalidTotal(n: Normalizer): number {
  return REASONS.reduce((sum, r) => sum + n.counters.invalid[r], 0);
}

function expectBalanced(n: Normalizer): void {
  expect(n.counters.received).toBe(n.counters.accepted + invalidTotal(n));
}

describe('Normalizer, msgpack codec', () => {
  it('decodes a standard MessagePack map into a tick', () => {
    const n = new Normalizer(feed());
    const t = expectTick(n.fromBytes('md.test.AAPL', stdEncode({ s: 'AAPL', bid: 189.5, ask: 189.52, ts: 1_700_000_000_123 })));
    expect(t.symbol).toBe('AAPL');
    expect(t.values).toHaveLength(FIELD_COUNT);
    expect(fieldsOfTick(t)).toEqual({ bid: 189.5, ask: 189.52, ts: 1_700_000_000_123 });
    expect(n.counters.received).toBe(1);
    expect(n.counters.accepted).toBe(1);
    expect(n.counters.droppedFields).toEqual({ unknown: 0, bad_value: 0 });
  });

  it('reads 64-bit integers as plain numbers', () => {
    const n = new Normalizer(feed());
    const bytes = stdEncode({ s: 'X', seq: 2n ** 60n, volume: -(2n ** 40n) }, { useBigInt64: true });
    // The encoder really wrote 64-bit integers (uint64 0xcf, int64 0xd3).
    expect([...bytes]).toContain(0xcf);
    expect([...bytes]).toContain(0xd3);
    const t = expectTick(n.fromBytes('s', bytes));
    expect(fieldsOfTick(t)).toEqual({ seq: 2 ** 60, volume: -(2 ** 40) });
  });

  it('resets absent fields to NaN between ticks (the values array is reused)', () => {
    const n = new Normalizer(feed());
    const a = expectTick(n.fromBytes('s', stdEncode({ s: 'A', bid: 1, ask: 2 })));
    const first = a.values;
    const b = expectTick(n.fromBytes('s', stdEncode({ s: 'B', last: 3 })));
    expect(b.values).toBe(first);
    expect(b.symbol).toBe('B');
    expect(fieldsOfTick(b)).toEqual({ last: 3 });
  });

  it('rejects garbage, truncated input and trailing bytes as decode', () => {
    const n = new Normalizer(feed());
    const good = stdEncode({ s: 'A', bid: 1 });
    for (const bytes of [
      Uint8Array.of(0xd9), // str8 without its length
      new Uint8Array(0),
      good.subarray(0, good.length - 1),
      Uint8Array.of(...good, 0xc0),
    ]) {
      expect(n.fromBytes('s', bytes)).toBe('decode');
    }
    expect(n.counters.invalid.decode).toBe(4);
    expect(n.counters.received).toBe(4);
    expectBalanced(n);
  });

  // 0xc1 is the one type byte MessagePack never uses; msgpackr would decode
  // it to a marker object, so the normalizer checks for it first.
  it('rejects the never-used type byte 0xc1 as decode', () => {
    const n = new Normalizer(feed());
    expect(n.fromBytes('s', Uint8Array.of(0xc1))).toBe('decode');
  });

  it('rejects structured-clone payloads (ext 0x70 pointer, 0x69 id) as decode', () => {
    const n = new Normalizer(feed());
    const shared = { a: 1 };
    const cloned = new Packr({ structuredClone: true, useRecords: false }).pack({ s: 'AAPL', bid: 1, x: shared, y: shared });
    // The encoder wrote the structured-clone extensions (id, then pointer) we mean to refuse,
    // and a decoder with structured clone on would accept the payload.
    expect(Buffer.from(cloned).includes(Buffer.from([0xd6, 0x69]))).toBe(true);
    expect(Buffer.from(cloned).includes(Buffer.from([0xd6, 0x70]))).toBe(true);
    expect(new Unpackr({ structuredClone: true, mapsAsObjects: true }).unpack(cloned)).toMatchObject({ s: 'AAPL', bid: 1 });
    expect(n.fromBytes('s', cloned)).toBe('decode');

    // A bare pointer extension, alone and as a field value of an otherwise valid tick.
    expect(n.fromBytes('s', Uint8Array.of(0xd4, 0x70, 0x00))).toBe('decode');
    const head = stdEncode({ s: 'AAPL', bid: 1, ask: null });
    // Replace the trailing nil (ask: null) with a fixext1 of type 0x70.
    expect(head[head.length - 1]).toBe(0xc0);
    const withPointer = Uint8Array.of(...head.subarray(0, head.length - 1), 0xd4, 0x70, 0x00);
    expect(n.fromBytes('s', withPointer)).toBe('decode');
    expect(n.counters.invalid.decode).toBe(3);
    expect(n.counters.accepted).toBe(0);
  });

  it('never turns an extension value of any type into a field value', () => {
    const n = new Normalizer(feed());
    // {s: "A", bid: <ext>} with every type byte and a spread of payload sizes.
    const head = [0x82, 0xa1, 0x73, 0xa1, 0x41, 0xa3, 0x62, 0x69, 0x64];
    const headers: Record<number, number[]> = { 1: [0xd4], 2: [0xd5], 4: [0xd6], 8: [0xd7], 16: [0xd8], 3: [0xc7, 3], 12: [0xc7, 12] };
    let sent = 0;
    for (let type = -128; type < 128; type++) {
      for (const [len, hdr] of Object.entries(headers)) {
        const payload = Array.from({ length: Number(len) }, (_, i) => (i * 37 + 1) & 0xff);
        const r = n.fromBytes('s', Uint8Array.of(...head, ...hdr, type & 0xff, ...payload));
        sent++;
        // Either refused outright, or the ext value was dropped: there is no other field.
        expect(['decode', 'no_fields']).toContain(r);
      }
    }
    expect(n.counters.accepted).toBe(0);
    expect(n.counters.received).toBe(sent);
    expect(n.counters.droppedFields.bad_value).toBe(n.counters.invalid.no_fields);
    expectBalanced(n);
  });
});

describe('Normalizer, json codec', () => {
  it('decodes a JSON object with renamed fields (README example feed)', () => {
    const n = new Normalizer(FX_FEED);
    const t = expectTick(n.fromBytes('quotes.fx.EURUSD', json({ pair: 'EUR/USD', b: 1.0842, a: 1.0844, px: 1.0843 })));
    expect(t.symbol).toBe('EUR/USD');
    expect(fieldsOfTick(t)).toEqual({ bid: 1.0842, ask: 1.0844, last: 1.0843 });
    expect(n.counters.droppedFields).toEqual({ unknown: 0, bad_value: 0 });
  });

  it('still accepts canonical names on a feed with a rename map', () => {
    const n = new Normalizer(FX_FEED);
    const t = expectTick(n.fromBytes('q', json({ pair: 'GBP/USD', bid: 1.25, askSize: 3, ts: 5 })));
    expect(fieldsOfTick(t)).toEqual({ bid: 1.25, askSize: 3, ts: 5 });
    expect(n.counters.droppedFields.unknown).toBe(0);
  });

  it('does not take the symbol from the default field "s" when symbolField is set', () => {
    const n = new Normalizer(FX_FEED);
    expect(n.fromBytes('q', json({ s: 'EUR/USD', b: 1 }))).toBe('no_symbol');
  });

  it('maps renamed sources on a msgpack feed too', () => {
    const n = new Normalizer(feed({ fields: { p: 'last', v: 'lastSize' } }));
    const t = expectTick(n.fromBytes('s', stdEncode({ s: 'BTC/USDT', p: 64000.5, v: 0.25 })));
    expect(fieldsOfTick(t)).toEqual({ last: 64000.5, lastSize: 0.25 });
  });

  it('rejects invalid JSON and invalid UTF-8 as decode', () => {
    const n = new Normalizer(feed({ codec: 'json' }));
    expect(n.fromBytes('s', utf8.encode('{"s":"A","bid":1'))).toBe('decode');
    expect(n.fromBytes('s', utf8.encode('not json'))).toBe('decode');
    // "A<0xff>" inside a JSON string: a lenient decoder would turn 0xff into U+FFFD.
    expect(n.fromBytes('s', Uint8Array.of(0x7b, 0x22, 0x73, 0x22, 0x3a, 0x22, 0x41, 0xff, 0x22, 0x2c, 0x22, 0x62, 0x69, 0x64, 0x22, 0x3a, 0x31, 0x7d))).toBe('decode');
    // A msgpack payload on a JSON feed.
    expect(n.fromBytes('s', stdEncode({ s: 'A', bid: 1 }))).toBe('decode');
    expect(n.counters.invalid.decode).toBe(4);
    expectBalanced(n);
  });
});

describe('Normalizer, symbol from the subject', () => {
  it('takes the symbol from a positive token index', () => {
    const n = new Normalizer(feed({ symbolToken: 2 }));
    const t = expectTick(n.fromBytes('md.fx.EURUSD.top', stdEncode({ bid: 1 })));
    expect(t.symbol).toBe('EURUSD');
  });

  it('takes the symbol from a negative token index (counted from the end)', () => {
    const n = new Normalizer(feed({ symbolToken: -1 }));
    expect(expectTick(n.fromBytes('md.fx.EURUSD', stdEncode({ bid: 1 }))).symbol).toBe('EURUSD');
    const n2 = new Normalizer(feed({ symbolToken: -2 }));
    expect(expectTick(n2.fromBytes('md.fx.EURUSD.top', stdEncode({ bid: 1 }))).symbol).toBe('EURUSD');
  });

  it('ignores the payload symbol field and counts it as unknown', () => {
    const n = new Normalizer(feed({ symbolToken: -1 }));
    const t = expectTick(n.fromBytes('md.eq.MSFT', stdEncode({ s: 'AAPL', bid: 1 })));
    expect(t.symbol).toBe('MSFT');
    expect(n.counters.droppedFields.unknown).toBe(1);
  });

  it('rejects a token index beyond the subject as no_symbol', () => {
    expect(new Normalizer(feed({ symbolToken: 5 })).fromBytes('md.fx.EURUSD', stdEncode({ bid: 1 }))).toBe('no_symbol');
    expect(new Normalizer(feed({ symbolToken: -4 })).fromBytes('md.fx.EURUSD', stdEncode({ bid: 1 }))).toBe('no_symbol');
  });
});

describe('Normalizer, field values', () => {
  it('accepts numeric strings', () => {
    const n = new Normalizer(feed({ codec: 'json' }));
    const t = expectTick(n.fromBytes('s', json({ s: 'A', bid: '101.25', ask: ' 101.5 ', volume: '1e6', last: '-3' })));
    expect(fieldsOfTick(t)).toEqual({ bid: 101.25, ask: 101.5, volume: 1e6, last: -3 });
    expect(n.counters.droppedFields.bad_value).toBe(0);
  });

  it('drops non-numeric and non-finite values and counts them as bad_value', () => {
    const n = new Normalizer(feed({ codec: 'json' }));
    const t = expectTick(
      n.fromBytes(
        's',
        json({
          s: 'A',
          bid: 'abc',
          ask: '',
          bidSize: '   ',
          askSize: true,
          last: null,
          lastSize: { v: 1 },
          volume: [5],
          open: 'Infinity',
          high: 'NaN',
          low: '1e400',
          close: 42,
        }),
      ),
    );
    expect(fieldsOfTick(t)).toEqual({ close: 42 });
    expect(n.counters.droppedFields.bad_value).toBe(10);
    expect(n.counters.droppedFields.unknown).toBe(0);
  });

  it('drops NaN and infinite floats sent as MessagePack float64', () => {
    const n = new Normalizer(feed());
    const t = expectTick(n.fromBytes('s', stdEncode({ s: 'A', bid: NaN, ask: Infinity, last: -Infinity, ts: 7 })));
    expect(fieldsOfTick(t)).toEqual({ ts: 7 });
    expect(n.counters.droppedFields.bad_value).toBe(3);
  });

  it('drops binary values', () => {
    const n = new Normalizer(feed());
    expect(n.fromBytes('s', stdEncode({ s: 'A', bid: Uint8Array.of(1, 2) }))).toBe('no_fields');
    expect(n.counters.droppedFields.bad_value).toBe(1);
  });

  it('counts unknown fields and keeps the known ones', () => {
    const n = new Normalizer(feed());
    const t = expectTick(n.fromBytes('s', stdEncode({ s: 'A', bid: 1, venue: 'XNAS', flags: 3, Bid: 2 })));
    expect(fieldsOfTick(t)).toEqual({ bid: 1 });
    expect(n.counters.droppedFields.unknown).toBe(3);
    expect(n.counters.droppedFields.bad_value).toBe(0);
  });

  it('drops the source name that was renamed away only if it is not canonical', () => {
    // "b" is renamed to bid; an unrelated unknown source name is still unknown.
    const n = new Normalizer(FX_FEED);
    const t = expectTick(n.fromBytes('q', json({ pair: 'X', b: 1, bb: 2 })));
    expect(fieldsOfTick(t)).toEqual({ bid: 1 });
    expect(n.counters.droppedFields.unknown).toBe(1);
  });
});

describe('Normalizer, rejections', () => {
  it('produces and counts every invalid reason', () => {
    const n = new Normalizer(feed());
    const cases: [Uint8Array, InvalidReason][] = [
      [Uint8Array.of(0x81, 0xa1, 0x73), 'decode'],
      [stdEncode([1, 2]), 'not_object'],
      [stdEncode('AAPL'), 'not_object'],
      [stdEncode(42), 'not_object'],
      [stdEncode(null), 'not_object'],
      [stdEncode(Uint8Array.of(1, 2, 3)), 'not_object'],
      [stdEncode({ bid: 1 }), 'no_symbol'],
      [stdEncode({ s: null, bid: 1 }), 'no_symbol'],
      [stdEncode({ s: '', bid: 1 }), 'no_symbol'],
      [stdEncode({ s: 42, bid: 1 }), 'bad_symbol'],
      [stdEncode({ s: ['A'], bid: 1 }), 'bad_symbol'],
      [stdEncode({ s: 'A' }), 'no_fields'],
      [stdEncode({ s: 'A', venue: 'X' }), 'no_fields'],
      [stdEncode({ s: 'A', bid: 'x' }), 'no_fields'],
    ];
    for (const [bytes, reason] of cases) expect(n.fromBytes('md.test.A', bytes), reason).toBe(reason);
    expect(n.counters.invalid).toEqual({ decode: 1, not_object: 5, no_symbol: 3, bad_symbol: 2, no_fields: 3 });
    expect(n.counters.accepted).toBe(0);
    expect(n.counters.received).toBe(cases.length);
  });

  it('counts fromObject calls like fromBytes calls', () => {
    const n = new Normalizer(feed());
    expect(n.fromObject('s', 'text')).toBe('not_object');
    expect(n.fromObject('s', undefined)).toBe('not_object');
    expect(isTick(n.fromObject('s', { s: 'A', bid: 1 }))).toBe(true);
    expect(n.counters.received).toBe(3);
    expect(n.counters.accepted).toBe(1);
    expectBalanced(n);
  });

  it('validates symbols: length 1..64, no control characters', () => {
    const n = new Normalizer(feed());
    const ok = ['A', 'x'.repeat(64), 'EUR/USD', 'BRK.B', 'ÄÖÜ-ß', '株式'];
    for (const s of ok) expect(expectTick(n.fromObject('t', { s, bid: 1 })).symbol).toBe(s);
    const bad = ['x'.repeat(65), 'A\nB', 'A\u0000', '\tA', 'A\u001f', 'A\u007f'];
    for (const s of bad) expect(n.fromObject('t', { s, bid: 1 }), JSON.stringify(s)).toBe('bad_symbol');
    expect(n.counters.invalid.bad_symbol).toBe(bad.length);
  });

  it('validates a symbol taken from the subject too', () => {
    const n = new Normalizer(feed({ symbolToken: -1 }));
    expect(n.fromBytes(`md.x.${'y'.repeat(65)}`, stdEncode({ bid: 1 }))).toBe('bad_symbol');
    expect(n.fromBytes('md.x.A\u0007', stdEncode({ bid: 1 }))).toBe('bad_symbol');
    expect(n.counters.invalid.bad_symbol).toBe(2);
  });
});

describe('Normalizer, hostile keys', () => {
  it('does not let a JSON "__proto__" key pollute prototypes or supply fields', () => {
    const n = new Normalizer(feed({ codec: 'json' }));
    const payload = '{"s":"A","bid":1,"__proto__":{"polluted":true,"ask":5,"s":"EVIL"}}';
    const t = expectTick(n.fromBytes('s', utf8.encode(payload)));
    expect(t.symbol).toBe('A');
    expect(fieldsOfTick(t)).toEqual({ bid: 1 });
    expect(n.counters.droppedFields.unknown).toBe(1);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('does not take the symbol or fields from a JSON "__proto__" object', () => {
    const n = new Normalizer(feed({ codec: 'json' }));
    expect(n.fromBytes('s', utf8.encode('{"__proto__":{"s":"EVIL","bid":5}}'))).toBe('no_symbol');
    expect(n.fromBytes('s', utf8.encode('{"s":"A","__proto__":{"bid":5}}'))).toBe('no_fields');
  });

  it('does not let a MessagePack "__proto__" key pollute prototypes or supply fields', () => {
    const n = new Normalizer(feed());
    const hostile = JSON.parse('{"s":"A","bid":1,"__proto__":{"polluted":true,"ask":5,"s":"EVIL"}}') as object;
    const bytes = stdEncode(hostile);
    expect(Buffer.from(bytes).includes(Buffer.from('__proto__'))).toBe(true);
    const t = expectTick(n.fromBytes('s', bytes));
    expect(t.symbol).toBe('A');
    expect(fieldsOfTick(t)).toEqual({ bid: 1 });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(n.fromBytes('s', stdEncode(JSON.parse('{"__proto__":{"s":"EVIL","bid":5}}') as object))).toBe('no_symbol');
  });

  it('treats Object.prototype member names as unknown fields', () => {
    const n = new Normalizer(feed({ codec: 'json' }));
    const t = expectTick(n.fromBytes('s', json({ s: 'A', constructor: 1, toString: 2, hasOwnProperty: 3, valueOf: 4, bid: 5 })));
    expect(fieldsOfTick(t)).toEqual({ bid: 5 });
    expect(n.counters.droppedFields.unknown).toBe(4);
  });
});

describe('Normalizer, properties', () => {
  const reasonSet = new Set<string>(REASONS);

  function checkResult(r: NormalizeResult): void {
    if (typeof r === 'string') {
      expect(reasonSet.has(r)).toBe(true);
      return;
    }
    expect(isValidSymbol(r.symbol)).toBe(true);
    expect(r.values).toHaveLength(FIELD_COUNT);
    let present = 0;
    for (const v of r.values) {
      if (Number.isNaN(v)) continue;
      expect(Number.isFinite(v)).toBe(true);
      present++;
    }
    expect(present).toBeGreaterThan(0);
  }

  const keyArb = fc.oneof(
    fc.constantFrom('s', 'pair', 'b', 'a', 'px', '__proto__', 'constructor', 'toString', ...CANONICAL_FIELDS),
    fc.string({ maxLength: 8 }),
    fc.string({ unit: 'binary', maxLength: 8 }),
  );
  const valueArb = fc.oneof(
    fc.double(),
    fc.integer(),
    fc.string({ maxLength: 70 }),
    fc.string({ unit: 'binary', maxLength: 70 }),
    fc.constantFrom('1.5', ' 2 ', '', 'NaN', '-Infinity', 'AAPL', 'x'.repeat(65), 'A\n'),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const objectArb = fc.dictionary(keyArb, valueArb, { maxKeys: 12 });
  const payloadArb = fc.oneof(objectArb, fc.jsonValue({ maxDepth: 4 }));
  const subjectArb = fc.oneof(fc.constantFrom('md.test.AAPL', 'md', ''), fc.array(fc.string({ maxLength: 6 }), { maxLength: 5 }).map((t) => t.join('.')));

  function normalizers(): Normalizer[] {
    return [
      new Normalizer(feed()),
      new Normalizer(feed({ codec: 'json' })),
      new Normalizer(FX_FEED),
      new Normalizer(feed({ symbolToken: -1 })),
      new Normalizer(feed({ codec: 'json', symbolToken: 2 })),
    ];
  }

  function run(all: Normalizer[], subject: string, bytes: Uint8Array): void {
    for (const n of all) {
      let r: NormalizeResult | undefined;
      expect(() => {
        r = n.fromBytes(subject, bytes);
      }).not.toThrow();
      checkResult(r!);
      expectBalanced(n);
    }
  }

  it('random bytes never throw and always give a tick or a reason', () => {
    const all = normalizers();
    fc.assert(
      fc.property(subjectArb, fc.uint8Array({ maxLength: 200 }), (subject, bytes) => run(all, subject, bytes)),
      { numRuns: 500 },
    );
    for (const n of all) expect(n.counters.received).toBe(500);
  });

  it('random JSON-ish objects, as MessagePack and as JSON, never throw and keep the counters balanced', () => {
    const all = normalizers();
    let runs = 0;
    fc.assert(
      fc.property(subjectArb, payloadArb, (subject, payload) => {
        runs++;
        run(all, subject, stdEncode(payload));
        run(all, subject, json(payload));
      }),
      { numRuns: 300 },
    );
    for (const n of all) expect(n.counters.received).toBe(2 * runs);
    // The generators do reach the accepting path and every field-drop path.
    expect(all.some((n) => n.counters.accepted > 0)).toBe(true);
    expect(all.some((n) => n.counters.droppedFields.bad_value > 0)).toBe(true);
    expect(all.some((n) => n.counters.droppedFields.unknown > 0)).toBe(true);
  });

  it('corrupted valid payloads never throw', () => {
    const all = normalizers();
    const corrupted = fc
      .tuple(objectArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([obj, edits, asJson]) => {
        const bytes = asJson ? json(obj) : stdEncode(obj);
        const out = Uint8Array.from(bytes);
        for (const [at, b] of edits) out[at % out.length] = b;
        return out;
      });
    fc.assert(
      fc.property(subjectArb, corrupted, (subject, bytes) => run(all, subject, bytes)),
      { numRuns: 500 },
    );
  });

  it('fromObject never throws for arbitrary JavaScript values', () => {
    const n = new Normalizer(feed());
    fc.assert(
      fc.property(
        fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withTypedArray: true, withSparseArray: true }),
        (v) => {
          let r: NormalizeResult | undefined;
          expect(() => {
            r = n.fromObject('md.test.A', v);
          }).not.toThrow();
          checkResult(r!);
        },
      ),
      { numRuns: 300 },
    );
    expectBalanced(n);
  });

  it('an accepted tick holds exactly the finite numeric fields of the payload', () => {
    const n = new Normalizer(feed());
    const fieldArb = fc.dictionary(
      fc.constantFrom(...CANONICAL_FIELDS),
      fc.oneof(fc.double(), fc.integer({ min: -1_000_000, max: 1_000_000 })),
      { minKeys: 1 },
    );
    fc.assert(
      fc.property(fieldArb, (fields) => {
        const expected: Record<string, number> = {};
        for (const [k, v] of Object.entries(fields)) if (Number.isFinite(v)) expected[k] = v;
        const r = n.fromBytes('s', stdEncode({ s: 'SYM', ...fields }));
        if (Object.keys(expected).length === 0) {
          expect(r).toBe('no_fields');
        } else {
          const t = expectTick(r);
          for (const f of CANONICAL_FIELDS) {
            const v = t.values[FIELD_INDEX.get(f)!]!;
            // === on purpose: a -0 may travel as the integer 0.
            if (f in expected) expect(v === expected[f]).toBe(true);
            else expect(v).toBeNaN();
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
