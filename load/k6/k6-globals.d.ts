/**
 * Globals the k6 runtime provides that `@types/k6` does not declare (and
 * that the compiler's DOM library would, with much that k6 lacks).
 */

interface K6Console {
  log(...data: unknown[]): void;
  info(...data: unknown[]): void;
  warn(...data: unknown[]): void;
  error(...data: unknown[]): void;
  debug(...data: unknown[]): void;
}

declare const console: K6Console;
