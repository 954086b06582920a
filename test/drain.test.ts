/**
 * Graceful drain of the real process: SIGTERM with clients connected.
 */
import { beforeAll, expect, it } from 'vitest';
import { freePort } from './helpers/nats-server.js';
import { ensureBuilt, spawnGateway, waitReady } from './helpers/process.js';
import { TestClient } from './helpers/ws-client.js';

beforeAll(() => ensureBuilt(), 120_000);

it('goes not-ready at once, keeps serving through the delay, then refuses new clients, says bye DRAINING with spread retryMs to all, and exits 0', async () => {
  const port = await freePort();
  const adminPort = await freePort();
  const gw = spawnGateway({
    TICKGATE_PORT: String(port),
    TICKGATE_METRICS_PORT: String(adminPort),
    TICKGATE_DRAIN_DELAY_MS: '1500',
    TICKGATE_DRAIN_WINDOW_MS: '2000',
    TICKGATE_DRAIN_TIMEOUT_MS: '1500',
  });
  try {
    await waitReady(`http://127.0.0.1:${adminPort}/readyz`);
    const url = `ws://127.0.0.1:${port}/v1/stream`;
    const clients = await Promise.all(Array.from({ length: 20 }, () => TestClient.connect(url)));
    for (const c of clients) c.send({ op: 'sub', symbols: ['AAPL', 'MSFT', 'EUR/USD'] });
    await Promise.all(clients.map((c) => c.next((m) => m.t === 'snap', 'snap')));

    const t0 = Date.now();
    gw.proc.kill('SIGTERM');
    // Not ready at once, while still serving during the drain delay.
    let ready = 200;
    for (let i = 0; i < 50 && ready === 200; i++) {
      ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, () => 0);
      if (ready === 200) await new Promise((r) => setTimeout(r, 10));
    }
    expect(ready).toBe(503);
    expect(Date.now() - t0).toBeLessThan(1000);
    const body = (await (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).json()) as { reasons: string[] };
    expect(body.reasons).toContain('gateway is draining');
    const before = clients[0]!.messages.length;
    await clients[0]!.next((m) => m.t === 'upd', 'data still flowing during the delay', 1000, before);
    expect(clients.every((c) => c.closed === null)).toBe(true);

    const byes = await Promise.all(clients.map((c) => c.next((m) => m.t === 'bye', 'bye', 5000)));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1450);
    // After the delay: no new clients.
    await expect(TestClient.connect(url)).rejects.toThrow();
    await Promise.all(clients.map((c) => c.until((x) => x.closed, 'close', 5000)));
    for (const [i, c] of clients.entries()) {
      expect(byes[i]).toMatchObject({ code: 'DRAINING' });
      // bye is the last message before the close.
      expect(c.messages[c.messages.length - 1]!.t).toBe('bye');
      expect(c.closed!.code).toBe(1001);
    }
    const retry = byes.map((b) => b['retryMs'] as number);
    expect(retry.every((r) => Number.isInteger(r) && r >= 0 && r <= 2000)).toBe(true);
    expect(new Set(retry).size).toBeGreaterThan(10); // spread, not one value
    expect(Math.max(...retry) - Math.min(...retry)).toBeGreaterThan(500);

    expect(await gw.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1500 + 1500 + 2000); // delay + deadline + margin
    expect(gw.stdout()).toContain('"msg":"tickgate stopped"');
  } finally {
    gw.proc.kill('SIGKILL');
  }
});

it('exits at once on a second signal during the drain', async () => {
  const port = await freePort();
  const gw = spawnGateway({ TICKGATE_PORT: String(port), TICKGATE_DRAIN_DELAY_MS: '20000' });
  try {
    await waitReady(`http://127.0.0.1:${port}/readyz`);
    gw.proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    expect(gw.proc.exitCode).toBeNull(); // still draining (20 s delay)
    const t0 = Date.now();
    gw.proc.kill('SIGINT');
    expect(await gw.exited).toBe(1);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(gw.stdout()).toContain('second signal');
  } finally {
    gw.proc.kill('SIGKILL');
  }
});
