/**
 * Buffer budget: one bound on the bytes buffered for all clients together
 * (`backpressure.maxTotalBufferedBytes`), on top of each client's own limit.
 *
 * Accounting is a running total: each session reports the socket's buffered
 * amount where it reads it anyway (after a flush, on drain, in the sweep),
 * and the total moves by the difference from its last report. Nothing sums
 * the sockets per tick; under the budget the cost of a report is a
 * subtraction and a comparison.
 *
 * Past the budget the sessions buffering the most are closed first (`bye
 * SLOW_CONSUMER`), until the total is back under {@link LOW_WATER} of the
 * budget. The choice sorts the open sessions by their last report: O(n log
 * n), and only when over the budget.
 *
 * With worker threads the budget is the process's: each worker publishes its
 * total in its own slot of a SharedArrayBuffer (KiB, Atomics) and compares
 * the sum of all slots with the budget. The workers over their fair share
 * (budget / workers) close their own biggest clients; the others wait for
 * them, so no worker closes its clients for another's.
 */

/** Past the budget, clients are closed until the total is under this share of it. */
import type { Clock } from '../clock.js';

export const LOW_WATER = 0.9;

/** What the budget needs of a client session. */
export interface BudgetedSession {
  /** Bytes this session last counted in the budget; written by the budget only. */
  budgeted: number;
  readonly isOpen: boolean;
  /** Closes the session with `bye SLOW_CONSUMER`: the process is over its budget and this client buffers among the most. */
  closeForBudget(total: number, budget: number): void;
}

/** One worker's place in the process-wide budget. */
export interface BudgetShare {
  /** One Int32 slot per worker: its total in KiB. */
  readonly slots: SharedArrayBuffer;
  /** This worker's slot. */
  readonly slot: number;
}

/** A SharedArrayBuffer for `workers` workers' totals. */
export function budgetSlots(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * workers);
}

function biggestFirst(a: BudgetedSession, b: BudgetedSession): number {
  return b.budgeted - a.budgeted;
}

export class BufferBudget {
  /** Bytes buffered now for this gateway's open clients (sum of their last reports). */
  total = 0;
  /** Clients closed because the process was over its budget. */
  closes = 0;
  /** Other workers' totals as last read (bytes); 0 with one worker. */
  private others = 0;
  private slots: Int32Array | null = null;
  private slot = 0;
  private publishedKiB = 0;
  /** Over this, the process is over budget: the whole budget, or 0 (never) when unlimited. */
  private readonly limit: number;
  /** What this worker may hold before it is the one to close clients: budget / workers. */
  private fairShare: number;
  /** Reused for the selection. */
  private readonly candidates: BudgetedSession[] = [];
  /** Buffers of gracefully closed sessions still held by the transport, oldest first. */
  private readonly lingering: Array<{ bytes: number; until: number }> = [];
  private lingeringHead = 0;
  private lingeringBytes = 0;

  /**
   * @param budget bytes for all clients of the process; 0: unlimited.
   * @param sessions the open sessions of this gateway (worker).
   */
  /**
   * @param clock and `lingerMs`: how long a gracefully closed session's
   *   buffer still counts ({@link linger}); without a clock, not at all.
   */
  constructor(
    readonly budget: number,
    private readonly sessions: Iterable<BudgetedSession>,
    private readonly clock: Clock | null = null,
    private readonly lingerMs = 0,
  ) {
    this.limit = budget > 0 ? budget : Infinity;
    this.fairShare = this.limit;
  }

  /** Joins the process-wide budget as one of the workers sharing `slots`. */
  share(s: BudgetShare): void {
    this.slots = new Int32Array(s.slots);
    this.slot = s.slot;
    this.fairShare = this.limit / this.slots.length;
    this.publish();
  }

  /** Bytes buffered for every client of the process, as last known. */
  get processTotal(): number {
    return this.total + this.others;
  }

  /**
   * A session's buffered amount now. Called where the amount is read anyway;
   * a session that is no longer open counts 0. May close sessions (not
   * synchronously flushing them) when the process goes over its budget.
   */
  report(s: BudgetedSession, bytes: number): void {
    if (!s.isOpen) bytes = 0;
    const d = bytes - s.budgeted;
    if (d === 0) return;
    s.budgeted = bytes;
    this.total += d;
    if (this.slots !== null) this.publish();
    if (d > 0 && this.total + this.others > this.limit) this.enforce();
  }

  /**
   * The session is being closed gracefully for falling behind, with `bytes`
   * still buffered. uWS keeps a gracefully closed socket's buffer until the
   * client reads it or the idle timeout (about ws.idleTimeoutSec / 2), long
   * after the session is gone: those bytes stay in the total for the linger
   * time (an upper bound: a client that reads them frees them sooner).
   */
  linger(s: BudgetedSession, bytes: number): void {
    const d = -s.budgeted;
    s.budgeted = 0;
    if (this.lingerMs > 0 && this.clock !== null && bytes > 0) {
      this.lingering.push({ bytes, until: this.clock.now() + this.lingerMs });
      this.lingeringBytes += bytes;
      this.total += bytes;
    }
    this.total += d;
    if (this.slots !== null) this.publish();
    if (this.total + this.others > this.limit) this.enforce();
  }

  /** Bytes of gracefully closed sessions still counted (see {@link linger}). */
  get lingered(): number {
    return this.lingeringBytes;
  }

  /** The session is gone: its bytes leave the total. */
  release(s: BudgetedSession): void {
    this.total -= s.budgeted;
    s.budgeted = 0;
    if (this.slots !== null) this.publish();
  }

  /** Periodic (the session sweep): rereads the other workers' totals and enforces the budget. */
  check(): void {
    this.expireLingering();
    if (this.slots !== null) this.readOthers();
    if (this.total + this.others > this.limit) this.enforce();
  }

  /** Drops the lingering bytes whose time is up (they were added in time order). */
  private expireLingering(): void {
    if (this.clock === null || this.lingeringHead === this.lingering.length) return;
    const now = this.clock.now();
    const list = this.lingering;
    let freed = 0;
    while (this.lingeringHead < list.length && list[this.lingeringHead]!.until <= now) freed += list[this.lingeringHead++]!.bytes;
    if (this.lingeringHead === list.length) {
      list.length = 0;
      this.lingeringHead = 0;
    }
    if (freed === 0) return;
    this.lingeringBytes -= freed;
    this.total -= freed;
    if (this.slots !== null) this.publish();
  }

  /** Closes this worker's biggest sessions until the process is back under the low water mark. */
  private enforce(): void {
    if (this.slots !== null) {
      this.readOthers();
      if (this.total + this.others <= this.limit) return;
      // Another worker is over its share: it sheds its own clients.
      if (this.total <= this.fairShare) return;
    }
    let excess = this.total + this.others - this.limit * LOW_WATER;
    // A worker sheds down to its own share of the low water mark at most; a worker still above its share does the rest.
    if (this.slots !== null) excess = Math.min(excess, this.total - this.fairShare * LOW_WATER);
    const list = this.candidates;
    for (const s of this.sessions) if (s.isOpen && s.budgeted > 0) list.push(s);
    list.sort(biggestFirst);
    const total = this.total + this.others;
    for (let i = 0; i < list.length && excess > 0; i++) {
      const s = list[i]!;
      const bytes = s.budgeted;
      excess -= bytes;
      this.closes++;
      s.closeForBudget(total, this.budget);
      // Its bytes leave the total now: the session is cut at its next flush, and
      // later reports from it count 0, so nothing is closed twice for them.
      this.total -= bytes;
      s.budgeted = 0;
    }
    list.length = 0;
    if (this.slots !== null) this.publish();
  }

  private publish(): void {
    const kib = Math.ceil(this.total / 1024);
    if (kib === this.publishedKiB) return;
    this.publishedKiB = kib;
    Atomics.store(this.slots!, this.slot, kib);
  }

  private readOthers(): void {
    const slots = this.slots!;
    let kib = 0;
    for (let i = 0; i < slots.length; i++) if (i !== this.slot) kib += Atomics.load(slots, i);
    this.others = kib * 1024;
  }
}
