/**
 * Live chart of the selected symbol's last price (mid when it has no
 * trades), drawn with uPlot. Every watched symbol keeps a short history so
 * switching symbols shows recent movement at once; the chart is redrawn at
 * most once per animation frame, and only when its symbol changed.
 */
import uPlot from 'uplot';
import type { SymbolState, Update } from '../src/client/index.js';
import { decimalsOf, percent, price, signed } from './format.js';

/** Points kept per symbol. */
const POINTS = 600;

interface History {
  xs: number[];
  ys: number[];
  decimals: number;
}

const AXIS = { stroke: '#7d8799', grid: { stroke: '#1a2029', width: 1 }, ticks: { stroke: '#1e2530', width: 1 }, font: '11px ui-monospace, Menlo, monospace' };

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** HH:MM:SS of epoch seconds `t` (local time), with tenths when `fine`. */
function clock(t: number, fine: boolean): string {
  const d = new Date(t * 1000);
  const s = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return fine ? `${s}.${Math.floor(d.getMilliseconds() / 100)}` : s;
}

function valueOf(st: Readonly<SymbolState>): number | undefined {
  if (st.last !== undefined) return st.last;
  if (st.bid !== undefined && st.ask !== undefined) return (st.bid + st.ask) / 2;
  return undefined;
}

export class PriceChart {
  private readonly plot: uPlot;
  private readonly histories = new Map<string, History>();
  private symbol: string | null = null;
  private dirty = false;

  constructor(
    private readonly el: HTMLElement,
    private readonly head: { symbol: HTMLElement; last: HTMLElement; chg: HTMLElement },
    private readonly stateOf: (symbol: string) => Readonly<SymbolState> | undefined,
  ) {
    // clientWidth includes the padding: the plot gets the content box.
    const cs = getComputedStyle(el);
    const padX = parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight);
    const padY = parseFloat(cs.paddingTop) + parseFloat(cs.paddingBottom);
    const size = () => ({ width: Math.max(200, el.clientWidth - padX), height: Math.max(120, el.clientHeight - padY) });
    const opts: uPlot.Options = {
      ...size(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        // A flat series (a quiet symbol) would get uPlot's magnitude-wide range (0 to twice the price): pad it a little instead.
        y: { range: (_u, min, max) => (min === max ? [min - (Math.abs(min) * 1e-4 || 1), max + (Math.abs(max) * 1e-4 || 1)] : uPlot.rangeNum(min, max, 0.1, true)) },
      },
      series: [{}, { stroke: '#4ea1ff', width: 1.5, fill: 'rgba(78, 161, 255, 0.08)', points: { show: false } }],
      axes: [
        // Wall-clock time, with tenths of a second when the window is short.
        { ...AXIS, space: 90, values: (u, splits) => splits.map((v) => clock(v, (u.scales['x']?.max ?? 0) - (u.scales['x']?.min ?? 0) < 20)) },
        // Prices with as many decimals as the grid step needs.
        // As wide as the longest label needs (64,250.00 takes more than 1.0842).
        { ...AXIS, side: 1, size: (_u, values) => Math.max(76, Math.ceil(Math.max(0, ...(values ?? []).map((v) => v.length)) * 6.8) + 22), values: (_u, splits) => splits.map((v) => price(v, splits.length > 1 ? decimalsOf(Math.abs(splits[1]! - splits[0]!)) : 2)) },
      ],
    };
    this.plot = new uPlot(opts, [[], []], el);
    new ResizeObserver(() => this.plot.setSize(size())).observe(el);
  }

  /** Records a point when the price moved; cheap, no drawing. */
  record(u: Update, nowSec: number): void {
    const c = u.changed;
    if (c.last === undefined && c.bid === undefined && c.ask === undefined) return;
    const v = valueOf(u.state);
    if (v === undefined) return;
    let h = this.histories.get(u.symbol);
    if (h === undefined) this.histories.set(u.symbol, (h = { xs: [], ys: [], decimals: 2 }));
    h.xs.push(nowSec);
    h.ys.push(v);
    h.decimals = Math.min(8, Math.max(h.decimals, decimalsOf(v)));
    // Trimmed in batches: amortized O(1) per point.
    if (h.xs.length >= POINTS * 2) {
      h.xs.splice(0, h.xs.length - POINTS);
      h.ys.splice(0, h.ys.length - POINTS);
    }
    if (u.symbol === this.symbol) this.dirty = true;
  }

  forget(symbol: string): void {
    this.histories.delete(symbol);
  }

  show(symbol: string | null): void {
    this.symbol = symbol;
    this.dirty = true;
    this.render();
  }

  get shown(): string | null {
    return this.symbol;
  }

  render(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const s = this.symbol;
    this.head.symbol.textContent = s ?? '–';
    const h = s === null ? undefined : this.histories.get(s);
    const st = s === null ? undefined : this.stateOf(s);
    if (h === undefined) {
      this.plot.setData([[], []]);
      this.head.last.textContent = '–';
      this.head.chg.textContent = '';
      return;
    }
    const from = Math.max(0, h.xs.length - POINTS);
    this.plot.setData([h.xs.slice(from), h.ys.slice(from)]);
    const v = h.ys[h.ys.length - 1]!;
    this.head.last.textContent = price(v, h.decimals);
    const ref = st?.close ?? st?.open;
    if (ref !== undefined && ref !== 0) {
      const chg = v - ref;
      this.head.chg.textContent = `${signed(chg, h.decimals)}  ${percent((chg / ref) * 100)}`;
      this.head.chg.className = `chart-chg ${chg > 0 ? 'up' : chg < 0 ? 'down' : ''}`;
    }
  }
}
