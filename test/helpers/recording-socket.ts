/**
 * A client socket for in-process tests of the delivery path: it decodes
 * every frame with a standard MessagePack decoder and records the
 * messages; the test sets how many bytes it pretends to buffer (above or
 * below the water marks).
 */
import { decode } from '@msgpack/msgpack';
import { SendStatus } from '../../src/fanout/outbox.js';
import type { ClientSocket } from '../../src/transport/connection.js';

export class RecordingSocket<M = Record<string, unknown> & { t: string }> implements ClientSocket {
  buffered = 0;
  readonly messages: M[] = [];
  /** The close code, once closed. */
  closedWith: number | null = null;

  sendFrame(frame: Uint8Array) {
    for (const m of decode(frame) as M[]) this.messages.push(m);
    return SendStatus.Sent;
  }

  bufferedAmount() {
    return this.buffered;
  }

  close(code: number) {
    this.closedWith = code;
  }
}
