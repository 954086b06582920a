/**
 * The watchlist table. Updates only mark a symbol dirty; `render()` runs
 * once per animation frame and touches just the dirty rows that are on
 * screen, writing a cell only when its text changes. A row scrolled out of
 * view is brought up to date when it comes back. Price cells flash green or
 * red on a change (Web Animations: no reflow, no timers). Field columns
 * (the column picker's) sit between Volume and Age.
 */
import type { SymbolState, SymbolStatus } from '../src/client/index.js';
import { formatNumber, label } from './columns.js';
import { age, decimalsOf, percent, price, signed, volume } from './format.js';

const FLASH: KeyframeAnimationOptions = { duration: 450, easing: 'ease-out' };
const FLASH_UP: Keyframe[] = [{ backgroundColor: 'rgba(38, 194, 129, 0.32)' }, { backgroundColor: 'rgba(38, 194, 129, 0)' }];
const FLASH_DOWN: Keyframe[] = [{ backgroundColor: 'rgba(255, 90, 95, 0.32)' }, { backgroundColor: 'rgba(255, 90, 95, 0)' }];

/** One table row and what it shows now. */
class Row {
  readonly name: HTMLElement;
  readonly bid: HTMLTableCellElement;
  readonly ask: HTMLTableCellElement;
  readonly last: HTMLTableCellElement;
  readonly chg: HTMLTableCellElement;
  readonly pct: HTMLTableCellElement;
  readonly vol: HTMLTableCellElement;
  readonly age: HTMLTableCellElement;
  /** Values on screen, to detect the direction of a change. */
  shownBid = Number.NaN;
  shownAsk = Number.NaN;
  shownLast = Number.NaN;
  decimals = 2;
  /** Source time of the symbol's last tick. */
  ts = Number.NaN;
  /** One cell per field column, in column order, and the decimals each has shown. */
  fields: HTMLTableCellElement[] = [];
  fieldDecimals: number[] = [];

  constructor(
    readonly symbol: string,
    readonly tr: HTMLTableRowElement,
    columns: readonly string[],
  ) {
    const q = (sel: string): HTMLTableCellElement => tr.querySelector<HTMLTableCellElement>(sel)!;
    this.name = tr.querySelector<HTMLElement>('.name')!;
    this.bid = q('.bid');
    this.ask = q('.ask');
    this.last = q('.last');
    this.chg = q('.chg');
    this.pct = q('.pct');
    this.vol = q('.vol');
    this.age = q('.age');
    tr.dataset['symbol'] = symbol;
    this.name.textContent = symbol;
    this.setColumns(columns);
  }

  /** Replaces the field cells (empty until the next render). */
  setColumns(columns: readonly string[]): void {
    for (const td of this.fields) td.remove();
    this.fields = columns.map((f) => {
      const td = document.createElement('td');
      td.className = 'num field';
      td.dataset['field'] = f;
      this.tr.insertBefore(td, this.age);
      return td;
    });
    this.fieldDecimals = columns.map(() => 0);
  }
}

function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

function setDirection(el: HTMLElement, dir: number): void {
  el.classList.toggle('up', dir > 0);
  el.classList.toggle('down', dir < 0);
}

export interface WatchlistEvents {
  select(symbol: string): void;
  remove(symbol: string): void;
}

export class Watchlist {
  private readonly rows = new Map<string, Row>();
  /** Changed and on screen: drawn next frame. */
  private readonly dirty = new Set<string>();
  /** Changed while scrolled out of view: drawn when visible again. */
  private readonly behind = new Set<string>();
  private readonly visible = new Set<string>();
  private readonly observer: IntersectionObserver;
  private selected: string | null = null;
  /** The field columns shown, in order. */
  private fieldColumns: readonly string[] = [];
  private readonly head: HTMLTableRowElement;

  constructor(
    private readonly tbody: HTMLTableSectionElement,
    private readonly template: HTMLTemplateElement,
    private readonly empty: HTMLElement,
    private readonly stateOf: (symbol: string) => Readonly<SymbolState> | undefined,
    events: WatchlistEvents,
    /** The scrolling element around the table, and a way to ask for a frame. */
    scroller: HTMLElement,
    private readonly requestRender: () => void,
  ) {
    this.head = (tbody.parentElement as HTMLTableElement).tHead!.rows[0]!;
    this.observer = new IntersectionObserver(
      (entries) => {
        let more = false;
        for (const e of entries) {
          const symbol = (e.target as HTMLElement).dataset['symbol']!;
          if (!e.isIntersecting) {
            this.visible.delete(symbol);
          } else {
            this.visible.add(symbol);
            if (this.behind.delete(symbol)) {
              this.dirty.add(symbol);
              more = true;
            }
          }
        }
        if (more) requestRender();
      },
      { root: scroller, rootMargin: '100px 0px' },
    );
    // One delegated listener for every row.
    tbody.addEventListener('click', (ev) => {
      const target = ev.target as HTMLElement;
      const tr = target.closest('tr');
      const symbol = tr?.dataset['symbol'];
      if (symbol === undefined) return;
      if (target.closest('.remove') !== null) events.remove(symbol);
      else events.select(symbol);
    });
  }

  /** The field columns shown, in order. */
  get columns(): readonly string[] {
    return this.fieldColumns;
  }

  /** Shows these field columns, in this order; every row is redrawn (those out of view when scrolled to). */
  setColumns(fields: readonly string[]): void {
    this.fieldColumns = [...fields];
    for (const th of this.head.querySelectorAll('th.field')) th.remove();
    const before = this.head.querySelector('th.age');
    for (const f of this.fieldColumns) {
      const th = document.createElement('th');
      th.className = 'field';
      th.dataset['field'] = f;
      th.title = f;
      th.textContent = label(f);
      this.head.insertBefore(th, before);
    }
    for (const row of this.rows.values()) {
      row.setColumns(this.fieldColumns);
      this.markDirty(row.symbol);
    }
    this.requestRender();
  }

  get symbols(): string[] {
    return [...this.rows.keys()];
  }

  has(symbol: string): boolean {
    return this.rows.has(symbol);
  }

  add(symbol: string): void {
    if (this.rows.has(symbol)) return;
    const tr = (this.template.content.firstElementChild as HTMLTableRowElement).cloneNode(true) as HTMLTableRowElement;
    const row = new Row(symbol, tr, this.fieldColumns);
    this.rows.set(symbol, row);
    this.tbody.appendChild(tr);
    this.observer.observe(tr);
    this.empty.hidden = true;
    this.behind.add(symbol);
  }

  remove(symbol: string): void {
    const row = this.rows.get(symbol);
    if (row === undefined) return;
    this.observer.unobserve(row.tr);
    row.tr.remove();
    this.rows.delete(symbol);
    this.dirty.delete(symbol);
    this.behind.delete(symbol);
    this.visible.delete(symbol);
    this.empty.hidden = this.rows.size > 0;
  }

  select(symbol: string | null): void {
    if (this.selected !== null) this.rows.get(this.selected)?.tr.classList.remove('selected');
    this.selected = symbol;
    if (symbol !== null) this.rows.get(symbol)?.tr.classList.add('selected');
  }

  /** Called per update: cheap, just remembers the symbol. */
  markDirty(symbol: string): void {
    if (this.visible.has(symbol)) this.dirty.add(symbol);
    else if (this.rows.has(symbol)) this.behind.add(symbol);
  }

  setStatus(symbol: string, status: SymbolStatus | undefined): void {
    const row = this.rows.get(symbol);
    if (row === undefined) return;
    if (status === undefined || status === 'live') delete row.tr.dataset['status'];
    else row.tr.dataset['status'] = status;
  }

  /** Renders the dirty rows; returns how many. */
  render(): number {
    const n = this.dirty.size;
    if (n === 0) return 0;
    for (const symbol of this.dirty) {
      const row = this.rows.get(symbol);
      const st = this.stateOf(symbol);
      if (row !== undefined && st !== undefined) this.renderRow(row, st);
    }
    this.dirty.clear();
    return n;
  }

  /** Refreshes the age column of the rows on screen (a few times a second, not per frame). */
  renderAges(now: number): void {
    for (const symbol of this.visible) {
      const row = this.rows.get(symbol);
      if (row !== undefined) setText(row.age, age(now - row.ts));
    }
  }

  private renderRow(row: Row, st: Readonly<SymbolState>): void {
    const { bid, ask, last } = st;
    let d = row.decimals;
    if (bid !== undefined) d = Math.max(d, decimalsOf(bid));
    if (ask !== undefined) d = Math.max(d, decimalsOf(ask));
    if (last !== undefined) d = Math.max(d, decimalsOf(last));
    const widened = d !== row.decimals;
    row.decimals = d = Math.min(d, 8);
    row.shownBid = this.priceCell(row.bid, bid, row.shownBid, d, widened);
    row.shownAsk = this.priceCell(row.ask, ask, row.shownAsk, d, widened);
    row.shownLast = this.priceCell(row.last, last, row.shownLast, d, widened);
    const ref = st.close ?? st.open;
    if (last !== undefined && ref !== undefined && ref !== 0) {
      const chg = last - ref;
      setText(row.chg, signed(chg, d));
      setText(row.pct, percent((chg / ref) * 100));
      const dir = Math.sign(chg);
      setDirection(row.chg, dir);
      setDirection(row.pct, dir);
    }
    setText(row.vol, volume(st.volume));
    if (st.ts !== undefined) row.ts = st.ts;
    for (let i = 0; i < row.fields.length; i++) this.fieldCell(row, i, st[this.fieldColumns[i]!], d);
  }

  /** Writes a field cell: text as it is, numbers formatted for their field. */
  private fieldCell(row: Row, i: number, v: number | string | undefined, rowDecimals: number): void {
    if (v === undefined) return;
    const cell = row.fields[i]!;
    const text = typeof v === 'string';
    cell.classList.toggle('text', text);
    if (text) {
      setText(cell, v);
      // Cut to the column's width: the whole text (at most 64 characters) on hover.
      if (cell.title !== v) cell.title = v;
      return;
    }
    const [s, decimals] = formatNumber(this.fieldColumns[i]!, v, rowDecimals, row.fieldDecimals[i]!);
    row.fieldDecimals[i] = decimals;
    setText(cell, s);
    if (cell.title !== '') cell.title = '';
  }

  /** Writes a price cell and flashes it by direction; returns the value now shown. */
  private priceCell(cell: HTMLTableCellElement, v: number | undefined, shown: number, d: number, force: boolean): number {
    if (v === undefined) return shown;
    if (v === shown && !force) return shown;
    setText(cell, price(v, d));
    if (shown === shown && v !== shown) {
      const up = v > shown;
      setDirection(cell, up ? 1 : -1);
      cell.animate(up ? FLASH_UP : FLASH_DOWN, FLASH);
    }
    return v;
  }
}
