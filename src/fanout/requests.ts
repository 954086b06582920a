/**
 * Client requests: what each op does once decoded and validated. Answers
 * are values (ack, err), never exceptions; a request that breaks a limit
 * counts as a violation of the connection's allowance.
 */
import type { Principal } from '../access/authenticator.js';
import { encode } from '../protocol/codec.js';
import { isValidSymbol } from '../protocol/fields.js';
import type { AckError, Channel, ClientRequest, RequestError } from '../protocol/messages.js';
import type { MessageType } from './counters.js';
import type { SessionContext } from './session-context.js';
import type { Subscription } from './subscription.js';

/** What request handling needs from the session it serves. */
export interface RequestSession {
  readonly isOpen: boolean;
  /** Who this is and what they may see; replaced by a successful `auth`. */
  principal: Principal;
  push(type: MessageType, bytes: Uint8Array): void;
  /** Answers with err; a violation also counts against the connection's allowance. */
  reject(e: RequestError, isViolation: boolean): void;
  /** Counts a violation without an err of its own (the ack says what was refused). */
  violation(): void;
  /** The client's subscription to (kind, symbol), if any. */
  subscription(kind: number, symbol: string): Subscription | undefined;
  /** Creates a subscription; null when the connection holds its maximum already. */
  addSubscription(kind: number, symbol: string): Subscription | null;
  /** Ends a subscription: nothing more is queued for it. */
  endSubscription(sub: Subscription): void;
  /** Every subscription of the client. */
  subscriptions(): Iterable<Subscription>;
  /** The client subscribed to something (the idle timeout no longer applies). */
  markSubscribed(): void;
}

const BAD_SYMBOL_MSG = 'symbol must be a string of 1-64 characters without control characters';

function badSymbol(s: unknown): AckError {
  return { s: typeof s === 'string' ? s.slice(0, 64) : null, code: 'BAD_SYMBOL', msg: BAD_SYMBOL_MSG };
}

/** Handles one valid request. */
export function handleRequest(session: RequestSession, ctx: SessionContext, req: ClientRequest): void {
  switch (req.op) {
    case 'sub': {
      const kind = ctx.kindOf(req.channel);
      if (req.depth !== null && req.depth > ctx.config.book.maxDepth) {
        session.reject({ code: 'BAD_REQUEST', msg: `sub: "depth" ${req.depth} exceeds this server's maximum of ${ctx.config.book.maxDepth}`, ...(req.id === undefined ? {} : { id: req.id }) }, false);
        break;
      }
      subscribe(session, ctx, kind, req, req.depth ?? 0);
      break;
    }
    case 'unsub':
      unsubscribe(session, ctx.kindOf(req.channel), req.channel, req.symbols, req.id);
      break;
    case 'ping':
      session.push('pong', encode({ t: 'pong', id: req.id, ts: req.ts, serverTs: ctx.clock.now() }));
      break;
    case 'symbols': {
      const max = ctx.config.limits.maxListSymbols;
      const ent = session.principal.entitlements;
      const store = ctx.store;
      const { symbols, more } = store.list(req.prefix, Math.min(req.limit ?? max, max), ent.all ? null : (s) => ent.allows(store.get(s)!.feed, s));
      session.push('symbols', encode({ t: 'symbols', id: req.id, symbols, more }));
      break;
    }
    case 'auth':
      reauthenticate(session, ctx, req.token, req.id);
      break;
  }
}

function subscribe(session: RequestSession, ctx: SessionContext, kind: number, req: Extract<ClientRequest, { op: 'sub' }>, view: number): void {
  const { symbols, snapshot, throttleMs, id, channel } = req;
  const ok: string[] = [];
  const err: AckError[] = [];
  const accepted: Subscription[] = [];
  /** Subscriptions the client held before this request. */
  const renewed = new Set<Subscription>();
  const max = ctx.config.limits.maxSymbolsPerClient;
  const th = ctx.config.throttle;
  // Bounded by configuration rather than refused: the ack says what applies.
  const throttle = throttleMs === 0 ? 0 : Math.min(th.maxMs, Math.max(th.minMs, throttleMs));
  const states = ctx.kinds[kind]!;
  let overLimit = false;
  for (const s of symbols) {
    if (!isValidSymbol(s)) {
      err.push(badSymbol(s));
      continue;
    }
    const known = states.state(s);
    const ent = session.principal.entitlements;
    if (!ent.all && (known !== undefined ? !ent.allows(known.feed, s) : !ent.mayAllow(s))) {
      err.push({ s, code: 'NOT_ENTITLED', msg: 'not entitled to this symbol' });
      ctx.counters.rejected.NOT_ENTITLED++;
      continue;
    }
    const existing = session.subscription(kind, s);
    // A client that resubscribes to a book (to resync after a checksum mismatch) gets a fresh window.
    if (existing !== undefined && channel === 'book') ctx.counters.bookResubscribes++;
    if (existing !== undefined) renewed.add(existing);
    const sub = existing ?? session.addSubscription(kind, s);
    if (sub === null) {
      err.push({ s, code: 'LIMIT_EXCEEDED', msg: `at most ${max} symbols per connection` });
      overLimit = true;
      continue;
    }
    sub.throttleMs = throttle;
    sub.view = view;
    ok.push(s);
    accepted.push(sub);
  }
  if (overLimit) session.violation();
  if (ok.length > 0) session.markSubscribed();
  if (channel === 'trade') {
    startTrades(session, ctx, req, ok, err, accepted, renewed, throttle);
    return;
  }
  // Quote acks stay as they were; other channels are echoed, with their view.
  const echo = channel === 'quote' ? {} : { channel, depth: channel === 'book' ? view : undefined };
  session.push('ack', encode({ t: 'ack', id, op: 'sub', ok, err, throttleMs: throttle === 0 ? undefined : throttle, ...echo }));
  for (const sub of accepted) ctx.delivery.started(sub, snapshot);
}

/**
 * Trade subscriptions: the ack carries each symbol's position (and, for a
 * resume, whether the trades since the client's position were recovered);
 * then the requested past follows in order, then live trades.
 */
function startTrades(
  session: RequestSession,
  ctx: SessionContext,
  req: Extract<ClientRequest, { op: 'sub' }>,
  ok: string[],
  err: AckError[],
  accepted: Subscription[],
  renewed: ReadonlySet<Subscription>,
  throttle: number,
): void {
  const trades = ctx.trades;
  const pos: Record<string, { e: string; q: number }> = {};
  const rec: Record<string, boolean> = {};
  /** Per accepted subscription: where it starts, or null to keep its cursor. */
  const cursors: (number | null)[] = [];
  const last = Math.min(req.last ?? 0, ctx.config.trade.history.size);
  for (const sub of accepted) {
    const s = sub.symbol;
    const p = trades.position(s);
    Object.defineProperty(pos, s, { value: p, enumerable: true, writable: true, configurable: true });
    const from = req.since?.get(s);
    let cursor: number | null;
    if (from === undefined && req.last === null && renewed.has(sub)) {
      // Renewed without a position (say, to change its throttle): it keeps its cursor and what it holds.
      cursor = null;
    } else if (from !== undefined) {
      const ok = trades.recoverable(s, from.e, from.q);
      Object.defineProperty(rec, s, { value: ok, enumerable: true, writable: true, configurable: true });
      if (ok) trades.recovered++;
      else trades.notRecovered++;
      cursor = ok ? from.q : p.q;
    } else {
      cursor = trades.cursorForLast(s, last);
    }
    cursors.push(cursor);
  }
  session.push(
    'ack',
    encode({ t: 'ack', id: req.id, op: 'sub', ok, err, throttleMs: throttle === 0 ? undefined : throttle, channel: 'trade', pos, rec: req.since === null ? undefined : rec }),
  );
  accepted.forEach((sub, i) => {
    const cursor = cursors[i]!;
    if (cursor !== null) ctx.delivery.startAt(sub, cursor);
    // A stale tape says so at once, as a quote's snap is followed by its stat.
    const st = trades.state(sub.symbol);
    if (st !== undefined && st.stale) session.push('stat', trades.status(sub.symbol, 'stale'));
  });
}

function unsubscribe(session: RequestSession, kind: number, channel: Channel, symbols: unknown[], id: ClientRequest['id']): void {
  const ok: string[] = [];
  const err: AckError[] = [];
  for (const s of symbols) {
    if (!isValidSymbol(s)) {
      err.push(badSymbol(s));
      continue;
    }
    const sub = session.subscription(kind, s);
    if (sub !== undefined) session.endSubscription(sub);
    ok.push(s);
  }
  session.push('ack', encode({ t: 'ack', id, op: 'unsub', ok, err, channel: channel === 'quote' ? undefined : channel }));
}

/** `op: auth`: a fresh token for the same user extends the session and replaces its entitlements. */
function reauthenticate(session: RequestSession, ctx: SessionContext, token: string, id: ClientRequest['id']): void {
  const auth = ctx.authenticator;
  if (auth === null || auth.mode === 'none') {
    session.push('ack', encode({ t: 'ack', id, op: 'auth', ok: [], err: [] }));
    return;
  }
  void auth.authenticate(token).then((r) => {
    if (!session.isOpen) return;
    if (!r.ok || r.principal.user !== session.principal.user) {
      const code = r.ok ? 'AUTH_INVALID' : r.code === 'AUTH_EXPIRED' ? 'AUTH_EXPIRED' : 'AUTH_INVALID';
      session.reject({ code, msg: r.ok ? 'the token is for another user' : r.msg, ...(id === undefined ? {} : { id }) }, true);
      ctx.scheduler.run();
      return;
    }
    session.principal = r.principal;
    // Entitlements may have shrunk: end what is no longer allowed.
    const ent = r.principal.entitlements;
    const dropped: string[] = [];
    if (!ent.all) {
      for (const sub of [...session.subscriptions()]) {
        const st = ctx.kinds[sub.kind]!.state(sub.symbol);
        if (st !== undefined ? !ent.allows(st.feed, sub.symbol) : !ent.mayAllow(sub.symbol)) {
          session.endSubscription(sub);
          dropped.push(sub.symbol);
        }
      }
    }
    session.push(
      'ack',
      encode({ t: 'ack', id, op: 'auth', ok: [], err: dropped.map((s) => ({ s, code: 'NOT_ENTITLED', msg: 'no longer entitled; unsubscribed' })), exp: r.principal.expiresAt ?? undefined }),
    );
  });
}
