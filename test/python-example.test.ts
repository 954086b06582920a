/**
 * examples/python/watch.py (on the tickgate package), run with Debian's
 * Python against a real gateway: what it prints is the gateway's state, and
 * the symbols' stale status when the feed stops.
 */
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { startGateway } from './helpers/gateway.js';
import { freePort } from './helpers/nats-server.js';
import { ROOT } from './helpers/process.js';

const SCRIPT = `${ROOT}examples/python/watch.py`;

function watch(args: string[]) {
  const proc = spawn('/usr/bin/python3', [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  return { out: () => out, err: () => err, exited };
}

it('keeps the merged state: its last line per symbol is the gateway state once the feed is quiet', async () => {
  const gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
  try {
    const symbols = ['AAPL', 'EUR/USD', 'BTC/USDT', 'SHIB/USDT'];
    const py = watch([...symbols, '--url', gw.url, '--json', '--duration', '4']);
    const deadline = Date.now() + 10_000;
    while (py.out().split('\n').length < 100) {
      if (Date.now() > deadline) throw new Error(`watch.py printed too little: ${py.out().slice(0, 500)} ${py.err()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    await gw.gateway.source.stop();
    expect(await py.exited).toBe(0);
    // Stopping the feed makes its symbols stale, which the script reports on stderr.
    for (const l of py.err().trim().split('\n').filter(Boolean)) expect(l).toMatch(/^(AAPL|EUR\/USD|BTC\/USDT|SHIB\/USDT): stale$/);

    const last: Record<string, unknown> = {};
    const lastQ: Record<string, number> = {};
    const stats: Array<{ s: string; st: string }> = [];
    for (const l of py.out().trim().split('\n')) {
      const m = JSON.parse(l) as { t?: 'stat'; s: string; q: number; state: Record<string, number>; stale: boolean; st: string };
      if (m.t === 'stat') {
        stats.push({ s: m.s, st: m.st });
        continue;
      }
      expect(m.q).toBeGreaterThan(lastQ[m.s] ?? 0);
      // The feed was live while it ticked: no update says stale.
      expect(m.stale).toBe(false);
      lastQ[m.s] = m.q;
      last[m.s] = m.state;
    }
    // The stale status reaches the JSON output too, once per symbol, after its updates.
    expect(stats.sort((a, b) => a.s.localeCompare(b.s))).toEqual([...symbols].sort().map((s) => ({ s, st: 'stale' })));
    const lines = py.out().trim().split('\n');
    expect(lines.slice(-symbols.length).every((l) => l.includes('"t": "stat"'))).toBe(true);
    const store = gw.gateway.hub.store;
    expect(last).toEqual(Object.fromEntries(symbols.map((s) => [s, store.get(s)!.fields()])));
    for (const s of symbols) expect(lastQ[s]).toBe(store.get(s)!.q);
  } finally {
    await gw.stop();
  }
});

it('prints a readable line per update and stops after --count', async () => {
  const gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
  try {
    const py = watch(['AAPL', 'EUR/USD', '--url', gw.url, '--count', '10']);
    expect(await py.exited).toBe(0);
    const lines = py.out().trim().split('\n');
    expect(lines).toHaveLength(10);
    for (const l of lines) expect(l).toMatch(/^\d\d:\d\d:\d\d {2}(AAPL|EUR\/USD) +q=\d+ +bid +[\d,.]+ +ask +[\d,.]+ +last +[\d,.]+$/);
  } finally {
    await gw.stop();
  }
});

it('exits 1 with a message when it cannot connect', async () => {
  const url = `ws://127.0.0.1:${await freePort()}/v1/stream`;
  const py = watch(['AAPL', '--url', url]);
  expect(await py.exited).toBe(1);
  expect(py.err()).toContain(`watch.py: cannot connect to ${url}`);
});
