/**
 * Wire protocol v1 types. See docs/PROTOCOL.md for the full contract.
 */

/** Protocol version announced in `hello`. */
export const PROTOCOL_VERSION = 1;

/** Stable error codes carried by `err` and by `ack.err` entries. */
export type ErrorCode = 'BAD_REQUEST' | 'UNKNOWN_OP' | 'BAD_SYMBOL' | 'LIMIT_EXCEEDED' | 'NOT_ENTITLED' | 'AUTH_INVALID' | 'AUTH_EXPIRED';

/** Stable codes carried by `bye` before a server-initiated close. */
export type ByeCode = 'LIMIT_EXCEEDED' | 'SLOW_CONSUMER' | 'DRAINING' | 'INTERNAL' | 'AUTH_EXPIRED' | 'IDLE';

/** WebSocket close code used after each bye code. */
export const CLOSE_CODE: Record<ByeCode, number> = {
  LIMIT_EXCEEDED: 1008,
  SLOW_CONSUMER: 1013,
  DRAINING: 1001,
  INTERNAL: 1011,
  AUTH_EXPIRED: 1008,
  IDLE: 1000,
};

/** Symbol status carried by `stat`. */
export type SymbolStatus = 'live' | 'stale' | 'unknown';

export type RequestId = string | number;

/** Client -> server requests, after validation. */
export type ClientRequest =
  | { op: 'sub'; id?: RequestId; symbols: unknown[]; snapshot: boolean; throttleMs: number }
  | { op: 'unsub'; id?: RequestId; symbols: unknown[] }
  | { op: 'ping'; id?: RequestId; ts?: unknown }
  | { op: 'symbols'; id?: RequestId; prefix: string; limit: number | undefined }
  | { op: 'auth'; id?: RequestId; token: string };

/** A rejected client message: the reply to send and whether it counts against the client. */
export interface RequestError {
  code: ErrorCode;
  msg: string;
  id?: RequestId;
}

export interface AckError {
  s: unknown;
  code: ErrorCode;
  msg: string;
}
