/**
 * An in-memory WebSocket for unit tests of the client SDK: the test plays
 * the server, frame by frame, and reads what the client sent.
 */
import { encode } from '@msgpack/msgpack';
import type { ClientClock, WebSocketLike } from '../../src/client/index.js';

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

  constructor(
    readonly url: string,
    /** The subprotocols the client offered (where a token travels). */
    readonly protocols?: string | string[],
  ) {
    ScriptedSocket.all.push(this);
  }

  /** The `bearer.` token the client offered, if any. */
  get token(): string | undefined {
    const list = typeof this.protocols === 'string' ? [this.protocols] : (this.protocols ?? []);
    return list.find((p) => p.startsWith('bearer.'))?.slice('bearer.'.length);
  }

  /** The server refuses the upgrade with an HTTP status, as the `ws` package reports it: an error naming the status, then close 1006. */
  refuse(status: number): void {
    this.readyState = 3;
    const message = `Unexpected server response: ${status}`;
    (this.onerror as ((ev: { message: string; error: Error }) => void) | null)?.({ message, error: new Error(message) });
    (this.onclose as ((ev: { code: number; reason: string }) => void) | null)?.({ code: 1006, reason: '' });
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

/**
 * A clock for the client that moves only when told to: `advance(ms)` runs
 * every timer that falls due on the way, in time order, with `now()` at its
 * due time.
 */
export class ManualTimers implements ClientClock {
  private t: number;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers not yet fired or cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers on the way (at most 100000, a bound against a timer that re-arms at 0 ms). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let n = 0; n < 100_000; n++) {
      let first: number | null = null;
      let at = Infinity;
      for (const [id, timer] of this.timers) if (timer.at <= end && timer.at < at) [first, at] = [id, timer.at];
      if (first === null) break;
      const timer = this.timers.get(first)!;
      this.timers.delete(first);
      this.t = timer.at;
      timer.fn();
    }
    this.t = end;
  }
}
