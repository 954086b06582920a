/**
 * NATS feed source: one connection, one subscription per configured feed.
 * Messages are handled in the subscription callback (not an async
 * iterator): decode, normalize and hand over synchronously, no promise per tick.
 */
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { RateLimitedLog } from '../log.js';
import { BookNormalizer } from './book-normalize.js';
import { TradeNormalizer } from './trade-normalize.js';
import type { FeedNormalizer, FeedSinks, FeedSource, SourceStatus, TickSink } from './feed-source.js';
import type { FieldSchema } from '../protocol/field-schema.js';
import { Normalizer } from './normalize.js';

/** The NATS connection could not be established at start. */
export class NatsConnectError extends Error {
  override readonly name = 'NatsConnectError';
}

export class NatsSource implements FeedSource {
  readonly kind = 'nats';
  readonly normalizers: (Normalizer | BookNormalizer | TradeNormalizer)[];
  /** Trade feeds read from JetStream streams. */
  private readonly streams: ConsumerMessages[] = [];
  status: SourceStatus = { state: 'starting' };
  reconnects = 0;
  private nc: NatsConnection | null = null;
  private readonly subs: Subscription[] = [];
  private readonly badLog: RateLimitedLog;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    schema?: FieldSchema,
  ) {
    this.normalizers = config.feeds.map((f) =>
      f.kind === 'book' ? new BookNormalizer(f) : f.kind === 'trade' ? new TradeNormalizer(f) : new Normalizer(f, { schema, latency: config.metrics.latency }),
    );
    this.badLog = new RateLimitedLog(log);
  }

  async start(sinks: FeedSinks): Promise<void> {
    const n = this.config.nats;
    try {
      this.nc = await connect({
        servers: n.servers,
        name: n.name,
        timeout: n.connectTimeoutMs,
        maxReconnectAttempts: -1,
        reconnectTimeWait: n.reconnectWaitMs,
        ...(n.user ? { user: n.user, pass: n.pass } : {}),
        ...(n.token ? { token: n.token } : {}),
      });
    } catch (err) {
      throw new NatsConnectError(`cannot connect to NATS at ${n.servers.join(', ')}: ${(err as Error).message}`, { cause: err });
    }
    const nc = this.nc;
    this.status = { state: 'connected', server: nc.getServer() };
    this.watchStatus(nc);
    for (const norm of this.normalizers) {
      const feed = norm.feed;
      const name = feed.name;
      if (norm instanceof TradeNormalizer && feed.jetstream !== null) continue; // read from its stream below
      const handle = this.handler(norm, sinks);
      const sub = nc.subscribe(feed.subject, {
        ...(feed.queue ? { queue: feed.queue } : {}),
        callback: (err, msg) => {
          if (err) {
            this.log.error({ err, feed: name }, 'NATS subscription error');
            return;
          }
          handle(msg.subject, msg.data);
        },
      });
      this.subs.push(sub);
      this.log.info({ feed: name, subject: feed.subject, codec: feed.codec }, 'subscribed to feed');
    }
    // Make sure the subscriptions reached the server before reporting ready.
    await nc.flush();
    // Live first, then the stored state: nothing published in between is missed,
    // and the warm sink never lets a stored value replace a live one.
    for (const norm of this.normalizers) {
      if (norm instanceof Normalizer && norm.feed.jetstream !== null) await this.warmStart(nc, norm, sinks.warm);
      if (norm instanceof TradeNormalizer && norm.feed.jetstream !== null) await this.readTrades(nc, norm, sinks);
    }
  }

  /**
   * A trade feed backed by a JetStream stream: its trades are read from the
   * stream (an ordered consumer), so each has the stream sequence that gives
   * its position, the same on every gateway. At start the recent past (the
   * history's TTL) is read first, so the history can serve resumes at once;
   * this waits until it is read, or nats.warmTimeoutMs.
   */
  private async readTrades(nc: NatsConnection, norm: TradeNormalizer, sinks: FeedSinks): Promise<void> {
    const feed = norm.feed;
    const stream = feed.jetstream!;
    const name = feed.name;
    const timeoutMs = this.config.nats.warmTimeoutMs;
    const started = Date.now();
    const jsm = await jetstreamManager(nc, { timeout: Math.min(timeoutMs, 5000) });
    const si = await jsm.streams.info(stream).catch((err: unknown) => {
      throw new NatsConnectError(`feeds: ${name}: JetStream stream ${JSON.stringify(stream)} cannot be read: ${(err as Error).message}`, { cause: err });
    });
    sinks.tradeEpoch(name, `${stream}.${Date.parse(si.created).toString(36)}`);
    const ttlSec = this.config.trade.history.ttlSec;
    const js = jetstream(nc, { timeout: Math.min(timeoutMs, 5000) });
    const consumer = await js.consumers.get(stream, {
      filter_subjects: feed.subject,
      ...(ttlSec > 0 ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(Date.now() - ttlSec * 1000).toISOString() } : { deliver_policy: DeliverPolicy.All }),
    });
    let backlog = (await consumer.info(true)).num_pending;
    const messages = await consumer.consume({ max_messages: 1000 });
    this.streams.push(messages);
    let caughtUp: () => void = () => {};
    const done = new Promise<void>((resolve) => (caughtUp = resolve));
    if (backlog === 0) caughtUp();
    const trade = sinks.trade;
    void (async () => {
      for await (const m of messages) {
        const r = norm.fromBytes(m.subject, m.data);
        if (typeof r === 'string') {
          this.badLog.warn(`${name}:${r}`, { feed: name, reason: r, subject: m.subject, bytes: m.data.length }, 'invalid trade message dropped');
        } else {
          r.streamSeq = m.seq;
          try {
            trade(r, name);
          } catch (err) {
            norm.counters.errors++;
            this.badLog.warn(`${name}:error`, { feed: name, err }, 'message processing failed');
          }
        }
        if (backlog > 0 && --backlog === 0) caughtUp();
      }
    })();
    const timer = setTimeout(caughtUp, Math.max(0, timeoutMs - (Date.now() - started)));
    await done;
    clearTimeout(timer);
    const level = backlog > 0 ? 'warn' : 'info';
    this.log[level]({ feed: name, stream, missing: backlog, ms: Date.now() - started }, backlog > 0 ? 'trade history incomplete at start; continuing' : 'trades read from their stream');
  }

  /** The per-message work of one feed, chosen once by its kind: decode, validate, hand over. */
  private handler(norm: Normalizer | BookNormalizer | TradeNormalizer, sinks: FeedSinks): (subject: string, data: Uint8Array) => void {
    const name = norm.feed.name;
    const guarded = (counters: FeedNormalizer['counters'], work: () => void) => {
      try {
        work();
      } catch (err) {
        // A fault past the normalizer must not take the subscription down.
        counters.errors++;
        this.badLog.warn(`${name}:error`, { feed: name, err }, 'message processing failed');
      }
    };
    if (norm instanceof TradeNormalizer) {
      const trade = sinks.trade;
      return (subject, data) => {
        const r = norm.fromBytes(subject, data);
        if (typeof r === 'string') {
          this.badLog.warn(`${name}:${r}`, { feed: name, reason: r, subject, bytes: data.length }, 'invalid trade message dropped');
          return;
        }
        guarded(norm.counters, () => trade(r, name));
      };
    }
    if (norm instanceof BookNormalizer) {
      const book = sinks.book;
      return (subject, data) => {
        const r = norm.fromBytes(subject, data);
        if (typeof r === 'string') {
          this.badLog.warn(`${name}:${r}`, { feed: name, reason: r, subject, bytes: data.length }, 'invalid book message dropped');
          return;
        }
        guarded(norm.counters, () => book(r, name));
      };
    }
    const tick = sinks.tick;
    return (subject, data) => {
      const r = norm.fromBytes(subject, data);
      if (typeof r === 'string') {
        this.badLog.warn(`${name}:${r}`, { feed: name, reason: r, subject, bytes: data.length }, 'invalid tick dropped');
        return;
      }
      guarded(norm.counters, () => {
        norm.observe(r);
        tick(r, name);
      });
    };
  }

  /** Reads the last message of every subject of the feed from its JetStream stream. */
  private async warmStart(nc: NatsConnection, norm: Normalizer, warm: TickSink): Promise<void> {
    const feed = norm.feed;
    const stream = feed.jetstream!;
    const timeoutMs = this.config.nats.warmTimeoutMs;
    const started = Date.now();
    let loaded = 0;
    let invalid = 0;
    try {
      const js = jetstream(nc, { timeout: Math.min(timeoutMs, 5000) });
      const consumer = await js.consumers.get(stream, { filter_subjects: feed.subject, deliver_policy: DeliverPolicy.LastPerSubject });
      const info = await consumer.info(true);
      let remaining = info.num_pending;
      if (remaining > 0) {
        const messages = await consumer.consume({ max_messages: 1000 });
        const timer = setTimeout(() => void messages.close(), Math.max(0, timeoutMs - (Date.now() - started)));
        try {
          for await (const m of messages) {
            const r = norm.fromBytes(m.subject, m.data);
            if (typeof r === 'string') invalid++;
            else {
              warm(r, feed.name);
              loaded++;
            }
            if (--remaining <= 0 || m.info.pending === 0) break;
          }
        } finally {
          clearTimeout(timer);
          await messages.close();
        }
      }
      const level = remaining > 0 ? 'warn' : 'info';
      this.log[level](
        { feed: feed.name, stream, loaded, invalid, missing: Math.max(0, remaining), ms: Date.now() - started },
        remaining > 0 ? `warm start incomplete after ${timeoutMs} ms; continuing with live data` : 'warm start loaded',
      );
    } catch (err) {
      // A missing stream or a JetStream outage must not keep the gateway down:
      // state then builds from live ticks, as without JetStream.
      this.log.warn({ err, feed: feed.name, stream, loaded }, 'warm start failed; state builds from live ticks');
    }
  }

  private watchStatus(nc: NatsConnection): void {
    void (async () => {
      for await (const s of nc.status()) {
        switch (s.type) {
          case 'disconnect':
            this.status = { state: 'reconnecting', since: Date.now() };
            this.log.warn({ server: s.server }, 'NATS disconnected');
            break;
          case 'reconnect':
            this.reconnects++;
            this.status = { state: 'connected', server: s.server };
            this.log.info({ server: s.server }, 'NATS reconnected');
            break;
          case 'slowConsumer':
            this.log.warn({ pending: s.pending }, 'NATS slow consumer: the gateway is not keeping up with its feeds');
            break;
          case 'error':
            this.log.error({ err: s.error }, 'NATS error');
            break;
          default:
            break;
        }
      }
    })();
  }

  async stop(): Promise<void> {
    const nc = this.nc;
    this.nc = null;
    for (const m of this.streams.splice(0)) await m.close().catch(() => undefined);
    if (nc && !nc.isClosed()) {
      // drain(): stop receiving, process what is buffered, then close.
      await nc.drain().catch((err: unknown) => this.log.warn({ err }, 'NATS drain failed'));
    }
    this.status = { state: 'stopped' };
  }
}
