/**
 * TickgateClient: one WebSocket connection to a tickgate gateway, with the
 * protocol's bookkeeping done for the user: snapshot/delta merge per symbol,
 * stale-update rejection by `q`, order books kept by the protocol's rules
 * and verified by their checksum (resubscribing on a mismatch), trade
 * prints delivered once each in order and resumed from their position after
 * a reconnect, reconnect with backoff and resubscription, dead-connection
 * detection from heartbeats, request/reply matching, and tokens fetched
 * (`getToken`) for every connection and refreshed before they expire.
 *
 * Runtime-neutral: it imports nothing from Node.js. Browsers use their own
 * `WebSocket`; Node.js 20 passes the `ws` package as `options.WebSocket`.
 */
import { Decoder } from '@msgpack/msgpack';
import { backoffDelay, retryAfterDelay } from './backoff.js';
import { AuthError, ConnectError, ProtocolError, RequestError, TickgateError } from './errors.js';
import { BOOK_DEPTHS, LocalBook } from './order-book.js';
import { tokenExpiry } from './token.js';
import { TradeCursor } from './trade-cursor.js';
import type {
  AckResult,
  BookAck,
  BookDepth,
  BookMismatch,
  BookResync,
  BookUpdate,
  ByeInfo,
  Channel,
  ClientClock,
  ClientEventMap,
  ClientOptions,
  CloseInfo,
  ConfiguredFields,
  ConnectionStatus,
  Heartbeat,
  OrderBook,
  ServerHello,
  SymbolList,
  SymbolState,
  SymbolStatus,
  Trade,
  TradeAck,
  TradeGap,
  TradePosition,
  TradeResume,
  TokenProvider,
  Update,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
import { UpdateQueue } from './update-queue.js';

/** The protocol version this client speaks (`hello.v`). */
export const PROTOCOL_VERSION = 1;

/** Symbols per `sub` request, far below the server's message size limit. */
const SUB_CHUNK = 500;
/** Local close codes (never sent by a server): dead connection, no hello in time. */
const CLOSE_HEARTBEAT_TIMEOUT = 4000;
const CLOSE_CONNECT_TIMEOUT = 4001;
const CLOSE_PROTOCOL_ERROR = 4002;
/** Local close code: no usable token, so no connection was attempted. */
const CLOSE_NO_TOKEN = 4003;
/**
 * A token is refreshed in place a quarter of its lifetime before its
 * expiry, but at most this long before: early enough for a retry or two
 * if the first refresh fails, late enough not to ask for tokens needlessly.
 */
const REFRESH_LEAD_MAX_MS = 30_000;
/** Default book depth, as the server's when `depth` is absent. */
const DEFAULT_BOOK_DEPTH = 10;
/**
 * Resubscriptions in a row for one book before the client gives up on it. A
 * fresh book that fails its checksum again means the client and the server
 * disagree about the book itself, and asking again would only repeat it.
 */
const MAX_BOOK_RESYNCS = 3;

type Msg = Record<string, unknown>;
/** A handle from the client's clock. */
type Timer = unknown;

/** The runtime's timers. */
const runtimeClock: ClientClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/** What staleness tracking needs of a subscription (quote, book or trade). */
interface Watched {
  status: SymbolStatus | null;
  /** Whether a `stale` event was the last one reported; kept across reconnects. */
  stale: boolean;
}

/** The acks of one trade `sub` (all its chunks), merged. */
interface TradeSubResult extends AckResult {
  pos: Map<string, TradePosition>;
  rec: Map<string, boolean>;
}

/** What the client keeps per subscribed symbol. */
interface Sym {
  throttleMs: number;
  /** Sequence of the held state on this connection; upds at or below it are ignored. */
  q: number;
  /** False until this connection's snap arrives: upds cannot merge into state from a previous connection. */
  synced: boolean;
  state: SymbolState | null;
  status: SymbolStatus | null;
  stale: boolean;
}

/** What the client keeps per subscribed book. */
interface BookSub {
  depth: number;
  throttleMs: number;
  book: LocalBook;
  /** False until the first verified book: `book()` answers undefined until then. */
  shown: boolean;
  /** Mismatches in a row since the last verified message. */
  attempts: number;
  status: SymbolStatus | null;
  stale: boolean;
}

interface Pending {
  op: string;
  /** Runs as the reply is handled, before any later message of its frame: what must be known to place those messages. */
  onReply: ((m: Msg) => void) | undefined;
  resolve(m: Msg): void;
  reject(e: Error): void;
  timer: Timer;
}

/** Minimal views of the events both WebSocket libraries deliver. */
interface MessageLike {
  data: unknown;
}
interface CloseLike {
  code: number;
  reason: string;
}
interface ErrorLike {
  message?: string;
  error?: { code?: string; message?: string };
}

const isValidSymbol = (s: string): boolean => {
  if (s.length === 0 || s.length > 64) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
};

const num = (v: unknown, dflt: number): number => (typeof v === 'number' ? v : dflt);

const isThenable = <T>(v: unknown): v is PromiseLike<T> => typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';

/** The events `on()` accepts. */
const EVENTS: ReadonlyArray<keyof ClientEventMap> = ['status', 'update', 'stale', 'bye', 'gap', 'error', 'heartbeat', 'book', 'bookMismatch', 'bookResync', 'trade', 'tradeResume'];

/** The protocol's code for an HTTP 401 whose body the WebSocket library does not show, inferred from the token. */
function inferAuthCode(token: string | undefined, exp: number | null, now: number): string {
  if (token === undefined) return 'AUTH_REQUIRED';
  return exp !== null && exp <= now ? 'AUTH_EXPIRED' : 'AUTH_INVALID';
}

/** Calls every listener; one that throws is reported asynchronously and does not stop the others or the stream. */
function emit<A extends unknown[]>(listeners: Array<(...a: A) => void>, ...args: A): void {
  for (let i = 0; i < listeners.length; i++) {
    try {
      listeners[i]!(...args);
    } catch (err) {
      rethrowLater(err);
    }
  }
}

/** A listener's exception surfaces as an uncaught error without unwinding the frame being applied. */
function rethrowLater(err: unknown): void {
  queueMicrotask(() => {
    throw err;
  });
}

/** Adds a listener; returns the function that removes it. */
function listen<T>(list: T[], fn: T): () => void {
  list.push(fn);
  return () => {
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  };
}

/**
 * A tickgate stream client.
 *
 * ```ts
 * const client = new TickgateClient({ url: 'ws://127.0.0.1:8080/v1/stream', WebSocket });
 * client.onUpdate((u) => console.log(u.symbol, u.q, u.state.bid));
 * await client.connect();
 * await client.subscribe(['AAPL', 'EUR/USD'], { throttleMs: 250 });
 * ```
 *
 * Typed events: `client.on('status', (s) => ...)`, `'stale'`, `'bye'`,
 * `'gap'` and the others of {@link ClientEventMap}; `client.off(type, fn)`.
 *
 * `X` declares the deployment's configured fields (`schema.fields`) for
 * typed access, e.g. `new TickgateClient<{ mark: number; status: string }>(…)`
 * makes `u.state.status` a `string | undefined`. It is a declaration only:
 * the server does not announce its fields and the client keeps whatever
 * values arrive. Without it, a non-canonical key reads as `number | string`.
 */
export class TickgateClient<X extends ConfiguredFields<X> = {}> {
  private readonly urls: string[];
  private token: string | undefined;
  private readonly getToken: TokenProvider | undefined;
  /** Expiry (epoch ms) of `token` when it is a JWT with `exp`, and when it was had (server time, for the refresh lead). */
  private tokenExp: number | null = null;
  private tokenFrom = 0;
  /** The token of the current connection (or attempt); undefined without one. */
  private usedToken: string | undefined;
  /** A token the server refused or told us not to come back with (a bye without retryMs): never presented again. */
  private refusedToken: string | undefined;
  private refusedCode = 'AUTH_INVALID';
  /** Server clock minus ours, from `hello.serverTs` (0 until known): a token's expiry is the server's to judge. */
  private skewMs = 0;
  /** Counts connection attempts: an async getToken's answer for an abandoned attempt is dropped. */
  private gen = 0;
  private refreshTimer: Timer | null = null;
  /** Failed in-place refreshes in a row. */
  private refreshFailures = 0;
  /** Edge trigger: an AuthError was reported and no usable token has been had since. */
  private authFailing = false;
  private readonly clock: ClientClock;
  private readonly random: () => number;
  private readonly backoff: { initialMs: number; maxMs: number; stableMs: number };
  private readonly tokenTransport: 'protocol' | 'query';
  private readonly safeUrls: string[];
  /** Index of the endpoint the next connection attempt uses. */
  private nextUrl = 0;
  /** The URL without its token, for messages and errors. */
  /** The endpoint in use (or last tried), without its token. */
  safeUrl: string;
  private readonly WS: WebSocketConstructor | undefined;
  private readonly reconnect: boolean;
  private readonly retryFirstConnect: boolean;
  private readonly hbMultiplier: number;
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly decoder = new Decoder();

  private _status: ConnectionStatus = { state: 'closed', reason: 'not connected yet' };
  private readonly syms = new Map<string, Sym>();
  private socket: WebSocketLike | null = null;
  private hello: ServerHello | null = null;
  /** The bye of the current connection, if the server said goodbye. */
  private bye: CloseInfo['bye'] | undefined;
  /** The last bye's retryMs, until a connection opens again: no attempt comes sooner. */
  private retryFloorMs: number | null = null;
  /** A token refresh is under way (getToken, then auth). */
  private refreshing = false;
  private lastError: ErrorLike | null = null;
  private lastFrameAt = 0;
  /** Attempts made since the last connection that stayed open `stableMs` after its hello. */
  private attempts = 0;
  /** When the current connection's hello came (clock time). */
  private openedAt = 0;
  private everOpened = false;
  /** True after close(), or before the first connect(). */
  private stopped = true;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private openWaiters: Array<{ resolve(h: ServerHello): void; reject(e: Error): void }> = [];
  /** Per throttle interval, the ack of this connection's resubscription. */
  private resubAcks = new Map<number, Promise<AckResult>>();
  private readonly books = new Map<string, BookSub>();
  /** Per depth and throttle (`depth/throttleMs`), the ack of this connection's book resubscription. */
  private bookResubAcks = new Map<string, Promise<BookAck>>();
  private readonly trades = new Map<string, TradeCursor>();
  /** Per trade subscription, the ack of this connection's resubscription. */
  private tradeResubAcks = new Map<TradeCursor, Promise<TradeSubResult>>();
  private hbTimer: Timer | null = null;
  private connectTimer: Timer | null = null;
  private reconnectTimer: Timer | null = null;

  /** Listeners of the typed events; the `onX` methods add to the same lists. */
  private readonly listeners: { [K in keyof ClientEventMap<X>]: Array<(e: ClientEventMap<X>[K]) => void> } = {
    status: [],
    update: [],
    stale: [],
    bye: [],
    gap: [],
    error: [],
    heartbeat: [],
    book: [],
    bookMismatch: [],
    bookResync: [],
    trade: [],
    tradeResume: [],
  };
  private readonly updateListeners = this.listeners.update;
  private readonly connectionListeners = this.listeners.status;
  private readonly heartbeatListeners = this.listeners.heartbeat;
  private readonly errorListeners = this.listeners.error;
  private readonly bookListeners = this.listeners.book;
  private readonly bookMismatchListeners = this.listeners.bookMismatch;
  private readonly bookResyncListeners = this.listeners.bookResync;
  private readonly tradeListeners = this.listeners.trade;
  private readonly tradeResumeListeners = this.listeners.tradeResume;
  private readonly statusListeners: Array<(symbol: string, status: SymbolStatus) => void> = [];
  private readonly bookStatusListeners: Array<(symbol: string, status: SymbolStatus) => void> = [];
  private readonly tradeGapListeners: Array<(g: TradeGap) => void> = [];
  private readonly tradeStatusListeners: Array<(symbol: string, status: SymbolStatus) => void> = [];
  private readonly queues = new Set<UpdateQueue<X>>();
  /** Stale subscriptions that had data in the frame being read: live again unless a `stat` in the same frame says otherwise. */
  private readonly liveAgain: Array<{ symbol: string; channel: Channel; w: Watched }> = [];

  /** Last round trip measured by `ping()`, milliseconds (NaN before the first). */
  lastRttMs = Number.NaN;

  constructor(options: ClientOptions) {
    const list = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (list.length === 0) throw new TypeError('options.url: expected at least one endpoint');
    this.urls = [];
    this.safeUrls = [];
    this.token = options.token;
    this.getToken = options.getToken;
    if (this.getToken !== undefined && typeof this.getToken !== 'function') throw new TypeError('options.getToken: expected a function returning a token');
    this.tokenTransport = options.tokenTransport ?? 'protocol';
    for (const raw of list) {
      const u = new URL(raw);
      u.searchParams.delete('token');
      this.safeUrls.push(u.toString());
      this.urls.push(u.toString());
    }
    this.safeUrl = this.safeUrls[0]!;
    this.WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const r = options.reconnect;
    this.reconnect = r !== false;
    const initialMs = (r === false ? undefined : r?.initialMs) ?? 250;
    const maxMs = (r === false ? undefined : r?.maxMs) ?? 30_000;
    const stableMs = (r === false ? undefined : r?.stableMs) ?? 10_000;
    if (!Number.isFinite(initialMs) || initialMs <= 0) throw new TypeError(`options.reconnect.initialMs: expected a finite number of milliseconds > 0, got ${String(initialMs)}`);
    if (!Number.isFinite(maxMs) || maxMs < initialMs) throw new TypeError(`options.reconnect.maxMs: expected a finite number of milliseconds >= initialMs (${initialMs}), got ${String(maxMs)}`);
    if (!Number.isFinite(stableMs) || stableMs < 0) throw new TypeError(`options.reconnect.stableMs: expected a finite number of milliseconds >= 0, got ${String(stableMs)}`);
    this.backoff = { initialMs, maxMs, stableMs };
    this.clock = options.clock ?? runtimeClock;
    this.random = options.random ?? Math.random;
    this.retryFirstConnect = options.retryFirstConnect ?? false;
    this.hbMultiplier = options.heartbeatMultiplier ?? 3;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  }

  /** The connection status now. */
  get status(): ConnectionStatus {
    return this._status;
  }

  /** The current connection's `hello`, or null while not open. */
  get serverHello(): ServerHello | null {
    return this.hello;
  }

  /**
   * Opens the connection; resolves with the server's `hello`. If the first
   * attempt fails it rejects with a {@link ConnectError} (unless
   * `retryFirstConnect`); after that, drops are retried on their own.
   */
  connect(): Promise<ServerHello> {
    if (this.hello !== null) return Promise.resolve(this.hello);
    const p = this.nextOpen();
    if (this.stopped) {
      this.stopped = false;
      this.everOpened = false;
      this.attempts = 0;
      this.retryFloorMs = null;
      this.refusedToken = undefined;
      this.authFailing = false;
      this.open();
    }
    return p;
  }

  /**
   * Subscribes to `symbols`, with at most one update per symbol per
   * `throttleMs` when given. Resolves with the server's `ack`. Subscriptions
   * made while not connected are sent on connect; all are renewed after a
   * reconnect, with the same throttle.
   */
  async subscribe(symbols: readonly string[], options: { throttleMs?: number } = {}): Promise<AckResult> {
    const throttleMs = options.throttleMs ?? 0;
    if (!Number.isSafeInteger(throttleMs) || throttleMs < 0) throw new TypeError('throttleMs must be a non-negative integer');
    const valid: string[] = [];
    const added: string[] = [];
    const err: AckResult['err'] = [];
    for (const s of symbols) {
      if (typeof s !== 'string') throw new TypeError('symbols must be strings');
      if (!isValidSymbol(s)) {
        err.push({ symbol: s, code: 'BAD_SYMBOL', msg: 'symbol must be a string of 1-64 characters without control characters' });
        continue;
      }
      const sym = this.syms.get(s);
      if (sym === undefined) {
        this.syms.set(s, { throttleMs, q: -1, synced: false, state: null, status: null, stale: false });
        added.push(s);
      } else {
        sym.throttleMs = throttleMs;
      }
      valid.push(s);
    }
    if (valid.length === 0) return { ok: [], err };
    for (;;) {
      let ack: AckResult;
      try {
        if (this.hello !== null) {
          ack = await this.sendSub(valid, throttleMs);
        } else {
          await this.nextOpen();
          // The resubscription at open included these symbols (unless unsubscribed meanwhile).
          ack = await (this.resubAcks.get(throttleMs) ?? this.sendSub(valid, throttleMs));
        }
      } catch (e) {
        // Lost before the ack: the subscription stands and is renewed at the next open.
        if (e instanceof ConnectError && !this.stopped) continue;
        // Refused outright (err) or timed out: forget what this call added.
        if (e instanceof RequestError) for (const s of added) this.syms.delete(s);
        throw e;
      }
      const mine = new Set(valid);
      const result: AckResult = { ok: ack.ok.filter((s) => mine.has(s)), err: err.concat(ack.err.filter((e) => mine.has(e.symbol))) };
      if (ack.throttleMs !== undefined) result.throttleMs = ack.throttleMs;
      return result;
    }
  }

  /** Unsubscribes; the symbols' state is dropped at once and later messages for them are ignored. */
  async unsubscribe(symbols: readonly string[]): Promise<AckResult> {
    for (const s of symbols) this.syms.delete(s);
    const list = symbols.filter(isValidSymbol);
    if (this.hello === null || list.length === 0) return { ok: list, err: [] };
    const m = await this.request('unsub', { op: 'unsub', symbols: list });
    return toAck(m);
  }

  /**
   * Subscribes to the order book of `symbol`: at most `depth` levels per
   * side (default 10), and with `throttleMs` at most one message per
   * interval. Resolves with the server's `ack`. The client keeps the book
   * (`book(symbol)`, `onBook`), verifies every message's checksum and, on a
   * mismatch, subscribes again for a fresh book (`onBookMismatch`,
   * `onBookResync`). Calling it again for the same symbol changes the depth
   * or throttle and fetches a fresh book. Book subscriptions are renewed
   * after a reconnect, as quote subscriptions are.
   */
  async subscribeBook(symbol: string, options: { depth?: BookDepth; throttleMs?: number } = {}): Promise<BookAck> {
    const depth = options.depth ?? DEFAULT_BOOK_DEPTH;
    const throttleMs = options.throttleMs ?? 0;
    if (typeof symbol !== 'string') throw new TypeError('symbol must be a string');
    if (!BOOK_DEPTHS.includes(depth)) throw new TypeError(`depth must be one of ${BOOK_DEPTHS.join(', ')}`);
    if (!Number.isSafeInteger(throttleMs) || throttleMs < 0) throw new TypeError('throttleMs must be a non-negative integer');
    if (!isValidSymbol(symbol)) {
      return { ok: [], err: [{ symbol, code: 'BAD_SYMBOL', msg: 'symbol must be a string of 1-64 characters without control characters' }], depth };
    }
    let b = this.books.get(symbol);
    const added = b === undefined;
    if (b === undefined) {
      b = { depth, throttleMs, book: new LocalBook(symbol, depth), shown: false, attempts: 0, status: null, stale: false };
      this.books.set(symbol, b);
    } else {
      b.depth = depth;
      b.throttleMs = throttleMs;
      b.attempts = 0;
    }
    // Messages until the fresh book may be for the previous depth: wait for the book.
    b.book.synced = false;
    b.book.depth = depth;
    for (;;) {
      try {
        if (this.hello !== null) return await this.sendBookSub([symbol], depth, throttleMs);
        await this.nextOpen();
        // The resubscription at open included this book, with others of the same depth and throttle.
        const ack = await (this.bookResubAcks.get(`${depth}/${throttleMs}`) ?? this.sendBookSub([symbol], depth, throttleMs));
        const mine: BookAck = { ok: ack.ok.filter((s) => s === symbol), err: ack.err.filter((e) => e.symbol === symbol), depth: ack.depth };
        if (ack.throttleMs !== undefined) mine.throttleMs = ack.throttleMs;
        return mine;
      } catch (e) {
        if (e instanceof ConnectError && !this.stopped) continue;
        if (e instanceof RequestError && added) this.books.delete(symbol);
        throw e;
      }
    }
  }

  /** Unsubscribes from a book; its local copy is dropped at once and later messages for it are ignored. */
  async unsubscribeBook(symbol: string): Promise<AckResult> {
    this.books.delete(symbol);
    if (this.hello === null || !isValidSymbol(symbol)) return { ok: isValidSymbol(symbol) ? [symbol] : [], err: [] };
    return toAck(await this.request('unsub', { op: 'unsub', channel: 'book', symbols: [symbol] }));
  }

  /** The client's copy of a subscribed book (the live object), or undefined before its first verified book. */
  book(symbol: string): OrderBook | undefined {
    const b = this.books.get(symbol);
    return b !== undefined && b.shown ? b.book : undefined;
  }

  /** The status of a subscribed book (`stat` with `ch: "book"`), or undefined when not yet known on this connection. */
  bookStatus(symbol: string): SymbolStatus | undefined {
    return this.books.get(symbol)?.status ?? undefined;
  }

  /** The books subscribed (or to be subscribed at the next connect). */
  bookSubscriptions(): string[] {
    return [...this.books.keys()];
  }

  /** Every applied and verified `book` and `bupd`. Returns a function that removes the listener. */
  onBook(fn: (u: BookUpdate) => void): () => void {
    return listen(this.bookListeners, fn);
  }

  /** Per-book status changes: `stat` with `ch: "book"`, and `live` when a book's first data arrives. */
  onBookStatus(fn: (symbol: string, status: SymbolStatus) => void): () => void {
    return listen(this.bookStatusListeners, fn);
  }

  /** A book message that failed its checksum (or its sequence, or its shape); the client resubscribes unless it gave up. */
  onBookMismatch(fn: (m: BookMismatch) => void): () => void {
    return listen(this.bookMismatchListeners, fn);
  }

  /** A fresh book verified after a mismatch. */
  onBookResync(fn: (r: BookResync) => void): () => void {
    return listen(this.bookResyncListeners, fn);
  }

  /**
   * Subscribes to the trade prints of `symbol`: every trade, in order, each
   * once (`onTrade`). `last` asks for up to that many recent trades first;
   * `since` resumes after a position kept from earlier (`tradePosition`),
   * and the ack says whether that worked (`recovered`, and `onTradeResume`).
   * With `throttleMs`, trades come batched, at most one frame per interval,
   * never merged. The client keeps the position of the last trade it
   * delivered and, after a reconnect (to the same gateway or another
   * replica), subscribes with `since` on its own: the trades in between
   * follow, or `onTradeResume` says they could not be recovered, and
   * `onTradeGap` reports trades the gateway lost while this client was
   * behind. Calling it again for the same symbol changes the throttle and
   * keeps the position.
   */
  async subscribeTrades(symbol: string, options: { last?: number; throttleMs?: number; since?: TradePosition } = {}): Promise<TradeAck> {
    const last = options.last ?? 0;
    const throttleMs = options.throttleMs ?? 0;
    const since = options.since;
    if (typeof symbol !== 'string') throw new TypeError('symbol must be a string');
    if (!Number.isSafeInteger(last) || last < 0) throw new TypeError('last must be a non-negative integer');
    if (!Number.isSafeInteger(throttleMs) || throttleMs < 0) throw new TypeError('throttleMs must be a non-negative integer');
    if (since !== undefined && (typeof since !== 'object' || since === null || typeof since.e !== 'string' || !Number.isSafeInteger(since.q) || since.q < 0)) {
      throw new TypeError('since must be a position {e: string, q: non-negative integer}');
    }
    if (!isValidSymbol(symbol)) {
      return { ok: [], err: [{ symbol, code: 'BAD_SYMBOL', msg: 'symbol must be a string of 1-64 characters without control characters' }] };
    }
    let t = this.trades.get(symbol);
    const added = t === undefined;
    if (t === undefined) {
      t = new TradeCursor(symbol, throttleMs, last, since ?? null);
      this.trades.set(symbol, t);
    } else {
      t.throttleMs = throttleMs;
      t.last = last;
      if (since !== undefined) t.resumeFrom(since);
    }
    for (;;) {
      try {
        let r: TradeSubResult;
        if (this.hello !== null) {
          r = await this.sendTradeSub([t], throttleMs, last);
        } else {
          await this.nextOpen();
          // The resubscription at open included this symbol, with others of the same throttle and `last`.
          r = await (this.tradeResubAcks.get(t) ?? this.sendTradeSub([t], throttleMs, last));
        }
        const ack: TradeAck = { ok: r.ok.filter((s) => s === symbol), err: r.err.filter((e) => e.symbol === symbol) };
        if (r.throttleMs !== undefined) ack.throttleMs = r.throttleMs;
        const p = r.pos.get(symbol);
        if (p !== undefined) ack.position = p;
        const rec = r.rec.get(symbol);
        if (rec !== undefined) ack.recovered = rec;
        return ack;
      } catch (e) {
        if (e instanceof ConnectError && !this.stopped) continue;
        if (e instanceof RequestError && added && this.trades.get(symbol) === t) this.trades.delete(symbol);
        throw e;
      }
    }
  }

  /** Unsubscribes from a symbol's trades; its position is forgotten and later trades for it are ignored. */
  async unsubscribeTrades(symbol: string): Promise<AckResult> {
    this.trades.delete(symbol);
    if (this.hello === null || !isValidSymbol(symbol)) return { ok: isValidSymbol(symbol) ? [symbol] : [], err: [] };
    return toAck(await this.request('unsub', { op: 'unsub', channel: 'trade', symbols: [symbol] }));
  }

  /** The position `{e, q}` of the last trade delivered for a symbol (keep it to resume later with `since`), or undefined before any. */
  tradePosition(symbol: string): TradePosition | undefined {
    return this.trades.get(symbol)?.position();
  }

  /** The status of a symbol's trades (`stat` with `ch: "trade"`), or undefined until the gateway sends one on this connection. */
  tradeStatus(symbol: string): SymbolStatus | undefined {
    return this.trades.get(symbol)?.status ?? undefined;
  }

  /** The symbols whose trades are subscribed (or to be subscribed at the next connect). */
  tradeSubscriptions(): string[] {
    return [...this.trades.keys()];
  }

  /** Every trade, in order per symbol, each once. Returns a function that removes the listener. */
  onTrade(fn: (t: Trade) => void): () => void {
    return listen(this.tradeListeners, fn);
  }

  /** Trades the gateway lost for this client (`gap`: they left its history while the client was behind). */
  onTradeGap(fn: (g: TradeGap) => void): () => void {
    return listen(this.tradeGapListeners, fn);
  }

  /** Every resumed trade subscription (`since`): recovered, or not and why. */
  onTradeResume(fn: (r: TradeResume) => void): () => void {
    return listen(this.tradeResumeListeners, fn);
  }

  /** Per-symbol trade status changes: `stat` with `ch: "trade"`. */
  onTradeStatus(fn: (symbol: string, status: SymbolStatus) => void): () => void {
    return listen(this.tradeStatusListeners, fn);
  }

  /**
   * Replaces the token: used for every later connection, and sent now (`op:
   * auth`) to extend the current session before the old token expires.
   * Resolves with the new expiry (epoch ms, null if none); rejects with a
   * RequestError (AUTH_INVALID, AUTH_EXPIRED) if the server refuses it.
   */
  async setToken(token: string): Promise<number | null> {
    this.token = token;
    if (this.refusedToken !== token) this.refusedToken = undefined;
    this.tokenExp = tokenExpiry(token);
    this.tokenFrom = this.serverNow();
    if (this.socket === null || this.hello === null) return null;
    const ack = await this.request('auth', { op: 'auth', token });
    const exp = typeof ack['exp'] === 'number' ? ack['exp'] : null;
    if (this.token === token) {
      this.tokenExp = exp ?? this.tokenExp;
      this.planRefresh();
    }
    return exp;
  }

  /**
   * Adds a listener for one of the typed events ({@link ClientEventMap}):
   * `status`, `update`, `stale`, `bye`, `gap`, `error`, `heartbeat`, `book`,
   * `bookMismatch`, `bookResync`, `trade`, `tradeResume`. Returns a
   * function that removes it, as `off(type, fn)` does.
   */
  on<K extends keyof ClientEventMap<X>>(type: K, fn: (event: ClientEventMap<X>[K]) => void): () => void {
    const list = this.listeners[type];
    if (list === undefined) throw new TypeError(`on(${String(type)}): expected one of ${EVENTS.join(', ')}`);
    if (typeof fn !== 'function') throw new TypeError(`on(${String(type)}): expected a listener function`);
    return listen(list, fn);
  }

  /** Removes a listener added with `on` (or with the matching `onX` method). */
  off<K extends keyof ClientEventMap<X>>(type: K, fn: (event: ClientEventMap<X>[K]) => void): void {
    const list = this.listeners[type];
    if (list === undefined) throw new TypeError(`off(${String(type)}): expected one of ${EVENTS.join(', ')}`);
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
  }

  /** Round trip to the server and back, milliseconds. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.request('ping', { op: 'ping', ts: this.clock.now() });
    this.lastRttMs = performance.now() - t0;
    return this.lastRttMs;
  }

  /** Known symbols starting with `prefix`, sorted, at most `limit` (server default and maximum apply). */
  async symbols(prefix?: string, limit?: number): Promise<SymbolList> {
    const req: Msg = { op: 'symbols' };
    if (prefix !== undefined) req['prefix'] = prefix;
    if (limit !== undefined) req['limit'] = limit;
    const m = await this.request('symbols', req);
    const list = Array.isArray(m['symbols']) ? (m['symbols'] as unknown[]).filter((s): s is string => typeof s === 'string') : [];
    return { symbols: list, more: m['more'] === true };
  }

  /** The merged state of a subscribed symbol (the live object; copy it to keep it), or undefined before its snapshot. */
  state(symbol: string): Readonly<SymbolState<X>> | undefined {
    return (this.syms.get(symbol)?.state ?? undefined) as SymbolState<X> | undefined;
  }

  /** The status of a subscribed symbol, or undefined when not yet known on this connection. */
  symbolStatus(symbol: string): SymbolStatus | undefined {
    return this.syms.get(symbol)?.status ?? undefined;
  }

  /** The symbols subscribed (or to be subscribed at the next connect). */
  subscriptions(): string[] {
    return [...this.syms.keys()];
  }

  /** Every applied snap and upd. Returns a function that removes the listener. */
  onUpdate(fn: (u: Update<X>) => void): () => void {
    return listen(this.updateListeners, fn);
  }

  /** Per-symbol status changes (`stat`, and `live` when a symbol's first data arrives). */
  onStatus(fn: (symbol: string, status: SymbolStatus) => void): () => void {
    return listen(this.statusListeners, fn);
  }

  /** Connection status changes. */
  onConnection(fn: (s: ConnectionStatus) => void): () => void {
    return listen(this.connectionListeners, fn);
  }

  /** Server heartbeats, with this client's backlog on the server. */
  onHeartbeat(fn: (hb: Heartbeat) => void): () => void {
    return listen(this.heartbeatListeners, fn);
  }

  /** Errors not tied to a call: an `err` without a matching request, a protocol violation before a reconnect. */
  onError(fn: (e: TickgateError) => void): () => void {
    return listen(this.errorListeners, fn);
  }

  /**
   * Updates as an async iterator, ending when the client is closed. It
   * yields the current state of every subscribed symbol first, as a
   * snapshot (`snapshot: true`, `changed` = the whole state), then live
   * updates: a `snap` that arrived before the call (for instance in the
   * frame of the `sub` ack) is not missed. A symbol whose snapshot has not
   * arrived yet on this connection gets it when it does. A reader that
   * falls behind gets pending updates merged per symbol rather than an
   * ever-growing queue (`n` counts the merged messages).
   */
  updates(): AsyncIterableIterator<Update<X>> {
    const q = new UpdateQueue<X>((done) => this.queues.delete(done));
    if (this.stopped && this._status.state === 'closed' && this.everOpened) {
      q.end();
      return q;
    }
    for (const [symbol, sym] of this.syms) {
      if (!sym.synced || sym.state === null) continue;
      q.push({ symbol, state: sym.state, changed: sym.state, q: sym.q, snapshot: true } as Update as Update<X>);
    }
    this.queues.add(q);
    return q;
  }

  /** Closes the connection for good (until the next `connect()`); resolves once the socket is closed. */
  close(): Promise<void> {
    this.stopped = true;
    this.gen++;
    this.clearTimers();
    this.cancelRefresh();
    if (this.reconnectTimer !== null) this.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.socket;
    this.socket = null;
    this.hello = null;
    const err = new ConnectError('client closed', this.safeUrl);
    this.failPending(err);
    this.rejectOpenWaiters(err);
    this.setStatus({ state: 'closed', reason: 'closed by client' });
    for (const q of [...this.queues]) q.end();
    if (ws === null) return Promise.resolve();
    return new Promise((resolve) => {
      detach(ws);
      const done = (): void => {
        this.clock.clearTimeout(t);
        ws.onclose = null;
        resolve();
      };
      // A dead peer never completes the close handshake: give it a moment, then cut.
      const t = this.clock.setTimeout(() => {
        terminate(ws);
        done();
      }, 1000);
      ws.onclose = done;
      ws.onerror = () => {};
      try {
        ws.close(1000, 'client closed');
      } catch {
        terminate(ws);
        done();
      }
    });
  }

  // ---- connection lifecycle ----

  private open(): void {
    this.attempts++;
    this.bye = undefined;
    this.lastError = null;
    this.setStatus({ state: 'connecting', attempt: this.attempts });
    if (this.WS === undefined) {
      this.stopped = true;
      const e = new ConnectError('no WebSocket implementation: pass options.WebSocket (in Node.js 20, the ws package)', this.safeUrl);
      this.rejectOpenWaiters(e);
      this.setStatus({ state: 'closed', reason: e.message, error: e });
      return;
    }
    const gen = ++this.gen;
    // The attempt, getToken included, must reach hello in time.
    this.connectTimer = this.clock.setTimeout(() => {
      this.connectTimer = null;
      if (this.socket !== null) {
        this.fail({ code: CLOSE_CONNECT_TIMEOUT, reason: `no hello within ${this.connectTimeoutMs} ms` }, true);
        return;
      }
      this.gen++;
      this.noToken('AUTH_REQUIRED', `getToken did not answer within ${this.connectTimeoutMs} ms`);
    }, this.connectTimeoutMs);
    if (this.getToken === undefined) {
      this.dial(this.token);
      return;
    }
    let got: ReturnType<TokenProvider>;
    try {
      got = this.getToken();
    } catch (cause) {
      this.noToken('AUTH_REQUIRED', `getToken threw: ${(cause as Error)?.message ?? String(cause)}`, cause);
      return;
    }
    if (!isThenable<string | null | undefined>(got)) {
      this.dial(got ?? undefined);
      return;
    }
    got.then(
      (t) => {
        if (gen === this.gen && !this.stopped && this.socket === null) this.dial(t ?? undefined);
      },
      (cause: unknown) => {
        if (gen === this.gen && !this.stopped && this.socket === null) this.noToken('AUTH_REQUIRED', `getToken failed: ${(cause as Error)?.message ?? String(cause)}`, cause);
      },
    );
  }

  /**
   * Why `token` must not be presented, or null when it may: absent from
   * getToken, refused before, or (a JWT) past its `exp` by the server's clock.
   */
  private tokenProblem(token: unknown): { code: string; message: string } | null {
    if (token === undefined && this.getToken === undefined) return null;
    if (typeof token !== 'string' || token === '') return { code: 'AUTH_REQUIRED', message: 'getToken returned no token' };
    if (token === this.refusedToken) return { code: this.refusedCode, message: `the token was refused (${this.refusedCode}) and no fresh one was had` };
    const exp = tokenExpiry(token);
    if (exp !== null && exp <= this.serverNow()) return { code: 'AUTH_EXPIRED', message: `the token expired at ${new Date(exp).toISOString()}` };
    return null;
  }

  /** Server time as best known: the clock a token's `exp` is judged by. */
  private serverNow(): number {
    return this.clock.now() + this.skewMs;
  }

  /** No usable token for this attempt: it fails without connecting, so a bad token never reaches the server. */
  private noToken(code: string, message: string, cause?: unknown): void {
    const error = new AuthError(code, `cannot connect to ${this.safeUrl}: ${message}`, this.safeUrl, { cause });
    this.dropped({ code: CLOSE_NO_TOKEN, reason: `${code}: ${message}`, error });
  }

  /** Opens the socket with `token` (undefined: none), once it is known to be usable. */
  private dial(token: string | undefined): void {
    const problem = this.tokenProblem(token);
    if (problem !== null) {
      this.noToken(problem.code, problem.message);
      return;
    }
    if (token !== undefined && token !== this.usedToken) {
      this.tokenExp = tokenExpiry(token);
      this.tokenFrom = this.serverNow();
    }
    this.token = token;
    this.usedToken = token;
    const i = this.nextUrl++ % this.urls.length;
    this.safeUrl = this.safeUrls[i]!;
    let ws: WebSocketLike;
    let url = this.urls[i]!;
    let protocols: string[] | undefined;
    if (token !== undefined) {
      if (this.tokenTransport === 'query') {
        const u = new URL(url);
        u.searchParams.set('token', token);
        url = u.toString();
      } else {
        protocols = ['tickgate.v1', `bearer.${token}`];
      }
    }
    try {
      ws = protocols === undefined ? new this.WS!(url) : new this.WS!(url, protocols);
    } catch (cause) {
      this.dropped({ code: 1006, reason: 'cannot create socket', error: new ConnectError(`cannot connect to ${this.safeUrl}: ${(cause as Error).message}`, this.safeUrl, { cause }) });
      return;
    }
    this.socket = ws;
    ws.binaryType = 'arraybuffer';
    // Bound per connection, not per message: the socket check drops events from a socket we already left.
    ws.onmessage = (ev: MessageLike) => {
      if (this.socket === ws) this.onFrame(ev.data);
    };
    ws.onerror = (ev: ErrorLike) => {
      if (this.socket === ws) this.lastError = ev;
    };
    ws.onclose = (ev: CloseLike) => {
      if (this.socket === ws) this.onSocketClose(ev);
    };
  }

  private onSocketClose(ev: CloseLike): void {
    const info: CloseInfo = { code: ev.code, reason: ev.reason };
    if (this.bye !== undefined) info.bye = this.bye;
    if (this.hello === null) {
      const e = this.lastError;
      const detail = e?.error?.code ?? e?.error?.message ?? e?.message ?? `connection closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`;
      // The `ws` package names a refused upgrade's status; browsers show nothing.
      const http = /Unexpected server response: (\d{3})/.exec(e?.error?.message ?? e?.message ?? '');
      if (http !== null) info.httpStatus = Number(http[1]);
      if (info.httpStatus === 401) {
        const code = inferAuthCode(this.usedToken, this.tokenExp, this.serverNow());
        info.error = new AuthError(code, `cannot connect to ${this.safeUrl}: HTTP 401 (${code})`, this.safeUrl, { cause: e?.error ?? e ?? undefined });
      } else {
        info.error = new ConnectError(`cannot connect to ${this.safeUrl}: ${detail}`, this.safeUrl, { cause: e?.error ?? e ?? undefined });
      }
    }
    this.socket = null;
    this.dropped(info);
  }

  /** Leaves the current socket on our own initiative (dead, timed out, or speaking nonsense). */
  private fail(info: CloseInfo, connecting = false): void {
    const ws = this.socket;
    if (ws === null) return;
    this.socket = null;
    detach(ws);
    try {
      // Browsers refuse close reasons over 123 bytes.
      ws.close(info.code, info.reason.slice(0, 40));
    } catch {
      // already closing
    }
    // Do not wait for a close handshake a dead peer will never answer.
    terminate(ws);
    if (connecting && info.error === undefined) info.error = new ConnectError(`cannot connect to ${this.safeUrl}: ${info.reason}`, this.safeUrl);
    this.dropped(info);
  }

  /**
   * What a close says about the credentials: an AuthError when they were
   * refused, expired or unusable; a ConnectError for another bye without
   * retryMs (the server's rule: the same credentials will not do); else null.
   */
  private credentialFailure(info: CloseInfo): ConnectError | null {
    if (info.error instanceof AuthError) return info.error;
    const bye = info.bye;
    if (bye === undefined) return null;
    if (bye.code.startsWith('AUTH_')) return new AuthError(bye.code, `${this.safeUrl}: bye ${bye.code}: ${bye.reason}`, this.safeUrl);
    if (bye.retryMs === undefined) return new ConnectError(`${this.safeUrl}: bye ${bye.code} without retryMs (${bye.reason}): reconnecting with the same credentials would not succeed`, this.safeUrl);
    return null;
  }

  /** The connection is gone: settle what waited on it, then reconnect or stop. */
  private dropped(info: CloseInfo): void {
    this.clearTimers();
    this.cancelRefresh();
    const wasOpen = this.hello !== null;
    this.hello = null;
    // Only a connection that lasted resets the backoff: one cut soon after its
    // hello (a crash loop behind a load balancer, a gateway out of memory)
    // keeps the delays growing instead of bringing every client back at once.
    if (wasOpen && this.clock.now() - this.openedAt >= this.backoff.stableMs) this.attempts = 0;
    this.failPending(new ConnectError(`connection to ${this.safeUrl} lost: ${info.reason || `code ${info.code}`}`, this.safeUrl, { cause: info.error }));
    if (this.stopped) return;
    if (info.error !== undefined && wasOpen) emit(this.errorListeners, info.error);
    const auth = this.credentialFailure(info);
    // A token the server turned down (not one we held back ourselves) is not offered again.
    if (auth !== null && info.code !== CLOSE_NO_TOKEN) {
      this.refusedToken = this.usedToken;
      this.refusedCode = auth instanceof AuthError ? auth.code : (info.bye?.code ?? 'AUTH_INVALID');
    }
    // A server that speaks another protocol from the start will not change its mind,
    // and without getToken there is no other credential to try.
    const terminal = (info.error instanceof ProtocolError && !wasOpen) || (auth !== null && this.getToken === undefined);
    if (!this.reconnect || terminal || (!this.everOpened && !this.retryFirstConnect)) {
      this.stopped = true;
      let error = auth ?? info.error ?? new ConnectError(`connection to ${this.safeUrl} closed: ${info.reason || `code ${info.code}`}`, this.safeUrl);
      let reason = info.bye !== undefined ? `bye ${info.bye.code}: ${info.bye.reason}` : info.reason || `code ${info.code}`;
      if (auth instanceof AuthError && this.getToken === undefined && this.everOpened) {
        reason = `${auth.code}: ${reason}; no getToken to fetch a fresh token`;
        error = new AuthError(auth.code, `${auth.message}; no getToken to fetch a fresh token, not reconnecting`, this.safeUrl, { cause: auth.cause });
      } else if (auth !== null && this.getToken === undefined) {
        reason = `${reason}; not reconnecting: the server sent no retryMs`;
      }
      this.rejectOpenWaiters(error);
      this.setStatus({ state: 'closed', reason, error });
      for (const q of [...this.queues]) q.end();
      return;
    }
    if (auth !== null) this.authFailed(auth);
    const next = this.attempts + 1;
    const { initialMs, maxMs } = this.backoff;
    const floor = this.retryFloorMs;
    // A floor that came with this connection's own bye is the first attempt after that bye.
    const delayMs = floor !== null ? retryAfterDelay(floor, next, initialMs, maxMs, this.random, wasOpen) : backoffDelay(next, initialMs, maxMs, this.random);
    const reason = info.bye !== undefined ? `bye ${info.bye.code}: ${info.bye.reason}` : info.reason || `code ${info.code}`;
    this.setStatus({ state: 'reconnecting', attempt: next, delayMs, reason, last: info });
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.open();
    }, delayMs);
  }

  /** Reports a credential failure once per run of them: the next usable token re-arms it. */
  private authFailed(e: TickgateError): void {
    if (this.authFailing) return;
    this.authFailing = true;
    emit(this.errorListeners, e);
  }

  private onHello(m: Msg): void {
    if (m['v'] !== PROTOCOL_VERSION) {
      const error = new ProtocolError(`server speaks protocol version ${String(m['v'])}, this client ${PROTOCOL_VERSION}`);
      this.fail({ code: CLOSE_PROTOCOL_ERROR, reason: error.message, error });
      return;
    }
    const limits = (typeof m['limits'] === 'object' && m['limits'] !== null ? m['limits'] : {}) as Msg;
    const hello: ServerHello = {
      sid: String(m['sid']),
      hbMs: num(m['hbMs'], 5000),
      serverTs: num(m['serverTs'], 0),
      limits: {
        maxSymbols: num(limits['maxSymbols'], Infinity),
        maxMessageBytes: num(limits['maxMessageBytes'], 65536),
        maxMessagesPerSec: num(limits['maxMessagesPerSec'], Infinity),
      },
    };
    if (this.connectTimer !== null) this.clock.clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.hello = hello;
    this.openedAt = this.clock.now();
    this.retryFloorMs = null;
    this.everOpened = true;
    this.authFailing = false;
    if (hello.serverTs > 0) this.skewMs = hello.serverTs - this.clock.now();
    // Any frame is a sign of life; checked a few times per allowed silence.
    const deadMs = hello.hbMs * this.hbMultiplier;
    const everyMs = Math.max(20, Math.floor(deadMs / 4));
    const check = (): void => {
      this.hbTimer = null;
      const silent = this.clock.now() - this.lastFrameAt;
      if (silent > deadMs) {
        const reason = `no frame for ${silent} ms (heartbeat every ${hello.hbMs} ms)`;
        this.fail({ code: CLOSE_HEARTBEAT_TIMEOUT, reason, error: new ConnectError(`connection to ${this.safeUrl} is dead: ${reason}`, this.safeUrl) });
        return;
      }
      this.hbTimer = this.clock.setTimeout(check, everyMs);
    };
    this.hbTimer = this.clock.setTimeout(check, everyMs);
    this.resubscribe();
    this.planRefresh();
    this.setStatus({ state: 'open', hello });
    const waiters = this.openWaiters;
    this.openWaiters = [];
    for (const w of waiters) w.resolve(hello);
  }

  // ---- token refresh in place ----

  /** With getToken and a token that expires: refreshes it (`op: auth`) ahead of its expiry, on this connection. */
  private planRefresh(): void {
    this.cancelRefresh();
    if (this.getToken === undefined || this.hello === null || this.tokenExp === null) return;
    const lead = Math.min(REFRESH_LEAD_MAX_MS, Math.max(0, (this.tokenExp - this.tokenFrom) / 4));
    this.armRefresh(Math.max(0, this.tokenExp - lead - this.serverNow()));
  }

  private armRefresh(delayMs: number): void {
    this.cancelRefresh();
    const gen = this.gen;
    this.refreshTimer = this.clock.setTimeout(() => {
      this.refreshTimer = null;
      void this.refresh(gen);
    }, delayMs);
  }

  private cancelRefresh(): void {
    if (this.refreshTimer !== null) this.clock.clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  private async refresh(gen: number): Promise<void> {
    this.refreshing = true;
    try {
      await this.refreshOnce(gen);
    } finally {
      this.refreshing = false;
    }
  }

  /** Fetches a token and presents it with `auth`; on failure tries again with backoff while the current one lasts. */
  private async refreshOnce(gen: number): Promise<void> {
    const current = (): boolean => gen === this.gen && this.hello !== null && !this.stopped;
    let token: unknown;
    try {
      token = await this.getToken!();
    } catch (cause) {
      if (current()) this.refreshFailed(new AuthError('AUTH_REQUIRED', `token refresh: getToken failed: ${(cause as Error)?.message ?? String(cause)}`, this.safeUrl, { cause }));
      return;
    }
    if (!current()) return;
    const problem = this.tokenProblem(token);
    if (problem !== null) {
      this.refreshFailed(new AuthError(problem.code, `token refresh: ${problem.message}`, this.safeUrl));
      return;
    }
    const fresh = token as string;
    if (fresh === this.token) {
      this.refreshFailed(new AuthError('AUTH_EXPIRED', `token refresh: getToken returned the token in use, which expires at ${new Date(this.tokenExp!).toISOString()}`, this.safeUrl));
      return;
    }
    let ack: Msg;
    try {
      ack = await this.request('auth', { op: 'auth', token: fresh });
    } catch (e) {
      if (!current()) return;
      if (e instanceof RequestError && e.code.startsWith('AUTH_')) {
        this.refusedToken = fresh;
        this.refusedCode = e.code;
        this.refreshFailed(new AuthError(e.code, `token refresh: ${e.message}`, this.safeUrl, { cause: e }));
      } else if (!(e instanceof ConnectError)) {
        this.refreshFailed(new AuthError('AUTH_INVALID', `token refresh: ${(e as Error).message}`, this.safeUrl, { cause: e }));
      }
      return;
    }
    if (!current()) return;
    this.token = fresh;
    this.usedToken = fresh;
    this.tokenExp = typeof ack['exp'] === 'number' ? ack['exp'] : tokenExpiry(fresh);
    this.tokenFrom = this.serverNow();
    this.refreshFailures = 0;
    this.authFailing = false;
    const dropped = toAck(ack).err;
    if (dropped.length > 0) {
      emit(this.errorListeners, new RequestError('NOT_ENTITLED', `auth: the fresh token no longer covers ${dropped.map((d) => d.symbol).join(', ')}; the server unsubscribed them`, 'auth'));
    }
    this.planRefresh();
  }

  /** A refresh failed: report it (once per run) and try again after a backoff, if the current token outlasts it. */
  private refreshFailed(e: AuthError): void {
    this.authFailed(e);
    this.refreshFailures++;
    const delayMs = backoffDelay(this.refreshFailures, this.backoff.initialMs, this.backoff.maxMs, this.random);
    // Past the expiry the server ends the session, and the reconnect asks getToken again.
    if (this.tokenExp !== null && this.serverNow() + delayMs < this.tokenExp) this.armRefresh(delayMs);
  }

  /** Renews every subscription on a new connection, one `sub` per throttle interval; q restarts, so state waits for fresh snaps. */
  private resubscribe(): void {
    this.resubAcks = new Map();
    const groups = new Map<number, string[]>();
    for (const [s, sym] of this.syms) {
      sym.q = -1;
      sym.synced = false;
      sym.status = null;
      let g = groups.get(sym.throttleMs);
      if (g === undefined) groups.set(sym.throttleMs, (g = []));
      g.push(s);
    }
    for (const [throttleMs, symbols] of groups) {
      const p = this.sendSub(symbols, throttleMs);
      p.catch((e: unknown) => {
        if (!(e instanceof ConnectError)) emit(this.errorListeners, e as TickgateError);
      });
      this.resubAcks.set(throttleMs, p);
    }
    this.bookResubAcks = new Map();
    const bookGroups = new Map<string, { depth: number; throttleMs: number; symbols: string[] }>();
    for (const [s, b] of this.books) {
      b.book.synced = false;
      b.attempts = 0;
      b.status = null;
      const key = `${b.depth}/${b.throttleMs}`;
      let g = bookGroups.get(key);
      if (g === undefined) bookGroups.set(key, (g = { depth: b.depth, throttleMs: b.throttleMs, symbols: [] }));
      g.symbols.push(s);
    }
    for (const [key, g] of bookGroups) {
      const p = this.sendBookSub(g.symbols, g.depth, g.throttleMs);
      p.catch((e: unknown) => {
        if (!(e instanceof ConnectError)) emit(this.errorListeners, e as TickgateError);
      });
      this.bookResubAcks.set(key, p);
    }
    // Trades resume from each symbol's position (`since`); those without one start fresh with their `last`.
    this.tradeResubAcks = new Map();
    const tradeGroups = new Map<string, TradeCursor[]>();
    for (const t of this.trades.values()) {
      t.reset();
      const key = `${t.throttleMs}/${t.last}`;
      let g = tradeGroups.get(key);
      if (g === undefined) tradeGroups.set(key, (g = []));
      g.push(t);
    }
    for (const g of tradeGroups.values()) {
      const p = this.sendTradeSub(g, g[0]!.throttleMs, g[0]!.last);
      p.catch((e: unknown) => {
        if (!(e instanceof ConnectError)) emit(this.errorListeners, e as TickgateError);
      });
      for (const t of g) this.tradeResubAcks.set(t, p);
    }
  }

  /**
   * Sends `sub` for trades in chunks: `since` for each symbol with a
   * position, `last` for the others. Each ack is applied as it is read,
   * before the trades behind it in the same frame; rejected symbols are
   * forgotten.
   */
  private async sendTradeSub(cursors: TradeCursor[], throttleMs: number, last: number): Promise<TradeSubResult> {
    const reqs: Array<Promise<Msg>> = [];
    for (let i = 0; i < cursors.length; i += SUB_CHUNK) {
      const chunk = cursors.slice(i, i + SUB_CHUNK);
      const sent = new Map<string, { cursor: TradeCursor; since: TradePosition | null }>();
      const req: Msg = { op: 'sub', channel: 'trade', symbols: chunk.map((t) => t.symbol) };
      let since: Record<string, TradePosition> | null = null;
      for (const t of chunk) {
        const p = t.since();
        sent.set(t.symbol, { cursor: t, since: p });
        if (p === null) continue;
        // A symbol is a key here: defineProperty, so "__proto__" stays a plain key.
        since ??= {};
        Object.defineProperty(since, t.symbol, { value: p, enumerable: true, writable: true, configurable: true });
      }
      if (since !== null) req['since'] = since;
      if (last > 0) req['last'] = last;
      if (throttleMs > 0) req['throttleMs'] = throttleMs;
      reqs.push(this.request('sub', req, (m) => this.onTradeAck(m, sent)));
    }
    const result: TradeSubResult = { ok: [], err: [], pos: new Map(), rec: new Map() };
    for (const m of await Promise.all(reqs)) {
      const a = toAck(m);
      result.ok.push(...a.ok);
      result.err.push(...a.err);
      if (a.throttleMs !== undefined) result.throttleMs = a.throttleMs;
      const pos = m['pos'];
      const rec = m['rec'];
      for (const s of a.ok) {
        const p = isPosition(pos, s);
        if (p !== null) result.pos.set(s, p);
        const r = typeof rec === 'object' && rec !== null && Object.hasOwn(rec, s) ? (rec as Msg)[s] : undefined;
        if (typeof r === 'boolean') result.rec.set(s, r);
      }
    }
    return result;
  }

  /** A trade ack, as it is read: each accepted symbol learns this connection's epoch, and a resume its outcome. */
  private onTradeAck(m: Msg, sent: Map<string, { cursor: TradeCursor; since: TradePosition | null }>): void {
    const a = toAck(m);
    for (const e of a.err) {
      const x = sent.get(e.symbol);
      if (x !== undefined && this.trades.get(e.symbol) === x.cursor) this.trades.delete(e.symbol);
    }
    const rec = m['rec'];
    for (const s of a.ok) {
      const x = sent.get(s);
      // Unsubscribed (or subscribed anew) since the request: not this cursor's ack.
      if (x === undefined || this.trades.get(s) !== x.cursor) continue;
      const at = isPosition(m['pos'], s);
      if (at === null) {
        emit(this.errorListeners, new ProtocolError(`trade ack for ${s} without its position (pos)`));
        continue;
      }
      const r = typeof rec === 'object' && rec !== null && Object.hasOwn(rec, s) ? (rec as Msg)[s] : undefined;
      const resume = x.cursor.acked(at, x.since, typeof r === 'boolean' ? r : undefined);
      if (resume !== null) emit(this.tradeResumeListeners, resume);
      if (x.cursor.stale) this.dataWhileStale(s, 'trade', x.cursor);
    }
  }

  /** Sends `sub` for books in chunks and merges the acks; rejected symbols are forgotten. */
  private async sendBookSub(symbols: string[], depth: number, throttleMs: number): Promise<BookAck> {
    const reqs: Array<Promise<Msg>> = [];
    for (let i = 0; i < symbols.length; i += SUB_CHUNK) {
      const req: Msg = { op: 'sub', channel: 'book', symbols: symbols.slice(i, i + SUB_CHUNK), depth };
      if (throttleMs > 0) req['throttleMs'] = throttleMs;
      reqs.push(this.request('sub', req));
    }
    const result: BookAck = { ok: [], err: [], depth };
    for (const m of await Promise.all(reqs)) {
      const a = toAck(m);
      result.ok.push(...a.ok);
      result.err.push(...a.err);
      if (a.throttleMs !== undefined) result.throttleMs = a.throttleMs;
      if (typeof m['depth'] === 'number') result.depth = m['depth'];
    }
    for (const e of result.err) this.books.delete(e.symbol);
    return result;
  }

  /** Subscribes to a book again for a fresh window, after a mismatch. */
  private resyncBook(symbol: string, b: BookSub): void {
    this.sendBookSub([symbol], b.depth, b.throttleMs).catch((e: unknown) => {
      // Lost: the reconnect renews it. Refused or timed out: say so.
      if (!(e instanceof ConnectError)) emit(this.errorListeners, e as TickgateError);
    });
  }

  /** Sends `sub` in chunks and merges the acks; rejected symbols are forgotten. */
  private async sendSub(symbols: string[], throttleMs: number): Promise<AckResult> {
    const reqs: Array<Promise<Msg>> = [];
    for (let i = 0; i < symbols.length; i += SUB_CHUNK) {
      const req: Msg = { op: 'sub', symbols: symbols.slice(i, i + SUB_CHUNK) };
      if (throttleMs > 0) req['throttleMs'] = throttleMs;
      reqs.push(this.request('sub', req));
    }
    const result: AckResult = { ok: [], err: [] };
    for (const m of await Promise.all(reqs)) {
      const a = toAck(m);
      result.ok.push(...a.ok);
      result.err.push(...a.err);
      if (a.throttleMs !== undefined) result.throttleMs = a.throttleMs;
    }
    for (const e of result.err) this.syms.delete(e.symbol);
    return result;
  }

  private request(op: string, req: Msg, onReply?: (m: Msg) => void): Promise<Msg> {
    const ws = this.socket;
    if (ws === null || this.hello === null) return Promise.reject(new ConnectError(`not connected to ${this.safeUrl}`, this.safeUrl));
    const id = this.nextId++;
    req['id'] = id;
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestError('TIMEOUT', `${op}: no reply within ${this.requestTimeoutMs} ms`, op));
      }, this.requestTimeoutMs);
      this.pending.set(id, { op, onReply, resolve, reject, timer });
      try {
        ws.send(JSON.stringify(req));
      } catch (cause) {
        this.clock.clearTimeout(timer);
        this.pending.delete(id);
        reject(new ConnectError(`cannot send to ${this.safeUrl}`, this.safeUrl, { cause }));
      }
    });
  }

  private nextOpen(): Promise<ServerHello> {
    return new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
  }

  // ---- incoming frames ----

  private onFrame(data: unknown): void {
    this.lastFrameAt = this.clock.now();
    if (typeof data === 'string') {
      this.protocolError('server sent a text frame; v1 servers send binary MessagePack frames');
      return;
    }
    let frame: unknown;
    try {
      frame = this.decoder.decode(data as ArrayBuffer);
    } catch (cause) {
      this.protocolError(`undecodable frame: ${(cause as Error).message}`, cause);
      return;
    }
    if (!Array.isArray(frame)) {
      this.protocolError('frame is not a MessagePack array');
      return;
    }
    for (let i = 0; i < frame.length; i++) {
      const m = frame[i] as unknown;
      if (typeof m === 'object' && m !== null) this.onMessage(m as Msg);
      // The socket may have been left while handling this frame (bye, bad hello).
      if (this.socket === null) break;
    }
    if (this.liveAgain.length > 0) this.settleLive();
  }

  /** A subscription's `stat`: reported as a `stale` event when it enters or leaves `stale`. */
  private staleStat(symbol: string, channel: Channel, w: Watched, st: SymbolStatus): void {
    if (st === 'stale' ? w.stale : !w.stale || st !== 'live') return;
    w.stale = st === 'stale';
    emit(this.listeners.stale, { symbol, channel, stale: w.stale });
  }

  /**
   * Data for a subscription last reported stale: after a reconnect no `stat`
   * `live` comes (a symbol without `stat` after its data is live), so it is
   * live again, unless a `stat` `stale` in the same frame follows its data.
   */
  private dataWhileStale(symbol: string, channel: Channel, w: Watched): void {
    this.liveAgain.push({ symbol, channel, w });
  }

  private settleLive(): void {
    const list = this.liveAgain.splice(0);
    for (const { symbol, channel, w } of list) {
      const current = channel === 'quote' ? this.syms.get(symbol) : channel === 'book' ? this.books.get(symbol) : this.trades.get(symbol);
      if (current !== w || !w.stale || w.status === 'stale') continue;
      w.stale = false;
      emit(this.listeners.stale, { symbol, channel, stale: false });
    }
  }

  private onMessage(m: Msg): void {
    switch (m['t']) {
      case 'upd':
      case 'snap':
        this.onData(m);
        return;
      case 'book':
      case 'bupd':
        this.onBookData(m);
        return;
      case 'trade':
        this.onTradeMessage(m);
        return;
      case 'gap':
        this.onTradeGapMessage(m);
        return;
      case 'stat':
        this.onStat(m);
        return;
      case 'hb':
        if (this.heartbeatListeners.length > 0) emit(this.heartbeatListeners, { ts: num(m['ts'], 0), buf: num(m['buf'], 0), cf: num(m['cf'], 0) });
        return;
      case 'ack':
      case 'pong':
      case 'symbols':
        this.reply(m, null);
        return;
      case 'err': {
        const code = typeof m['code'] === 'string' ? m['code'] : 'UNKNOWN';
        const msg = typeof m['msg'] === 'string' ? m['msg'] : '';
        const p = typeof m['id'] === 'number' ? this.pending.get(m['id']) : undefined;
        const e = new RequestError(code, `${p?.op ?? 'request'}: ${code}: ${msg}`, p?.op ?? '');
        if (this.reply(m, e)) return;
        emit(this.errorListeners, e);
        // The server doubts the credentials: fetch fresh ones now rather than at the planned time.
        if (code.startsWith('AUTH_') && this.getToken !== undefined && this.hello !== null && !this.refreshing) this.armRefresh(0);
        return;
      }
      case 'hello':
        this.onHello(m);
        return;
      case 'bye': {
        const bye: ByeInfo = { code: String(m['code']), reason: typeof m['reason'] === 'string' ? m['reason'] : '' };
        const retryMs = m['retryMs'];
        if (typeof retryMs === 'number' && Number.isFinite(retryMs)) bye.retryMs = Math.max(0, retryMs);
        this.bye = bye;
        // A credential bye is answered with a fresh token, not by waiting.
        if (bye.retryMs !== undefined && !bye.code.startsWith('AUTH_')) this.retryFloorMs = bye.retryMs;
        emit(this.listeners.bye, bye);
        return;
      }
      default:
      // A newer server's message type: ignored, as the protocol requires.
    }
  }

  /** The hot path: one snap or upd. */
  private onData(m: Msg): void {
    const s = m['s'];
    const q = m['q'];
    const d = m['d'];
    if (typeof s !== 'string' || typeof q !== 'number' || typeof d !== 'object' || d === null) return;
    const sym = this.syms.get(s);
    if (sym === undefined) return; // unsubscribed: the server may still send until its ack
    // The decoded map is ours alone: a snap's becomes the state, an upd's is
    // the changed set. Values are kept as decoded, numbers or strings (text
    // fields): merging copies them without looking at their type.
    const fields = d as SymbolState;
    const snapshot = m['t'] === 'snap';
    let state: SymbolState;
    if (snapshot) {
      state = fields;
      sym.state = fields;
      sym.synced = true;
    } else {
      if (!sym.synced || q <= sym.q || sym.state === null) return; // old, or no base to merge into
      state = sym.state;
      for (const k in fields) state[k] = fields[k]!;
    }
    sym.q = q;
    if (sym.status === null || sym.status === 'unknown') {
      sym.status = 'live';
      if (this.statusListeners.length > 0) emit(this.statusListeners, s, 'live' as SymbolStatus);
    }
    if (sym.stale) this.dataWhileStale(s, 'quote', sym);
    if (this.updateListeners.length === 0 && this.queues.size === 0) return;
    // X is the user's declaration of these same objects: a cast, no copy.
    const u = { symbol: s, state, changed: fields, q, snapshot } as Update as Update<X>;
    const n = m['n'];
    if (typeof n === 'number') u.n = n;
    const ls = this.updateListeners;
    for (let i = 0; i < ls.length; i++) {
      try {
        ls[i]!(u);
      } catch (err) {
        rethrowLater(err);
      }
    }
    if (this.queues.size > 0) for (const queue of this.queues) queue.push(u);
  }

  /** One `book` or `bupd`: applied to the local window, then verified against its `cs`. */
  private onBookData(m: Msg): void {
    const s = m['s'];
    const q = m['q'];
    if (typeof s !== 'string' || typeof q !== 'number') return;
    const b = this.books.get(s);
    if (b === undefined) return; // unsubscribed: the server may still send until its ack
    const book = b.book;
    const snapshot = m['t'] === 'book';
    const bids = m['bids'];
    const asks = m['asks'];
    const cs = m['cs'];
    if (snapshot) {
      if (typeof cs !== 'number' || !book.replace(bids, asks, q)) return this.bookMismatch(s, b, q, { reason: 'malformed' });
    } else {
      // Waiting for a fresh book: changes cannot be applied to a window known to be wrong.
      if (!book.synced) return;
      if (q !== book.q + 1) {
        emit(this.listeners.gap, { symbol: s, channel: 'book', expected: book.q + 1, q });
        return this.bookMismatch(s, b, q, { reason: 'sequence', expected: book.q + 1 });
      }
      if (typeof cs !== 'number' || !book.apply(bids, asks, q)) return this.bookMismatch(s, b, q, { reason: 'malformed' });
    }
    const actual = book.checksum();
    if (actual !== cs) return this.bookMismatch(s, b, q, { reason: 'checksum', expected: cs as number, actual });
    book.synced = true;
    b.shown = true;
    if (b.attempts > 0) {
      const attempts = b.attempts;
      b.attempts = 0;
      emit(this.bookResyncListeners, { symbol: s, q, attempts });
    }
    if (b.status === null || b.status === 'unknown') {
      b.status = 'live';
      emit(this.bookStatusListeners, s, 'live' as SymbolStatus);
    }
    if (b.stale) this.dataWhileStale(s, 'book', b);
    if (this.bookListeners.length === 0) return;
    const changed = snapshot ? { bids: book.bids, asks: book.asks } : { bids: (bids as BookUpdate['changed']['bids'] | undefined) ?? [], asks: (asks as BookUpdate['changed']['asks'] | undefined) ?? [] };
    emit(this.bookListeners, { symbol: s, book, q, snapshot, changed });
  }

  /** The book is wrong from this message on: say so, and ask for a fresh one unless given up. */
  private bookMismatch(symbol: string, b: BookSub, q: number, detail: { reason: 'checksum'; expected: number; actual: number } | { reason: 'sequence'; expected: number } | { reason: 'malformed' }): void {
    b.book.synced = false;
    b.attempts++;
    const resubscribing = b.attempts <= MAX_BOOK_RESYNCS && this.hello !== null;
    emit(this.bookMismatchListeners, { symbol, q, attempt: b.attempts, resubscribing, ...detail } as BookMismatch);
    if (resubscribing) this.resyncBook(symbol, b);
    else if (b.attempts === MAX_BOOK_RESYNCS + 1) {
      emit(this.errorListeners, new ProtocolError(`book ${symbol}: still wrong after ${MAX_BOOK_RESYNCS} fresh books (${detail.reason} at q ${q}); not resubscribing`));
    }
  }

  /** One `trade`: delivered when it lies after the symbol's position in this connection's epoch. */
  private onTradeMessage(m: Msg): void {
    const s = m['s'];
    const q = m['q'];
    const px = m['px'];
    const sz = m['sz'];
    if (typeof s !== 'string' || typeof q !== 'number' || typeof px !== 'number' || typeof sz !== 'number') return;
    const t = this.trades.get(s);
    // Unsubscribed (the server may still send until its ack), before the ack, or a duplicate.
    if (t === undefined || !t.accept(q)) return;
    if (t.stale) this.dataWhileStale(s, 'trade', t);
    if (this.tradeListeners.length === 0) return;
    const trade: Trade = { symbol: s, e: t.epoch!, q, px, sz };
    const side = m['side'];
    if (side === 'b' || side === 's') trade.side = side;
    const id = m['id'];
    if (typeof id === 'string' || typeof id === 'number') trade.id = id;
    const ts = m['ts'];
    if (typeof ts === 'number') trade.ts = ts;
    emit(this.tradeListeners, trade);
  }

  private onTradeGapMessage(m: Msg): void {
    const s = m['s'];
    const from = m['from'];
    const to = m['to'];
    if (typeof s !== 'string' || typeof from !== 'number' || typeof to !== 'number') return;
    const t = this.trades.get(s);
    if (t === undefined) return;
    const lost = t.gap(from, to);
    if (lost === null) return;
    emit(this.tradeGapListeners, { symbol: s, e: t.epoch!, from: lost.from, to: lost.to });
    emit(this.listeners.gap, { symbol: s, channel: 'trade', e: t.epoch!, from: lost.from, to: lost.to });
  }

  private onStat(m: Msg): void {
    const s = m['s'];
    const st = m['st'];
    if (typeof s !== 'string' || (st !== 'live' && st !== 'stale' && st !== 'unknown')) return;
    if (m['ch'] === 'trade') {
      const t = this.trades.get(s);
      if (t === undefined || t.status === st) return;
      t.status = st;
      emit(this.tradeStatusListeners, s, st);
      this.staleStat(s, 'trade', t, st);
      return;
    }
    if (m['ch'] === 'book') {
      const b = this.books.get(s);
      if (b === undefined || b.status === st) return;
      b.status = st;
      emit(this.bookStatusListeners, s, st);
      this.staleStat(s, 'book', b, st);
      return;
    }
    // Another channel's status is not the quote's.
    if (m['ch'] !== undefined && m['ch'] !== 'quote') return;
    const sym = this.syms.get(s);
    if (sym === undefined || sym.status === st) return;
    sym.status = st;
    emit(this.statusListeners, s, st);
    this.staleStat(s, 'quote', sym, st);
  }

  /** Settles the request a reply answers; false when none waits for it. */
  private reply(m: Msg, error: Error | null): boolean {
    const id = m['id'];
    if (typeof id !== 'number') return false;
    const p = this.pending.get(id);
    if (p === undefined) return false;
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    if (error !== null) {
      p.reject(error);
    } else {
      if (p.onReply !== undefined) p.onReply(m);
      p.resolve(m);
    }
    return true;
  }

  private protocolError(message: string, cause?: unknown): void {
    const error = new ProtocolError(message, { cause });
    this.fail({ code: CLOSE_PROTOCOL_ERROR, reason: message, error });
  }

  // ---- helpers ----

  private setStatus(s: ConnectionStatus): void {
    this._status = s;
    emit(this.connectionListeners, s);
  }

  private clearTimers(): void {
    if (this.hbTimer !== null) this.clock.clearTimeout(this.hbTimer);
    if (this.connectTimer !== null) this.clock.clearTimeout(this.connectTimer);
    this.hbTimer = null;
    this.connectTimer = null;
  }

  private failPending(err: Error): void {
    if (this.pending.size === 0) return;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      this.clock.clearTimeout(p.timer);
      p.reject(err);
    }
  }

  private rejectOpenWaiters(err: Error): void {
    const waiters = this.openWaiters;
    this.openWaiters = [];
    for (const w of waiters) w.reject(err);
  }
}

function toAck(m: Msg): AckResult {
  const ok = Array.isArray(m['ok']) ? (m['ok'] as unknown[]).filter((s): s is string => typeof s === 'string') : [];
  const err: AckResult['err'] = [];
  if (Array.isArray(m['err'])) {
    for (const e of m['err'] as Msg[]) {
      if (typeof e !== 'object' || e === null) continue;
      err.push({ symbol: typeof e['s'] === 'string' ? e['s'] : String(e['s']), code: String(e['code']), msg: typeof e['msg'] === 'string' ? e['msg'] : '' });
    }
  }
  const result: AckResult = { ok, err };
  if (typeof m['throttleMs'] === 'number') result.throttleMs = m['throttleMs'];
  return result;
}

/** `pos[symbol]` when it is a position, else null. */
function isPosition(pos: unknown, symbol: string): TradePosition | null {
  if (typeof pos !== 'object' || pos === null || !Object.hasOwn(pos, symbol)) return null;
  const p = (pos as Msg)[symbol] as Msg | null;
  if (typeof p !== 'object' || p === null) return null;
  const e = p['e'];
  const q = p['q'];
  return typeof e === 'string' && typeof q === 'number' ? { e, q } : null;
}

/** Stops a socket's events from reaching us. */
function detach(ws: WebSocketLike): void {
  ws.onmessage = null;
  ws.onopen = null;
  ws.onclose = null;
  // Keep an error handler: the `ws` package throws on an 'error' nobody listens to.
  ws.onerror = () => {};
}

/** Cuts a socket without the close handshake where the library allows it (`ws`); browsers do it on their own. */
function terminate(ws: WebSocketLike): void {
  const t = (ws as { terminate?: () => void }).terminate;
  if (typeof t === 'function') t.call(ws);
}
