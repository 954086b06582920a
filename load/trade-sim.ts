/**
 * Trade prints for benchmarks: `symbols` tapes, each a price walk with its
 * own trade ids, and a stream of single prints in the payload shape of a
 * trade feed (`{px, sz, side, id, ts}`, docs/PROTOCOL.md "Trade prints";
 * the symbol travels in the subject), shared by the in-process benchmark
 * (bench/trade-fanout.ts) and the NATS publisher (load/trade-publisher.ts)
 * so that both measure one workload.
 *
 * - The symbol of each print: Zipf-weighted by rank (exponent 1 over 200
 *   symbols: the busiest gets 17% of the prints, the 200th 0.1%).
 * - Its id: 1, 2, 3, ... per symbol, in publishing order. A gateway that
 *   numbers trades itself (no JetStream) and started before the publisher
 *   gives each trade q = id, so a client can tell a trade lost between the
 *   publisher and the gateway from one lost after it.
 * - Price: whole cents around 100, a cent or two a step; size: a two-decimal
 *   number from 0.01 to 500 (fractional, like real ones: a MessagePack
 *   float64 on the wire); side: buy or sell.
 * - `ts`: the time the print was scheduled (wall-clock ms, fractional),
 *   given by the caller; the gateway passes it through, clients measure
 *   latency from it.
 *
 * Catch-up symbols (`CU-0`, ...) are tapes of their own that only a
 * catch-up burst publishes on, so that a resuming client knows exactly
 * which trades it must get back.
 */
import { crc32 } from 'node:zlib';
import { bookPicker, rng } from './book-sim.js';

export const TRADE_SIM_DEFAULTS = { symbols: 200, zipf: 1, seed: 13 } as const;

/** The symbol of tape i: `TR-000` ... (a valid NATS subject token and gateway symbol). */
export function tradeSymbol(i: number): string {
  return `TR-${String(i).padStart(3, '0')}`;
}

/** The catch-up symbol i: `CU-0` ...; no fan-out client subscribes to these. */
export function catchupSymbol(i: number): string {
  return `CU-${i}`;
}

/** One print as the gateway's trade normalizer reads it (decoded form). */
export interface TradePrint {
  px: number;
  sz: number;
  side: 'b' | 's';
  id: number;
  ts: number;
}

/** Each symbol's share of the prints (Zipf weights by index). */
export function tradeShares(symbols: number, zipf: number): Float64Array {
  const w = new Float64Array(symbols);
  let sum = 0;
  for (let i = 0; i < symbols; i++) sum += w[i] = (i + 1) ** -zipf;
  for (let i = 0; i < symbols; i++) w[i]! /= sum;
  return w;
}

/** Tapes: per symbol index, a price walk and an id counter. */
export class TradeTapes {
  private readonly cents: Int32Array;
  private readonly ids: Float64Array;

  constructor(
    n: number,
    private readonly rand: () => number,
  ) {
    this.cents = new Int32Array(n).fill(10_000);
    this.ids = new Float64Array(n);
  }

  /** The next print of tape `i`, stamped `ts`. */
  next(i: number, ts: number): TradePrint {
    const r = this.rand;
    const c = Math.max(1, this.cents[i]! + Math.floor(r() * 5) - 2);
    this.cents[i] = c;
    const id = ++this.ids[i]!;
    return { px: c / 100, sz: (1 + Math.floor(r() * 50_000)) / 100, side: r() < 0.5 ? 'b' : 's', id, ts };
  }

  /** Prints published on tape `i`: its last id. */
  published(i: number): number {
    return this.ids[i]!;
  }
}

/** The prints of the fan-out workload: which symbol, then the print. */
export class TradeSim {
  readonly symbols: string[];
  readonly shares: Float64Array;
  private readonly cumulative: Float64Array;
  private readonly pickRand: () => number;
  readonly tapes: TradeTapes;

  constructor(o: { symbols: number; zipf: number; seed: number }) {
    this.symbols = Array.from({ length: o.symbols }, (_, i) => tradeSymbol(i));
    this.shares = tradeShares(o.symbols, o.zipf);
    this.cumulative = new Float64Array(o.symbols);
    let sum = 0;
    for (let i = 0; i < o.symbols; i++) this.cumulative[i] = sum += this.shares[i]!;
    this.pickRand = rng(o.seed);
    this.tapes = new TradeTapes(o.symbols, rng(o.seed + 1));
  }

  /** The symbol index of the next print, Zipf-weighted. */
  pick(): number {
    const u = this.pickRand() * this.cumulative[this.cumulative.length - 1]!;
    let lo = 0;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cumulative[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/**
 * The symbols of client `index` (a global index, so the picks do not depend
 * on how clients are split over processes): `k` distinct symbols from its
 * own seeded stream, uniformly.
 */
export function tradePicker(symbols: readonly string[], seed: number): (index: number, k: number) => string[] {
  return bookPicker(symbols, 0, true, seed);
}

/** Trades delivered per print that the subscriptions imply: the sum over clients of their symbols' shares. */
export function expectedPerTrade(o: { symbols: number; zipf: number; clients: number; perClient: number; seed: number }): number {
  const shares = tradeShares(o.symbols, o.zipf);
  const names = Array.from({ length: o.symbols }, (_, i) => tradeSymbol(i));
  const index = new Map(names.map((s, i) => [s, i]));
  const pick = tradePicker(names, o.seed);
  let sum = 0;
  for (let c = 0; c < o.clients; c++) for (const s of pick(c, o.perClient)) sum += shares[index.get(s)!]!;
  return sum;
}

/**
 * A running CRC32 over a tape's prints as a client decodes them (id, price,
 * size, side, time): the publisher's and the client's agree only when the
 * client got exactly the prints published, in order.
 */
export function tradeDigest(crc: number, t: { id?: unknown; px: unknown; sz: unknown; side?: unknown; ts?: unknown }): number {
  return crc32(`${String(t.id)},${String(t.px)},${String(t.sz)},${String(t.side)},${String(t.ts)};`, crc);
}
