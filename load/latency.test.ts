import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeHistogram, LatencyRecorder, MAX_FILL_CALLS, mergeHistograms, newHistogram, recordCorrected, summarize, tickShares } from './latency.js';

describe('latency histograms', () => {
  it('summarizes percentiles in milliseconds within HdrHistogram resolution', () => {
    const h = newHistogram();
    for (let ms = 1; ms <= 1000; ms++) h.recordValue(ms * 1000);
    const s = summarize(h);
    expect(s.count).toBe(1000);
    expect(s.p50).toBeCloseTo(500, -1);
    expect(s.p99).toBeCloseTo(990, -1);
    expect(s.p999).toBeCloseTo(999, -1);
    expect(s.max).toBeCloseTo(1000, -1);
    expect(summarize(newHistogram())).toEqual({ count: 0, p50: null, p90: null, p99: null, p999: null, max: null });
  });

  it('merges histograms encoded by several processes', () => {
    const a = newHistogram();
    const b = newHistogram();
    for (let i = 0; i < 99; i++) a.recordValue(1000);
    b.recordValue(500_000);
    const m = mergeHistograms([encodeHistogram(a), '', encodeHistogram(b)]);
    expect(m.totalCount).toBe(100);
    expect(summarize(m).p50).toBeCloseTo(1, 2);
    expect(summarize(m).max).toBeCloseTo(500, 0);
  });

  it('records the ticks a merged update stands for, interpolated between delivered ticks', () => {
    const r = new LatencyRecorder();
    // Previous delivered tick at t=0, this update merges 4 ticks, newest at t=40, received at t=50.
    r.recordMerged(50, 40, 4, 0, 0);
    const s = summarize(r.raw);
    expect(s.count).toBe(4);
    // Latencies 10, 20, 30, 40 ms.
    expect(s.p50).toBeCloseTo(20, 0);
    expect(s.max).toBeCloseTo(40, 0);
    // Without a previous tick only the update itself counts.
    const r2 = new LatencyRecorder();
    r2.recordMerged(50, 40, 4, NaN, 0);
    expect(r2.raw.totalCount).toBe(1);
  });

  it('adds the samples a stall hid in the corrected histogram only', () => {
    const r = new LatencyRecorder();
    r.record(450, 100);
    r.record(-0.2, 100);
    expect(r.raw.totalCount).toBe(2);
    // 450 ms with a 100 ms interval also stands for the 350, 250 and 150 ms a stall hid.
    expect(r.corrected.totalCount).toBe(5);
    expect(summarize(r.raw).p50).toBe(0);
    // An unknown interval: no correction.
    r.record(450, Infinity);
    expect(r.corrected.totalCount).toBe(6);
  });

  it('corrects exactly like recordValueWithExpectedInterval up to MAX_FILL_CALLS fill-ins, and in bounded work beyond', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2_000_000 }), fc.integer({ min: 20, max: 200_000 }), (us, interval) => {
        const exact = newHistogram();
        const ours = newHistogram();
        exact.recordValueWithExpectedInterval(us, interval);
        let calls = 0;
        const counting = new Proxy(ours, {
          get(target, key) {
            const v = Reflect.get(target, key) as unknown;
            if (typeof v !== 'function') return v;
            return (...args: unknown[]) => {
              if (key === 'recordValue' || key === 'recordValueWithCount') calls++;
              return (v as (...a: unknown[]) => unknown).apply(target, args);
            };
          },
        });
        recordCorrected(counting, us, interval);
        expect(ours.totalCount).toBe(exact.totalCount);
        expect(calls).toBeLessThanOrEqual(1 + MAX_FILL_CALLS);
        const fills = exact.totalCount - 1;
        if (fills <= MAX_FILL_CALLS) {
          for (const p of [0, 10, 50, 90, 99, 100]) expect(ours.getValueAtPercentile(p)).toBe(exact.getValueAtPercentile(p));
        } else {
          // Each fill-in moves by at most us / 8 (plus the histogram's 0.1% resolution).
          for (const p of [10, 50, 90, 99]) expect(Math.abs(ours.getValueAtPercentile(p) - exact.getValueAtPercentile(p))).toBeLessThanOrEqual(us / 8 + us / 500 + 1);
          expect(Math.abs(ours.mean - exact.mean)).toBeLessThanOrEqual(us / 500 + 1);
        }
        exact.destroy();
        ours.destroy();
      }),
      { numRuns: 300 },
    );
  });

  it('gives each symbol its Zipf share of the ticks', () => {
    const shares = tickShares(['A', 'B', 'C'], 1);
    // Weights 1, 1/2, 1/3 over 11/6.
    expect(shares.get('A')).toBeCloseTo(6 / 11, 9);
    expect(shares.get('C')).toBeCloseTo(2 / 11, 9);
    expect([...shares.values()].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
  });
});
