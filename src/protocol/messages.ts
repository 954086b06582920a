/**
 * Wire protocol v1 types. See docs/PROTOCOL.md for the full contract.
 */

/** Protocol version announced in `hello`. */
export const PROTOCOL_VERSION = 1;

/** Stable error codes carried by `err` and by `ack.err` entries. */
export const ERROR_CODES = ['BAD_REQUEST', 'UNKNOWN_OP', 'BAD_SYMBOL', 'LIMIT_EXCEEDED', 'NOT_ENTITLED', 'AUTH_INVALID', 'AUTH_EXPIRED'] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Stable codes carried by `bye` before a server-initiated close. */
export const BYE_CODES = ['LIMIT_EXCEEDED', 'SLOW_CONSUMER', 'DRAINING', 'INTERNAL', 'AUTH_EXPIRED', 'IDLE'] as const;
export type ByeCode = (typeof BYE_CODES)[number];

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
export const SYMBOL_STATUSES = ['live', 'stale', 'unknown'] as const;
export type SymbolStatus = (typeof SYMBOL_STATUSES)[number];

export type RequestId = string | number;

/** What a subscription is to: `quote` (the default), `book` or `trade`. */
export type Channel = 'quote' | 'book' | 'trade';

/** The channels a client may name, in the order error messages list them. */
export const CHANNELS: readonly Channel[] = ['quote', 'book', 'trade'];

/** A trade position as a client sends it back in `since`. */
export interface Position {
  e: string;
  q: number;
}

/** Depths a book subscription may ask for: a fixed set, so clients at one depth share encoded bytes. */
export const BOOK_DEPTHS = [1, 5, 10, 25, 50, 100, 500, 1000] as const;

/** Depth of a book subscription that names none. */
export const DEFAULT_BOOK_DEPTH = 10;

/** Levels per side covered by a book checksum (`cs`): the top min(depth, this). */
export const CHECKSUM_LEVELS = 25;

/** Client -> server requests, after validation. `depth` is null unless the channel is book. */
export type ClientRequest =
  | {
      op: 'sub';
      id?: RequestId;
      channel: Channel;
      symbols: unknown[];
      snapshot: boolean;
      throttleMs: number;
      /** Book depth; null unless the channel is book. */
      depth: number | null;
      /** Trades: the most recent trades to send first; null unless given. */
      last: number | null;
      /** Trades: per symbol, the position to resume after; null unless given. */
      since: Map<string, Position> | null;
    }
  | { op: 'unsub'; id?: RequestId; channel: Channel; symbols: unknown[] }
  | { op: 'ping'; id?: RequestId; ts?: unknown }
  | { op: 'symbols'; id?: RequestId; prefix: string; limit: number | undefined }
  | { op: 'auth'; id?: RequestId; token: string };

/** An operation a client may name in `op`. */
export type ClientOp = ClientRequest['op'];

// A record over the union: a missing or an extra op is a type error, so the list below follows ClientRequest.
const OPS = { sub: true, unsub: true, ping: true, auth: true, symbols: true } as const satisfies Record<ClientOp, true>;

/** Every client operation, in the order the protocol documents them. */
export const CLIENT_OPS = Object.keys(OPS) as readonly ClientOp[];

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
