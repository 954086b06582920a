/**
 * The Python package (clients/python, importable as `tickgate`) with Debian's
 * Python: installed offline by pip into a venv, its unit tests, and the
 * client against real gateways: reconnect with growing delays after the
 * gateway goes away (retryMs of its bye honoured), fresh snapshots after
 * the reconnect, stale status; a dead connection found from missing
 * heartbeats behind a TCP proxy that stops forwarding; JWT tokens from
 * get_token, refused and refreshed across a short token's expiry; a 429
 * TOO_MANY_ATTEMPTS whose Retry-After is waited out; and a static token whose
 * exp has passed, never sent.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort } from './helpers/nats-server.js';
import { ROOT } from './helpers/process.js';

const DRIVER = `${ROOT}test/python/drive_client.py`;
const PY = '/usr/bin/python3';
const cleanup: Array<() => unknown> = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f();
});

type Ev = Record<string, unknown> & { ev: string; t: number };

/** Runs drive_client.py; every stdout line is an event, stamped with when it arrived here. */
function drive(args: string[]) {
  const proc = spawn(PY, [DRIVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanup.push(() => proc.kill('SIGKILL'));
  const events: Ev[] = [];
  let buf = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (l.startsWith('{')) events.push({ ...(JSON.parse(l) as Ev), t: Date.now() });
    }
  });
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const of = (ev: string) => events.filter((e) => e.ev === ev);
  return { proc, events, of, err: () => err, exited };
}

async function waitFor<T>(f: () => T | undefined | false, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('installs offline with pip into a venv (PEP 668 refuses the system interpreter) and passes its unit tests', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-pyvenv-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  // A copy, so that the build leaves nothing in the source tree.
  const src = join(dir, 'src');
  cpSync(`${ROOT}clients/python`, src, { recursive: true, filter: (p) => !/(__pycache__|\.egg-info|[\\/]build)$/.test(p) });
  const run = (cmd: string, args: string[], cwd = dir) => spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000 });

  const refused = run(PY, ['-m', 'pip', 'install', '--dry-run', '--no-build-isolation', '--no-deps', src]);
  expect(refused.status).not.toBe(0);
  expect(refused.stderr).toContain('externally-managed-environment');

  expect(run(PY, ['-m', 'venv', '--system-site-packages', join(dir, 'venv')]).status).toBe(0);
  const vpy = join(dir, 'venv', 'bin', 'python');
  const install = run(vpy, ['-m', 'pip', 'install', '--no-build-isolation', '--no-index', src]);
  expect(install.status, install.stderr + install.stdout).toBe(0);
  rmSync(src, { recursive: true, force: true });

  // From the venv, not from a source path: the installed copy, with its py.typed.
  const where = run(vpy, ['-c', 'import tickgate, os; print(os.path.dirname(tickgate.__file__))']);
  expect(where.stdout.trim()).toContain(join(dir, 'venv'));
  expect(existsSync(join(where.stdout.trim(), 'py.typed'))).toBe(true);
  const unit = run(vpy, ['-m', 'unittest', 'discover', '-s', `${ROOT}clients/python/tests`, '-t', `${ROOT}clients/python/tests`]);
  expect(unit.status, unit.stderr).toBe(0);
  expect(unit.stderr).toMatch(/Ran (\d+) tests/);
  expect(Number(/Ran (\d+) tests/.exec(unit.stderr)![1])).toBeGreaterThanOrEqual(10);
});

describe('reconnect', () => {
  it('waits the bye retryMs, then growing delays while the gateway is away; resubscribes with fresh snapshots; reports stale', async () => {
    const port = await freePort();
    const opts = { port, embedded: { symbols: 50, ticksPerSec: 400, bookChangesPerSec: 100, tradesPerSec: 0 } };
    let gw: TestGateway = await startGateway(opts);
    cleanup.push(() => gw.stop());
    const symbols = ['AAPL', 'EUR/USD'];
    const py = drive(['--url', gw.url, '--quotes', symbols.join(','), '--jitter-one', '--backoff-initial', '0.1', '--backoff-max', '0.8', '--duration', '15']);
    await waitFor(() => py.of('Quote').length > 20, `quotes from the first gateway: ${py.err()}`);

    // Drain with retryMs drawn from [0, 600]; nothing listens afterwards.
    await gw.gateway.stop({ delayMs: 0, windowMs: 600, timeoutMs: 1000 });
    const first = await waitFor(() => py.of('Disconnected')[0], 'the disconnect');
    const bye = first['bye'] as { code: string; retry_ms: number };
    expect(bye.code).toBe('DRAINING');
    const retry = bye.retry_ms / 1000;
    expect(first['opened']).toBe(true);
    // Full jitter drawn at 1: retryMs plus max(retryMs / 2, initial).
    expect(first['delay_s']).toBeCloseTo(retry + Math.max(retry / 2, 0.1), 6);
    await waitFor(() => py.of('Disconnected').length >= 5, `four failed attempts: ${JSON.stringify(py.of('Disconnected'))}`);
    const failed = py.of('Disconnected').slice(1, 5);
    expect(failed.map((d) => d['opened'])).toEqual([false, false, false, false]);
    expect(failed.map((d) => d['attempt'])).toEqual([2, 3, 4, 5]);
    // Caps 0.2, 0.4, 0.8, 0.8 (the maximum), never below retryMs.
    expect(failed.map((d) => d['delay_s'])).toEqual([0.2, 0.4, 0.8, 0.8].map((c) => Math.max(retry, c)));

    const quotesBefore = py.of('Quote').length;
    gw = await startGateway(opts);
    const connected = await waitFor(() => py.of('Connected')[1], `the reconnect: ${py.err()}`);
    expect(connected['attempt']).toBeGreaterThanOrEqual(6);
    // The first quotes on the new connection are snapshots of the new gateway's state.
    await waitFor(() => symbols.every((s) => py.events.some((e) => e.ev === 'Quote' && e['symbol'] === s && e.t >= connected.t && e['snapshot'] === true)), 'fresh snapshots');
    await waitFor(() => py.of('Quote').length > quotesBefore + 40, 'updates after the reconnect');

    // The feed stops: the symbols go stale, and the last state is the gateway's.
    await gw.gateway.source.stop();
    await waitFor(() => symbols.every((s) => py.of('StatusChange').some((e) => e['symbol'] === s && e['status'] === 'stale')), 'stale statuses');
    const store = gw.gateway.hub.store;
    for (const s of symbols) {
      const last = py.of('Quote').filter((e) => e['symbol'] === s).at(-1)!;
      expect(last['state']).toEqual(store.get(s)!.fields());
      expect(last['q']).toBe(store.get(s)!.q);
    }
    // Never a delta merged across connections: every upd follows a snapshot of its own connection.
    let synced = new Set<string>();
    for (const e of py.events) {
      if (e.ev === 'Connected') synced = new Set();
      if (e.ev === 'Quote') {
        if (e['snapshot']) synced.add(e['symbol'] as string);
        else expect(synced.has(e['symbol'] as string)).toBe(true);
      }
    }
    py.proc.kill('SIGKILL');
  });
});

/** A TCP proxy to `target` whose open connections can be frozen: nothing forwarded either way, sockets left open. */
async function frozenProxy(target: number) {
  const pairs: Array<[Socket, Socket]> = [];
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(target, '127.0.0.1');
    pairs.push([client, upstream]);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/stream`,
    freeze() {
      for (const [c, u] of pairs) {
        c.unpipe(u);
        u.unpipe(c);
        c.pause();
        u.pause();
      }
      pairs.length = 0;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

it('gives up a connection that sends nothing for 3 x hbMs, and reconnects', async () => {
  const gw = await startGateway({ ws: { heartbeatMs: 200 }, embedded: { symbols: 20, ticksPerSec: 200, tradesPerSec: 0 } });
  cleanup.push(() => gw.stop());
  const proxy = await frozenProxy(gw.gateway.port);
  cleanup.push(() => proxy.close());
  const py = drive(['--url', proxy.url, '--quotes', 'AAPL', '--books', 'AAPL', '--backoff-initial', '0.1', '--duration', '10']);
  await waitFor(() => py.of('Book').length > 3 && py.of('Quote').length > 3, `data through the proxy: ${py.err()}`);
  expect(py.of('Connected')[0]!['hb_ms']).toBe(200);
  const frozenAt = Date.now();
  proxy.freeze();
  const lost = await waitFor(() => py.of('Disconnected')[0], 'the dead connection to be given up');
  expect(lost['reason']).toBe('no frame for 0.6 s');
  expect(lost['opened']).toBe(true);
  expect(lost['bye']).toBeNull();
  // About 3 x hbMs after the last frame: not before, and well before any TCP timeout.
  expect(lost.t - frozenAt).toBeGreaterThanOrEqual(450);
  expect(lost.t - frozenAt).toBeLessThan(3000);
  const again = await waitFor(() => py.of('Connected')[1], 'a new connection');
  await waitFor(() => py.events.some((e) => e.ev === 'Book' && e.t >= again.t && e['snapshot'] === true), 'a fresh book after the reconnect');
  await waitFor(() => py.events.some((e) => e.ev === 'Quote' && e.t >= again.t && e['snapshot'] === true), 'a fresh snapshot after the reconnect');
  py.proc.kill('SIGKILL');
});

describe('JWT tokens', () => {
  const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!!';
  let gw: TestGateway;

  it('asks get_token again after a refused token, and refreshes a 2 s token before each expiry without a disconnect', async () => {
    gw = await startGateway({
      auth: { mode: 'jwt', jwt: { secret: SECRET, audience: 'tickgate', clockSkewSec: 0 } },
      embedded: { symbols: 20, ticksPerSec: 200, tradesPerSec: 0 },
    });
    cleanup.push(() => gw.stop());
    const py = drive(['--url', gw.url, '--quotes', 'AAPL', '--jwt-secret', SECRET, '--jwt-ttl', '2', '--bad-first', '--duration', '5.5']);
    expect(await py.exited).toBe(0);
    const tokens = py.of('get_token');
    // The bad first token is refused at the upgrade; the next one is fresh.
    const [refusal, ...rest] = py.of('Disconnected');
    expect(refusal).toMatchObject({ reason: 'upgrade refused with HTTP 401', opened: false });
    expect(rest).toEqual([]);
    expect(py.of('Connected')).toHaveLength(1);
    expect(await gw.metric('tickgate_upgrades_rejected_total', { code: 'AUTH_INVALID' })).toBe(1);
    // Every refresh went out over the open connection, before the previous token ran out.
    const counters = py.of('counters')[0]!;
    expect(counters['token_refreshes']).toBeGreaterThanOrEqual(2);
    expect(tokens.length).toBeGreaterThanOrEqual(4);
    const firstGoodExp = (tokens[1]!['exp'] as number) * 1000;
    expect(py.of('Quote').some((e) => e.t > firstGoodExp + 1000)).toBe(true);
    expect(await gw.metric('tickgate_connections_closed_total', { reason: 'AUTH_EXPIRED' })).toBe(0);
    expect(py.of('error')).toEqual([]);
  });

  it('waits the Retry-After of a 429 TOO_MANY_ATTEMPTS before trying again', async () => {
    const blocked = await startGateway({
      auth: { mode: 'jwt', jwt: { secret: SECRET, audience: 'tickgate', clockSkewSec: 0 }, failedAttempts: { max: 1, windowMs: 2000 } },
      embedded: { symbols: 20, ticksPerSec: 200, tradesPerSec: 0 },
    });
    cleanup.push(() => blocked.stop());
    // The refused first token blocks this address for the window; a 0.1 s backoff alone would retry inside it.
    const py = drive(['--url', blocked.url, '--quotes', 'AAPL', '--jwt-secret', SECRET, '--bad-first', '--retry-first', '--jitter-one', '--backoff-initial', '0.1', '--duration', '5']);
    const connected = await waitFor(() => py.of('Connected')[0], `the connection after the block: ${py.err()}`);
    const [refusal, tooMany, ...rest] = py.of('Disconnected');
    expect(refusal).toMatchObject({ reason: 'upgrade refused with HTTP 401', opened: false });
    const m = /^upgrade refused with HTTP 429 \(Retry-After (\d+) s\)$/.exec(tooMany!['reason'] as string);
    expect(m).not.toBeNull();
    const retryAfter = Number(m![1]);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    // Retry-After, with the backoff's full jitter (drawn at 1: cap 0.2 for attempt 2) on top.
    expect(tooMany!['delay_s']).toBeCloseTo(retryAfter + 0.2, 6);
    expect(connected.t - tooMany!.t).toBeGreaterThanOrEqual(retryAfter * 1000);
    expect(rest).toEqual([]);
    expect(await blocked.metric('tickgate_upgrades_rejected_total', { code: 'TOO_MANY_ATTEMPTS' })).toBe(1);
    py.proc.kill('SIGKILL');
  });

  it('never connects with a static token whose exp has passed', async () => {
    const expired = await new SignJWT({ sub: 'py' })
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience('tickgate')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(SECRET));
    const opened = await gw.metric('tickgate_connections_opened_total');
    const py = drive(['--url', gw.url, '--quotes', 'AAPL', '--token', expired, '--duration', '5']);
    expect(await py.exited).toBe(2);
    expect(py.of('error')).toEqual([expect.objectContaining({ type: 'TokenExpiredError', msg: expect.stringContaining('the token expired at') })]);
    expect(await gw.metric('tickgate_upgrades_rejected_total', { code: 'AUTH_EXPIRED' })).toBe(0);
    expect(await gw.metric('tickgate_connections_opened_total')).toBe(opened);
  });
});
