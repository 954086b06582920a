/**
 * A synthetic order-book feed that a k6 VU publishes to NATS, for the book
 * scenario, and the latency it makes measurable.
 *
 * k6 has no NATS client, but nats-server accepts the NATS text protocol
 * over WebSocket (its `websocket` listener), which k6 speaks: `CONNECT`
 * once, then `PUB <subject> <bytes>` commands, and `PONG` to every `PING`
 * the server sends. Payloads are JSON books for a gateway feed with
 * `kind: "book"`, `codec: "json"`, `symbolToken: 1` (see
 * load/k6/gateway-books.json).
 *
 * Books carry no source time on the client side (`book` and `bupd` have no
 * `ts`), so this feed stamps one into the book itself: its best bid, a
 * level at a price no other level reaches, has as size the time the
 * message was scheduled, in epoch ms (exact as a float64). Every change
 * restamps it, so every `bupd` names it and every window starts with it:
 * a subscriber's receipt time minus its best bid's size is the end-to-end
 * latency of the newest change it holds. That holds only for books from
 * this feed.
 *
 * Plain TypeScript without k6 imports, run under Node by the unit tests and
 * by the integration test against a real nats-server and gateway.
 */
import type { Level } from './book.ts';

/** Every price is an integral number of these ticks; 100 ticks = 1. */
const TICKS_PER_UNIT = 100;
/** The stamp level's price in ticks (100.00); other bids are below it, asks above. */
const STAMP_TICKS = 10_000;

/** One message of the feed, as the gateway's book normalizer reads it. */
export interface FeedMessage {
  snapshot?: true;
  seq: number;
  ts: number;
  bids: Level[];
  asks: Level[];
}

/**
 * One symbol's synthetic book: a stamp level as best bid, and up to
 * `levels` price slots per side around it that come and go at random, so
 * that levels leave a subscriber's window and others enter it from below.
 */
export class SyntheticBook {
  readonly bids = new Map<number, number>();
  readonly asks = new Map<number, number>();
  seq = 0;

  /**
   * @param levels price slots per side besides the stamp (a side holds about 60 % of them)
   * @param rand a generator in [0, 1), seeded by the caller for repeatable runs
   */
  constructor(
    private readonly levels: number,
    private readonly rand: () => number,
  ) {}

  private price(side: 'bid' | 'ask', k: number): number {
    return (side === 'bid' ? STAMP_TICKS - k : STAMP_TICKS + k) / TICKS_PER_UNIT;
  }

  private size(): number {
    return Math.round(1 + this.rand() * 9999) / 100;
  }

  /** A snapshot replacing the book, stamped `stampMs`. */
  snapshot(stampMs: number): FeedMessage {
    this.bids.clear();
    this.asks.clear();
    this.bids.set(STAMP_TICKS / TICKS_PER_UNIT, stampMs);
    for (let k = 1; k <= this.levels; k++) {
      if (this.rand() < 0.6) this.bids.set(this.price('bid', k), this.size());
      if (this.rand() < 0.6) this.asks.set(this.price('ask', k), this.size());
    }
    return { snapshot: true, seq: ++this.seq, ts: stampMs, bids: [...this.bids], asks: [...this.asks] };
  }

  /** A change: the stamp, and one to three levels set or removed (size 0). */
  change(stampMs: number): FeedMessage {
    const bids = new Map<number, number>([[STAMP_TICKS / TICKS_PER_UNIT, stampMs]]);
    const asks = new Map<number, number>();
    for (let n = 1 + Math.floor(this.rand() * 3); n > 0; n--) {
      const bid = this.rand() < 0.5;
      const p = this.price(bid ? 'bid' : 'ask', 1 + Math.floor(this.rand() * this.levels));
      (bid ? bids : asks).set(p, this.rand() < 0.3 ? 0 : this.size());
    }
    for (const [p, s] of bids) s === 0 ? this.bids.delete(p) : this.bids.set(p, s);
    for (const [p, s] of asks) s === 0 ? this.asks.delete(p) : this.asks.set(p, s);
    return { seq: ++this.seq, ts: stampMs, bids: [...bids], asks: [...asks] };
  }

  /** The book cut to `depth`, best first: what a subscriber at that depth must hold. */
  window(depth: number): { bids: Level[]; asks: Level[] } {
    return {
      bids: [...this.bids].sort((a, b) => b[0] - a[0]).slice(0, depth),
      asks: [...this.asks].sort((a, b) => a[0] - b[0]).slice(0, depth),
    };
  }
}

/**
 * Receipt time minus the stamp of the newest change in a window of this
 * feed (its best bid's size), ms; 0 for a stamp in the future (clock skew),
 * undefined when the window has no bids.
 */
export function stampLatencyMs(bids: readonly Level[], receivedAtMs: number): number | undefined {
  const best = bids[0];
  if (best === undefined) return undefined;
  const l = receivedAtMs - best[1];
  return l > 0 ? l : 0;
}

/** Bytes of a string in UTF-8 (k6 has no TextEncoder). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4; // a surrogate pair: one code point
      i++;
    } else n += 3;
  }
  return n;
}

/** Credentials for nats-server, when it asks for them. */
export interface NatsAuth {
  user?: string;
  pass?: string;
  token?: string;
}

/**
 * The first commands on a NATS connection: `CONNECT` (no echo, no
 * `+OK`s) and a `PING`, whose `PONG` tells that the server accepted it.
 */
export function natsConnect(name: string, auth: NatsAuth = {}): string {
  const opts: Record<string, unknown> = { verbose: false, pedantic: false, protocol: 1, name, lang: 'k6', version: '1', echo: false, headers: false };
  if (auth.token !== undefined) opts['auth_token'] = auth.token;
  if (auth.user !== undefined) opts['user'] = auth.user;
  if (auth.pass !== undefined) opts['pass'] = auth.pass;
  return `CONNECT ${JSON.stringify(opts)}\r\nPING\r\n`;
}

/** A `PUB` command. Several may go in one WebSocket frame. */
export function natsPub(subject: string, payload: string): string {
  return `PUB ${subject} ${utf8Length(payload)}\r\n${payload}\r\n`;
}

/** A NATS subject token may not be empty or hold `.`, `*`, `>` or whitespace. */
export function isSubjectToken(s: string): boolean {
  return s.length > 0 && !/[.*>\s]/.test(s);
}

/** What the publisher does about one line from the server. */
export type NatsEvent = { kind: 'ping' } | { kind: 'pong' } | { kind: 'info' } | { kind: 'ok' } | { kind: 'error'; text: string } | { kind: 'other'; line: string };

/**
 * Splits what nats-server sends a publisher into protocol lines, across
 * WebSocket frames: it sends only `INFO`, `PING`, `PONG`, `+OK` and `-ERR`
 * to a connection that subscribes to nothing.
 */
export class NatsLines {
  private rest = '';

  /** The events of one frame's text, in order; an incomplete last line waits for the next frame. */
  push(text: string): NatsEvent[] {
    const lines = (this.rest + text).split('\r\n');
    this.rest = lines.pop() as string;
    const out: NatsEvent[] = [];
    for (const line of lines) {
      if (line === '') continue;
      const op = line.split(' ', 1)[0]!.toUpperCase();
      if (op === 'PING') out.push({ kind: 'ping' });
      else if (op === 'PONG') out.push({ kind: 'pong' });
      else if (op === 'INFO') out.push({ kind: 'info' });
      else if (op === '+OK') out.push({ kind: 'ok' });
      else if (op === '-ERR') out.push({ kind: 'error', text: line.slice(4).trim() });
      else out.push({ kind: 'other', line });
    }
    return out;
  }
}

/** The text of a binary frame from nats-server (its control lines are ASCII). */
export function frameText(data: ArrayBuffer | Uint8Array): string {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i] as number);
  return s;
}
