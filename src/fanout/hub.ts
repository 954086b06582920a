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
import { SymbolStore, type SymbolState } from '../state/symbol-state.js';
import { ClientSession, type ClientSocket } from './client-session.js';
import { FlushScheduler, FrameCounters } from './outbox.js';
import { SubscriptionIndex } from './subscription-index.js';

/** Fan-out counters, plain numbers read at scrape time. */
export class HubCounters extends FrameCounters {
  readonly messages = { hello: 0, ack: 0, snap: 0, upd: 0, stat: 0, hb: 0, pong: 0, err: 0, bye: 0, symbols: 0 };
  readonly byes: Record<ByeCode, number> = { LIMIT_EXCEEDED: 0, SLOW_CONSUMER: 0, DRAINING: 0, INTERNAL: 0 };
  readonly rejected: Record<ErrorCode, number> = { BAD_REQUEST: 0, UNKNOWN_OP: 0, BAD_SYMBOL: 0, LIMIT_EXCEEDED: 0 };
  sendDropped = 0;
  opened = 0;
  closed = 0;
  /** Ticks that changed a symbol's state. */
  stateUpdates = 0;
  /** Ticks that repeated the state exactly (no q, nothing sent). */
  unchangedTicks = 0;
}

let nextSid = 0;

export class Hub {
  readonly store = new SymbolStore();
  readonly index = new SubscriptionIndex();
  readonly scheduler = new FlushScheduler();
  readonly counters = new HubCounters();
  readonly sessions = new Set<ClientSession>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private readonly sidPrefix = `${process.pid.toString(36)}${Date.now().toString(36)}`;

  constructor(
    readonly config: Config,
    readonly log: Logger,
  ) {}

  get now(): number {
    return Date.now();
  }

  /** The hot path: one normalized tick from feed `feed`. */
  onTick(tick: Tick, feed: string): void {
    const st = this.store.apply(tick, feed);
    if (st === null) {
      this.counters.unchangedTicks++;
      return;
    }
    this.counters.stateUpdates++;
    const subs = this.index.of(st.symbol);
    if (subs === undefined) return;
    // Encoded lazily, at most once per tick, whatever the number of subscribers.
    let upd: Uint8Array | null = null;
    for (const sub of subs) {
      if (sub.needsSnap) {
        sub.needsSnap = false;
        sub.session.push('snap', this.snapOf(st));
      } else {
        upd ??= encodeData({ t: 'upd', s: st.symbol, q: st.q, d: fieldsOf(st.values, st.changed) });
        sub.session.push('upd', upd);
      }
    }
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

  /** A new client connection. */
  openSession(socket: ClientSocket): ClientSession {
    const session = new ClientSession(`${this.sidPrefix}-${(nextSid++).toString(36)}`, this, socket);
    this.sessions.add(session);
    this.counters.opened++;
    return session;
  }

  /** Called by a session once its connection is closed. */
  sessionClosed(session: ClientSession): void {
    if (this.sessions.delete(session)) this.counters.closed++;
  }

  /** Starts the heartbeat sweep. */
  start(): void {
    const hbMs = this.config.ws.heartbeatMs;
    // Sweep at half the interval so no client waits much over hbMs; one
    // encoded hb is shared by every idle client of a sweep.
    this.heartbeatTimer = setInterval(() => {
      const now = Date.now();
      let hb: Uint8Array | null = null;
      for (const s of this.sessions) {
        if (now - s.lastSentAt >= hbMs && s.outbox.length === 0) {
          hb ??= encode({ t: 'hb', ts: now });
          s.push('hb', hb);
        }
      }
    }, Math.max(50, hbMs >> 1));
    this.heartbeatTimer.unref();
  }

  /** Sends every client `bye` and stops the heartbeat. */
  closeAll(code: ByeCode, reason: string, retryMs: number): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    for (const s of this.sessions) s.bye(code, reason, retryMs);
    this.scheduler.run();
  }
}
