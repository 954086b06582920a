/**
 * The dashboard in a real Chromium (Debian's, driven by playwright-core):
 * served by the gateway, fed by it, surviving a gateway restart, showing
 * stale symbols, adding field columns with the column picker, and keeping
 * up with 200 ticking symbols.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from './helpers/gateway.js';
import { freePort, startNatsServer } from './helpers/nats-server.js';
import { ensureBuilt, ROOT, spawnGateway, waitReady, type RunningGateway } from './helpers/process.js';

// Browser globals used inside page.evaluate callbacks: this file is type-checked
// for Node.js, without the DOM library, so declare just what those callbacks use.
declare const localStorage: { setItem(key: string, value: string): void };
declare const getComputedStyle: (el: unknown, pseudo: string) => { content: string };
declare const requestAnimationFrame: (cb: () => void) => number;
declare const document: { getElementById(id: string): { textContent: string | null } | null };
type LongTaskObserver = new (cb: (list: { getEntries(): Array<{ duration: number }> }) => void) => { observe(o: { type: string }): void };

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = `${ROOT}test-artifacts`;

let context: BrowserContext;
let profile: string;
const procs: RunningGateway[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with "apt-get install -y chromium" (scripts/test.sh does this)`);
  }
  ensureBuilt();
  const built = spawnSync(process.execPath, ['scripts/build-dashboard.mjs'], { cwd: ROOT, stdio: 'inherit' });
  if (built.status !== 0) throw new Error('dashboard build failed');
  profile = mkdtempSync(join(tmpdir(), 'tickgate-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
    viewport: { width: 1400, height: 820 },
  });
}, 180_000);

afterAll(async () => {
  await context?.close();
  for (const p of procs) p.proc.kill('SIGKILL');
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function gatewayProcess(port: number, config: object): Promise<RunningGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-browser-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const gw = spawnGateway({ TICKGATE_PORT: String(port), TICKGATE_LOG_LEVEL: 'warn' }, ['--config', join(dir, 'config.json')]);
  procs.push(gw);
  await waitReady(`http://127.0.0.1:${port}/readyz`);
  return gw;
}

/** A page that records its uncaught errors. */
async function openPage(url: string, watchlist?: string[]): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  if (watchlist !== undefined) {
    await page.addInitScript((list) => localStorage.setItem('tickgate.watchlist.v1', JSON.stringify(list)), watchlist);
  }
  await page.goto(url);
  return { page, errors };
}

const cell = (page: Page, symbol: string, col: string) => page.locator(`tr[data-symbol="${symbol}"] td.${col}`);

/** Waits until a cell shows a value other than `than` (and not empty). */
async function changes(page: Page, symbol: string, col: string, than: string, ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const now = (await cell(page, symbol, col).textContent()) ?? '';
    if (now !== '' && now !== than) return now;
    if (Date.now() > deadline) throw new Error(`${symbol} ${col} stayed at ${JSON.stringify(than)} for ${ms} ms`);
    await page.waitForTimeout(50);
  }
}

describe('dashboard', () => {
  it('loads, adds a symbol with the picker, shows moving prices, and recovers from a gateway restart', async () => {
    const port = await freePort();
    const embedded = { embedded: { symbols: 200, ticksPerSec: 2000 } };
    let gw = await gatewayProcess(port, embedded);
    const { page, errors } = await openPage(`http://127.0.0.1:${port}/`);

    await expect.poll(() => page.locator('#conn').getAttribute('data-state'), { timeout: 10_000 }).toBe('open');
    // The default watchlist, with prices.
    for (const s of ['AAPL', 'MSFT', 'EUR/USD', 'BTC/USDT']) await expect.poll(() => cell(page, s, 'bid').textContent()).not.toBe('');

    // The picker searches the gateway's symbols by prefix.
    await page.locator('#picker').fill('ts');
    const option = page.locator('#suggestions li[data-symbol="TSLA"]');
    await option.waitFor({ timeout: 5000 });
    await option.click();
    await cell(page, 'TSLA', 'bid').waitFor();
    await expect.poll(() => cell(page, 'TSLA', 'last').textContent(), { timeout: 10_000 }).toMatch(/^\d[\d,]*\.\d+$/);
    expect(await page.locator('tr.selected').getAttribute('data-symbol')).toBe('TSLA');
    expect(await page.locator('#chart-symbol').textContent()).toBe('TSLA');

    // Prices move on screen: read the same cells twice.
    const aapl1 = (await cell(page, 'AAPL', 'bid').textContent())!;
    await changes(page, 'AAPL', 'bid', aapl1);
    const tsla1 = (await cell(page, 'TSLA', 'last').textContent())!;
    await changes(page, 'TSLA', 'last', tsla1);
    await expect.poll(() => page.locator('#rtt').textContent()).toMatch(/ms$/);
    await expect.poll(() => page.locator('#age-p50').textContent()).toMatch(/ms$/);
    await page.waitForTimeout(1500); // some chart history
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}/dashboard.png` });

    // Restart the gateway on the same port: the page says so, reconnects, and prices move again.
    const sidBefore = await page.locator('#sid').textContent();
    gw.proc.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    await expect.poll(() => page.locator('#conn').getAttribute('data-state'), { timeout: 5000 }).not.toBe('open');
    expect(await page.locator('#conn .conn-text').textContent()).toMatch(/reconnecting|connecting/);
    gw = await gatewayProcess(port, embedded);
    await expect.poll(() => page.locator('#conn').getAttribute('data-state'), { timeout: 15_000 }).toBe('open');
    expect(await page.locator('#sid').textContent()).not.toBe(sidBefore);
    const tsla2 = (await cell(page, 'TSLA', 'last').textContent())!;
    await changes(page, 'TSLA', 'last', tsla2);
    const eur = (await cell(page, 'EUR/USD', 'bid').textContent())!;
    await changes(page, 'EUR/USD', 'bid', eur);

    // The watchlist survives a reload (localStorage).
    await page.reload();
    await cell(page, 'TSLA', 'bid').waitFor();
    await expect.poll(() => cell(page, 'TSLA', 'bid').textContent()).not.toBe('');
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  it('shows stale rows when the feed goes stale, and live again when it resumes', async () => {
    const nats = await startNatsServer();
    const gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [{ name: 'sim', subject: 'md.sim.>', codec: 'msgpack', staleAfterMs: 500 }],
    });
    const nc = await connect({ servers: nats.url });
    const packr = new Packr({ useRecords: false });
    let px = 100;
    let publishing = true;
    const publisher = setInterval(() => {
      if (!publishing) return;
      px = Math.round((px + (Math.random() - 0.5) / 10) * 100) / 100;
      for (const s of ['ACME', 'GLOBEX']) nc.publish(`md.sim.${s}`, packr.pack({ s, bid: px, ask: px + 0.01, last: px, volume: 1000, close: 100, ts: Date.now() }));
    }, 50);
    try {
      const { page, errors } = await openPage(`${gw.http}/`, ['ACME', 'GLOBEX']);
      await expect.poll(() => cell(page, 'ACME', 'bid').textContent(), { timeout: 10_000 }).not.toBe('');
      const row = page.locator('tr[data-symbol="ACME"]');
      expect(await row.getAttribute('data-status')).toBeNull();

      publishing = false;
      await expect.poll(() => row.getAttribute('data-status'), { timeout: 10_000 }).toBe('stale');
      expect(await page.locator('tr[data-symbol="GLOBEX"]').getAttribute('data-status')).toBe('stale');
      const badge = await row.locator('.badge').evaluate((el) => getComputedStyle(el, '::after').content);
      expect(badge).toBe('"STALE"');
      // The last known prices stay on screen.
      expect(await cell(page, 'ACME', 'bid').textContent()).not.toBe('');
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-stale.png` });

      publishing = true;
      await expect.poll(() => row.getAttribute('data-status'), { timeout: 10_000 }).toBeNull();
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      clearInterval(publisher);
      await nc.close();
      await gw.stop();
      await nats.stop();
    }
  }, 60_000);

  it('adds a field column with the column picker, shows its values moving, and keeps it after a reload', async () => {
    // A fresh embedded market: sessions just opened, so new highs come often.
    const gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
    try {
      const watched = ['AAPL', 'MSFT', 'NVDA', 'EUR/USD', 'GBP/USD', 'BTC/USDT', 'ETH/USDT'];
      const { page, errors } = await openPage(`${gw.http}/`, watched);
      for (const s of watched) await expect.poll(() => cell(page, s, 'last').textContent(), { timeout: 10_000 }).not.toBe('');
      const menu = page.locator('#columns-menu');
      const high = (s: string) => page.locator(`tr[data-symbol="${s}"] td[data-field="high"]`);

      // The picker offers the fields in the data that no fixed column shows.
      await page.locator('#columns-button').click();
      await menu.waitFor();
      const offered = await menu.locator('input[data-field]').evaluateAll((els) => els.map((e) => (e as unknown as { dataset: { field: string } }).dataset.field));
      expect(offered).toEqual(['bidSize', 'askSize', 'lastSize', 'open', 'high', 'low', 'close', 'ts', 'seq']);
      await menu.locator('input[data-field="high"]').check();
      expect(await page.locator('thead th[data-field="high"]').textContent()).toBe('High');

      // Every row shows its session high, formatted as a price, at or above its last trade.
      const num = (t: string | null) => Number((t ?? '').replace(/,/g, ''));
      for (const s of watched) {
        await expect.poll(() => high(s).textContent(), { timeout: 5000 }).toMatch(/^\d[\d,]*\.\d+$/);
        const [h, last] = await Promise.all([high(s).textContent(), cell(page, s, 'last').textContent()]);
        expect(num(h), `${s} high ${h} last ${last}`).toBeGreaterThanOrEqual(num(last));
      }
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-columns-menu.png` });
      await page.keyboard.press('Escape');
      await expect.poll(() => menu.isHidden()).toBe(true);
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-columns.png` });
      // The values move: some row makes a new high.
      const before = await Promise.all(watched.map((s) => high(s).textContent()));
      await expect
        .poll(async () => (await Promise.all(watched.map((s) => high(s).textContent()))).some((t, i) => t !== before[i]), { timeout: 15_000 })
        .toBe(true);

      // The choice survives a reload (localStorage), and the picker shows it.
      await page.reload();
      await expect.poll(() => high('AAPL').textContent(), { timeout: 10_000 }).toMatch(/^\d[\d,]*\.\d+$/);
      expect(await page.locator('thead th[data-field]').evaluateAll((els) => els.map((e) => e.textContent))).toEqual(['High']);
      await page.locator('#columns-button').click();
      expect(await menu.locator('input[data-field="high"]').isChecked()).toBe(true);

      // And unchecking removes it.
      await menu.locator('input[data-field="high"]').uncheck();
      expect(await page.locator('td[data-field]').count()).toBe(0);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await gw.stop();
    }
  }, 60_000);

  it('stays smooth with 200 ticking symbols: frames keep coming, no long tasks', async () => {
    const gw = await startGateway({ embedded: { symbols: 200, ticksPerSec: 2000 } });
    try {
      const all = gw.gateway.hub.store.list('', 1000).symbols;
      expect(all).toHaveLength(200);
      const { page, errors } = await openPage(`${gw.http}/`, all);
      await expect.poll(() => page.locator('tbody tr').count(), { timeout: 10_000 }).toBe(200);
      await expect.poll(() => cell(page, all[0]!, 'bid').textContent(), { timeout: 10_000 }).not.toBe('');
      // Rows out of view are drawn when scrolled to.
      await cell(page, all[199]!, 'bid').scrollIntoViewIfNeeded();
      await expect.poll(() => cell(page, all[199]!, 'bid').textContent(), { timeout: 10_000 }).not.toBe('');
      await page.locator('.table-wrap').evaluate((el) => el.scrollTo(0, 0));
      const m = await page.evaluate(
        () =>
          new Promise<{ frames: number; longTasks: number[]; rate: string }>((resolve) => {
            const longTasks: number[] = [];
            const Observer = (globalThis as unknown as { PerformanceObserver: LongTaskObserver }).PerformanceObserver;
            new Observer((l) => l.getEntries().forEach((e) => longTasks.push(e.duration))).observe({ type: 'longtask' });
            let frames = 0;
            const t0 = performance.now();
            const count = (): void => {
              frames++;
              if (performance.now() - t0 < 3000) requestAnimationFrame(count);
              else resolve({ frames, longTasks, rate: document.getElementById('rate')!.textContent ?? '' });
            };
            requestAnimationFrame(count);
          }),
      );
      // 3 s at 60 Hz is 180 frames (about 170 here when the machine is otherwise idle); a page
      // that drew per message would drop most of them and block for seconds. The bounds are
      // loose (15 fps, half-second tasks) because other test files share the two cores.
      console.log(`dashboard with 200 symbols: ${m.frames} frames in 3 s, ${m.rate} updates/s, longest task ${Math.max(0, ...m.longTasks)} ms`);
      expect(m.frames, JSON.stringify(m)).toBeGreaterThanOrEqual(45);
      expect(Math.max(0, ...m.longTasks), JSON.stringify(m)).toBeLessThan(500);
      expect(Number(m.rate)).toBeGreaterThan(500);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await gw.stop();
    }
  }, 60_000);
});
