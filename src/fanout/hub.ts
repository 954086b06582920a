/**
 * Hub: where ticks meet subscribers. Merges each normalized tick into the
 * symbol store, encodes the resulting message once and hands the same bytes
 * to every subscribed session.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Tick } from '../feed/normalize.js';
import { encode, encodeData, fieldsOf } from '../protocol/codec.js';
import { PROTOCOL_VERSION, type ByeCode, type ErrorCode } from '../protocol/messages.js';
import { ANONYMOUS, type Authenticator, type Principal } from '../access/authenticator.js';
import { threadId } from 'node:worker_threads';
import { preciseNow } from '../clock.js';
import { PlainHistogram } from '../histogram.js';
import { LATENCY_BUCKETS } from '../feed/normalize.js';
import { FIELD_INDEX } from '../protocol/fields.js';
import { SymbolStore, type SymbolState } from '../state/symbol-state.js';
import { ClientSession, type ClientSocket } from './client-session.js';
import { FlushScheduler, FrameCounters } from './outbox.js';
import { SubscriptionIndex, type ConflationReason } from './subscription-index.js';
import { ThrottleWheel } from './throttle.js';

/** Fan-out counters, plain numbers read at scrape time. */
export class HubCounters extends FrameCounters {
  readonly messages = { hello: 0, ack: 0, snap: 0, upd: 0, stat: 0, hb: 0, pong: 0, err: 0, bye: 0, symbols: 0 };
  readonly byes: Record<ByeCode, number> = { LIMIT_EXCEEDED: 0, SLOW_CONSUMER: 0, DRAINING: 0, INTERNAL: 0, AUTH_EXPIRED: 0, IDLE: 0 };
  readonly rejected: Record<ErrorCode, number> = {
    BAD_REQUEST: 0,
    UNKNOWN_OP: 0,
    BAD_SYMBOL: 0,
    LIMIT_EXCEEDED: 0,
    NOT_ENTITLED: 0,
    AUTH_INVALID: 0,
    AUTH_EXPIRED: 0,
  };
  sendDropped = 0;
  opened = 0;
  closed = 0;
  /** Ticks that changed a symbol's state. */
  stateUpdates = 0;
  /** Ticks that repeated the state exactly (no q, nothing sent). */
  unchangedTicks = 0;
  /** Per-client updates merged away instead of sent, by reason. */
  readonly conflated: Record<ConflationReason, number> = { backpressure: 0, throttle: 0 };
  /** Sessions above their high water mark now. */
  conflatingNow = 0;
  /** Closed connections by who closed them: a bye code, or `remote` (client or network). */
  readonly closedBy: Record<ByeCode | 'remote', number> = {
    LIMIT_EXCEEDED: 0,
    SLOW_CONSUMER: 0,
    DRAINING: 0,
    INTERNAL: 0,
    AUTH_EXPIRED: 0,
    IDLE: 0,
    remote: 0,
  };
}

const TS = FIELD_INDEX.get('ts')!;
const SEQ = FIELD_INDEX.get('seq')!;


/** Buckets for socket buffered bytes: 0, then powers of 4 from 1 KiB to 64 MiB. */
const BUFFERED_BUCKETS = [0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

/** Session sweep period: slow-consumer checks and heartbeats. */
const SWEEP_MS = 250;

let nextSid = 0;

export class Hub {
  readonly store = new SymbolStore();
  readonly index = new SubscriptionIndex();
  readonly scheduler: FlushScheduler;
  readonly counters = new HubCounters();
  readonly sessions = new Set<ClientSession>();
  /** Verifies `op: auth` tokens; null when authentication is off. */
  authenticator: Authenticator | null = null;
  readonly throttle = new ThrottleWheel();
  /** Socket buffered bytes per client, sampled by the sweep. */
  readonly bufferedBytes = new PlainHistogram(BUFFERED_BUCKETS);
  /** First message queued for a client -> its frame written to the socket, seconds; null when latency metrics are off. */
  readonly deliveryLatency: PlainHistogram | null;
  private sweepTimer: NodeJS.Timeout | null = null;
  // Unique across processes, restarts and worker threads.
  private readonly sidPrefix = `${process.pid.toString(36)}.${threadId}.${Date.now().toString(36)}`;

  constructor(
    readonly config: Config,
    readonly log: Logger,
  ) {
    this.deliveryLatency = config.metrics.latency ? new PlainHistogram(LATENCY_BUCKETS) : null;
    this.scheduler = new FlushScheduler(config.ws.flushIntervalMs);
  }

  get now(): number {
    return Date.now();
  }

  /** The hot path: one normalized tick from feed `feed`. */
  onTick(tick: Tick, feed: string): void {
    const v = tick.values;
    if (this.deliveryLatency !== null) {
      const ts = v[TS]!;
      // Clamped at 0: a publisher's clock a little ahead of ours is not negative latency.
      if (ts === ts) tick.counters.ingestLatency.record(Math.max(0, preciseNow() - ts) / 1000);
    }
    const known = this.store.get(tick.symbol);
    const seq = v[SEQ]!;
    if (seq === seq && known !== undefined) {
      const prev = known.values[SEQ]!;
      if (prev === prev) {
        if (seq > prev + 1) tick.counters.seqGaps += seq - prev - 1;
        else if (seq <= prev) tick.counters.seqRegressions++;
      }
    }
    if (tick.counters.stale) this.setFeedStale(feed, tick.counters, false);
    const st = this.store.apply(tick, feed, known);
    if (st === null) {
      this.counters.unchangedTicks++;
      return;
    }
    // Taken over by a live feed (two feeds publishing one symbol).
    if (st.stale) this.setStale(st, false);
    this.counters.stateUpdates++;
    this.fanOut(st);
  }

  /** Hands a symbol's change to every subscriber: shared bytes, or merged into a held delta. */
  private fanOut(st: SymbolState): void {
    const subs = this.index.of(st.symbol);
    if (subs === undefined) return;
    // Encoded lazily, at most once per tick, whatever the number of subscribers.
    let upd: Uint8Array | null = null;
    for (const sub of subs) {
      const session = sub.session;
      if (session.conflating || sub.pendingN > 0) {
        // Behind, or already holding a delta for this symbol: merge, keep order.
        session.hold(sub, st.changed);
      } else if (sub.needsSnap) {
        // First data for a symbol subscribed before its feed was known.
        if (!session.entitledTo(st)) continue;
        sub.needsSnap = false;
        session.push('snap', this.snapOf(st));
      } else if (sub.throttleMs > 0) {
        session.hold(sub, st.changed);
      } else {
        upd ??= encodeData({ t: 'upd', s: st.symbol, q: st.q, d: fieldsOf(st.values, st.changed) });
        session.push('upd', upd);
      }
    }
  }

  /**
   * A feed went stale (disconnected or silent) or live again: every symbol it
   * last updated changes status, and each subscriber gets one `stat` per
   * symbol (shared bytes; all of a client's stats leave in one frame).
   * Walks the whole store, which is fine for a rare transition.
   */
  setFeedStale(feed: string, counters: { stale: boolean }, stale: boolean): number {
    counters.stale = stale;
    let n = 0;
    for (const st of this.store.all()) {
      if (st.feed === feed && st.stale !== stale) {
        this.setStale(st, stale);
        n++;
      }
    }
    this.log.info({ feed, symbols: n }, stale ? 'feed is stale: symbols marked stale' : 'feed is live again');
    return n;
  }

  private setStale(st: SymbolState, stale: boolean): void {
    st.stale = stale;
    const subs = this.index.of(st.symbol);
    if (subs === undefined) return;
    const bytes = encode({ t: 'stat', s: st.symbol, st: stale ? 'stale' : 'live' });
    for (const sub of subs) if (!sub.needsSnap) sub.session.push('stat', bytes);
  }

  /**
   * A tick read from a warm-start store: older than anything live, so it
   * only fills fields the symbol does not have yet. It is neither a sign of
   * life for the feed nor a sequence or latency sample.
   */
  onWarmTick(tick: Tick, feed: string): void {
    const st = this.store.get(tick.symbol);
    if (st !== undefined) {
      const v = tick.values;
      for (let i = 0; i < v.length; i++) if (st.present & (1 << i)) v[i] = NaN;
    }
    const changed = this.store.apply(tick, feed);
    if (changed === null) return;
    tick.counters.warmTicks++;
    this.counters.stateUpdates++;
    this.fanOut(changed);
  }

  /**
   * The encoded `upd` for a merged delta: the fields in `mask` at their
   * current values, the current q, `n` ticks. Cached per symbol, so clients
   * throttled on the same interval (due together, same delta) share it.
   */
  mergedUpdOf(st: SymbolState, mask: number, n: number): Uint8Array {
    if (st.mergedBytes !== null && st.mergedQ === st.q && st.mergedMask === mask && st.mergedN === n) return st.mergedBytes;
    const d = fieldsOf(st.values, mask);
    const msg = n > 1 ? { t: 'upd', s: st.symbol, q: st.q, d, n } : { t: 'upd', s: st.symbol, q: st.q, d };
    st.mergedBytes = encodeData(msg).slice();
    st.mergedQ = st.q;
    st.mergedMask = mask;
    st.mergedN = n;
    return st.mergedBytes;
  }

  /** The encoded full-state `snap` of a symbol, cached until its next change. */
  snapOf(st: SymbolState): Uint8Array {
    if (st.snapBytes === null || st.snapQ !== st.q) {
      // Copied out of the encoder's shared slab: a cached slice would keep
      // the whole slab alive for as long as the symbol stays quiet.
      st.snapBytes = encodeData({ t: 'snap', s: st.symbol, q: st.q, d: fieldsOf(st.values, st.present) }).slice();
      st.snapQ = st.q;
    }
    return st.snapBytes;
  }

  /** The encoded `hello` for a new session. */
  helloFor(sid: string, now: number): Uint8Array {
    const l = this.config.limits;
    return encode({
      t: 'hello',
      v: PROTOCOL_VERSION,
      sid,
      hbMs: this.config.ws.heartbeatMs,
      serverTs: now,
      limits: { maxSymbols: l.maxSymbolsPerClient, maxMessageBytes: l.maxMessageBytes, maxMessagesPerSec: l.maxMessagesPerSec },
    });
  }

  /** A new, admitted client connection. */
  openSession(socket: ClientSocket, principal: Principal = ANONYMOUS): ClientSession {
    const session = new ClientSession(`${this.sidPrefix}-${(nextSid++).toString(36)}`, this, socket, principal);
    this.sessions.add(session);
    this.counters.opened++;
    return session;
  }

  /** Called by a session once its connection is closed; `by` is its bye code, or remote. */
  sessionClosed(session: ClientSession, by: ByeCode | 'remote'): void {
    if (this.sessions.delete(session)) {
      this.counters.closed++;
      this.counters.closedBy[by]++;
    }
  }

  /** Starts the session sweep and the throttle wheel. */
  start(): void {
    // O(clients) a few times a second, never per tick.
    const period = Math.min(SWEEP_MS, Math.max(50, this.config.ws.heartbeatMs >> 1));
    this.sweepTimer = setInterval(() => {
      const now = Date.now();
      for (const s of this.sessions) s.sweep(now);
    }, period);
    this.sweepTimer.unref();
    this.throttle.start();
  }

  /** Sends every client `bye` (retryMs chosen per client) and stops the timers. */
  closeAll(code: ByeCode, reason: string, retryMs: () => number): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.throttle.stop();
    for (const s of this.sessions) s.bye(code, reason, retryMs());
    this.scheduler.run();
  }
}
