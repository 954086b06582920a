/**
 * Public types of the client SDK. Runtime-neutral: nothing here depends on
 * Node.js or on the DOM.
 */
import type { AuthError, TickgateError } from './errors.js';

/** The canonical fields of a symbol's state (docs/PROTOCOL.md, Fields). */
export type Field =
  | 'bid'
  | 'ask'
  | 'bidSize'
  | 'askSize'
  | 'last'
  | 'lastSize'
  | 'volume'
  | 'open'
  | 'high'
  | 'low'
  | 'close'
  | 'ts'
  | 'seq';

/**
 * A field's value on the wire: canonical fields are numbers; a deployment's
 * configured fields (`schema.fields`) are numbers or, for `text` fields,
 * strings of at most 64 characters.
 */
export type FieldValue = number | string;

/**
 * The constraint on a client's configured-fields type `X`: field name to
 * value type, e.g. `{ mark: number; status: string }`. A canonical name may
 * appear only as `number`. Interfaces fit as well as type literals.
 */
export type ConfiguredFields<X> = { [K in keyof X]: K extends Field ? number : FieldValue };

/**
 * A symbol's merged state: every field the feed has sent so far. Canonical
 * fields are numbers; the fields named in `X` (the deployment's configured
 * fields, declared by the user: the server does not announce them) have the
 * declared types; any other key may appear too (a configured field not
 * declared, or one a newer server adds), as a number or a string.
 *
 * `X` is a declaration, not checked at runtime: the client keeps whatever
 * value the server sent.
 */
export type SymbolState<X extends ConfiguredFields<X> = {}> = { [K in Field]?: number } & { [K in Exclude<keyof X, Field>]?: X[K] } & Record<string, FieldValue>;

/** Per-symbol status from `stat`: `live` once data flows, `stale` when the gateway says its data is out of date. */
export type SymbolStatus = 'live' | 'stale' | 'unknown';

/** One applied `snap` or `upd`; `X` as in {@link SymbolState}. */
export interface Update<X extends ConfiguredFields<X> = {}> {
  symbol: string;
  /**
   * The symbol's merged state, the object the client holds: later messages
   * update it in place. Copy it (`{ ...u.state }`) to keep a snapshot.
   */
  state: Readonly<SymbolState<X>>;
  /** The fields this message set: all of them for a snapshot. */
  changed: Readonly<SymbolState<X>>;
  /** The symbol's sequence number on this connection (restarts after a reconnect). */
  q: number;
  /** True for a `snap`, which replaced the state, false for an `upd` merged into it. */
  snapshot: boolean;
  /** Source ticks merged into this update, when more than one (server conflation or a lagging `updates()` reader). */
  n?: number;
}

/** One price level of an order book: its price, then its size. */
export type BookLevel = readonly [price: number, size: number];

/** The depths a book subscription may ask for (a server may allow less: `book.maxDepth`, default 100). */
export type BookDepth = 1 | 5 | 10 | 25 | 50 | 100 | 500 | 1000;

/**
 * The client's copy of an order book window: at most `depth` levels per
 * side, best first. It is the object the client holds: later messages
 * change it (and may replace its arrays). Copy what you need to keep.
 */
export interface OrderBook {
  readonly symbol: string;
  readonly depth: number;
  /** The book's sequence number on this connection (restarts after a reconnect). */
  readonly q: number;
  /** Highest price first. */
  readonly bids: readonly BookLevel[];
  /** Lowest price first. */
  readonly asks: readonly BookLevel[];
  /**
   * True while the window matches the gateway's checksum on this
   * connection; false while the client waits for a fresh `book` (after a
   * reconnect or a mismatch). The last book stays readable meanwhile.
   */
  readonly synced: boolean;
}

/** One applied and verified `book` or `bupd`. */
export interface BookUpdate {
  symbol: string;
  /** The book after the message (the live object; see {@link OrderBook}). */
  book: OrderBook;
  q: number;
  /** True for a `book`, which replaced the window; false for a `bupd` applied to it. */
  snapshot: boolean;
  /** The levels this message set, best first (size 0: removed); the whole window for a snapshot. */
  changed: { bids: readonly BookLevel[]; asks: readonly BookLevel[] };
}

/**
 * A book message the client could not verify. The book is wrong from here
 * on: the client ignores level changes for it and, unless it has given up,
 * subscribes to it again, which makes the gateway send a fresh `book`.
 */
export type BookMismatch = {
  symbol: string;
  /** The `q` of the message that failed. */
  q: number;
  /** Mismatches in a row without a verified message in between: 1 for the first; 2 or more means the fresh book failed too. */
  attempt: number;
  /** True when the client sent `sub` again; false once it gave up (after 3 attempts in a row) or while disconnected. */
  resubscribing: boolean;
} & (
  | { reason: 'checksum'; /** `cs` as the server sent it */ expected: number; /** `cs` as computed from the local window */ actual: number }
  | { reason: 'sequence'; /** the `q` a `bupd` should have had (previous + 1) */ expected: number }
  | { reason: 'malformed' }
);

/** A fresh book verified after one or more mismatches: the book is right again. */
export interface BookResync {
  symbol: string;
  q: number;
  /** The mismatches in a row that it ends. */
  attempts: number;
}

/** Result of `subscribeBook`. */
export interface BookAck extends AckResult {
  /** The depth applied. */
  depth: number;
}

/**
 * A trade's position (docs/PROTOCOL.md, Trade prints): `q` rises with every
 * trade of a symbol and is compared only within one epoch `e`. With a
 * JetStream-backed feed every gateway replica gives a trade the same
 * position; without one, the epoch names the gateway process.
 */
export interface TradePosition {
  readonly e: string;
  readonly q: number;
}

/** One trade print, delivered in order, each exactly once. */
export interface Trade {
  symbol: string;
  /** Epoch of `q`. */
  e: string;
  /** The trade's position in its epoch. */
  q: number;
  px: number;
  sz: number;
  /** `b`: buyer initiated, `s`: seller initiated; absent when the source does not say. */
  side?: 'b' | 's';
  /** The source's trade id. */
  id?: string | number;
  /** Source event time, epoch milliseconds. */
  ts?: number;
}

/**
 * Trades the gateway cannot send (`gap`): those with `from < q <= to` in
 * epoch `e` left its history while this client was behind. Trades after
 * `to` follow.
 */
export interface TradeGap {
  symbol: string;
  e: string;
  from: number;
  to: number;
}

/**
 * The outcome of resuming a trade subscription with `since` (after a
 * reconnect, to any replica, or with the `since` option). Recovered: every
 * trade after `since` follows, no duplicate, no gap. Not recovered: the
 * trades after `since` are lost to this client (`reason` `epoch`: the
 * gateway numbers trades in another epoch, e.g. a restart without a stream;
 * `history`: they left its history); live trades after `position` follow.
 */
export type TradeResume = {
  symbol: string;
  /** The position the client asked to resume after. */
  since: TradePosition;
  /** The gateway's position at the ack. */
  position: TradePosition;
} & ({ recovered: true } | { recovered: false; reason: 'epoch' | 'history' });

/** Result of `subscribeTrades`. */
export interface TradeAck extends AckResult {
  /** The symbol's position at the ack, when accepted. */
  position?: TradePosition;
  /** Whether the trades after `since` were recovered, when the subscription resumed. */
  recovered?: boolean;
}

/**
 * The server's goodbye (`bye`). With `retryMs`, reconnecting with the same
 * credentials after about that long may succeed; without it, it will not
 * (e.g. `AUTH_EXPIRED`: a fresh token is needed first).
 */
export interface ByeInfo {
  code: string;
  reason: string;
  retryMs?: number;
}

/** Why a connection ended. */
export interface CloseInfo {
  /**
   * WebSocket close code (1006 when the connection just dropped). Local codes,
   * never sent by a server: 4000 heartbeat timeout, 4001 no hello in time,
   * 4002 protocol error, 4003 no usable token (no connection was attempted).
   */
  code: number;
  reason: string;
  /** The server's goodbye, when it sent one before closing. */
  bye?: ByeInfo;
  /** The HTTP status of a refused upgrade, where the WebSocket library exposes it (the `ws` package does, browsers do not). */
  httpStatus?: number;
  error?: TickgateError;
}

/** What the server announced in `hello`. */
export interface ServerHello {
  sid: string;
  hbMs: number;
  serverTs: number;
  limits: { maxSymbols: number; maxMessageBytes: number; maxMessagesPerSec: number };
}

/** Connection status, as a discriminated union on `state`. */
export type ConnectionStatus =
  | { state: 'connecting'; attempt: number }
  | { state: 'open'; hello: ServerHello }
  | {
      state: 'reconnecting';
      /**
       * The attempt that comes after the delay, counted since the last
       * connection that stayed open `reconnect.stableMs` after its hello: 1
       * for the first after such a connection drops; after one that ended
       * sooner the count (and the delay) goes on growing.
       */
      attempt: number;
      delayMs: number;
      /** Why the last connection (or attempt) ended, in words. */
      reason: string;
      last: CloseInfo;
    }
  | {
      state: 'closed';
      reason: string;
      /** Why, as an error: an {@link AuthError} when the credentials were refused or expired and no fresh ones could be had. */
      error?: TickgateError;
    };

/** The channels a subscription belongs to. */
export type Channel = 'quote' | 'book' | 'trade';

/**
 * A subscription's data went out of date, or came back (`stat` `stale`,
 * then `live` or fresh data; docs/PROTOCOL.md, `stat`). Edge-triggered: one
 * event per change, also across reconnects.
 */
export interface StaleEvent {
  symbol: string;
  channel: Channel;
  /** True: the values held are the last known, not current ones. False: live again. */
  stale: boolean;
}

/**
 * Data the protocol says was lost or skipped (docs/PROTOCOL.md): trades the
 * gateway could not send (`gap`: those with `from < q <= to`), or a book
 * change that did not follow the previous one (`q` is not `expected`: the
 * client asks for a fresh book). Gaps in quote `q` are normal (conflation,
 * mid-stream subscription) and are not reported.
 */
export type GapEvent = { symbol: string } & (
  | { channel: 'trade'; e: string; from: number; to: number }
  | { channel: 'book'; expected: number; q: number }
);

/**
 * The events of a client and what each listener receives, for
 * `client.on(type, listener)` and `client.off(type, listener)`. `X` as in
 * {@link SymbolState}.
 */
export interface ClientEventMap<X extends ConfiguredFields<X> = {}> {
  /** Connection status changes. */
  status: ConnectionStatus;
  /** Every applied `snap` and `upd`. */
  update: Update<X>;
  /** A subscription went stale or came back. */
  stale: StaleEvent;
  /** The server said goodbye; the close follows. */
  bye: ByeInfo;
  /** Trades lost, or a book out of sequence. */
  gap: GapEvent;
  /** Errors not tied to a call, including {@link AuthError}s of token refresh and reconnects. */
  error: TickgateError;
  /** Server heartbeats. */
  heartbeat: Heartbeat;
  /** Every applied and verified `book` and `bupd`. */
  book: BookUpdate;
  /** A book message that failed verification. */
  bookMismatch: BookMismatch;
  /** A fresh book verified after a mismatch. */
  bookResync: BookResync;
  /** Every trade, in order, each once. */
  trade: Trade;
  /** Every resumed trade subscription. */
  tradeResume: TradeResume;
}

/** A listener for event `K` of {@link ClientEventMap}. */
export type ClientListener<K extends keyof ClientEventMap<X>, X extends ConfiguredFields<X> = {}> = (event: ClientEventMap<X>[K]) => void;

/**
 * Where the client's timers and time come from: the runtime's by default.
 * Tests pass a manual clock to run reconnects, heartbeats and token
 * refreshes without waiting.
 */
export interface ClientClock {
  /** Wall-clock milliseconds (Date.now() semantics). */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; returns a handle for clearTimeout. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Supplies the token for each connection: called on connect, before each
 * reconnect, on an `AUTH_*` refusal, and ahead of the token's expiry to
 * refresh it in place. Sync or async; a result that is not a non-empty
 * string means none is available now (the client backs off and asks again).
 */
export type TokenProvider = () => string | null | undefined | PromiseLike<string | null | undefined>;

/** Result of `subscribe` and `unsubscribe`. */
export interface AckResult {
  /** Symbols accepted. */
  ok: string[];
  /** Symbols rejected, with the protocol's code (`BAD_SYMBOL`, `LIMIT_EXCEEDED`). */
  err: Array<{ symbol: string; code: string; msg: string }>;
  /** The throttle the server applied (after bounding), when throttled. */
  throttleMs?: number;
}

/** Result of `symbols()`. */
export interface SymbolList {
  symbols: string[];
  /** True when the list was cut at the limit. */
  more: boolean;
}

/** The server's view of this client's backlog, from `hb`. */
export interface Heartbeat {
  /** Server wall clock, epoch milliseconds. */
  ts: number;
  /** Bytes the server holds for this client, not yet taken by the network. */
  buf: number;
  /** Updates merged away for this client since the previous heartbeat. */
  cf: number;
}

/**
 * The subset of the WebSocket API the client uses. The browser's `WebSocket`
 * and the `ws` package both provide it. Handler parameters are `never` so
 * that either library's own event types fit; the client narrows them.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: never) => void) | null;
  onmessage: ((ev: never) => void) | null;
  onclose: ((ev: never) => void) | null;
  onerror: ((ev: never) => void) | null;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or the `ws` package's default export in Node.js. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ReconnectOptions {
  /** First retry delay bound, milliseconds (> 0); the delay is a random value up to this (default 250). */
  initialMs?: number;
  /** The bound doubles per failed attempt up to this, milliseconds (>= initialMs; default 30000). */
  maxMs?: number;
  /**
   * A connection resets the backoff only once it has stayed open this long
   * after its `hello`, milliseconds (default 10000). One that ends sooner
   * counts as a failed attempt, so a gateway that cuts clients right after
   * `hello` sees them come back ever more slowly, not every `initialMs`.
   * 0 resets on `hello`.
   */
  stableMs?: number;
}

export interface ClientOptions {
  /**
   * Stream endpoint, e.g. `ws://127.0.0.1:8080/v1/stream`, or several
   * (gateway replicas): each connection attempt uses the next one in turn,
   * so a client whose gateway drains or dies moves to another.
   */
  url: string | readonly string[];
  /** Credential for servers with authentication (JWT or API key). Without `getToken` it is used for every connection. */
  token?: string;
  /**
   * Fetches a fresh token (see {@link TokenProvider}); takes precedence over
   * `token`. With it the client refreshes a JWT before its `exp` (`op:
   * auth`) and reconnects with a new one when the server refuses or expires
   * the old.
   */
  getToken?: TokenProvider;
  /**
   * How the token travels: `protocol` (default) as a `bearer.<token>` WebSocket
   * subprotocol next to `tickgate.v1`, which keeps it out of URLs and logs;
   * `query` as `?token=`, for servers that disallow nothing else.
   */
  tokenTransport?: 'protocol' | 'query';
  /** WebSocket implementation; default `globalThis.WebSocket` (browsers). In Node.js 20 pass the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect with exponential backoff and full jitter (default on); `false` to stay closed after a drop. */
  reconnect?: ReconnectOptions | false;
  /** Keep retrying when the very first connection fails, instead of rejecting `connect()` (default false). */
  retryFirstConnect?: boolean;
  /** No frame for this many times `hello.hbMs` means the connection is dead (default 3). */
  heartbeatMultiplier?: number;
  /** A connection attempt must reach `hello` within this, milliseconds (default 10000). */
  connectTimeoutMs?: number;
  /** A request must be answered within this, milliseconds (default 10000). */
  requestTimeoutMs?: number;
  /** Timers and wall time (default: the runtime's). */
  clock?: ClientClock;
  /** Random numbers in [0, 1) for backoff jitter (default Math.random). */
  random?: () => number;
}
