/**
 * Prometheus metrics. The hot path counts in plain numbers on the objects
 * that own them; metrics read those numbers in collect(), at scrape time, so
 * a tick pays nothing for being observed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { PlainHistogram } from './histogram.js';
import type { AccessControl } from './access/admission.js';
import type { FeedSource } from './feed/feed-source.js';
import type { Hub } from './fanout/hub.js';
import { BookCounters } from './feed/book-normalize.js';
import { TradeCounters } from './feed/trade-normalize.js';
import type { NatsSource } from './feed/nats-source.js';

type Labels = Record<string, string>;
type Sample = [Labels, number];

export const METRIC_PREFIX = 'tickgate_';

/** A counter whose value is read from plain numbers at scrape time. */
function readCounter(registry: Registry, name: string, help: string, labelNames: string[], read: () => Sample[]): void {
  new Counter({
    name: METRIC_PREFIX + name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.inc(labels, v);
    },
  });
}

function readGauge(registry: Registry, name: string, help: string, labelNames: string[], read: () => Sample[]): void {
  new Gauge({
    name: METRIC_PREFIX + name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, v] of read()) this.set(labels, v);
    },
  });
}

/** Exposes {@link PlainHistogram}s (one per label set) as a Prometheus histogram, read at scrape time. */
function readHistogram(registry: Registry, name: string, help: string, read: () => Array<[Labels, PlainHistogram]>): void {
  const full = METRIC_PREFIX + name;
  const metric = {
    name: full,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get() {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      for (const [labels, h] of read()) {
        const cum = h.cumulative();
        h.bounds.forEach((le, i) => values.push({ metricName: `${full}_bucket`, labels: { ...labels, le }, value: cum[i]! }));
        values.push({ metricName: `${full}_bucket`, labels: { ...labels, le: '+Inf' }, value: cum[cum.length - 1]! });
        values.push({ metricName: `${full}_sum`, labels, value: h.sum });
        values.push({ metricName: `${full}_count`, labels, value: h.count });
      }
      return { name: full, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  registry.registerMetric(metric as unknown as Metric);
}

function entries<K extends string>(o: Record<K, number>, label: string): Sample[] {
  return (Object.keys(o) as K[]).map((k) => [{ [label]: k }, o[k]]);
}

/**
 * What a registry collects of the Node.js runtime. `process`: the process's
 * one registry, with the process-wide metrics (`process_*`,
 * `nodejs_version_info`, `tickgate_build_info`) and this thread's runtime
 * metrics. `thread`: a gateway worker thread, whose process-wide metrics the
 * main thread collects once; it keeps only what is its own (event-loop lag,
 * heap, GC, handles).
 */
export type RuntimeScope = 'process' | 'thread';

const BUILD_INFO = `${METRIC_PREFIX}build_info`;

/** Metrics that describe the whole process, whichever thread reads them: never summed over threads. */
export function isProcessWide(name: string): boolean {
  return name.startsWith('process_') || name === 'nodejs_version_info' || name === BUILD_INFO;
}

/**
 * prom-client's default metrics under their standard names (`process_*`,
 * `nodejs_*`), so stock Node.js dashboards and alerts find them.
 */
export function collectRuntimeMetrics(r: Registry, scope: RuntimeScope): void {
  collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: 20 });
  for (const { name } of r.getMetricsAsArray()) {
    // These three are gauges named like counters (promtool rejects them); the
    // same numbers remain available by type without the suffix.
    const misnamed = name === 'nodejs_active_handles_total' || name === 'nodejs_active_requests_total' || name === 'nodejs_active_resources_total';
    if (misnamed || (scope === 'thread' && !name.startsWith(METRIC_PREFIX) && isProcessWide(name))) r.removeSingleMetric(name);
  }
}

/** The version in this package's package.json (from src/ under tsx, or dist/src/). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    return String((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

/** `tickgate_build_info{version, node, uws} 1`: what is running, for joins and upgrade tracking. */
export function registerBuildInfo(r: Registry, uws: string): void {
  const g = new Gauge({
    name: BUILD_INFO,
    help: 'Always 1; the labels say what runs: tickgate version (package.json), Node.js version, uWebSockets.js version.',
    labelNames: ['version', 'node', 'uws'],
    registers: [r],
  });
  g.set({ version: packageVersion(), node: process.version, uws }, 1);
}

/** One metric of `Registry.getMetricsAsJSON()`, as it crosses from a worker thread. */
export interface MetricJson {
  name: string;
  help: string;
  type: string;
  aggregator?: string;
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}

/**
 * Prepares one thread's metrics for summing with the other threads'
 * (`AggregatorRegistry.aggregate`). What describes the thread's own state
 * (gauges, and its event loop, heap and GC) gets a `worker` label, so no two
 * threads' values are added up; counters and histograms of events keep their
 * labels and are summed, which gives the process's count. Every metric is
 * aggregated by sum: a process-wide one comes from the main thread only, so
 * the sum is its value (prom-client's own aggregators would drop
 * process_start_time_seconds and average the event-loop lag).
 */
export function forAggregation(metrics: readonly MetricJson[], worker: string): MetricJson[] {
  return metrics.map((m) => {
    const own = !isProcessWide(m.name) && (m.type === 'gauge' || !m.name.startsWith(METRIC_PREFIX));
    return { ...m, aggregator: 'sum', values: own ? m.values.map((v) => ({ ...v, labels: { ...v.labels, worker } })) : m.values };
  });
}

/**
 * Builds the registry for one gateway. `runtime.scope` says whether it also
 * carries the process-wide metrics ({@link RuntimeScope}); `runtime.uws` is
 * the uWebSockets.js version for `tickgate_build_info`.
 */
export function createMetrics(
  hub: Hub,
  source: FeedSource,
  access: AccessControl,
  connections: () => number,
  ready: () => boolean,
  runtime: { scope: RuntimeScope; uws: string },
): Registry {
  const r = new Registry();
  collectRuntimeMetrics(r, runtime.scope);
  if (runtime.scope === 'process') registerBuildInfo(r, runtime.uws);
  const feeds = () => source.normalizers.map((n) => [n.feed.name, n.counters] as const);

  readCounter(r, 'ingest_ticks_total', 'Ticks received from feeds, valid or not.', ['feed'], () =>
    feeds().map(([feed, c]) => [{ feed }, c.received]),
  );
  readCounter(r, 'ingest_invalid_ticks_total', 'Ticks rejected, by reason.', ['feed', 'reason'], () =>
    feeds().flatMap(([feed, c]) => entries(c.invalid, 'reason').map(([l, v]): Sample => [{ feed, ...l }, v])),
  );
  readCounter(r, 'ingest_dropped_fields_total', 'Fields dropped from accepted ticks: unknown names or non-numeric values.', ['feed', 'reason'], () =>
    feeds().flatMap(([feed, c]) => entries(c.droppedFields, 'reason').map(([l, v]): Sample => [{ feed, ...l }, v])),
  );
  readCounter(r, 'ingest_errors_total', 'Accepted ticks whose processing failed unexpectedly (see the log).', ['feed'], () =>
    feeds().map(([feed, c]) => [{ feed }, c.errors]),
  );
  readCounter(r, 'ingest_seq_gaps_total', 'Source sequence numbers skipped (seq more than one past the symbol\'s last).', ['feed'], () =>
    feeds().map(([feed, c]) => [{ feed }, c.seqGaps]),
  );
  readCounter(r, 'ingest_seq_regressions_total', 'Ticks whose seq did not advance (repeat, reorder or source restart).', ['feed'], () =>
    feeds().map(([feed, c]) => [{ feed }, c.seqRegressions]),
  );
  if (hub.deliveryLatency !== null) {
    const delivery = hub.deliveryLatency;
    readHistogram(r, 'ingest_latency_seconds', 'Source event time (ts) to receipt by the gateway.', () =>
      feeds().map(([feed, c]): [Labels, PlainHistogram] => [{ feed }, c.ingestLatency]),
    );
    readHistogram(r, 'delivery_latency_seconds', 'First message queued for a client to its frame written to the socket (the event-loop turn, plus any ws.flushIntervalMs wait).', () => [
      [{}, delivery],
    ]);
  }
  readCounter(r, 'state_updates_total', 'Ticks that changed a symbol state (each one advances q).', [], () => [[{}, hub.counters.stateUpdates]]);
  readCounter(r, 'unchanged_ticks_total', 'Accepted ticks that repeated the state exactly.', [], () => [[{}, hub.counters.unchangedTicks]]);
  readGauge(r, 'feed_stale', 'Whether the feed is stale now (1): disconnected, or silent longer than its staleAfterMs.', ['feed'], () =>
    feeds().map(([feed, c]) => [{ feed }, c.stale ? 1 : 0]),
  );
  readCounter(r, 'ingest_warm_ticks_total', 'Ticks read from the feed\'s JetStream warm-start stream that filled symbol state at start.', ['feed'], () =>
    feeds().map(([feed, c]) => [{ feed }, c.warmTicks]),
  );
  readGauge(r, 'feed_up', 'Whether the feed source is connected (1) or not (0).', ['source'], () => [
    [{ source: source.kind }, source.status.state === 'connected' ? 1 : 0],
  ]);
  readCounter(r, 'feed_reconnects_total', 'Feed source reconnects since start.', ['source'], () => [[{ source: source.kind }, source.reconnects]]);
  // NATS side: empty for the embedded source.
  const nats = source.kind === 'nats' ? (source as NatsSource) : null;
  const pending = nats === null ? [] : nats.pending;
  readCounter(r, 'nats_stale_connections_total', 'NATS servers given up because they stopped answering pings (nats.pingIntervalMs x nats.maxPingsOut); each is followed by a reconnect to another server.', [], () =>
    nats === null ? [] : [[{}, nats.staleConnections]],
  );
  readCounter(r, 'nats_slow_consumer_total', 'Slow-consumer episodes per feed: times its pending messages went over nats.pendingMsgsLimit or nats.pendingBytesLimit (the gateway fell behind the feed).', ['feed'], () =>
    pending.map((p) => [{ feed: p.feed }, p.episodes]),
  );
  readCounter(r, 'nats_dropped_messages_total', 'Feed messages received from NATS and dropped unprocessed over the pending limits (oldest first).', ['feed'], () =>
    pending.map((p) => [{ feed: p.feed }, p.dropped]),
  );
  readGauge(r, 'nats_pending_messages', 'Feed messages received from NATS and not yet processed (non-zero only while the gateway is behind).', ['feed'], () =>
    pending.map((p) => [{ feed: p.feed }, p.size]),
  );
  readGauge(r, 'symbols', 'Known symbols (with state).', [], () => [[{}, hub.store.size]]);
  const books = () => source.normalizers.flatMap((n) => (n.counters instanceof BookCounters ? [[n.feed.name, n.counters] as const] : []));
  readCounter(r, 'book_messages_total', 'Book messages applied (snapshots and level changes), per book feed.', ['feed'], () =>
    books().map(([feed, c]) => [{ feed }, c.bookMessages]),
  );
  readCounter(r, 'book_rejected_total', 'Book messages refused, by reason (malformed, no snapshot yet, after a gap).', ['feed', 'reason'], () =>
    books().flatMap(([feed, c]) => entries(c.rejected, 'reason').map(([l, v]): Sample => [{ feed, ...l }, v])),
  );
  readCounter(r, 'book_gaps_total', 'Sequence gaps in book changes: each marks the book stale until its next snapshot.', ['feed'], () =>
    books().map(([feed, c]) => [{ feed }, c.gaps]),
  );
  readCounter(r, 'book_crossed_total', 'Book messages after which the book was crossed (best bid >= best ask); delivered all the same.', ['feed'], () =>
    books().map(([feed, c]) => [{ feed }, c.crossed]),
  );
  readCounter(r, 'book_levels_dropped_total', 'Price levels dropped because a side held book.maxLevels already.', ['feed'], () =>
    books().map(([feed, c]) => [{ feed }, c.levelsDropped]),
  );
  const tradeFeeds = () => source.normalizers.flatMap((n) => (n.counters instanceof TradeCounters ? [[n.feed.name, n.counters] as const] : []));
  readCounter(r, 'trades_total', 'Trades accepted, per trade feed (each trade of a batch counts).', ['feed'], () => tradeFeeds().map(([feed, c]) => [{ feed }, c.trades]));
  readCounter(r, 'trade_rejected_total', 'Trades (or whole trade messages) refused, by reason.', ['feed', 'reason'], () =>
    tradeFeeds().flatMap(([feed, c]) => entries(c.rejected, 'reason').map(([l, v]): Sample => [{ feed, ...l }, v])),
  );
  const trades = hub.trades;
  readCounter(r, 'trade_resumes_total', 'Trade subscriptions with since, by whether every trade since the client\'s position could be sent (recovered true or false).', ['recovered'], () => [
    [{ recovered: 'true' }, trades.recovered],
    [{ recovered: 'false' }, trades.notRecovered],
  ]);
  readCounter(r, 'trades_replayed_total', 'Trades sent from the history: resumes, last: N, and subscriptions catching up after being throttled or behind.', [], () => [[{}, trades.replayed]]);
  readCounter(r, 'trade_gaps_sent_total', 'gap messages sent: trades a client missed that had left the history.', [], () => [[{}, trades.gapsSent]]);
  readGauge(r, 'trade_history', 'Trades held in the per-symbol histories.', [], () => [[{}, trades.held()]]);
  readGauge(r, 'books', 'Order books with state.', [], () => [[{}, hub.books.size]]);
  readGauge(r, 'book_levels', 'Price levels held across all order books.', [], () => [[{}, hub.books.levels()]]);
  readCounter(r, 'book_resubscribes_total', 'Book subscriptions renewed by a client that held them already (a resync, e.g. after a checksum mismatch).', [], () => [
    [{}, hub.counters.bookResubscribes],
  ]);

  readGauge(r, 'connections', 'Open WebSocket connections.', [], () => [[{}, connections()]]);
  readCounter(r, 'upgrades_rejected_total', 'WebSocket upgrades refused before any connection state, by code (authentication, origin, connection caps, failed-attempt limit, draining).', ['code'], () =>
    entries(access.rejected, 'code'),
  );
  readCounter(r, 'connections_opened_total', 'WebSocket connections opened.', [], () => [[{}, hub.counters.opened]]);
  readCounter(r, 'connections_closed_total', 'WebSocket connections closed, each once when its socket closes, by who closed it: the bye code the server sent, or remote (client, network, idle timeout).', ['reason'], () =>
    entries(hub.counters.closedBy, 'reason'),
  );
  readGauge(r, 'ready', 'Whether this gateway is ready for clients (1) or not (0): listening, feed connected, not draining.', [], () => [[{}, ready() ? 1 : 0]]);
  readGauge(r, 'subscriptions', 'Subscriptions across all connections.', [], () => [[{}, hub.index.size]]);
  readCounter(r, 'messages_sent_total', 'Messages queued to clients, by type.', ['type'], () => entries(hub.counters.messages, 'type'));
  readCounter(r, 'frames_sent_total', 'WebSocket frames sent to clients.', [], () => [[{}, hub.counters.frames]]);
  readCounter(r, 'sent_bytes_total', 'Bytes of WebSocket frame payloads sent to clients.', [], () => [[{}, hub.counters.bytes]]);
  readCounter(r, 'send_dropped_total', 'Frames the socket refused (buffer limit hit).', [], () => [[{}, hub.counters.sendDropped]]);
  readCounter(r, 'conflated_updates_total', 'Per-client updates merged into a later one instead of sent, by reason (backpressure or throttle).', ['reason'], () =>
    entries(hub.counters.conflated, 'reason'),
  );
  readGauge(r, 'clients_conflating', 'Clients above their high water mark now (updates merged per symbol).', [], () => [[{}, hub.counters.conflatingNow]]);
  readGauge(r, 'flush_hold_seconds', 'How long a client that just had a frame waits for its next one now (adaptive coalescing; 0 when the gateway is idle).', [], () => [[{}, hub.scheduler.holdMs / 1000]]);
  readCounter(r, 'frames_held_total', 'Client frames held back to share a later write (adaptive coalescing); their messages are all still sent.', [], () => [[{}, hub.scheduler.heldFrames]]);
  readHistogram(r, 'client_buffered_bytes', 'Bytes buffered in client sockets, sampled per client a few times a second.', () => [[{}, hub.bufferedBytes]]);
  const budget = hub.registry.budget;
  readGauge(r, 'buffered_bytes', 'Bytes buffered for this gateway\'s open clients now (the sum of their socket buffers at their last flush, drain or sweep); compared with tickgate_buffer_budget_bytes.', [], () => [
    [{}, budget.total],
  ]);
  readGauge(r, 'buffer_budget_bytes', 'backpressure.maxTotalBufferedBytes: the budget for the bytes buffered for all clients of the process (0: unlimited).', [], () => [[{}, budget.budget]]);
  readCounter(r, 'budget_closes_total', 'Clients closed with bye SLOW_CONSUMER because the process was over its buffer budget (the biggest first); also counted in tickgate_connections_closed_total{reason="SLOW_CONSUMER"}.', [], () => [
    [{}, budget.closes],
  ]);
  readCounter(r, 'client_messages_rejected_total', 'Client messages answered with err, by code.', ['code'], () => entries(hub.counters.rejected, 'code'));
  return r;
}
