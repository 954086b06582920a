/**
 * The dashboard in a real Chromium (Debian's, driven by playwright-core):
 * served by the gateway, fed by it, surviving a gateway restart, showing
 * stale symbols, adding field columns with the column picker, showing the
 * selected symbol's order book as a depth ladder and its trades as a
 * time-and-sales tape, and keeping up with 200 ticking symbols.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { encode as mpEncode } from '@msgpack/msgpack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from './helpers/gateway.js';
import { freePort, startNatsServer } from './helpers/nats-server.js';
import { ensureBuilt, ROOT, spawnGateway, waitReady, type RunningGateway } from './helpers/process.js';

// Browser globals used inside page.evaluate callbacks: this file is type-checked
// for Node.js, without the DOM library, so declare just what those callbacks use.
declare const localStorage: { setItem(key: string, value: string): void };
declare const getComputedStyle: (el: unknown, pseudo: string) => { content: string; color: string };
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
        // Both cells in one page turn: a frame between two reads could move last and high.
        const [h, last] = await page.locator(`tr[data-symbol="${s}"]`).evaluate((tr) => {
          const q = (sel: string) => (tr as unknown as { querySelector(s: string): { textContent: string | null } }).querySelector(sel).textContent;
          return [q('td[data-field="high"]'), q('td.last')];
        });
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

  it("shows the selected symbol's order book as a depth ladder, live, stale on a source gap, and no book for a symbol without one", async () => {
    const nats = await startNatsServer();
    const gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [
        { name: 'sim', subject: 'md.sim.>', codec: 'msgpack' },
        { name: 'lob', kind: 'book', subject: 'book.>', codec: 'msgpack' },
      ],
    });
    const nc = await connect({ servers: nats.url });
    // A BTC/USDT book on a 0.5 grid around 64,250, sizes in thousandths; quotes follow its top.
    type Level = [number, number];
    const bids = new Map<number, number>();
    const asks = new Map<number, number>();
    let seq = 0;
    let x = 11;
    const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
    const size = () => Math.round((0.05 + rnd() * rnd() * 6) * 1000) / 1000;
    for (let k = 1; k <= 40; k++) {
      bids.set(64_250 - 0.5 * k, size());
      asks.set(64_250 + 0.5 * (k - 1), size());
    }
    const sorted = (m: Map<number, number>, desc: boolean): Level[] => [...m].sort((a, b) => (desc ? b[0] - a[0] : a[0] - b[0]));
    const window = (depth: number) => ({ bids: sorted(bids, true).slice(0, depth), asks: sorted(asks, false).slice(0, depth) });
    const publishBook = (msg: object) => nc.publish('book.BTC/USDT', mpEncode({ s: 'BTC/USDT', seq: ++seq, ...msg }));
    const quote = () => {
      const w = window(1);
      const bid = w.bids[0]![0];
      const ask = w.asks[0]![0];
      nc.publish('md.sim.BTC/USDT', mpEncode({ s: 'BTC/USDT', bid, ask, bidSize: w.bids[0]![1], askSize: w.asks[0]![1], last: rnd() < 0.5 ? bid : ask, close: 63_900, volume: 18_250, ts: Date.now() }));
      nc.publish('md.sim.ETH/USDT', mpEncode({ s: 'ETH/USDT', bid: 3120.5, ask: 3120.75, last: 3120.5, close: 3100, volume: 91_000, ts: Date.now() }));
    };
    publishBook({ snapshot: true, bids: sorted(bids, true), asks: sorted(asks, false) });
    let changing = true;
    const publisher = setInterval(() => {
      quote();
      if (!changing) return;
      // One to three changes near the top: new sizes, removals, and levels coming back.
      const cb: Level[] = [];
      const ca: Level[] = [];
      for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) {
        const k = 1 + Math.floor(rnd() * 14);
        const [side, book, p] = rnd() < 0.5 ? [cb, bids, 64_250 - 0.5 * k] : [ca, asks, 64_250 + 0.5 * (k - 1)];
        if (side.some((l) => l[0] === p)) continue;
        const sz = book.has(p) && rnd() < 0.25 && book.size > 20 ? 0 : size();
        if (sz === 0) book.delete(p);
        else book.set(p, sz);
        side.push([p, sz]);
      }
      publishBook({ bids: cb, asks: ca });
    }, 40);
    try {
      const { page, errors } = await openPage(`${gw.http}/`, ['BTC/USDT', 'ETH/USDT']);
      const ladder = page.locator('#ladder');
      const rows = (side: 'ask' | 'bid') =>
        ladder.locator(`.ladder-body .lrow.${side}`).evaluateAll((els) =>
          els.map((e) => {
            const t = (c: string) => (e as unknown as { querySelector(s: string): { textContent: string } }).querySelector(c).textContent;
            const bar = (e as unknown as { querySelector(s: string): { style: { transform: string } } }).querySelector('.bar').style.transform;
            return { px: t('.px'), size: t('.size'), cum: t('.cum'), bar: Number(/scaleX\(([^)]*)\)/.exec(bar)?.[1] ?? 0) };
          }),
        );
      const num = (t: string) => Number(t.replace(/,/g, ''));
      expect(await page.locator('#ladder-symbol').textContent()).toBe('BTC/USDT');
      await expect.poll(async () => (await rows('bid'))[0]!.px, { timeout: 10_000 }).not.toBe('');
      // Live: the best levels move.
      const first = JSON.stringify(await rows('bid'));
      await expect.poll(async () => JSON.stringify(await rows('bid')), { timeout: 5000 }).not.toBe(first);

      // At rest the ladder is the published book cut to depth 10: asks worst to best from the top, then the bids best first.
      changing = false;
      await page.waitForTimeout(300);
      const want = window(10);
      const askRows = await rows('ask');
      const bidRows = await rows('bid');
      expect(askRows.map((r) => [num(r.px), num(r.size)])).toEqual([...want.asks].reverse());
      expect(bidRows.map((r) => [num(r.px), num(r.size)])).toEqual(want.bids);
      expect(askRows[0]!.px).toMatch(/^64,25\d\.\d\d$/);
      // Cumulative sizes and their bars grow away from the spread; the larger side's total fills the row.
      const cum = (levels: Level[]) => levels.map((_, i) => Math.round(levels.slice(0, i + 1).reduce((a, l) => a + l[1], 0) * 1000) / 1000);
      expect(bidRows.map((r) => num(r.cum))).toEqual(cum(want.bids));
      expect([...askRows].reverse().map((r) => num(r.cum))).toEqual(cum(want.asks));
      const bidBars = bidRows.map((r) => r.bar);
      const askBars = [...askRows].reverse().map((r) => r.bar);
      for (const bars of [bidBars, askBars]) for (let i = 1; i < bars.length; i++) expect(bars[i]!).toBeGreaterThanOrEqual(bars[i - 1]!);
      expect(Math.max(bidBars.at(-1)!, askBars.at(-1)!)).toBeCloseTo(1, 6);
      const spread = want.asks[0]![0] - want.bids[0]![0];
      expect(await ladder.locator('.lrow.spread').textContent()).toContain(`spread ${spread.toFixed(2)}`);
      expect(await ladder.getAttribute('data-status')).toBeNull();
      changing = true;
      await page.waitForTimeout(1500); // some chart history
      await page.screenshot({ path: '/tmp/dashboard-ladder.png' });
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-ladder.png` });

      // A message lost upstream: the gateway marks the book stale, and the ladder shows it.
      changing = false;
      seq++;
      publishBook({ bids: [[64_249.5, 1]], asks: [] });
      await expect.poll(() => ladder.getAttribute('data-status'), { timeout: 10_000 }).toBe('stale');
      expect(await ladder.locator('.badge').evaluate((el) => getComputedStyle(el, '::after').content)).toBe('"STALE"');
      expect((await rows('bid'))[0]!.px).not.toBe('');
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-ladder-stale.png` });
      // The source's next snapshot makes it live again, with that book.
      bids.clear();
      asks.clear();
      bids.set(64_240, 2.5);
      asks.set(64_260, 1.25);
      publishBook({ snapshot: true, bids: sorted(bids, true), asks: sorted(asks, false) });
      await expect.poll(() => ladder.getAttribute('data-status'), { timeout: 10_000 }).toBeNull();
      await expect.poll(async () => (await rows('bid')).map((r) => r.px), { timeout: 5000 }).toEqual(['64,240.00', ...Array(9).fill('')]);

      // Another symbol: the ladder follows the selection, and says when the gateway has no book.
      await page.locator('tr[data-symbol="ETH/USDT"] td.sym').click();
      await expect.poll(() => page.locator('#ladder-symbol').textContent()).toBe('ETH/USDT');
      await expect.poll(() => ladder.getAttribute('data-status'), { timeout: 5000 }).toBe('unknown');
      expect(await page.locator('#ladder-note').textContent()).toBe('no order book for ETH/USDT');
      expect((await rows('bid'))[0]!.px).toBe('');
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      clearInterval(publisher);
      await nc.close();
      await gw.stop();
      await nats.stop();
    }
  }, 60_000);

  it("shows the selected symbol's trades as a time-and-sales tape: live, newest on top, coloured by side, bounded, marked stale and where trades were lost", async () => {
    const nats = await startNatsServer();
    const gw = await startGateway({
      nats: { servers: [nats.url] },
      // A history shorter than the tape, so that a throttled page falls out of it and the gap shows.
      trade: { history: { size: 30, ttlSec: 0 } },
      throttle: { minMs: 10, maxMs: 5000 },
      feeds: [
        { name: 'sim', subject: 'md.sim.>', codec: 'msgpack' },
        { name: 'lob', kind: 'book', subject: 'book.>', codec: 'msgpack' },
        { name: 'tape', kind: 'trade', subject: 'trade.>', codec: 'msgpack', staleAfterMs: 700 },
      ],
    });
    const nc = await connect({ servers: nats.url });
    type Print = { px: number; sz: number; side?: 'b' | 's'; id: string; ts: number };
    const published: Print[] = [];
    let x = 5;
    const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
    let mid = 64_250;
    /** The next print around the touch: buys at the ask, sells at the bid, now and then a print with no side. */
    const next = (): Print => {
      mid = Math.round((mid + (rnd() - 0.5) * 2) * 2) / 2;
      const r = rnd();
      const side = r < 0.45 ? 'b' : r < 0.9 ? 's' : undefined;
      const p: Print = { px: side === 's' ? mid - 0.5 : mid, sz: Math.round((0.001 + rnd() * rnd() * 2) * 1000) / 1000, id: `T-${published.length}`, ts: Date.now() };
      if (side !== undefined) p.side = side;
      return p;
    };
    const publishTrades = (n: number) => {
      const batch = Array.from({ length: n }, next);
      published.push(...batch);
      nc.publish('trade.BTC/USDT', mpEncode(n === 1 ? { s: 'BTC/USDT', ...batch[0] } : { s: 'BTC/USDT', trades: batch }));
    };
    const quote = () => {
      nc.publish('md.sim.BTC/USDT', mpEncode({ s: 'BTC/USDT', bid: mid - 0.5, ask: mid, bidSize: 1.2, askSize: 0.8, close: 63_900, volume: 18_250, ts: Date.now() }));
      nc.publish('md.sim.ETH/USDT', mpEncode({ s: 'ETH/USDT', bid: 3120.5, ask: 3120.75, last: 3120.5, close: 3100, volume: 91_000, ts: Date.now() }));
    };
    // A book, so the ladder beside the tape has levels.
    type Level = [number, number];
    const levels = (sign: number): Level[] => Array.from({ length: 20 }, (_, k): Level => [64_250 + sign * 0.5 * (k + (sign > 0 ? 0 : 1)), Math.round((0.05 + rnd() * 3) * 1000) / 1000]);
    let bookSeq = 0;
    const publishBook = () => nc.publish('book.BTC/USDT', mpEncode({ s: 'BTC/USDT', seq: ++bookSeq, snapshot: true, bids: levels(-1), asks: levels(1) }));
    publishBook();
    // 75 prints before the page opens: it asks for the last 60 and gets the 30 the history holds.
    for (let i = 0; i < 25; i++) publishTrades(3);
    await nc.flush();
    let trading = true;
    const publisher = setInterval(() => {
      quote();
      if (!trading) return;
      publishTrades(rnd() < 0.2 ? 2 : 1);
      if (rnd() < 0.3) publishBook();
    }, 60);
    const pad = (n: number, w = 2) => String(n).padStart(w, '0');
    const clock = (ms: number) => {
      const d = new Date(ms);
      return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    };
    const fmt = (v: number, d: number) => v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
    const expectedRow = (p: Print) => ({ time: clock(p.ts), px: fmt(p.px, 2), size: fmt(p.sz, 3), cls: p.side === undefined ? 'trow print' : `trow print ${p.side}` });
    try {
      const { page, errors } = await openPage(`${gw.http}/`, ['BTC/USDT', 'ETH/USDT']);
      const tape = page.locator('#tape');
      const rows = () =>
        tape.locator('.tape-body .trow.print, .tape-body .trow.lost').evaluateAll((els) =>
          els.map((e) => {
            const el = e as unknown as { className: string; querySelector(s: string): { textContent: string } };
            return { time: el.querySelector('.time').textContent, px: el.querySelector('.px').textContent, size: el.querySelector('.size').textContent, cls: el.className };
          }),
        );
      expect(await page.locator('#tape-symbol').textContent()).toBe('BTC/USDT');
      // The recent prints first, then live ones on top, up to the tape's 60.
      await expect.poll(async () => (await rows()).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(30);
      await expect.poll(async () => (await rows()).length, { timeout: 10_000 }).toBe(60);
      const top = (await rows())[0]!;
      await expect.poll(async () => (await rows())[0]!.time + (await rows())[0]!.px, { timeout: 5000 }).not.toBe(top.time + top.px);

      // At rest the tape is the published prints, newest first, cut to 60; colours by side.
      trading = false;
      await page.waitForTimeout(300);
      const shown = await rows();
      expect(shown).toEqual(published.slice(-60).reverse().map(expectedRow));
      expect(shown.some((r) => r.cls.endsWith(' b')) && shown.some((r) => r.cls.endsWith(' s'))).toBe(true);
      const colour = (sel: string) => tape.locator(sel).first().evaluate((el) => getComputedStyle(el, '').color);
      expect(await colour('.trow.b .px')).toBe('rgb(38, 194, 129)');
      expect(await colour('.trow.s .px')).toBe('rgb(255, 90, 95)');
      expect(await tape.getAttribute('data-status')).toBeNull();
      expect(await page.locator('#tape-note').textContent()).toBe('');
      // The ladder beside it still shows its book.
      await expect.poll(() => page.locator('#ladder .ladder-body .lrow.bid .px').first().textContent()).toMatch(/^64,2\d\d\.\d0$/);
      trading = true;
      await page.waitForTimeout(1500); // some chart history
      await page.screenshot({ path: '/tmp/dashboard-tape.png' });
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-tape.png` });

      // No prints for longer than the feed's staleAfterMs: the gateway says stale, and the tape shows it.
      trading = false;
      await expect.poll(() => tape.getAttribute('data-status'), { timeout: 10_000 }).toBe('stale');
      expect(await tape.locator('.badge').evaluate((el) => getComputedStyle(el, '::after').content)).toBe('"STALE"');
      expect((await rows()).length).toBe(60);
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-tape-stale.png` });
      trading = true;
      await expect.poll(() => tape.getAttribute('data-status'), { timeout: 10_000 }).toBeNull();

      // A page throttled to one frame per 1.5 s, while 200 prints go past a history of 30: a row says where trades were lost.
      const slow = await openPage(`${gw.http}/?throttle=1500`, ['BTC/USDT']);
      const slowRows = () =>
        slow.page.locator('#tape .tape-body .trow.print, #tape .tape-body .trow.lost').evaluateAll((els) => els.map((e) => (e as unknown as { className: string; textContent: string }).className));
      await expect.poll(async () => (await slowRows()).length, { timeout: 10_000 }).toBe(60);
      trading = false;
      await page.waitForTimeout(1700);
      for (let i = 0; i < 40; i++) publishTrades(5);
      await nc.flush();
      await expect.poll(async () => (await slowRows()).includes('trow lost'), { timeout: 10_000 }).toBe(true);
      const lostRow = slow.page.locator('#tape .trow.lost');
      expect(await lostRow.locator('.px').textContent()).toBe('trades missed (gap)');
      // Above it, the 30 prints the history still held, newest on top.
      await expect.poll(async () => (await slowRows()).indexOf('trow lost'), { timeout: 5000 }).toBe(30);
      await slow.page.screenshot({ path: `${ARTIFACTS}/dashboard-tape-gap.png` });
      expect(slow.errors).toEqual([]);
      await slow.page.close();

      // Another symbol: the tape follows the selection, and says when it has no trades.
      await page.locator('tr[data-symbol="ETH/USDT"] td.sym').click();
      await expect.poll(() => page.locator('#tape-symbol').textContent()).toBe('ETH/USDT');
      await expect.poll(() => page.locator('#tape-note').textContent(), { timeout: 5000 }).toBe('no trades yet');
      expect((await rows()).length).toBe(0);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      clearInterval(publisher);
      await nc.close();
      await gw.stop();
      await nats.stop();
    }
  }, 90_000);

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
