/**
 * Capture files: NATS traffic recorded by `feed:record` and published again
 * by `feed:replay`.
 *
 * A capture is gzip-compressed NDJSON (UTF-8, one JSON value per line, `\n`
 * line ends). Line 1 is the header:
 *
 *   {"format":"tickgate-capture","v":1,"subject":"md.sim.>","startedAt":1764100000000}
 *
 * `subject` is what the recorder subscribed to (wildcards allowed) and
 * `startedAt` the wall clock, epoch milliseconds, when recording started.
 * A recording of several subjects (quotes and books, say) names them all in
 * `subjects`, the first of them also in `subject`:
 *
 *   {"format":"tickgate-capture","v":1,"subject":"md.sim.>","subjects":["md.sim.>","book.sim.>"],"startedAt":1764100000000}
 *
 * Every further line is one message, in order of arrival:
 *
 *   {"t":12.5,"subject":"md.sim.AAPL","codec":"msgpack","data":{"s":"AAPL","bid":190.12,"ts":1764100000012.5}}
 *
 * - `t`: milliseconds since `startedAt` when the message arrived, from the
 *   monotonic clock (`performance.now()`), rounded to the microsecond; never
 *   decreases from one line to the next.
 * - `subject`: the subject the message was published on.
 * - `codec` and `data`:
 *   - `"msgpack"`: the payload was one standard MessagePack map; `data` is
 *     that map decoded (with @msgpack/msgpack).
 *   - `"json"`: the payload was the UTF-8 text of one JSON object; `data` is
 *     that object.
 *   - `"bytes"`: anything else; `data` is the payload's bytes in base64.
 *
 * A payload is stored decoded only when JSON holds it without loss: string
 * keys, valid UTF-8, finite numbers (not -0), integers within 2^53, and no
 * binary, extension or timestamp values, at most 64 levels deep. Otherwise
 * it is stored as `bytes`, so replay publishes exactly what arrived. A
 * decoded payload is re-encoded by replay with the same codec: the same
 * logical map, though not always the same bytes (a MessagePack encoder may
 * choose other integer or float widths, and JSON loses whitespace, key
 * duplicates and digits beyond double precision, as `JSON.parse` does).
 * Message headers and reply subjects are not recorded.
 *
 * Readers reject a file whose header is not `tickgate-capture` version 1 and
 * name the line of the first malformed record; unknown keys are ignored.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream';
import { pipeline as pipelinePromise } from 'node:stream/promises';
import { createGunzip, createGzip, type Gzip } from 'node:zlib';
import { Decoder, Encoder, type DecoderOptions } from '@msgpack/msgpack';

export const CAPTURE_FORMAT = 'tickgate-capture';
export const CAPTURE_VERSION = 1;

/** How a payload is stored in a capture. */
export type CaptureCodec = 'msgpack' | 'json' | 'bytes';

/** Line 1 of a capture. */
export interface CaptureHeader {
  format: typeof CAPTURE_FORMAT;
  v: typeof CAPTURE_VERSION;
  /** Subject the recorder subscribed to (wildcards allowed); the first of `subjects`. */
  subject: string;
  /** Every subject the recorder subscribed to, in the order given ([subject] for a single one). */
  subjects: string[];
  /** Wall clock when recording started, epoch milliseconds. */
  startedAt: number;
}

/** A decoded payload: a map with string keys. */
export type PayloadMap = Record<string, unknown>;

/** One recorded message, as read back from a capture. */
export type CaptureRecord = {
  /** 1-based line number in the capture (the header is line 1). */
  line: number;
  /** Milliseconds since the header's `startedAt`. */
  t: number;
  subject: string;
} & ({ codec: 'msgpack' | 'json'; data: PayloadMap } | { codec: 'bytes'; data: Uint8Array });

/** A capture file is unreadable or malformed; the message names the file and line. */
export class CaptureFormatError extends Error {
  override readonly name = 'CaptureFormatError';
  constructor(
    readonly path: string,
    /** 1-based line number where the problem is. */
    readonly line: number,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`${path}: line ${line}: ${reason}`, options);
  }
}

// ---------------------------------------------------------------------------
// Classifying a payload

/** Deeper payloads are stored as bytes: the lossless check and JSON.stringify both recurse. */
const MAX_DEPTH = 64;

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Map keys decoded strictly: @msgpack/msgpack's own string decoding does not
 * validate UTF-8 (it maps invalid bytes to arbitrary characters), so a key
 * that is not valid UTF-8 fails the decode and the payload is kept as bytes.
 */
const strictKeys: NonNullable<DecoderOptions['keyDecoder']> = {
  canBeCached: () => true,
  decode: (bytes, offset, length) => fatalUtf8.decode(bytes.subarray(offset, offset + length)),
};

function stringKeysOnly(key: unknown): string {
  if (typeof key !== 'string') throw new TypeError('map key is not a string');
  return key;
}

// Two decodes of the same bytes, walked side by side: the plain one tells a
// `str` from a `bin` (both are Uint8Array in the raw one), the raw one has
// the original bytes of every string (to validate their UTF-8) and every
// 64-bit integer as a bigint (to see whether a number lost precision).
const plainDecoder = new Decoder({ mapKeyConverter: stringKeysOnly });
const rawDecoder = new Decoder({ rawStrings: true, useBigInt64: true, keyDecoder: strictKeys, mapKeyConverter: stringKeysOnly });

function isPlainObject(v: unknown): v is PayloadMap {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function jsonSafeNumber(n: number): boolean {
  return Number.isFinite(n) && !Object.is(n, -0);
}

/** True when `plain` (decoded MessagePack) survives JSON exactly; `raw` is the same bytes decoded raw. */
function losslessMsgpack(plain: unknown, raw: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  switch (typeof plain) {
    case 'string':
      if (!(raw instanceof Uint8Array)) return false;
      try {
        return fatalUtf8.decode(raw) === plain;
      } catch {
        return false;
      }
    case 'number':
      if (!jsonSafeNumber(plain)) return false;
      return typeof raw === 'bigint' ? Number.isSafeInteger(plain) && BigInt(plain) === raw : raw === plain;
    case 'boolean':
      return raw === plain;
    case 'object':
      if (plain === null) return raw === null;
      if (Array.isArray(plain)) {
        if (!Array.isArray(raw) || raw.length !== plain.length) return false;
        for (let i = 0; i < plain.length; i++) if (!losslessMsgpack(plain[i], raw[i], depth + 1)) return false;
        return true;
      }
      if (!isPlainObject(plain) || !isPlainObject(raw)) return false;
      for (const key of Object.keys(plain)) {
        if (!Object.hasOwn(raw, key) || !losslessMsgpack(plain[key], raw[key], depth + 1)) return false;
      }
      return Object.keys(raw).length === Object.keys(plain).length;
    default:
      return false;
  }
}

/** True when a JSON.parse result is written back by JSON.stringify as the same value. */
function losslessJson(v: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      // "1e999" parses to Infinity and "-0" to -0; JSON.stringify writes null and 0.
      return jsonSafeNumber(v);
    case 'object':
      if (v === null) return true;
      if (Array.isArray(v)) return v.every((x) => losslessJson(x, depth + 1));
      for (const key of Object.keys(v)) if (!losslessJson((v as PayloadMap)[key], depth + 1)) return false;
      return true;
    default:
      return false;
  }
}

function asMsgpackMap(bytes: Uint8Array): PayloadMap | undefined {
  // A map starts with 0x80-0x8f, 0xde or 0xdf; checking first skips two
  // failing decodes for JSON text and other payloads.
  const b = bytes[0];
  if (b === undefined || !((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf)) return undefined;
  let plain: unknown;
  let raw: unknown;
  try {
    plain = plainDecoder.decode(bytes);
    raw = rawDecoder.decode(bytes);
  } catch {
    return undefined;
  }
  return isPlainObject(plain) && losslessMsgpack(plain, raw, 0) ? plain : undefined;
}

function asJsonObject(bytes: Uint8Array): PayloadMap | undefined {
  let v: unknown;
  try {
    v = JSON.parse(fatalUtf8.decode(bytes));
  } catch {
    return undefined;
  }
  return isPlainObject(v) && losslessJson(v, 0) ? v : undefined;
}

/**
 * How a payload is stored: decoded when it is a MessagePack map or a JSON
 * object that JSON holds without loss, else as bytes. The two never overlap:
 * JSON text starts with `{` or a blank, which MessagePack reads as an integer.
 */
export function classifyPayload(bytes: Uint8Array): { codec: 'msgpack' | 'json'; data: PayloadMap } | { codec: 'bytes'; data: Uint8Array } {
  const m = asMsgpackMap(bytes);
  if (m !== undefined) return { codec: 'msgpack', data: m };
  const j = asJsonObject(bytes);
  if (j !== undefined) return { codec: 'json', data: j };
  return { codec: 'bytes', data: bytes };
}

// Standard MessagePack: @msgpack/msgpack writes no records or extensions for plain data.
const encoder = new Encoder();
const utf8 = new TextEncoder();

/** The bytes replay publishes for a record: its payload re-encoded with its codec, or its raw bytes. */
export function encodePayload(record: CaptureRecord): Uint8Array {
  switch (record.codec) {
    case 'msgpack':
      return encoder.encode(record.data);
    case 'json':
      return utf8.encode(JSON.stringify(record.data));
    case 'bytes':
      return record.data;
  }
}

// ---------------------------------------------------------------------------
// Writing

/** Uncompressed bytes the gzip stream may hold before the writer counts as fallen behind. */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;

/** Microsecond resolution is far below NATS and timer jitter, and keeps lines short. */
function roundT(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Record counts per codec. */
export interface CodecCounts {
  msgpack: number;
  json: number;
  bytes: number;
}

/**
 * Writes a capture: header, then one line per message, through gzip to a
 * file. {@link close} must be awaited: only then is the gzip trailer written
 * and the file complete.
 */
export class CaptureWriter {
  readonly counts: CodecCounts = { msgpack: 0, json: 0, bytes: 0 };
  /** Settles when the file is complete and closed, or the pipeline failed (then `failure` is set). */
  private readonly done: Promise<void>;
  private failure: Error | null = null;

  private constructor(
    readonly path: string,
    private readonly gzip: Gzip,
    private readonly file: WriteStream,
  ) {
    this.done = pipelinePromise(gzip, file).catch((err: unknown) => {
      this.failure ??= err as Error;
    });
  }

  /**
   * Creates the file, refusing to replace an existing one unless
   * `overwrite`. Rejects if the file cannot be created.
   */
  static async create(path: string, overwrite = false): Promise<CaptureWriter> {
    const file = createWriteStream(path, { flags: overwrite ? 'w' : 'wx' });
    await once(file, 'open');
    return new CaptureWriter(path, createGzip(), file);
  }

  /**
   * Writes line 1; call once, before any record. `subjects` is written only
   * for more than one subject, so a single-subject header reads as before.
   */
  writeHeader(header: Pick<CaptureHeader, 'subject' | 'startedAt'> & { subjects?: readonly string[] }): void {
    const subjects = header.subjects ?? [header.subject];
    const h = { format: CAPTURE_FORMAT, v: CAPTURE_VERSION, subject: subjects[0] ?? header.subject, ...(subjects.length > 1 ? { subjects } : {}), startedAt: header.startedAt };
    this.gzip.write(JSON.stringify(h) + '\n');
  }

  /** Total records written. */
  get records(): number {
    return this.counts.msgpack + this.counts.json + this.counts.bytes;
  }

  /** Uncompressed bytes waiting in the gzip stream. */
  get pendingBytes(): number {
    return this.gzip.writableLength;
  }

  /** The first error of the file or gzip stream, if any; nothing is written after it. */
  get error(): Error | null {
    return this.failure;
  }

  /** Appends one message that arrived `t` ms after the header's `startedAt`. */
  write(t: number, subject: string, payload: Uint8Array): void {
    // After a failure the streams are destroyed; writing to them would only raise more errors.
    if (this.failure) return;
    const p = classifyPayload(payload);
    const data = p.codec === 'bytes' ? Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).toString('base64') : p.data;
    this.counts[p.codec]++;
    this.gzip.write(JSON.stringify({ t: roundT(t), subject, codec: p.codec, data }) + '\n');
  }

  /** Ends the gzip stream and waits until the file is complete and closed; returns its size in bytes. */
  async close(): Promise<number> {
    this.gzip.end();
    await this.done;
    if (this.failure) throw this.failure;
    return this.file.bytesWritten;
  }

  /** Stops writing and deletes the file (for a recording that never started). */
  async discard(): Promise<void> {
    this.gzip.destroy();
    this.file.destroy();
    await this.done;
    await unlink(this.path).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------
// Reading

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// A published subject: non-empty tokens without blanks, none of them a wildcard.
const PUBLISH_SUBJECT = /^[^\s.]+(\.[^\s.]+)*$/;
const WILDCARD_TOKEN = /(^|\.)[*>](\.|$)/;

function describe(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Lines of a gzip file, numbered from 1. Read and gzip errors end the iteration with a {@link CaptureFormatError}. */
async function* numberedLines(path: string): AsyncGenerator<[number, string], void, undefined> {
  // pipeline() destroys the gunzip stream with the read error, and readline
  // ends its iteration with that error.
  const input = pipeline(createReadStream(path), createGunzip(), () => undefined);
  const rl = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of rl) yield [++n, line];
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR') throw e;
    const why = e.code === 'Z_BUF_ERROR' ? 'the gzip stream ends early (truncated capture)' : `not a readable gzip stream (${e.message})`;
    throw new CaptureFormatError(path, n + 1, why, { cause: err });
  } finally {
    rl.close();
    input.destroy();
  }
}

function parseLine(path: string, n: number, line: string): unknown {
  if (line === '') throw new CaptureFormatError(path, n, 'empty line');
  try {
    return JSON.parse(line);
  } catch (err) {
    throw new CaptureFormatError(path, n, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

function checkHeader(path: string, line: string | undefined): CaptureHeader {
  if (line === undefined) throw new CaptureFormatError(path, 1, 'empty capture: no header');
  const h = parseLine(path, 1, line);
  if (!isPlainObject(h)) throw new CaptureFormatError(path, 1, `header is not a JSON object: ${describe(h)}`);
  if (h['format'] !== CAPTURE_FORMAT) {
    throw new CaptureFormatError(path, 1, `header "format" is ${describe(h['format'])}, expected "${CAPTURE_FORMAT}"`);
  }
  if (h['v'] !== CAPTURE_VERSION) throw new CaptureFormatError(path, 1, `unsupported capture version ${describe(h['v'])}, expected ${CAPTURE_VERSION}`);
  if (typeof h['subject'] !== 'string' || h['subject'] === '') {
    throw new CaptureFormatError(path, 1, `header "subject" is ${describe(h['subject'])}, expected a NATS subject`);
  }
  if (typeof h['startedAt'] !== 'number' || !Number.isFinite(h['startedAt'])) {
    throw new CaptureFormatError(path, 1, `header "startedAt" is ${describe(h['startedAt'])}, expected epoch milliseconds`);
  }
  const subjects = h['subjects'] ?? [h['subject']];
  if (!Array.isArray(subjects) || subjects.length === 0 || subjects[0] !== h['subject'] || !subjects.every((x) => typeof x === 'string' && x !== '')) {
    throw new CaptureFormatError(path, 1, `header "subjects" is ${describe(subjects)}, expected NATS subjects, the first one "subject"`);
  }
  return { format: CAPTURE_FORMAT, v: CAPTURE_VERSION, subject: h['subject'], subjects: subjects as string[], startedAt: h['startedAt'] };
}

/** Reads and checks line 1 of a capture. */
export async function readCaptureHeader(path: string): Promise<CaptureHeader> {
  const lines = numberedLines(path);
  try {
    const first = await lines.next();
    return checkHeader(path, first.done ? undefined : first.value[1]);
  } finally {
    await lines.return();
  }
}

/**
 * The records of a capture, in order, each checked: the header first, then
 * every line as it is read. A malformed line ends the iteration with a
 * {@link CaptureFormatError} naming it (records before it have been yielded).
 */
export async function* readCapture(path: string): AsyncGenerator<CaptureRecord, void, undefined> {
  let header = false;
  let lastT = 0;
  for await (const [n, line] of numberedLines(path)) {
    if (!header) {
      checkHeader(path, line);
      header = true;
      continue;
    }
    const bad = (why: string) => new CaptureFormatError(path, n, why);
    const r = parseLine(path, n, line);
    if (!isPlainObject(r)) throw bad(`record is not a JSON object: ${describe(r)}`);
    const { t, subject, codec, data } = r;
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw bad(`"t" is ${describe(t)}, expected milliseconds >= 0`);
    if (t < lastT) throw bad(`"t" ${t} is earlier than the previous record's ${lastT}`);
    if (typeof subject !== 'string' || !PUBLISH_SUBJECT.test(subject) || WILDCARD_TOKEN.test(subject)) {
      throw bad(`"subject" is ${describe(subject)}, expected a NATS subject without wildcards`);
    }
    lastT = t;
    if (codec === 'msgpack' || codec === 'json') {
      if (!isPlainObject(data)) throw bad(`"data" of a ${codec} record is ${describe(data)}, expected a JSON object`);
      yield { line: n, t, subject, codec, data };
    } else if (codec === 'bytes') {
      if (typeof data !== 'string' || !BASE64.test(data)) throw bad(`"data" of a bytes record is ${describe(data)}, expected base64`);
      yield { line: n, t, subject, codec, data: new Uint8Array(Buffer.from(data, 'base64')) };
    } else {
      throw bad(`"codec" is ${describe(codec)}, expected "msgpack", "json" or "bytes"`);
    }
  }
  if (!header) checkHeader(path, undefined);
}

// ---------------------------------------------------------------------------
// Command-line helpers shared by feed:record and feed:replay

/** Checks a comma-separated list of NATS URLs; returns an error message naming the option, or null. */
export function badNatsUrl(url: string): string | null {
  for (const u of url.split(',')) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s/]+/.test(u.trim()) && !/^[^\s/:]+:\d+$/.test(u.trim())) {
      return `--url: expected NATS URLs such as nats://127.0.0.1:4222, got ${JSON.stringify(url)}`;
    }
  }
  return null;
}

/** Rounds for summaries. */
export function round(x: number, digits: number): number {
  const k = 10 ** digits;
  return Math.round(x * k) / k;
}
