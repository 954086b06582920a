/**
 * Polls `pred` every `everyMs` until it returns a value (anything but
 * undefined, null or false), and resolves with it; fails after `ms`, naming
 * `what` it waited for.
 */
export async function until<T>(pred: () => T | undefined | null | false, what: string, ms = 10_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
