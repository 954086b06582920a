/**
 * Book subscribers: VUS connections, each subscribed to BOOKS_PER_VU order
 * books at one of DEPTHS, keeping every book by the protocol's rules and
 * checking the checksum `cs` of every `book` and `bupd`. A mismatch, or a
 * `bupd` whose `q` is not the previous + 1, is counted and the book is
 * resubscribed (at most once a second per book), as a real client would;
 * either fails the run.
 *
 *   k6 run -e URL=ws://127.0.0.1:8080/v1/stream -e NATS_WS_URL=ws://127.0.0.1:9222 -e VUS=100 load/k6/book-subscribers.ts
 *
 * With NATS_WS_URL the run also publishes the books (one `feed` VU, RATE
 * changes per second over BOOKS synthetic books, to nats-server's
 * WebSocket listener; see lib/book-feed.ts) and stamps each change, which
 * makes the end-to-end latency measurable: `book` and `bupd` carry no
 * source time. Without it, the books come from your own feed (SYMBOLS) and
 * there is no latency, only the checks and the time to the first book.
 * Start the gateway with load/k6/gateway-books.json (a JSON book feed on
 * `book.>`, connection caps lifted).
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import type { Options, Scenario } from 'k6/options';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import { BOOK_DEPTHS, OrderBooks, bookSubRequest, type BookWindow } from './lib/book.ts';
import { NatsLines, SyntheticBook, frameText, isSubjectToken, natsConnect, natsPub, stampLatencyMs, type NatsAuth } from './lib/book-feed.ts';
import { EnvError, envDuration, envList, envNumber, envOptional, envString } from './lib/env.ts';
import { touchZeroThresholdMetrics } from './lib/metrics.ts';
import { pickSymbols, prng, streamUrl, withoutQuery } from './lib/protocol.ts';
import { holdOff, openStream, waitBeforeConnecting, warn } from './lib/stream.ts';

const STREAM_URL = streamUrl(envString(__ENV, 'URL', 'ws://127.0.0.1:8080/v1/stream'), envOptional(__ENV, 'TOKEN'));
const VUS = envNumber(__ENV, 'VUS', 50, 1, 100_000);
const BOOKS_PER_VU = envNumber(__ENV, 'BOOKS_PER_VU', 5, 1, 10_000);
const DURATION = envDuration(__ENV, 'DURATION', '1m');
/** Per-book throttle asked of the gateway; 0: every change. */
const THROTTLE_MS = envNumber(__ENV, 'THROTTLE_MS', 0, 0, 60_000);
const LATENCY_P99_MS = envNumber(__ENV, 'LATENCY_P99_MS', 50, 1, 60_000, false);
const TIME_TO_BOOK_P95_MS = envNumber(__ENV, 'TIME_TO_BOOK_P95_MS', 1000, 1, 60_000, false);
/** The scenario's own feed: nats-server's WebSocket listener; unset, the books come from elsewhere. */
const NATS_WS_URL = envOptional(__ENV, 'NATS_WS_URL');
/** Synthetic books the feed publishes (when SYMBOLS does not name them). */
const BOOKS = envNumber(__ENV, 'BOOKS', 20, 1, 10_000);
/** Changes per second the feed publishes, over all its books. */
const RATE = envNumber(__ENV, 'RATE', 500, 1, 1_000_000, false);
/** Price slots per side of each synthetic book (each side holds about 60 % of them). */
const LEVELS = envNumber(__ENV, 'LEVELS', 40, 1, 10_000);
const SUBJECT_PREFIX = envString(__ENV, 'SUBJECT_PREFIX', 'book.');
const NATS_AUTH: NatsAuth = {};
for (const [key, name] of [['token', 'NATS_TOKEN'], ['user', 'NATS_USER'], ['pass', 'NATS_PASS']] as const) {
  const v = envOptional(__ENV, name);
  if (v !== undefined) NATS_AUTH[key] = v;
}

const DEPTHS = (envList(__ENV, 'DEPTHS') ?? ['10', '25']).map((d) => {
  const n = Number(d);
  if (!BOOK_DEPTHS.includes(n)) throw new EnvError(`DEPTHS=${__ENV['DEPTHS']}: each depth must be one of ${BOOK_DEPTHS.join(', ')}, got ${d}`);
  return n;
});
const STAMPED = NATS_WS_URL !== undefined;
const SYMBOLS = envList(__ENV, 'SYMBOLS') ?? (STAMPED ? Array.from({ length: BOOKS }, (_, i) => `K6BOOK-${i + 1}`) : undefined);
if (SYMBOLS === undefined) throw new EnvError('SYMBOLS: set the books your feed publishes, or NATS_WS_URL to let this scenario publish its own');
if (STAMPED) for (const s of SYMBOLS) if (!isSubjectToken(s)) throw new EnvError(`SYMBOLS: ${JSON.stringify(s)} cannot be one NATS subject token`);
/** A resubscribed book is not resubscribed again sooner than this. */
const RESYNC_MIN_INTERVAL_MS = 1000;
/** The feed's publishing period: RATE is spread over ticks this long. */
const TICK_MS = 10;
/** How long the subscribers start after the feed, so that its first snapshots are in. */
const SUBSCRIBERS_DELAY_MS = STAMPED ? 2000 : 0;

/** `bupd` receipt minus the stamp of its change, ms (the scenario's own feed only). */
const bookLatency = new Trend('tickgate_book_latency', true);
/** `book` (not answering a `sub`) receipt minus the stamp of the newest change it holds, ms: how old a throttled or released book is. */
const bookAge = new Trend('tickgate_book_age', true);
/** `sub` sent to the book's first `book`, ms. */
const timeToBook = new Trend('tickgate_time_to_book', true);
/** Resubscribe sent to the fresh `book`, ms. */
const resyncTime = new Trend('tickgate_book_resync_time', true);
/** `book` and `bupd` received, tagged `type`. */
const bookMessages = new Counter('tickgate_book_messages');
/** Windows whose checksum did not match after applying the message. Must stay 0. */
const checksumMismatches = new Counter('tickgate_book_checksum_mismatches');
/** `bupd` whose `q` was not the previous + 1. Must stay 0. */
const qBreaks = new Counter('tickgate_book_q_breaks');
/** Books resubscribed after a mismatch or a break. */
const resubscribes = new Counter('tickgate_book_resubscribes');
/** `stat` `stale` for a book (its feed went quiet, or the gateway saw a sequence gap). */
const staleBooks = new Counter('tickgate_book_stale');
/** Changes the scenario's feed published. */
const feedPublished = new Counter('tickgate_book_feed_published');
/** How late the feed's timer ran behind its schedule, ms: latency includes it. */
const feedLag = new Trend('tickgate_book_feed_lag', true);
/** `-ERR` from nats-server, or a feed connection that failed. Must stay 0. */
const feedErrors = new Counter('tickgate_book_feed_errors');
/** Book subscriptions fully accepted at the depth asked. */
const subAccepted = new Rate('tickgate_book_sub_accepted');

const subscribersScenario: Scenario = {
  executor: 'constant-vus',
  vus: VUS,
  duration: DURATION.text,
  exec: 'subscribers',
  gracefulStop: '10s',
  ...(SUBSCRIBERS_DELAY_MS > 0 ? { startTime: `${SUBSCRIBERS_DELAY_MS}ms` } : {}),
};

export const options: Options = {
  scenarios: {
    books: subscribersScenario,
    ...(STAMPED ? { feed: { executor: 'constant-vus', vus: 1, duration: `${DURATION.ms + SUBSCRIBERS_DELAY_MS}ms`, exec: 'feed', gracefulStop: '5s' } } : {}),
  },
  thresholds: {
    tickgate_book_checksum_mismatches: ['count==0'],
    tickgate_book_q_breaks: ['count==0'],
    tickgate_protocol_errors: ['count==0'],
    tickgate_ws_connect_failed: ['rate<0.01'],
    tickgate_book_sub_accepted: ['rate>0.99'],
    tickgate_time_to_book: [`p(95)<${TIME_TO_BOOK_P95_MS}`],
    // A run that received nothing proves nothing.
    tickgate_book_messages: ['count>0'],
    // Latency needs the stamps of the scenario's own feed: bupds unthrottled, book age throttled (up to one interval more).
    ...(STAMPED && THROTTLE_MS === 0 ? { tickgate_book_latency: [`p(99)<${LATENCY_P99_MS}`] } : {}),
    ...(STAMPED && THROTTLE_MS > 0 ? { tickgate_book_age: [`p(99)<${THROTTLE_MS + LATENCY_P99_MS}`] } : {}),
    ...(STAMPED ? { tickgate_book_feed_errors: ['count==0'] } : {}),
  },
};

export function subscribers(): void {
  waitBeforeConnecting();
  const closeAt = exec.scenario.startTime + DURATION.ms;
  if (closeAt <= Date.now()) return;
  const vu = exec.vu.idInTest;
  // Same VU, same books and depth, on every run; a VU that reconnects keeps them.
  const symbols = pickSymbols(SYMBOLS as string[], BOOKS_PER_VU, vu);
  const depth = DEPTHS[vu % DEPTHS.length] as number;
  const books = new OrderBooks(depth);
  /** Books without their first `book` yet: when the `sub` went out. */
  const firstBook = new Map<string, number>();
  /** Books resubscribed and waiting for the fresh `book`: when the resubscribe went (or will go) out. */
  const resyncing = new Map<string, number>();
  /** When each book was last resubscribed, to space out the resubscribes of a book that keeps failing. */
  const lastResync = new Map<string, number>();
  const timers = new Set<number>();
  let closeTimer: number | undefined;
  touchZeroThresholdMetrics();
  checksumMismatches.add(0);
  qBreaks.add(0);

  const resubscribe = (socket: WebSocket, s: string): void => {
    if (resyncing.has(s)) return; // asked already
    const now = Date.now();
    const last = lastResync.get(s);
    const at = last === undefined ? now : Math.max(now, last + RESYNC_MIN_INTERVAL_MS);
    lastResync.set(s, at);
    resyncing.set(s, at);
    resubscribes.add(1);
    const req = bookSubRequest('resync', [s], depth, THROTTLE_MS);
    if (at === now) {
      socket.send(req);
      return;
    }
    const t = setTimeout(() => {
      timers.delete(t);
      socket.send(req);
    }, at - now);
    timers.add(t);
  };

  openStream(STREAM_URL, {
    open(socket) {
      socket.send(bookSubRequest('books', symbols, depth, THROTTLE_MS));
      const now = Date.now();
      for (const s of symbols) firstBook.set(s, now);
      closeTimer = setTimeout(() => socket.close(), Math.max(0, closeAt - Date.now()));
    },
    messages(socket, messages, receivedAt) {
      let full = 0;
      let deltas = 0;
      for (const m of messages) {
        switch (m.t) {
          case 'book':
          case 'bupd': {
            if (m.t === 'book') full++;
            else deltas++;
            const outcome = books.apply(m);
            if (outcome === 'ok') {
              const bids = (books.window(m.s) as BookWindow).bids;
              const asked = m.t === 'book' ? (firstBook.get(m.s) ?? resyncing.get(m.s)) : undefined;
              if (asked !== undefined) {
                // The answer to a sub: its age says how long the book was quiet, not how late it is.
                if (firstBook.delete(m.s)) timeToBook.add(receivedAt - asked);
                else resyncTime.add(receivedAt - asked);
                resyncing.delete(m.s);
              } else if (STAMPED) {
                const l = stampLatencyMs(bids, receivedAt);
                if (l !== undefined) (m.t === 'bupd' ? bookLatency : bookAge).add(l);
              }
            } else if (outcome === 'mismatch' || outcome === 'break') {
              (outcome === 'mismatch' ? checksumMismatches : qBreaks).add(1);
              warn(outcome === 'mismatch' ? `${m.s} depth ${depth}: checksum mismatch at q ${m.q}; resubscribing` : `${m.s}: bupd q ${m.q} does not follow the book's q; resubscribing`);
              resubscribe(socket, m.s);
            }
            break;
          }
          case 'ack':
            if (m.id !== 'books') break;
            subAccepted.add(m.err.length === 0 && m.ok.length === symbols.length && m.depth === depth);
            check(m, { 'book sub: every book accepted at its depth': (a) => a.err.length === 0 && a.channel === 'book' && a.depth === depth });
            if (m.err.length > 0) warn(`book sub rejected ${m.err.length} symbols, first: ${m.err[0]?.s} ${m.err[0]?.code}`);
            break;
          case 'err':
            subAccepted.add(false);
            warn(`err ${m.code}: ${m.msg}`);
            break;
          case 'stat':
            if (m.ch === 'book' && m.st === 'stale') staleBooks.add(1);
            break;
          case 'bye':
            warn(`bye ${m.code}: ${m.reason}`);
            break;
          default:
            break;
        }
      }
      if (full > 0) bookMessages.add(full, { type: 'book' });
      if (deltas > 0) bookMessages.add(deltas, { type: 'bupd' });
    },
    closed(opened) {
      if (closeTimer !== undefined) clearTimeout(closeTimer);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      if (!opened) holdOff(1000);
    },
  });
}

/** The feed's books, kept across the feed VU's iterations (a reconnect starts with fresh snapshots). */
const feedBooks = new Map<string, SyntheticBook>();

export function feed(): void {
  waitBeforeConnecting();
  const url = NATS_WS_URL as string;
  const closeAt = exec.scenario.startTime + DURATION.ms + SUBSCRIBERS_DELAY_MS;
  if (closeAt <= Date.now()) return;
  const symbols = SYMBOLS as string[];
  for (const s of symbols) if (!feedBooks.has(s)) feedBooks.set(s, new SyntheticBook(LEVELS, prng(feedBooks.size + 1)));
  const lines = new NatsLines();
  const socket = new WebSocket(url);
  socket.binaryType = 'arraybuffer';
  let opened = false;
  let ticker: number | undefined;
  let carry = 0;
  let next = 0;
  let turn = 0;

  socket.onopen = () => {
    opened = true;
    socket.send(natsConnect(`tickgate-k6-book-feed-${exec.vu.idInTest}`, NATS_AUTH));
    const now = Date.now();
    let out = '';
    for (const s of symbols) out += natsPub(SUBJECT_PREFIX + s, JSON.stringify((feedBooks.get(s) as SyntheticBook).snapshot(now)));
    socket.send(out);
    next = now + TICK_MS;
    ticker = setInterval(() => {
      const now = Date.now();
      if (now >= closeAt) {
        socket.close();
        return;
      }
      if (next > now) return;
      feedLag.add(now - next);
      // Every tick that is due, each stamped with its scheduled time: a late timer shows as latency, not as a gap.
      let out = '';
      let n = 0;
      for (; next <= now; next += TICK_MS) {
        carry += (RATE * TICK_MS) / 1000;
        for (; carry >= 1; carry--) {
          const s = symbols[turn++ % symbols.length] as string;
          out += natsPub(SUBJECT_PREFIX + s, JSON.stringify((feedBooks.get(s) as SyntheticBook).change(next)));
          n++;
        }
      }
      if (n > 0) {
        socket.send(out);
        feedPublished.add(n);
      }
    }, TICK_MS);
  };
  socket.onmessage = (ev) => {
    if (ev === undefined) return;
    const text = typeof ev.data === 'string' ? ev.data : frameText(ev.data as ArrayBuffer);
    for (const e of lines.push(text)) {
      if (e.kind === 'ping') socket.send('PONG\r\n');
      else if (e.kind === 'error') {
        feedErrors.add(1);
        warn(`nats-server at ${withoutQuery(url)}: -ERR ${e.text}`);
      }
    }
  };
  socket.onerror = (ev) => {
    if (!opened) warn(`cannot connect the feed to ${withoutQuery(url)}: ${ev?.error ?? 'unknown error'}`);
  };
  socket.addEventListener('close', () => {
    if (ticker !== undefined) clearInterval(ticker);
    ticker = undefined;
    if (!opened || Date.now() < closeAt) {
      feedErrors.add(1);
      holdOff(1000);
    }
  });
}
