/**
 * Encoding of server messages and decoding of client requests.
 *
 * Server frames are one MessagePack array of messages. Each message is
 * encoded once and its bytes are shared by every client that gets it; a
 * client's frame is the array header followed by the shared pieces, which is
 * a valid MessagePack array because an array is its header followed by its
 * encoded elements.
 */
import { decode as decodeStrict, ExtData } from '@msgpack/msgpack';
import { Packr } from 'msgpackr';
import { BOOK_DEPTHS, CHANNELS, CLIENT_OPS, DEFAULT_BOOK_DEPTH, type Channel, type ClientRequest, type Position, type RequestError, type RequestId } from './messages.js';

/** `sub, unsub, ping, auth or symbols`, from the one list of ops. */
const EXPECTED_OPS = `${CLIENT_OPS.slice(0, -1).join(', ')} or ${CLIENT_OPS.at(-1)}`;

// Standard MessagePack only: maps (not msgpackr records), no extensions, the
// smallest map header, so any decoder (Python msgpack, @msgpack/msgpack) reads it.
// undefined would otherwise become a fixext1: encode it as nil on the data path
// (which never holds one) and leave the key out on the control path.
const dataPackr = new Packr({ useRecords: false, variableMapSize: true, moreTypes: false, encodeUndefinedAsNil: true });
const controlPackr = new Packr({
  useRecords: false,
  variableMapSize: true,
  moreTypes: false,
  encodeUndefinedAsNil: true,
  skipValues: [undefined],
} as ConstructorParameters<typeof Packr>[0]);

/** Encodes one control message (hello, ack, err, ...); keys whose value is undefined are left out. */
export function encode(message: object): Uint8Array {
  return controlPackr.pack(message);
}

/** Encodes one data message (snap, upd) on the hot path; it must hold no undefined values. */
export function encodeData(message: object): Uint8Array {
  return dataPackr.pack(message);
}

/** Writes a MessagePack array header for `n` elements at `offset`; returns bytes written. */
export function writeArrayHeader(buf: Uint8Array, offset: number, n: number): number {
  if (n < 16) {
    buf[offset] = 0x90 | n;
    return 1;
  }
  if (n < 0x10000) {
    buf[offset] = 0xdc;
    buf[offset + 1] = n >>> 8;
    buf[offset + 2] = n & 0xff;
    return 3;
  }
  buf[offset] = 0xdd;
  buf[offset + 1] = n >>> 24;
  buf[offset + 2] = (n >>> 16) & 0xff;
  buf[offset + 3] = (n >>> 8) & 0xff;
  buf[offset + 4] = n & 0xff;
  return 5;
}

/** Largest array header, in bytes. */
export const MAX_ARRAY_HEADER = 5;

// Client input is hostile until proven otherwise, and small: it is decoded
// by a strict standard decoder (no msgpackr records or structured-clone
// extension, CVE-2023-52079; rejects "__proto__" keys; 0xc1 is an error).
// Extensions come back as ExtData objects, which no request field accepts.
const utf8 = new TextDecoder('utf-8', { fatal: true });

function requestId(v: unknown): RequestId | undefined {
  if (typeof v === 'string' && v.length <= 128) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  return undefined;
}

function fail(code: RequestError['code'], msg: string, id: RequestId | undefined): RequestError {
  return id === undefined ? { code, msg } : { code, msg, id };
}

/**
 * Decodes and validates one client message. `data` is only valid during the
 * uWS message handler, so this runs synchronously and copies nothing it keeps
 * (strings are decoded into new JS strings).
 */
export function decodeRequest(data: ArrayBuffer, isBinary: boolean): ClientRequest | RequestError {
  let msg: unknown;
  try {
    const bytes = new Uint8Array(data);
    msg = isBinary ? decodeStrict(bytes) : JSON.parse(utf8.decode(bytes));
  } catch {
    return fail('BAD_REQUEST', isBinary ? 'frame is not valid MessagePack' : 'frame is not valid UTF-8 JSON', undefined);
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg) || msg instanceof Uint8Array || msg instanceof ExtData) {
    return fail('BAD_REQUEST', 'message must be a map with a string key "op"', undefined);
  }
  const m = msg as Record<string, unknown>;
  const rawId = m['id'];
  const id = requestId(rawId);
  if (rawId !== undefined && rawId !== null && id === undefined) {
    return fail('BAD_REQUEST', 'id must be a string (up to 128 characters) or an integer', undefined);
  }
  const op = m['op'];
  if (typeof op !== 'string') return fail('BAD_REQUEST', 'message must have a string key "op"', id);
  const withId = <T extends object>(req: T): T => (id === undefined ? req : { ...req, id });
  switch (op) {
    case 'sub':
    case 'unsub': {
      const symbols = m['symbols'];
      if (!Array.isArray(symbols)) return fail('BAD_REQUEST', `${op}: "symbols" must be an array of strings`, id);
      const rawChannel = m['channel'] ?? 'quote';
      if (!CHANNELS.includes(rawChannel as Channel)) {
        return fail('BAD_REQUEST', `${op}: "channel" must be one of ${CHANNELS.join(', ')} (absent: quote)`, id);
      }
      const channel = rawChannel as Channel;
      if (op === 'unsub') return withId({ op, channel, symbols });
      const rawDepth = m['depth'] ?? null;
      let depth: number | null = null;
      if (channel === 'book') {
        depth = rawDepth === null ? DEFAULT_BOOK_DEPTH : (rawDepth as number);
        if (!(BOOK_DEPTHS as readonly unknown[]).includes(rawDepth ?? DEFAULT_BOOK_DEPTH)) {
          return fail('BAD_REQUEST', `sub: "depth" must be one of ${BOOK_DEPTHS.join(', ')} (absent: ${DEFAULT_BOOK_DEPTH})`, id);
        }
      } else if (rawDepth !== null) {
        return fail('BAD_REQUEST', 'sub: "depth" applies to channel book only', id);
      }
      const rawLast = m['last'] ?? null;
      const rawSince = m['since'] ?? null;
      if (channel !== 'trade' && (rawLast !== null || rawSince !== null)) {
        return fail('BAD_REQUEST', `sub: "${rawLast !== null ? 'last' : 'since'}" applies to channel trade only`, id);
      }
      if (rawLast !== null && (!Number.isSafeInteger(rawLast) || (rawLast as number) < 0)) {
        return fail('BAD_REQUEST', 'sub: "last" must be a non-negative integer (the most recent trades to send first)', id);
      }
      let since: Map<string, Position> | null = null;
      if (rawSince !== null) {
        since = parseSince(rawSince);
        if (since === null) {
          return fail('BAD_REQUEST', 'sub: "since" must map each symbol to {"e": epoch string, "q": non-negative integer}, as in the ack\'s "pos"', id);
        }
      }
      const snapshot = m['snapshot'];
      if (snapshot !== undefined && snapshot !== null && typeof snapshot !== 'boolean') {
        return fail('BAD_REQUEST', 'sub: "snapshot" must be a boolean', id);
      }
      const throttleMs = m['throttleMs'] ?? 0;
      if (!Number.isSafeInteger(throttleMs) || (throttleMs as number) < 0) {
        return fail('BAD_REQUEST', 'sub: "throttleMs" must be a non-negative integer (milliseconds; 0 = no throttle)', id);
      }
      return withId({ op, channel, symbols, snapshot: snapshot !== false, throttleMs: throttleMs as number, depth, last: rawLast as number | null, since });
    }
    case 'ping': {
      // Echo only scalars: the reply must not carry arbitrary client structures.
      const ts = m['ts'] ?? undefined;
      if (ts !== undefined && !Number.isFinite(ts) && !(typeof ts === 'string' && ts.length <= 64)) {
        return fail('BAD_REQUEST', 'ping: "ts" must be a finite number or a string of up to 64 characters', id);
      }
      return withId({ op, ts });
    }
    case 'symbols': {
      const prefix = m['prefix'] ?? '';
      if (typeof prefix !== 'string' || prefix.length > 64) {
        return fail('BAD_REQUEST', 'symbols: "prefix" must be a string of up to 64 characters', id);
      }
      const limit = m['limit'] ?? undefined;
      if (limit !== undefined && (!Number.isSafeInteger(limit) || (limit as number) < 1)) {
        return fail('BAD_REQUEST', 'symbols: "limit" must be a positive integer', id);
      }
      return withId({ op, prefix, limit: limit as number | undefined });
    }
    case 'auth': {
      const token = m['token'];
      if (typeof token !== 'string' || token === '' || token.length > 8192) {
        return fail('BAD_REQUEST', 'auth: "token" must be a non-empty string', id);
      }
      return withId({ op, token });
    }
    default:
      return fail('UNKNOWN_OP', `unknown op ${JSON.stringify(op.slice(0, 32))} (expected ${EXPECTED_OPS})`, id);
  }
}

/** `since`: symbol -> {e, q}; null when malformed. Keys go into a Map, so no key can touch a prototype. */
function parseSince(raw: unknown): Map<string, Position> | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || raw instanceof Uint8Array || raw instanceof ExtData) return null;
  const out = new Map<string, Position>();
  for (const [s, p] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) return null;
    const e = (p as Record<string, unknown>)['e'];
    const q = (p as Record<string, unknown>)['q'];
    if (typeof e !== 'string' || e.length > 128 || !Number.isSafeInteger(q) || (q as number) < 0) return null;
    out.set(s, { e, q: q as number });
  }
  return out;
}

/** True when the decode result is an error reply rather than a request. */
export function isRequestError(r: ClientRequest | RequestError): r is RequestError {
  return 'code' in r;
}
