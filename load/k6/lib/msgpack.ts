/**
 * A standard MessagePack decoder for k6 scripts.
 *
 * k6 runs scripts in its own JavaScript runtime: no Node.js modules, no npm
 * packages without a bundler, and no `TextDecoder`. The gateway's frames use
 * only standard types, so this decodes those and refuses the rest:
 * nil, booleans, integers of every width, float32/64, str 8/16/32 (UTF-8
 * decoded by hand), bin (as a `Uint8Array` copy), arrays and maps. Extension
 * types and the never-used byte 0xc1 throw a {@link MsgpackError}.
 *
 * 64-bit integers become numbers: exact up to 2^53, rounded beyond (no
 * BigInt, which not every k6 runtime supports).
 */

/** A decoded MessagePack value. */
export type MsgpackValue = null | boolean | number | string | Uint8Array | MsgpackValue[] | MsgpackMap;

/** A decoded map; keys are strings (integer keys are converted). */
export interface MsgpackMap {
  [key: string]: MsgpackValue;
}

/** The input is not one well-formed, standard MessagePack value. */
export class MsgpackError extends Error {
  override readonly name = 'MsgpackError';
}

const TWO_32 = 0x1_0000_0000;

/** Read position over one input; one per {@link decode} call. */
interface Reader {
  bytes: Uint8Array;
  view: DataView;
  pos: number;
}

/**
 * Decodes exactly one MessagePack value. Throws {@link MsgpackError} on
 * truncated input, trailing bytes, extension types, 0xc1, or map keys that
 * are neither strings nor integers.
 */
export function decode(input: ArrayBuffer | Uint8Array): MsgpackValue {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const r: Reader = { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), pos: 0 };
  const value = readValue(r);
  if (r.pos !== bytes.length) throw new MsgpackError(`${bytes.length - r.pos} trailing bytes after the value`);
  return value;
}

/** Advances past `n` bytes and returns where they start, or throws if the input ends first. */
function take(r: Reader, n: number): number {
  const at = r.pos;
  if (at + n > r.bytes.length) throw new MsgpackError(`truncated input: need ${n} bytes at offset ${at}`);
  r.pos = at + n;
  return at;
}

function readValue(r: Reader): MsgpackValue {
  const b = r.bytes[take(r, 1)] as number;
  if (b <= 0x7f) return b; // positive fixint
  if (b >= 0xe0) return b - 0x100; // negative fixint
  if (b <= 0x8f) return readMap(r, b & 0x0f);
  if (b <= 0x9f) return readArray(r, b & 0x0f);
  if (b <= 0xbf) return readString(r, b & 0x1f);
  const v = r.view;
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return readBin(r, r.bytes[take(r, 1)] as number);
    case 0xc5: return readBin(r, v.getUint16(take(r, 2)));
    case 0xc6: return readBin(r, v.getUint32(take(r, 4)));
    case 0xca: return v.getFloat32(take(r, 4));
    case 0xcb: return v.getFloat64(take(r, 8));
    case 0xcc: return r.bytes[take(r, 1)] as number;
    case 0xcd: return v.getUint16(take(r, 2));
    case 0xce: return v.getUint32(take(r, 4));
    case 0xcf: { const at = take(r, 8); return v.getUint32(at) * TWO_32 + v.getUint32(at + 4); }
    case 0xd0: return v.getInt8(take(r, 1));
    case 0xd1: return v.getInt16(take(r, 2));
    case 0xd2: return v.getInt32(take(r, 4));
    case 0xd3: { const at = take(r, 8); return v.getInt32(at) * TWO_32 + v.getUint32(at + 4); }
    case 0xd9: return readString(r, r.bytes[take(r, 1)] as number);
    case 0xda: return readString(r, v.getUint16(take(r, 2)));
    case 0xdb: return readString(r, v.getUint32(take(r, 4)));
    case 0xdc: return readArray(r, v.getUint16(take(r, 2)));
    case 0xdd: return readArray(r, v.getUint32(take(r, 4)));
    case 0xde: return readMap(r, v.getUint16(take(r, 2)));
    case 0xdf: return readMap(r, v.getUint32(take(r, 4)));
    case 0xc1: throw new MsgpackError(`byte 0xc1 (never used) at offset ${r.pos - 1}`);
    default: // 0xc7-0xc9 ext 8/16/32, 0xd4-0xd8 fixext
      throw new MsgpackError(`extension type 0x${b.toString(16)} at offset ${r.pos - 1} is not supported`);
  }
}

/** Each element takes at least one byte, so a count beyond the input is refused before allocating. */
function checkCount(r: Reader, count: number, perItem: number): void {
  if (count * perItem > r.bytes.length - r.pos) throw new MsgpackError(`truncated input: ${count} items announced at offset ${r.pos}`);
}

function readArray(r: Reader, count: number): MsgpackValue[] {
  checkCount(r, count, 1);
  const out: MsgpackValue[] = new Array<MsgpackValue>(count);
  for (let i = 0; i < count; i++) out[i] = readValue(r);
  return out;
}

function readMap(r: Reader, count: number): MsgpackMap {
  checkCount(r, count, 2);
  const out: MsgpackMap = {};
  for (let i = 0; i < count; i++) {
    const k = readValue(r);
    let key: string;
    if (typeof k === 'string') key = k;
    else if (typeof k === 'number' && Number.isInteger(k)) key = String(k);
    else throw new MsgpackError(`map key of type ${k === null ? 'nil' : typeof k} at offset ${r.pos}`);
    const value = readValue(r);
    // A plain assignment of "__proto__" would replace the prototype instead of adding a key.
    if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    else out[key] = value;
  }
  return out;
}

function readBin(r: Reader, length: number): Uint8Array {
  const at = take(r, length);
  return r.bytes.slice(at, at + length);
}

/** Characters are collected in chunks: `String.fromCharCode.apply` has an argument-count limit. */
const CHUNK = 4096;

function readString(r: Reader, length: number): string {
  const bytes = r.bytes;
  let i = take(r, length);
  const end = i + length;
  // Short ASCII strings (keys, symbols, type names) are the common case.
  let ascii = length <= 32;
  for (let j = i; ascii && j < end; j++) if ((bytes[j] as number) >= 0x80) ascii = false;
  if (ascii) {
    let s = '';
    for (; i < end; i++) s += String.fromCharCode(bytes[i] as number);
    return s;
  }
  // UTF-8 as the WHATWG Encoding standard decodes it: each maximal invalid
  // subpart becomes one U+FFFD, so the result matches `TextDecoder`.
  const units: number[] = [];
  let out = '';
  while (i < end) {
    const b0 = bytes[i++] as number;
    let cp: number;
    let need: number;
    let lower = 0x80;
    let upper = 0xbf;
    if (b0 < 0x80) {
      cp = b0;
      need = 0;
    } else if (b0 >= 0xc2 && b0 <= 0xdf) {
      cp = b0 & 0x1f;
      need = 1;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      cp = b0 & 0x0f;
      need = 2;
      if (b0 === 0xe0) lower = 0xa0; // overlong
      else if (b0 === 0xed) upper = 0x9f; // surrogates
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      cp = b0 & 0x07;
      need = 3;
      if (b0 === 0xf0) lower = 0x90; // overlong
      else if (b0 === 0xf4) upper = 0x8f; // beyond U+10FFFF
    } else {
      cp = 0xfffd;
      need = 0;
    }
    for (; need > 0; need--) {
      const b = bytes[i];
      if (i >= end || b === undefined || b < lower || b > upper) {
        cp = 0xfffd; // the bad byte is not consumed: it starts the next sequence
        break;
      }
      cp = (cp << 6) | (b & 0x3f);
      i++;
      lower = 0x80;
      upper = 0xbf;
    }
    if (cp > 0xffff) {
      cp -= 0x10000;
      units.push(0xd800 | (cp >> 10), 0xdc00 | (cp & 0x3ff));
    } else units.push(cp);
    if (units.length >= CHUNK) {
      out += String.fromCharCode.apply(null, units);
      units.length = 0;
    }
  }
  return out + String.fromCharCode.apply(null, units);
}
