/**
 * Prometheus metrics. The hot path counts in plain numbers on the objects
 * that own them; metrics read those numbers in collect(), at scrape time, so
 * a tick pays nothing for being observed.
 */
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

/** Builds the registry for one gateway. */
export function createMetrics(hub: Hub, source: FeedSource, access: AccessControl, connections: () => number, ready: () => boolean): Registry {
  const r = new Registry();
  collectDefaultMetrics({ register: r, prefix: METRIC_PREFIX + 'process_', eventLoopMonitoringPrecision: 20 });
  // These three are gauges named like counters (promtool rejects them); the
  // same numbers remain available by type without the suffix.
  for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    r.removeSingleMetric(`${METRIC_PREFIX}process_${n}`);
  }
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
  readCounter(r, 'upgrades_rejected_total', 'WebSocket upgrades refused before any connection state, by code (authentication, origin, connection caps, draining).', ['code'], () =>
    entries(access.rejected, 'code'),
  );
  readCounter(r, 'connections_opened_total', 'WebSocket connections opened.', [], () => [[{}, hub.counters.opened]]);
  readCounter(r, 'connections_closed_total', 'WebSocket connections closed, by who closed them: a bye code, or remote (client, network, idle timeout).', ['reason'], () =>
    entries(hub.counters.closedBy, 'reason'),
  );
  readGauge(r, 'ready', 'Whether this gateway is ready for clients (1) or not (0): listening, feed connected, not draining.', [], () => [[{}, ready() ? 1 : 0]]);
  readCounter(r, 'disconnects_total', 'Server-initiated closes (bye), by code.', ['code'], () => entries(hub.counters.byes, 'code'));
  readGauge(r, 'subscriptions', 'Subscriptions across all connections.', [], () => [[{}, hub.index.size]]);
  readCounter(r, 'messages_sent_total', 'Messages queued to clients, by type.', ['type'], () => entries(hub.counters.messages, 'type'));
  readCounter(r, 'frames_sent_total', 'WebSocket frames sent to clients.', [], () => [[{}, hub.counters.frames]]);
  readCounter(r, 'sent_bytes_total', 'Bytes of WebSocket frame payloads sent to clients.', [], () => [[{}, hub.counters.bytes]]);
  readCounter(r, 'send_dropped_total', 'Frames the socket refused (buffer limit hit).', [], () => [[{}, hub.counters.sendDropped]]);
  readCounter(r, 'conflated_updates_total', 'Per-client updates merged into a later one instead of sent, by reason (backpressure or throttle).', ['reason'], () =>
    entries(hub.counters.conflated, 'reason'),
  );
  readGauge(r, 'clients_conflating', 'Clients above their high water mark now (updates merged per symbol).', [], () => [[{}, hub.counters.conflatingNow]]);
  readHistogram(r, 'client_buffered_bytes', 'Bytes buffered in client sockets, sampled per client a few times a second.', () => [[{}, hub.bufferedBytes]]);
  readCounter(r, 'client_messages_rejected_total', 'Client messages answered with err, by code.', ['code'], () => entries(hub.counters.rejected, 'code'));
  return r;
}
