/**
 * End-to-end latency recording for load clients: HdrHistogram in
 * microseconds, a wall clock finer than `Date.now()`, and the summaries and
 * merges the benchmark reports need.
 *
 * Method (why the figures are free of coordinated omission):
 *
 * 1. The publisher is open-loop: tick k is due at t0 + k / rate and carries
 *    that scheduled time as `ts`, whether or not it left on time. A stalled
 *    publisher, bus, gateway or client therefore shows up as latency; nothing
 *    waits for anything before the next tick is due.
 * 2. Every delivered update is recorded: latency = receive time - `ts`.
 * 3. A conflated update (`n` > 1) stands for n ticks. The n - 1 ticks merged
 *    away reached the client with it, later than their own `ts`: they are
 *    recorded too, their `ts` interpolated evenly between the symbol's previous
 *    delivered `ts` and this one.
 * 4. The `corrected` histogram additionally applies HdrHistogram's classic
 *    correction (`recordValueWithExpectedInterval`) with the symbol's own
 *    expected interval at the publisher's schedule (1 / (rate x the symbol's
 *    Zipf share of ticks): a few ms for the most active symbols, seconds for
 *    the quiet ones): a latency L longer than that interval I also records
 *    L - I, L - 2I, ... as the samples a stall would have hidden. With an
 *    open-loop source those samples are mostly real and already recorded, so
 *    this histogram over-counts stalls: read it as an upper bound. Long
 *    corrections are recorded in groups to bound the client's work (see
 *    recordCorrected()).
 */
import { performance } from 'node:perf_hooks';
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

/** Largest latency a histogram tracks: 120 s in microseconds (larger values are clamped). */
export const MAX_LATENCY_US = 120_000_000;
/** Three significant digits: 0.1% resolution at every magnitude. */
const DIGITS = 3;

/** A latency histogram in microseconds. */
export function newHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_LATENCY_US, numberOfSignificantValueDigits: DIGITS, bitBucketSize: 32 });
}

/** Percentiles in milliseconds (null when there are no samples). */
export interface LatencySummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

const ms3 = (us: number) => Math.round(us) / 1000;

/** p50 / p90 / p99 / p99.9 / max of a microsecond histogram, in milliseconds. */
export function summarize(h: Histogram): LatencySummary {
  const n = h.totalCount;
  const at = (p: number) => (n === 0 ? null : ms3(h.getValueAtPercentile(p)));
  return { count: n, p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: n === 0 ? null : ms3(h.maxValue) };
}

/** A histogram as compact text, to cross a process boundary in a JSON report. */
export function encodeHistogram(h: Histogram): string {
  return encodeIntoCompressedBase64(h);
}

/** The sum of encoded histograms (from several load processes); empty strings are skipped. */
export function mergeHistograms(encoded: readonly string[]): Histogram {
  const out = newHistogram();
  for (const e of encoded) {
    if (e === '') continue;
    const h = decodeFromCompressedBase64(e, 32);
    out.add(h);
    h.destroy();
  }
  return out;
}

/**
 * Wall-clock milliseconds with sub-millisecond resolution: `Date.now()` is
 * whole milliseconds, which would blur every percentile below a few ms. The
 * offset between the monotonic and the wall clock is taken at a
 * `Date.now()` edge, so it is exact to a few microseconds.
 */
export function makeWallClock(): () => number {
  const start = Date.now();
  let edge = Date.now();
  // Bounded: Date.now() advances within a millisecond.
  for (let i = 0; i < 10_000_000 && edge === start; i++) edge = Date.now();
  const offset = edge - performance.now();
  return () => offset + performance.now();
}

/** Most histogram calls one sample's correction may make; beyond, the fill-ins are recorded in groups. */
export const MAX_FILL_CALLS = 4;

/**
 * HdrHistogram's expected-interval correction with bounded work: `us`, then
 * `us - k x interval` for k = 1 .. c, c = floor(us / interval) - 1, the same
 * samples as `recordValueWithExpectedInterval`. That loop costs one call per
 * fill-in, and with a busy symbol (interval well under a millisecond) and
 * latencies of tens of ms it would cost the load client more than the
 * updates themselves, so the client, not the server, would saturate. Past
 * MAX_FILL_CALLS the fill-ins go in runs of m consecutive ones, each run
 * recorded once at its middle value with count m: the count and the mean
 * stay exact, each fill-in moves by at most (m - 1) / 2 intervals, which is
 * at most 1/8 of `us`. Four calls instead of up to forty keep the client's
 * cost per update near that of decoding it.
 */
export function recordCorrected(h: Histogram, us: number, interval: number): void {
  h.recordValue(us);
  if (!(interval > 0)) return;
  const c = Math.floor(us / interval) - 1;
  if (c <= 0) return;
  const m = Math.ceil(c / MAX_FILL_CALLS);
  if (m === 1) {
    for (let k = 1; k <= c; k++) h.recordValue(us - k * interval);
    return;
  }
  for (let k = 1; k <= c; k += m) {
    const count = Math.min(m, c - k + 1);
    h.recordValueWithCount(Math.round(us - (k + (count - 1) / 2) * interval), count);
  }
}

/**
 * Records update latencies for one group of clients: `raw` (every delivered
 * and merged tick) and `corrected` (plus HdrHistogram's expected-interval
 * correction). See the module comment for the method.
 */
export class LatencyRecorder {
  readonly raw = newHistogram();
  readonly corrected = newHistogram();

  /**
   * One delivered tick that arrived `latencyMs` after its scheduled time;
   * `expectedIntervalMs` is its symbol's expected interval between ticks (0
   * or not finite: no correction).
   */
  record(latencyMs: number, expectedIntervalMs: number): void {
    const us = clampUs(latencyMs);
    this.raw.recordValue(us);
    const interval = expectedIntervalMs > 0 && expectedIntervalMs < Infinity ? Math.round(expectedIntervalMs * 1000) : 0;
    recordCorrected(this.corrected, us, interval);
  }

  /**
   * An update merging `n` ticks, received at `now`, whose newest tick is
   * `ts` and the symbol's previous delivered tick `prevTs` (NaN if unknown:
   * then only the update itself is recorded).
   */
  recordMerged(now: number, ts: number, n: number, prevTs: number, expectedIntervalMs: number): void {
    this.record(now - ts, expectedIntervalMs);
    if (!(n > 1) || !Number.isFinite(prevTs) || prevTs >= ts) return;
    const step = (ts - prevTs) / n;
    // Bounded: n comes from the server, a merged update rarely stands for more than thousands.
    const k = Math.min(n - 1, 100_000);
    for (let i = 1; i <= k; i++) this.record(now - (ts - i * step), expectedIntervalMs);
  }

  reset(): void {
    this.raw.reset();
    this.corrected.reset();
  }
}

/**
 * Each symbol's share of the ticks of a publisher running {@link MarketSim}
 * with this Zipf exponent: rank i (0-based, in `order`) has weight (i + 1)^-zipf.
 */
export function tickShares(order: readonly string[], zipf: number): Map<string, number> {
  let sum = 0;
  for (let i = 0; i < order.length; i++) sum += (i + 1) ** -zipf;
  const out = new Map<string, number>();
  for (let i = 0; i < order.length; i++) out.set(order[i]!, (i + 1) ** -zipf / sum);
  return out;
}

function clampUs(ms: number): number {
  const us = Math.round(ms * 1000);
  // A tick stamped a hair in the future (clock read granularity) counts as 0.
  return us < 0 ? 0 : us > MAX_LATENCY_US ? MAX_LATENCY_US : us;
}
