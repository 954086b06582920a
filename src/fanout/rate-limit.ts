/**
 * Per-connection limits on what a client may send: a token bucket for its
 * message rate, and a window of limit violations after which it is closed.
 * Time comes from the injected clock.
 */
import type { Clock } from '../clock.js';

/** `rate` tokens per second, bursts of the same size. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: number,
    private readonly clock: Clock,
  ) {
    this.tokens = rate;
    this.at = clock.now();
  }

  /** Takes one token; false when none is left. */
  take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Counts violations in a fixed window; over `max` within it, the connection should end. */
export class ViolationWindow {
  private count = 0;
  private since = 0;

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly clock: Clock,
  ) {}

  /** Records one violation; true when this one exceeds the allowance. */
  record(): boolean {
    const now = this.clock.now();
    if (now - this.since > this.windowMs) {
      this.since = now;
      this.count = 0;
    }
    return ++this.count > this.max;
  }
}
