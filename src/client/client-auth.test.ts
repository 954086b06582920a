/**
 * Unit tests of the client's credentials, reconnect rules and typed events
 * over a scripted in-memory socket and a manual clock (no server, no
 * waiting): getToken on every connection, no connection with a token known
 * to have expired, backoff and one error while no usable token comes, the
 * in-place refresh before `exp`, the bye rules (retryMs honoured; without
 * it, never the same credentials again), HTTP 401 on the upgrade, the
 * backoff going on across connections cut soon after hello (`stableMs`), the
 * `status`, `bye`, `stale` and `gap` events, and `updates()` yielding the
 * state already held first.
 */
import { SignJWT } from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { HELLO, ManualTimers, ScriptedSocket, type Msg } from '../../test/helpers/scripted-socket.js';
import { bookChecksum } from './order-book.js';
import { tokenExpiry } from './token.js';
import {
  AuthError,
  ConnectError,
  TickgateClient,
  type ByeInfo,
  type ClientOptions,
  type ConnectionStatus,
  type GapEvent,
  type StaleEvent,
  type TickgateError,
  type Update,
  type WebSocketConstructor,
} from './index.js';

const WS = ScriptedSocket as unknown as WebSocketConstructor;
const URL_ = 'ws://gw.test/v1/stream';

/** An unsigned JWT-shaped token expiring at `expMs` (the client reads `exp` only; the signature is the server's business). */
function jwt(expMs: number, sub = 'alice', n = 0): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, exp: Math.floor(expMs / 1000), n })}.c2ln`;
}

/** Lets promise callbacks (an async getToken, a request's reply) run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

function setup(options: Partial<ClientOptions> = {}) {
  const clock = new ManualTimers();
  const client = new TickgateClient({ url: URL_, WebSocket: WS, clock, random: () => 1, reconnect: { initialMs: 100, maxMs: 1600 }, ...options });
  const statuses: ConnectionStatus[] = [];
  const errors: TickgateError[] = [];
  const byes: ByeInfo[] = [];
  client.on('status', (s) => statuses.push(s));
  client.on('error', (e) => errors.push(e));
  client.on('bye', (b) => byes.push(b));
  return { clock, client, statuses, errors, byes };
}

/** The last socket, greeted with hello. */
function greet(): ScriptedSocket {
  const sock = ScriptedSocket.last!;
  sock.frame(HELLO);
  return sock;
}

/** A bye and the close that follows it. */
function byeAndClose(sock: ScriptedSocket, bye: Msg, code = 1008): void {
  sock.frame({ t: 'bye', ...bye });
  sock.readyState = 3;
  (sock.onclose as ((ev: { code: number; reason: string }) => void) | null)?.({ code, reason: '' });
}

beforeEach(() => {
  ScriptedSocket.all = [];
});

describe('tokenExpiry', () => {
  it('reads exp from a signed JWT and from base64url payloads of every padding length', async () => {
    const exp = 1_900_000_000;
    const signed = await new SignJWT({ ent: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode('k'.repeat(32)));
    expect(tokenExpiry(signed)).toBe(exp * 1000);
    for (const sub of ['a', 'ab', 'abc', 'ümlaut-ß']) expect(tokenExpiry(jwt(exp * 1000, sub))).toBe(exp * 1000);
  });

  it('answers null for an API key, a malformed payload and an exp that is not a number', () => {
    expect(tokenExpiry('tk_live_0123456789abcdef')).toBeNull();
    expect(tokenExpiry('a.b')).toBeNull();
    expect(tokenExpiry('a.!!!.c')).toBeNull();
    expect(tokenExpiry(`x.${Buffer.from('not json').toString('base64url')}.y`)).toBeNull();
    expect(tokenExpiry(`x.${Buffer.from('{"exp":"soon"}').toString('base64url')}.y`)).toBeNull();
    expect(tokenExpiry(`x.${Buffer.from('{"sub":"a"}').toString('base64url')}.y`)).toBeNull();
  });
});

describe('getToken', () => {
  it('is called for the first connection and before each reconnect, sync or async, and its token is offered', async () => {
    let n = 0;
    const { clock, client } = setup({ getToken: async () => jwt(clock.now() + 3_600_000, 'alice', ++n) });
    const opened = client.connect();
    expect(ScriptedSocket.all).toHaveLength(0); // waiting for getToken
    await settle();
    const first = ScriptedSocket.last!;
    expect(first.protocols).toEqual(['tickgate.v1', `bearer.${first.token}`]);
    greet();
    await opened;
    expect(n).toBe(1);
    first.drop();
    clock.advance(200); // it dropped at once after hello: the second attempt's backoff bound
    await settle();
    expect(n).toBe(2);
    const second = ScriptedSocket.last!;
    expect(second).not.toBe(first);
    expect(second.token).not.toBe(first.token);
    expect(tokenExpiry(second.token!)).toBe(Math.floor((clock.now() + 3_600_000) / 1000) * 1000);
    await client.close();
  });

  it('never connects with a token past its exp: it backs off, growing and jittered, reports one AuthError, and connects once a fresh token comes', async () => {
    let fresh = false;
    const { clock, client, statuses, errors } = setup({ getToken: () => (fresh ? jwt(clock.now() + 60_000) : jwt(clock.now() - 1000)), retryFirstConnect: true });
    void client.connect();
    // Five attempts, none of which opened a socket.
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = statuses.at(-1)!;
      expect(s.state).toBe('reconnecting');
      if (s.state !== 'reconnecting') return;
      expect(s.last.code).toBe(4003);
      expect(s.reason).toMatch(/^AUTH_EXPIRED: the token expired at /);
      delays.push(s.delayMs);
      clock.advance(s.delayMs);
    }
    expect(ScriptedSocket.all).toHaveLength(0);
    // random() = 1: the top of each window, doubling from initialMs up to maxMs.
    expect(delays).toEqual([200, 400, 800, 1600, 1600]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(AuthError);
    expect(errors[0]).toMatchObject({ code: 'AUTH_EXPIRED' });

    fresh = true;
    clock.advance((statuses.at(-1) as { delayMs: number }).delayMs);
    expect(ScriptedSocket.all).toHaveLength(1);
    greet();
    expect(client.status.state).toBe('open');
    await client.close();
  });

  it('treats no token, a throwing getToken and one that never answers as unusable, without connecting', async () => {
    const results: Array<() => unknown> = [() => undefined, () => '', () => { throw new Error('vault down'); }, () => new Promise(() => {})];
    let i = 0;
    const { clock, client, statuses } = setup({ getToken: () => results[Math.min(i++, results.length - 1)]!() as string, retryFirstConnect: true, connectTimeoutMs: 5000 });
    client.connect().catch(() => undefined);
    const reasons: string[] = [];
    for (let k = 0; k < 4; k++) {
      await settle();
      const s = statuses.at(-1)!;
      if (s.state === 'connecting') {
        clock.advance(5000); // the connect timeout covers getToken
        continue;
      }
      if (s.state !== 'reconnecting') throw new Error(`unexpected ${s.state}`);
      reasons.push(s.reason);
      clock.advance(s.delayMs);
    }
    await settle();
    const last = statuses.at(-1)!;
    if (last.state === 'reconnecting') reasons.push(last.reason);
    expect(reasons).toEqual([
      'AUTH_REQUIRED: getToken returned no token',
      'AUTH_REQUIRED: getToken returned no token',
      'AUTH_REQUIRED: getToken threw: vault down',
      'AUTH_REQUIRED: getToken did not answer within 5000 ms',
    ]);
    expect(ScriptedSocket.all).toHaveLength(0);
    await client.close();
  });

  it('refreshes the token in place (op auth) a quarter of its lifetime before exp, again and again, on one connection', async () => {
    let n = 0;
    const { clock, client, errors } = setup({ getToken: () => jwt(clock.now() + 4000, 'alice', ++n) });
    void client.connect();
    const sock = greet();
    expect(n).toBe(1);
    for (let round = 0; round < 3; round++) {
      clock.advance(2999);
      expect(sock.requests('auth')).toHaveLength(round);
      clock.advance(1);
      await settle();
      const req = sock.requests('auth').at(-1)!;
      expect(sock.requests('auth')).toHaveLength(round + 1);
      expect(n).toBe(round + 2);
      expect(tokenExpiry(req['token'] as string)).toBe(Math.floor((clock.now() + 4000) / 1000) * 1000);
      sock.frame({ t: 'ack', id: req['id'], op: 'auth', ok: [], err: [], exp: clock.now() + 4000 });
      await settle();
    }
    expect(ScriptedSocket.all).toHaveLength(1);
    expect(errors).toEqual([]);
    expect(client.status.state).toBe('open');
    await client.close();
  });

  it('retries a refused refresh with backoff, never offers the refused token again, and reports it once', async () => {
    const tokens: string[] = [];
    let k = 0;
    const { clock, client, errors } = setup({ getToken: () => tokens[Math.min(k++, tokens.length - 1)]! });
    tokens.push(jwt(clock.now() + 40_000, 'alice', 0), jwt(clock.now() + 80_000, 'bob', 1), jwt(clock.now() + 80_000, 'bob', 1), jwt(clock.now() + 80_000, 'alice', 2));
    void client.connect();
    const sock = greet();
    // Lifetime 40 s: a lead of 10 s.
    clock.advance(30_000);
    await settle();
    const first = sock.requests('auth')[0]!;
    sock.frame({ t: 'err', id: first['id'], code: 'AUTH_INVALID', msg: 'the token is for another user' });
    await settle();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ name: 'AuthError', code: 'AUTH_INVALID' });
    // random() = 1: 100 ms, then getToken gives the refused token again: held back, 200 ms more.
    clock.advance(100);
    await settle();
    expect(sock.requests('auth')).toHaveLength(1);
    clock.advance(200);
    await settle();
    const third = sock.requests('auth');
    expect(third).toHaveLength(2);
    expect(third[1]!['token']).toBe(tokens[3]);
    sock.frame({ t: 'ack', id: third[1]!['id'], op: 'auth', ok: [], err: [], exp: clock.now() + 80_000 });
    await settle();
    expect(errors).toHaveLength(1);
    await client.close();
  });
});

describe('bye and refused upgrades', () => {
  it('after bye AUTH_EXPIRED without retryMs, reconnects with a fresh token from getToken and never with the old one', async () => {
    let fresh = false;
    let n = 0;
    const { clock, client, statuses, byes } = setup({ getToken: () => (fresh ? jwt(clock.now() + 60_000, 'alice', ++n) : 'old-api-key') });
    void client.connect();
    const sock = greet();
    byeAndClose(sock, { code: 'AUTH_EXPIRED', reason: 'the credential expired' });
    expect(byes).toEqual([{ code: 'AUTH_EXPIRED', reason: 'the credential expired' }]);
    const rec = statuses.at(-1)!;
    // Right after hello: not a connection that lasted, so the count goes on.
    expect(rec).toMatchObject({ state: 'reconnecting', attempt: 2, reason: 'bye AUTH_EXPIRED: the credential expired', last: { code: 1008 } });
    // getToken still answers with the token just refused: no socket for it.
    clock.advance((rec as { delayMs: number }).delayMs);
    expect(ScriptedSocket.all).toHaveLength(1);
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', reason: 'AUTH_EXPIRED: the token was refused (AUTH_EXPIRED) and no fresh one was had' });
    fresh = true;
    clock.advance((statuses.at(-1) as { delayMs: number }).delayMs);
    expect(ScriptedSocket.all).toHaveLength(2);
    expect(ScriptedSocket.last!.token).not.toBe('old-api-key');
    await client.close();
  });

  it('without getToken, bye AUTH_EXPIRED stops it: closed with an AuthError, no reconnect however long', async () => {
    const { clock, client, statuses } = setup({ token: 'api-key-1' });
    void client.connect();
    byeAndClose(greet(), { code: 'AUTH_EXPIRED', reason: 'the credential expired', retryMs: 0 });
    const closed = statuses.at(-1)!;
    expect(closed.state).toBe('closed');
    if (closed.state !== 'closed') return;
    expect(closed.reason).toBe('AUTH_EXPIRED: bye AUTH_EXPIRED: the credential expired; no getToken to fetch a fresh token');
    expect(closed.error).toBeInstanceOf(AuthError);
    expect(closed.error).toMatchObject({ code: 'AUTH_EXPIRED' });
    clock.advance(600_000);
    expect(ScriptedSocket.all).toHaveLength(1);
  });

  it('honours retryMs with jitter and the same token; a bye without retryMs and no getToken ends reconnecting', async () => {
    const { clock, client, statuses } = setup({ token: 'api-key-1', random: () => 0.5 });
    void client.connect();
    byeAndClose(greet(), { code: 'DRAINING', reason: 'shutting down', retryMs: 2000 }, 1001);
    const rec = statuses.at(-1)!;
    // retryMs plus half the jitter window (random() = 0.5 of 1000 ms).
    expect(rec).toMatchObject({ state: 'reconnecting', delayMs: 2500, last: { bye: { code: 'DRAINING', retryMs: 2000 } } });
    clock.advance(2499);
    expect(ScriptedSocket.all).toHaveLength(1);
    clock.advance(1);
    expect(ScriptedSocket.all).toHaveLength(2);
    expect(ScriptedSocket.last!.token).toBe('api-key-1');
    byeAndClose(greet(), { code: 'LIMIT_EXCEEDED', reason: 'too many violations' });
    expect(statuses.at(-1)).toMatchObject({ state: 'closed', reason: 'bye LIMIT_EXCEEDED: too many violations; not reconnecting: the server sent no retryMs' });
    clock.advance(600_000);
    expect(ScriptedSocket.all).toHaveLength(2);
  });

  it('stops on an HTTP 401 without getToken, naming the inferred code; with getToken asks for another token', async () => {
    const a = setup({ token: jwt(Date.now() + 3_600_000), retryFirstConnect: true });
    void a.client.connect();
    greet().drop();
    a.clock.advance((a.statuses.at(-1) as { delayMs: number }).delayMs);
    ScriptedSocket.last!.refuse(401);
    const closed = a.statuses.at(-1)!;
    expect(closed.state).toBe('closed');
    if (closed.state !== 'closed') return;
    expect(closed.error).toBeInstanceOf(AuthError);
    expect(closed.error).toMatchObject({ code: 'AUTH_INVALID' });
    expect(closed.reason).toMatch(/^AUTH_INVALID: /);

    ScriptedSocket.all = [];
    let n = 0;
    const b = setup({ getToken: () => `key-${++n}` });
    void b.client.connect();
    greet().drop();
    b.clock.advance((b.statuses.at(-1) as { delayMs: number }).delayMs);
    ScriptedSocket.last!.refuse(401);
    expect(b.statuses.at(-1)).toMatchObject({ state: 'reconnecting', last: { httpStatus: 401 } });
    expect(b.errors.filter((e) => e instanceof AuthError)).toHaveLength(1);
    b.clock.advance((b.statuses.at(-1) as { delayMs: number }).delayMs);
    expect(n).toBe(3);
    expect(ScriptedSocket.last!.token).toBe('key-3');
    // Other refusals are not about credentials: plain backoff, no AuthError.
    ScriptedSocket.last!.refuse(503);
    expect(b.statuses.at(-1)).toMatchObject({ state: 'reconnecting', last: { httpStatus: 503 } });
    expect(b.errors.filter((e) => e instanceof AuthError)).toHaveLength(1);
    await b.client.close();
  });

  it('rejects connect() with an AuthError, a ConnectError, when the only token has expired', async () => {
    const { client } = setup({ token: jwt(new ManualTimers().now() - 60_000) });
    const err = await client.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err).toBeInstanceOf(ConnectError);
    expect(ScriptedSocket.all).toHaveLength(0);
  });
});

describe('backoff after short-lived connections', () => {
  /** Statuses of kind `state`, as [attempt, delayMs] (delayMs for reconnecting only). */
  const counts = (statuses: ConnectionStatus[], state: 'connecting' | 'reconnecting'): number[][] =>
    statuses.flatMap((s) => (s.state === 'reconnecting' && state === 'reconnecting' ? [[s.attempt, s.delayMs]] : s.state === 'connecting' && state === 'connecting' ? [[s.attempt]] : []));

  it('keeps growing the delays while each connection ends 100 ms after hello, and starts over after one that stayed stableMs', async () => {
    const { clock, client, statuses } = setup();
    void client.connect();
    for (let i = 0; i < 5; i++) {
      const sock = greet();
      clock.advance(100);
      sock.drop();
      clock.advance((statuses.at(-1) as { delayMs: number }).delayMs);
    }
    // random() = 1: each delay is its bound, doubling from initialMs 100 up to maxMs 1600.
    expect(counts(statuses, 'reconnecting')).toEqual([
      [2, 200],
      [3, 400],
      [4, 800],
      [5, 1600],
      [6, 1600],
    ]);
    expect(counts(statuses, 'connecting')).toEqual([[1], [2], [3], [4], [5], [6]]);
    // Open for the default stableMs (10 s): the next drop starts the backoff over.
    const sock = greet();
    clock.advance(10_000);
    sock.drop();
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 1, delayMs: 100, last: { code: 1006 } });
    clock.advance(100);
    expect(statuses.at(-1)).toEqual({ state: 'connecting', attempt: 1 });
    // A failed attempt after it backs off from there.
    ScriptedSocket.last!.refuse(503);
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 2, delayMs: 200 });
    await client.close();
  });

  it('takes stableMs from the reconnect options: just under it counts as short, reaching it resets', async () => {
    const { clock, client, statuses } = setup({ reconnect: { initialMs: 100, maxMs: 1600, stableMs: 500 } });
    void client.connect();
    let sock = greet();
    clock.advance(499);
    sock.drop();
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 2, delayMs: 200 });
    clock.advance(200);
    sock = greet();
    clock.advance(500);
    sock.drop();
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 1, delayMs: 100 });
    await client.close();
  });

  it('with stableMs 0 resets on hello, as a client that trusts every hello', async () => {
    const { clock, client, statuses } = setup({ reconnect: { initialMs: 100, maxMs: 1600, stableMs: 0 } });
    void client.connect();
    for (let i = 0; i < 3; i++) {
      greet().drop();
      clock.advance(100);
    }
    expect(counts(statuses, 'reconnecting')).toEqual([
      [1, 100],
      [1, 100],
      [1, 100],
    ]);
    await client.close();
  });

  it('after a bye with retryMs on a short-lived connection waits retryMs with its jitter, and no less than the backoff reached', async () => {
    const { clock, client, statuses } = setup();
    void client.connect();
    // A bye on the first connection: retryMs 300 plus its jitter (max(150, initialMs 100) at random() = 1).
    byeAndClose(greet(), { code: 'DRAINING', reason: 'shutting down', retryMs: 300 }, 1001);
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 2, delayMs: 450 });
    clock.advance(450);
    for (let i = 0; i < 3; i++) {
      const sock = greet();
      clock.advance(100);
      sock.drop();
      clock.advance((statuses.at(-1) as { delayMs: number }).delayMs);
    }
    expect(statuses.at(-1)).toEqual({ state: 'connecting', attempt: 5 });
    // The backoff bound has reached 1600 ms (attempt 6): a bye asking for 300 does not bring the client back sooner.
    byeAndClose(greet(), { code: 'DRAINING', reason: 'shutting down', retryMs: 300 }, 1001);
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 6, delayMs: 1600 });
    clock.advance(1600);
    // A bye asking for more than the backoff: its retryMs and jitter.
    byeAndClose(greet(), { code: 'DRAINING', reason: 'shutting down', retryMs: 5000 }, 1001);
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 7, delayMs: 7500 });
    await client.close();
  });

  it('refuses an initialMs or maxMs that would not make a backoff, naming the option', () => {
    for (const initialMs of [0, -5, Number.NaN, Infinity, '250' as unknown as number]) {
      expect(() => new TickgateClient({ url: URL_, WebSocket: WS, reconnect: { initialMs } }), String(initialMs)).toThrow(/options\.reconnect\.initialMs: expected a finite number/);
    }
    for (const maxMs of [100, Number.NaN, Infinity, '30000' as unknown as number]) {
      expect(() => new TickgateClient({ url: URL_, WebSocket: WS, reconnect: { initialMs: 250, maxMs } }), String(maxMs)).toThrow(/options\.reconnect\.maxMs: expected a finite number of milliseconds >= initialMs \(250\)/);
    }
    expect(() => new TickgateClient({ url: URL_, WebSocket: WS, reconnect: { initialMs: 250, maxMs: 250 } })).not.toThrow();
  });

  it('refuses a stableMs that is not a finite number >= 0, naming the option', () => {
    for (const stableMs of [-1, Number.NaN, Infinity, '10' as unknown as number]) {
      expect(() => new TickgateClient({ url: URL_, WebSocket: WS, reconnect: { stableMs } }), String(stableMs)).toThrow(/options\.reconnect\.stableMs: expected a finite number/);
    }
  });
});

describe('typed events', () => {
  it('types status as a union, removes listeners with off, and refuses an unknown event', async () => {
    const { clock, client } = setup();
    const states: string[] = [];
    const fn = (s: ConnectionStatus): void => {
      states.push(s.state === 'reconnecting' ? `reconnecting ${s.attempt} ${s.delayMs} ${s.reason}` : s.state);
    };
    client.on('status', fn);
    void client.connect();
    const sock = greet();
    clock.advance(10_000); // stayed open the default stableMs: the backoff starts over
    sock.drop();
    clock.advance(100);
    greet();
    client.off('status', fn);
    await client.close();
    expect(states).toEqual(['connecting', 'open', 'reconnecting 1 100 code 1006', 'connecting', 'open']);
    expect(() => client.on('nope' as 'status', fn)).toThrow(/on\(nope\): expected one of status, update, stale/);
  });

  it('reports stale per symbol and channel, once per change, without a flap when a reconnect finds it still stale', async () => {
    const { clock, client } = setup();
    const stale: StaleEvent[] = [];
    client.on('stale', (e) => stale.push(e));
    void client.connect();
    let sock = greet();
    void client.subscribe(['AAPL']);
    void client.subscribeBook('BTC/USDT', { depth: 1 });
    void client.subscribeTrades('ETH/USDT');
    const [q, b, t] = sock.requests('sub');
    const book = (qn: number): Msg => ({ t: 'book', s: 'BTC/USDT', q: qn, bids: [[1, 1]], asks: [[2, 1]], cs: bookChecksum([[2, 1]], [[1, 1]], 1) });
    sock.frame(
      { t: 'ack', id: q!['id'], op: 'sub', ok: ['AAPL'], err: [] },
      { t: 'snap', s: 'AAPL', q: 1, d: { bid: 1 } },
      { t: 'ack', id: b!['id'], op: 'sub', ok: ['BTC/USDT'], err: [], channel: 'book', depth: 1 },
      book(1),
      { t: 'ack', id: t!['id'], op: 'sub', ok: ['ETH/USDT'], err: [], channel: 'trade', pos: { 'ETH/USDT': { e: 'E', q: 0 } } },
    );
    sock.frame({ t: 'stat', s: 'AAPL', st: 'stale' }, { t: 'stat', s: 'BTC/USDT', st: 'stale', ch: 'book' }, { t: 'stat', s: 'ETH/USDT', st: 'stale', ch: 'trade' });
    sock.frame({ t: 'stat', s: 'AAPL', st: 'stale' });
    expect(stale).toEqual([
      { symbol: 'AAPL', channel: 'quote', stale: true },
      { symbol: 'BTC/USDT', channel: 'book', stale: true },
      { symbol: 'ETH/USDT', channel: 'trade', stale: true },
    ]);
    // Reconnect: the fresh snap comes with stat stale in the same frame: still stale, nothing to report.
    sock.drop();
    clock.advance(200);
    sock = greet();
    const subs = sock.requests('sub');
    sock.frame({ t: 'ack', id: subs[0]!['id'], op: 'sub', ok: ['AAPL'], err: [] }, { t: 'snap', s: 'AAPL', q: 1, d: { bid: 2 } }, { t: 'stat', s: 'AAPL', st: 'stale' });
    expect(stale).toHaveLength(3);
    // The book's fresh window comes without stat: live again. The tape says live explicitly.
    sock.frame({ t: 'ack', id: subs[1]!['id'], op: 'sub', ok: ['BTC/USDT'], err: [], channel: 'book', depth: 1 }, book(5));
    sock.frame({ t: 'ack', id: subs[2]!['id'], op: 'sub', ok: ['ETH/USDT'], err: [], channel: 'trade', pos: { 'ETH/USDT': { e: 'E', q: 0 } } }, { t: 'stat', s: 'ETH/USDT', st: 'stale', ch: 'trade' });
    sock.frame({ t: 'stat', s: 'ETH/USDT', st: 'live', ch: 'trade' }, { t: 'stat', s: 'AAPL', st: 'live' });
    expect(stale.slice(3)).toEqual([
      { symbol: 'BTC/USDT', channel: 'book', stale: false },
      { symbol: 'ETH/USDT', channel: 'trade', stale: false },
      { symbol: 'AAPL', channel: 'quote', stale: false },
    ]);
    await client.close();
  });

  it('reports gaps: trades lost (gap) and a book change out of sequence, but not skipped quote q', async () => {
    const { client } = setup();
    const gaps: GapEvent[] = [];
    client.on('gap', (g) => gaps.push(g));
    void client.connect();
    const sock = greet();
    void client.subscribe(['AAPL']);
    void client.subscribeBook('BTC/USDT', { depth: 1 });
    void client.subscribeTrades('ETH/USDT');
    const [q, b, t] = sock.requests('sub');
    sock.frame(
      { t: 'ack', id: q!['id'], op: 'sub', ok: ['AAPL'], err: [] },
      { t: 'snap', s: 'AAPL', q: 1, d: { bid: 1 } },
      { t: 'upd', s: 'AAPL', q: 7, d: { bid: 2 } },
      { t: 'ack', id: b!['id'], op: 'sub', ok: ['BTC/USDT'], err: [], channel: 'book', depth: 1 },
      { t: 'book', s: 'BTC/USDT', q: 3, bids: [[1, 1]], asks: [[2, 1]], cs: bookChecksum([[2, 1]], [[1, 1]], 1) },
      { t: 'bupd', s: 'BTC/USDT', q: 5, bids: [[1, 2]], cs: bookChecksum([[2, 1]], [[1, 2]], 1) },
      { t: 'ack', id: t!['id'], op: 'sub', ok: ['ETH/USDT'], err: [], channel: 'trade', pos: { 'ETH/USDT': { e: 'E', q: 10 } } },
      { t: 'gap', s: 'ETH/USDT', from: 10, to: 25 },
    );
    expect(gaps).toEqual([
      { symbol: 'BTC/USDT', channel: 'book', expected: 4, q: 5 },
      { symbol: 'ETH/USDT', channel: 'trade', e: 'E', from: 10, to: 25 },
    ]);
    await client.close();
  });
});

describe('updates()', () => {
  it('yields the state already held first, as snapshots, when the snap came in the ack frame before the loop started', async () => {
    const { client } = setup();
    void client.connect();
    const sock = greet();
    const subscribed = client.subscribe(['AAPL', 'MSFT']);
    const req = sock.requests('sub')[0]!;
    sock.frame({ t: 'ack', id: req['id'], op: 'sub', ok: ['AAPL', 'MSFT'], err: [] }, { t: 'snap', s: 'AAPL', q: 4, d: { bid: 1, ask: 2 } }, { t: 'snap', s: 'MSFT', q: 9, d: { bid: 5 } });
    await subscribed;
    const it = client.updates();
    sock.frame({ t: 'upd', s: 'AAPL', q: 5, d: { bid: 1.5 } });
    const got: Update[] = [];
    for (let i = 0; i < 2; i++) got.push((await it.next()).value as Update);
    expect(got.map((u) => [u.symbol, u.snapshot, u.q])).toEqual([
      ['AAPL', true, 5],
      ['MSFT', true, 9],
    ]);
    // The update that came while the snapshot waited is merged into it.
    expect(got[0]!.state).toEqual({ bid: 1.5, ask: 2 });
    sock.frame({ t: 'upd', s: 'MSFT', q: 10, d: { ask: 6 } });
    expect((await it.next()).value).toMatchObject({ symbol: 'MSFT', q: 10, snapshot: false, changed: { ask: 6 } });
    await client.close();
    expect((await it.next()).done).toBe(true);
  });

  it('leaves out a symbol whose snapshot has not come on this connection, and yields that snapshot when it does', async () => {
    const { clock, client } = setup();
    void client.connect();
    let sock = greet();
    void client.subscribe(['AAPL']);
    sock.frame({ t: 'ack', id: sock.requests('sub')[0]!['id'], op: 'sub', ok: ['AAPL'], err: [] }, { t: 'snap', s: 'AAPL', q: 4, d: { bid: 1 } });
    sock.drop();
    clock.advance(200);
    sock = greet();
    const it = client.updates();
    sock.frame({ t: 'ack', id: sock.requests('sub')[0]!['id'], op: 'sub', ok: ['AAPL'], err: [] }, { t: 'snap', s: 'AAPL', q: 1, d: { bid: 3 } });
    expect((await it.next()).value).toMatchObject({ symbol: 'AAPL', q: 1, snapshot: true, state: { bid: 3 } });
    await client.close();
  });
});

describe('timers on the injected clock', () => {
  it('cuts a connection silent for heartbeatMultiplier x hbMs and times out a request', async () => {
    const { clock, client, statuses } = setup({ requestTimeoutMs: 2000, heartbeatMultiplier: 3 });
    void client.connect();
    const sock = ScriptedSocket.last!;
    sock.frame({ ...HELLO, hbMs: 1000 });
    const ping = client.ping().catch((e: unknown) => e);
    clock.advance(2000);
    expect(await ping).toMatchObject({ name: 'RequestError', code: 'TIMEOUT' });
    // Checked every deadMs / 4: silent for 3000 ms at the check at 3000 is not over; at 3750 it is.
    clock.advance(1000);
    expect(client.status.state).toBe('open');
    clock.advance(750);
    expect(statuses.at(-1)).toMatchObject({ state: 'reconnecting', last: { code: 4000 } });
    await client.close();
  });
});
