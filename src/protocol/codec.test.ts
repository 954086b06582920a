import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { decode, encode as stdEncode, ExtData } from '@msgpack/msgpack';
import { Packr, Unpackr } from 'msgpackr';
import {
  MAX_ARRAY_HEADER,
  decodeRequest,
  encode,
  encodeData,
  isRequestError,
  writeArrayHeader,
} from './codec.js';
import { CANONICAL_FIELDS, FIELD_COUNT } from './fields.js';
import type { ClientRequest, RequestError } from './messages.js';

/** Copies bytes into an ArrayBuffer of their own, as a WebSocket message arrives. */
function ab(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

const utf8 = new TextEncoder();
const binary = (v: unknown): ArrayBuffer => ab(stdEncode(v));
const text = (s: string): ArrayBuffer => ab(utf8.encode(s));

/**
 * Decodes with the independent reference decoder and checks that nothing in
 * the result came from an extension type: Python's msgpack would hand those
 * over as ExtType (or, for the timestamp extension, a datetime).
 */
function decodeStandard(bytes: Uint8Array): unknown {
  const v = decode(bytes);
  const walk = (x: unknown): void => {
    if (x instanceof ExtData || x instanceof Date) throw new Error(`extension value in output: ${String(x)}`);
    if (Array.isArray(x)) x.forEach(walk);
    else if (x !== null && typeof x === 'object' && !(x instanceof Uint8Array)) Object.values(x).forEach(walk);
  };
  walk(v);
  return v;
}

function expectError(r: ClientRequest | RequestError, code: RequestError['code'], id?: string | number): RequestError {
  expect(isRequestError(r)).toBe(true);
  const e = r as RequestError;
  expect(e.code).toBe(code);
  expect(typeof e.msg).toBe('string');
  expect(e.msg.length).toBeGreaterThan(0);
  if (id === undefined) expect('id' in e).toBe(false);
  else expect(e.id).toBe(id);
  return e;
}

describe('writeArrayHeader', () => {
  const cases: [number, number[]][] = [
    [0, [0x90]],
    [1, [0x91]],
    [15, [0x9f]],
    [16, [0xdc, 0x00, 0x10]],
    [65535, [0xdc, 0xff, 0xff]],
    [65536, [0xdd, 0x00, 0x01, 0x00, 0x00]],
  ];

  it.each(cases)('writes the shortest header for n = %i', (n, header) => {
    const buf = new Uint8Array(MAX_ARRAY_HEADER + 2).fill(0xee);
    expect(writeArrayHeader(buf, 1, n)).toBe(header.length);
    expect([...buf.subarray(1, 1 + header.length)]).toEqual(header);
    // Nothing written outside the header.
    expect(buf[0]).toBe(0xee);
    expect(buf[1 + header.length]).toBe(0xee);
  });

  it.each(cases.map(([n]) => n))('followed by %i encoded messages decodes to those messages', (n) => {
    const pieces = Array.from({ length: n }, (_, i) => encode({ t: 'x', i }));
    const size = pieces.reduce((s, p) => s + p.byteLength, 0);
    const buf = new Uint8Array(MAX_ARRAY_HEADER + size);
    let off = writeArrayHeader(buf, 0, n);
    for (const p of pieces) {
      buf.set(p, off);
      off += p.byteLength;
    }
    const out = decodeStandard(buf.subarray(0, off)) as { t: string; i: number }[];
    expect(Array.isArray(out)).toBe(true);
    expect(out).toHaveLength(n);
    for (let i = 0; i < n; i++) {
      if (out[i]!.i !== i || out[i]!.t !== 'x') expect(out[i]).toEqual({ t: 'x', i });
    }
  });

  it('is followed by the right number of elements for sizes around each boundary', () => {
    for (const n of [14, 15, 16, 17, 255, 256, 65534, 65535, 65536, 65537, 2 ** 32 - 1]) {
      const buf = new Uint8Array(MAX_ARRAY_HEADER);
      const len = writeArrayHeader(buf, 0, n);
      expect(len).toBeLessThanOrEqual(MAX_ARRAY_HEADER);
      const view = new DataView(buf.buffer);
      const decoded = len === 1 ? buf[0]! & 0x0f : len === 3 ? view.getUint16(1) : view.getUint32(1);
      expect(decoded).toBe(n);
    }
  });
});

describe('encode (control messages)', () => {
  it('leaves out keys whose value is undefined', () => {
    const bytes = encode({ t: 'pong', id: undefined, ts: undefined, serverTs: 5 });
    expect(decodeStandard(bytes)).toEqual({ t: 'pong', serverTs: 5 });
    // Exactly two keys in a fixmap header.
    expect(bytes[0]).toBe(0x82);
  });

  it('leaves out undefined keys in nested maps too and keeps null', () => {
    const bytes = encode({ t: 'ack', id: null, op: 'sub', ok: ['A'], err: [{ s: 'B', code: 'BAD_SYMBOL', msg: 'm', extra: undefined }] });
    expect(decodeStandard(bytes)).toEqual({ t: 'ack', id: null, op: 'sub', ok: ['A'], err: [{ s: 'B', code: 'BAD_SYMBOL', msg: 'm' }] });
  });

  it('never emits extension types for the messages the server sends', () => {
    const messages: object[] = [
      { t: 'hello', v: 1, server: 'tickgate', hbMs: 5000, maxSymbols: 2000, fields: [...CANONICAL_FIELDS] },
      { t: 'ack', id: 'r1', op: 'sub', ok: ['AAPL'], err: undefined },
      { t: 'ack', id: 7, op: 'unsub', ok: [], err: [{ s: 42, code: 'BAD_SYMBOL', msg: 'not a symbol' }] },
      { t: 'err', code: 'BAD_REQUEST', msg: 'bad', id: undefined },
      { t: 'pong', id: 'x', ts: 'client-ts', serverTs: 1_700_000_000_000 },
      { t: 'pong', id: 3, ts: undefined, serverTs: Date.now() },
      { t: 'symbols', id: 1, symbols: ['A', 'B'], more: false },
      { t: 'stat', s: 'AAPL', st: 'unknown' },
      { t: 'hb', ts: 1_700_000_000_000 },
      { t: 'bye', code: 'SLOW_CONSUMER', reason: 'socket buffer full', retryMs: 1000 },
      { big: 2 ** 53 - 1, neg: -(2 ** 40), f: 0.1, nan: NaN, u8: 255, s: 'ü'.repeat(40), long: 'x'.repeat(70_000) },
    ];
    for (const m of messages) {
      const bytes = encode(m);
      expect(bytes[0]! & 0xf0, JSON.stringify(m).slice(0, 80)).toBe(0x80); // fixmap: the smallest map header
      const expected = Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined));
      expect(decodeStandard(bytes)).toEqual(expected);
    }
  });

  it('uses the smallest map header for larger maps as well', () => {
    const m = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]));
    const bytes = encode(m);
    expect([...bytes.subarray(0, 3)]).toEqual([0xde, 0x00, 20]);
    expect(decodeStandard(bytes)).toEqual(m);
  });
});

describe('encodeData (data messages)', () => {
  /** The `d` map of the fields in `mask` (bit i = canonical field i). */
  const fieldsOf = (values: Float64Array, mask: number): Record<string, number> =>
    Object.fromEntries(CANONICAL_FIELDS.flatMap((f, i) => (mask & (1 << i) ? [[f, values[i]!]] : [])));
  const values = Float64Array.from({ length: FIELD_COUNT }, (_, i) => (i % 3 === 0 ? i * 1000 : i + 0.125));

  it('encodes snap and upd as standard MessagePack maps', () => {
    const snap = { t: 'snap', s: 'EUR/USD', q: 1, d: fieldsOf(values, (1 << FIELD_COUNT) - 1) };
    const upd = { t: 'upd', s: 'EUR/USD', q: 2 ** 40, d: fieldsOf(values, 0b101) };
    for (const m of [snap, upd]) {
      const bytes = encodeData(m);
      expect(bytes[0]).toBe(0x84);
      expect(decodeStandard(bytes)).toEqual(m);
    }
    expect(Object.keys(upd.d)).toEqual(['bid', 'bidSize']);
  });

  it('round-trips every finite double exactly', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), fc.string(), (x, s) => {
        const out = decodeStandard(encodeData({ t: 'upd', s, q: 1, d: { last: x } })) as { s: string; d: { last: number } };
        expect(out.s).toBe(s);
        // -0 may be written as the integer 0: compare as numbers.
        expect(out.d.last === x).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('writes undefined as nil rather than an extension', () => {
    expect(decodeStandard(encodeData({ t: 'x', a: undefined }))).toEqual({ t: 'x', a: null });
  });

  it('writes a frame of shared pieces that decodes as one array', () => {
    const pieces = [
      encodeData({ t: 'snap', s: 'A', q: 1, d: { bid: 1 } }),
      encode({ t: 'stat', s: 'B', st: 'unknown' }),
      encodeData({ t: 'upd', s: 'A', q: 2, d: { ask: 2 } }),
    ];
    const frame = new Uint8Array(MAX_ARRAY_HEADER + pieces.reduce((s, p) => s + p.byteLength, 0));
    let off = writeArrayHeader(frame, 0, pieces.length);
    for (const p of pieces) {
      frame.set(p, off);
      off += p.byteLength;
    }
    expect(decodeStandard(frame.subarray(0, off))).toEqual([
      { t: 'snap', s: 'A', q: 1, d: { bid: 1 } },
      { t: 'stat', s: 'B', st: 'unknown' },
      { t: 'upd', s: 'A', q: 2, d: { ask: 2 } },
    ]);
  });
});

describe('decodeRequest, ops', () => {
  it('decodes sub with snapshot defaulting to true', () => {
    expect(decodeRequest(binary({ op: 'sub', symbols: ['AAPL', 'MSFT'] }), true)).toEqual({ op: 'sub', channel: 'quote', depth: null, last: null, since: null, symbols: ['AAPL', 'MSFT'], snapshot: true, throttleMs: 0 });
    expect(decodeRequest(text('{"op":"sub","symbols":["A"],"snapshot":null}'), false)).toEqual({ op: 'sub', channel: 'quote', depth: null, last: null, since: null, symbols: ['A'], snapshot: true, throttleMs: 0 });
    expect(decodeRequest(binary({ op: 'sub', symbols: ['A'], snapshot: false, id: 'r1' }), true)).toEqual({
      op: 'sub',
      channel: 'quote',
      depth: null,
      last: null,
      since: null,
      symbols: ['A'],
      snapshot: false,
      throttleMs: 0,
      id: 'r1',
    });
  });

  it('decodes sub throttleMs and rejects a negative or fractional one', () => {
    expect(decodeRequest(text('{"op":"sub","symbols":["A"],"throttleMs":200}'), false)).toMatchObject({ throttleMs: 200 });
    expectError(decodeRequest(text('{"op":"sub","symbols":["A"],"throttleMs":-1}'), false), 'BAD_REQUEST');
    expectError(decodeRequest(text('{"op":"sub","symbols":["A"],"throttleMs":1.5}'), false), 'BAD_REQUEST');
    expectError(decodeRequest(text('{"op":"sub","symbols":["A"],"throttleMs":"200"}'), false), 'BAD_REQUEST');
  });

  it('passes symbols through unvalidated (the session checks each one)', () => {
    const r = decodeRequest(text('{"op":"sub","symbols":["A",42,null,{"x":1}]}'), false);
    expect(r).toEqual({ op: 'sub', channel: 'quote', depth: null, last: null, since: null, symbols: ['A', 42, null, { x: 1 }], snapshot: true, throttleMs: 0 });
  });

  it('decodes unsub', () => {
    expect(decodeRequest(text('{"op":"unsub","symbols":["A"],"id":9}'), false)).toEqual({ op: 'unsub', channel: 'quote', symbols: ['A'], id: 9 });
    expect(decodeRequest(binary({ op: 'unsub', symbols: [] }), true)).toEqual({ op: 'unsub', channel: 'quote', symbols: [] });
  });

  it('decodes ping and echoes ts only when it is a number or a short string', () => {
    const ts = (r: ClientRequest | RequestError): unknown => (r as { ts?: unknown }).ts;
    expect(decodeRequest(text('{"op":"ping","ts":1700000000000.5,"id":1}'), false)).toEqual({ op: 'ping', ts: 1700000000000.5, id: 1 });
    expect(ts(decodeRequest(binary({ op: 'ping', ts: 'x'.repeat(64) }), true))).toBe('x'.repeat(64));
    expect(ts(decodeRequest(binary({ op: 'ping', ts: 'x'.repeat(65) }), true))).toBeUndefined();
    expect(ts(decodeRequest(binary({ op: 'ping', ts: { a: [1, 2] } }), true))).toBeUndefined();
    expect(ts(decodeRequest(binary({ op: 'ping', ts: [1] }), true))).toBeUndefined();
    expect(ts(decodeRequest(binary({ op: 'ping', ts: true }), true))).toBeUndefined();
    expect(ts(decodeRequest(binary({ op: 'ping', ts: Uint8Array.of(1) }), true))).toBeUndefined();
    const bare = decodeRequest(binary({ op: 'ping' }), true);
    expect(isRequestError(bare)).toBe(false);
    expect(ts(bare)).toBeUndefined();
    // The pong built from it carries no ts key at all.
    expect(decodeStandard(encode({ t: 'pong', ts: ts(bare), serverTs: 1 }))).toEqual({ t: 'pong', serverTs: 1 });
  });

  it('decodes symbols with defaults and validates prefix and limit', () => {
    expect(decodeRequest(text('{"op":"symbols"}'), false)).toEqual({ op: 'symbols', prefix: '', limit: undefined });
    expect(decodeRequest(text('{"op":"symbols","prefix":null,"limit":null}'), false)).toEqual({ op: 'symbols', prefix: '', limit: undefined });
    expect(decodeRequest(binary({ op: 'symbols', prefix: 'EUR', limit: 10, id: 'q' }), true)).toEqual({
      op: 'symbols',
      prefix: 'EUR',
      limit: 10,
      id: 'q',
    });
    expect(decodeRequest(binary({ op: 'symbols', prefix: 'x'.repeat(64) }), true)).toMatchObject({ prefix: 'x'.repeat(64) });
    for (const bad of [{ prefix: 'x'.repeat(65) }, { prefix: 5 }, { prefix: ['A'] }]) {
      const e = expectError(decodeRequest(binary({ op: 'symbols', id: 4, ...bad }), true), 'BAD_REQUEST', 4);
      expect(e.msg).toContain('prefix');
    }
    for (const limit of [0, -1, 1.5, '10', true, 2 ** 53]) {
      const e = expectError(decodeRequest(binary({ op: 'symbols', limit, id: 'l' }), true), 'BAD_REQUEST', 'l');
      expect(e.msg).toContain('limit');
    }
  });

  it('rejects a sub or unsub without a symbols array', () => {
    for (const op of ['sub', 'unsub']) {
      for (const extra of [{}, { symbols: 'AAPL' }, { symbols: { 0: 'A' } }, { symbols: null }]) {
        const e = expectError(decodeRequest(binary({ op, id: 2, ...extra }), true), 'BAD_REQUEST', 2);
        expect(e.msg).toContain('symbols');
      }
    }
  });

  it('rejects a non-boolean snapshot', () => {
    for (const snapshot of [1, 'false', [], {}]) {
      const e = expectError(decodeRequest(binary({ op: 'sub', symbols: [], snapshot, id: 1 }), true), 'BAD_REQUEST', 1);
      expect(e.msg).toContain('snapshot');
    }
  });

  it('answers UNKNOWN_OP with the id and a bounded copy of the op', () => {
    const e = expectError(decodeRequest(text('{"op":"subscribe","id":"a"}'), false), 'UNKNOWN_OP', 'a');
    expect(e.msg).toContain('"subscribe"');
    const long = decodeRequest(binary({ op: 'z'.repeat(10_000) }), true) as RequestError;
    expectError(long, 'UNKNOWN_OP');
    expect(long.msg).toContain('z'.repeat(32));
    expect(long.msg).not.toContain('z'.repeat(33));
    // Op names are case-sensitive.
    expectError(decodeRequest(text('{"op":"SUB","symbols":[]}'), false), 'UNKNOWN_OP');
  });

  it('rejects a missing or non-string op, echoing a valid id', () => {
    expectError(decodeRequest(text('{"id":5}'), false), 'BAD_REQUEST', 5);
    expectError(decodeRequest(text('{"op":1,"id":"x"}'), false), 'BAD_REQUEST', 'x');
    expectError(decodeRequest(binary({ op: null }), true), 'BAD_REQUEST');
    expectError(decodeRequest(binary({ op: ['sub'] }), true), 'BAD_REQUEST');
  });

  it('rejects messages that are not maps', () => {
    for (const v of [[{ op: 'ping' }], 'ping', 42, null, true, Uint8Array.of(1, 2)]) {
      expectError(decodeRequest(binary(v), true), 'BAD_REQUEST');
    }
    for (const s of ['[{"op":"ping"}]', '"ping"', '42', 'null', 'true']) {
      expectError(decodeRequest(text(s), false), 'BAD_REQUEST');
    }
  });
});

describe('decodeRequest, id', () => {
  it('echoes a string id of up to 128 characters', () => {
    expect(decodeRequest(binary({ op: 'ping', id: 'i'.repeat(128) }), true)).toMatchObject({ id: 'i'.repeat(128) });
    expect(decodeRequest(binary({ op: 'ping', id: '' }), true)).toMatchObject({ id: '' });
  });

  it('echoes a safe integer id, negative or zero too', () => {
    for (const id of [0, -1, 2 ** 53 - 1, -(2 ** 53 - 1)]) {
      expect(decodeRequest(binary({ op: 'ping', id }), true)).toMatchObject({ id });
    }
  });

  it('treats a null id as no id', () => {
    const r = decodeRequest(text('{"op":"ping","id":null}'), false);
    expect(isRequestError(r)).toBe(false);
    expect('id' in r).toBe(false);
  });

  it('rejects any other id without echoing it', () => {
    for (const id of ['i'.repeat(129), 1.5, 2 ** 53, -(2 ** 53), NaN, Infinity, true, ['a'], { a: 1 }, Uint8Array.of(1)]) {
      const e = expectError(decodeRequest(binary({ op: 'ping', id }), true), 'BAD_REQUEST');
      expect(e.msg).toContain('id');
    }
  });

  it('checks the id before the op, so even an unknown op gets BAD_REQUEST for a bad id', () => {
    expectError(decodeRequest(binary({ op: 'nope', id: 1.5 }), true), 'BAD_REQUEST');
  });
});

describe('decodeRequest, hostile frames', () => {
  it('rejects text frames with invalid UTF-8', () => {
    for (const bytes of [
      Uint8Array.of(0x7b, 0xff, 0x7d),
      // {"op":"ping","ts":"<0xc3 without continuation>"}
      Uint8Array.of(...utf8.encode('{"op":"ping","ts":"'), 0xc3, ...utf8.encode('"}')),
      // An encoded surrogate (CESU-8) is not UTF-8.
      Uint8Array.of(...utf8.encode('{"op":"'), 0xed, 0xa0, 0x80, ...utf8.encode('"}')),
    ]) {
      const e = expectError(decodeRequest(ab(bytes), false), 'BAD_REQUEST');
      expect(e.msg).toContain('UTF-8');
    }
  });

  it('rejects text frames that are not JSON', () => {
    for (const s of ['', 'op=ping', '{"op":"ping"', '{op:"ping"}', "{'op':'ping'}"]) {
      expectError(decodeRequest(text(s), false), 'BAD_REQUEST');
    }
  });

  it('rejects binary frames with garbage, truncation or trailing bytes', () => {
    const good = stdEncode({ op: 'ping' });
    for (const bytes of [new Uint8Array(0), Uint8Array.of(0xd9), good.subarray(0, good.length - 1), Uint8Array.of(...good, 0x00), utf8.encode('{"op":"ping"}')]) {
      const r = decodeRequest(ab(bytes), true);
      expect(isRequestError(r), [...bytes].join(',')).toBe(true);
      expect((r as RequestError).code).toBe('BAD_REQUEST');
    }
  });

  it('rejects structured-clone and record extensions in binary frames', () => {
    const shared = { a: 1 };
    const cloned = new Packr({ structuredClone: true, useRecords: false }).pack({ op: 'ping', ts: 1, x: shared, y: shared });
    // A decoder with structured clone on reads this as a valid ping (y is a pointer to x).
    const lenient = new Unpackr({ structuredClone: true, useRecords: false, mapsAsObjects: true }).unpack(cloned) as Record<string, unknown>;
    expect(lenient).toMatchObject({ op: 'ping', ts: 1 });
    expect(lenient['y']).toBe(lenient['x']);
    expectError(decodeRequest(ab(cloned), true), 'BAD_REQUEST');
    expectError(decodeRequest(ab(Uint8Array.of(0xd4, 0x70, 0x00)), true), 'BAD_REQUEST');
    // {op: "ping", ts: <ext 0x70>}
    const head = stdEncode({ op: 'ping', ts: null });
    expectError(decodeRequest(ab(Uint8Array.of(...head.subarray(0, head.length - 1), 0xd4, 0x70, 0x00)), true), 'BAD_REQUEST');
  });

  // Records are a msgpackr extension (ext 0x72): not standard, so refused.
  it('rejects msgpackr record extensions (0x72) in binary frames', () => {
    const record = new Packr({ useRecords: true }).pack({ op: 'ping', ts: 1 });
    expect([...record.subarray(0, 2)]).toEqual([0xd4, 0x72]);
    expect(() => decode(record)).toThrow();
    expectError(decodeRequest(ab(record), true), 'BAD_REQUEST');
  });

  it('does not carry a record definition from one frame over to the next', () => {
    // Frame 1 defines record 0x40 as {op, symbols}; frame 2 uses 0x40 without defining it.
    const define = Uint8Array.of(0xd4, 0x72, 0x40, 0x92, 0xa2, ...utf8.encode('op'), 0xa7, ...utf8.encode('symbols'), 0xa3, ...utf8.encode('sub'), 0x91, 0xa1, 0x41);
    decodeRequest(ab(define), true);
    const use = Uint8Array.of(0x40, 0xa3, ...utf8.encode('sub'), 0x91, 0xa1, 0x42);
    expectError(decodeRequest(ab(use), true), 'BAD_REQUEST');
  });

  it('returns BAD_REQUEST for 100000 nested arrays and maps, and keeps decoding afterwards', () => {
    const depth = 100_000;
    expectError(decodeRequest(ab(new Uint8Array(depth).fill(0x91)), true), 'BAD_REQUEST');
    // {"a": {"a": ... }} as MessagePack.
    const maps = new Uint8Array(depth * 3);
    for (let i = 0; i < depth; i++) maps.set([0x81, 0xa1, 0x61], i * 3);
    expectError(decodeRequest(ab(maps), true), 'BAD_REQUEST');
    expectError(decodeRequest(text('['.repeat(depth) + ']'.repeat(depth)), false), 'BAD_REQUEST');
    // Deep JSON below a valid op: rejected, never echoed.
    const deepTs = decodeRequest(text(`{"op":"ping","ts":${'['.repeat(depth)}${']'.repeat(depth)}}`), false);
    expectError(deepTs, 'BAD_REQUEST');
    // A failed decode leaves no state behind.
    expect(decodeRequest(binary({ op: 'ping', ts: 1, id: 'after' }), true)).toEqual({ op: 'ping', ts: 1, id: 'after' });
  });

  it('keeps the prototype clean for "__proto__" keys', () => {
    const r = decodeRequest(text('{"op":"sub","symbols":["A"],"__proto__":{"polluted":true,"id":"evil"}}'), false);
    expect(r).toEqual({ op: 'sub', channel: 'quote', depth: null, last: null, since: null, symbols: ['A'], snapshot: true, throttleMs: 0 });
    // The binary decoder refuses the key outright.
    const b = decodeRequest(binary(JSON.parse('{"op":"ping","__proto__":{"id":"evil","op":"sub"}}') as object), true);
    expectError(b, 'BAD_REQUEST');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('never throws for arbitrary bytes in either mode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, isBinary) => {
        let r: ClientRequest | RequestError | undefined;
        expect(() => {
          r = decodeRequest(ab(bytes), isBinary);
        }).not.toThrow();
        expect(r).toBeTypeOf('object');
        if (isRequestError(r!)) expect(['BAD_REQUEST', 'UNKNOWN_OP']).toContain(r.code);
        else expect(['sub', 'unsub', 'ping', 'symbols']).toContain(r!.op);
      }),
      { numRuns: 1000 },
    );
  });

  it('never throws for random or corrupted requests, and every success is a valid request', () => {
    const requestArb = fc.record(
      {
        op: fc.oneof(fc.constantFrom('sub', 'unsub', 'ping', 'symbols'), fc.jsonValue({ maxDepth: 1 })),
        id: fc.oneof(fc.string({ maxLength: 140 }), fc.integer(), fc.double(), fc.jsonValue({ maxDepth: 1 })),
        symbols: fc.oneof(fc.array(fc.string()), fc.jsonValue({ maxDepth: 2 })),
        snapshot: fc.oneof(fc.boolean(), fc.jsonValue({ maxDepth: 1 })),
        ts: fc.jsonValue({ maxDepth: 2 }),
        prefix: fc.oneof(fc.string({ maxLength: 70 }), fc.jsonValue({ maxDepth: 1 })),
        limit: fc.oneof(fc.integer(), fc.jsonValue({ maxDepth: 1 })),
      },
      { requiredKeys: [] },
    );
    const framed = fc
      .tuple(requestArb, fc.boolean(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }))
      .map(([req, isBinary, edits]) => {
        const bytes = Uint8Array.from(isBinary ? stdEncode(req) : utf8.encode(JSON.stringify(req)));
        for (const [at, b] of edits) bytes[at % bytes.length] = b;
        return { bytes, isBinary };
      });
    fc.assert(
      fc.property(framed, ({ bytes, isBinary }) => {
        const r = decodeRequest(ab(bytes), isBinary);
        if (isRequestError(r)) return;
        if (r.id !== undefined) {
          expect(typeof r.id === 'string' ? r.id.length <= 128 : Number.isSafeInteger(r.id)).toBe(true);
        }
        switch (r.op) {
          case 'sub':
            expect(typeof r.snapshot).toBe('boolean');
            expect(Array.isArray(r.symbols)).toBe(true);
            break;
          case 'unsub':
            expect(Array.isArray(r.symbols)).toBe(true);
            break;
          case 'ping':
            expect(r.ts === undefined || typeof r.ts === 'number' || (typeof r.ts === 'string' && r.ts.length <= 64)).toBe(true);
            break;
          case 'symbols':
            expect(typeof r.prefix === 'string' && r.prefix.length <= 64).toBe(true);
            expect(r.limit === undefined || (Number.isSafeInteger(r.limit) && r.limit >= 1)).toBe(true);
            break;
        }
        // The scalars a reply echoes (id, ping ts) encode as standard MessagePack.
        decodeStandard(encode({ t: 'pong', id: r.id, ts: r.op === 'ping' ? r.ts : undefined, serverTs: 1 }));
      }),
      { numRuns: 1000 },
    );
  });
});
