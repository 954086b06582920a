/**
 * `tickgate tap`, the built command as a user runs it, against a real
 * gateway: its JSON lines parse, merge to the gateway's state, and the
 * options do what they say.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort } from './helpers/nats-server.js';
import { ensureBuilt, ROOT } from './helpers/process.js';

const CLI = `${ROOT}dist/src/cli.js`;

interface Tap {
  proc: ChildProcess;
  lines: () => Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
}

function tap(args: string[]): Tap {
  const proc = spawn(process.execPath, [CLI, 'tap', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    // Complete lines only: every one must be JSON.
    lines: () => out.split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>),
    stderr: () => err,
    exited,
  };
}

async function until(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

beforeAll(() => ensureBuilt(), 120_000);

describe('tickgate tap against a gateway', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
  });
  afterAll(() => gw?.stop());

  it('prints one JSON line per update: merged state, or with --deltas the changed fields, both converging to the gateway state', async () => {
    // Its own gateway: the test stops the feed to compare final states.
    const own = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
    try {
      const symbols = ['AAPL', 'EUR/USD', 'BTC/USDT'];
      const merged = tap([...symbols, '--url', own.url, '--duration', '4']);
      const deltas = tap([...symbols, '--url', own.url, '--duration', '4', '--deltas']);
      await until(() => merged.lines().length > 100 && deltas.lines().length > 100, '100 lines from both taps');
      await own.gateway.source.stop();
      expect(await merged.exited).toBe(0);
      expect(await deltas.exited).toBe(0);
      expect(merged.stderr()).toBe('');

      const store = own.gateway.hub.store;
      const expected = Object.fromEntries(symbols.map((s) => [s, store.get(s)!.fields()]));

      // Merged: {"s","q","state"}; q rises per symbol; the last state is the gateway's.
      const lastState: Record<string, unknown> = {};
      const lastQ: Record<string, number> = {};
      for (const l of merged.lines()) {
        expect(Object.keys(l).sort()).toEqual(['q', 's', 'state']);
        const s = l['s'] as string;
        expect(l['q'] as number).toBeGreaterThan(lastQ[s] ?? 0);
        lastQ[s] = l['q'] as number;
        lastState[s] = l['state'];
      }
      expect(lastState).toEqual(expected);

      // Deltas: a snapshot first per symbol, then changed fields; folding them gives the same state.
      const folded: Record<string, Record<string, unknown>> = {};
      for (const l of deltas.lines()) {
        const s = l['s'] as string;
        if (folded[s] === undefined) expect(l['snap']).toBe(true);
        folded[s] = l['snap'] === true ? { ...(l['d'] as object) } : Object.assign(folded[s]!, l['d']);
      }
      expect(folded).toEqual(expected);
    } finally {
      await own.stop();
    }
  });

  it('stops after --count updates', async () => {
    const t = tap(['AAPL', 'MSFT', '--url', gw.url, '--count', '25']);
    expect(await t.exited).toBe(0);
    const lines = t.lines();
    expect(lines).toHaveLength(25);
    expect(new Set(lines.map((l) => l['s']))).toEqual(new Set(['AAPL', 'MSFT']));
  });

  it('passes --throttle through: at most one update per symbol per interval', async () => {
    const t = tap(['AAPL', 'NVDA', '--url', gw.url, '--throttle', '500', '--duration', '2.2', '--deltas']);
    expect(await t.exited).toBe(0);
    const per = new Map<string, number>();
    for (const l of t.lines()) if (l['snap'] !== true) per.set(l['s'] as string, (per.get(l['s'] as string) ?? 0) + 1);
    // 2.2 s spans at most 5 slots of 500 ms; unthrottled these symbols tick hundreds of times.
    for (const s of ['AAPL', 'NVDA']) {
      expect(per.get(s), s).toBeGreaterThanOrEqual(2);
      expect(per.get(s), s).toBeLessThanOrEqual(5);
    }
  });

  it('prints a stats line per second with the update rate and latency percentiles from ts', async () => {
    const t = tap(['AAPL', 'MSFT', 'EUR/USD', 'BTC/USDT', 'SPY', '--url', gw.url, '--stats', '--duration', '3.5']);
    expect(await t.exited).toBe(0);
    const lines = t.lines();
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.length).toBeLessThanOrEqual(4);
    for (const l of lines) {
      expect(l).toMatchObject({ ts: expect.any(Number), updates: expect.any(Number), perSec: expect.any(Number) });
      expect(l['updates']).toBeGreaterThan(0);
      const lat = l['latencyMs'] as { p50: number; p99: number; max: number };
      expect(lat.p50).toBeGreaterThanOrEqual(0);
      expect(lat.p50).toBeLessThanOrEqual(lat.p99);
      expect(lat.p99).toBeLessThanOrEqual(lat.max);
      expect(lat.max).toBeLessThan(5000);
    }
  });
});

it('exits 1 with a clear message when it cannot connect', async () => {
  const port = await freePort();
  const url = `ws://127.0.0.1:${port}/v1/stream`;
  const t = tap(['AAPL', '--url', url]);
  expect(await t.exited).toBe(1);
  expect(t.stderr()).toBe(`tickgate tap: cannot connect to ${url}: ECONNREFUSED\n`);
  expect(t.lines()).toEqual([]);
});

it('exits 2 on bad arguments, naming the problem', async () => {
  const none = tap(['--url', 'ws://127.0.0.1:1/v1/stream']);
  expect(await none.exited).toBe(2);
  expect(none.stderr()).toContain('tickgate tap: no symbols given');
  const badCount = tap(['AAPL', '--count', 'many']);
  expect(await badCount.exited).toBe(2);
  expect(badCount.stderr()).toContain('--count: expected a non-negative integer, got "many"');
});

it('is the package bin: tickgate serve runs the server, unknown commands fail', async () => {
  const { bin } = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { bin: Record<string, string> };
  expect(bin['tickgate']).toBe('dist/src/cli.js');
  const run = (args: string[]) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise<{ code: number | null; out: string; err: string }>((resolve) => p.once('exit', (code) => resolve({ code, out, err })));
  };
  const help = await run(['serve', '--help']);
  expect(help.code).toBe(0);
  expect(help.out).toContain('usage: tickgate serve [--config FILE] [--print-config]');
  const cfg = await run(['serve', '--print-config']);
  expect(cfg.code).toBe(0);
  expect(JSON.parse(cfg.out)).toHaveProperty('port');
  const unknown = await run(['frobnicate']);
  expect(unknown.code).toBe(2);
  expect(unknown.err).toContain('unknown command "frobnicate"');
});
