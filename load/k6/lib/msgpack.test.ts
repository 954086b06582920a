import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Encoder, ExtData, decode as reference, encode } from '@msgpack/msgpack';
import { MsgpackError, decode } from './msgpack.ts';

// Node's globals, which this directory's type configuration (k6's runtime) leaves out.
declare const TextDecoder: new (label: string) => { decode(input: Uint8Array): string };
declare const TextEncoder: new () => { encode(input: string): Uint8Array };

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

/** The decoder under test must read exactly what the reference decoder reads. */
function expectSameAsReference(encoded: Uint8Array): void {
  expect(decode(encoded)).toEqual(reference(encoded));
}

/** JSON-like values plus binary, with floats, integers up to 2^53 and any Unicode text. */
const key = fc.string({ unit: 'binary', maxLength: 8 }).filter((k) => k !== '__proto__');
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double(),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('v'), { maxLength: 6 }),
    fc.dictionary(key, tie('v'), { maxKeys: 6, noNullPrototype: true }),
  ),
})).v;

describe('decode', () => {
  it('reads what @msgpack/msgpack writes', () => {
    fc.assert(fc.property(value, (v) => expectSameAsReference(encode(v))));
  });

  it('reads float32', () => {
    const f32 = new Encoder({ forceFloat32: true });
    fc.assert(fc.property(fc.array(fc.float(), { maxLength: 8 }), (v) => expectSameAsReference(f32.encode(v))));
  });

  it('reads integers written as floats', () => {
    const asFloat = new Encoder({ forceIntegerToFloat: true });
    fc.assert(fc.property(fc.maxSafeInteger(), (n) => {
        expect(decode(asFloat.encode(n))).toBe(n);
      }));
  });

  it('reads 64-bit integers of every value as the reference does (exact up to 2^53)', () => {
    const u64 = (n: bigint): Uint8Array => {
      const b = new Uint8Array(9);
      b[0] = 0xcf;
      new DataView(b.buffer).setBigUint64(1, n);
      return b;
    };
    const i64 = (n: bigint): Uint8Array => {
      const b = new Uint8Array(9);
      b[0] = 0xd3;
      new DataView(b.buffer).setBigInt64(1, n);
      return b;
    };
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (n) => expectSameAsReference(u64(n))));
    fc.assert(fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (n) => expectSameAsReference(i64(n))));
    expect(decode(u64(2n ** 53n))).toBe(2 ** 53);
    expect(decode(i64(-(2n ** 53n)))).toBe(-(2 ** 53));
  });

  it('accepts every integer width for the same value', () => {
    const encodings = [
      bytes(0x2a),
      bytes(0xcc, 0x2a),
      bytes(0xcd, 0x00, 0x2a),
      bytes(0xce, 0, 0, 0, 0x2a),
      bytes(0xcf, 0, 0, 0, 0, 0, 0, 0, 0x2a),
      bytes(0xd0, 0x2a),
      bytes(0xd1, 0x00, 0x2a),
      bytes(0xd2, 0, 0, 0, 0x2a),
      bytes(0xd3, 0, 0, 0, 0, 0, 0, 0, 0x2a),
      bytes(0xcb, 0x40, 0x45, 0, 0, 0, 0, 0, 0),
      bytes(0xca, 0x42, 0x28, 0, 0),
    ];
    for (const e of encodings) expect(decode(e)).toBe(42);
    for (const e of [bytes(0xd0, 0xd6), bytes(0xd1, 0xff, 0xd6), bytes(0xd2, 0xff, 0xff, 0xff, 0xd6)]) expect(decode(e)).toBe(-42);
    expect(decode(bytes(0xe0))).toBe(-32);
    expect(decode(bytes(0xff))).toBe(-1);
  });

  it('decodes the wire example of docs/PROTOCOL.md', () => {
    const hex = '91 84 a1 74 a3 75 70 64 a1 73 a4 41 41 50 4c a1 71 2a a1 64 81 a3 62 69 64 cb 40 67 b0 00 00 00 00 00';
    const frame = Uint8Array.from(hex.split(' ').map((h) => parseInt(h, 16)));
    expect(decode(frame)).toEqual([{ t: 'upd', s: 'AAPL', q: 42, d: { bid: 189.5 } }]);
    expect(decode(frame.buffer)).toEqual(decode(frame));
  });

  it('crosses the size boundaries of str, bin, array and map headers', () => {
    for (const n of [31, 32, 255, 256, 65536]) {
      expectSameAsReference(encode('é'.repeat(n / 2) + 'x'.repeat(n % 2)));
      expectSameAsReference(encode(new Uint8Array(n).fill(7)));
    }
    for (const n of [15, 16, 256]) {
      expectSameAsReference(encode(new Array<number>(n).fill(1)));
      expectSameAsReference(encode(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))));
    }
    // Wider headers than needed are valid too, and reach the 32-bit paths cheaply.
    const wide: Uint8Array[] = [
      bytes(0xdd, 0, 0, 0, 2, 0x01, 0xc3),
      bytes(0xdc, 0, 2, 0x01, 0xc3),
      bytes(0xdf, 0, 0, 0, 1, 0xa1, 0x61, 0x01),
      bytes(0xde, 0, 1, 0xa1, 0x61, 0x01),
      bytes(0xdb, 0, 0, 0, 2, 0x68, 0x69),
      bytes(0xda, 0, 2, 0x68, 0x69),
      bytes(0xd9, 2, 0x68, 0x69),
      bytes(0xc6, 0, 0, 0, 2, 1, 2),
      bytes(0xc5, 0, 2, 1, 2),
    ];
    for (const e of wide) expectSameAsReference(e);
  });

  it('decodes UTF-8 exactly as TextDecoder does, invalid sequences included', () => {
    const utf8 = new TextDecoder('utf-8');
    const str8 = (payload: Uint8Array): Uint8Array => Uint8Array.from([0xd9, payload.length, ...payload]);
    // Bytes at the edges of UTF-8's ranges, so lead/continuation mixes come up often.
    const edge = fc.constantFrom(0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff);
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.array(edge, { maxLength: 12 }).map((b) => Uint8Array.from(b)),
      // Mostly well-formed text with some bytes changed, to reach the edge cases more often.
      fc.tuple(fc.string({ unit: 'binary', maxLength: 20 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0x80, max: 0xff })), { maxLength: 3 }))
        .map(([s, edits]) => {
          const b = new TextEncoder().encode(s);
          for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
          return b;
        }),
    );
    fc.assert(
      fc.property(payload, (p) => {
        expect(decode(str8(p))).toBe(utf8.decode(p));
      }),
      { numRuns: 1000 },
    );
  });

  it('reads integer map keys as strings and a __proto__ key as a plain key', () => {
    expect(decode(bytes(0x81, 0x01, 0xa1, 0x61))).toEqual({ 1: 'a' });
    const m = decode(encode(JSON.parse('{"__proto__": {"polluted": true}}'))) as Record<string, unknown>;
    expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
    expect(Object.keys(m)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses extension types, 0xc1, bad map keys, truncated input and trailing bytes', () => {
    for (const n of [1, 2, 4, 8, 16, 3, 300, 70000]) {
      expect(() => decode(encode(new ExtData(5, new Uint8Array(n))))).toThrow(MsgpackError);
    }
    expect(() => decode(encode(new Date(0)))).toThrow(MsgpackError);
    expect(() => decode(bytes(0xc1))).toThrow(/0xc1/);
    expect(() => decode(bytes(0x81, 0xc0, 0x01))).toThrow(/map key/);
    expect(() => decode(bytes(0x81, 0xc3, 0x01))).toThrow(/map key/);
    expect(() => decode(bytes(0xc0, 0xc0))).toThrow(/trailing/);
    expect(() => decode(bytes(0xdd, 0xff, 0xff, 0xff, 0xff))).toThrow(/truncated/);
    expect(() => decode(new Uint8Array(0))).toThrow(/truncated/);
    fc.assert(
      fc.property(value, (v) => {
        const e = encode(v);
        for (let cut = 0; cut < e.length; cut++) expect(() => decode(e.subarray(0, cut))).toThrow(MsgpackError);
      }),
      { numRuns: 50 },
    );
  });
});
