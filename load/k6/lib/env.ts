/**
 * Reading scenario settings from environment variables (`k6 run -e NAME=value`
 * or the process environment). Every setting has a default; an invalid
 * value stops the script at start with a message naming the variable.
 * Takes the environment as an argument (k6's `__ENV`) so it runs under Node
 * tests too.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** A setting was invalid; the message names the variable and what it expects. */
export class EnvError extends Error {
  override readonly name = 'EnvError';
}

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** A string setting. */
export function envString(env: Env, name: string, fallback: string): string {
  return raw(env, name) ?? fallback;
}

/** An optional string setting: undefined when unset or empty. */
export function envOptional(env: Env, name: string): string | undefined {
  return raw(env, name);
}

/** A number within [min, max]; `integer` refuses fractions. */
export function envNumber(env: Env, name: string, fallback: number, min: number, max: number, integer = true): number {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new EnvError(`${name}=${v}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return n;
}

/** A comma-separated list; empty entries are dropped. */
export function envList(env: Env, name: string): string[] | undefined {
  const v = raw(env, name);
  if (v === undefined) return undefined;
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return list.length > 0 ? list : undefined;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Milliseconds of a k6-style duration (`1h2m3s`, `90s`, `500ms`, `1.5m`); a
 * bare number is seconds.
 */
export function parseDurationMs(text: string): number | undefined {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    if (m.index !== pos) return undefined; // something between two parts
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    pos = re.lastIndex;
  }
  return pos > 0 && pos === s.length ? total : undefined;
}

/** A duration setting: both its k6 text (for `options`) and milliseconds (for timers). */
export function envDuration(env: Env, name: string, fallback: string): { text: string; ms: number } {
  const text = raw(env, name) ?? fallback;
  const ms = parseDurationMs(text);
  if (ms === undefined || ms <= 0) throw new EnvError(`${name}=${text}: expected a duration such as 30s, 2m or 1m30s`);
  return { text, ms };
}
