/**
 * NATS feed source: one connection, one subscription per configured feed.
 * Messages are handled in the subscription callback (not an async
 * iterator): decode, normalize and hand over synchronously, no promise per tick.
 *
 * The connection pings its server every nats.pingIntervalMs and gives it up
 * after nats.maxPingsOut unanswered pings: a hung or partitioned server keeps
 * its TCP connection open, and nothing else would notice. It then reconnects
 * to the server of the pool (configured and cluster-advertised) least
 * recently tried, so a failover does not first wait out a dial to the silent
 * one. Subscriptions are renewed by the client; symbol state and `q` live
 * here, so clients keep their WebSockets.
 */
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type OrderedConsumerOptions } from '@nats-io/jetstream';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  nkeys,
  type Authenticator,
  type NatsConnection,
  type NodeConnectionOptions,
  type Server,
  type Subscription,
} from '@nats-io/transport-node';
import { ConfigError, redactUrl, type Config } from '../config.js';
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

/**
 * Ingest work one event-loop turn may do before the rest of what NATS
 * delivered waits in the feeds' pending queues (ms). Past it the gateway is
 * behind: it keeps reading the socket (so the server does not cut the whole
 * connection as a slow consumer) and works the queues off in later turns,
 * between which WebSocket writes and timers run.
 */
const INGEST_TURN_MS = 20;

/**
 * One JetStream request at start (a stream's info, making a consumer) may
 * take this part of nats.warmTimeoutMs, within 1-5 s: 1 s of the default
 * 10 s, so about ten attempts fit, where a healthy cluster answers in
 * milliseconds. See makeConsumer() for why a request can go unanswered;
 * with a third of them unanswered, ten in a row are about once in 60,000
 * starts.
 */
const WARM_ATTEMPT_SHARE = 10;

/**
 * A feed's subscription messages received and not yet processed, bounded
 * like a NATS client's pending limits (nats.pendingMsgsLimit,
 * nats.pendingBytesLimit). Empty unless the gateway falls behind. Over a
 * limit the oldest are dropped: for quotes the symbol's next tick heals it,
 * a book sees the sequence gap and goes stale until its next snapshot.
 */
export class FeedPending {
  private subjects: (string | undefined)[] = [];
  private datas: (Uint8Array | undefined)[] = [];
  private head = 0;
  /** Payload bytes held. */
  bytes = 0;
  /** Messages dropped over the limits since start. */
  dropped = 0;
  /** Slow-consumer episodes since start: times the feed went over a limit. */
  episodes = 0;
  /** In an episode now (dropping since it went over, not caught up yet). */
  slow = false;
  /** `dropped` before the current episode, and when the episode began. */
  droppedBefore = 0;
  episodeStart = 0;

  constructor(
    readonly feed: string,
    readonly handle: (subject: string, data: Uint8Array) => void,
  ) {}

  /** Messages held. */
  get size(): number {
    return this.subjects.length - this.head;
  }

  /** Adds a message; returns how many old ones it pushed out. */
  push(subject: string, data: Uint8Array, maxMsgs: number, maxBytes: number): number {
    let dropped = 0;
    while (this.size > 0 && (this.size >= maxMsgs || this.bytes + data.length > maxBytes)) {
      this.bytes -= this.datas[this.head]!.length;
      this.subjects[this.head] = undefined;
      this.datas[this.head] = undefined;
      this.head++;
      dropped++;
    }
    this.subjects.push(subject);
    this.datas.push(data);
    this.bytes += data.length;
    this.dropped += dropped;
    return dropped;
  }

  /** Processes up to `n` messages, oldest first. */
  work(n: number): void {
    const end = Math.min(this.subjects.length, this.head + n);
    while (this.head < end) {
      const i = this.head++;
      const subject = this.subjects[i]!;
      const data = this.datas[i]!;
      this.subjects[i] = undefined;
      this.datas[i] = undefined;
      this.bytes -= data.length;
      this.handle(subject, data);
    }
    if (this.head === this.subjects.length) {
      this.subjects.length = 0;
      this.datas.length = 0;
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.subjects.length) {
      this.subjects.splice(0, this.head);
      this.datas.splice(0, this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.subjects = [];
    this.datas = [];
    this.head = 0;
    this.bytes = 0;
  }
}

/** Reads a file named by a nats.* key; throws ConfigError naming the key and the path, never the contents. */
function readKeyFile(key: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`nats.${key}: cannot read ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}

const CREDS_BLOCK = /-{3,}[^\n]*-{3,}\r?\n\s*(\S+)\s*\r?\n\s*-{3,}[^\n]*-{3,}/g;

/** The user JWT and seed of a credentials file's text, or null if it is not one. */
function parseCreds(text: string): { jwt: string; seed: string } | null {
  const blocks = [...text.matchAll(CREDS_BLOCK)].map((m) => m[1]!);
  const jwt = blocks.find((b) => b.split('.').length === 3);
  const seed = blocks.find((b) => b.startsWith('SU'));
  return jwt !== undefined && seed !== undefined ? { jwt, seed } : null;
}

/** The user seed in a seed file's text (the file may hold comments), or null. */
function parseSeed(text: string): string | null {
  const seed = /^\s*(SU[A-Z2-7]{50,})\s*$/m.exec(text)?.[1] ?? null;
  if (seed === null) return null;
  try {
    return nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey().startsWith('U') ? seed : null;
  } catch {
    return null;
  }
}

/**
 * A secret file's bytes for the authenticator (what `check` keeps of its
 * text), read at every connection attempt so a rotated file takes effect on
 * the next reconnect; a read that fails later keeps the last good contents
 * (checked at start).
 */
function rereading(key: string, path: string, check: (text: string) => string | null, log: Logger): () => Uint8Array {
  const first = check(readKeyFile(key, path));
  if (first === null) {
    throw new ConfigError(
      key === 'credsFile'
        ? `nats.credsFile: ${JSON.stringify(path)} is not a NATS credentials file (a user JWT and an SU... nkey seed between ----- lines, as nsc writes it)`
        : `nats.nkeySeedFile: ${JSON.stringify(path)} does not hold a user nkey seed (a line SU..., as nsc or nk -gen user writes it)`,
    );
  }
  let last = new TextEncoder().encode(first);
  return () => {
    try {
      const ok = check(readFileSync(path, 'utf8'));
      if (ok !== null) last = new TextEncoder().encode(ok);
      else log.warn({ key: `nats.${key}`, path }, 'NATS secret file no longer valid; using the last good one');
    } catch (err) {
      log.warn({ key: `nats.${key}`, path, code: (err as NodeJS.ErrnoException).code }, 'NATS secret file unreadable; using the last good one');
    }
    return last;
  };
}

/**
 * The nats.js options of the nats.* keys: servers, timeouts, pings, TLS and
 * authentication. Reads and checks the credential files now (throws
 * ConfigError naming the key); their contents go to the authenticator only.
 */
function connectOptions(n: Config['nats'], log: Logger): NodeConnectionOptions {
  const authenticator: Authenticator[] = [];
  if (n.credsFile) {
    authenticator.push(credsAuthenticator(rereading('credsFile', n.credsFile, (t) => (parseCreds(t) ? t : null), log)));
  }
  if (n.nkeySeedFile) authenticator.push(nkeyAuthenticator(rereading('nkeySeedFile', n.nkeySeedFile, parseSeed, log)));
  const tls: { caFile?: string; certFile?: string; keyFile?: string } = {};
  for (const k of ['caFile', 'certFile', 'keyFile'] as const) {
    const path = n.tls[k];
    if (!path) continue;
    try {
      accessSync(path, fsConstants.R_OK);
    } catch (err) {
      throw new ConfigError(`nats.tls.${k}: cannot read ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    tls[k] = path; // read by the client at every connection attempt: rotated certificates apply on reconnect
  }
  return {
    servers: n.servers,
    name: n.name,
    timeout: n.connectTimeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: n.reconnectWaitMs,
    pingInterval: n.pingIntervalMs,
    maxPingOut: n.maxPingsOut,
    reconnectToServer: leastRecentlyTried,
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
    ...(authenticator.length > 0 ? { authenticator } : {}),
    ...(n.user ? { user: n.user, pass: n.pass } : {}),
    ...(n.token ? { token: n.token } : {}),
  };
}

/**
 * Picks the server to dial next: the one of the pool tried longest ago.
 * nats.js's own rotation may dial the server just lost first (the one it
 * connected to first stays at the head of the pool), and a frozen server
 * accepts TCP and then holds the dial for connectTimeoutMs. The server the
 * gateway was connected to is always the one tried last, so it comes after
 * every other.
 */
function leastRecentlyTried(pool: ReadonlyArray<Server>, info: unknown): Server | null {
  if (info === null || pool.length === 0) return null; // first connect: the configured order (randomized)
  let best = pool[0]!;
  for (const s of pool) if (s.lastConnect < best.lastConnect) best = s;
  return best;
}

export class NatsSource implements FeedSource {
  readonly kind = 'nats';
  readonly normalizers: (Normalizer | BookNormalizer | TradeNormalizer)[];
  /** Per subscribed feed, what it received and has not processed yet (metrics read it). */
  readonly pending: FeedPending[] = [];
  /** Times a server stopped answering pings and was given up. */
  staleConnections = 0;
  /** Trade feeds read from JetStream streams: each one's consumer now. */
  private readonly streams = new Map<string, ConsumerMessages>();
  status: SourceStatus = { state: 'starting' };
  reconnects = 0;
  private nc: NatsConnection | null = null;
  private readonly subs: Subscription[] = [];
  private readonly badLog: RateLimitedLog;
  private readonly options: NodeConnectionOptions;
  /** Messages go to the pending queues (not processed at once) until they are empty again. */
  private queueing = false;
  /** The current event-loop turn's ingest: open, when it began, messages processed. */
  private turnOpen = false;
  private turnStart = 0;
  private turnCount = 0;
  private stopped = false;
  private readonly endTurn = () => {
    this.turnOpen = false;
  };
  private readonly drainLater = () => this.drain();

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    schema?: FieldSchema,
  ) {
    this.normalizers = config.feeds.map((f) =>
      f.kind === 'book' ? new BookNormalizer(f) : f.kind === 'trade' ? new TradeNormalizer(f) : new Normalizer(f, { schema, latency: config.metrics.latency }),
    );
    this.badLog = new RateLimitedLog(log);
    // Now, not at start: a missing or invalid credential file stops the gateway before anything listens.
    this.options = connectOptions(config.nats, log);
  }

  async start(sinks: FeedSinks): Promise<void> {
    const n = this.config.nats;
    try {
      this.nc = await connect(this.options);
    } catch (err) {
      throw new NatsConnectError(`cannot connect to NATS at ${n.servers.map(redactUrl).join(', ')}: ${(err as Error).message}`, { cause: err });
    }
    const nc = this.nc;
    this.status = { state: 'connected', server: nc.getServer() };
    this.log.info({ server: nc.getServer(), pingIntervalMs: n.pingIntervalMs, maxPingsOut: n.maxPingsOut, tls: Boolean(n.tls.caFile || n.tls.certFile) }, 'NATS connected');
    this.watchStatus(nc);
    const { pendingMsgsLimit: maxMsgs, pendingBytesLimit: maxBytes } = n;
    for (const norm of this.normalizers) {
      const feed = norm.feed;
      const name = feed.name;
      if (norm instanceof TradeNormalizer && feed.jetstream !== null) continue; // read from its stream below
      const pending = new FeedPending(name, this.handler(norm, sinks));
      this.pending.push(pending);
      const handle = pending.handle;
      const sub = nc.subscribe(feed.subject, {
        ...(feed.queue ? { queue: feed.queue } : {}),
        callback: (err, msg) => {
          if (err) {
            this.log.error({ err, feed: name }, 'NATS subscription error');
            return;
          }
          if (!this.queueing) {
            if (this.inTurnBudget()) {
              handle(msg.subject, msg.data);
              return;
            }
            this.queueing = true;
            setImmediate(this.drainLater);
          }
          // The payload stays valid: the client hands each message its own bytes.
          const dropped = pending.push(msg.subject, msg.data, maxMsgs, maxBytes);
          if (dropped > 0 && !pending.slow) this.slowStarted(pending, dropped);
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
    const deadline = started + timeoutMs;
    // The stream's leader (or the cluster's, which answers the manager's own
    // API check, skipped here) may be the node just lost: ask again until
    // the others have elected one.
    const jsm = await jetstreamManager(nc, { timeout: this.attemptMs(), checkAPI: false });
    const si = await untilDeadline(() => jsm.streams.info(stream), deadline, isStreamNotFound).catch((err: unknown) => {
      throw new NatsConnectError(`feeds: ${name}: JetStream stream ${JSON.stringify(stream)} cannot be read (nats.warmTimeoutMs ${timeoutMs} ms): ${(err as Error).message}`, { cause: err });
    });
    sinks.tradeEpoch(name, `${stream}.${Date.parse(si.created).toString(36)}`);
    const ttlSec = this.config.trade.history.ttlSec;
    const recent = () =>
      ttlSec > 0 ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(Date.now() - ttlSec * 1000).toISOString() } : { deliver_policy: DeliverPolicy.All };
    const tries = { attempts: 0 };
    const { consumer, info } = await this.makeConsumer(nc, name, stream, () => ({ filter_subjects: feed.subject, ...recent() }), deadline, tries).catch((err: unknown) => {
      throw new NatsConnectError(
        `feeds: ${name}: cannot make a consumer of JetStream stream ${JSON.stringify(stream)} (${tries.attempts} attempts, nats.warmTimeoutMs ${timeoutMs} ms): ${(err as Error).message}`,
        { cause: err },
      );
    });
    let backlog = info.num_pending;
    // The consumer lives on one node of a cluster. nats.js makes an ordered
    // consumer again when the server says it is gone, but not when its node
    // is (the cluster still lists it there, and after a reconnect nothing
    // more is heard of it). A live consumer answers every pull, at the least
    // when it expires; one silent for two pulls is closed, and reading goes
    // on with a new one from the next stream sequence, nothing lost or
    // twice. Pulls expire as often as the connection's pings detect a silent
    // server (defaults: 8 s, so a lost consumer is replaced within 16-20 s).
    const n = this.config.nats;
    const idleHeartbeat = Math.max(500, Math.round((n.pingIntervalMs * n.maxPingsOut) / 2));
    const consumeOpts = { max_messages: 1000, idle_heartbeat: idleHeartbeat, expires: 2 * idleHeartbeat };
    let messages = await consumer.consume(consumeOpts);
    let caughtUp: () => void = () => {};
    const done = new Promise<void>((resolve) => (caughtUp = resolve));
    if (backlog === 0) caughtUp();
    const trade = sinks.trade;
    let from = NaN;
    let lastSeq = 0;
    /** When the consumer in use last showed it is alive (a message, or the server's answer to a pull); 0 while a new one is being made. */
    let heard = Date.now();
    const watchdog = setInterval(() => {
      if (this.stopped) clearInterval(watchdog);
      else if (heard > 0 && Date.now() - heard > 2 * consumeOpts.expires) {
        this.log.warn({ feed: name, stream, silentMs: Date.now() - heard, after: lastSeq }, 'trade stream consumer silent; reading on with a new one');
        heard = 0;
        void messages.close().catch(() => undefined);
      }
    }, idleHeartbeat);
    watchdog.unref();
    const watch = (msgs: ConsumerMessages) => {
      void (async () => {
        for await (const st of msgs.status()) {
          if (st.type === 'debug' || st.type === 'exceeded_limits') {
            if (msgs === messages && heard > 0) heard = Date.now(); // the server answered a pull (408 when it expired empty)
          } else if (st.type === 'consumer_not_found' || st.type === 'consumer_deleted' || st.type === 'stream_not_found') {
            this.log.warn({ feed: name, stream, event: st }, 'trade stream consumer lost');
          } else if (st.type === 'ordered_consumer_recreated') {
            this.log.info({ feed: name, stream, after: lastSeq }, 'trade stream consumer made again');
          }
        }
      })().catch(() => undefined);
    };
    /** A new ordered consumer from the stream sequence after the last read, retried until it is made (a cluster may be electing). */
    const jsRetry = jetstream(nc, { timeout: Math.min(5000, consumeOpts.expires) });
    const reopen = async (): Promise<ConsumerMessages | null> => {
      for (let attempt = 1; !this.stopped; attempt++) {
        try {
          const after = lastSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 } : recent();
          const next = await jsRetry.consumers.get(stream, { filter_subjects: feed.subject, ...after });
          const msgs = await next.consume(consumeOpts);
          this.log.info({ feed: name, stream, after: lastSeq, attempt }, 'trade stream consumer made again');
          return msgs;
        } catch (err) {
          if (attempt === 1 || attempt % 10 === 0) this.log.warn({ feed: name, stream, err, attempt }, 'trade stream consumer cannot be made yet; retrying');
          await new Promise((r) => setTimeout(r, idleHeartbeat));
        }
      }
      return null;
    };
    void (async () => {
      for (;;) {
        this.streams.set(name, messages);
        watch(messages);
        try {
          for await (const m of messages) {
            if (from !== from) from = m.seq;
            lastSeq = m.seq;
            heard = Date.now();
            const r = norm.fromBytes(m.subject, m.data);
            if (typeof r === 'string') {
              this.badLog.warn(`${name}:${r}`, { feed: name, reason: r, subject: m.subject, bytes: m.data.length }, 'invalid trade message dropped');
            } else {
              r.streamSeq = m.seq;
              r.streamFrom = from;
              try {
                trade(r, name);
              } catch (err) {
                norm.counters.errors++;
                this.badLog.warn(`${name}:error`, { feed: name, err }, 'message processing failed');
              }
            }
            if (backlog > 0 && --backlog === 0) caughtUp();
          }
        } catch (err) {
          this.log.warn({ feed: name, stream, err }, 'trade stream consumer failed; reading on with a new one');
        }
        if (this.stopped) return;
        heard = 0;
        const next = await reopen();
        if (next === null) return;
        messages = next;
        heard = Date.now();
      }
    })();
    const timer = setTimeout(caughtUp, Math.max(0, timeoutMs - (Date.now() - started)));
    await done;
    clearTimeout(timer);
    const level = backlog > 0 ? 'warn' : 'info';
    this.log[level]({ feed: name, stream, missing: backlog, attempts: tries.attempts, ms: Date.now() - started }, backlog > 0 ? 'trade history incomplete at start; continuing' : 'trades read from their stream');
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

  /** How long one JetStream request at start may take (WARM_ATTEMPT_SHARE). */
  private attemptMs(): number {
    return Math.min(5000, Math.max(1000, Math.round(this.config.nats.warmTimeoutMs / WARM_ATTEMPT_SHARE)));
  }

  /**
   * Makes an ephemeral consumer of `stream` and reads its info, trying again
   * until about `deadline` (the last attempt may end up to attemptMs() after
   * it); `tries.attempts` counts the attempts, failed or not.
   *
   * JetStream places such a consumer on one node of the stream's, chosen at
   * random among those the cluster takes to be up. After a node is lost the
   * cluster can go on taking it to be up for some time (half a minute and
   * more in the tests), so a consumer can be placed on the lost node: that
   * request is never answered, and only a new one gets a new placement (one
   * in three goes to the lost node of an R3 stream). Each attempt is
   * therefore given a part of nats.warmTimeoutMs (WARM_ATTEMPT_SHARE), so
   * several fit before the deadline; a healthy cluster answers within
   * milliseconds. The consumer keeps that timeout for the requests it makes
   * later (a trade feed's, made again after a reconnect). Right after a
   * stream's leader is lost JetStream also refuses for a moment while the
   * others elect a new one; a stream that does not exist is final.
   * `options` is called for each attempt.
   */
  private async makeConsumer(nc: NatsConnection, feed: string, stream: string, options: () => Partial<OrderedConsumerOptions>, deadline: number, tries: { attempts: number }) {
    const js = jetstream(nc, { timeout: this.attemptMs() });
    return untilDeadline(
      async () => {
        tries.attempts++;
        const consumer = await js.consumers.get(stream, options());
        return { consumer, info: await consumer.info(true) };
      },
      deadline,
      isStreamNotFound,
      (err) => this.log.debug({ feed, stream, attempt: tries.attempts, err }, 'JetStream did not make the consumer; trying again'),
    );
  }

  /** Reads the last message of every subject of the feed from its JetStream stream. */
  private async warmStart(nc: NatsConnection, norm: Normalizer, warm: TickSink): Promise<void> {
    const feed = norm.feed;
    const stream = feed.jetstream!;
    const timeoutMs = this.config.nats.warmTimeoutMs;
    const started = Date.now();
    const tries = { attempts: 0 };
    let loaded = 0;
    let invalid = 0;
    try {
      const { consumer, info } = await this.makeConsumer(nc, feed.name, stream, () => ({ filter_subjects: feed.subject, deliver_policy: DeliverPolicy.LastPerSubject }), started + timeoutMs, tries);
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
        { feed: feed.name, stream, loaded, invalid, missing: Math.max(0, remaining), attempts: tries.attempts, ms: Date.now() - started },
        remaining > 0 ? `warm start incomplete after ${timeoutMs} ms; continuing with live data` : 'warm start loaded',
      );
    } catch (err) {
      // A missing stream or a JetStream outage must not keep the gateway down:
      // state then builds from live ticks, as without JetStream.
      this.log.warn({ err, feed: feed.name, stream, loaded, attempts: tries.attempts, ms: Date.now() - started }, 'warm start failed; state builds from live ticks');
    }
  }

  /**
   * Whether this turn's ingest may go on processing at once. The clock is
   * read at a turn's first message and then every 64th, so the tick path
   * pays a counter most of the time.
   */
  private inTurnBudget(): boolean {
    if (!this.turnOpen) {
      this.turnOpen = true;
      this.turnCount = 0;
      this.turnStart = performance.now();
      setImmediate(this.endTurn);
      return true;
    }
    if ((++this.turnCount & 63) !== 0) return true;
    return performance.now() - this.turnStart < INGEST_TURN_MS;
  }

  /** Works the pending queues off for up to a turn's budget, feeds in turn, then yields to the event loop. */
  private drain(): void {
    if (this.stopped) return;
    const start = performance.now();
    let left = true;
    while (left) {
      left = false;
      for (const p of this.pending) {
        if (p.size === 0) continue;
        p.work(64);
        if (p.size > 0) left = true;
        else if (p.slow) this.slowEnded(p);
      }
      if (performance.now() - start >= INGEST_TURN_MS) break;
    }
    if (left) setImmediate(this.drainLater);
    else this.queueing = false;
  }

  /** A feed went over its pending limits: counted and logged once, until it catches up. */
  private slowStarted(p: FeedPending, dropped: number): void {
    p.slow = true;
    p.episodes++;
    p.episodeStart = Date.now();
    p.droppedBefore = p.dropped - dropped;
    const n = this.config.nats;
    this.log.warn(
      { feed: p.feed, pendingMsgs: p.size, pendingBytes: p.bytes, pendingMsgsLimit: n.pendingMsgsLimit, pendingBytesLimit: n.pendingBytesLimit },
      'NATS slow consumer: the gateway is not keeping up with this feed; its oldest pending messages are dropped until it catches up',
    );
  }

  private slowEnded(p: FeedPending): void {
    p.slow = false;
    this.log.info({ feed: p.feed, dropped: p.dropped - p.droppedBefore, ms: Date.now() - p.episodeStart }, 'NATS slow consumer caught up');
  }

  private watchStatus(nc: NatsConnection): void {
    const n = this.config.nats;
    void (async () => {
      for await (const s of nc.status()) {
        switch (s.type) {
          case 'staleConnection':
            this.staleConnections++;
            this.log.warn(
              { server: nc.getServer(), pingIntervalMs: n.pingIntervalMs, maxPingsOut: n.maxPingsOut },
              'NATS server stopped answering pings; reconnecting to another server',
            );
            break;
          case 'disconnect':
            this.status = { state: 'reconnecting', since: Date.now() };
            this.log.warn({ server: s.server }, 'NATS disconnected');
            break;
          case 'reconnect': {
            const since = this.status.state === 'reconnecting' ? this.status.since : Date.now();
            this.reconnects++;
            this.status = { state: 'connected', server: s.server };
            this.log.info({ server: s.server, ms: Date.now() - since }, 'NATS reconnected');
            break;
          }
          case 'update':
            this.log.debug({ added: s.added, deleted: s.deleted }, 'NATS cluster servers changed');
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
    this.stopped = true;
    for (const p of this.pending) p.clear();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const m of streams) await m.close().catch(() => undefined);
    if (nc && !nc.isClosed()) {
      // drain(): stop receiving, process what is buffered, then close.
      await nc.drain().catch((err: unknown) => this.log.warn({ err }, 'NATS drain failed'));
    }
    this.status = { state: 'stopped' };
  }
}

const isStreamNotFound = (err: unknown): boolean => /stream not found/i.test((err as Error).message);

/**
 * Runs `attempt` until it succeeds, the deadline passes (the last error is
 * thrown), or an error is final. Attempts start at least 100 ms, growing to
 * 1 s, apart: one refused at once waits, one that timed out is followed at
 * once by the next.
 */
async function untilDeadline<T>(attempt: () => Promise<T>, deadline: number, final: (err: unknown) => boolean, retrying?: (err: unknown) => void): Promise<T> {
  for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
    const start = Date.now();
    try {
      return await attempt();
    } catch (err) {
      const next = Math.max(Date.now(), start + wait);
      if (final(err) || next >= deadline) throw err;
      retrying?.(err);
      await new Promise((r) => setTimeout(r, next - Date.now()));
    }
  }
}
