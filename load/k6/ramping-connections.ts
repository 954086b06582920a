/**
 * Ramping connections: VUs ramp from 0 to TARGET over RAMP and stay for
 * HOLD, each holding one mostly idle connection with SUBS_PER_CONN
 * subscriptions (throttled to one update per symbol per THROTTLE_MS).
 * Measures how long a `sub` takes to be acknowledged, and a protocol `ping`
 * round trip every PING_EVERY, as the number of connections grows.
 *
 *   k6 run -e URL=ws://127.0.0.1:8080/v1/stream -e TARGET=5000 -e RAMP=5m -e HOLD=2m load/k6/ramping-connections.ts
 *
 * The gateway admits `limits.maxConnectionsPerIp` connections per client
 * address (default 1000) and `limits.maxConnectionsPerUser` per token user
 * (default 50): raise them for this test (see load/k6/README.md).
 */
import { check } from 'k6';
import exec from 'k6/execution';
import { Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'k6/timers';
import { envDuration, envList, envNumber, envOptional, envString } from './lib/env.ts';
import { byes, recordMarketData, subscribeLatency, touchZeroThresholdMetrics } from './lib/metrics.ts';
import { SymbolBook, pickSymbols, pingRequest, streamUrl, subRequest } from './lib/protocol.ts';
import { holdOff, loadUniverse, openStream, waitBeforeConnecting, warn, type SetupData } from './lib/stream.ts';

const STREAM_URL = streamUrl(envString(__ENV, 'URL', 'ws://127.0.0.1:8080/v1/stream'), envOptional(__ENV, 'TOKEN'));
const TARGET = envNumber(__ENV, 'TARGET', 1000, 1, 1_000_000);
const RAMP = envDuration(__ENV, 'RAMP', '2m');
const HOLD = envDuration(__ENV, 'HOLD', '1m');
const SUBS_PER_CONN = envNumber(__ENV, 'SUBS_PER_CONN', 10, 1, 10_000);
/** Keeps the connections mostly idle: at most one update per symbol per interval. 0: every update. */
const THROTTLE_MS = envNumber(__ENV, 'THROTTLE_MS', 1000, 0, 60_000);
const PING_EVERY = envDuration(__ENV, 'PING_EVERY', '10s');
/** How long a `sub` may wait for its `ack` before it counts as failed. */
const ACK_TIMEOUT_MS = 10_000;
const SUB_P99_MS = envNumber(__ENV, 'SUB_P99_MS', 250, 1, 60_000, false);
const PING_P99_MS = envNumber(__ENV, 'PING_P99_MS', 100, 1, 60_000, false);

/** `ping` sent to its `pong` received, ms: the gateway's responsiveness as connections grow. */
const pingRtt = new Trend('tickgate_ping_rtt', true);

export const options: Options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: RAMP.text, target: TARGET },
        { duration: HOLD.text, target: TARGET },
      ],
      gracefulStop: '10s',
    },
  },
  thresholds: {
    tickgate_subscribe_latency: [`p(99)<${SUB_P99_MS}`],
    tickgate_ping_rtt: [`p(99)<${PING_P99_MS}`],
    tickgate_ws_connect_failed: ['rate<0.01'],
    ws_connecting: ['p(95)<1000'],
    // No connection should be sent away: SLOW_CONSUMER, IDLE or LIMIT_EXCEEDED here means trouble.
    tickgate_byes: ['count==0'],
    tickgate_q_violations: ['count==0'],
    tickgate_protocol_errors: ['count==0'],
    checks: ['rate>0.99'],
  },
};

export function setup(): SetupData {
  return loadUniverse(STREAM_URL, envList(__ENV, 'SYMBOLS'));
}

export default function (data: SetupData): void {
  waitBeforeConnecting();
  const closeAt = exec.scenario.startTime + RAMP.ms + HOLD.ms;
  if (closeAt <= Date.now()) return;
  const symbols = pickSymbols(data.universe, SUBS_PER_CONN, exec.vu.idInTest);
  const book = new SymbolBook();
  let hello = false;
  let subSentAt = 0;
  let pings = 0;
  let closeTimer: number | undefined;
  let ackTimer: number | undefined;
  let pingTimer: number | undefined;
  touchZeroThresholdMetrics();
  byes.add(0);

  openStream(STREAM_URL, {
    open(socket) {
      closeTimer = setTimeout(() => socket.close(), Math.max(0, closeAt - Date.now()));
    },
    messages(socket, messages, receivedAt) {
      recordMarketData(book, messages, receivedAt);
      for (const m of messages) {
        switch (m.t) {
          case 'hello':
            hello = true;
            socket.send(subRequest('ramp', symbols, THROTTLE_MS));
            subSentAt = Date.now();
            ackTimer = setTimeout(() => {
              ackTimer = undefined;
              check(null, { 'sub acked within 10 s': () => false });
              socket.close();
            }, ACK_TIMEOUT_MS);
            break;
          case 'ack':
            if (m.id !== 'ramp' || ackTimer === undefined) break;
            clearTimeout(ackTimer);
            ackTimer = undefined;
            subscribeLatency.add(receivedAt - subSentAt);
            check(m, {
              'sub acked within 10 s': () => true,
              'sub: every symbol accepted': (a) => a.err.length === 0 && a.ok.length === symbols.length,
            });
            pingTimer = setInterval(() => socket.send(pingRequest(++pings, Date.now())), PING_EVERY.ms);
            break;
          case 'pong':
            if (typeof m.ts === 'number') pingRtt.add(receivedAt - m.ts);
            break;
          case 'bye':
            warn(`bye ${m.code}: ${m.reason}`);
            break;
          default:
            break;
        }
      }
    },
    closed(opened) {
      if (closeTimer !== undefined) clearTimeout(closeTimer);
      if (ackTimer !== undefined) clearTimeout(ackTimer);
      if (pingTimer !== undefined) clearInterval(pingTimer);
      if (opened) check(hello, { 'hello received': (h) => h });
      else holdOff(1000);
    },
  });
}
