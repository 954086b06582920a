/**
 * Embedded feed source: the market simulator running in-process, so the
 * gateway shows live data with no NATS at all. Its ticks go through the same
 * normalizer as NATS payloads (minus the decode).
 */
import type { Config, FeedConfig } from '../config.js';
import type { Logger } from '../log.js';
import type { FeedSinks, FeedSource, SourceStatus, TickSink } from './feed-source.js';
import { MarketSim, type SimTick } from './market-sim.js';
import type { FieldSchema } from '../protocol/field-schema.js';
import { Normalizer } from './normalize.js';

/** The embedded feed's name in metrics and logs. */
export const EMBEDDED_FEED: FeedConfig = {
  name: 'sim',
  kind: 'quote',
  subject: 'md.sim.>',
  codec: 'msgpack',
  symbolField: 's',
  symbolToken: null,
  fields: {},
  queue: null,
  staleAfterMs: 10_000,
  jetstream: null,
};

const TICK_INTERVAL_MS = 20;

export class EmbeddedSource implements FeedSource {
  readonly kind = 'embedded';
  readonly normalizers: Normalizer[];
  readonly reconnects = 0;
  status: SourceStatus = { state: 'starting' };
  private timer: NodeJS.Timeout | null = null;
  private readonly sim: MarketSim;
  /** Fractional ticks carried between intervals so the rate is exact on average. */
  private carry = 0;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    schema?: FieldSchema,
  ) {
    this.normalizers = [new Normalizer(EMBEDDED_FEED, { schema, latency: config.metrics.latency })];
    const e = config.embedded;
    this.sim = new MarketSim({ symbols: e.symbols, seed: e.seed });
  }

  async start(sinks: FeedSinks): Promise<void> {
    const sink = sinks.tick;
    const e = this.config.embedded;
    const norm = this.normalizers[0]!;
    // Every symbol gets its first (full) tick at once, so snapshots exist from the start.
    const now = Date.now();
    for (let i = 0; i < this.sim.symbols.length; i++) this.emit(norm, sink, this.sim.nextFor(i, now));
    let last = Date.now();
    // Paced by a timer, each batch stamped with the time it was due: a busy
    // loop would take a whole core from the gateway.
    this.timer = setInterval(() => {
      const t = Date.now();
      const due = ((t - last) * e.ticksPerSec) / 1000 + this.carry;
      const n = Math.floor(due);
      this.carry = due - n;
      for (let i = 0; i < n; i++) this.emit(norm, sink, this.sim.next(last + ((i + 1) * (t - last)) / n));
      last = t;
    }, TICK_INTERVAL_MS);
    this.status = { state: 'connected', server: 'embedded' };
    this.log.info({ symbols: e.symbols, ticksPerSec: e.ticksPerSec }, 'embedded synthetic feed running (no NATS configured)');
  }

  private emit(norm: Normalizer, sink: TickSink, tick: SimTick): void {
    const r = norm.fromObject(EMBEDDED_FEED.subject, tick);
    if (typeof r === 'string') return;
    norm.observe(r);
    sink(r, EMBEDDED_FEED.name);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.status = { state: 'stopped' };
  }
}
