/**
 * A test WebSocket client: the `ws` package for the socket and
 * @msgpack/msgpack (a standard decoder, not the one the gateway encodes
 * with) for frames, so tests see exactly what any client would.
 */
import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';

export type Msg = Record<string, unknown> & { t: string };

export class TestClient {
  readonly frames: Msg[][] = [];
  readonly messages: Msg[] = [];
  /** Payload bytes of all frames received. */
  bytes = 0;
  closed: { code: number; reason: string } | null = null;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) throw new Error('server sent a text frame');
      this.bytes += data.byteLength;
      const frame = decode(data) as Msg[];
      if (!Array.isArray(frame) || frame.length === 0) throw new Error('frame is not a non-empty array');
      this.frames.push(frame);
      for (const m of frame) this.messages.push(m);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  /** Wraps a socket opened elsewhere (attach before its first message arrives, e.g. in its open handler). */
  static wrap(ws: WebSocket): TestClient {
    return new TestClient(ws);
  }

  static connect(url: string): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const c = new TestClient(ws);
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Sends one request as binary MessagePack (default) or text JSON. */
  send(req: object, as: 'msgpack' | 'json' = 'msgpack'): void {
    if (as === 'json') this.ws.send(JSON.stringify(req));
    else this.ws.send(encode(req));
  }

  sendRaw(data: Buffer | string, binary: boolean): void {
    this.ws.send(data, { binary });
  }

  /** Waits until `pred` holds over what has arrived, or fails after `ms`. */
  async until<T>(pred: (c: TestClient) => T | undefined | null | false, what: string, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = pred(this);
      if (v !== undefined && v !== null && v !== false) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; last messages: ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the first message (from index `from`) matching `pred`. */
  next(pred: (m: Msg) => boolean, what: string, ms = 5000, from = 0): Promise<Msg> {
    return this.until((c) => c.messages.slice(from).find(pred), what, ms);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

/** Client-side view of symbol states, built with the protocol's merge rule. */
export class StateView {
  readonly state = new Map<string, { q: number; d: Record<string, unknown> }>();
  readonly violations: string[] = [];

  apply(messages: Msg[]): this {
    for (const m of messages) {
      const s = m['s'] as string;
      if (m.t === 'snap') {
        const held = this.state.get(s);
        if (held && (m['q'] as number) < held.q) this.violations.push(`snap q ${String(m['q'])} < ${held.q} for ${s}`);
        this.state.set(s, { q: m['q'] as number, d: { ...(m['d'] as object) } });
      } else if (m.t === 'upd') {
        const held = this.state.get(s);
        if (!held) {
          this.violations.push(`upd before snap for ${s}`);
          continue;
        }
        if ((m['q'] as number) <= held.q) this.violations.push(`upd q ${String(m['q'])} <= ${held.q} for ${s}`);
        held.q = m['q'] as number;
        Object.assign(held.d, m['d']);
      }
    }
    return this;
  }
}
