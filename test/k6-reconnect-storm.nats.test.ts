/**
 * Integration: load/k6/reconnect-storm.ts itself, its VU code bundled by
 * esbuild with a small stand-in for the k6 runtime (test/helpers/k6-shim.ts,
 * one bundle per VU so that each has its own module state, as in k6), run
 * under Node against real processes, since k6 is not installable here. Its
 * own trade feed publishes through nats-server's WebSocket listener; storm
 * VUs reconnect again and again, half of them resuming trades with `since`.
 * The scenario's own thresholds are evaluated over what the VUs recorded:
 * on a gateway started with load/k6/gateway-trades.json they all pass, with
 * many resumes, all recovered, nothing missing or twice. A gateway that
 * restarts without a stream (another epoch) fails the recovery threshold;
 * with a JetStream stream the same restart is recovered.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort } from './helpers/nats-server.js';
import { startNatsWithWebSocket, type NatsWs } from './helpers/nats-websocket.js';
import { ROOT } from './helpers/process.js';

const SHIM = join(ROOT, 'test/helpers/k6-shim.ts');
const SCENARIO = join(ROOT, 'load/k6/reconnect-storm.ts');

/** k6 module -> what it is in the shim. */
const K6_MODULES: Record<string, string> = {
  k6: 'export { check, sleep } from SHIM;',
  'k6/execution': 'import { exec } from SHIM; export default exec;',
  'k6/metrics': 'export { Counter, Rate, Trend } from SHIM;',
  'k6/timers': 'export { setTimeout, clearTimeout, setInterval, clearInterval } from SHIM;',
  'k6/websockets': 'export { WebSocket } from SHIM;',
  'k6/ws': 'import { blockingWs } from SHIM; export default blockingWs;',
  'k6/options': 'export {};',
};

const k6Shim: Plugin = {
  name: 'k6-shim',
  setup(b) {
    b.onResolve({ filter: /^k6(\/.*)?$/ }, (args) => ({ path: args.path, namespace: 'k6' }));
    b.onLoad({ filter: /.*/, namespace: 'k6' }, (args) => {
      const contents = K6_MODULES[args.path];
      if (contents === undefined) return { errors: [{ text: `${args.path} is not in the k6 shim` }] };
      return { contents: contents.replaceAll('SHIM', JSON.stringify(SHIM)), loader: 'ts', resolveDir: ROOT };
    });
  },
};

interface Metric {
  type: 'counter' | 'rate' | 'trend';
  values: number[];
}
interface Vu {
  options: { thresholds: Record<string, string[]> };
  setup(): { universe: string[] };
  storm(data: { universe: string[] }): void;
  feed(): void;
  __k6: { metrics: Map<string, Metric>; checks: { pass: number; fail: number }; pending: number };
  __exec: { vu: { idInTest: number; iterationInScenario: number }; scenario: { name: string; startTime: number } };
}

/** The scenario as k6 would load it, once per VU. */
async function loadVus(env: Record<string, string>, n: number): Promise<Vu[]> {
  const r = await build({
    stdin: { contents: `export * from ${JSON.stringify(SCENARIO)};\nexport { state as __k6, exec as __exec } from ${JSON.stringify(SHIM)};`, resolveDir: ROOT, loader: 'ts' },
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    write: false,
    external: ['bufferutil', 'utf-8-validate'],
    plugins: [k6Shim],
    logLevel: 'silent',
  });
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-k6-'));
  try {
    const g = globalThis as unknown as { __ENV: Record<string, string>; __VU: number };
    g.__ENV = env;
    g.__VU = 0;
    const require = createRequire(import.meta.url);
    return Array.from({ length: n }, (_, i) => {
      const file = join(dir, `vu-${i + 1}.cjs`);
      writeFileSync(file, r.outputFiles[0]!.text);
      return require(file) as Vu;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function idle(vu: Vu): Promise<void> {
  while (vu.__k6.pending > 0) await new Promise((r) => setTimeout(r, 10));
}

/** Runs `exec` on `vu` in iterations, as a constant-vus executor does, from `startTime` for `ms`. */
async function runVu(vu: Vu, id: number, name: 'storm' | 'feed', startTime: number, ms: number, data: { universe: string[] }): Promise<void> {
  vu.__exec.vu.idInTest = id;
  vu.__exec.scenario = { name, startTime };
  while (Date.now() < startTime) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; Date.now() < startTime + ms; i++) {
    vu.__exec.vu.iterationInScenario = i;
    if (name === 'storm') vu.storm(data);
    else vu.feed();
    await idle(vu);
    // An iteration that opened nothing (its time is up, or held off) must not spin.
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Every VU's samples of each metric, and the scenario's thresholds evaluated over them (k6 built-ins skipped). */
function results(vus: Vu[]) {
  const merged = new Map<string, Metric>();
  let pass = 0;
  let fail = 0;
  for (const vu of vus) {
    for (const [name, m] of vu.__k6.metrics) {
      const into = merged.get(name) ?? { type: m.type, values: [] };
      into.values.push(...m.values);
      merged.set(name, into);
    }
    pass += vu.__k6.checks.pass;
    fail += vu.__k6.checks.fail;
  }
  const stat = (name: string, what: string): number | undefined => {
    if (name === 'checks') return what === 'rate' ? pass / (pass + fail) : undefined;
    const m = merged.get(name);
    if (m === undefined) return undefined;
    const v = m.values;
    if (what === 'count') return m.type === 'counter' ? v.reduce((a, b) => a + b, 0) : v.length;
    if (what === 'rate') return v.length === 0 ? 0 : v.reduce((a, b) => a + b, 0) / v.length;
    const p = /^p\(([\d.]+)\)$/.exec(what);
    if (p) return [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor((Number(p[1]) / 100) * v.length))];
    throw new Error(`threshold stat ${what} not understood`);
  };
  const thresholds: Record<string, boolean | 'k6 built-in'> = {};
  for (const [name, exprs] of Object.entries(vus[0]!.options.thresholds)) {
    for (const e of exprs) {
      const m = /^(count|rate|p\([\d.]+\))\s*(<=|>=|==|<|>)\s*([\d.]+)$/.exec(e);
      if (!m) throw new Error(`threshold ${name}: ${e} not understood`);
      const v = stat(name, m[1]!);
      const lim = Number(m[3]);
      thresholds[`${name}: ${e}`] =
        v === undefined ? 'k6 built-in' : m[2] === '<' ? v < lim : m[2] === '<=' ? v <= lim : m[2] === '>' ? v > lim : m[2] === '>=' ? v >= lim : v === lim;
    }
  }
  return { thresholds, count: (n: string) => stat(n, 'count') ?? 0, rate: (n: string) => stat(n, 'rate') ?? 0 };
}

describe('k6 reconnect-storm.ts, bundled with a k6 stand-in, against nats-server and gateways', () => {
  let nats: NatsWs;
  const gateways: TestGateway[] = [];
  const gatewayConfig = JSON.parse(readFileSync(join(ROOT, 'load/k6/gateway-trades.json'), 'utf8')) as Record<string, unknown>;
  const gateway = async (overrides: Record<string, unknown> = {}) => {
    const gw = await startGateway({ ...gatewayConfig, nats: { servers: [nats.url] }, ...overrides });
    gateways.push(gw);
    return gw;
  };

  beforeAll(async () => {
    nats = await startNatsWithWebSocket({ jetstream: true });
    const nc = await connect({ servers: nats.url });
    await (await jetstreamManager(nc)).streams.add({ name: 'K6TRADES', subjects: ['k6js.>'], storage: StorageType.File });
    await nc.close();
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await nats?.stop();
  });

  /** One run: 6 storm VUs (3 trading) and the feed VU; `during` runs alongside, from the storm's start. */
  async function run(url: string, extra: Record<string, string>, during?: () => Promise<void>) {
    const env = { URL: url, NATS_WS_URL: nats.wsUrl, VUS: '6', DURATION: '6s', STAY_MIN: '150ms', STAY_MAX: '700ms', TRADE_RATE: '400', TRADE_FEED_SYMBOLS: '4', ...extra };
    const vus = await loadVus(env, 7);
    const data = vus[0]!.setup();
    expect(data.universe).toEqual(['K6TRADE-1', 'K6TRADE-2', 'K6TRADE-3', 'K6TRADE-4']);
    expect(Object.keys(vus[0]!.options.thresholds)).toContain('tickgate_trade_recovered');
    // The VUs' warnings (k6's console), kept for the assertions instead of printed.
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(' '));
    try {
      const t0 = Date.now();
      // As the scenario's options say: the feed from the start, the storm 2 s later.
      await Promise.all([
        runVu(vus[6]!, 7, 'feed', t0, 8000, data),
        ...vus.slice(0, 6).map((vu, i) => runVu(vu, i + 1, 'storm', t0 + 2000, 6000, data)),
        (async () => {
          await new Promise((r) => setTimeout(r, 2000 + 2500));
          await during?.();
        })(),
      ]);
    } finally {
      console.warn = warn;
    }
    return { ...results(vus), warnings };
  }

  it('passes every threshold on the gateway of gateway-trades.json: many resumes, all recovered, nothing missing or twice', async () => {
    const gw = await gateway();
    const r = await run(gw.url, {});
    expect(Object.entries(r.thresholds).filter(([, ok]) => ok === false)).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.count('tickgate_trade_recovered')).toBeGreaterThan(20);
    expect(r.rate('tickgate_trade_recovered')).toBe(1);
    expect(r.count('tickgate_trades')).toBeGreaterThan(500);
    expect(r.count('tickgate_trade_duplicates') + r.count('tickgate_trade_missing') + r.count('tickgate_trade_gaps') + r.count('tickgate_trade_unchecked')).toBe(0);
    expect(r.count('tickgate_trade_feed_published')).toBeGreaterThan(2500);
    expect(r.rate('tickgate_session_ok')).toBe(1);
    // The gateway saw the same resumes, and served them from its history.
    expect(await gw.metric('tickgate_trade_resumes_total', { recovered: 'true' })).toBe(r.count('tickgate_trade_recovered'));
    expect(await gw.metric('tickgate_trades_replayed_total')).toBeGreaterThan(0);
    expect(await gw.metric('tickgate_trades_total', { feed: 'k6trade' })).toBe(r.count('tickgate_trade_feed_published'));
  });

  it('fails the recovery threshold when the gateway restarts without a stream, and passes it with one', async () => {
    for (const stream of [false, true]) {
      const port = await freePort();
      const feeds = stream ? [{ name: 'k6trade', kind: 'trade', subject: 'k6js.>', codec: 'json', symbolToken: 1, jetstream: 'K6TRADES' }] : undefined;
      const overrides = { port, ...(feeds ? { feeds } : {}) };
      let gw = await gateway(overrides);
      const r = await run(gw.url, stream ? { TRADE_SUBJECT_PREFIX: 'k6js.' } : {}, async () => {
        await gw.stop();
        gw = await gateway(overrides);
      });
      const failed = Object.entries(r.thresholds).filter(([, ok]) => ok === false).map(([t]) => t);
      // Either way, no trade is missing or comes twice: a loss is announced (rec: false), never silent.
      expect(r.count('tickgate_trade_duplicates') + r.count('tickgate_trade_missing') + r.count('tickgate_trade_unchecked'), `stream: ${stream}`).toBe(0);
      expect(r.count('tickgate_trade_recovered')).toBeGreaterThan(10);
      if (stream) {
        expect(r.rate('tickgate_trade_recovered')).toBe(1);
        expect(failed.filter((t) => t.startsWith('tickgate_trade'))).toEqual([]);
        expect(r.warnings.filter((w) => /not recovered|missing|twice|gap:/.test(w))).toEqual([]);
      } else {
        expect(r.warnings.some((w) => w.includes('resume not recovered (rec: false)'))).toBe(true);
        expect(r.rate('tickgate_trade_recovered')).toBeLessThan(1);
        expect(failed).toContain('tickgate_trade_recovered: rate>=1');
        expect(await gw.metric('tickgate_trade_resumes_total', { recovered: 'false' })).toBeGreaterThan(0);
      }
    }
  });
});
