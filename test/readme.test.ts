/**
 * The README stays true: every configuration key and every metric the
 * gateway exports is documented there.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { ROOT } from './helpers/process.js';

const readme = readFileSync(`${ROOT}README.md`, 'utf8');
let gw: TestGateway;

beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw?.stop());

/** Leaf keys of the effective configuration, e.g. "backpressure.highWaterBytes". */
function keys(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? keys(v as Record<string, unknown>, `${prefix}${k}.`) : [prefix + k],
  );
}

it('documents every configuration key', () => {
  const missing = keys(loadConfig({ env: {} }) as unknown as Record<string, unknown>).filter((k) => !readme.includes('`' + k + '`'));
  expect(missing).toEqual([]);
});

it('documents every metric the gateway exports (standard process and Node.js metrics as families)', async () => {
  const text = await (await fetch(`${gw.http}/metrics`)).text();
  const exported = [...text.matchAll(/^# TYPE (\w+) /gm)].map((m) => m[1]!);
  const names = exported.filter((n) => n.startsWith('tickgate_'));
  expect(names.length).toBeGreaterThan(10);
  expect(names.filter((n) => !readme.includes('`' + n + '`'))).toEqual([]);
  // prom-client's default metrics keep their standard names, documented as two families.
  for (const family of ['process_', 'nodejs_']) {
    expect(exported.filter((n) => n.startsWith(family)).length, family).toBeGreaterThan(3);
    expect(readme).toContain('`' + family + '*`');
  }
  expect(exported.filter((n) => !/^(tickgate|process|nodejs)_/.test(n))).toEqual([]);
  // And nothing documented that does not exist.
  const documented = [...readme.matchAll(/`((?:tickgate|process|nodejs)_[a-z0-9_]+)`/g)].map((m) => m[1]!);
  expect(documented.filter((n) => !exported.includes(n))).toEqual([]);
});
