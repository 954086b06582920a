/**
 * The depth ladder of the selected symbol's order book, as a trading screen
 * shows it: asks above with the best ask at the bottom, the spread in the
 * middle, bids below with the best bid at the top. Each row shows price,
 * size and the cumulative size from the best price outward, with a bar for
 * the cumulative size (scaled to the larger side's total).
 *
 * Book messages only mark the ladder dirty; `render()` runs once per
 * animation frame from the SDK's verified book and writes a cell only when
 * its text changes. The rows are made once, for the subscription's depth.
 */
import type { OrderBook, SymbolStatus } from '../src/client/index.js';
import { decimalsOf, price } from './format.js';

/** One ladder row and its cells. */
interface Row {
  el: HTMLElement;
  bar: HTMLElement;
  px: HTMLElement;
  size: HTMLElement;
  cum: HTMLElement;
}

function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

function makeRow(side: 'ask' | 'bid'): Row {
  const el = document.createElement('div');
  el.className = `lrow ${side}`;
  const bar = document.createElement('span');
  bar.className = 'bar';
  const px = document.createElement('span');
  px.className = 'px';
  const size = document.createElement('span');
  size.className = 'size';
  const cum = document.createElement('span');
  cum.className = 'cum';
  el.append(bar, px, size, cum);
  return { el, bar, px, size, cum };
}

export class Ladder {
  /** asks[0] is the best ask (the bottom ask row); bids[0] the best bid (the top bid row). */
  private readonly asks: Row[] = [];
  private readonly bids: Row[] = [];
  private readonly spread: HTMLElement;
  private symbol: string | null = null;
  private status: SymbolStatus | undefined;
  private dirty = true;
  /** Decimals shown for prices and sizes of this symbol: they only grow, so columns do not jitter. */
  private pxDecimals = 2;
  private sizeDecimals = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly head: { symbol: HTMLElement; note: HTMLElement },
    readonly depth: number,
    private readonly bookOf: (symbol: string) => OrderBook | undefined,
  ) {
    const body = root.querySelector<HTMLElement>('.ladder-body')!;
    for (let i = 0; i < depth; i++) this.asks.push(makeRow('ask'));
    for (let i = 0; i < depth; i++) this.bids.push(makeRow('bid'));
    this.spread = document.createElement('div');
    this.spread.className = 'lrow spread';
    // Worst ask first, down to the best; the spread; best bid first, down to the worst.
    for (let i = depth - 1; i >= 0; i--) body.appendChild(this.asks[i]!.el);
    body.appendChild(this.spread);
    for (const r of this.bids) body.appendChild(r.el);
  }

  get shown(): string | null {
    return this.symbol;
  }

  show(symbol: string | null): void {
    if (symbol === this.symbol) return;
    this.symbol = symbol;
    this.status = undefined;
    this.pxDecimals = 2;
    this.sizeDecimals = 0;
    this.dirty = true;
  }

  /** Called per book message (or mismatch, resync): cheap, just remembers. */
  markDirty(symbol: string): void {
    if (symbol === this.symbol) this.dirty = true;
  }

  setStatus(symbol: string, status: SymbolStatus | undefined): void {
    if (symbol !== this.symbol) return;
    this.status = status;
    this.dirty = true;
  }

  render(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const s = this.symbol;
    const book = s === null ? undefined : this.bookOf(s);
    setText(this.head.symbol, s ?? '–');
    // What the badge says, most important first.
    const state = s === null ? '' : this.status === 'stale' ? 'stale' : this.status === 'unknown' && book === undefined ? 'unknown' : book !== undefined && !book.synced ? 'resync' : '';
    if (state === '') delete this.root.dataset['status'];
    else this.root.dataset['status'] = state;
    setText(this.head.note, s === null ? '' : this.status === 'unknown' && book === undefined ? `no order book for ${s}` : book === undefined ? 'waiting for the book…' : '');
    const bids = book?.bids ?? [];
    const asks = book?.asks ?? [];
    for (const l of bids) this.widen(l[0], l[1]);
    for (const l of asks) this.widen(l[0], l[1]);
    let bidTotal = 0;
    let askTotal = 0;
    for (let i = 0; i < Math.min(this.depth, bids.length); i++) bidTotal += bids[i]![1];
    for (let i = 0; i < Math.min(this.depth, asks.length); i++) askTotal += asks[i]![1];
    const scale = Math.max(bidTotal, askTotal);
    this.renderSide(this.bids, bids, scale);
    this.renderSide(this.asks, asks, scale);
    const bestBid = bids[0]?.[0];
    const bestAsk = asks[0]?.[0];
    if (bestBid !== undefined && bestAsk !== undefined) {
      const spread = bestAsk - bestBid;
      const mid = (bestAsk + bestBid) / 2;
      setText(this.spread, `spread ${price(spread, this.pxDecimals)}  ·  ${price((spread / mid) * 10_000, 1)} bps  ·  mid ${price(mid, this.pxDecimals + 1)}`);
      this.spread.classList.toggle('crossed', spread <= 0);
    } else {
      setText(this.spread, '');
    }
  }

  private widen(p: number, size: number): void {
    this.pxDecimals = Math.min(8, Math.max(this.pxDecimals, decimalsOf(p)));
    this.sizeDecimals = Math.min(8, Math.max(this.sizeDecimals, decimalsOf(size)));
  }

  private renderSide(rows: Row[], levels: OrderBook['bids'], scale: number): void {
    let cum = 0;
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      const l = levels[i];
      if (l === undefined) {
        setText(r.px, '');
        setText(r.size, '');
        setText(r.cum, '');
        r.bar.style.transform = 'scaleX(0)';
        continue;
      }
      cum += l[1];
      setText(r.px, price(l[0], this.pxDecimals));
      setText(r.size, price(l[1], this.sizeDecimals));
      setText(r.cum, price(cum, this.sizeDecimals));
      // A transform, not a width: no layout per update.
      r.bar.style.transform = `scaleX(${scale > 0 ? cum / scale : 0})`;
    }
  }
}
