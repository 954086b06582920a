/**
 * Feeds over time, against a real nats-server: JetStream warm start across a
 * gateway restart, stale marking on a NATS outage and on silence, and
 * recovery without clients reconnecting.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from '@msgpack/msgpack';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSimArgs, runSim, type SimOptions } from '../feeds/sim.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { StateView, TestClient, type Msg } from './helpers/ws-client.js';

const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
});

function simOpts(url: string, ...args: string[]): SimOptions {
  const o = parseSimArgs(['--url', url, ...args], {});
  if (o === 'help') throw new Error('unexpected help');
  return o;
}

/** Folds every message published under md.sim.> (full-state ticks): symbol -> last payload. */
async function watchPublished(url: string) {
  const nc = await connect({ servers: url });
  const last = new Map<string, Record<string, number | string>>();
  nc.subscribe('md.sim.>', {
    callback: (_e, m) => {
      const t = decode(m.data) as Record<string, number | string>;
      last.set(t['s'] as string, t);
    },
  });
  await nc.flush();
  return { last, nc };
}

describe('warm start from JetStream', () => {
  it('serves the last published state as the first snap after a restart, before any live tick', async () => {
    const nats = await startNatsServer({ jetstream: true });
    cleanup.push(() => nats.stop());
    const feed = { name: 'sim', subject: 'md.sim.>', codec: 'msgpack', jetstream: 'MD_SIM' };
    const watch = await watchPublished(nats.url);
    cleanup.push(() => watch.nc.close());

    // First gateway lives through the first part of the stream.
    await runSim(simOpts(nats.url, '--jetstream', 'MD_SIM', '--symbols', '100', '--count', '1500', '--rate', '20000', '--seed', '3'));
    const first = await startGateway({ nats: { servers: [nats.url] }, feeds: [feed] });
    expect(await first.metric('tickgate_ingest_warm_ticks_total', { feed: 'sim' })).toBe(100);
    await first.stop();

    // More is published while no gateway runs.
    await runSim(simOpts(nats.url, '--jetstream', 'MD_SIM', '--symbols', '100', '--count', '3000', '--rate', '20000', '--seed', '4', '--no-warm'));
    await watch.nc.flush();
    expect(watch.last.size).toBe(100);

    // A new gateway: every snap equals the last published state at once.
    const gw = await startGateway({ nats: { servers: [nats.url] }, feeds: [feed] });
    cleanup.push(() => gw.stop());
    const c = await TestClient.connect(gw.url);
    cleanup.push(() => c.close());
    const symbols = [...watch.last.keys()];
    c.send({ op: 'sub', symbols });
    const view = await c.until((x) => {
      const v = new StateView().apply(x.messages);
      return v.state.size === symbols.length ? v : undefined;
    }, 'a snap per symbol', 5000);
    expect(c.messages.filter((m) => m.t === 'stat')).toEqual([]);
    for (const s of symbols) {
      const { s: _s, ...fields } = watch.last.get(s)!;
      expect(view.state.get(s)!.d).toEqual(fields);
    }
    expect(await gw.metric('tickgate_ingest_warm_ticks_total', { feed: 'sim' })).toBe(100);
  });

  it('starts without warm state when the stream does not exist', async () => {
    const nats = await startNatsServer({ jetstream: true });
    cleanup.push(() => nats.stop());
    const gw = await startGateway({ nats: { servers: [nats.url] }, feeds: [{ name: 'sim', jetstream: 'NO_SUCH_STREAM' }] });
    cleanup.push(() => gw.stop());
    expect((await fetch(`${gw.http}/readyz`)).status).toBe(200);
    expect(await gw.metric('tickgate_symbols')).toBe(0);
  });
});

describe('stale marking', () => {
  const packr = new Packr({ useRecords: false });

  /** A publisher that keeps ticking (and reconnecting) until stopped. */
  async function ticker(url: string, symbols: string[]) {
    const nc: NatsConnection = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    let i = 0;
    let on = true;
    const timer = setInterval(() => {
      if (!on || nc.isClosed()) return;
      for (const s of symbols) nc.publish(`md.sim.${s}`, packr.pack({ s, bid: ++i, ask: i + 1, ts: Date.now() }));
    }, 20);
    return {
      pause: () => (on = false),
      resume: () => (on = true),
      stop: async () => {
        clearInterval(timer);
        await nc.close();
      },
    };
  }

  const stats = (c: TestClient, from: number, st: string) =>
    c.messages.slice(from).filter((m: Msg) => m.t === 'stat' && m['st'] === st).map((m) => m['s'] as string);

  it('marks symbols stale when NATS goes away and live again when it is back, without the client reconnecting', async () => {
    const port = await freePort();
    const store = mkdtempSync(join(tmpdir(), 'tickgate-nats-store-'));
    cleanup.push(async () => rmSync(store, { recursive: true, force: true }));
    let nats: NatsServer = await startNatsServer({ port, storeDir: store });
    cleanup.push(() => nats.stop());
    const staleAfterMs = 1000;
    const gw: TestGateway = await startGateway({
      nats: { servers: [nats.url], reconnectWaitMs: 50 },
      feeds: [{ name: 'sim', staleAfterMs }],
    });
    cleanup.push(() => gw.stop());
    const symbols = ['OUT1', 'OUT2', 'OUT3'];
    const pub = await ticker(nats.url, symbols);
    cleanup.push(() => pub.stop());
    const c = await TestClient.connect(gw.url);
    cleanup.push(() => c.close());
    c.send({ op: 'sub', symbols });
    await c.until((x) => symbols.every((s) => new StateView().apply(x.messages).state.has(s)), 'snaps');

    // Outage.
    const cut = c.messages.length;
    const killedAt = Date.now();
    await nats.stop();
    await c.until((x) => stats(x, cut, 'stale').length === 3, 'stat stale for all three', staleAfterMs + 2000);
    expect(Date.now() - killedAt).toBeLessThan(staleAfterMs + 1000);
    expect(stats(c, cut, 'stale').sort()).toEqual(symbols);
    // One frame carried all three stats.
    expect(c.frames.some((f) => f.filter((m) => m.t === 'stat' && m['st'] === 'stale').length === 3)).toBe(true);
    const ready = await fetch(`${gw.http}/readyz`);
    expect(ready.status).toBe(503);
    expect(await gw.metric('tickgate_feed_stale', { feed: 'sim' })).toBe(1);

    // Back: live again and fresh data, on the same WebSocket.
    const back = c.messages.length;
    nats = await startNatsServer({ port, storeDir: store });
    await c.until((x) => stats(x, back, 'live').length === 3, 'stat live for all three', 10_000);
    const upd = await c.next((m) => m.t === 'upd', 'fresh upd', 5000, back);
    expect(upd).toBeDefined();
    expect(c.closed).toBeNull();
    const view = new StateView().apply(c.messages);
    expect(view.violations).toEqual([]);
    await c.until(async () => (await fetch(`${gw.http}/readyz`)).status === 200, 'ready again', 5000).catch(() => undefined);
    expect((await fetch(`${gw.http}/readyz`)).status).toBe(200);
    expect(await gw.metric('tickgate_feed_reconnects_total', { source: 'nats' })).toBeGreaterThanOrEqual(1);
  });

  it('marks a silent feed stale after staleAfterMs and live on its next tick; new subscribers learn it too', async () => {
    const nats = await startNatsServer();
    cleanup.push(() => nats.stop());
    const gw = await startGateway({ nats: { servers: [nats.url] }, feeds: [{ name: 'sim', staleAfterMs: 400 }] });
    cleanup.push(() => gw.stop());
    const pub = await ticker(nats.url, ['QUIET']);
    cleanup.push(() => pub.stop());
    const c = await TestClient.connect(gw.url);
    cleanup.push(() => c.close());
    c.send({ op: 'sub', symbols: ['QUIET'] });
    await c.next((m) => m.t === 'snap', 'snap');

    pub.pause();
    const paused = c.messages.length;
    await c.next((m) => m.t === 'stat' && m['st'] === 'stale', 'stale after silence', 3000, paused);
    // A client arriving now gets the last known state, marked stale.
    const late = await TestClient.connect(gw.url);
    cleanup.push(() => late.close());
    late.send({ op: 'sub', symbols: ['QUIET'] });
    const snapAt = (await late.next((m) => m.t === 'snap', 'late snap'), late.messages.findIndex((m) => m.t === 'snap'));
    const staleAt = (await late.next((m) => m.t === 'stat' && m['st'] === 'stale', 'late stale'), late.messages.findIndex((m) => m.t === 'stat' && m['st'] === 'stale'));
    expect(staleAt).toBeGreaterThan(snapAt);

    const resumed = c.messages.length;
    pub.resume();
    await c.next((m) => m.t === 'stat' && m['st'] === 'live', 'live on the next tick', 3000, resumed);
    await late.next((m) => m.t === 'stat' && m['st'] === 'live', 'late client live too', 3000);
  });
});
