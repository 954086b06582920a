/**
 * Deterministic market simulator: a mixed universe of equities, FX pairs and
 * crypto pairs whose activity follows a Zipf law, with quotes and trades that
 * respect the invariants of a real feed (bid < ask, prices on the tick grid,
 * cumulative volume, session extremes). It emits ticks in the ingest contract
 * (full state first, changed fields after), so the embedded feed and a NATS
 * publisher can share it and a given seed replays the same market.
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
 */
export class MarketSim {
  /** Symbol names, index 0 the most active (Zipf rank 1). */
  readonly symbols: readonly string[];

  private readonly books: readonly Book[];
  private readonly index = new Map<string, number>();
  /** cumulative[i] = sum of Zipf weights of ranks 0..i; sampled by binary search. */
  private readonly cumulative: Float64Array;
  private readonly total: number;
  private readonly tradeRatio: number;
  private readonly rng: Rng;

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
    this.tradeRatio = tradeRatio;
    // Separate streams: the universe's parameters do not shift the tick stream.
    const setup = new Rng(seed, 1);
    this.rng = new Rng(seed, 2);

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

  /** Zipf rank of the next symbol: the first i with cumulative[i] > u. */
  private pick(): number {
    const c = this.cumulative;
    const u = this.rng.float() * this.total;
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Opens the symbol's session: quotes around the open, an opening print, full state out. */
  private first(b: Book, t: SimTick): void {
    b.fair = b.anchor;
    b.spread = b.baseSpread;
    this.setQuotes(b);
    b.bidSize = this.quoteSize(b);
    b.askSize = this.quoteSize(b);
    const px = this.tradePrice(b, this.rng.float() < 0.5);
    b.last = b.open = b.high = b.low = px;
    b.lastSize = this.tradeSize(b);
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
    const k = b.scale;
    if (px !== b.last) {
      b.last = px;
      t.last = px / k;
    }
    if (size !== b.lastSize) {
      b.lastSize = size;
      t.lastSize = size;
    }
    b.volume += size;
    t.volume = b.volume;
    if (px > b.high) {
      b.high = px;
      t.high = px / k;
    }
    if (px < b.low) {
      b.low = px;
      t.low = px / k;
    }
    // Order flow nudges the fair price, so trades and later quotes correlate.
    b.fair += buy ? b.impact : -b.impact;
  }

  /** Places bid and ask around the fair mid; bid >= 1 tick keeps prices positive. */
  private setQuotes(b: Book): void {
    const bid = Math.round(Math.exp(b.fair) - b.spread / 2);
    b.bid = bid < 1 ? 1 : bid;
    b.ask = b.bid + b.spread;
  }

  /** Aggressor side's touch mostly; sometimes inside a spread wider than one tick. */
  private tradePrice(b: Book, buy: boolean): number {
    const r = this.rng;
    const inside = b.ask - b.bid - 1;
    if (inside > 0 && r.float() < 0.15) return b.bid + 1 + Math.floor(r.float() * inside);
    return buy ? b.ask : b.bid;
  }

  private quoteSize(b: Book): number {
    return b.lot * this.rng.geometric(LOG_Q_QUOTE);
  }

  private tradeSize(b: Book): number {
    const r = this.rng;
    if (b.oddLots && b.lot > 1 && r.float() < 0.25) return 1 + Math.floor(r.float() * (b.lot - 1));
    return b.lot * r.geometric(LOG_Q_TRADE);
  }
}

/** Adds or removes one lot, never going below one lot. */
function nudge(size: number, lot: number, up: boolean): number {
  return up || size <= lot ? size + lot : size - lot;
}
