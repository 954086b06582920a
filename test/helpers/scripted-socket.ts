/**
 * An in-memory WebSocket for unit tests of the client SDK: the test plays
 * the server, frame by frame, and reads what the client sent.
 */
import { encode } from '@msgpack/msgpack';
import type { WebSocketLike } from '../../src/client/index.js';

export type Msg = Record<string, unknown>;

export const HELLO = { t: 'hello', v: 1, sid: 's1', hbMs: 60_000, serverTs: 0, limits: {} };

export class ScriptedSocket implements WebSocketLike {
  /** Every socket the client opened, in order. */
  static all: ScriptedSocket[] = [];
  static get last(): ScriptedSocket | null {
    return ScriptedSocket.all.at(-1) ?? null;
  }
  binaryType = 'arraybuffer';
  readyState = 1;
  readonly sent: Msg[] = [];
  onopen: ((ev: never) => void) | null = null;
  onmessage: ((ev: never) => void) | null = null;
  onclose: ((ev: never) => void) | null = null;
  onerror: ((ev: never) => void) | null = null;

  constructor(readonly url: string) {
    ScriptedSocket.all.push(this);
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Msg);
  }

  close(code = 1000, reason = ''): void {
    this.readyState = 3;
    queueMicrotask(() => (this.onclose as ((ev: { code: number; reason: string }) => void) | null)?.({ code, reason }));
  }

  /** The server drops the connection. */
  drop(): void {
    this.readyState = 3;
    (this.onclose as ((ev: { code: number; reason: string }) => void) | null)?.({ code: 1006, reason: '' });
  }

  /** Delivers one server frame. */
  frame(...messages: Msg[]): void {
    const bytes = encode(messages);
    (this.onmessage as ((ev: { data: ArrayBuffer }) => void) | null)?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer });
  }

  /** Requests the client sent with `op`, in order. */
  requests(op: string): Msg[] {
    return this.sent.filter((m) => m['op'] === op);
  }

  /** Acknowledges the last `sub` the client sent (echoing channel and depth, as the gateway does). */
  ackLastSub(): Msg {
    const req = this.requests('sub').at(-1)!;
    const ack: Msg = { t: 'ack', id: req['id'], op: 'sub', ok: req['symbols'], err: [] };
    if (req['channel'] !== undefined) ack['channel'] = req['channel'];
    if (req['depth'] !== undefined) ack['depth'] = req['depth'];
    if (req['throttleMs'] !== undefined) ack['throttleMs'] = req['throttleMs'];
    this.frame(ack);
    return req;
  }
}
