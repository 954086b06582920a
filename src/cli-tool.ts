/**
 * What every command-line tool of the project (feed:sim, feed:record,
 * feed:replay, load:*, bench:*) does the same way: usage errors exit 2 naming
 * the option, --help prints the usage, SIGINT/SIGTERM abort the run (a
 * second one exits at once with 130), failures exit 1 with one line.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command-line value was invalid; the message names the option and what it expects. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Parses `--option value` arguments strictly (no positionals; with
 * `negatable`, `--no-x` for a boolean x); an unknown or malformed option
 * becomes a UsageError.
 */
export function parseOptions<const O extends NonNullable<ParseArgsConfig['options']>>(argv: readonly string[], options: O, negatable = false) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false, allowNegative: negatable }).values;
  } catch (err) {
    throw new UsageError((err as Error).message, { cause: err });
  }
}

/** A numeric option's value, or a UsageError naming `--name` and what was expected. */
export function numberOption(name: string, raw: string, expected: string, ok: (n: number) => boolean): number {
  const n = raw.trim() === '' ? NaN : Number(raw);
  if (!ok(n)) throw new UsageError(`--${name}: expected ${expected}, got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The `--count N` / `--duration S` pair of the run-until tools: a count bound
 * (null: none) and a duration in seconds (null: unbounded). Without either
 * option a run lasts 60 s; `--duration 0` means until stopped.
 */
export function countAndDuration(values: { count?: string | undefined; duration?: string | undefined }): { count: number | null; duration: number | null } {
  const count =
    values.count === undefined ? null : numberOption('count', values.count, 'a positive integer', (n) => Number.isSafeInteger(n) && n >= 1);
  if (values.duration === undefined) return { count, duration: count === null ? 60 : null };
  const d = numberOption('duration', values.duration, 'seconds, a finite number >= 0 (0 = until stopped)', (n) => Number.isFinite(n) && n >= 0);
  return { count, duration: d === 0 ? null : d };
}

export interface Tool<O> {
  /** How the tool is called, e.g. `feed:record`: the prefix of its messages. */
  name: string;
  usage: string;
  /** Parses argv (without node and the script); throws UsageError naming the option. */
  parse(argv: string[]): O | 'help';
  /** Runs until done or `signal` aborts; prints its own results; resolves with the exit code. */
  run(opts: O, signal: AbortSignal): Promise<number>;
  /** Said on stderr at the first signal, before the run winds down. */
  stopping?: string;
  /** A bound on the whole run, seconds: past it the run is aborted as by a signal. */
  timeLimitS?(opts: O): number;
}

/** Whether the module at `metaUrl` is the process's entry script. */
export function isEntry(metaUrl: string): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === fileURLToPath(metaUrl);
  } catch {
    return false;
  }
}

/** Runs `tool` as the process's main program when `metaUrl` is the entry script. */
export function runIfEntry<O>(metaUrl: string, tool: Tool<O>): void {
  if (isEntry(metaUrl)) void runTool(tool, process.argv.slice(2)).then((code) => process.exit(code));
}

/** The shared main(): parse, handle help and signals, run, map failures to exit codes. */
export async function runTool<O>(tool: Tool<O>, argv: string[]): Promise<number> {
  let opts: O | 'help';
  try {
    opts = tool.parse(argv);
  } catch (err) {
    process.stderr.write(`${tool.name}: ${(err as Error).message}\n\n${tool.usage}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(tool.usage + '\n');
    return 0;
  }
  const ac = new AbortController();
  const onSignal = () => {
    // A second signal means "now", at the cost of what the run would have flushed.
    if (ac.signal.aborted) process.exit(130);
    if (tool.stopping) process.stderr.write(`${tool.name}: ${tool.stopping}\n`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const limitS = tool.timeLimitS?.(opts);
  const watchdog =
    limitS === undefined
      ? undefined
      : setTimeout(() => {
          process.stderr.write(`${tool.name}: still running after ${limitS} s, stopping\n`);
          ac.abort();
        }, limitS * 1000);
  try {
    return await tool.run(opts, ac.signal);
  } catch (err) {
    process.stderr.write(`${tool.name}: ${(err as Error).message}\n`);
    if (ac.signal.aborted) return 130;
    return err instanceof UsageError ? 2 : 1;
  } finally {
    clearTimeout(watchdog);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
