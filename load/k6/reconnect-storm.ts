/**
 * Reconnect storm: VUS connections opened at once, each staying a random
 * short time (STAY_MIN to STAY_MAX after its `ack`), closing, and coming
 * back after a jittered backoff, for DURATION. Measures the upgrade time,
 * the time to `hello` and to the `ack` of its `sub`, and checks that every
 * session gets both.
 *
 *   k6 run -e URL=ws://127.0.0.1:8080/v1/stream -e VUS=500 -e DURATION=2m load/k6/reconnect-storm.ts
 *
 * Backoff is full jitter, as the client SDK does: after a good session a
 * random wait up to BACKOFF_BASE; after failed ones up to BACKOFF_BASE
 * doubled per failure, at most BACKOFF_MAX; after a `bye`, at least its
 * `retryMs`.
 *
 * Recovery: a share of the VUs (TRADE_FRACTION) also subscribe to trade
 * prints on TRADE_SYMBOLS_PER_VU symbols, keep each symbol's position
 * across their connections, and resubscribe with `since` after every
 * reconnect (lib/trades.ts). The run fails unless every resume is
 * recovered (`rec: true`) and no trade is missing or comes twice, checked
 * by position (TRADE_SEQUENCE=q: a gateway that numbers trades itself) or
 * by the feed's own ids (TRADE_SEQUENCE=id). With NATS_WS_URL the run
 * publishes those trades itself (one `feed` VU, TRADE_RATE trades per
 * second over TRADE_FEED_SYMBOLS symbols, ids 1, 2, 3, ... per symbol, to
 * nats-server's WebSocket listener; lib/trade-feed.ts): start the gateway
 * with load/k6/gateway-trades.json.
 */
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import type { Options, Scenario } from 'k6/options';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/websockets';
import { NatsLines, frameText, isSubjectToken, natsConnect, natsPub, type NatsAuth } from './lib/book-feed.ts';
import { EnvError, envDuration, envList, envNumber, envOptional, envString } from './lib/env.ts';
import { protocolErrors, recordMarketData, subscribeLatency, touchZeroThresholdMetrics } from './lib/metrics.ts';
import { SymbolBook, pickSymbols, prng, streamUrl, subRequest, withoutQuery } from './lib/protocol.ts';
import { holdOff, loadUniverse, openStream, waitBeforeConnecting, warn, type SetupData } from './lib/stream.ts';
import { SyntheticTape, tradeCount } from './lib/trade-feed.ts';
import { TRADE_SEQUENCES, TradeTape, type TradeSequence } from './lib/trades.ts';

const STREAM_URL = streamUrl(envString(__ENV, 'URL', 'ws://127.0.0.1:8080/v1/stream'), envOptional(__ENV, 'TOKEN'));
const VUS = envNumber(__ENV, 'VUS', 200, 1, 100_000);
const DURATION = envDuration(__ENV, 'DURATION', '1m');
const SYMBOLS_PER_VU = envNumber(__ENV, 'SYMBOLS_PER_VU', 5, 1, 10_000);
const STAY_MIN = envDuration(__ENV, 'STAY_MIN', '500ms');
const STAY_MAX = envDuration(__ENV, 'STAY_MAX', '5s');
const BACKOFF_BASE = envDuration(__ENV, 'BACKOFF_BASE', '250ms');
const BACKOFF_MAX = envDuration(__ENV, 'BACKOFF_MAX', '10s');
/** A session without `hello` and `ack` this long after the socket was created is cut and counted as failed. */
const SESSION_TIMEOUT = envDuration(__ENV, 'SESSION_TIMEOUT', '10s');
const CONNECT_P95_MS = envNumber(__ENV, 'CONNECT_P95_MS', 250, 1, 60_000, false);
const ACK_P95_MS = envNumber(__ENV, 'ACK_P95_MS', 500, 1, 60_000, false);

/** Share of the VUs that subscribe to trades too and check their recovery; 0: none. */
const TRADE_FRACTION = envNumber(__ENV, 'TRADE_FRACTION', 0.5, 0, 1, false);
const TRADE_SYMBOLS_PER_VU = envNumber(__ENV, 'TRADE_SYMBOLS_PER_VU', 3, 1, 1000);
/** Least share of resumes that must be recovered (`rec: true`). */
const RECOVERED_MIN = envNumber(__ENV, 'RECOVERED_MIN', 1, 0, 1, false);
/** The scenario's own trade feed: nats-server's WebSocket listener; unset, trades come from the gateway's feeds. */
const NATS_WS_URL = envOptional(__ENV, 'NATS_WS_URL');
const OWN_FEED = NATS_WS_URL !== undefined;
/** Trades per second the own feed publishes, over all its symbols. */
const TRADE_RATE = envNumber(__ENV, 'TRADE_RATE', 200, 1, 1_000_000, false);
/** Symbols of the own feed, K6TRADE-1 ... (unless TRADE_SYMBOLS names them). */
const TRADE_FEED_SYMBOLS = envNumber(__ENV, 'TRADE_FEED_SYMBOLS', 10, 1, 10_000);
const TRADE_SUBJECT_PREFIX = envString(__ENV, 'TRADE_SUBJECT_PREFIX', 'k6trade.');
const NATS_AUTH: NatsAuth = {};
for (const [key, name] of [['token', 'NATS_TOKEN'], ['user', 'NATS_USER'], ['pass', 'NATS_PASS']] as const) {
  const v = envOptional(__ENV, name);
  if (v !== undefined) NATS_AUTH[key] = v;
}
const TRADE_SYMBOLS = envList(__ENV, 'TRADE_SYMBOLS') ?? (OWN_FEED ? Array.from({ length: TRADE_FEED_SYMBOLS }, (_, i) => `K6TRADE-${i + 1}`) : undefined);
if (OWN_FEED) for (const s of TRADE_SYMBOLS as string[]) if (!isSubjectToken(s)) throw new EnvError(`TRADE_SYMBOLS: ${JSON.stringify(s)} cannot be one NATS subject token`);
const rawSequence = envString(__ENV, 'TRADE_SEQUENCE', OWN_FEED ? 'id' : 'q');
if (!(TRADE_SEQUENCES as readonly string[]).includes(rawSequence)) throw new EnvError(`TRADE_SEQUENCE=${rawSequence}: expected one of ${TRADE_SEQUENCES.join(', ')}`);
const TRADE_SEQUENCE = rawSequence as TradeSequence;
const TRADES = TRADE_FRACTION > 0;
/** The own feed's publishing period: TRADE_RATE is spread over ticks this long. */
const TICK_MS = 10;
/** How long the storm starts after the own feed, so that every symbol has trades (and a position above 0). */
const STORM_DELAY_MS = OWN_FEED ? 2000 : 0;

if (STAY_MIN.ms > STAY_MAX.ms) throw new EnvError(`STAY_MIN=${STAY_MIN.text} is longer than STAY_MAX=${STAY_MAX.text}`);

/** Socket created to `hello` received, ms. */
const timeToHello = new Trend('tickgate_time_to_hello', true);
/** Socket created to the `ack` of the first `sub`, ms: how long until a reconnecting client has its data flowing again. */
const timeToAck = new Trend('tickgate_time_to_ack', true);
/** Per connection attempt: true when it got `hello` and the `ack`s (quote, and trade on a trade VU) in time. */
const sessionOk = new Rate('tickgate_session_ok');
/** Per symbol resumed with `since`: true when the `ack` said `rec: true`. */
const tradeRecovered = new Rate('tickgate_trade_recovered');
/** Trades received. */
const tradesReceived = new Counter('tickgate_trades');
/** Trades at or below the position held, or with an id already seen. Must stay 0. */
const tradeDuplicates = new Counter('tickgate_trade_duplicates');
/** Trades skipped without a `gap` or `rec: false` saying so (by position or id, see TRADE_SEQUENCE). Must stay 0. */
const tradeMissing = new Counter('tickgate_trade_missing');
/** `gap` messages: trades lost because they left the gateway's history. Must stay 0 (a history too small for the rate). */
const tradeGaps = new Counter('tickgate_trade_gaps');
/** Trades without an integer id under TRADE_SEQUENCE=id: not checked. Must stay 0 then. */
const tradeUnchecked = new Counter('tickgate_trade_unchecked');
/** Trades the own feed published. */
const tradeFeedPublished = new Counter('tickgate_trade_feed_published');
/** `-ERR` from nats-server, or a feed connection that failed (its trades in flight are then lost). Must stay 0. */
const tradeFeedErrors = new Counter('tickgate_trade_feed_errors');

const stormScenario: Scenario = {
  executor: 'constant-vus',
  vus: VUS,
  duration: DURATION.text,
  exec: 'storm',
  gracefulStop: '15s',
  ...(STORM_DELAY_MS > 0 ? { startTime: `${STORM_DELAY_MS}ms` } : {}),
};

export const options: Options = {
  scenarios: {
    storm: stormScenario,
    ...(OWN_FEED ? { feed: { executor: 'constant-vus', vus: 1, duration: `${DURATION.ms + STORM_DELAY_MS}ms`, exec: 'feed', gracefulStop: '5s' } } : {}),
  },
  thresholds: {
    ws_connecting: [`p(95)<${CONNECT_P95_MS}`],
    tickgate_time_to_ack: [`p(95)<${ACK_P95_MS}`],
    tickgate_session_ok: ['rate>0.99'],
    tickgate_ws_connect_failed: ['rate<0.01'],
    tickgate_q_violations: ['count==0'],
    tickgate_protocol_errors: ['count==0'],
    checks: ['rate>0.99'],
    ...(TRADES
      ? {
          tickgate_trade_recovered: [`rate>=${RECOVERED_MIN}`],
          tickgate_trade_duplicates: ['count==0'],
          tickgate_trade_missing: ['count==0'],
          tickgate_trade_gaps: ['count==0'],
          // A run that received no trades proves nothing about recovery.
          tickgate_trades: ['count>0'],
          ...(TRADE_SEQUENCE === 'id' ? { tickgate_trade_unchecked: ['count==0'] } : {}),
        }
      : {}),
    ...(OWN_FEED ? { tickgate_trade_feed_errors: ['count==0'] } : {}),
  },
};

export function setup(): SetupData {
  // The own feed's symbols have no quotes before it starts: subscribe to the quotes its trades make.
  return loadUniverse(STREAM_URL, envList(__ENV, 'SYMBOLS') ?? (OWN_FEED ? TRADE_SYMBOLS : undefined));
}

/** Failed sessions in a row, for the backoff. */
let failures = 0;
let firstIteration = true;
/** This VU's trade positions, kept across its connections; null on a VU without trades. */
let tape: TradeTape | null = null;
let tradeSymbols: string[] = [];

/** Full jitter: uniform in [0, min(max, base x 2^failures)]. */
function backoffMs(): number {
  return Math.random() * Math.min(BACKOFF_MAX.ms, BACKOFF_BASE.ms * 2 ** failures);
}

export function storm(data: SetupData): void {
  // The first connections of all VUs go out together: that is the storm.
  if (!firstIteration) sleep(backoffMs() / 1000);
  if (firstIteration) {
    // An even spread over VU numbers: VU n trades when ceil(n x fraction) steps up at n
    // (VU 1 always, all with 1). The same trade symbols on every connection of this
    // VU: that is what it resumes.
    const n = exec.vu.idInTest;
    if (TRADES && Math.ceil(n * TRADE_FRACTION) !== Math.ceil((n - 1) * TRADE_FRACTION)) {
      tape = new TradeTape(TRADE_SEQUENCE);
      tradeSymbols = pickSymbols(TRADE_SYMBOLS ?? data.universe, TRADE_SYMBOLS_PER_VU, n * 104_729);
    }
  }
  firstIteration = false;
  waitBeforeConnecting();
  if (exec.scenario.startTime + DURATION.ms <= Date.now()) return;

  const symbols = pickSymbols(data.universe, SYMBOLS_PER_VU, exec.vu.idInTest * 7919 + exec.vu.iterationInScenario);
  const book = new SymbolBook();
  const stayMs = STAY_MIN.ms + Math.random() * (STAY_MAX.ms - STAY_MIN.ms);
  const createdAt = Date.now();
  let hello = false;
  let acked = false;
  let tradeAcked = tape === null;
  let subSentAt = 0;
  let timer: number | undefined;
  touchZeroThresholdMetrics();
  if (tape !== null) {
    tradeDuplicates.add(0);
    tradeMissing.add(0);
    tradeGaps.add(0);
    tradeUnchecked.add(0);
  }

  /** Every ack is in: the session stays its random time, then closes (the forced reconnect). */
  const stay = (socket: WebSocket): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      socket.close();
    }, stayMs);
  };

  openStream(STREAM_URL, {
    open(socket) {
      timer = setTimeout(() => {
        timer = undefined;
        warn(`no ${hello ? 'ack' : 'hello'} within ${SESSION_TIMEOUT.text}`);
        socket.close();
      }, Math.max(0, createdAt + SESSION_TIMEOUT.ms - Date.now()));
    },
    messages(socket, messages, receivedAt) {
      recordMarketData(book, messages, receivedAt);
      let trades = 0;
      for (const m of messages) {
        if (m.t === 'trade' && tape !== null) {
          trades++;
          const r = tape.apply(m);
          if (r.kind === 'ok') continue;
          if (r.kind === 'duplicate') {
            tradeDuplicates.add(1);
            warn(`${m.s}: trade q ${m.q}${m.id === undefined ? '' : ` id ${m.id}`} came twice (at or below the position held)`);
          } else if (r.kind === 'missing') {
            tradeMissing.add(r.n);
            warn(`${m.s}: ${r.n} trades missing before q ${m.q}${m.id === undefined ? '' : ` id ${m.id}`}, with no gap or rec: false saying so`);
          } else if (r.kind === 'unchecked') {
            tradeUnchecked.add(1);
            warn(`${m.s}: trade q ${m.q} has no integer id: TRADE_SEQUENCE=id needs a feed that numbers its trades (the own feed does)`);
          } else {
            protocolErrors.add(1);
            warn(`${m.s}: trade before its ack`);
          }
        } else if (m.t === 'gap' && tape !== null) {
          const lost = tape.gap(m);
          tradeGaps.add(1);
          warn(`${m.s}: gap: positions ${m.from} < q <= ${m.to} (${lost}) lost from the gateway's history while this client was away`);
        } else if (m.t === 'hello' && !hello) {
          hello = true;
          timeToHello.add(receivedAt - createdAt);
          socket.send(subRequest('storm', symbols));
          if (tape !== null) socket.send(tape.request('trades', tradeSymbols));
          subSentAt = Date.now();
        } else if (m.t === 'ack' && m.id === 'storm' && !acked && timer !== undefined) {
          acked = true;
          subscribeLatency.add(receivedAt - subSentAt);
          timeToAck.add(receivedAt - createdAt);
          check(m, { 'sub: every symbol accepted': (a) => a.err.length === 0 && a.ok.length === symbols.length });
          if (tradeAcked) stay(socket);
        } else if (m.t === 'ack' && m.id === 'trades' && tape !== null) {
          // Applied even after the session timed out: the trades that may still follow are relative to it.
          const r = tape.acked(m);
          for (let i = 0; i < r.recovered.length; i++) tradeRecovered.add(true);
          for (const s of r.notRecovered) {
            tradeRecovered.add(false);
            warn(`${s}: resume not recovered (rec: false): the trades after the position held are lost to this client; live from q ${tape.position(s)?.q ?? '?'}`);
          }
          if (tradeAcked || timer === undefined) continue;
          tradeAcked = true;
          check(m, { 'trade sub: every symbol accepted with a position': (a) => a.err.length === 0 && a.ok.length === tradeSymbols.length && a.ok.every((s) => a.pos?.[s] !== undefined) });
          if (acked) stay(socket);
        } else if (m.t === 'bye') {
          warn(`bye ${m.code}: ${m.reason}`);
        }
      }
      if (trades > 0) tradesReceived.add(trades);
    },
    closed() {
      if (timer !== undefined) clearTimeout(timer);
      const ok = hello && acked && tradeAcked;
      sessionOk.add(ok);
      failures = ok ? 0 : Math.min(failures + 1, 30);
    },
  });
}

/** The own feed's tapes, kept across the feed VU's iterations: ids go on from where they were. */
const feedTape = new SyntheticTape(prng(1));

export function feed(): void {
  waitBeforeConnecting();
  const url = NATS_WS_URL as string;
  const closeAt = exec.scenario.startTime + DURATION.ms + STORM_DELAY_MS;
  if (closeAt <= Date.now()) return;
  const symbols = TRADE_SYMBOLS as string[];
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
    socket.send(natsConnect(`tickgate-k6-trade-feed-${exec.vu.idInTest}`, NATS_AUTH));
    next = Date.now();
    ticker = setInterval(() => {
      const now = Date.now();
      if (now >= closeAt) {
        socket.close();
        return;
      }
      // Every tick that is due, each trade stamped with its scheduled time; one text frame of PUBs.
      let out = '';
      let n = 0;
      for (; next <= now; next += TICK_MS) {
        carry += (TRADE_RATE * TICK_MS) / 1000;
        while (carry >= 1) {
          const s = symbols[turn++ % symbols.length] as string;
          const m = feedTape.message(s, next);
          out += natsPub(TRADE_SUBJECT_PREFIX + s, JSON.stringify(m));
          const k = tradeCount(m);
          carry -= k;
          n += k;
        }
      }
      if (n > 0) {
        socket.send(out);
        tradeFeedPublished.add(n);
      }
    }, TICK_MS);
  };
  socket.onmessage = (ev) => {
    if (ev === undefined) return;
    const text = typeof ev.data === 'string' ? ev.data : frameText(ev.data as ArrayBuffer);
    for (const e of lines.push(text)) {
      if (e.kind === 'ping') socket.send('PONG\r\n');
      else if (e.kind === 'error') {
        tradeFeedErrors.add(1);
        warn(`nats-server at ${withoutQuery(url)}: -ERR ${e.text}`);
      }
    }
  };
  socket.onerror = (ev) => {
    if (!opened) warn(`cannot connect the trade feed to ${withoutQuery(url)}: ${ev?.error ?? 'unknown error'}`);
  };
  socket.addEventListener('close', () => {
    if (ticker !== undefined) clearInterval(ticker);
    ticker = undefined;
    if (!opened || Date.now() < closeAt) {
      tradeFeedErrors.add(1);
      holdOff(1000);
    }
  });
}
