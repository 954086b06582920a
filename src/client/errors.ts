/**
 * Client SDK errors: one class per failure, each with the underlying `cause`
 * when there is one. All extend {@link TickgateError}, so one `instanceof`
 * catches them all.
 */

/** Base class of every error the client raises. */
export class TickgateError extends Error {
  override name = 'TickgateError';
}

/**
 * The connection could not be opened, or was lost before a reply arrived,
 * or the client was closed.
 */
export class ConnectError extends TickgateError {
  override name = 'ConnectError';
  constructor(
    message: string,
    /** The server URL, without its `token` query parameter. */
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The server sent something the protocol does not allow (wrong version, undecodable frame). */
export class ProtocolError extends TickgateError {
  override name = 'ProtocolError';
}

/**
 * The server rejected a request (`err`), or no reply came in time. `code` is
 * the protocol's error code (`BAD_REQUEST`, `UNKNOWN_OP`, `BAD_SYMBOL`,
 * `LIMIT_EXCEEDED`) or `TIMEOUT`.
 */
export class RequestError extends TickgateError {
  override name = 'RequestError';
  constructor(
    readonly code: string,
    message: string,
    /** The operation that failed: `sub`, `unsub`, `ping` or `symbols`. */
    readonly op: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The credentials were refused or could not be had. `code` is the
 * protocol's (`AUTH_REQUIRED`, `AUTH_INVALID`, `AUTH_EXPIRED`): from the
 * server's `bye` or `err`, from the local check of a JWT's `exp` (the client
 * does not connect with a token it knows has expired), or inferred from an
 * HTTP 401 on the upgrade (expired if the token's `exp` says so, required
 * without a token, invalid otherwise). A ConnectError, since the connection
 * cannot be opened (or kept) without valid credentials.
 */
export class AuthError extends ConnectError {
  override name = 'AuthError';
  constructor(
    readonly code: string,
    message: string,
    url: string,
    options?: { cause?: unknown },
  ) {
    super(message, url, options);
  }
}
