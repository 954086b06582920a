import { describe, it, expect } from 'vitest';
import { EnvError, envDuration, envList, envNumber, envOptional, envString, parseDurationMs } from './env.ts';

describe('parseDurationMs', () => {
  it('reads k6 durations and bare seconds', () => {
    expect(parseDurationMs('90s')).toBe(90_000);
    expect(parseDurationMs('1m30s')).toBe(90_000);
    expect(parseDurationMs('1h2m3s')).toBe(3_723_000);
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('1.5m')).toBe(90_000);
    expect(parseDurationMs('2')).toBe(2000);
  });

  it('refuses anything else', () => {
    for (const s of ['', 'm', '5x', '5 s', '1m 30s', 's5', '1m30', '-1s']) expect(parseDurationMs(s)).toBeUndefined();
  });
});

describe('env settings', () => {
  const env = { N: '12', F: '0.25', BAD: 'x', BIG: '1000', D: '2m', L: ' a, ,b ', S: ' v ', EMPTY: ' ' };

  it('falls back to the default when unset or blank', () => {
    expect(envNumber(env, 'MISSING', 5, 0, 10)).toBe(5);
    expect(envNumber(env, 'EMPTY', 5, 0, 10)).toBe(5);
    expect(envString(env, 'MISSING', 'd')).toBe('d');
    expect(envOptional(env, 'EMPTY')).toBeUndefined();
    expect(envList(env, 'MISSING')).toBeUndefined();
    expect(envDuration(env, 'MISSING', '30s')).toEqual({ text: '30s', ms: 30_000 });
  });

  it('reads valid values', () => {
    expect(envNumber(env, 'N', 5, 0, 100)).toBe(12);
    expect(envNumber(env, 'F', 0, 0, 1, false)).toBe(0.25);
    expect(envString(env, 'S', 'd')).toBe('v');
    expect(envList(env, 'L')).toEqual(['a', 'b']);
    expect(envDuration(env, 'D', '1s')).toEqual({ text: '2m', ms: 120_000 });
  });

  it('names the variable when a value is invalid', () => {
    expect(() => envNumber(env, 'BAD', 5, 0, 10)).toThrow(EnvError);
    expect(() => envNumber(env, 'BIG', 5, 0, 10)).toThrow(/BIG=1000: expected an integer from 0 to 10/);
    expect(() => envNumber(env, 'F', 5, 0, 10)).toThrow(/F=0.25/);
    expect(() => envDuration(env, 'BAD', '1s')).toThrow(/BAD=x: expected a duration/);
  });
});
