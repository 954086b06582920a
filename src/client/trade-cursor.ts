/**
 * What the client keeps per trade subscription (docs/PROTOCOL.md, Trade
 * prints): the position `{e, q}` of the last trade it delivered, which it
 * sends back as `since` on every new connection, and the epoch of the
 * current connection's ack, which places the trades that follow it (a
 * `trade` carries `q` only).
 *
 * The gateway promises every trade once, in order; the cursor still drops a
 * trade at or below its position in the same epoch, since a resubscription
 * on a live connection (a second `subscribeTrades`) makes the gateway
 * replay from the `since` it was sent, which may be behind the trades
 * already delivered meanwhile.
 */
import type { SymbolStatus, TradePosition, TradeResume } from './types.js';

export class TradeCursor {
  /** Epoch of the last delivered trade (or of the position trades are wanted after); null: a fresh start, `last` applies. */
  private posE: string | null;
  private posQ: number;
  /** Epoch of this connection's ack; null until it arrives, and trades before it are not placed. */
  epoch: string | null = null;
  status: SymbolStatus | null = null;
  /** Whether a `stale` event was the last one reported; kept across reconnects. */
  stale = false;
  /** Trades dropped as at or below the position (counted; the gateway should send none). */
  duplicates = 0;

  constructor(
    readonly symbol: string,
    public throttleMs: number,
    /** Trades before the ack's position to ask for on a fresh start. */
    public last: number,
    since: TradePosition | null,
  ) {
    this.posE = since?.e ?? null;
    this.posQ = since?.q ?? 0;
  }

  /** What `since` to send for this symbol now, or null for a fresh start. */
  since(): TradePosition | null {
    return this.posE === null ? null : { e: this.posE, q: this.posQ };
  }

  /** The position of the last trade delivered (or resumed after), a copy. */
  position(): TradePosition | undefined {
    return this.since() ?? undefined;
  }

  /** Resume after `p` from the next subscription on (the `since` option). */
  resumeFrom(p: TradePosition): void {
    this.posE = p.e;
    this.posQ = p.q;
  }

  /** A new connection: the position carries over; status and epoch wait for the gateway. */
  reset(): void {
    this.epoch = null;
    this.status = null;
  }

  /**
   * This connection's ack for the symbol: `at` is the gateway's position,
   * `sent` the `since` the request carried (null: fresh), `rec` the ack's
   * verdict on it. Returns the resume to report, or null for a fresh start.
   */
  acked(at: TradePosition, sent: TradePosition | null, rec: boolean | undefined): TradeResume | null {
    this.epoch = at.e;
    if (sent === null) {
      // Trades after at.q follow; with `last`, up to that many before it too, so
      // the position is known only from the first trade (unless there are none).
      if (this.posE === null && (this.last === 0 || at.q === 0)) this.move(at.e, at.q);
      return null;
    }
    const since = { e: sent.e, q: sent.q };
    const position = { e: at.e, q: at.q };
    if (rec === true) return { symbol: this.symbol, since, position, recovered: true };
    // Not recovered: the gateway goes on from its position; what lies between is lost.
    if (this.posE !== at.e || this.posQ < at.q) this.move(at.e, at.q);
    return { symbol: this.symbol, since, position, recovered: false, reason: sent.e === at.e ? 'history' : 'epoch' };
  }

  /** A trade at `q`: true when it is new (the position moves to it), false when it is a duplicate or comes before any ack. */
  accept(q: number): boolean {
    const e = this.epoch;
    if (e === null) return false;
    if (this.posE === e && q <= this.posQ) {
      this.duplicates++;
      return false;
    }
    this.move(e, q);
    return true;
  }

  /**
   * A `gap`: trades with from < q <= to are lost. Returns the range to
   * report, cut to what lies after the position (null when nothing does),
   * and moves the position to `to`, so a reconnect does not ask for them again.
   */
  gap(from: number, to: number): { from: number; to: number } | null {
    const e = this.epoch;
    if (e === null) return null;
    const lo = this.posE === e ? Math.max(from, this.posQ) : from;
    if (to <= lo) return null;
    this.move(e, to);
    return { from: lo, to };
  }

  private move(e: string, q: number): void {
    this.posE = e;
    this.posQ = q;
  }
}
