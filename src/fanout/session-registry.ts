/**
 * The open sessions: ids unique across processes, restarts and worker
 * threads; open and close counts; the buffer budget over all of them; the
 * periodic sweep (slow consumers, heartbeats, expiry, the budget's check) on
 * the injected clock.
 */
import { threadId } from 'node:worker_threads';
import type { Repeating } from '../clock.js';
import type { ByeCode } from '../protocol/messages.js';
import { BufferBudget } from './buffer-budget.js';
import type { ClientSession } from './client-session.js';
import type { SessionContext } from './session-context.js';

/** Session sweep period at most: slow-consumer checks and heartbeats. */
const SWEEP_MS = 250;

let nextSid = 0;

export class SessionRegistry {
  readonly sessions = new Set<ClientSession>();
  private sweepTimer: Repeating | null = null;
  private readonly sidPrefix: string;
  /** Bytes buffered for all these sessions, against `backpressure.maxTotalBufferedBytes`. */
  readonly budget: BufferBudget;

  constructor(private readonly ctx: Pick<SessionContext, 'clock' | 'config' | 'counters'>) {
    this.sidPrefix = `${process.pid.toString(36)}.${threadId}.${ctx.clock.now().toString(36)}`;
    // A gracefully closed slow client's buffer outlives its session by up to about half the idle timeout.
    this.budget = new BufferBudget(ctx.config.backpressure.maxTotalBufferedBytes, this.sessions, ctx.clock, (ctx.config.ws.idleTimeoutSec * 1000) / 2);
  }

  /** A fresh session id. */
  nextSid(): string {
    return `${this.sidPrefix}-${(nextSid++).toString(36)}`;
  }

  added(session: ClientSession): void {
    this.sessions.add(session);
    session.budget = this.budget;
    this.ctx.counters.opened++;
  }

  closed(session: { readonly sid: string }, by: ByeCode | 'remote'): void {
    if (this.sessions.delete(session as ClientSession)) {
      this.ctx.counters.closed++;
      this.ctx.counters.closedBy[by]++;
    }
  }

  /** Starts the sweep: O(clients) a few times a second, never per tick. */
  start(): void {
    const { clock, config } = this.ctx;
    const period = Math.min(SWEEP_MS, Math.max(50, config.ws.heartbeatMs >> 1));
    this.sweepTimer = clock.every(period, () => {
      const now = clock.now();
      for (const s of this.sessions) s.sweep(now);
      this.budget.check();
    });
  }

  stop(): void {
    this.sweepTimer?.cancel();
    this.sweepTimer = null;
  }
}
