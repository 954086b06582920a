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
 */
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Rate, Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import { clearTimeout, setTimeout } from 'k6/timers';
import { EnvError, envDuration, envList, envNumber, envOptional, envString } from './lib/env.ts';
import { recordMarketData, subscribeLatency, touchZeroThresholdMetrics } from './lib/metrics.ts';
import { SymbolBook, pickSymbols, streamUrl, subRequest } from './lib/protocol.ts';
import { loadUniverse, openStream, waitBeforeConnecting, warn, type SetupData } from './lib/stream.ts';

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

if (STAY_MIN.ms > STAY_MAX.ms) throw new EnvError(`STAY_MIN=${STAY_MIN.text} is longer than STAY_MAX=${STAY_MAX.text}`);

/** Socket created to `hello` received, ms. */
const timeToHello = new Trend('tickgate_time_to_hello', true);
/** Socket created to the `ack` of the first `sub`, ms: how long until a reconnecting client has its data flowing again. */
const timeToAck = new Trend('tickgate_time_to_ack', true);
/** Per connection attempt: true when it got `hello` and the `ack` in time. */
const sessionOk = new Rate('tickgate_session_ok');

export const options: Options = {
  scenarios: {
    storm: { executor: 'constant-vus', vus: VUS, duration: DURATION.text, gracefulStop: '15s' },
  },
  thresholds: {
    ws_connecting: [`p(95)<${CONNECT_P95_MS}`],
    tickgate_time_to_ack: [`p(95)<${ACK_P95_MS}`],
    tickgate_session_ok: ['rate>0.99'],
    tickgate_ws_connect_failed: ['rate<0.01'],
    tickgate_q_violations: ['count==0'],
    tickgate_protocol_errors: ['count==0'],
    checks: ['rate>0.99'],
  },
};

export function setup(): SetupData {
  return loadUniverse(STREAM_URL, envList(__ENV, 'SYMBOLS'));
}

/** Failed sessions in a row, for the backoff. */
let failures = 0;
let firstIteration = true;

/** Full jitter: uniform in [0, min(max, base x 2^failures)]. */
function backoffMs(): number {
  return Math.random() * Math.min(BACKOFF_MAX.ms, BACKOFF_BASE.ms * 2 ** failures);
}

export default function (data: SetupData): void {
  // The first connections of all VUs go out together: that is the storm.
  if (!firstIteration) sleep(backoffMs() / 1000);
  firstIteration = false;
  waitBeforeConnecting();
  if (exec.scenario.startTime + DURATION.ms <= Date.now()) return;

  const symbols = pickSymbols(data.universe, SYMBOLS_PER_VU, exec.vu.idInTest * 7919 + exec.vu.iterationInScenario);
  const book = new SymbolBook();
  const stayMs = STAY_MIN.ms + Math.random() * (STAY_MAX.ms - STAY_MIN.ms);
  const createdAt = Date.now();
  let hello = false;
  let acked = false;
  let subSentAt = 0;
  let timer: number | undefined;
  touchZeroThresholdMetrics();

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
      for (const m of messages) {
        if (m.t === 'hello' && !hello) {
          hello = true;
          timeToHello.add(receivedAt - createdAt);
          socket.send(subRequest('storm', symbols));
          subSentAt = Date.now();
        } else if (m.t === 'ack' && m.id === 'storm' && !acked && timer !== undefined) {
          acked = true;
          subscribeLatency.add(receivedAt - subSentAt);
          timeToAck.add(receivedAt - createdAt);
          check(m, { 'sub: every symbol accepted': (a) => a.err.length === 0 && a.ok.length === symbols.length });
          clearTimeout(timer);
          timer = setTimeout(() => {
            timer = undefined;
            socket.close();
          }, stayMs);
        } else if (m.t === 'bye') {
          warn(`bye ${m.code}: ${m.reason}`);
        }
      }
    },
    closed() {
      if (timer !== undefined) clearTimeout(timer);
      const ok = hello && acked;
      sessionOk.add(ok);
      failures = ok ? 0 : Math.min(failures + 1, 30);
    },
  });
}
