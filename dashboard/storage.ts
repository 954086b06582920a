/**
 * The watchlist and the selected symbol, kept in localStorage. Storage can
 * be unavailable (private windows, quota): the dashboard then just forgets.
 */

const LIST_KEY = 'tickgate.watchlist.v1';
const SELECTED_KEY = 'tickgate.selected.v1';

/** A few well-known names across asset classes. */
export const DEFAULT_WATCHLIST: readonly string[] = ['AAPL', 'MSFT', 'NVDA', 'SPY', 'EUR/USD', 'USD/JPY', 'GBP/USD', 'BTC/USDT', 'ETH/USDT'];

export function loadWatchlist(): string[] {
  try {
    const raw = localStorage.getItem(LIST_KEY);
    if (raw !== null) {
      const v = JSON.parse(raw) as unknown;
      if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
    }
  } catch {
    // unreadable: fall back to the default
  }
  return [...DEFAULT_WATCHLIST];
}

export function saveWatchlist(list: readonly string[]): void {
  try {
    localStorage.setItem(LIST_KEY, JSON.stringify(list));
  } catch {
    // not persisted
  }
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
