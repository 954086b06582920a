/**
 * Fan-out: a constant number of VUs, each holding one stream connection for
 * the whole run, subscribed to SYMBOLS_PER_VU symbols, merging snapshots and
 * updates per symbol, checking `q` and measuring end-to-end latency.
 *
 *   k6 run -e URL=ws://127.0.0.1:8080/v1/stream -e VUS=200 -e SYMBOLS_PER_VU=20 -e DURATION=2m load/k6/fanout.ts
 *
 * Latency is k6's receipt time minus the update's source `ts`, so the feed
 * and k6 must share a clock (same host, or synchronised hosts).
 */
import { check } from 'k6';
import exec from 'k6/execution';
import type { Options } from 'k6/options';
import { clearTimeout, setTimeout } from 'k6/timers';
import { envDuration, envList, envNumber, envOptional, envString } from './lib/env.ts';
import { recordMarketData, subscribeLatency, touchZeroThresholdMetrics } from './lib/metrics.ts';
import { SymbolBook, pickSymbols, streamUrl, subRequest } from './lib/protocol.ts';
import { holdOff, loadUniverse, openStream, waitBeforeConnecting, warn, type SetupData } from './lib/stream.ts';

const STREAM_URL = streamUrl(envString(__ENV, 'URL', 'ws://127.0.0.1:8080/v1/stream'), envOptional(__ENV, 'TOKEN'));
const VUS = envNumber(__ENV, 'VUS', 50, 1, 100_000);
const SYMBOLS_PER_VU = envNumber(__ENV, 'SYMBOLS_PER_VU', 20, 1, 10_000);
const DURATION = envDuration(__ENV, 'DURATION', '1m');
/** Per-symbol throttle asked of the gateway; 0: every update. */
const THROTTLE_MS = envNumber(__ENV, 'THROTTLE_MS', 0, 0, 60_000);
const LATENCY_P99_MS = envNumber(__ENV, 'LATENCY_P99_MS', 50, 1, 60_000, false);

export const options: Options = {
  scenarios: {
    fanout: { executor: 'constant-vus', vus: VUS, duration: DURATION.text, gracefulStop: '10s' },
  },
  thresholds: {
    tickgate_e2e_latency: [`p(99)<${LATENCY_P99_MS}`],
    tickgate_q_violations: ['count==0'],
    tickgate_protocol_errors: ['count==0'],
    tickgate_ws_connect_failed: ['rate<0.01'],
    // A run that received nothing proves nothing.
    tickgate_updates: ['count>0'],
    checks: ['rate>0.99'],
  },
};

export function setup(): SetupData {
  return loadUniverse(STREAM_URL, envList(__ENV, 'SYMBOLS'));
}

export default function (data: SetupData): void {
  waitBeforeConnecting();
  // Same VU, same symbols, on every run; a VU that reconnects keeps them.
  const symbols = pickSymbols(data.universe, SYMBOLS_PER_VU, exec.vu.idInTest);
  // Every connection closes when the scenario's duration is up, wherever it started.
  const closeAt = exec.scenario.startTime + DURATION.ms;
  if (closeAt <= Date.now()) return;
  const book = new SymbolBook();
  let subSentAt = 0;
  let closeTimer: number | undefined;
  touchZeroThresholdMetrics();

  openStream(STREAM_URL, {
    open(socket) {
      socket.send(subRequest('fanout', symbols, THROTTLE_MS));
      subSentAt = Date.now();
      closeTimer = setTimeout(() => socket.close(), Math.max(0, closeAt - Date.now()));
    },
    messages(_socket, messages, receivedAt) {
      recordMarketData(book, messages, receivedAt);
      for (const m of messages) {
        if (m.t === 'ack' && m.id === 'fanout') {
          subscribeLatency.add(receivedAt - subSentAt);
          check(m, { 'sub: every symbol accepted': (a) => a.err.length === 0 && a.ok.length === symbols.length });
          if (m.err.length > 0) warn(`sub rejected ${m.err.length} symbols, first: ${m.err[0]?.s} ${m.err[0]?.code}`);
        } else if (m.t === 'bye') {
          warn(`bye ${m.code}: ${m.reason}`);
        }
      }
    },
    closed(opened) {
      if (closeTimer !== undefined) clearTimeout(closeTimer);
      if (!opened) holdOff(1000);
    },
  });
}
