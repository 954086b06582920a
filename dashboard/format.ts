/**
 * Number formatting for the screen. Formatters are built once; prices keep
 * a per-symbol number of decimals that only grows, so columns do not jitter.
 */

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 2 });
const fixed: Intl.NumberFormat[] = [];
for (let d = 0; d <= 10; d++) fixed.push(new Intl.NumberFormat('en-US', { minimumFractionDigits: d, maximumFractionDigits: d, useGrouping: true }));

/** Decimals needed to show `x` exactly (up to 10). */
export function decimalsOf(x: number): number {
  if (!Number.isFinite(x)) return 0;
  for (let d = 0; d < 10; d++) {
    const scaled = x * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-7 * Math.max(1, Math.abs(scaled))) return d;
  }
  return 10;
}

export function price(x: number | undefined, decimals: number): string {
  return x === undefined ? '' : fixed[Math.min(10, decimals)]!.format(x);
}

export function volume(x: number | undefined): string {
  return x === undefined ? '' : compact.format(x);
}

export function signed(x: number, decimals: number): string {
  const s = fixed[Math.min(10, decimals)]!.format(Math.abs(x));
  return x > 0 ? `+${s}` : x < 0 ? `−${s}` : s;
}

export function percent(x: number): string {
  const s = fixed[2]!.format(Math.abs(x));
  return x > 0 ? `+${s}%` : x < 0 ? `−${s}%` : `${s}%`;
}

/** A duration in milliseconds, compact: 850ms, 12.3s, 4m. */
export function age(ms: number): string {
  if (!Number.isFinite(ms)) return '';
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m`;
  return `${Math.floor(ms / 3_600_000)}h`;
}

export function millis(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 100 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

export function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`;
}
