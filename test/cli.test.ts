/**
 * The gateway as a user runs it: the built entry point in its own process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './helpers/nats-server.js';
import { ensureBuilt, ROOT, spawnGateway, waitReady } from './helpers/process.js';
import { StateView, TestClient } from './helpers/ws-client.js';

beforeAll(() => ensureBuilt(), 120_000);

describe('tickgate process', () => {
  it('runs on the embedded feed with no NATS, serves live data, and drains on SIGTERM', async () => {
    const port = await freePort();
    const gw = spawnGateway({ TICKGATE_PORT: String(port), TICKGATE_LOG_LEVEL: 'info' });
    try {
      await waitReady(`http://127.0.0.1:${port}/readyz`);
      const c = await TestClient.connect(`ws://127.0.0.1:${port}/v1/stream`);
      c.send({ op: 'symbols', id: 1, limit: 5000 });
      const list = (await c.next((m) => m.t === 'symbols', 'symbols'))['symbols'] as string[];
      expect(list.length).toBe(500);
      expect(list).toContain('AAPL');
      expect(list).toContain('EUR/USD');
      c.send({ op: 'sub', symbols: ['AAPL', 'EUR/USD', 'BTC/USDT'] });
      const view = await c.until((x) => {
        const v = new StateView().apply(x.messages);
        return x.messages.filter((m) => m.t === 'upd').length >= 20 ? v : undefined;
      }, '20 live updates', 10_000);
      expect(view.violations).toEqual([]);
      const aapl = view.state.get('AAPL')!.d;
      expect(aapl['bid']).toBeLessThan(aapl['ask'] as number);

      gw.proc.kill('SIGTERM');
      const bye = await c.next((m) => m.t === 'bye', 'bye');
      expect(bye).toMatchObject({ code: 'DRAINING' });
      await c.until((x) => x.closed, 'close');
      expect(c.closed!.code).toBe(1001);
      expect(await gw.exited).toBe(0);
      expect(gw.stdout()).toContain('"msg":"tickgate stopped"');
    } finally {
      gw.proc.kill('SIGKILL');
    }
  });

  it('fails at start naming the key, the value and what was expected', async () => {
    const bad = spawnGateway({ TICKGATE_PORT: '99999' });
    expect(await bad.exited).toBe(1);
    expect(bad.stderr()).toContain('port: expected a TCP port, an integer from 0 to 65535, got 99999');

    const dir = mkdtempSync(join(tmpdir(), 'tickgate-cfg-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ feeds: [{ name: 'fx', subject: 'fx.>', codec: 'xml' }] }));
    const badFeed = spawnGateway({}, ['--config', file]);
    expect(await badFeed.exited).toBe(1);
    expect(badFeed.stderr()).toContain('feeds[0].codec: expected "msgpack" or "json", got "xml"');

    const unknownArg = spawnGateway({}, ['--bogus']);
    expect(await unknownArg.exited).toBe(2);
    expect(unknownArg.stderr()).toContain('--bogus');
  });

  it('fails at start when NATS is configured but unreachable', async () => {
    const port = await freePort();
    const gw = spawnGateway({ TICKGATE_NATS_SERVERS: `nats://127.0.0.1:${port}`, TICKGATE_PORT: String(await freePort()) });
    expect(await gw.exited).toBe(1);
    expect(gw.stderr()).toContain(`cannot connect to NATS at nats://127.0.0.1:${port}`);
  });

  it('prints the effective config with secrets redacted', async () => {
    const gw = spawnGateway({ TICKGATE_NATS_PASS: 's3cret-pass', TICKGATE_NATS_SERVERS: 'nats://10.0.0.1:4222,nats://10.0.0.2:4222' }, ['--print-config']);
    expect(await gw.exited).toBe(0);
    const cfg = JSON.parse(gw.stdout()) as { nats: { pass: string; servers: string[] }; feeds: Array<{ name: string }> };
    expect(cfg.nats.pass).toBe('[redacted]');
    expect(gw.stdout()).not.toContain('s3cret-pass');
    expect(cfg.nats.servers).toEqual(['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222']);
    expect(cfg.feeds.map((f) => f.name)).toEqual(['sim']);
  });

  it('refuses the slow uWebSockets.js fallback unless allowed', async () => {
    const port = await freePort();
    const refused = spawnGateway({ UWS_USE_FALLBACK: '1', TICKGATE_PORT: String(port) });
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toContain('uWebSockets.js is running its slow pure-JS fallback');

    const allowed = spawnGateway({ UWS_USE_FALLBACK: '1', TICKGATE_ALLOW_UWS_FALLBACK: 'true', TICKGATE_PORT: String(port) });
    try {
      await waitReady(`http://127.0.0.1:${port}/readyz`);
      expect(allowed.stdout()).toContain('pure-JS fallback');
    } finally {
      allowed.proc.kill('SIGTERM');
      await allowed.exited;
    }
  });
});

/** Runs the built `tickgate healthcheck` with `args` and no TICKGATE_* variables; resolves with its exit code and output. */
function healthcheck(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  const proc = spawn(process.execPath, [`${ROOT}dist/src/cli.js`, 'healthcheck', ...args], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, out, err })));
}

describe('tickgate healthcheck', () => {
  it('finds the metrics port set in a config file, follows readiness through a drain, and fails once the gateway is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tickgate-hc-'));
    const metricsPort = await freePort();
    const file = join(dir, 'tickgate.json');
    // Not the default port, not in the environment: only the file says where /readyz is.
    writeFileSync(file, JSON.stringify({ port: await freePort(), metrics: { port: metricsPort }, drain: { delayMs: 4000, windowMs: 0, timeoutMs: 1000 } }));
    const gw = spawnGateway({}, ['--config', file]);
    try {
      await waitReady(`http://127.0.0.1:${metricsPort}/readyz`, 10_000, gw);
      const byFile = await healthcheck(['--config', file]);
      expect(byFile.err).toBe('');
      expect(byFile).toMatchObject({ code: 0, out: `tickgate healthcheck: http://127.0.0.1:${metricsPort}/readyz: 200\n` });
      // As in the image: the config file named on the gateway's own command line.
      const byPid = await healthcheck(['--pid', String(gw.proc.pid)]);
      expect(byPid).toMatchObject({ code: 0, out: `tickgate healthcheck: http://127.0.0.1:${metricsPort}/readyz: 200\n` });
      const byEnv = await healthcheck(['--path', '/healthz'], { TICKGATE_CONFIG: file });
      expect(byEnv.code).toBe(0);

      // Draining: not ready (503) during drain.delayMs, still alive.
      gw.proc.kill('SIGTERM');
      let draining = await healthcheck(['--config', file]);
      for (let i = 0; i < 20 && draining.code === 0; i++) draining = await healthcheck(['--config', file]);
      expect(draining).toMatchObject({ code: 1, err: `tickgate healthcheck: http://127.0.0.1:${metricsPort}/readyz: 503\n` });
      expect((await healthcheck(['--config', file, '--path', '/healthz'])).code).toBe(0);
      expect(await gw.exited).toBe(0);

      const down = await healthcheck(['--config', file]);
      expect(down.code).toBe(1);
      expect(down.err).toContain(`http://127.0.0.1:${metricsPort}/readyz: connect ECONNREFUSED`);
    } finally {
      gw.proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails naming the key of an invalid config and the option of a bad argument', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tickgate-hc-'));
    try {
      const file = join(dir, 'bad.json');
      writeFileSync(file, JSON.stringify({ metrics: { port: 70000 } }));
      const bad = await healthcheck(['--config', file]);
      expect(bad.code).toBe(1);
      expect(bad.err).toContain('metrics.port');
      const path = await healthcheck(['--path', '/metrics']);
      expect(path.code).toBe(2);
      expect(path.err).toContain('--path: expected /readyz or /healthz, got "/metrics"');
      const timeout = await healthcheck(['--timeout', '0']);
      expect(timeout.code).toBe(2);
      expect(timeout.err).toContain('--timeout: expected an integer from 1 to 60000, got "0"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
