/**
 * Client session: one WebSocket client. Owns its subscriptions, its outbox,
 * its backpressure state and its lifecycle; hands its requests to
 * requests.ts. Nothing a client sends can throw out of a handler.
 *
 * Backpressure is an explicit state. Below the high water mark every update
 * is queued as shared bytes. At or above it the session is `conflating`:
 * delivery holds every change back per subscription instead (memory:
 * constant per subscribed channel). When the socket drains below the low
 * water mark the held-back subscriptions are released, one message each
 * with `n` = events merged, and normal delivery resumes. A client that stays
 * above the mark too long, or buffers past the hard limit, gets `bye
 * SLOW_CONSUMER`.
 */
import type { Principal } from '../access/authenticator.js';
import { isExpired } from '../access/expiry.js';
import { decodeRequest, encode, isRequestError } from '../protocol/codec.js';
import { CLOSE_CODE, type ByeCode, type RequestError } from '../protocol/messages.js';
import type { ClientSocket, SessionHandle } from '../transport/connection.js';
import type { BudgetedSession, BufferBudget } from './buffer-budget.js';
import type { ConflationReason, MessageType } from './counters.js';
import type { ChannelState } from './channel.js';
import { Outbox, SendStatus } from './outbox.js';
import { TokenBucket, ViolationWindow } from './rate-limit.js';
import { handleRequest, type RequestSession } from './requests.js';
import type { SessionContext } from './session-context.js';
import { Subscription, type Subscriber } from './subscription.js';

/** Connection lifecycle. */
export type SessionStatus = { state: 'open' } | { state: 'closing'; code: ByeCode } | { state: 'closed' };

const VIOLATION_WINDOW_MS = 10_000;

/** One connected client. */
export class ClientSession implements Subscriber, RequestSession, SessionHandle, BudgetedSession {
  readonly outbox: Outbox;
  status: SessionStatus = { state: 'open' };
  /** Wall-clock ms of the last frame sent; drives heartbeats. */
  lastSentAt: number;
  /** Wall-clock ms of the last hb sent. */
  lastHbAt = 0;
  /** Above the high water mark: changes are held back per subscription, not queued. */
  conflating = false;
  /** When `conflating` last became true. */
  conflatingSince = 0;
  /** Ticks merged away for this client since its last hb (reported in hb). */
  conflatedSinceHb = 0;
  /** Per kind: symbol -> this client's subscription (the same objects the index holds). */
  private readonly subs: Map<string, Subscription>[];
  private subCount = 0;
  /** Subscriptions held back by backpressure. */
  private heldBack: Subscription[] = [];
  /** When the first message of the next frame was queued (for delivery latency). */
  private firstQueuedAt = 0;
  /** When the connection opened, and whether it ever subscribed (idle timeout). */
  private readonly openedAt: number;
  private everSubscribed = false;
  private readonly tokens: TokenBucket;
  private readonly violations: ViolationWindow;
  /** The process-wide buffer budget this session reports to (set by the registry). */
  budget: BufferBudget | null = null;
  /** Bytes last counted in the budget (the budget keeps it). */
  budgeted = 0;
  /** Closed for the budget: cut the connection rather than wait for the client to read its buffer. */
  private abortOnClose = false;

  constructor(
    readonly sid: string,
    private readonly ctx: SessionContext,
    private socket: ClientSocket | null,
    /** Who this is and what they may see; replaced by a successful `auth`. */
    public principal: Principal,
  ) {
    const { config, clock } = ctx;
    this.outbox = new Outbox(config.ws.maxFrameBytes, ctx.counters);
    this.subs = ctx.kinds.map(() => new Map());
    const now = clock.now();
    this.openedAt = now;
    this.lastSentAt = now;
    this.tokens = new TokenBucket(config.limits.maxMessagesPerSec, clock);
    this.violations = new ViolationWindow(config.limits.maxViolations, VIOLATION_WINDOW_MS, clock);
    this.push('hello', ctx.helloFor(sid, now));
  }

  get isOpen(): boolean {
    return this.status.state === 'open';
  }

  /** Queues one encoded message for the client's next frame. */
  push(type: MessageType, bytes: Uint8Array): void {
    if (this.status.state !== 'open') return;
    const ctx = this.ctx;
    ctx.counters.messages[type]++;
    if (this.outbox.length === 0 && ctx.deliveryLatency !== null) this.firstQueuedAt = ctx.clock.preciseNow();
    this.outbox.push(bytes);
    ctx.scheduler.mark(this);
  }

  /** Sends what was queued since the last flush; called by the scheduler. */
  flush(): void {
    const socket = this.socket;
    if (socket === null || this.outbox.length === 0) {
      this.outbox.clear();
      return;
    }
    const ctx = this.ctx;
    const status = this.outbox.flush(socket);
    this.lastSentAt = ctx.clock.now();
    ctx.deliveryLatency?.record((ctx.clock.preciseNow() - this.firstQueuedAt) / 1000);
    if (this.status.state === 'closing') {
      // A graceful close keeps the socket's buffer until the client reads it or uWS times it
      // out (about ws.idleTimeoutSec / 2): a budget close cuts a client that is still behind.
      if (this.abortOnClose && socket.abort !== undefined && socket.bufferedAmount() > ctx.config.backpressure.lowWaterBytes) socket.abort();
      else socket.close(CLOSE_CODE[this.status.code], this.status.code);
      return;
    }
    const bp = ctx.config.backpressure;
    const buffered = socket.bufferedAmount();
    if (status === SendStatus.Dropped || buffered > bp.maxBufferedBytes) {
      if (status === SendStatus.Dropped) ctx.counters.sendDropped++;
      this.bye('SLOW_CONSUMER', `client fell ${buffered} bytes behind (limit ${bp.maxBufferedBytes})`, bp.retryMs);
      this.budget?.linger(this, buffered);
    } else if (!this.conflating && buffered >= bp.highWaterBytes) {
      this.conflating = true;
      this.conflatingSince = this.lastSentAt;
      ctx.counters.conflatingNow++;
    }
    // After the client's own limit, so a client past it is closed for that; a closing one reports 0.
    this.budget?.report(this, buffered);
  }

  /** The socket drained some of its buffer (uWS `drain`). */
  onDrain(): void {
    if (this.socket === null) return;
    const buffered = this.socket.bufferedAmount();
    this.budget?.report(this, buffered);
    if (this.conflating && buffered < this.ctx.config.backpressure.lowWaterBytes) this.resume();
  }

  /** The process is over its buffer budget and this client buffers among the most. */
  closeForBudget(total: number, budget: number): void {
    const bp = this.ctx.config.backpressure;
    this.bye('SLOW_CONSUMER', `the server buffers ${total} bytes for its clients, over its budget of ${budget}, and this client buffered among the most`, bp.retryMs);
    this.abortOnClose = true;
  }

  /**
   * Periodic check (a few times a second): resume a conflating client that
   * drained without a drain event, close one conflating for too long, and
   * send hb when idle or when the client has had updates merged away.
   */
  sweep(now: number): void {
    if (this.status.state !== 'open' || this.socket === null) return;
    const { config } = this.ctx;
    // The rule the upgrade and op auth apply (exp + clock skew), so an admitted token is not expired here.
    // No retryMs: reconnecting with the same token cannot succeed.
    if (isExpired(this.principal.validUntil, now)) {
      this.bye('AUTH_EXPIRED', 'the credential expired; get a fresh token before reconnecting (or send op auth before expiry)');
      return;
    }
    const idleMs = config.limits.subscribeTimeoutMs;
    if (idleMs > 0 && !this.everSubscribed && now - this.openedAt > idleMs) {
      this.bye('IDLE', `no subscription within ${idleMs} ms`, 0);
      return;
    }
    const bp = config.backpressure;
    const buffered = this.socket.bufferedAmount();
    this.ctx.bufferedBytes.record(buffered);
    this.budget?.report(this, buffered);
    if (!this.isOpen) return;
    if (this.conflating) {
      if (buffered < bp.lowWaterBytes) {
        this.resume();
      } else if (bp.slowConsumerMs > 0 && now - this.conflatingSince > bp.slowConsumerMs) {
        this.bye('SLOW_CONSUMER', `client stayed ${buffered} bytes behind for over ${bp.slowConsumerMs} ms`, bp.retryMs);
        this.budget?.linger(this, buffered);
        return;
      }
    }
    const hbMs = config.ws.heartbeatMs;
    if ((now - this.lastSentAt >= hbMs && this.outbox.length === 0) || (this.conflatedSinceHb > 0 && now - this.lastHbAt >= hbMs)) {
      this.push('hb', encode({ t: 'hb', ts: now, buf: buffered, cf: this.conflatedSinceHb }));
      this.conflatedSinceHb = 0;
      this.lastHbAt = now;
    }
  }

  holdBack(sub: Subscription): void {
    this.heldBack.push(sub);
  }

  /** Leaves conflation: everything held back is released. */
  private resume(): void {
    this.conflating = false;
    this.ctx.counters.conflatingNow--;
    const list = this.heldBack;
    this.heldBack = [];
    this.ctx.delivery.resumed(list);
  }

  admit(sub: Subscription, st: ChannelState): boolean {
    const ent = this.principal.entitlements;
    if (ent.all || ent.allows(st.feed, st.symbol)) return true;
    this.endSubscription(sub);
    this.ctx.counters.rejected.NOT_ENTITLED++;
    this.push('err', encode({ t: 'err', code: 'NOT_ENTITLED', msg: `not entitled to ${st.symbol} from feed ${st.feed}; unsubscribed`, s: st.symbol }));
    return false;
  }

  countMerged(reason: ConflationReason, n: number): void {
    if (n <= 0) return;
    this.ctx.counters.conflated[reason] += n;
    this.conflatedSinceHb += n;
  }

  subscription(kind: number, symbol: string): Subscription | undefined {
    return this.subs[kind]!.get(symbol);
  }

  addSubscription(kind: number, symbol: string): Subscription | null {
    if (this.subCount >= this.ctx.config.limits.maxSymbolsPerClient) return null;
    const sub = new Subscription(this, kind, symbol);
    this.subs[kind]!.set(symbol, sub);
    this.subCount++;
    this.ctx.index.add(sub);
    return sub;
  }

  endSubscription(sub: Subscription): void {
    sub.active = false;
    this.ctx.index.remove(sub);
    if (this.subs[sub.kind]!.get(sub.symbol) === sub) {
      this.subs[sub.kind]!.delete(sub.symbol);
      this.subCount--;
    }
  }

  *subscriptions(): IterableIterator<Subscription> {
    for (const m of this.subs) yield* m.values();
  }

  markSubscribed(): void {
    this.everSubscribed = true;
  }

  /**
   * Sends `bye` and closes once it is flushed. Subscriptions end at once so
   * no more data is queued for this client. `retryMs` says reconnecting with
   * the same credentials after about that wait may succeed; leave it out when
   * it cannot (PROTOCOL.md, bye).
   */
  bye(code: ByeCode, reason: string, retryMs?: number): void {
    if (this.status.state !== 'open') return;
    this.push('bye', encode({ t: 'bye', code, reason, retryMs }));
    this.status = { state: 'closing', code };
    this.ctx.counters.byes[code]++;
    this.dropSubscriptions();
  }

  /**
   * The connection closed (either side). Returns who ended it, from the
   * session's own record: the bye code the server sent, or 'remote' when the
   * client closed first (whatever reason its close frame gave).
   */
  onClose(): ByeCode | 'remote' {
    const by = this.status.state === 'closing' ? this.status.code : 'remote';
    if (this.conflating) this.ctx.counters.conflatingNow--;
    this.conflating = false;
    this.heldBack = [];
    this.status = { state: 'closed' };
    this.budget?.release(this);
    this.socket = null;
    this.outbox.clear();
    this.dropSubscriptions();
    this.ctx.sessionClosed(this, by);
    return by;
  }

  private dropSubscriptions(): void {
    for (const m of this.subs) {
      for (const sub of m.values()) {
        sub.active = false;
        this.ctx.index.remove(sub);
      }
      m.clear();
    }
    this.subCount = 0;
  }

  onMessage(data: ArrayBuffer, isBinary: boolean): void {
    if (this.status.state !== 'open') return;
    try {
      this.handle(data, isBinary);
    } catch (err) {
      // Requests fail as values; reaching here is a bug. Keep the process up
      // and tell the client rather than leave it waiting.
      this.ctx.log.error({ err, sid: this.sid }, 'client request handler failed');
      this.bye('INTERNAL', 'the server failed to process a request', 1000);
    }
  }

  private handle(data: ArrayBuffer, isBinary: boolean): void {
    const limits = this.ctx.config.limits;
    if (!this.tokens.take()) {
      this.reject({ code: 'LIMIT_EXCEEDED', msg: `more than ${limits.maxMessagesPerSec} messages per second` }, true);
      return;
    }
    if (data.byteLength > limits.maxMessageBytes) {
      this.reject({ code: 'LIMIT_EXCEEDED', msg: `message of ${data.byteLength} bytes exceeds ${limits.maxMessageBytes}` }, true);
      return;
    }
    const req = decodeRequest(data, isBinary);
    if (isRequestError(req)) {
      this.reject(req, false);
      return;
    }
    handleRequest(this, this.ctx, req);
  }

  reject(e: RequestError, isViolation: boolean): void {
    this.ctx.counters.rejected[e.code]++;
    this.push('err', encode({ t: 'err', code: e.code, msg: e.msg, id: e.id }));
    if (isViolation) this.violation();
  }

  /** Counts a limit violation; too many within the window end the connection. */
  violation(): void {
    if (this.violations.record()) this.bye('LIMIT_EXCEEDED', 'too many requests over the connection limits', 10_000);
  }
}
