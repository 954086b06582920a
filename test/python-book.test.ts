/**
 * examples/python/book.py (on the tickgate package), run with Debian's Python. Against a gateway fed by
 * a real nats-server, its books end equal to the published book cut to their
 * depth, with every checksum matching. Against a scripted server that sends a
 * wrong checksum and then skips a `q`, it resubscribes each time and keeps
 * going from the fresh book.
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { crc32 } from 'node:zlib';
import { decode, encode } from '@msgpack/msgpack';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { ROOT } from './helpers/process.js';

const SCRIPT = `${ROOT}examples/python/book.py`;

type Level = [number, number];
interface Line {
  t: 'book' | 'bupd';
  s: string;
  q: number;
  bids: Level[];
  asks: Level[];
}

function bookPy(args: string[]) {
  const proc = spawn('/usr/bin/python3', [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
  const all = (): Array<Line | { t: 'stat'; s: string; st: string }> =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  const lines = (): Line[] => all().filter((l): l is Line => l.t === 'book' || l.t === 'bupd');
  return { proc, out: () => out, err: () => err, lines, all, exited };
}

/** The last window book.py printed for each symbol. */
function lastWindows(lines: Line[]): Map<string, Line> {
  const last = new Map<string, Line>();
  for (const l of lines) last.set(l.s, l);
  return last;
}

async function waitFor<T>(f: () => T | undefined | false, what: string, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The protocol's checksum, computed here independently of the script. */
function checksum(asks: Level[], bids: Level[], depth: number): number {
  const k = Math.min(depth, 25);
  const levels = [...asks.slice(0, k), ...bids.slice(0, k)];
  const buf = Buffer.alloc(levels.length * 16);
  levels.forEach(([p, s], i) => {
    buf.writeDoubleBE(p, 16 * i);
    buf.writeDoubleBE(s, 16 * i + 8);
  });
  return crc32(buf) >>> 0;
}

/** The publisher's own book, to compare with. */
class SourceBook {
  bids = new Map<number, number>();
  asks = new Map<number, number>();
  seq = 0;
  snapshot(bids: Level[], asks: Level[]) {
    this.bids = new Map(bids);
    this.asks = new Map(asks);
    return { snapshot: true, seq: ++this.seq, bids, asks };
  }
  change(bids: Level[], asks: Level[]) {
    for (const [p, s] of bids) s === 0 ? this.bids.delete(p) : this.bids.set(p, s);
    for (const [p, s] of asks) s === 0 ? this.asks.delete(p) : this.asks.set(p, s);
    return { seq: ++this.seq, bids, asks };
  }
  window(depth: number): { bids: Level[]; asks: Level[] } {
    return {
      bids: [...this.bids].sort((a, b) => b[0] - a[0]).slice(0, depth),
      asks: [...this.asks].sort((a, b) => a[0] - b[0]).slice(0, depth),
    };
  }
}

describe('book.py against a gateway fed by nats-server', () => {
  let nats: NatsServer;
  let gw: TestGateway;
  let pub: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [{ name: 'lob', kind: 'book', subject: 'book.>', codec: 'msgpack', symbolToken: 1 }],
      book: { maxDepth: 100 },
    });
    pub = await connect({ servers: nats.url });
  });

  afterAll(async () => {
    await pub?.close();
    await gw?.stop();
    await nats?.stop();
  });

  it('ends with the published books cut to its depth, plain and throttled, with zero checksum mismatches', async () => {
    const symbols = ['BTC-USD', 'ETH-USD'];
    const src = new Map(symbols.map((s) => [s, new SourceBook()]));
    const px = (x: number) => Math.round(x * 100) / 100;
    for (const [s, b] of src) {
      const bids: Level[] = Array.from({ length: 40 }, (_, i) => [px(100 - 0.01 * (i + 1)), 1 + i]);
      const asks: Level[] = Array.from({ length: 40 }, (_, i) => [px(100 + 0.01 * (i + 1)), 0.5 + i]);
      pub.publish(`book.${s}`, encode({ ...b.snapshot(bids, asks), ts: Date.now() }));
    }
    await pub.flush();

    const plain = bookPy([...symbols, '--url', gw.url, '--depth', '10', '--json']);
    const throttled = bookPy(['BTC-USD', '--url', gw.url, '--depth', '25', '--throttle', '50', '--json']);
    try {
      // Both have their first books before the changes start.
      await waitFor(() => lastWindows(plain.lines()).size === 2, `book.py --depth 10 to print both books: ${plain.err()}`);
      await waitFor(() => lastWindows(throttled.lines()).size === 1, `book.py --depth 25 to print its book: ${throttled.err()}`);

      let x = 11;
      const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
      // Changes around the touch and below the window: sizes change, levels go, come back, enter from below.
      const side = (sign: 1 | -1): Level[] => {
        const levels = new Map<number, number>();
        for (let n = Math.floor(rnd() * 4); n > 0; n--) {
          const p = px(100 + sign * 0.01 * (1 + Math.floor(rnd() * 45)));
          levels.set(p, rnd() < 0.3 ? 0 : px(0.25 + rnd() * 40));
        }
        return [...levels];
      };
      let published = 0;
      for (let i = 0; i < 2000; i++) {
        const s = symbols[i % 2]!;
        const bids = side(-1);
        const asks = side(1);
        if (bids.length + asks.length === 0) continue;
        pub.publish(`book.${s}`, encode(src.get(s)!.change(bids, asks)));
        published++;
        if (i % 200 === 0) await pub.flush();
      }
      await pub.flush();

      const converged = (py: ReturnType<typeof bookPy>, depth: number, syms: string[]) => {
        const last = lastWindows(py.lines());
        return syms.every((s) => {
          const l = last.get(s);
          const w = src.get(s)!.window(depth);
          return l !== undefined && JSON.stringify([l.bids, l.asks]) === JSON.stringify([w.bids, w.asks]);
        });
      };
      await waitFor(() => converged(plain, 10, symbols), `book.py --depth 10 at the published books; stderr: ${plain.err()}`);
      await waitFor(() => converged(throttled, 25, ['BTC-USD']), `book.py --depth 25 at the published book; stderr: ${throttled.err()}`);
      plain.proc.kill('SIGINT');
      throttled.proc.kill('SIGINT');
      expect(await plain.exited).toBe(0);
      expect(await throttled.exited).toBe(0);

      const last = lastWindows(plain.lines());
      for (const s of symbols) expect({ bids: last.get(s)!.bids, asks: last.get(s)!.asks }).toEqual(src.get(s)!.window(10));
      expect(lastWindows(throttled.lines()).get('BTC-USD')).toMatchObject(src.get('BTC-USD')!.window(25));
      // The plain client applied deltas, in q order; the throttled one mostly fresh books, fewer of them.
      const plainLines = plain.lines();
      const bupds = plainLines.filter((l) => l.t === 'bupd').length;
      expect(bupds).toBeGreaterThan(published / 2);
      for (const s of symbols) {
        const qs = plainLines.filter((l) => l.s === s).map((l) => l.q);
        for (let i = 1; i < qs.length; i++) expect(qs[i]).toBeGreaterThan(qs[i - 1]!);
      }
      expect(throttled.lines().length).toBeLessThan(bupds / 2);
      expect(throttled.lines().filter((l) => l.t === 'book').length).toBeGreaterThan(1);
      // Nothing to resync: every checksum matched, every bupd followed its predecessor.
      for (const py of [plain, throttled]) {
        expect(py.err()).toMatch(/^book\.py: \d+ messages checked, 0 checksum mismatches, 0 sequence breaks, 0 resubscribes$/m);
        expect(py.err()).not.toMatch(/mismatch at|resubscribing/);
      }
      expect(plain.err()).toContain(`book.py: ${plainLines.length} messages checked`);
      expect(await gw.metric('tickgate_book_resubscribes_total')).toBe(0);
    } finally {
      plain.proc.kill('SIGKILL');
      throttled.proc.kill('SIGKILL');
    }
  });

  it('exits 1 with a message when it cannot connect', async () => {
    const url = `ws://127.0.0.1:${await freePort()}/v1/stream`;
    const py = bookPy(['BTC-USD', '--url', url]);
    expect(await py.exited).toBe(1);
    expect(py.err()).toContain(`book.py: cannot connect to ${url}`);
    expect(py.err()).not.toContain('messages checked');
  });
});

describe('book.py against a scripted server', () => {
  it('resubscribes after a wrong checksum and after a skipped q (the second time after a delay), ignoring the bupds in between', async () => {
    const S = 'X-USD';
    const depth = 5;
    const book = (q: number, bids: Level[], asks: Level[]) => ({ t: 'book', s: S, q, bids, asks, cs: checksum(asks, bids, depth) });
    const bupd = (q: number, cs: number, bids?: Level[], asks?: Level[]) => ({ t: 'bupd', s: S, q, ...(bids ? { bids } : {}), ...(asks ? { asks } : {}), cs });
    const ack = { t: 'ack', op: 'sub', ok: [S], err: [], channel: 'book', depth };

    const bids1: Level[] = [[99.5, 1], [99.25, 2], [99, 3]];
    const asks1: Level[] = [[100.5, 1], [101, 4]];
    // After q 2: bid 99.5 gone, a new best ask.
    const bids2: Level[] = [[99.25, 2], [99, 3]];
    const asks2: Level[] = [[100.25, 7], [100.5, 1], [101, 4]];
    const replies: object[][] = [
      [
        ack,
        book(1, bids1, asks1),
        bupd(2, checksum(asks2, bids2, depth), [[99.5, 0]], [[100.25, 7]]),
        bupd(3, 0xdeadbeef, [[99, 5]]), // wrong checksum: resubscribe
        bupd(4, 0, [[98, 1]]), // belongs to the dropped book: ignored
      ],
      [
        ack,
        book(4, bids2, asks2),
        bupd(6, 0, [[99.1, 1]]), // q skips 5: resubscribe
      ],
      [ack, book(6, bids2, asks2), bupd(7, checksum([[100.5, 1], [101, 4]], bids2, depth), undefined, [[100.25, 0]])],
    ];

    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    const requests: Record<string, unknown>[] = [];
    server.on('connection', (ws) => {
      ws.send(encode([{ t: 'hello', v: 1, sid: 'test', hbMs: 5000, serverTs: Date.now(), limits: {} }]));
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        const req = (isBinary ? decode(data) : JSON.parse(data.toString())) as Record<string, unknown>;
        requests.push(req);
        const reply = replies[requests.length - 1];
        if (reply) ws.send(encode(reply));
      });
    });
    try {
      const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/stream`;
      const py = bookPy([S, '--url', url, '--depth', String(depth), '--json', '--count', '5']);
      const code = await Promise.race([py.exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
      py.proc.kill('SIGKILL');
      expect(code, py.err()).toBe(0);

      const sub = { op: 'sub', channel: 'book', symbols: [S], depth };
      expect(requests.map(({ id: _id, ...r }) => r)).toEqual([sub, sub, sub]);
      expect(requests.every((r) => typeof r['id'] === 'number')).toBe(true);
      expect(py.lines().map((l) => [l.t, l.q])).toEqual([
        ['book', 1],
        ['bupd', 2],
        ['book', 4],
        ['book', 6],
        ['bupd', 7],
      ]);
      expect(py.lines()[1]).toMatchObject({ bids: bids2, asks: asks2, stale: false });
      expect(py.lines().at(-1)).toMatchObject({ bids: bids2, asks: [[100.5, 1], [101, 4]] });
      const err = py.err();
      expect(err).toContain(`${S}: checksum mismatch at q=3 (gateway 0xdeadbeef, computed 0x`);
      expect(err).toContain(`${S}: bupd q=6 after q=4; resubscribing`);
      // A second failure so soon is resubscribed after a delay, not at once.
      expect(err).toContain(`${S}: failed again; resubscribing in 1 s`);
      expect(err).toMatch(/^book\.py: 6 messages checked, 1 checksum mismatch, 1 sequence break, 2 resubscribes$/m);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
