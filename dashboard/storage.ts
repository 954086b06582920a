/**
 * The watchlist, the selected symbol and the field columns, kept in
 * localStorage. Storage can be unavailable (private windows, quota): the
 * dashboard then just forgets.
 */

const LIST_KEY = 'tickgate.watchlist.v1';
const SELECTED_KEY = 'tickgate.selected.v1';
const COLUMNS_KEY = 'tickgate.columns.v1';

/** A few well-known names across asset classes. */
export const DEFAULT_WATCHLIST: readonly string[] = ['AAPL', 'MSFT', 'NVDA', 'SPY', 'EUR/USD', 'USD/JPY', 'GBP/USD', 'BTC/USDT', 'ETH/USDT'];

/** A stored list of strings, or null when absent or unreadable. */
function loadList(key: string): string[] | null {
  try {
    const raw = localStorage.getItem(key);
    if (raw !== null) {
      const v = JSON.parse(raw) as unknown;
      if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
    }
  } catch {
    // unreadable: the caller's default
  }
  return null;
}

function saveList(key: string, list: readonly string[]): void {
  try {
    localStorage.setItem(key, JSON.stringify(list));
  } catch {
    // not persisted
  }
}

export function loadWatchlist(): string[] {
  return loadList(LIST_KEY) ?? [...DEFAULT_WATCHLIST];
}

export function saveWatchlist(list: readonly string[]): void {
  saveList(LIST_KEY, list);
}

/** The field columns added with the column picker, in order (none by default). */
export function loadColumns(): string[] {
  return loadList(COLUMNS_KEY) ?? [];
}

export function saveColumns(fields: readonly string[]): void {
  saveList(COLUMNS_KEY, fields);
}

export function loadSelected(): string | null {
  try {
    return localStorage.getItem(SELECTED_KEY);
  } catch {
    return null;
  }
}

export function saveSelected(symbol: string): void {
  try {
    localStorage.setItem(SELECTED_KEY, symbol);
  } catch {
    // not persisted
  }
}
