/**
 * Composition root: wires feed source -> hub (state, index, sessions) ->
 * transport, and owns the start and stop order. Nothing else reaches across.
 */
import { existsSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { AccessControl } from './access/admission.js';
import { Authenticator } from './access/authenticator.js';
import { ConfigError } from './config.js';
import type { Config } from './config.js';
import { systemClock } from './clock.js';
import { EmbeddedSource } from './feed/embedded-source.js';
import { FeedHealth } from './feed/feed-health.js';
import type { FeedSource } from './feed/feed-source.js';
import { NatsSource } from './feed/nats-source.js';
import { Hub } from './fanout/hub.js';
import type { Logger } from './log.js';
import { createMetrics, type RuntimeScope } from './metrics.js';
import { requireUws } from './transport/uws.js';
import { dashboardDir, loadStaticFiles } from './transport/static-files.js';
import { UwsTransport } from './transport/uws-transport.js';

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export type GatewayStatus = { state: 'starting' } | { state: 'ready' } | { state: 'draining' } | { state: 'stopped' };

export class Gateway {
  readonly hub: Hub;
  readonly source: FeedSource;
  readonly metrics: Registry;
  readonly access: AccessControl;
  status: GatewayStatus = { state: 'starting' };
  /** The uWebSockets.js version loaded (as `tickgate_build_info` reports it). */
  readonly uwsVersion: string;
  private readonly transport: UwsTransport;
  private readonly health: FeedHealth;

  /**
   * `runtime` is `thread` for a gateway in a worker thread: the main thread
   * then reports the process-wide metrics once (src/workers.ts).
   */
  constructor(
    readonly config: Config,
    private readonly log: Logger,
    runtime: RuntimeScope = 'process',
  ) {
    const { uws, native, version } = requireUws(config.uws.allowFallback);
    this.uwsVersion = version.version;
    if (!native) log.warn({ uws: version }, 'uWebSockets.js runs its pure-JS fallback: expect a fraction of normal throughput');
    else log.info({ uws: version }, 'uWebSockets.js native binary loaded');
    const clock = systemClock;
    this.access = new AccessControl(config, Authenticator.create(config, clock), clock);
    if (config.auth.mode === 'none' && !isLoopback(config.host)) {
      log.warn({ host: config.host }, 'auth.mode is none on a non-loopback address: anyone who can reach this port gets all data (set auth.mode to jwt or apikey in production)');
    }
    const tls = config.tls.certFile || config.tls.keyFile ? config.tls : null;
    if (tls) {
      for (const k of ['certFile', 'keyFile'] as const) {
        if (!tls[k] || !existsSync(tls[k])) throw new ConfigError(`tls.${k}: expected a readable PEM file (both tls.certFile and tls.keyFile are needed for TLS), got ${JSON.stringify(tls[k])}`);
      }
    }
    this.hub = new Hub(config, log, clock);
    this.hub.authenticator = this.access.authenticator;
    this.source = config.nats.servers.length > 0 ? new NatsSource(config, log, this.hub.schema) : new EmbeddedSource(config, log, this.hub.schema);
    this.health = new FeedHealth(this.source, clock, log, (feed, stale) => this.hub.setFeedStale(feed, stale));
    this.transport = new UwsTransport(uws, {
      host: config.host,
      port: config.port,
      maxMessageBytes: config.limits.maxMessageBytes,
      idleTimeoutSec: config.ws.idleTimeoutSec,
      // Above the session's own limit, so the session decides and says bye first.
      maxBackpressureBytes: config.backpressure.maxBufferedBytes * 2,
      openSession: (socket, principal) => this.hub.openSession(socket, principal),
      admit: (info) => this.access.admit(info),
      release: (ip, user) => this.access.release(ip, user),
      proxyHeader: config.limits.trustProxyHeader,
      tls,
      adminPort: config.metrics.port,
      staticFiles: loadStaticFiles(dashboardDir()),
      routes: {
        '/healthz': () => ({ status: 200, type: 'application/json', body: '{"status":"ok"}\n' }),
        '/readyz': () => this.readiness(),
        '/metrics': async () => ({ status: 200, type: this.metrics.contentType, body: await this.metrics.metrics() }),
      },
    });
    this.metrics = createMetrics(this.hub, this.source, this.access, () => this.transport.connections, () => this.isReady(), {
      scope: runtime,
      uws: this.uwsVersion,
    });
  }

  /** The port the gateway listens on. */
  get port(): number {
    return this.transport.port;
  }

  /** The port of /metrics, /healthz and /readyz (the main port unless metrics.port is set). */
  get adminPort(): number {
    return this.config.metrics.port === null ? this.transport.port : this.transport.adminPort;
  }

  /** Connects the feed, then starts listening. Throws if either fails. */
  async start(): Promise<void> {
    this.hub.start();
    const hub = this.hub;
    const health = this.health;
    await this.source.start({
      tick: (tick, feed) => {
        health.seen(tick, feed);
        hub.onTick(tick, feed);
      },
      warm: (tick, feed) => hub.onWarmTick(tick, feed),
      book: (event, feed) => {
        health.seen(event, feed);
        hub.onBook(event, feed);
      },
      trade: (event, feed) => {
        health.seen(event, feed);
        hub.onTrades(event, feed);
      },
      tradeEpoch: (feed, epoch) => hub.trades.setStreamEpoch(feed, epoch),
    });
    health.start();
    await this.transport.listen();
    this.status = { state: 'ready' };
    this.log.info(
      { host: this.config.host, port: this.port, adminPort: this.adminPort, source: this.source.kind },
      `tickgate listening on ws://${this.config.host}:${this.port}/v1/stream, metrics on http://${this.config.host}:${this.adminPort}/metrics`,
    );
  }

  private isReady(): boolean {
    return this.status.state === 'ready' && this.source.status.state === 'connected';
  }

  /** Why the gateway is not ready (empty when it is). */
  readinessReasons(): string[] {
    const reasons: string[] = [];
    if (this.status.state !== 'ready') reasons.push(`gateway is ${this.status.state}`);
    if (this.source.status.state !== 'connected') reasons.push(`feed source ${this.source.kind} is ${this.source.status.state}`);
    return reasons;
  }

  private readiness() {
    const reasons = this.readinessReasons();
    const ready = reasons.length === 0;
    return {
      status: ready ? 200 : 503,
      type: 'application/json',
      body: JSON.stringify({ ready, reasons, source: this.source.status }) + '\n',
    };
  }

  /**
   * Graceful drain: not ready at once; after delayMs (still serving, so load
   * balancers can take the instance out first), no new connections; every client gets
   * bye DRAINING with a retryMs drawn uniformly from [0, windowMs] so that
   * reconnects spread over the window instead of arriving together at the
   * other replicas; connections still open at the deadline are closed; then
   * NATS is drained. `windowMs` and `timeoutMs` default to the drain config.
   */
  async stop(opts: { delayMs?: number; windowMs?: number; timeoutMs?: number } = {}): Promise<void> {
    if (this.status.state === 'stopped' || this.status.state === 'draining') return;
    const delayMs = opts.delayMs ?? this.config.drain.delayMs;
    const windowMs = opts.windowMs ?? this.config.drain.windowMs;
    const timeoutMs = opts.timeoutMs ?? this.config.drain.timeoutMs;
    this.status = { state: 'draining' };
    this.log.info({ clients: this.transport.connections, delayMs, windowMs, timeoutMs }, 'draining');
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    this.access.closed = true;
    const started = Date.now();
    const clients = this.transport.connections;
    this.health.stop();
    this.transport.stopListening();
    this.hub.closeAll('DRAINING', 'server is shutting down; reconnect after retryMs', () => Math.floor(Math.random() * (windowMs + 1)));
    // A bye is followed by a close; most clients are gone within a round trip.
    const deadline = started + timeoutMs;
    while (this.transport.connections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const forced = this.transport.connections;
    this.transport.closeAll();
    await this.source.stop();
    this.transport.closeAdmin();
    this.status = { state: 'stopped' };
    this.log.info({ clients, forced, ms: Date.now() - started }, 'tickgate stopped');
  }
}
