/**
 * Unit tests of the client's merge with configured fields, over a scripted
 * in-memory socket (no server): text values are kept and merged like numbers.
 */
import { encode } from '@msgpack/msgpack';
import { expect, it } from 'vitest';
import { TickgateClient, type ConfiguredFields, type Update, type WebSocketConstructor, type WebSocketLike } from './index.js';

type Msg = Record<string, unknown>;

/** The one socket the client opened, driven by the test. */
class ScriptedSocket implements WebSocketLike {
  static last: ScriptedSocket | null = null;
  binaryType = 'arraybuffer';
  readyState = 1;
  readonly sent: Msg[] = [];
  onopen: ((ev: never) => void) | null = null;
  onmessage: ((ev: never) => void) | null = null;
  onclose: ((ev: never) => void) | null = null;
  onerror: ((ev: never) => void) | null = null;

  constructor() {
    ScriptedSocket.last = this;
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Msg);
  }

  close(code = 1000, reason = ''): void {
    this.readyState = 3;
    queueMicrotask(() => (this.onclose as ((ev: { code: number; reason: string }) => void) | null)?.({ code, reason }));
  }

  /** Delivers one server frame. */
  frame(...messages: Msg[]): void {
    const bytes = encode(messages);
    (this.onmessage as ((ev: { data: ArrayBuffer }) => void) | null)?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer });
  }
}

const HELLO = { t: 'hello', v: 1, sid: 's1', hbMs: 60_000, serverTs: 0, limits: {} };

/** Connects `client` over a scripted socket and subscribes it to `symbol`; returns the socket. */
async function subscribed<X extends ConfiguredFields<X>>(client: TickgateClient<X>, symbol: string): Promise<ScriptedSocket> {
  const connected = client.connect();
  const sock = ScriptedSocket.last!;
  sock.frame(HELLO);
  await connected;
  const ack = client.subscribe([symbol]);
  const req = sock.sent.find((m) => m['op'] === 'sub')!;
  sock.frame({ t: 'ack', id: req['id'], op: 'sub', ok: [symbol], err: [] });
  await ack;
  return sock;
}

it('keeps string values from a snap and merges string and number updates into the state', async () => {
  const client = new TickgateClient<{ mark: number; status: string }>({ url: 'ws://gw.test/v1/stream', WebSocket: ScriptedSocket as WebSocketConstructor, reconnect: false });
  const seen: Update<{ mark: number; status: string }>[] = [];
  // Copies: a snap's changed set is the live state object.
  client.onUpdate((u) => seen.push({ ...u, state: { ...u.state }, changed: { ...u.changed } }));
  const sock = await subscribed(client, 'ACME');

  sock.frame({ t: 'snap', s: 'ACME', q: 1, d: { bid: 10, ask: 10.5, mark: 10.2, status: 'open' } });
  sock.frame({ t: 'upd', s: 'ACME', q: 2, d: { status: 'halted: news pending' } }, { t: 'upd', s: 'ACME', q: 3, d: { mark: 10.25, bid: 10.1 } });

  expect(client.state('ACME')).toEqual({ bid: 10.1, ask: 10.5, mark: 10.25, status: 'halted: news pending' });
  const status: string | undefined = client.state('ACME')!.status;
  expect(status).toBe('halted: news pending');
  expect(seen.map((u) => u.changed)).toEqual([{ bid: 10, ask: 10.5, mark: 10.2, status: 'open' }, { status: 'halted: news pending' }, { mark: 10.25, bid: 10.1 }]);
  expect(seen[1]!.state).toMatchObject({ status: 'halted: news pending', mark: 10.2 });
  await client.close();
});

it('merges string values for a lagging updates() reader', async () => {
  const client = new TickgateClient({ url: 'ws://gw.test/v1/stream', WebSocket: ScriptedSocket as WebSocketConstructor, reconnect: false });
  const sock = await subscribed(client, 'ACME');
  const it = client.updates();
  sock.frame(
    { t: 'snap', s: 'ACME', q: 1, d: { bid: 1, status: 'open' } },
    { t: 'upd', s: 'ACME', q: 2, d: { status: 'closed' } },
    { t: 'upd', s: 'ACME', q: 3, d: { bid: 2 } },
  );
  const u = (await it.next()).value as Update;
  expect(u).toMatchObject({ q: 3, snapshot: true, n: 3, changed: { bid: 2, status: 'closed' }, state: { bid: 2, status: 'closed' } });
  await client.close();
});
