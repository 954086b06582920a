/**
 * The seam between the transport and a client session, in both directions:
 * what a session needs from its connection ({@link ClientSocket}) and what
 * the transport needs from a session ({@link SessionHandle}).
 */
import type { FrameSink } from '../fanout/outbox.js';
import type { ByeCode } from '../protocol/messages.js';

/** What a session needs from its transport connection. */
export interface ClientSocket extends FrameSink {
  /** Bytes queued in the socket, not yet written to the network. */
  bufferedAmount(): number;
  /** Closes gracefully with a WebSocket close code, after what is queued. */
  close(code: number, reason: string): void;
  /** Cuts the connection at once, discarding what is queued (frees the buffer now; the client sees 1006). Optional: test sockets have nothing to free. */
  abort?(): void;
}

/** What the transport calls on the session of a connection. */
export interface SessionHandle {
  /** One client frame; `data` is valid only during the call. Never throws. */
  onMessage(data: ArrayBuffer, isBinary: boolean): void;
  /** The socket drained some of its buffer. */
  onDrain(): void;
  /** The connection closed (either side). */
  onClose(): ByeCode | 'remote';
}
