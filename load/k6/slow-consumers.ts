/**
 * Slow consumers: two scenarios side by side on the same symbols. `fast` VUs
 * read as fast as they can and must keep their latency; `slow` VUs (a
 * SLOW_FRACTION of VUS) stop reading for SLOW_PAUSE out of every
 * SLOW_PERIOD, and must then be brought up to date with merged updates
 * (`n` > 1, or `cf` > 0 on `hb`) or be sent away with `bye SLOW_CONSUMER`,
 * as docs/PROTOCOL.md (Flow control) promises. Every symbol of a fast VU is
 * also subscribed by the slow VUs.
 *
 *   k6 run -e URL=ws://127.0.0.1:8080/v1/stream -e VUS=50 -e SLOW_FRACTION=0.1 -e DURATION=3m load/k6/slow-consumers.ts
 *
 * Why `k6/ws` here: k6 cannot pause a socket, so a slow reader is emulated
 * by stalling in the message handler (SLOW_MODE `sleep`, or `work` to burn
 * CPU as a client busy decoding or rendering would). With `k6/ws` the
 * handler runs on the connection's own loop and the goroutine reading the
 * socket hands each message over unbuffered, so while the handler stalls
 * nothing more is read (one message ahead at most) and TCP pushes back to
 * the gateway, as for a real slow client. `k6/websockets` reads every frame
 * into an unbounded in-process queue whatever the handler does: the gateway
 * would never see a slow reader there, only k6's memory would grow.
 *
 * The limitation that remains: the kernels' socket buffers (the client's
 * receive buffer and the gateway's send buffer, about 4.5 MB together on
 * Linux loopback) fill before the gateway sees any backpressure. A pause
 * makes the gateway conflate only if the stream brings more than that
 * during it: stream bytes/s x SLOW_PAUSE > ~4.5 MB. All 500 symbols of the
 * built-in market are about 160 KB/s, so the default 40 s pause gets about
 * 10 s of conflation (merged updates); a pause longer than that plus the
 * gateway's `backpressure.slowConsumerMs` (15 s) gets `bye SLOW_CONSUMER`.
 * Both arrive only after the data queued before them has been read.
 */
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Rate } from 'k6/metrics';
import type { Options, Scenario } from 'k6/options';
import { EnvError, envDuration, envList, envNumber, envOptional, envString } from './lib/env.ts';
import { recordMarketData, touchZeroThresholdMetrics } from './lib/metrics.ts';
import { SymbolBook, pickSymbols, streamUrl, subRequest } from './lib/protocol.ts';
import { holdOff, loadUniverse, runBlockingStream, waitBeforeConnecting, warn, type SetupData } from './lib/stream.ts';

const STREAM_URL = streamUrl(envString(__ENV, 'URL', 'ws://127.0.0.1:8080/v1/stream'), envOptional(__ENV, 'TOKEN'));
const VUS = envNumber(__ENV, 'VUS', 20, 1, 100_000);
const SLOW_FRACTION = envNumber(__ENV, 'SLOW_FRACTION', 0.2, 0, 1, false);
/** Symbols each slow VU subscribes to: the same set for all of them (a big stream fills the buffers sooner). */
const SYMBOLS_PER_SLOW_VU = envNumber(__ENV, 'SYMBOLS_PER_SLOW_VU', 500, 1, 10_000);
/** Symbols each fast VU subscribes to, taken from the slow VUs' set, so every fast symbol is shared with the slow VUs. */
const SYMBOLS_PER_FAST_VU = envNumber(__ENV, 'SYMBOLS_PER_FAST_VU', 50, 1, 10_000);
const DURATION = envDuration(__ENV, 'DURATION', '3m');
const SLOW_MODE = envString(__ENV, 'SLOW_MODE', 'sleep');
/** How long a slow VU stops reading, once per SLOW_PERIOD (it reads normally the rest of the period). */
const SLOW_PAUSE = envDuration(__ENV, 'SLOW_PAUSE', '40s');
const SLOW_PERIOD = envDuration(__ENV, 'SLOW_PERIOD', '60s');
const LATENCY_P99_MS = envNumber(__ENV, 'LATENCY_P99_MS', 50, 1, 60_000, false);

if (SLOW_MODE !== 'sleep' && SLOW_MODE !== 'work') throw new EnvError(`SLOW_MODE=${SLOW_MODE}: expected sleep or work`);
if (SLOW_PAUSE.ms >= SLOW_PERIOD.ms) throw new EnvError(`SLOW_PAUSE=${SLOW_PAUSE.text} must be shorter than SLOW_PERIOD=${SLOW_PERIOD.text}`);
const SLOW_VUS = Math.round(VUS * SLOW_FRACTION);
const FAST_VUS = VUS - SLOW_VUS;

/**
 * Per slow session: true when the gateway merged updates for it or sent it
 * `bye SLOW_CONSUMER`; false when a session of at least one SLOW_PERIOD saw
 * neither. Shorter sessions without either are not judged.
 */
const slowHandled = new Rate('tickgate_slow_consumer_handled');

const scenarios: Record<string, Scenario> = {};
if (FAST_VUS > 0) scenarios['fast'] = { executor: 'constant-vus', vus: FAST_VUS, duration: DURATION.text, exec: 'fast', gracefulStop: '10s' };
if (SLOW_VUS > 0) scenarios['slow'] = { executor: 'constant-vus', vus: SLOW_VUS, duration: DURATION.text, exec: 'slow', gracefulStop: '30s' };

export const options: Options = {
  scenarios,
  thresholds: {
    // Isolation: the fast readers keep their latency while others fall behind.
    'tickgate_e2e_latency{scenario:fast}': [`p(99)<${LATENCY_P99_MS}`],
    'tickgate_updates{scenario:fast}': ['count>0'],
    ...(SLOW_VUS > 0 ? { tickgate_slow_consumer_handled: ['rate>0.99'] } : {}),
    tickgate_q_violations: ['count==0'],
    tickgate_protocol_errors: ['count==0'],
    tickgate_ws_connect_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

export function setup(): SetupData {
  const { universe } = loadUniverse(STREAM_URL, envList(__ENV, 'SYMBOLS'));
  // The slow VUs' set, fixed by seed; the fast VUs pick from it.
  return { universe: pickSymbols(universe, SYMBOLS_PER_SLOW_VU, 1) };
}

/** Reads every frame at once. */
export function fast(data: SetupData): void {
  session(data, false);
}

/** Stops reading for SLOW_PAUSE once every SLOW_PERIOD. */
export function slow(data: SetupData): void {
  session(data, true);
}

/** Blocks this VU, so its `k6/ws` connection is not read, for `ms`. */
function stall(ms: number): void {
  if (SLOW_MODE === 'sleep') {
    sleep(ms / 1000);
    return;
  }
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy, as a client decoding or rendering would be
  }
}

function session(data: SetupData, isSlow: boolean): void {
  waitBeforeConnecting();
  const closeAt = exec.scenario.startTime + DURATION.ms;
  if (closeAt <= Date.now()) return;
  const symbols = isSlow ? data.universe : pickSymbols(data.universe, SYMBOLS_PER_FAST_VU, exec.vu.idInTest);
  const book = new SymbolBook();
  let openedAt = 0;
  let pauseAt = Number.POSITIVE_INFINITY;
  let merged = false;
  let slowBye = false;
  touchZeroThresholdMetrics();

  runBlockingStream(STREAM_URL, {
    open(socket) {
      openedAt = Date.now();
      pauseAt = openedAt + SLOW_PERIOD.ms - SLOW_PAUSE.ms;
      socket.send(subRequest(exec.scenario.name, symbols));
      socket.setTimeout(() => socket.close(), Math.max(1, closeAt - Date.now()));
    },
    messages(_socket, messages, receivedAt) {
      const tally = recordMarketData(book, messages, receivedAt);
      if (tally.merged > 0) merged = true;
      for (const m of messages) {
        if (m.t === 'ack') {
          check(m, { 'sub: every symbol accepted': (a) => a.err.length === 0 && a.ok.length === symbols.length });
        } else if (m.t === 'hb') {
          if (m.cf !== undefined && m.cf > 0) merged = true;
        } else if (m.t === 'bye') {
          if (m.code === 'SLOW_CONSUMER') slowBye = true;
          else warn(`bye ${m.code}: ${m.reason}`);
        }
      }
      if (isSlow && Date.now() >= pauseAt) {
        stall(Math.max(0, Math.min(SLOW_PAUSE.ms, closeAt - Date.now())));
        pauseAt += SLOW_PERIOD.ms;
      }
    },
    closed(opened) {
      if (!opened) {
        holdOff(1000);
        return;
      }
      if (!isSlow) return;
      const lasted = Date.now() - openedAt;
      if (merged || slowBye) slowHandled.add(true);
      else if (lasted >= SLOW_PERIOD.ms) {
        slowHandled.add(false);
        warn(`slow session of ${Math.round(lasted / 1000)} s saw no merged update and no bye SLOW_CONSUMER: its stream may be too small to fill the socket buffers in SLOW_PAUSE`);
      }
    },
  });
}
