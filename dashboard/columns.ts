/**
 * Field columns: the watchlist's optional columns, one per field of the
 * data (canonical fields the fixed columns leave out, and a deployment's
 * configured fields). The server does not announce its fields, so the list
 * to choose from is what the symbols' states hold. How a value is shown
 * follows the field: prices with the row's decimals, sizes compact, the
 * source time as a clock, other numbers with the decimals they need, text
 * as it is.
 */
import { decimalsOf, price, volume } from './format.js';

/** Fields the fixed columns already show (Bid, Ask, Last, Volume): not offered. */
export const FIXED_FIELDS: ReadonlySet<string> = new Set(['bid', 'ask', 'last', 'volume']);

type Kind = 'price' | 'size' | 'time' | 'count';

/** Canonical fields in protocol order (docs/PROTOCOL.md, Fields), with their header and kind. */
const CANONICAL: ReadonlyMap<string, { label: string; kind: Kind }> = new Map([
  ['bid', { label: 'Bid', kind: 'price' }],
  ['ask', { label: 'Ask', kind: 'price' }],
  ['bidSize', { label: 'Bid size', kind: 'size' }],
  ['askSize', { label: 'Ask size', kind: 'size' }],
  ['last', { label: 'Last', kind: 'price' }],
  ['lastSize', { label: 'Last size', kind: 'size' }],
  ['volume', { label: 'Volume', kind: 'size' }],
  ['open', { label: 'Open', kind: 'price' }],
  ['high', { label: 'High', kind: 'price' }],
  ['low', { label: 'Low', kind: 'price' }],
  ['close', { label: 'Close', kind: 'price' }],
  ['ts', { label: 'Time', kind: 'time' }],
  ['seq', { label: 'Seq', kind: 'count' }],
] as const);
const ORDER = [...CANONICAL.keys()];

/** The column header of a field: a name for canonical fields, the configured name as it is otherwise. */
export function label(field: string): string {
  return CANONICAL.get(field)?.label ?? field;
}

/** Fields in menu order: canonical ones in protocol order, then configured ones by name. */
export function sortFields(fields: Iterable<string>): string[] {
  const rank = (f: string): number => {
    const i = ORDER.indexOf(f);
    return i < 0 ? ORDER.length : i;
  };
  return [...fields].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * The text of a numeric field cell. `rowDecimals` is the row's price
 * precision; `cellDecimals` the decimals this cell has shown so far (for
 * configured fields, which only ever widen so the column does not jitter).
 * Returns the text and the cell's decimals now.
 */
export function formatNumber(field: string, v: number, rowDecimals: number, cellDecimals: number): [string, number] {
  switch (CANONICAL.get(field)?.kind) {
    case 'price':
      return [price(v, rowDecimals), cellDecimals];
    case 'size':
      return [volume(v), cellDecimals];
    case 'time': {
      const d = new Date(v);
      return [`${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`, cellDecimals];
    }
    case 'count':
      return [price(v, 0), cellDecimals];
    default: {
      const d = Math.min(8, Math.max(cellDecimals, decimalsOf(v)));
      return [price(v, d), d];
    }
  }
}
