/**
 * Custom k6 metrics shared by the scenarios, and the bookkeeping of market
 * data that feeds them. k6 only accepts metrics created in the init
 * context, which importing this module is; a metric that never gets a
 * sample stays out of the end-of-test summary.
 */
import { Counter, Rate, Trend } from 'k6/metrics';
import { latencyMs, type ServerMessage, type SymbolBook } from './protocol.ts';

/** Receipt time minus the update's source `ts`, ms (needs the feed and k6 on one clock). */
export const e2eLatency = new Trend('tickgate_e2e_latency', true);
/** `upd` messages received. */
export const updates = new Counter('tickgate_updates');
/** `snap` messages received. */
export const snapshots = new Counter('tickgate_snapshots');
/** `upd` messages that merge more than one tick (`n` > 1): the gateway conflated for this client. */
export const mergedUpdates = new Counter('tickgate_merged_updates');
/** `snap`/`upd` whose `q` did not increase (tag `kind: stale`), or `upd` before any `snap` (`kind: orphan`). Must stay 0. */
export const qViolations = new Counter('tickgate_q_violations');
/** Frames that broke the protocol (undecodable, not an array of maps, bad `snap`/`upd`). Must stay 0. */
export const protocolErrors = new Counter('tickgate_protocol_errors');
/** `bye` messages, tagged with their `code`. */
export const byes = new Counter('tickgate_byes');
/** Connection attempts that never opened (refused upgrade, network error). */
export const connectFailed = new Rate('tickgate_ws_connect_failed');
/** `sub` sent to its `ack` received, ms. */
export const subscribeLatency = new Trend('tickgate_subscribe_latency', true);

/**
 * Registers the metrics that carry a `count==0` threshold, so the threshold
 * is evaluated (and passes) on a run where nothing went wrong.
 */
export function touchZeroThresholdMetrics(): void {
  qViolations.add(0);
  protocolErrors.add(0);
}

/** What one frame's market data held, for the scenario's own checks. */
export interface FrameTally {
  updates: number;
  /** `upd` messages with `n` > 1. */
  merged: number;
}

/**
 * Applies every `snap` and `upd` of a frame to `book` and records them:
 * counts (added once per frame: each k6 sample has a cost), `q` checks and,
 * for each `upd` carrying `ts`, the end-to-end latency at `receivedAt`.
 */
export function recordMarketData(book: SymbolBook, messages: readonly ServerMessage[], receivedAt: number): FrameTally {
  let snaps = 0;
  let upds = 0;
  let merged = 0;
  for (const m of messages) {
    if (m.t !== 'snap' && m.t !== 'upd') continue;
    const outcome = book.apply(m);
    if (outcome !== 'applied') qViolations.add(1, { kind: outcome });
    if (m.t === 'snap') {
      snaps++;
      continue;
    }
    upds++;
    if (m.n !== undefined && m.n > 1) merged++;
    const l = latencyMs(m.d, receivedAt);
    if (l !== undefined) e2eLatency.add(l);
  }
  if (snaps > 0) snapshots.add(snaps);
  if (upds > 0) updates.add(upds);
  if (merged > 0) mergedUpdates.add(merged);
  return { updates: upds, merged };
}
