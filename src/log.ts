/**
 * Logging: pino, JSON lines to stdout; pretty only when asked.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, pretty: boolean): Logger {
  if (!pretty) return pino({ level, base: { svc: 'tickgate' } });
  return pino({ level, transport: { target: 'pino-pretty', options: { colorize: true } } });
}

/**
 * Logs at most `perInterval` lines per key per interval and reports how many
 * were suppressed, so a flood of bad input cannot flood the logs.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, { start: number; count: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly perInterval = 5,
    private readonly intervalMs = 10_000,
  ) {}

  warn(key: string, fields: object, msg: string): void {
    const now = Date.now();
    let w = this.windows.get(key);
    if (w === undefined) {
      w = { start: now, count: 0, suppressed: 0 };
      this.windows.set(key, w);
    }
    if (now - w.start >= this.intervalMs) {
      if (w.suppressed > 0) this.log.warn({ key, suppressed: w.suppressed }, 'similar log lines suppressed');
      w.start = now;
      w.count = 0;
      w.suppressed = 0;
    }
    if (w.count < this.perInterval) {
      w.count++;
      this.log.warn(fields, msg);
    } else {
      w.suppressed++;
    }
  }
}
