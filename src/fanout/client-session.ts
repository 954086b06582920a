/**
 * Client session: one WebSocket client. Owns its subscriptions, its outbox,
 * its backpressure state and its limits; answers its requests. Everything a
 * client sends is handled here and nothing it sends can throw out of a
 * handler.
 *
 * Backpressure is an explicit state. Below the high water mark every update
 * is queued as shared bytes. At or above it the session is `conflating`:
 * updates are merged per symbol into the subscription's pending delta
 * instead (memory: constant per subscribed symbol). When the socket drains
 * below the low water mark the pending deltas go out as one `upd` per symbol
 * with `n` = ticks merged, and normal delivery resumes. A client that stays
 * above the mark too long, or buffers past the hard limit, gets `bye
 * SLOW_CONSUMER`.
 */
import type { Principal } from '../access/authenticator.js';
import { decodeRequest, encode, isRequestError } from '../protocol/codec.js';
import type { SymbolState } from '../state/symbol-state.js';
import { isValidSymbol } from '../protocol/fields.js';
import {
  CLOSE_CODE,
  type AckError,
  type ByeCode,
  type ClientRequest,
  type RequestError,
} from '../protocol/messages.js';
import { Outbox, SendStatus, type FrameSink } from './outbox.js';
import { Subscription, type ConflationReason } from './subscription-index.js';
import { preciseNow } from '../clock.js';
import type { Hub } from './hub.js';

/** What a session needs from its transport connection. */
export interface ClientSocket extends FrameSink {
  /** Bytes queued in the socket, not yet written to the network. */
  bufferedAmount(): number;
  /** Closes gracefully with a WebSocket close code, after what is queued. */
  close(code: number, reason: string): void;
}

/** Connection lifecycle. */
export type SessionStatus = { state: 'open' } | { state: 'closing'; code: ByeCode } | { state: 'closed' };

const VIOLATION_WINDOW_MS = 10_000;

/** One connected client. */
export class ClientSession {
  readonly outbox: Outbox;
  /** symbol -> this client's subscription (the same objects the index holds). */
  readonly subs = new Map<string, Subscription>();
  status: SessionStatus = { state: 'open' };
  /** Wall-clock ms of the last frame sent; drives heartbeats. */
  lastSentAt: number;
  /** Wall-clock ms of the last hb sent. */
  lastHbAt = 0;
  /** Above the high water mark: updates are merged per symbol, not queued. */
  conflating = false;
  /** When `conflating` last became true. */
  conflatingSince = 0;
  /** Ticks merged away for this client since its last hb (reported in hb). */
  conflatedSinceHb = 0;
  /** Subscriptions with a pending delta held back by backpressure. */
  private pending: Subscription[] = [];
  /** When the first message of the next frame was queued (for delivery latency). */
  private firstQueuedAt = 0;
  /** When the connection opened, and whether it ever subscribed (idle timeout). */
  private readonly openedAt: number;
  private everSubscribed = false;
  private tokens: number;
  private tokensAt: number;
  private violations = 0;
  private violationsSince = 0;

  constructor(
    readonly sid: string,
    private readonly hub: Hub,
    private socket: ClientSocket | null,
    /** Who this is and what they may see; replaced by a successful `auth`. */
    public principal: Principal,
  ) {
    this.outbox = new Outbox(hub.config.ws.maxFrameBytes, hub.counters);
    const now = Date.now();
    this.openedAt = now;
    this.lastSentAt = now;
    this.tokens = hub.config.limits.maxMessagesPerSec;
    this.tokensAt = now;
    this.push('hello', hub.helloFor(sid, now));
  }

  /** Queues one encoded message for the client's next frame. */
  push(kind: keyof Hub['counters']['messages'], bytes: Uint8Array): void {
    if (this.status.state !== 'open') return;
    this.hub.counters.messages[kind]++;
    if (this.outbox.length === 0 && this.hub.deliveryLatency !== null) this.firstQueuedAt = preciseNow();
    this.outbox.push(bytes);
    this.hub.scheduler.mark(this);
  }

  /** Sends what was queued since the last flush; called by the scheduler. */
  flush(): void {
    const socket = this.socket;
    if (socket === null || this.outbox.length === 0) {
      this.outbox.clear();
      return;
    }
    const status = this.outbox.flush(socket);
    this.lastSentAt = this.hub.now;
    this.hub.deliveryLatency?.record((preciseNow() - this.firstQueuedAt) / 1000);
    if (this.status.state === 'closing') {
      socket.close(CLOSE_CODE[this.status.code], this.status.code);
      return;
    }
    const bp = this.hub.config.backpressure;
    const buffered = socket.bufferedAmount();
    if (status === SendStatus.Dropped || buffered > bp.maxBufferedBytes) {
      if (status === SendStatus.Dropped) this.hub.counters.sendDropped++;
      this.bye('SLOW_CONSUMER', `client fell ${buffered} bytes behind (limit ${bp.maxBufferedBytes})`, bp.retryMs);
    } else if (!this.conflating && buffered >= bp.highWaterBytes) {
      this.conflating = true;
      this.conflatingSince = this.hub.now;
      this.hub.counters.conflatingNow++;
    }
  }

  /** The socket drained some of its buffer (uWS `drain`). */
  onDrain(): void {
    if (this.conflating && this.socket !== null && this.socket.bufferedAmount() < this.hub.config.backpressure.lowWaterBytes) {
      this.resume();
    }
  }

  /**
   * Periodic check (a few times a second): resume a conflating client that
   * drained without a drain event, close one conflating for too long, and
   * send hb when idle or when the client has had updates merged away.
   */
  sweep(now: number): void {
    if (this.status.state !== 'open' || this.socket === null) return;
    const exp = this.principal.expiresAt;
    if (exp !== null && now >= exp) {
      this.bye('AUTH_EXPIRED', 'the credential expired; reconnect with a fresh token (or send op auth before expiry)', 0);
      return;
    }
    const idleMs = this.hub.config.limits.subscribeTimeoutMs;
    if (idleMs > 0 && !this.everSubscribed && now - this.openedAt > idleMs) {
      this.bye('IDLE', `no subscription within ${idleMs} ms`, 0);
      return;
    }
    const bp = this.hub.config.backpressure;
    const buffered = this.socket.bufferedAmount();
    this.hub.bufferedBytes.record(buffered);
    if (this.conflating) {
      if (buffered < bp.lowWaterBytes) {
        this.resume();
      } else if (bp.slowConsumerMs > 0 && now - this.conflatingSince > bp.slowConsumerMs) {
        this.bye('SLOW_CONSUMER', `client stayed ${buffered} bytes behind for over ${bp.slowConsumerMs} ms`, bp.retryMs);
        return;
      }
    }
    const hbMs = this.hub.config.ws.heartbeatMs;
    if ((now - this.lastSentAt >= hbMs && this.outbox.length === 0) || (this.conflatedSinceHb > 0 && now - this.lastHbAt >= hbMs)) {
      this.push('hb', encode({ t: 'hb', ts: now, buf: buffered, cf: this.conflatedSinceHb }));
      this.conflatedSinceHb = 0;
      this.lastHbAt = now;
    }
  }

  /**
   * Holds one tick's changed fields (`mask`) back for `sub` instead of
   * sending them: merged into its pending delta, sent later by resume() or
   * the throttle wheel.
   */
  hold(sub: Subscription, mask: number): void {
    sub.pendingMask |= mask;
    if (sub.pendingN++ === 0) sub.pendingReason = this.conflating ? 'backpressure' : 'throttle';
    if (sub.queued) return;
    sub.queued = true;
    if (this.conflating || sub.throttleMs === 0) this.pending.push(sub);
    else this.hub.throttle.schedule(sub, this.hub.now);
  }

  /** The throttle wheel says `sub` is due. */
  throttleDue(sub: Subscription): void {
    if (this.conflating && sub.active) {
      this.pending.push(sub); // still queued; resume() sends it
      return;
    }
    sub.queued = false;
    this.deliver(sub);
  }

  /** Leaves conflation: sends every pending delta, in as few frames as the outbox makes. */
  private resume(): void {
    this.conflating = false;
    this.hub.counters.conflatingNow--;
    const list = this.pending;
    this.pending = [];
    const now = this.hub.now;
    for (const sub of list) {
      // A throttled subscription keeps its rhythm: back to the wheel.
      if (sub.active && sub.throttleMs > 0 && !sub.needsSnap) this.hub.throttle.schedule(sub, now);
      else {
        sub.queued = false;
        this.deliver(sub);
      }
    }
  }

  /** Sends a subscription's pending delta (or deferred snap) as one message. */
  private deliver(sub: Subscription): void {
    if (!sub.active || (sub.pendingN === 0 && !sub.needsSnap)) return;
    const st = this.hub.store.get(sub.symbol);
    if (st === undefined || st.q === 0) return; // still unknown: the first tick brings the snap
    if (sub.needsSnap) {
      if (!this.entitledTo(st)) return;
      sub.needsSnap = false;
      this.push('snap', this.hub.snapOf(st));
      if (st.stale) this.push('stat', encode({ t: 'stat', s: st.symbol, st: 'stale' }));
    } else {
      this.push('upd', this.hub.mergedUpdOf(st, sub.pendingMask, sub.pendingN));
    }
    this.countMerged(sub.pendingReason, sub.pendingN - 1);
    sub.pendingMask = 0;
    sub.pendingN = 0;
  }

  /**
   * Whether this client may see `st` (its feed is now known). If not, the
   * subscription ends with an err NOT_ENTITLED and no data is ever sent.
   */
  entitledTo(st: SymbolState): boolean {
    const ent = this.principal.entitlements;
    if (ent.all || ent.allows(st.feed, st.symbol)) return true;
    const sub = this.subs.get(st.symbol);
    if (sub !== undefined) {
      sub.active = false;
      this.hub.index.remove(sub);
      this.subs.delete(st.symbol);
    }
    this.hub.counters.rejected.NOT_ENTITLED++;
    this.push('err', encode({ t: 'err', code: 'NOT_ENTITLED', msg: `not entitled to ${st.symbol} from feed ${st.feed}; unsubscribed`, s: st.symbol }));
    return false;
  }

  private countMerged(reason: ConflationReason, n: number): void {
    if (n <= 0) return;
    this.hub.counters.conflated[reason] += n;
    this.conflatedSinceHb += n;
  }

  /**
   * Sends `bye` and closes once it is flushed. Subscriptions end at once so
   * no more data is queued for this client.
   */
  bye(code: ByeCode, reason: string, retryMs: number): void {
    if (this.status.state !== 'open') return;
    this.push('bye', encode({ t: 'bye', code, reason, retryMs }));
    this.status = { state: 'closing', code };
    this.hub.counters.byes[code]++;
    this.dropSubscriptions();
  }

  /** The transport closed the connection (either side). */
  onClose(): void {
    const by = this.status.state === 'closing' ? this.status.code : 'remote';
    if (this.conflating) this.hub.counters.conflatingNow--;
    this.conflating = false;
    this.pending = [];
    this.status = { state: 'closed' };
    this.socket = null;
    this.outbox.clear();
    this.dropSubscriptions();
    this.hub.sessionClosed(this, by);
  }

  private dropSubscriptions(): void {
    for (const sub of this.subs.values()) {
      sub.active = false;
      this.hub.index.remove(sub);
    }
    this.subs.clear();
  }

  /** One client frame. `data` is valid only during this call. Never throws. */
  onMessage(data: ArrayBuffer, isBinary: boolean): void {
    if (this.status.state !== 'open') return;
    try {
      this.handle(data, isBinary);
    } catch (err) {
      // Requests fail as values; reaching here is a bug. Keep the process up
      // and tell the client rather than leave it waiting.
      this.hub.log.error({ err, sid: this.sid }, 'client request handler failed');
      this.bye('INTERNAL', 'the server failed to process a request', 1000);
    }
  }

  private handle(data: ArrayBuffer, isBinary: boolean): void {
    const limits = this.hub.config.limits;
    if (!this.takeToken()) {
      this.reject({ code: 'LIMIT_EXCEEDED', msg: `more than ${limits.maxMessagesPerSec} messages per second` }, true);
      return;
    }
    if (data.byteLength > limits.maxMessageBytes) {
      this.reject({ code: 'LIMIT_EXCEEDED', msg: `message of ${data.byteLength} bytes exceeds ${limits.maxMessageBytes}` }, true);
      return;
    }
    const req: ClientRequest | RequestError = decodeRequest(data, isBinary);
    if (isRequestError(req)) {
      this.reject(req, false);
      return;
    }
    switch (req.op) {
      case 'sub':
        this.subscribe(req.symbols, req.snapshot, req.throttleMs, req.id);
        break;
      case 'unsub':
        this.unsubscribe(req.symbols, req.id);
        break;
      case 'ping':
        this.push('pong', encode({ t: 'pong', id: req.id, ts: req.ts, serverTs: Date.now() }));
        break;
      case 'symbols': {
        const max = limits.maxListSymbols;
        const ent = this.principal.entitlements;
        const store = this.hub.store;
        const { symbols, more } = store.list(req.prefix, Math.min(req.limit ?? max, max), ent.all ? null : (s) => ent.allows(store.get(s)!.feed, s));
        this.push('symbols', encode({ t: 'symbols', id: req.id, symbols, more }));
        break;
      }
      case 'auth':
        this.reauthenticate(req.token, req.id);
        break;
    }
  }

  /** `op: auth`: a fresh token for the same user extends the session and replaces its entitlements. */
  private reauthenticate(token: string, id: ClientRequest['id']): void {
    const auth = this.hub.authenticator;
    if (auth === null || auth.mode === 'none') {
      this.push('ack', encode({ t: 'ack', id, op: 'auth', ok: [], err: [] }));
      return;
    }
    void auth.authenticate(token).then((r) => {
      if (this.status.state !== 'open') return;
      if (!r.ok || r.principal.user !== this.principal.user) {
        const code = r.ok ? 'AUTH_INVALID' : r.code === 'AUTH_EXPIRED' ? 'AUTH_EXPIRED' : 'AUTH_INVALID';
        this.reject({ code, msg: r.ok ? 'the token is for another user' : r.msg, ...(id === undefined ? {} : { id }) }, true);
        this.hub.scheduler.run();
        return;
      }
      this.principal = r.principal;
      // Entitlements may have shrunk: end what is no longer allowed.
      const ent = r.principal.entitlements;
      const dropped: string[] = [];
      if (!ent.all) {
        for (const sub of [...this.subs.values()]) {
          const st = this.hub.store.get(sub.symbol);
          if (st !== undefined ? !ent.allows(st.feed, sub.symbol) : !ent.mayAllow(sub.symbol)) {
            sub.active = false;
            this.hub.index.remove(sub);
            this.subs.delete(sub.symbol);
            dropped.push(sub.symbol);
          }
        }
      }
      this.push('ack', encode({ t: 'ack', id, op: 'auth', ok: [], err: dropped.map((s) => ({ s, code: 'NOT_ENTITLED', msg: 'no longer entitled; unsubscribed' })), exp: r.principal.expiresAt ?? undefined }));
    });
  }

  private subscribe(symbols: unknown[], snapshot: boolean, throttleMs: number, id: ClientRequest['id']): void {
    const ok: string[] = [];
    const err: AckError[] = [];
    const accepted: Subscription[] = [];
    const max = this.hub.config.limits.maxSymbolsPerClient;
    const th = this.hub.config.throttle;
    // Bounded by configuration rather than refused: the ack says what applies.
    const throttle = throttleMs === 0 ? 0 : Math.min(th.maxMs, Math.max(th.minMs, throttleMs));
    let overLimit = false;
    for (const s of symbols) {
      if (!isValidSymbol(s)) {
        err.push({ s: typeof s === 'string' ? s.slice(0, 64) : null, code: 'BAD_SYMBOL', msg: 'symbol must be a string of 1-64 characters without control characters' });
        continue;
      }
      const known = this.hub.store.get(s);
      const ent = this.principal.entitlements;
      if (!ent.all && (known !== undefined ? !ent.allows(known.feed, s) : !ent.mayAllow(s))) {
        err.push({ s, code: 'NOT_ENTITLED', msg: 'not entitled to this symbol' });
        this.hub.counters.rejected.NOT_ENTITLED++;
        continue;
      }
      let sub = this.subs.get(s);
      if (sub === undefined) {
        if (this.subs.size >= max) {
          err.push({ s, code: 'LIMIT_EXCEEDED', msg: `at most ${max} symbols per connection` });
          overLimit = true;
          continue;
        }
        sub = new Subscription(this, s);
        this.subs.set(s, sub);
        this.hub.index.add(sub);
      }
      sub.throttleMs = throttle;
      ok.push(s);
      accepted.push(sub);
    }
    if (overLimit) this.violation();
    if (ok.length > 0) this.everSubscribed = true;
    this.push('ack', encode({ t: 'ack', id, op: 'sub', ok, err, throttleMs: throttle === 0 ? undefined : throttle }));
    for (const sub of accepted) {
      const st = this.hub.store.get(sub.symbol);
      if (!snapshot) {
        sub.needsSnap = false;
      } else if (st === undefined || st.q === 0) {
        sub.needsSnap = true;
        this.push('stat', encode({ t: 'stat', s: sub.symbol, st: 'unknown' }));
      } else if (this.conflating) {
        // Behind already: the snap waits with the other held-back data.
        sub.needsSnap = true;
        if (!sub.queued) {
          sub.queued = true;
          this.pending.push(sub);
        }
      } else {
        // The snap supersedes any pending delta.
        this.countMerged(sub.pendingReason, sub.pendingN);
        sub.pendingMask = 0;
        sub.pendingN = 0;
        sub.needsSnap = false;
        this.push('snap', this.hub.snapOf(st));
        if (st.stale) this.push('stat', encode({ t: 'stat', s: st.symbol, st: 'stale' }));
      }
    }
  }

  private unsubscribe(symbols: unknown[], id: ClientRequest['id']): void {
    const ok: string[] = [];
    const err: AckError[] = [];
    for (const s of symbols) {
      if (!isValidSymbol(s)) {
        err.push({ s: typeof s === 'string' ? s.slice(0, 64) : null, code: 'BAD_SYMBOL', msg: 'symbol must be a string of 1-64 characters without control characters' });
        continue;
      }
      const sub = this.subs.get(s);
      if (sub !== undefined) {
        sub.active = false;
        this.hub.index.remove(sub);
        this.subs.delete(s);
      }
      ok.push(s);
    }
    this.push('ack', encode({ t: 'ack', id, op: 'unsub', ok, err }));
  }

  private reject(e: RequestError, isViolation: boolean): void {
    this.hub.counters.rejected[e.code]++;
    this.push('err', encode({ t: 'err', code: e.code, msg: e.msg, id: e.id }));
    if (isViolation) this.violation();
  }

  /** Counts a limit violation; too many within the window end the connection. */
  private violation(): void {
    const now = Date.now();
    if (now - this.violationsSince > VIOLATION_WINDOW_MS) {
      this.violationsSince = now;
      this.violations = 0;
    }
    if (++this.violations > this.hub.config.limits.maxViolations) {
      this.bye('LIMIT_EXCEEDED', 'too many requests over the connection limits', 10_000);
    }
  }

  /** Token bucket: maxMessagesPerSec per second, bursts of the same size. */
  private takeToken(): boolean {
    const now = Date.now();
    const rate = this.hub.config.limits.maxMessagesPerSec;
    this.tokens = Math.min(rate, this.tokens + ((now - this.tokensAt) * rate) / 1000);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

