/**
 * Deterministic market simulator: a mixed universe of equities, FX pairs and
 * crypto pairs whose activity follows a Zipf law, with quotes and trades that
 * respect the invariants of a real feed (bid < ask, prices on the tick grid,
 * cumulative volume, session extremes). It emits ticks in the ingest contract
 * (full state first, changed fields after), so the embedded feed and a NATS
 * publisher can share it and a given seed replays the same market.
 *
 * The most active symbols can also have L2 order books ({@link SimBook}, the
 * book ingest contract): a snapshot first, then level changes. A book's touch
 * is the symbol's simulated quote, so books follow the mid as it moves and
 * are never crossed (no auctions are simulated).
 *
 * Trade prints ({@link SimTradeMessage}, the trade ingest contract) come
 * from {@link MarketSim.nextTrade}: one print, or now and then a batch, at the
 * symbol's current touch, each with its own id, and with them the quote tick
 * that folds them into the symbol's state (last, lastSize, volume, high, low).
 */

/** Options of a {@link MarketSim}. */
export interface MarketSimOptions {
  /** Universe size, an integer in [1, 1_000_000]. */
  symbols: number;
  /** PRNG seed (safe integer); same seed and same call sequence give identical ticks. */
  seed: number;
  /** Zipf exponent of activity across symbols, >= 0; default 1.1 (0 = uniform). */
  zipf?: number;
  /** Fraction of ticks that are trades (the rest are quote updates), in [0, 1]; default 0.3. */
  tradeRatio?: number;
  /** Symbols with an order book: the `books` most active ones (ranks 0 to books - 1), an integer in [0, symbols]; default 0. */
  books?: number;
}

/**
 * One tick in the ingest contract. Only `s`, `ts`, `seq` are always present;
 * the first tick of each symbol carries its full state (bid, ask, bidSize,
 * askSize, last, lastSize, volume, open, high, low, close); later ticks carry
 * only the fields that changed. A trade always carries `volume`, which is how
 * a consumer tells trades from quote updates.
 */
export interface SimTick {
  /** Symbol name. */
  s: string;
  /** Tick time, epoch milliseconds. */
  ts: number;
  /** Per-symbol source sequence: 1 for the first tick, +1 per tick. */
  seq: number;
  bid?: number;
  ask?: number;
  bidSize?: number;
  askSize?: number;
  last?: number;
  lastSize?: number;
  volume?: number;
  open?: number;
  high?: number;
  low?: number;
  close?: number;
}

/** One trade print in the trade ingest contract. */
export interface SimTrade {
  /** Price: the ask for a buyer-initiated print, the bid for a seller-initiated one, strictly inside the spread when `side` is absent. */
  px: number;
  /** Size, in units (odd lots for equities, round lots otherwise). */
  sz: number;
  /** Aggressor: "b" buyer-initiated, "s" seller-initiated; absent for a print inside the spread (a midpoint or hidden fill). */
  side?: 'b' | 's';
  /** `"<symbol>-<n>"`, n = 1, 2, 3, ... per symbol: unique per symbol. */
  id: string;
  /** Print time, epoch milliseconds. */
  ts: number;
}

/**
 * One trade message: a single print, or a batch of several prints of one
 * symbol (one aggressive order filled in several pieces at one price).
 */
export type SimTradeMessage = ({ s: string } & SimTrade) | { s: string; trades: SimTrade[] };

/**
 * What {@link MarketSim.nextTrade} produces: the trade message, and the quote
 * tick that carries its effect on the symbol's state (publish both, the
 * message first). The tick is an ordinary trade tick: `volume` always,
 * `last`, `lastSize`, `high`, `low` when they change (the full state when it
 * is the symbol's first tick).
 */
export interface SimTradeStep {
  trade: SimTradeMessage;
  tick: SimTick;
}

/** One price level: [price, size]. */
export type SimLevel = [price: number, size: number];

/**
 * One order-book message in the book ingest contract. The first message of
 * each book (`seq` 1) and occasional later ones are snapshots (`snapshot:
 * true`, every level, sizes > 0); the others are level changes (absolute
 * sizes, 0 deletes a level, each price at most once per side). Both sides are
 * always present, best level first; a change side may be empty.
 */
export interface SimBook {
  /** Symbol name. */
  s: string;
  /** Message time, epoch milliseconds. */
  ts: number;
  /** Per-book sequence: 1 for the first (snapshot) message, +1 per message. */
  seq: number;
  /** Present, and true, on a full snapshot. */
  snapshot?: true;
  /** Bid levels, highest price first. */
  bids: SimLevel[];
  /** Ask levels, lowest price first. */
  asks: SimLevel[];
}

// Upper bound of `symbols`. Each symbol costs a few hundred bytes of state
// allocated at construction; a million is already far beyond any venue.
const MAX_SYMBOLS = 1_000_000;

const EQUITY = 0;
const FX = 1;
const CRYPTO = 2;
type AssetClass = typeof EQUITY | typeof FX | typeof CRYPTO;

// Well-known names lead the Zipf ranking; prices are rough recent levels,
// used as the previous session's close.
const KNOWN_EQUITIES: readonly (readonly [string, number])[] = [
  ['AAPL', 190], ['MSFT', 420], ['NVDA', 120], ['AMZN', 180], ['SPY', 550], ['TSLA', 250],
  ['GOOGL', 170], ['META', 500], ['QQQ', 480], ['AMD', 160], ['BRK.B', 410], ['JPM', 200],
  ['NFLX', 650], ['AVGO', 160], ['V', 275], ['LLY', 800], ['UNH', 500], ['XOM', 115],
  ['COST', 850], ['MA', 460], ['WMT', 70], ['PG', 165], ['JNJ', 155], ['HD', 350],
  ['BAC', 40], ['KO', 63], ['PEP', 170], ['CVX', 155], ['ABBV', 175], ['MRK', 125],
  ['ADBE', 500], ['CRM', 270], ['ORCL', 140], ['CSCO', 50], ['INTC', 30], ['DIS', 100],
  ['IWM', 210], ['NKE', 80], ['MCD', 270], ['QCOM', 170], ['TXN', 195], ['IBM', 190],
  ['GS', 470], ['MS', 100], ['C', 62], ['WFC', 58], ['PFE', 28], ['T', 19],
  ['VZ', 41], ['BA', 175], ['CAT', 350], ['GE', 170], ['F', 12], ['GM', 48],
  ['UBER', 70], ['PYPL', 65], ['PLTR', 25], ['COIN', 220], ['SHOP', 75], ['BF.B', 45],
  ['BRK.A', 620_000], ['LEN.B', 150], ['HEI.A', 190],
];

const KNOWN_FX: readonly (readonly [string, number])[] = [
  ['EUR/USD', 1.08], ['USD/JPY', 151.5], ['GBP/USD', 1.27], ['AUD/USD', 0.66],
  ['USD/CHF', 0.9], ['USD/CAD', 1.36], ['NZD/USD', 0.6], ['EUR/JPY', 163.5],
  ['GBP/JPY', 192], ['EUR/GBP', 0.855], ['EUR/CHF', 0.97], ['AUD/JPY', 100],
  ['USD/MXN', 17], ['USD/CNH', 7.25], ['CHF/JPY', 168], ['CAD/JPY', 111],
  ['EUR/AUD', 1.64], ['EUR/CAD', 1.47], ['GBP/CHF', 1.14], ['AUD/NZD', 1.09],
  ['USD/ZAR', 18.5], ['USD/TRY', 32], ['USD/SEK', 10.5], ['USD/NOK', 10.7],
  ['USD/SGD', 1.35], ['USD/HKD', 7.82], ['EUR/SEK', 11.4], ['EUR/NOK', 11.6],
  ['USD/PLN', 3.95], ['NZD/JPY', 91],
];

const KNOWN_CRYPTO: readonly (readonly [string, number])[] = [
  ['BTC/USDT', 65_000], ['ETH/USDT', 3_400], ['SOL/USDT', 150], ['XRP/USDT', 0.52],
  ['BNB/USDT', 580], ['DOGE/USDT', 0.15], ['BTC/USDC', 65_000], ['ETH/BTC', 0.052],
  ['ADA/USDT', 0.45], ['AVAX/USDT', 35], ['LINK/USDT', 15], ['DOT/USDT', 7],
  ['TRX/USDT', 0.12], ['LTC/USDT', 80], ['BCH/USDT', 450], ['SHIB/USDT', 0.000024],
  ['UNI/USDT', 10], ['ATOM/USDT', 8.5], ['XLM/USDT', 0.11], ['NEAR/USDT', 6],
];

// Class of each of the leading ranks, cycled: equities dominate, with FX and
// crypto interleaved so even a small universe is mixed.
const RANK_PATTERN: readonly AssetClass[] = [EQUITY, FX, CRYPTO, EQUITY, FX, EQUITY, CRYPTO, EQUITY, EQUITY, FX];

// Per-class model constants, indexed by AssetClass.
/** Quoted spread in basis points for the most liquid names; it widens down the ranks. */
const SPREAD_BPS = [0.6, 0.15, 0.02] as const;
/** Relative mid-price stdev per quote update. */
const SIGMA = [6e-5, 2e-5, 1.2e-4] as const;
/** Stationary stdev of the log price around its open: mean reversion keeps long runs bounded. */
const RANGE = [0.04, 0.015, 0.06] as const;
/** Relative stdev of the open against the previous close. */
const GAP = [0.006, 0.0005, 0.003] as const;

// Geometric draws take log(1 - p); computed once.
const LOG_Q_QUOTE = Math.log(1 - 0.25); // quote size: mean 4 lots
const LOG_Q_TRADE = Math.log(1 - 0.45); // trade size: mean ~2 lots
const LOG_Q_WIDEN = Math.log(1 - 0.5); // spread widening factor

// Trade prints. A print is inside a spread wider than one tick this often
// (and then has no side, like a midpoint fill), else at the aggressor's touch.
const PRINT_INSIDE_P = 0.15;
/** Chance that a trade message is a batch, of 2 to PRINT_BATCH_MAX prints. */
const PRINT_BATCH_P = 0.1;
const PRINT_BATCH_MAX = 5;

// Order books. Levels per side stay within [BOOK_MIN_LEVELS, BOOK_MAX_LEVELS]
// (fewer only where bids would reach a zero price); a new book starts with 20 to 30.
const BOOK_MIN_LEVELS = 10;
const BOOK_MAX_LEVELS = 40;
const BOOK_INIT_LEVELS = 20;
const BOOK_INIT_SPREAD = 11;
/** Chance that a book message is a full snapshot ... */
const BOOK_SNAPSHOT_P = 0.001;
/** ... and the longest a book goes without one, so a consumer that joins late (or saw a gap) resyncs within this. */
const BOOK_SNAPSHOT_MS = 5000;
/** Level a change touches, 0 = the touch: geometric, so about 80% of changes fall on the top three levels. */
const LOG_Q_LEVEL = Math.log(1 - 0.42);
/** Chance of a further change in the same message (several levels updated at once). */
const BOOK_MORE_P = 0.25;
/** Size of the level at depth i, in lots: geometric with mean 3 (1 + i / 5), so deeper levels are larger. */
const LOG_Q_DEPTH = Float64Array.from({ length: BOOK_MAX_LEVELS + 1 }, (_, i) => Math.log(1 - 1 / (3 * (1 + i / 5))));

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counter): 128-bit state, passes
 * PractRand, and needs only 32-bit integer ops, so a draw is a few cycles.
 */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = 0;
  private hasSpare = false;

  constructor(seed: number, stream: number) {
    // splitmix32 spreads the seed's two 32-bit halves and the stream id over the state.
    let x = (seed >>> 0) ^ Math.imul(stream, 0x9e3779b9);
    const hi = Math.floor(seed / 4294967296) >>> 0;
    const mix = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x ^ hi;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = 1;
    for (let i = 0; i < 15; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (((this.c << 21) | (this.c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Standard normal (Box-Muller; the second value is kept for the next call). */
  gauss(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    const u = 1 - this.float(); // (0, 1]: log stays finite
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    this.hasSpare = true;
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Geometric on {1, 2, ...} with success probability p, given logQ = log(1 - p). */
  geometric(logQ: number): number {
    return 1 + Math.floor(Math.log(1 - this.float()) / logQ);
  }
}

/**
 * Per-symbol model and state. Prices are integer tick counts (price =
 * ticks / scale) so the walk never accumulates floating noise and each
 * emitted price is the double nearest its decimal value.
 */
class Book {
  seq = 0;
  ts = 0;
  /** Log of the fair mid, in ticks. */
  fair = 0;
  spread = 0;
  bid = 0;
  ask = 0;
  bidSize = 0;
  askSize = 0;
  last = 0;
  lastSize = 0;
  volume = 0;
  open = 0;
  high = 0;
  low = 0;
  /** Trade prints so far: the n of the next print's id is prints + 1. */
  prints = 0;

  constructor(
    readonly name: string,
    /** 10^decimals: one tick is 1 / scale. */
    readonly scale: number,
    /** Quote size unit (round lot). */
    readonly lot: number,
    /** Equities also print odd lots. */
    readonly oddLots: boolean,
    readonly sigma: number,
    /** Mean-reversion rate of `fair` towards `anchor` per quote update. */
    readonly kappa: number,
    /** Log-price drift of one trade in its direction. */
    readonly impact: number,
    /** Log of the opening fair mid, in ticks. */
    readonly anchor: number,
    readonly baseSpread: number,
    /** Previous session close, in ticks. */
    readonly close: number,
  ) {}
}

/** One side of a simulated order book: prices in ticks and sizes, best first. */
class SimSide {
  readonly px: number[] = [];
  readonly sz: number[] = [];
  /**
   * Prices touched by the message being built, each with its size before
   * the message (0: no level); the message is the difference. Reused.
   */
  readonly touched = new Map<number, number>();

  /** -1 for bids (prices fall away from the touch), +1 for asks. */
  constructor(readonly dir: -1 | 1) {}

  private mark(price: number, before: number): void {
    if (!this.touched.has(price)) this.touched.set(price, before);
  }

  set(i: number, size: number): void {
    this.mark(this.px[i]!, this.sz[i]!);
    this.sz[i] = size;
  }

  insert(i: number, price: number, size: number): void {
    this.mark(price, 0);
    this.px.splice(i, 0, price);
    this.sz.splice(i, 0, size);
  }

  delete(i: number): void {
    this.mark(this.px[i]!, this.sz[i]!);
    this.px.splice(i, 1);
    this.sz.splice(i, 1);
  }

  /** The price one `gap` beyond the last level, or null when that would leave the positive prices. */
  beyond(gap: number): number | null {
    const p = this.px[this.px.length - 1]! + this.dir * gap;
    return p >= 1 ? p : null;
  }

  /** Every level, as prices divided by `scale`. */
  levels(scale: number): SimLevel[] {
    const out: SimLevel[] = [];
    for (let i = 0; i < this.px.length; i++) out.push([this.px[i]! / scale, this.sz[i]!]);
    return out;
  }

  /** The touched levels whose size differs from before the message, best first; clears the marks. */
  diff(scale: number): SimLevel[] {
    const out: SimLevel[] = [];
    for (const [p, before] of this.touched) {
      const i = this.px.indexOf(p);
      const after = i < 0 ? 0 : this.sz[i]!;
      if (after !== before) out.push([p, after]);
    }
    this.touched.clear();
    // Best first: bids from the highest price, asks from the lowest.
    out.sort((a, b) => this.dir * (a[0] - b[0]));
    for (const l of out) l[0] /= scale;
    return out;
  }
}

/** A symbol's order book and its message sequence. */
class SimOrderBook {
  seq = 0;
  /** `ts` of the last snapshot. */
  snapshotAt = 0;
  readonly bids = new SimSide(-1);
  readonly asks = new SimSide(1);

  constructor(
    /** log(1 - 1 / mean gap): the gap between levels, in ticks, is geometric with that mean. */
    readonly gapLogQ: number,
  ) {}
}

/** Decimals of a price: the tick size is 10^-decimals. */
function decimalsOf(cls: AssetClass, name: string, price: number): number {
  if (cls === EQUITY) return 2;
  if (cls === FX) return name.includes('JPY') ? 3 : 5;
  // Crypto venues scale the tick to the price (about 1e-4 of it), capped at a cent.
  return Math.min(8, Math.max(2, -Math.floor(Math.log10(price * 1e-4))));
}

function lotOf(cls: AssetClass, price: number): number {
  if (cls === FX) return 1_000_000;
  if (cls === EQUITY) return price >= 10_000 ? 1 : 100;
  // About $1000 of coin per lot, as a power of ten, at least one unit.
  return Math.max(1, 10 ** Math.round(Math.log10(1000 / price)));
}

const TAIL_MULTIPLIER = [7_919, 15_485_863, 32_452_843] as const;
const TAIL_OFFSET = [4_321, 7_654_321, 9_876_543] as const;

/**
 * Names for the long tail: unique uppercase tickers of 3, 4 and then 5
 * letters, scrambled by an affine permutation of each length's name space
 * so they do not read as a counter. Independent of the seed, so publisher
 * and consumer agree on the universe for any seed.
 */
class TailNames {
  private readonly counts = [0, 0, 0];
  private generated = 0;

  constructor(private readonly taken: Set<string>) {}

  next(): string {
    for (;;) {
      const g = this.generated++;
      // One in five from the 3-letter space while it lasts, 4 letters otherwise, 5 when both run out.
      let len = g % 5 === 0 ? 3 : 4;
      if (len === 3 && this.counts[0]! >= 26 ** 3) len = 4;
      if (len === 4 && this.counts[1]! >= 26 ** 4) len = 5;
      const k = this.counts[len - 3]!;
      this.counts[len - 3] = k + 1;
      // A prime multiplier is coprime with 26^len, so the map is a bijection; a
      // different one per length keeps 3- and 4-letter names from sharing prefixes.
      let v = (k * TAIL_MULTIPLIER[len - 3]! + TAIL_OFFSET[len - 3]!) % 26 ** len;
      let name = '';
      for (let i = 0; i < len; i++) {
        name += String.fromCharCode(65 + (v % 26));
        v = Math.floor(v / 26);
      }
      // A sprinkling of share classes; the dot keeps them distinct from plain names.
      if (len === 4 && g % 397 === 11) name += '.B';
      if (!this.taken.has(name)) {
        this.taken.add(name);
        return name;
      }
    }
  }
}

/** Ordered universe: names by Zipf rank with their class and previous close. */
function buildUniverse(n: number, rng: Rng): { names: string[]; classes: AssetClass[]; prices: number[] } {
  const names: string[] = [];
  const classes: AssetClass[] = [];
  const prices: number[] = [];
  const lists = [KNOWN_EQUITIES, KNOWN_FX, KNOWN_CRYPTO] as const;
  const cursor = [0, 0, 0];
  const taken = new Set<string>();
  for (const list of lists) for (const [name] of list) taken.add(name);
  const tail = new TailNames(taken);
  for (let rank = 0; rank < n; rank++) {
    let cls = RANK_PATTERN[rank % RANK_PATTERN.length]!;
    if (cursor[cls]! >= lists[cls].length) {
      // Preferred class exhausted: take the next class that still has known names.
      for (let c = 0; c < 3; c++) {
        if (cursor[c]! < lists[c]!.length) {
          cls = c as AssetClass;
          break;
        }
      }
    }
    const entry = lists[cls][cursor[cls]!];
    if (entry !== undefined) {
      cursor[cls] = cursor[cls]! + 1;
      names.push(entry[0]);
      classes.push(cls);
      prices.push(entry[1]);
    } else {
      names.push(tail.next());
      classes.push(EQUITY);
      // Log-normal around $35, like a broad equity universe.
      prices.push(Math.min(2000, Math.max(1, 35 * Math.exp(0.9 * rng.gauss()))));
    }
  }
  return { names, classes, prices };
}

function makeBook(name: string, cls: AssetClass, price: number, rank: number, rng: Rng): Book {
  const scale = 10 ** decimalsOf(cls, name, price);
  const close = Math.max(1, Math.round(price * scale));
  // Less active names trade wider.
  const liquidity = Math.sqrt(1 + rank / 50);
  const baseSpread = Math.max(1, Math.round(close * SPREAD_BPS[cls] * 1e-4 * liquidity));
  const sigma = SIGMA[cls] * Math.exp(0.3 * rng.gauss());
  // Ornstein-Uhlenbeck in log space: stationary stdev = sigma / sqrt(2 kappa).
  const range = RANGE[cls];
  const kappa = (sigma * sigma) / (2 * range * range);
  const anchor = Math.log(close) + GAP[cls] * rng.gauss();
  return new Book(name, scale, lotOf(cls, price), cls === EQUITY, sigma, kappa, sigma * 0.3, anchor, baseSpread, close);
}

/**
 * A deterministic simulated market. Each {@link MarketSim.next} call picks a
 * symbol by Zipf rank (O(log n)) and advances only that symbol, so its cost
 * does not depend on the universe size; the returned tick is its only
 * allocation.
 *
 * Book messages ({@link MarketSim.nextBook}) draw from their own random
 * stream, so asking for books does not change the ticks. A book's touch is
 * its symbol's current quote, so the book messages depend on the ticks
 * emitted before them: the same seed and the same sequence of calls give the
 * same messages.
 *
 * Trade messages ({@link MarketSim.nextTrade}) also draw from their own
 * stream; they print at the current quote and move the symbol's state (and,
 * like the ticks' own trades, nudge its fair price), so later ticks depend
 * on them in the same way.
 */
export class MarketSim {
  /** Symbol names, index 0 the most active (Zipf rank 1). */
  readonly symbols: readonly string[];
  /** Symbols with an order book: the first `books` of {@link MarketSim.symbols}. */
  readonly bookSymbols: readonly string[];

  private readonly books: readonly Book[];
  private readonly index = new Map<string, number>();
  /** cumulative[i] = sum of Zipf weights of ranks 0..i; sampled by binary search. */
  private readonly cumulative: Float64Array;
  private readonly total: number;
  private readonly tradeRatio: number;
  private readonly rng: Rng;
  /** Order books of ranks 0 to books - 1. */
  private readonly lobs: readonly SimOrderBook[];
  private readonly bookRng: Rng;
  private readonly tradeRng: Rng;

  constructor(opts: MarketSimOptions) {
    const { symbols: n, seed } = opts;
    const zipf = opts.zipf ?? 1.1;
    const tradeRatio = opts.tradeRatio ?? 0.3;
    if (!Number.isInteger(n) || n < 1 || n > MAX_SYMBOLS) {
      throw new RangeError(`MarketSimOptions.symbols must be an integer in [1, ${MAX_SYMBOLS}], got ${n}`);
    }
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`MarketSimOptions.seed must be a safe integer, got ${seed}`);
    }
    if (!Number.isFinite(zipf) || zipf < 0) {
      throw new RangeError(`MarketSimOptions.zipf must be a finite number >= 0, got ${zipf}`);
    }
    if (!(tradeRatio >= 0 && tradeRatio <= 1)) {
      throw new RangeError(`MarketSimOptions.tradeRatio must be in [0, 1], got ${tradeRatio}`);
    }
    const nBooks = opts.books ?? 0;
    if (!Number.isInteger(nBooks) || nBooks < 0 || nBooks > n) {
      throw new RangeError(`MarketSimOptions.books must be an integer in [0, symbols = ${n}], got ${nBooks}`);
    }
    this.tradeRatio = tradeRatio;
    // Separate streams: the universe's parameters do not shift the tick
    // stream, and neither books nor trade messages shift it.
    const setup = new Rng(seed, 1);
    this.rng = new Rng(seed, 2);
    this.bookRng = new Rng(seed, 3);
    this.tradeRng = new Rng(seed, 4);

    const { names, classes, prices } = buildUniverse(n, setup);
    const books: Book[] = [];
    this.cumulative = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const name = names[i]!;
      books.push(makeBook(name, classes[i]!, prices[i]!, i, setup));
      this.index.set(name, i);
      sum += (i + 1) ** -zipf;
      this.cumulative[i] = sum;
    }
    this.total = sum;
    this.books = books;
    this.symbols = Object.freeze(names);
    this.bookSymbols = Object.freeze(names.slice(0, nBooks));
    const lobs: SimOrderBook[] = [];
    for (let i = 0; i < nBooks; i++) {
      // Levels sit on most ticks of a tight book and spread out with the quoted spread.
      const gap = Math.max(1.25, books[i]!.baseSpread / 2);
      lobs.push(new SimOrderBook(Math.log(1 - 1 / gap)));
    }
    this.lobs = lobs;
  }

  /** Produces the next tick for a Zipf-chosen symbol, stamped with ts = nowMs. */
  next(nowMs: number): SimTick {
    return this.nextFor(this.pick(), nowMs);
  }

  /**
   * Produces the next tick for the symbol at `rank` (index into
   * {@link MarketSim.symbols}), e.g. to give every symbol its first, full
   * tick at start. Throws a RangeError for a rank outside the universe.
   */
  nextFor(rank: number, nowMs: number): SimTick {
    const b = this.books[rank];
    if (b === undefined) throw new RangeError(`rank: expected 0 to ${this.books.length - 1}, got ${rank}`);
    b.seq++;
    b.ts = nowMs;
    const tick: SimTick = { s: b.name, ts: nowMs, seq: b.seq };
    if (b.seq === 1) this.first(b, tick);
    else if (this.rng.float() < this.tradeRatio) this.trade(b, tick);
    else this.quote(b, tick);
    return tick;
  }

  /** The full current state of a symbol as the sum of all ticks emitted so far (undefined if never ticked). */
  stateOf(symbol: string): Omit<SimTick, 'seq'> | undefined {
    const i = this.index.get(symbol);
    const b = i === undefined ? undefined : this.books[i];
    if (b === undefined || b.seq === 0) return undefined;
    const k = b.scale;
    return {
      s: b.name,
      ts: b.ts,
      bid: b.bid / k,
      ask: b.ask / k,
      bidSize: b.bidSize,
      askSize: b.askSize,
      last: b.last / k,
      lastSize: b.lastSize,
      volume: b.volume,
      open: b.open / k,
      high: b.high / k,
      low: b.low / k,
      close: b.close / k,
    };
  }

  /**
   * Produces the next book message for a Zipf-chosen symbol among
   * {@link MarketSim.bookSymbols}, stamped with ts = nowMs. Throws a
   * RangeError when the simulator has no books.
   */
  nextBook(nowMs: number): SimBook {
    const n = this.lobs.length;
    if (n === 0) throw new RangeError('nextBook: this MarketSim has no books (MarketSimOptions.books is 0)');
    return this.nextBookFor(this.pick(this.bookRng, this.cumulative[n - 1]!, n), nowMs);
  }

  /**
   * Produces the next book message for the book at `rank` (index into
   * {@link MarketSim.bookSymbols}): its snapshot the first time, e.g. to give
   * every book a snapshot at start. Throws a RangeError for a rank without a
   * book.
   */
  nextBookFor(rank: number, nowMs: number): SimBook {
    const lob = this.lobs[rank];
    if (lob === undefined) throw new RangeError(`rank: expected 0 to ${this.lobs.length - 1}, got ${rank}`);
    const b = this.books[rank]!;
    const r = this.bookRng;
    lob.seq++;
    // The touch is the symbol's quote; before its first tick, the quote that tick will set.
    const bid = b.seq === 0 ? quoteBid(b.anchor, b.baseSpread) : b.bid;
    const ask = b.seq === 0 ? bid + b.baseSpread : b.ask;
    if (lob.seq === 1) {
      this.openBook(b, lob, bid, ask);
      return this.bookSnapshot(b, lob, nowMs);
    }
    const snapshot = r.float() < BOOK_SNAPSHOT_P || nowMs - lob.snapshotAt >= BOOK_SNAPSHOT_MS;
    this.follow(b, lob, bid, ask);
    this.churn(b, lob);
    while (r.float() < BOOK_MORE_P) this.churn(b, lob);
    if (snapshot) {
      lob.bids.touched.clear();
      lob.asks.touched.clear();
      return this.bookSnapshot(b, lob, nowMs);
    }
    let bids = lob.bids.diff(b.scale);
    let asks = lob.asks.diff(b.scale);
    // Changes that undo each other leave nothing to send; a message is never empty.
    while (bids.length + asks.length === 0) {
      this.churn(b, lob);
      bids = lob.bids.diff(b.scale);
      asks = lob.asks.diff(b.scale);
    }
    return { s: b.name, ts: nowMs, seq: lob.seq, bids, asks };
  }

  /** The current levels of a symbol's book, best first, as the sum of all its messages (undefined without messages). */
  bookOf(symbol: string): { bids: SimLevel[]; asks: SimLevel[] } | undefined {
    const i = this.index.get(symbol);
    const lob = i === undefined ? undefined : this.lobs[i];
    if (lob === undefined || lob.seq === 0) return undefined;
    const k = this.books[i!]!.scale;
    return { bids: lob.bids.levels(k), asks: lob.asks.levels(k) };
  }

  /**
   * Produces the next trade message for a Zipf-chosen symbol, stamped with
   * ts = nowMs, and the quote tick that goes with it.
   */
  nextTrade(nowMs: number): SimTradeStep {
    return this.nextTradeFor(this.pick(this.tradeRng), nowMs);
  }

  /**
   * Produces the next trade message for the symbol at `rank` (index into
   * {@link MarketSim.symbols}) and its quote tick. A symbol that has not
   * ticked yet opens its session with this tick (full state). Throws a
   * RangeError for a rank outside the universe.
   */
  nextTradeFor(rank: number, nowMs: number): SimTradeStep {
    const b = this.books[rank];
    if (b === undefined) throw new RangeError(`rank: expected 0 to ${this.books.length - 1}, got ${rank}`);
    const r = this.tradeRng;
    b.seq++;
    b.ts = nowMs;
    const tick: SimTick = { s: b.name, ts: nowMs, seq: b.seq };
    const first = b.seq === 1;
    if (first) this.first(b, tick, r);
    const { last, lastSize, high, low } = b;
    // The aggressor takes the touch; a print inside a wider spread names no side.
    const inside = b.ask - b.bid - 1;
    let side: 'b' | 's' | undefined;
    let px: number;
    if (inside > 0 && r.float() < PRINT_INSIDE_P) {
      px = b.bid + 1 + Math.floor(r.float() * inside);
    } else {
      side = r.float() < 0.5 ? 'b' : 's';
      px = side === 'b' ? b.ask : b.bid;
    }
    const n = r.float() < PRINT_BATCH_P ? 2 + Math.floor(r.float() * (PRINT_BATCH_MAX - 1)) : 1;
    const prints: SimTrade[] = [];
    for (let i = 0; i < n; i++) {
      const size = this.tradeSize(b, r);
      b.prints++;
      const id = `${b.name}-${b.prints}`;
      prints.push(side === undefined ? { px: px / b.scale, sz: size, id, ts: nowMs } : { px: px / b.scale, sz: size, side, id, ts: nowMs });
      this.print(b, px, size);
      if (side !== undefined) b.fair += side === 'b' ? b.impact : -b.impact;
    }
    // A first tick is the full state: every trade field is written again.
    if (first) this.tradeFields(b, tick, NaN, NaN, NaN, NaN);
    else this.tradeFields(b, tick, last, lastSize, high, low);
    const trade: SimTradeMessage = n === 1 ? { s: b.name, ...prints[0]! } : { s: b.name, trades: prints };
    return { trade, tick };
  }

  /** Zipf rank among the first `n` symbols, drawn from `rng`: the first i with cumulative[i] > u. */
  private pick(rng = this.rng, total = this.total, n = this.cumulative.length): number {
    const c = this.cumulative;
    const u = rng.float() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Opens the symbol's session: quotes around the open, an opening print, full state out. */
  private first(b: Book, t: SimTick, r = this.rng): void {
    b.fair = b.anchor;
    b.spread = b.baseSpread;
    this.setQuotes(b);
    b.bidSize = this.quoteSize(b, r);
    b.askSize = this.quoteSize(b, r);
    const px = this.tradePrice(b, r.float() < 0.5, r);
    b.last = b.open = b.high = b.low = px;
    b.lastSize = this.tradeSize(b, r);
    b.volume = b.lastSize;
    const k = b.scale;
    t.bid = b.bid / k;
    t.ask = b.ask / k;
    t.bidSize = b.bidSize;
    t.askSize = b.askSize;
    t.last = px / k;
    t.lastSize = b.lastSize;
    t.volume = b.volume;
    t.open = px / k;
    t.high = px / k;
    t.low = px / k;
    t.close = b.close / k;
  }

  /** A quote update: the fair mid walks, the spread breathes, sizes refresh; at least one field changes. */
  private quote(b: Book, t: SimTick): void {
    const r = this.rng;
    b.fair += b.sigma * r.gauss() - b.kappa * (b.fair - b.anchor);
    if (r.float() < 0.03) {
      b.spread = b.baseSpread * Math.min(8, 1 + r.geometric(LOG_Q_WIDEN));
    } else if (b.spread > b.baseSpread) {
      // Widened spreads decay geometrically back to normal.
      b.spread -= Math.max(1, Math.round((b.spread - b.baseSpread) * 0.5));
    }
    const oldBid = b.bid;
    const oldAsk = b.ask;
    const oldBidSize = b.bidSize;
    const oldAskSize = b.askSize;
    this.setQuotes(b);
    // A new price level brings its own size; an unchanged level refreshes half the time.
    if (b.bid !== oldBid || r.float() < 0.5) b.bidSize = this.quoteSize(b);
    if (b.ask !== oldAsk || r.float() < 0.5) b.askSize = this.quoteSize(b);
    if (b.bid === oldBid && b.ask === oldAsk && b.bidSize === oldBidSize && b.askSize === oldAskSize) {
      // Nothing moved: a lot joins or leaves one side, so the tick is never empty.
      if (r.float() < 0.5) b.bidSize = nudge(b.bidSize, b.lot, r.float() < 0.5);
      else b.askSize = nudge(b.askSize, b.lot, r.float() < 0.5);
    }
    const k = b.scale;
    if (b.bid !== oldBid) t.bid = b.bid / k;
    if (b.ask !== oldAsk) t.ask = b.ask / k;
    if (b.bidSize !== oldBidSize) t.bidSize = b.bidSize;
    if (b.askSize !== oldAskSize) t.askSize = b.askSize;
  }

  /** A trade at or inside the touch; volume always changes, other fields only when they do. */
  private trade(b: Book, t: SimTick): void {
    const buy = this.rng.float() < 0.5;
    const px = this.tradePrice(b, buy);
    const size = this.tradeSize(b);
    const { last, lastSize, high, low } = b;
    this.print(b, px, size);
    this.tradeFields(b, t, last, lastSize, high, low);
    // Order flow nudges the fair price, so trades and later quotes correlate.
    b.fair += buy ? b.impact : -b.impact;
  }

  /** Folds one trade (price in ticks) into the session state. */
  private print(b: Book, px: number, size: number): void {
    b.last = px;
    b.lastSize = size;
    b.volume += size;
    if (px > b.high) b.high = px;
    if (px < b.low) b.low = px;
  }

  /** Writes the trade fields that differ from the values before the trade into the tick; volume always. */
  private tradeFields(b: Book, t: SimTick, last: number, lastSize: number, high: number, low: number): void {
    const k = b.scale;
    if (b.last !== last) t.last = b.last / k;
    if (b.lastSize !== lastSize) t.lastSize = b.lastSize;
    t.volume = b.volume;
    if (b.high !== high) t.high = b.high / k;
    if (b.low !== low) t.low = b.low / k;
  }

  /** Places bid and ask around the fair mid; bid >= 1 tick keeps prices positive. */
  private setQuotes(b: Book): void {
    b.bid = quoteBid(b.fair, b.spread);
    b.ask = b.bid + b.spread;
  }

  /** A new book: 20 to 30 levels a side from the touch outward, sizes growing with depth. */
  private openBook(b: Book, lob: SimOrderBook, bid: number, ask: number): void {
    const r = this.bookRng;
    lob.bids.insert(0, bid, this.levelSize(b, 0));
    lob.asks.insert(0, ask, this.levelSize(b, 0));
    for (const side of [lob.bids, lob.asks]) {
      const n = BOOK_INIT_LEVELS + Math.floor(r.float() * BOOK_INIT_SPREAD);
      while (side.px.length < n) {
        const p = side.beyond(r.geometric(lob.gapLogQ));
        if (p === null) break;
        side.insert(side.px.length, p, this.levelSize(b, side.px.length));
      }
      side.touched.clear();
    }
  }

  /**
   * Moves the touch to the quote's bid and ask: levels that would now be at
   * or inside the spread leave, the touch level appears if missing, and each
   * side is brought back within its level bounds. Bids stay below asks
   * because the quote's bid is below its ask.
   */
  private follow(b: Book, lob: SimOrderBook, bid: number, ask: number): void {
    for (const [side, touch] of [
      [lob.bids, bid],
      [lob.asks, ask],
    ] as const) {
      // Inside the touch: a bid above it, an ask below it.
      while (side.px.length > 0 && side.dir * (side.px[0]! - touch) < 0) side.delete(0);
      if (side.px[0] !== touch) side.insert(0, touch, this.levelSize(b, 0));
      while (side.px.length > BOOK_MAX_LEVELS) side.delete(side.px.length - 1);
      while (side.px.length < BOOK_MIN_LEVELS) {
        const p = side.beyond(this.bookRng.geometric(lob.gapLogQ));
        if (p === null) break;
        side.insert(side.px.length, p, this.levelSize(b, side.px.length));
      }
    }
  }

  /**
   * One change near the touch: a size change (60%), a level added in the
   * first gap at or beyond the chosen level (20%), or a level deleted (20%;
   * never the touch, which is the quote's). Each side keeps its level bounds.
   */
  private churn(b: Book, lob: SimOrderBook): void {
    const r = this.bookRng;
    const side = r.float() < 0.5 ? lob.bids : lob.asks;
    const n = side.px.length;
    const i = Math.min(n - 1, r.geometric(LOG_Q_LEVEL) - 1);
    const u = r.float();
    if (u >= 0.8 && i >= 1 && n > BOOK_MIN_LEVELS) {
      side.delete(i);
      return;
    }
    if (u >= 0.6 && u < 0.8 && n < BOOK_MAX_LEVELS) {
      for (let j = i; j < n - 1; j++) {
        const width = Math.abs(side.px[j + 1]! - side.px[j]!);
        if (width > 1) {
          side.insert(j + 1, side.px[j]! + side.dir * (1 + Math.floor(r.float() * (width - 1))), this.levelSize(b, j + 1));
          return;
        }
      }
      const p = side.beyond(r.geometric(lob.gapLogQ));
      if (p !== null) {
        side.insert(n, p, this.levelSize(b, n));
        return;
      }
    }
    const size = this.levelSize(b, i);
    side.set(i, size !== side.sz[i] ? size : nudge(size, b.lot, r.float() < 0.5));
  }

  /** A snapshot message of the whole book, which also restarts the snapshot clock. */
  private bookSnapshot(b: Book, lob: SimOrderBook, nowMs: number): SimBook {
    lob.snapshotAt = nowMs;
    return { s: b.name, ts: nowMs, seq: lob.seq, snapshot: true, bids: lob.bids.levels(b.scale), asks: lob.asks.levels(b.scale) };
  }

  /** A resting size at depth i (0 = the touch), in lots: larger away from the touch. */
  private levelSize(b: Book, i: number): number {
    return b.lot * this.bookRng.geometric(LOG_Q_DEPTH[Math.min(i, BOOK_MAX_LEVELS)]!);
  }

  /** Aggressor side's touch mostly; sometimes inside a spread wider than one tick. */
  private tradePrice(b: Book, buy: boolean, r = this.rng): number {
    const inside = b.ask - b.bid - 1;
    if (inside > 0 && r.float() < 0.15) return b.bid + 1 + Math.floor(r.float() * inside);
    return buy ? b.ask : b.bid;
  }

  private quoteSize(b: Book, r = this.rng): number {
    return b.lot * r.geometric(LOG_Q_QUOTE);
  }

  private tradeSize(b: Book, r = this.rng): number {
    if (b.oddLots && b.lot > 1 && r.float() < 0.25) return 1 + Math.floor(r.float() * (b.lot - 1));
    return b.lot * r.geometric(LOG_Q_TRADE);
  }
}

/** The bid a quote has around a fair mid (log, in ticks) with this spread: at least one tick. */
function quoteBid(fair: number, spread: number): number {
  const bid = Math.round(Math.exp(fair) - spread / 2);
  return bid < 1 ? 1 : bid;
}

/** Adds or removes one lot, never going below one lot. */
function nudge(size: number, lot: number, up: boolean): number {
  return up || size <= lot ? size + lot : size - lot;
}
