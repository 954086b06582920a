/**
 * A fixed-bucket histogram counted in plain numbers: recording is a short
 * loop over the bounds and two additions, no allocation, no labels. Metrics
 * read it at scrape time.
 */
export class PlainHistogram {
  /** counts[i]: observations <= bounds[i] and > bounds[i-1]; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i]! > bounds[i - 1]!)) throw new RangeError('bounds: expected strictly increasing numbers');
    }
    this.counts = new Float64Array(bounds.length + 1);
  }

  record(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  /** Cumulative counts per bound (Prometheus `le` semantics), +Inf last. */
  cumulative(): number[] {
    const out: number[] = [];
    let acc = 0;
    for (const c of this.counts) out.push((acc += c));
    return out;
  }
}
