/**
 * A synthetic trade feed that a k6 VU publishes to NATS (over nats-server's
 * WebSocket listener, with the NATS text protocol of book-feed.ts), for the
 * reconnect scenario's recovery checks.
 *
 * Each symbol's trades carry integer ids 1, 2, 3, ... in publishing order,
 * so a subscriber can tell a missing trade from a duplicate whatever the
 * gateway's positions are (lib/trades.ts, sequence `id`), and `ts`, the time
 * the trade was scheduled. Payloads are JSON for a gateway trade feed with
 * `kind: "trade"`, `codec: "json"`, `symbolToken: 1` (see
 * load/k6/gateway-trades.json): the symbol is the subject's second token,
 * so payloads carry no `s`.
 *
 * Plain TypeScript without k6 imports, run under Node by the unit tests and
 * by the integration test against a real nats-server and gateways.
 */

/** One trade as the gateway's trade normalizer reads it. */
export interface FeedTrade {
  px: number;
  sz: number;
  side: 'b' | 's';
  id: number;
  ts: number;
}

/** One message: a single trade, or a batch for one symbol. */
export type TradeFeedMessage = FeedTrade | { trades: FeedTrade[] };

/** Share of messages that are a batch, of 2 to {@link BATCH_MAX} trades. */
const BATCH_SHARE = 0.1;
const BATCH_MAX = 4;

/** The symbols' tapes: a price walk and the id counter of each. */
export class SyntheticTape {
  private readonly ids = new Map<string, number>();
  private readonly prices = new Map<string, number>();

  /** @param rand a generator in [0, 1), seeded by the caller for repeatable runs */
  constructor(private readonly rand: () => number) {}

  private trade(symbol: string, stampMs: number): FeedTrade {
    const id = (this.ids.get(symbol) ?? 0) + 1;
    this.ids.set(symbol, id);
    // Whole cents around 100, a cent or two a step.
    const cents = Math.max(1, (this.prices.get(symbol) ?? 10_000) + Math.floor(this.rand() * 5) - 2);
    this.prices.set(symbol, cents);
    return { px: cents / 100, sz: 1 + Math.floor(this.rand() * 500), side: this.rand() < 0.5 ? 'b' : 's', id, ts: stampMs };
  }

  /** The next message of `symbol`, each trade stamped `stampMs`. */
  message(symbol: string, stampMs: number): TradeFeedMessage {
    if (this.rand() >= BATCH_SHARE) return this.trade(symbol, stampMs);
    const n = 2 + Math.floor(this.rand() * (BATCH_MAX - 1));
    return { trades: Array.from({ length: n }, () => this.trade(symbol, stampMs)) };
  }

  /** Trades published for `symbol`: its last id. */
  published(symbol: string): number {
    return this.ids.get(symbol) ?? 0;
  }
}

/** Trades in a message. */
export function tradeCount(m: TradeFeedMessage): number {
  return 'trades' in m ? m.trades.length : 1;
}
