/** Wall clock with sub-millisecond resolution (Date.now() has whole milliseconds), for latency. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}
