/**
 * Protocol v1 helpers for the k6 scenarios (see docs/PROTOCOL.md): requests,
 * frame parsing, per-symbol merged state with `q` checks, and latency from
 * the source time `d.ts`. Order books are in book.ts, trade prints in
 * trades.ts. Plain TypeScript without k6 imports, so it is unit-tested under
 * Node as well.
 */
import { bookMessageError, type Book, type Bupd } from './book.ts';
import { decode, type MsgpackMap, type MsgpackValue } from './msgpack.ts';
import { tradeMessageError, type Gap, type Position, type Trade } from './trades.ts';

export type RequestId = string | number;

/** A symbol's fields as they appear in `d`: all numbers. */
export type Fields = Record<string, number>;

export interface Hello {
  t: 'hello';
  v: number;
  sid: string;
  hbMs: number;
  serverTs: number;
  limits: { maxSymbols: number; maxMessageBytes: number; maxMessagesPerSec: number };
}
export interface AckError {
  s: string | null;
  code: string;
  msg: string;
}
export interface Ack {
  t: 'ack';
  id?: RequestId;
  op: 'sub' | 'unsub' | 'auth';
  ok: string[];
  err: AckError[];
  throttleMs?: number;
  /** Present when the request's channel was not `quote`. */
  channel?: string;
  /** `sub` to `book` only: the depth applied. */
  depth?: number;
  /** `sub` to `trade` only: each accepted symbol's position. */
  pos?: Record<string, Position>;
  /** `sub` to `trade` with `since` only: per resumed symbol, whether every trade since was recovered. */
  rec?: Record<string, boolean>;
}
export interface Snap {
  t: 'snap';
  s: string;
  q: number;
  d: Fields;
}
export interface Upd {
  t: 'upd';
  s: string;
  q: number;
  d: Fields;
  /** Present when the update merges more than one source tick. */
  n?: number;
}
export interface Stat {
  t: 'stat';
  s: string;
  st: 'live' | 'stale' | 'unknown';
  /** The channel when it is not `quote` (`book`, `trade`). */
  ch?: string;
}
export interface Hb {
  t: 'hb';
  ts: number;
  buf?: number;
  cf?: number;
}
export interface Pong {
  t: 'pong';
  id?: RequestId;
  ts?: number | string;
  serverTs: number;
}
export interface SymbolsReply {
  t: 'symbols';
  id?: RequestId;
  symbols: string[];
  more: boolean;
}
export interface Err {
  t: 'err';
  code: string;
  msg: string;
  id?: RequestId;
  s?: string;
}
export interface Bye {
  t: 'bye';
  code: string;
  reason: string;
  /** Absent when reconnecting with the same credentials cannot succeed (AUTH_EXPIRED). */
  retryMs?: number;
}

/** Every server message this suite understands; others are skipped, as the protocol asks. */
export type ServerMessage = Hello | Ack | Snap | Upd | Book | Bupd | Trade | Gap | Stat | Hb | Pong | SymbolsReply | Err | Bye;

const KNOWN_TYPES: ReadonlySet<string> = new Set(['hello', 'ack', 'snap', 'upd', 'book', 'bupd', 'trade', 'gap', 'stat', 'hb', 'pong', 'symbols', 'err', 'bye']);

/** The messages of one frame, or why the frame broke the protocol. */
export type FrameResult = { ok: true; messages: ServerMessage[] } | { ok: false; error: string };

function isMap(v: MsgpackValue | undefined): v is MsgpackMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Decodes one server frame: a MessagePack array of maps, each with a string
 * `t`. `snap` and `upd` are checked field by field, `book` and `bupd` level
 * by level, `trade` and `gap` key by key (they drive the checks); the other
 * known types are taken as sent; unknown types are skipped.
 */
export function parseFrame(data: ArrayBuffer | Uint8Array): FrameResult {
  let root: MsgpackValue;
  try {
    root = decode(data);
  } catch (e) {
    return { ok: false, error: `undecodable frame: ${(e as Error).message}` };
  }
  if (!Array.isArray(root)) return { ok: false, error: 'frame is not an array' };
  const messages: ServerMessage[] = [];
  for (const m of root) {
    if (!isMap(m) || typeof m['t'] !== 'string') return { ok: false, error: 'message is not a map with a string t' };
    const t = m['t'];
    if (!KNOWN_TYPES.has(t)) continue;
    if (t === 'snap' || t === 'upd') {
      const d = m['d'];
      if (typeof m['s'] !== 'string' || typeof m['q'] !== 'number' || !isMap(d)) return { ok: false, error: `${t} without s, q or d` };
      for (const k in d) if (typeof d[k] !== 'number') return { ok: false, error: `${t} ${m['s']}: field ${k} is not a number` };
      if (m['n'] !== undefined && typeof m['n'] !== 'number') return { ok: false, error: `${t} ${m['s']}: n is not a number` };
    } else if (t === 'book' || t === 'bupd') {
      const error = bookMessageError(m);
      if (error !== null) return { ok: false, error };
    } else if (t === 'trade' || t === 'gap') {
      const error = tradeMessageError(m);
      if (error !== null) return { ok: false, error };
    }
    messages.push(m as unknown as ServerMessage);
  }
  return { ok: true, messages };
}

/** `sub` request as a JSON text frame. */
export function subRequest(id: RequestId, symbols: readonly string[], throttleMs = 0, snapshot = true): string {
  const req: Record<string, unknown> = { op: 'sub', id, symbols };
  if (throttleMs > 0) req['throttleMs'] = throttleMs;
  if (!snapshot) req['snapshot'] = false;
  return JSON.stringify(req);
}

/** `symbols` request (list known symbols) as a JSON text frame. */
export function symbolsRequest(id: RequestId, limit: number, prefix?: string): string {
  return JSON.stringify(prefix === undefined ? { op: 'symbols', id, limit } : { op: 'symbols', id, prefix, limit });
}

/** `ping` request carrying the client clock, as a JSON text frame. */
export function pingRequest(id: RequestId, ts: number): string {
  return JSON.stringify({ op: 'ping', id, ts });
}

/** The stream URL with `token` added as a query parameter when given. */
export function streamUrl(base: string, token?: string): string {
  if (token === undefined || token === '') return base;
  return `${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

/** The URL without its query, so that a `?token=` never reaches the console. */
export function withoutQuery(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * What applying a `snap` or `upd` did: `applied`; `stale` when its `q` was
 * not above the held one (a `snap` may repeat the held `q`); `orphan` for an
 * `upd` of a symbol that has had no `snap` on a subscription that asked for
 * snapshots. Only `applied` changes the state.
 */
export type ApplyOutcome = 'applied' | 'stale' | 'orphan';

interface Held {
  q: number;
  state: Fields;
}

/** The merged state and last `q` of each symbol, as a protocol client keeps them. */
export class SymbolBook {
  private readonly held = new Map<string, Held>();

  /** @param snapshots whether the subscription asked for snapshots (an `upd` without a prior `snap` is then an `orphan`). */
  constructor(private readonly snapshots = true) {}

  apply(m: Snap | Upd): ApplyOutcome {
    const h = this.held.get(m.s);
    if (m.t === 'snap') {
      if (h !== undefined && m.q < h.q) return 'stale';
      const state: Fields = {};
      for (const k in m.d) state[k] = m.d[k] as number;
      this.held.set(m.s, { q: m.q, state });
      return 'applied';
    }
    if (h === undefined) {
      if (this.snapshots) return 'orphan';
      const state: Fields = {};
      for (const k in m.d) state[k] = m.d[k] as number;
      this.held.set(m.s, { q: m.q, state });
      return 'applied';
    }
    if (m.q <= h.q) return 'stale';
    for (const k in m.d) h.state[k] = m.d[k] as number;
    h.q = m.q;
    return 'applied';
  }

  /** Forgets a symbol (after an `unsub` ack). */
  drop(symbol: string): void {
    this.held.delete(symbol);
  }

  /** The held `q`, or undefined. */
  q(symbol: string): number | undefined {
    return this.held.get(symbol)?.q;
  }

  /** The merged state (the live object), or undefined. */
  state(symbol: string): Readonly<Fields> | undefined {
    return this.held.get(symbol)?.state;
  }

  get size(): number {
    return this.held.size;
  }
}

/**
 * Receipt time minus the update's source time `d.ts`, in milliseconds, or
 * undefined when the update does not carry `ts`. Negative values (clock skew
 * between the feed's host and this one) count as 0, as in the gateway's own
 * ingest histogram.
 */
export function latencyMs(d: Fields, receivedAtMs: number): number | undefined {
  const ts = d['ts'];
  if (ts === undefined) return undefined;
  const l = receivedAtMs - ts;
  return l > 0 ? l : 0;
}

/** Deterministic 32-bit PRNG (mulberry32): the same seed picks the same symbols on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/** `count` distinct symbols of `universe` (all of them if it has fewer), chosen by `seed`. */
export function pickSymbols(universe: readonly string[], count: number, seed: number): string[] {
  const pool = universe.slice();
  const n = Math.min(count, pool.length);
  const rand = prng(seed);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (pool.length - i));
    const tmp = pool[i] as string;
    pool[i] = pool[j] as string;
    pool[j] = tmp;
  }
  return pool.slice(0, n);
}
