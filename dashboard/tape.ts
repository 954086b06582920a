/**
 * Time and sales of the selected symbol: its trade prints, newest on top,
 * each row its time, price and size, coloured by the side that initiated
 * it (buyer green, seller red, neutral when the source does not say). The
 * tape keeps the last `length` prints; older ones drop off the bottom.
 * Trades the gateway could not deliver (a `gap`, or a resume that was not
 * recovered) show as a row of their own where they were lost.
 *
 * The SDK delivers each trade once and in order, also across reconnects,
 * so the tape only appends. Trades go into a ring and mark the tape dirty;
 * `render()` runs once per animation frame and writes a cell only when its
 * text changes. The rows are made once.
 */
import type { SymbolStatus, Trade } from '../src/client/index.js';
import { decimalsOf, price } from './format.js';

/** One line of the tape: a print, or the trades lost at that point. */
interface Entry {
  time: string;
  px: number;
  sz: number;
  /** 'b', 's', '' (side unknown) or 'lost'. */
  kind: string;
  /** For a lost entry: what it says. */
  text: string;
}

interface Row {
  el: HTMLElement;
  time: HTMLElement;
  px: HTMLElement;
  size: HTMLElement;
  kind: string;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** HH:MM:SS.mmm of epoch milliseconds (local time). */
function clock(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

function makeRow(): Row {
  const el = document.createElement('div');
  el.className = 'trow';
  const time = document.createElement('span');
  time.className = 'time';
  const px = document.createElement('span');
  px.className = 'px';
  const size = document.createElement('span');
  size.className = 'size';
  el.append(time, px, size);
  return { el, time, px, size, kind: '' };
}

export class Tape {
  private readonly rows: Row[] = [];
  /** Ring of the last `length` entries; `count` of them used, the newest at `(head - 1) mod length`. */
  private readonly ring: Array<Entry | undefined>;
  private head = 0;
  private count = 0;
  private symbol: string | null = null;
  private status: SymbolStatus | undefined;
  /** True once the gateway acknowledged the subscription: "no trades yet" rather than "waiting". */
  private acked = false;
  private dirty = true;
  private pxDecimals = 2;
  private sizeDecimals = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly heading: { symbol: HTMLElement; note: HTMLElement },
    readonly length: number,
  ) {
    this.ring = new Array<Entry | undefined>(length);
    const body = root.querySelector<HTMLElement>('.tape-body')!;
    for (let i = 0; i < length; i++) {
      const r = makeRow();
      this.rows.push(r);
      body.appendChild(r.el);
    }
  }

  get shown(): string | null {
    return this.symbol;
  }

  /** Shows another symbol's tape, empty until its trades arrive. */
  show(symbol: string | null): void {
    if (symbol === this.symbol) return;
    this.symbol = symbol;
    this.status = undefined;
    this.acked = false;
    this.ring.fill(undefined);
    this.head = 0;
    this.count = 0;
    this.pxDecimals = 2;
    this.sizeDecimals = 0;
    this.dirty = true;
  }

  /** The gateway accepted the subscription of `symbol`. */
  subscribed(symbol: string): void {
    if (symbol !== this.symbol) return;
    this.acked = true;
    this.dirty = true;
  }

  /** One trade, in order. Cheap: the row is written at the next frame. */
  add(t: Trade): void {
    if (t.symbol !== this.symbol) return;
    this.pxDecimals = Math.min(8, Math.max(this.pxDecimals, decimalsOf(t.px)));
    this.sizeDecimals = Math.min(8, Math.max(this.sizeDecimals, decimalsOf(t.sz)));
    this.push({ time: clock(t.ts ?? Date.now()), px: t.px, sz: t.sz, kind: t.side ?? '', text: '' });
  }

  /** Trades lost at this point of the tape. */
  lost(symbol: string, text: string): void {
    if (symbol !== this.symbol) return;
    this.push({ time: clock(Date.now()), px: 0, sz: 0, kind: 'lost', text });
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
    setText(this.heading.symbol, s ?? '–');
    if (s !== null && this.status === 'stale') this.root.dataset['status'] = 'stale';
    else delete this.root.dataset['status'];
    setText(this.heading.note, s === null || this.count > 0 ? '' : this.acked ? 'no trades yet' : 'waiting for trades…');
    const n = this.length;
    for (let i = 0; i < n; i++) {
      const r = this.rows[i]!;
      const e = i < this.count ? this.ring[(this.head - 1 - i + n) % n] : undefined;
      const kind = e === undefined ? 'none' : e.kind;
      if (r.kind !== kind) {
        r.kind = kind;
        r.el.className = kind === 'none' ? 'trow' : kind === 'lost' ? 'trow lost' : kind === '' ? 'trow print' : `trow print ${kind}`;
      }
      if (e === undefined) {
        setText(r.time, '');
        setText(r.px, '');
        setText(r.size, '');
      } else if (kind === 'lost') {
        setText(r.time, e.time);
        setText(r.px, e.text);
        setText(r.size, '');
      } else {
        setText(r.time, e.time);
        setText(r.px, price(e.px, this.pxDecimals));
        setText(r.size, price(e.sz, this.sizeDecimals));
      }
    }
  }

  private push(e: Entry): void {
    this.ring[this.head] = e;
    this.head = (this.head + 1) % this.length;
    if (this.count < this.length) this.count++;
    this.dirty = true;
  }
}
