/**
 * Fan-out counters: plain numbers on the hot path, read by metrics at
 * scrape time.
 */
import type { ByeCode, ErrorCode } from '../protocol/messages.js';
import { FrameCounters } from './outbox.js';

/** Why updates were held back and merged instead of sent one by one. */
export type ConflationReason = 'backpressure' | 'throttle';

export class HubCounters extends FrameCounters {
  /** Messages queued to clients, by type. */
  readonly messages = { hello: 0, ack: 0, snap: 0, upd: 0, book: 0, bupd: 0, trade: 0, gap: 0, stat: 0, hb: 0, pong: 0, err: 0, bye: 0, symbols: 0 };
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
  /** Book subscriptions renewed by a client that held them already (a resync, e.g. after a checksum mismatch). */
  bookResubscribes = 0;
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

/** A message type as counted in {@link HubCounters.messages}. */
export type MessageType = keyof HubCounters['messages'];
