/**
 * TickgateClient: one WebSocket connection to a tickgate gateway, with the
 * protocol's bookkeeping done for the user: snapshot/delta merge per symbol,
 * stale-update rejection by `q`, reconnect with backoff and resubscription,
 * dead-connection detection from heartbeats, and request/reply matching.
 *
 * Runtime-neutral: it imports nothing from Node.js. Browsers use their own
 * `WebSocket`; Node.js 20 passes the `ws` package as `options.WebSocket`.
 */
import { Decoder } from '@msgpack/msgpack';
import { backoffDelay, retryAfterDelay } from './backoff.js';
import { ConnectError, ProtocolError, RequestError, TickgateError } from './errors.js';
import type {
  AckResult,
  ClientOptions,
  CloseInfo,
  ConfiguredFields,
  ConnectionStatus,
  Heartbeat,
  ServerHello,
  SymbolList,
  SymbolState,
  SymbolStatus,
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

type Msg = Record<string, unknown>;
type Timer = ReturnType<typeof setTimeout>;

/** What the client keeps per subscribed symbol. */
interface Sym {
  throttleMs: number;
  /** Sequence of the held state on this connection; upds at or below it are ignored. */
  q: number;
  /** False until this connection's snap arrives: upds cannot merge into state from a previous connection. */
  synced: boolean;
  state: SymbolState | null;
  status: SymbolStatus | null;
}

interface Pending {
  op: string;
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

function off<T>(list: T[], fn: T): () => void {
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
 * `X` declares the deployment's configured fields (`schema.fields`) for
 * typed access, e.g. `new TickgateClient<{ mark: number; status: string }>(…)`
 * makes `u.state.status` a `string | undefined`. It is a declaration only:
 * the server does not announce its fields and the client keeps whatever
 * values arrive. Without it, a non-canonical key reads as `number | string`.
 */
export class TickgateClient<X extends ConfiguredFields<X> = {}> {
  private readonly urls: string[];
  private token: string | undefined;
  private readonly tokenTransport: 'protocol' | 'query';
  private readonly safeUrls: string[];
  /** Index of the endpoint the next connection attempt uses. */
  private nextUrl = 0;
  /** The URL without its token, for messages and errors. */
  /** The endpoint in use (or last tried), without its token. */
  safeUrl: string;
  private readonly WS: WebSocketConstructor | undefined;
  private readonly reconnect: { initialMs: number; maxMs: number } | null;
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
  private lastError: ErrorLike | null = null;
  private lastFrameAt = 0;
  /** Attempts made since the last successful open. */
  private attempts = 0;
  private everOpened = false;
  /** True after close(), or before the first connect(). */
  private stopped = true;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private openWaiters: Array<{ resolve(h: ServerHello): void; reject(e: Error): void }> = [];
  /** Per throttle interval, the ack of this connection's resubscription. */
  private resubAcks = new Map<number, Promise<AckResult>>();
  private hbTimer: Timer | null = null;
  private connectTimer: Timer | null = null;
  private reconnectTimer: Timer | null = null;

  private readonly updateListeners: Array<(u: Update<X>) => void> = [];
  private readonly statusListeners: Array<(symbol: string, status: SymbolStatus) => void> = [];
  private readonly connectionListeners: Array<(s: ConnectionStatus) => void> = [];
  private readonly heartbeatListeners: Array<(hb: Heartbeat) => void> = [];
  private readonly errorListeners: Array<(e: TickgateError) => void> = [];
  private readonly queues = new Set<UpdateQueue<X>>();

  /** Last round trip measured by `ping()`, milliseconds (NaN before the first). */
  lastRttMs = Number.NaN;

  constructor(options: ClientOptions) {
    const list = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (list.length === 0) throw new TypeError('options.url: expected at least one endpoint');
    this.urls = [];
    this.safeUrls = [];
    this.token = options.token;
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
    this.reconnect = r === false ? null : { initialMs: r?.initialMs ?? 250, maxMs: r?.maxMs ?? 30_000 };
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
        this.syms.set(s, { throttleMs, q: -1, synced: false, state: null, status: null });
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

  /** Round trip to the server and back, milliseconds. */
  /**
   * Replaces the token: used for every later connection, and sent now (`op:
   * auth`) to extend the current session before the old token expires.
   * Resolves with the new expiry (epoch ms, null if none); rejects with a
   * RequestError (AUTH_INVALID, AUTH_EXPIRED) if the server refuses it.
   */
  async setToken(token: string): Promise<number | null> {
    this.token = token;
    if (this.socket === null || this.hello === null) return null;
    const ack = await this.request('auth', { op: 'auth', token });
    return typeof ack['exp'] === 'number' ? ack['exp'] : null;
  }

  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.request('ping', { op: 'ping', ts: Date.now() });
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
    return off(this.updateListeners, fn);
  }

  /** Per-symbol status changes (`stat`, and `live` when a symbol's first data arrives). */
  onStatus(fn: (symbol: string, status: SymbolStatus) => void): () => void {
    return off(this.statusListeners, fn);
  }

  /** Connection status changes. */
  onConnection(fn: (s: ConnectionStatus) => void): () => void {
    return off(this.connectionListeners, fn);
  }

  /** Server heartbeats, with this client's backlog on the server. */
  onHeartbeat(fn: (hb: Heartbeat) => void): () => void {
    return off(this.heartbeatListeners, fn);
  }

  /** Errors not tied to a call: an `err` without a matching request, a protocol violation before a reconnect. */
  onError(fn: (e: TickgateError) => void): () => void {
    return off(this.errorListeners, fn);
  }

  /**
   * Updates as an async iterator, ending when the client is closed. A reader
   * that falls behind gets pending updates merged per symbol rather than an
   * ever-growing queue (`n` counts the merged messages).
   */
  updates(): AsyncIterableIterator<Update<X>> {
    const q = new UpdateQueue<X>((done) => this.queues.delete(done));
    if (this.stopped && this._status.state === 'closed' && this.everOpened) q.end();
    else this.queues.add(q);
    return q;
  }

  /** Closes the connection for good (until the next `connect()`); resolves once the socket is closed. */
  close(): Promise<void> {
    this.stopped = true;
    this.clearTimers();
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
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
        clearTimeout(t);
        ws.onclose = null;
        resolve();
      };
      // A dead peer never completes the close handshake: give it a moment, then cut.
      const t = setTimeout(() => {
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
    const i = this.nextUrl++ % this.urls.length;
    this.safeUrl = this.safeUrls[i]!;
    let ws: WebSocketLike;
    let url = this.urls[i]!;
    let protocols: string[] | undefined;
    if (this.token !== undefined) {
      if (this.tokenTransport === 'query') {
        const u = new URL(url);
        u.searchParams.set('token', this.token);
        url = u.toString();
      } else {
        protocols = ['tickgate.v1', `bearer.${this.token}`];
      }
    }
    try {
      ws = protocols === undefined ? new this.WS(url) : new this.WS(url, protocols);
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
    this.connectTimer = setTimeout(() => {
      this.fail({ code: CLOSE_CONNECT_TIMEOUT, reason: `no hello within ${this.connectTimeoutMs} ms` }, true);
    }, this.connectTimeoutMs);
  }

  private onSocketClose(ev: CloseLike): void {
    const info: CloseInfo = { code: ev.code, reason: ev.reason };
    if (this.bye !== undefined) info.bye = this.bye;
    if (this.hello === null) {
      const e = this.lastError;
      const detail = e?.error?.code ?? e?.error?.message ?? e?.message ?? `connection closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`;
      info.error = new ConnectError(`cannot connect to ${this.safeUrl}: ${detail}`, this.safeUrl, { cause: e?.error ?? e ?? undefined });
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

  /** The connection is gone: settle what waited on it, then reconnect or stop. */
  private dropped(info: CloseInfo): void {
    this.clearTimers();
    const wasOpen = this.hello !== null;
    this.hello = null;
    this.failPending(new ConnectError(`connection to ${this.safeUrl} lost: ${info.reason || `code ${info.code}`}`, this.safeUrl, { cause: info.error }));
    if (this.stopped) return;
    if (info.error !== undefined && wasOpen) emit(this.errorListeners, info.error);
    // A server that speaks another protocol from the start will not change its mind.
    const terminal = info.error instanceof ProtocolError && !wasOpen;
    if (this.reconnect === null || terminal || (!this.everOpened && !this.retryFirstConnect)) {
      this.stopped = true;
      const error = info.error ?? new ConnectError(`connection to ${this.safeUrl} closed: ${info.reason || `code ${info.code}`}`, this.safeUrl);
      this.rejectOpenWaiters(error);
      this.setStatus({ state: 'closed', reason: info.reason || `code ${info.code}`, error });
      for (const q of [...this.queues]) q.end();
      return;
    }
    const next = this.attempts + 1;
    const { initialMs, maxMs } = this.reconnect;
    const floor = this.retryFloorMs;
    const delayMs = floor !== null ? retryAfterDelay(floor, next, initialMs, maxMs) : backoffDelay(next, initialMs, maxMs);
    this.setStatus({ state: 'reconnecting', attempt: next, delayMs, last: info });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.open();
    }, delayMs);
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
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.hello = hello;
    this.attempts = 0;
    this.retryFloorMs = null;
    this.everOpened = true;
    // Any frame is a sign of life; checked a few times per allowed silence.
    const deadMs = hello.hbMs * this.hbMultiplier;
    this.hbTimer = setInterval(() => {
      const silent = Date.now() - this.lastFrameAt;
      if (silent > deadMs) {
        const reason = `no frame for ${silent} ms (heartbeat every ${hello.hbMs} ms)`;
        this.fail({ code: CLOSE_HEARTBEAT_TIMEOUT, reason, error: new ConnectError(`connection to ${this.safeUrl} is dead: ${reason}`, this.safeUrl) });
      }
    }, Math.max(20, Math.floor(deadMs / 4)));
    this.resubscribe();
    this.setStatus({ state: 'open', hello });
    const waiters = this.openWaiters;
    this.openWaiters = [];
    for (const w of waiters) w.resolve(hello);
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

  private request(op: string, req: Msg): Promise<Msg> {
    const ws = this.socket;
    if (ws === null || this.hello === null) return Promise.reject(new ConnectError(`not connected to ${this.safeUrl}`, this.safeUrl));
    const id = this.nextId++;
    req['id'] = id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestError('TIMEOUT', `${op}: no reply within ${this.requestTimeoutMs} ms`, op));
      }, this.requestTimeoutMs);
      this.pending.set(id, { op, resolve, reject, timer });
      try {
        ws.send(JSON.stringify(req));
      } catch (cause) {
        clearTimeout(timer);
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
    this.lastFrameAt = Date.now();
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
      if (this.socket === null) return;
    }
  }

  private onMessage(m: Msg): void {
    switch (m['t']) {
      case 'upd':
      case 'snap':
        this.onData(m);
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
        if (!this.reply(m, e)) emit(this.errorListeners, e);
        return;
      }
      case 'hello':
        this.onHello(m);
        return;
      case 'bye':
        this.bye = {
          code: String(m['code']),
          reason: typeof m['reason'] === 'string' ? m['reason'] : '',
          retryMs: Math.max(0, num(m['retryMs'], 0)),
        };
        this.retryFloorMs = this.bye.retryMs;
        return;
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

  private onStat(m: Msg): void {
    const s = m['s'];
    const st = m['st'];
    if (typeof s !== 'string' || (st !== 'live' && st !== 'stale' && st !== 'unknown')) return;
    const sym = this.syms.get(s);
    if (sym === undefined || sym.status === st) return;
    sym.status = st;
    emit(this.statusListeners, s, st);
  }

  /** Settles the request a reply answers; false when none waits for it. */
  private reply(m: Msg, error: Error | null): boolean {
    const id = m['id'];
    if (typeof id !== 'number') return false;
    const p = this.pending.get(id);
    if (p === undefined) return false;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (error !== null) p.reject(error);
    else p.resolve(m);
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
    if (this.hbTimer !== null) clearInterval(this.hbTimer);
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.hbTimer = null;
    this.connectTimer = null;
  }

  private failPending(err: Error): void {
    if (this.pending.size === 0) return;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
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
