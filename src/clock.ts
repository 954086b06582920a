/**
 * The one clock. Everything that decides by time (sessions, the throttle
 * wheel, the sweep, feed health) reads it through {@link Clock}, so timing
 * logic runs in unit tests on a {@link ManualClock} without waiting.
 */

/** A repeating timer; cancel() stops it. */
export interface Repeating {
  cancel(): void;
}

export interface Clock {
  /** Wall-clock milliseconds (Date.now() semantics). */
  now(): number;
  /** Wall-clock milliseconds with sub-millisecond resolution, for latency. */
  preciseNow(): number;
  /** Calls `fn` every `ms` milliseconds until cancelled; never keeps the process alive. */
  every(ms: number, fn: () => void): Repeating;
  /** Calls `fn` once, `ms` milliseconds from now (fractions allowed), unless cancelled first; never keeps the process alive. */
  after(ms: number, fn: () => void): Repeating;
  /** A new reader of this thread's event-loop utilisation: each call returns the share (0 to 1) of the time since its previous call that the loop was busy. */
  loadSampler(): () => number;
}

/** Wall clock with sub-millisecond resolution (Date.now() has whole milliseconds), for latency. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The process's real clock and timers. */
export const systemClock: Clock = {
  now: Date.now,
  preciseNow,
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
  after(ms, fn) {
    // Node's timers have whole-millisecond resolution: round up, never early.
    const t = setTimeout(fn, Math.ceil(ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  loadSampler() {
    let prev = performance.eventLoopUtilization();
    return () => {
      const cur = performance.eventLoopUtilization();
      const u = performance.eventLoopUtilization(cur, prev).utilization;
      prev = cur;
      return u;
    };
  },
};

interface ManualTimer {
  ms: number;
  next: number;
  fn: () => void;
  once: boolean;
}

/**
 * A clock that moves only when told to: `advance(ms)` runs every repeating
 * timer that falls due on the way, in time order, with `now()` at its due time.
 */
export class ManualClock implements Clock {
  private t: number;
  private readonly timers = new Set<ManualTimer>();
  /** What every load sampler of this clock reads: the event loop's utilisation, as the test sets it. */
  load = 0;

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  preciseNow(): number {
    return this.t;
  }

  every(ms: number, fn: () => void): Repeating {
    const timer: ManualTimer = { ms, next: this.t + ms, fn, once: false };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }

  loadSampler(): () => number {
    return () => this.load;
  }

  after(ms: number, fn: () => void): Repeating {
    const timer: ManualTimer = { ms, next: this.t + ms, fn, once: true };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }

  /** Moves time forward by `ms`, firing due timers on the way. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let first: ManualTimer | null = null;
      for (const timer of this.timers) if (timer.next <= end && (first === null || timer.next < first.next)) first = timer;
      if (first === null) break;
      this.t = first.next;
      if (first.once) this.timers.delete(first);
      else first.next += first.ms;
      first.fn();
    }
    this.t = end;
  }
}
