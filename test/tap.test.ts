/**
 * `tickgate tap`, the built command as a user runs it, against a real
 * gateway: its JSON lines parse, merge to the gateway's state, and the
 * options do what they say. With `--book`, against a gateway fed books by a
 * real nats-server, and against a scripted server whose checksums are wrong.
 * With `--trades`, against gateways reading one JetStream stream: the last
 * N, resuming with --since on another replica, moving to the other replica
 * when a gateway stops, not recovered, and a gap.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { decode, encode } from '@msgpack/msgpack';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { WebSocketServer } from 'ws';
import { bookChecksum } from '../src/client/order-book.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
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

type Level = [number, number];

describe('tickgate tap --book', () => {
  let nats: NatsServer;
  let gw: TestGateway;
  let pub: NatsConnection;
  beforeAll(async () => {
    nats = await startNatsServer();
    gw = await startGateway({ nats: { servers: [nats.url] }, feeds: [{ name: 'lob', kind: 'book', subject: 'book.>', codec: 'msgpack' }] });
    pub = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await pub?.close();
    await gw?.stop();
    await nats?.stop();
  });

  it('prints the window after every book message, or with --deltas the levels set; both end at the published book', async () => {
    const bids = new Map<number, number>();
    const asks = new Map<number, number>();
    let seq = 0;
    const publish = (b: Level[], a: Level[], snapshot = false) => {
      for (const [p, s] of b) s === 0 ? bids.delete(p) : bids.set(p, s);
      for (const [p, s] of a) s === 0 ? asks.delete(p) : asks.set(p, s);
      pub.publish('book.BTC-USD', encode({ s: 'BTC-USD', seq: ++seq, snapshot, bids: b, asks: a }));
    };
    publish(
      Array.from({ length: 12 }, (_, i): Level => [100 - i, i + 1]),
      Array.from({ length: 12 }, (_, i): Level => [101 + i, i + 1]),
      true,
    );
    await pub.flush();
    const win = tap(['--book', 'BTC-USD', '--depth', '5', '--url', gw.url, '--duration', '2']);
    const deltas = tap(['--book', 'BTC-USD', '--depth', '5', '--deltas', '--url', gw.url, '--duration', '2']);
    await until(() => win.lines().length >= 1 && deltas.lines().length >= 1, 'the first book from both taps');
    let x = 3;
    const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
    for (let i = 0; i < 300; i++) {
      const lvl = (base: number, sign: number): Level[] => [[base + sign * Math.floor(rnd() * 8), rnd() < 0.3 ? 0 : 1 + Math.floor(rnd() * 9)]];
      publish(lvl(100, -1), lvl(101, 1));
    }
    await pub.flush();
    expect(await win.exited).toBe(0);
    expect(await deltas.exited).toBe(0);
    expect(win.stderr()).toBe('');
    expect(deltas.stderr()).toBe('');
    const want = { bids: [...bids].sort((a, b) => b[0] - a[0]).slice(0, 5), asks: [...asks].sort((a, b) => a[0] - b[0]).slice(0, 5) };

    const lines = win.lines();
    expect(lines.length).toBeGreaterThan(200);
    expect(lines[0]).toEqual({ s: 'BTC-USD', q: 1, bids: [[100, 1], [99, 2], [98, 3], [97, 4], [96, 5]], asks: [[101, 1], [102, 2], [103, 3], [104, 4], [105, 5]] });
    lines.forEach((l, i) => i > 0 && expect(l['q']).toBe((lines[i - 1]!['q'] as number) + 1));
    expect({ bids: lines.at(-1)!['bids'], asks: lines.at(-1)!['asks'] }).toEqual(want);

    // Deltas: a full book first, then the levels each message set; applied and cut to 5 they give the same window.
    const d = deltas.lines();
    expect(d[0]).toMatchObject({ snap: true });
    const book = { bids: new Map<number, number>(), asks: new Map<number, number>() };
    for (const l of d) {
      if (l['snap'] === true) {
        book.bids = new Map(l['bids'] as Level[]);
        book.asks = new Map(l['asks'] as Level[]);
        continue;
      }
      for (const [side, levels] of [[book.bids, l['bids']], [book.asks, l['asks']]] as const) for (const [p, s] of (levels as Level[] | undefined) ?? []) s === 0 ? side.delete(p) : side.set(p, s);
      book.bids = new Map([...book.bids].sort((a, b) => b[0] - a[0]).slice(0, 5));
      book.asks = new Map([...book.asks].sort((a, b) => a[0] - b[0]).slice(0, 5));
    }
    expect({ bids: [...book.bids], asks: [...book.asks] }).toEqual(want);
  });

  it('exits 1 naming the reason when the gateway refuses the book subscription', async () => {
    const t = tap(['--book', 'NONE-USD', '--url', gw.url, '--depth', '500']);
    expect(await t.exited).toBe(1);
    expect(t.stderr()).toContain('exceeds this server\'s maximum of 100');
  });

  it('exits 2 on a bad --depth, or --depth without --book', async () => {
    const bad = tap(['--book', 'X', '--depth', '7']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain('--depth: expected one of 1, 5, 10, 25, 50, 100, 500, 1000, got "7"');
    const noBook = tap(['X', '--depth', '10']);
    expect(await noBook.exited).toBe(2);
    expect(noBook.stderr()).toContain('--depth applies to --book only');
  });
});

/**
 * A scripted gateway for what a real one does not do: it answers each book
 * `sub` with an ack and a `book` whose checksum is wrong for the first
 * `wrongBooks` subscriptions and right after that.
 */
async function wrongChecksumServer(wrongBooks: number): Promise<{ url: string; subs: () => number; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  let subs = 0;
  wss.on('connection', (ws) => {
    const send = (...msgs: object[]) => ws.send(encode(msgs));
    send({ t: 'hello', v: 1, sid: 'scripted', hbMs: 5000, serverTs: Date.now(), limits: { maxSymbols: 100, maxMessageBytes: 65536, maxMessagesPerSec: 100 } });
    ws.on('message', (data: Buffer) => {
      const req = JSON.parse(data.toString()) as { op: string; id: number; symbols: string[]; depth: number };
      if (req.op !== 'sub') return;
      subs++;
      const bids: Level[] = [[99.5, 2]];
      const asks: Level[] = [[100.5, 3]];
      const cs = bookChecksum(asks, bids, req.depth);
      send({ t: 'ack', id: req.id, op: 'sub', ok: req.symbols, err: [], channel: 'book', depth: req.depth }, { t: 'book', s: req.symbols[0], q: 1, bids, asks, cs: subs <= wrongBooks ? (cs ^ 1) >>> 0 : cs });
    });
  });
  const port = (wss.address() as { port: number }).port;
  return { url: `ws://127.0.0.1:${port}/v1/stream`, subs: () => subs, close: () => new Promise((resolve) => wss.close(() => resolve())) };
}

it('tap --book resubscribes after a checksum mismatch and goes on when the fresh book verifies', async () => {
  const srv = await wrongChecksumServer(1);
  onTestFinished(() => srv.close());
  const t = tap(['--book', 'BTC-USD', '--url', srv.url, '--count', '1']);
  expect(await t.exited).toBe(0);
  expect(t.lines()).toEqual([{ s: 'BTC-USD', q: 1, bids: [[99.5, 2]], asks: [[100.5, 3]] }]);
  const cs = bookChecksum([[100.5, 3]], [[99.5, 2]], 10);
  expect(t.stderr()).toBe(
    `tickgate tap: BTC-USD: checksum mismatch at q 1: computed ${cs}, gateway sent ${(cs ^ 1) >>> 0}; resubscribing for a fresh book\n` + 'tickgate tap: BTC-USD: resynchronised at q 1\n',
  );
  expect(srv.subs()).toBe(2);
});

it('tap --book exits 3 with a clear message when the book is still wrong after a resync', async () => {
  const srv = await wrongChecksumServer(Infinity);
  onTestFinished(() => srv.close());
  const t = tap(['--book', 'BTC-USD', '--url', srv.url, '--duration', '10']);
  expect(await t.exited).toBe(3);
  expect(t.lines()).toEqual([]);
  const err = t.stderr().split('\n');
  expect(err[0]).toMatch(/^tickgate tap: BTC-USD: checksum mismatch at q 1: computed \d+, gateway sent \d+; resubscribing for a fresh book$/);
  expect(err[1]).toMatch(/^tickgate tap: BTC-USD: the book is still wrong after a resync \(checksum mismatch at q 1: computed \d+, gateway sent \d+\); giving up$/);
  // The first sub, the resync, and the SDK's second resync, sent as it reported the second mismatch.
  expect(srv.subs()).toBe(3);
});

describe('tickgate tap --trades', () => {
  let nats: NatsServer;
  let pub: NatsConnection;
  const gateways: TestGateway[] = [];
  /** Two replicas reading one JetStream stream, and one with a short history on a plain feed. */
  let a: TestGateway;
  let b: TestGateway;
  let short: TestGateway;
  const tapeFeeds = () => ({
    nats: { servers: [nats.url] },
    feeds: [
      { name: 'tape', kind: 'trade', subject: 'trade.>', jetstream: 'TRADES', staleAfterMs: 0 },
      { name: 'raw', kind: 'trade', subject: 'rawtrade.>', staleAfterMs: 0 },
    ],
  });
  const gateway = async (extra: Record<string, unknown> = {}) => {
    const g = await startGateway({ ...tapeFeeds(), ...extra });
    gateways.push(g);
    return g;
  };
  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    pub = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(pub);
    await jsm.streams.add({ name: 'TRADES', subjects: ['trade.>'], storage: StorageType.File });
    [a, b, short] = await Promise.all([gateway(), gateway(), gateway({ trade: { history: { size: 100, ttlSec: 0 } }, throttle: { minMs: 10, maxMs: 5000 } })]);
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await pub?.close();
    await nats?.stop();
  });

  const print = (i: number) => ({ px: 100 + (i % 50) / 100, sz: 1 + (i % 7), side: i % 2 ? 'b' : 's', id: `T-${i}`, ts: 1764100000000 + i });
  /** Publishes trades [from, to) of one symbol, every tenth message a batch of 3. */
  async function publishTrades(subject: string, symbol: string, from: number, to: number, paced = false): Promise<void> {
    for (let i = from; i < to; ) {
      const n = i % 10 === 3 ? Math.min(3, to - i) : 1;
      const batch = Array.from({ length: n }, (_, k) => print(i + k));
      pub.publish(subject, encode(n === 1 ? { s: symbol, ...batch[0] } : { s: symbol, trades: batch }));
      i += n;
      if (paced && i % 20 < n) {
        await pub.flush();
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    await pub.flush();
  }
  const tradeLines = (t: Tap) => t.lines().filter((l) => l['t'] === 'trade');
  const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => `T-${from + k}`);

  it('prints one line per trade, the last N first, then live ones; --since E:Q from a line resumes right after it, on another replica', async () => {
    await publishTrades('trade.AAPL', 'AAPL', 0, 20);
    await until(() => a.gateway.hub.trades.state('AAPL')?.count === 20, 'gateway a has the first 20 trades');
    const t = tap(['--trades', 'AAPL', '--last', '5', '--count', '25', '--url', a.url]);
    await until(() => t.lines().length >= 5, 'the last 5 trades');
    await publishTrades('trade.AAPL', 'AAPL', 20, 40);
    expect(await t.exited).toBe(0);
    expect(t.stderr()).toBe('');
    const lines = t.lines();
    expect(lines.map((l) => l['id'])).toEqual(ids(15, 40));
    // Every key of the print, in a fixed order; positions rise within the stream's epoch.
    expect(Object.keys(lines[0]!)).toEqual(['t', 's', 'e', 'q', 'px', 'sz', 'side', 'id', 'ts']);
    expect(lines[3]).toEqual({ t: 'trade', s: 'AAPL', e: expect.stringMatching(/^TRADES\./), q: expect.any(Number), ...print(18) });
    lines.forEach((l, i) => i > 0 && expect(l['q'] as number).toBeGreaterThan(lines[i - 1]!['q'] as number));

    // Resume on the other gateway after the 10th line: a rec line, then exactly the trades after it.
    const at = lines[9]!;
    const r = tap(['--trades', 'AAPL', '--since', `${String(at['e'])}:${String(at['q'])}`, '--count', '15', '--url', b.url]);
    expect(await r.exited).toBe(0);
    const out = r.lines();
    expect(out[0]).toEqual({ t: 'rec', s: 'AAPL', rec: true, since: { e: at['e'], q: at['q'] }, pos: { e: at['e'], q: lines.at(-1)!['q'] } });
    expect(out.slice(1)).toEqual(lines.slice(10));
    expect(r.stderr()).toBe('');
  });

  it('given two replicas, goes on on the other when its gateway stops, printing every trade once', async () => {
    const doomed = await gateway();
    const t = tap(['--trades', 'MSFT', '--url', doomed.url, '--url', b.url, '--duration', '30']);
    await until(() => doomed.gateway.hub.index.size === 1, 'the tap subscribed');
    const publishing = publishTrades('trade.MSFT', 'MSFT', 0, 1500, true);
    await until(() => tradeLines(t).length >= 300, '300 trades');
    await doomed.stop();
    await publishing;
    await until(() => tradeLines(t).length >= 1500, 'all trades', 20_000);
    await new Promise((r) => setTimeout(r, 200));
    t.proc.kill('SIGINT');
    expect(await t.exited).toBe(0);
    expect(tradeLines(t).map((l) => l['id'])).toEqual(ids(0, 1500));
    const recs = t.lines().filter((l) => l['t'] === 'rec');
    expect(recs).toEqual([expect.objectContaining({ t: 'rec', s: 'MSFT', rec: true })]);
    expect(t.stderr()).toMatch(/connection lost .*; reconnecting in \d+ ms\n/);
    expect(t.stderr()).toMatch(/reconnected \(session /);
  }, 60_000);

  it('says clearly when the trades since --since cannot be recovered, and goes on live', async () => {
    const t = tap(['--trades', 'AAPL', '--since', 'gone:3', '--count', '2', '--url', a.url]);
    await until(() => t.lines().length >= 1, 'the rec line');
    await publishTrades('trade.AAPL', 'AAPL', 40, 42);
    expect(await t.exited).toBe(0);
    const [rec, ...trades] = t.lines();
    expect(rec).toEqual({ t: 'rec', s: 'AAPL', rec: false, since: { e: 'gone', q: 3 }, pos: { e: expect.stringMatching(/^TRADES\./), q: expect.any(Number) }, reason: 'epoch' });
    expect(trades.map((l) => l['id'])).toEqual(['T-40', 'T-41']);
    expect(t.stderr()).toMatch(/^tickgate tap: AAPL: the trades after gone:3 cannot be recovered: the gateway numbers trades in another epoch \(TRADES\.[^)]+\); going on from TRADES\.\S+:\d+\n$/);
  });

  it('prints a gap line naming exactly the trades lost when it falls out of the history, then every trade after it', async () => {
    const t = tap(['--trades', 'NVDA', '--throttle', '1500', '--url', short.url, '--duration', '20']);
    await until(() => short.gateway.hub.index.size === 1, 'the tap subscribed');
    await publishTrades('rawtrade.NVDA', 'NVDA', 0, 20);
    await until(() => tradeLines(t).length >= 20, 'the first 20');
    // The next release is up to 1.5 s away; 500 trades go past a history of 100 meanwhile.
    await publishTrades('rawtrade.NVDA', 'NVDA', 20, 520);
    await until(() => tradeLines(t).at(-1)?.['id'] === 'T-519', 'the last trade');
    t.proc.kill('SIGINT');
    expect(await t.exited).toBe(0);
    const lines = t.lines();
    const gi = lines.findIndex((l) => l['t'] === 'gap');
    const gap = lines[gi]!;
    expect(gap).toEqual({ t: 'gap', s: 'NVDA', e: lines[0]!['e'], from: lines[gi - 1]!['q'], to: (lines[gi + 1]!['q'] as number) - 1 });
    expect(tradeLines(t).length + (gap['to'] as number) - (gap['from'] as number)).toBe(520);
    expect(lines.slice(gi + 1).map((l) => l['id'])).toEqual(ids(420, 520));
    expect(t.stderr()).toBe(`tickgate tap: NVDA: trades lost (gap): ${String(gap['e'])} q ${String(gap['from'])} < q <= ${String(gap['to'])} left the gateway's history while tap was behind\n`);
  });

  it('exits 2 on a bad --since, or trade options without --trades', async () => {
    const cases: Array<[string[], string]> = [
      [['--trades', 'X', '--since', '12'], '--since: expected EPOCH:Q (a trade line\'s "e" and "q"), got "12"'],
      [['--trades', 'X', '--since', 'e:-1'], '--since: expected EPOCH:Q'],
      [['--trades', 'X', '--last', 'ten'], '--last: expected a non-negative integer, got "ten"'],
      [['X', '--last', '10'], '--last applies to --trades only'],
      [['X', '--since', 'e:1'], '--since applies to --trades only'],
      [['--trades', '--book', 'X'], '--trades and --book: choose one'],
      [['--trades', 'X', '--deltas'], '--deltas applies to quotes and books'],
    ];
    for (const [args, msg] of cases) {
      const t = tap(args);
      expect(await t.exited, args.join(' ')).toBe(2);
      expect(t.stderr()).toContain(`tickgate tap: ${msg}`);
    }
  });
});
