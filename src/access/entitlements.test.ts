import { describe, expect, it } from 'vitest';
import { Entitlements } from './entitlements.js';

describe('Entitlements', () => {
  it('matches feed:symbol globs, bare symbol globs and *', () => {
    const e = new Entitlements(['sim:A*', 'nasdaq:AAPL', 'fx:EUR/*', 'BRK.?']);
    expect(e.all).toBe(false);
    expect(e.allows('sim', 'AMZN')).toBe(true);
    expect(e.allows('fx', 'AMZN')).toBe(false);
    expect(e.allows('nasdaq', 'AAPL')).toBe(true);
    expect(e.allows('nasdaq', 'AAPLX')).toBe(false);
    expect(e.allows('fx', 'EUR/USD')).toBe(true);
    expect(e.allows('fx', 'GBP/USD')).toBe(false);
    // Regex characters in symbols are literal; ? is one character.
    expect(e.allows('any', 'BRK.B')).toBe(true);
    expect(e.allows('any', 'BRKxB')).toBe(false);
    expect(e.allows('any', 'BRK.BB')).toBe(false);
    expect(e.mayAllow('AXYZ')).toBe(true);
    expect(e.mayAllow('MSFT')).toBe(false);
    expect(new Entitlements(['*']).all).toBe(true);
    expect(new Entitlements(['sim:*']).allows('fx', 'X')).toBe(false);
  });

  it('allows nothing when empty', () => {
    const e = new Entitlements([]);
    expect(e.allows('sim', 'AAPL')).toBe(false);
    expect(e.mayAllow('AAPL')).toBe(false);
  });
});
