import { describe, expect, it } from 'vitest';
import { defaultPerAddress, ephemeralPortCount, loopbackAddress, sourceAddressFor } from './source-addresses.js';

describe('loopback source addresses', () => {
  it('counts up through 127.0.0.0/8', () => {
    expect(loopbackAddress('127.0.0.2', 0)).toBe('127.0.0.2');
    expect(loopbackAddress('127.0.0.2', 3)).toBe('127.0.0.5');
    expect(loopbackAddress('127.0.0.255', 1)).toBe('127.0.1.0');
    expect(() => loopbackAddress('10.0.0.1', 0)).toThrow(RangeError);
    expect(() => loopbackAddress('127.255.255.254', 5)).toThrow(RangeError);
  });

  it('fills one address, then the next', () => {
    expect(sourceAddressFor(0, 2, '127.0.0.2')).toBe('127.0.0.2');
    expect(sourceAddressFor(1, 2, '127.0.0.2')).toBe('127.0.0.2');
    expect(sourceAddressFor(2, 2, '127.0.0.2')).toBe('127.0.0.3');
    expect(defaultPerAddress()).toBeLessThan(ephemeralPortCount());
  });
});
