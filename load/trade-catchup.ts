/**
 * A resuming trade client for benchmarks: one tickgate WebSocket client on
 * the catch-up symbols (`CU-0` ..., load/trade-sim.ts) that goes away,
 * comes back with `since` (docs/PROTOCOL.md "Trade prints", Resuming) and
 * times how long it takes to get every trade it missed, checking that it
 * got exactly those: each once, in order, the same prints the publisher
 * sent (ids and a CRC32 over them).
 *
 * Driven over stdin, one JSON line answered per command:
 * - `connect`: opens a connection and subscribes (with `since` when it holds
 *   positions already); answers `connected` with the positions;
 * - `drop`: closes the connection (a normal close) and answers `dropped`
 *   with the positions it keeps: the last trade it processed per symbol;
 * - `resume N {"CU-0": {"first":..,"last":..,"crc":..}, ...}`: opens a new
 *   connection, and at `hello` sends `sub` with `since`; answers `resumed`
 *   once N trades arrived (or at the timeout) with the times from sending
 *   `sub` to the ack, the first and the N-th trade, and the checks against
 *   what the publisher's burst reported. The connection stays subscribed.
 * End of input closes everything and exits.
 *
 *   npx tsx load/trade-catchup.ts --url ws://127.0.0.1:8080/v1/stream --symbols 1
 */
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { UsageError, parseOptions, runIfEntry } from '../src/cli-tool.js';
import type { BurstSymbol } from './trade-publisher.js';
import { catchupSymbol, tradeDigest } from './trade-sim.js';

export interface CatchupOptions {
  url: string;
  symbols: number;
  timeoutMs: number;
  duration: number;
}

export const USAGE = `usage: npx tsx load/trade-catchup.ts [options]

  --url URL           gateway endpoint (default ws://127.0.0.1:8080/v1/stream)
  --symbols N         catch-up symbols CU-0 ... (default 1)
  --timeout-ms N      longest wait for a resume's trades (default 30000)
  --duration S        longest the process lives (default 600)
  --help              show this help

Commands on stdin: connect, drop, resume N BURST_JSON.`;

export { UsageError };

export function parseCatchupArgs(argv: readonly string[]): CatchupOptions | 'help' {
  const v = parseOptions(argv, {
    url: { type: 'string' },
    symbols: { type: 'string' },
    'timeout-ms': { type: 'string' },
    duration: { type: 'string' },
    help: { type: 'boolean' },
  });
  if (v.help) return 'help';
  const int = (name: string, raw: string | undefined, def: number, lo: number, hi: number) => {
    const n = raw === undefined ? def : Number(raw);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`--${name}: expected an integer from ${lo} to ${hi}, got ${JSON.stringify(raw)}`);
    return n;
  };
  return {
    url: v.url ?? 'ws://127.0.0.1:8080/v1/stream',
    symbols: int('symbols', v.symbols, 1, 1, 1000),
    timeoutMs: int('timeout-ms', v['timeout-ms'], 30_000, 100, 600_000),
    duration: int('duration', v.duration, 600, 1, 3600),
  };
}

/** Reply to `resume`. */
export interface ResumedReport {
  ev: 'resumed';
  /** Trades expected and received (every trade after the positions held, on every catch-up symbol). */
  expected: number;
  trades: number;
  timedOut: boolean;
  /** WebSocket open to `hello`. */
  connectMs: number;
  /** From sending `sub` (with since) to the ack and the first trade arriving, and to the frame with the expected-th trade decoded and checked. */
  ackMs: number | null;
  firstMs: number | null;
  lastMs: number | null;
  /** The ack's `rec`: every symbol recovered. */
  recovered: boolean;
  /** Trades at or below the position held, trades skipped, `gap` messages. */
  duplicates: number;
  missing: number;
  gapMessages: number;
  /** Per symbol: the first and last id received, and whether count, ids and CRC32 match the burst. */
  symbols: Record<string, { first: number; last: number; n: number; exact: boolean }>;
  /** Every symbol exact, recovered, nothing duplicated, missing or announced lost. */
  exact: boolean;
  frames: number;
  bytes: number;
}

type Msg = Record<string, unknown>;
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

interface Pos {
  e: string;
  q: number;
}

/** What one resume collects. */
interface Collect {
  expected: number;
  burst: Record<string, BurstSymbol>;
  sentAt: number;
  ackAt: number | null;
  firstAt: number | null;
  lastAt: number | null;
  trades: number;
  recovered: boolean;
  duplicates: number;
  missing: number;
  gapMessages: number;
  frames: number;
  bytes: number;
  /** The trades received, in order, checked against the burst after the clock stops. */
  kept: Msg[];
  done: (r: ResumedReport) => void;
  timer: NodeJS.Timeout | null;
  connectMs: number;
}

class CatchupClient {
  private ws: WebSocket | null = null;
  /** The last trade processed per symbol (from the ack's pos before any trade). */
  private readonly pos = new Map<string, Pos>();
  private collect: Collect | null = null;

  constructor(
    private readonly url: string,
    private readonly symbols: string[],
    private readonly timeoutMs: number,
  ) {}

  private open(onHello: (ws: WebSocket, connectMs: number) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const ws = new WebSocket(this.url, { perMessageDeflate: false, handshakeTimeout: 10_000, maxPayload: 256 * 1024 * 1024 });
      this.ws = ws;
      let hello = false;
      ws.on('message', (data: Buffer) => {
        if (!hello) {
          // The first frame holds hello; nothing else can come before a sub.
          hello = true;
          onHello(ws, performance.now() - t0);
          resolve();
          return;
        }
        this.onFrame(data);
      });
      // Kept for the connection's life: a later error must not become an unhandled 'error' event.
      ws.on('error', (err) => (hello ? undefined : reject(err)));
      ws.once('close', (code) => (hello ? undefined : reject(new Error(`closed before hello (${code})`))));
    });
  }

  private subRequest(withSince: boolean): string {
    const req: Record<string, unknown> = { op: 'sub', id: 1, channel: 'trade', symbols: this.symbols };
    if (withSince && this.pos.size > 0) req['since'] = Object.fromEntries(this.pos);
    return JSON.stringify(req);
  }

  async connect(): Promise<object> {
    let acked: () => void = () => undefined;
    const ack = new Promise<void>((r) => (acked = r));
    this.pendingAck = acked;
    await this.open((ws) => ws.send(this.subRequest(true)));
    await Promise.race([ack, new Promise((r) => setTimeout(r, 10_000))]);
    return { ev: 'connected', pos: Object.fromEntries(this.pos) };
  }

  private pendingAck: (() => void) | null = null;

  async drop(): Promise<object> {
    const ws = this.ws;
    this.ws = null;
    if (ws !== null && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000);
        setTimeout(() => (ws.terminate(), resolve()), 5000).unref();
      });
    }
    return { ev: 'dropped', pos: Object.fromEntries(this.pos) };
  }

  resume(expected: number, burst: Record<string, BurstSymbol>): Promise<ResumedReport> {
    return new Promise<ResumedReport>((resolve) => {
      const c: Collect = {
        expected,
        burst,
        sentAt: 0,
        ackAt: null,
        firstAt: null,
        lastAt: null,
        trades: 0,
        recovered: false,
        duplicates: 0,
        missing: 0,
        gapMessages: 0,
        frames: 0,
        bytes: 0,
        kept: [],
        done: resolve,
        timer: null,
        connectMs: 0,
      };
      this.collect = c;
      c.timer = setTimeout(() => this.finish(true), this.timeoutMs);
      this.open((ws, connectMs) => {
        c.connectMs = connectMs;
        const req = this.subRequest(true);
        c.sentAt = performance.now();
        ws.send(req);
      }).catch((err: unknown) => {
        this.collect = null;
        if (c.timer !== null) clearTimeout(c.timer);
        resolve({ ...this.report(c, true), exact: false });
        process.stderr.write(`resume failed: ${(err as Error).message}\n`);
      });
    });
  }

  private onFrame(data: Buffer): void {
    const now = performance.now();
    const c = this.collect;
    if (c !== null) {
      c.frames++;
      c.bytes += data.length;
    }
    let frame: unknown;
    try {
      frame = unpackr.unpack(data);
    } catch {
      return;
    }
    if (!Array.isArray(frame)) return;
    for (let i = 0; i < frame.length; i++) this.onMessage(frame[i] as Msg, now, c);
    // Caught up once the frame holding the expected-th trade is decoded and checked.
    if (c !== null && c.trades >= c.expected && c.lastAt === null) {
      c.lastAt = performance.now();
      this.finish(false);
    }
  }

  private onMessage(m: Msg, now: number, c: Collect | null): void {
    switch (m['t']) {
      case 'ack': {
        const pos = m['pos'] as Record<string, Pos> | undefined;
        const rec = m['rec'] as Record<string, boolean> | undefined;
        // The ack's positions only where none is held: a resume keeps its own (the ack's is the live head).
        if (pos !== undefined) for (const [s, p] of Object.entries(pos)) if (!this.pos.has(s)) this.pos.set(s, { e: p.e, q: p.q });
        if (c !== null) {
          c.ackAt = now;
          c.recovered = rec !== undefined && this.symbols.every((s) => rec[s] === true);
        }
        this.pendingAck?.();
        this.pendingAck = null;
        return;
      }
      case 'trade': {
        const s = m['s'] as string;
        const p = this.pos.get(s);
        if (p === undefined) return;
        const q = m['q'] as number;
        if (c === null) {
          if (q > p.q) p.q = q;
          return;
        }
        if (q <= p.q) {
          c.duplicates++;
          return;
        }
        if (q !== p.q + 1) c.missing += q - p.q - 1;
        p.q = q;
        c.trades++;
        c.firstAt ??= now;
        // Checked against the burst once caught up: the digest stays out of the time measured.
        c.kept.push(m);
        return;
      }
      case 'gap':
        if (c !== null) c.gapMessages++;
        return;
      default:
        return;
    }
  }

  private report(c: Collect, timedOut: boolean): ResumedReport {
    const ms = (t: number | null) => (t === null ? null : Math.round((t - c.sentAt) * 1000) / 1000);
    const got = new Map<string, { first: number; last: number; n: number; crc: number; idSkips: number }>();
    for (const m of c.kept) {
      const s = m['s'] as string;
      const id = m['id'] as number;
      let g = got.get(s);
      if (g === undefined) {
        g = { first: id, last: id - 1, n: 0, crc: 0, idSkips: 0 };
        got.set(s, g);
      }
      if (id !== g.last + 1) g.idSkips++;
      g.last = id;
      g.n++;
      g.crc = tradeDigest(g.crc, m as { id: unknown; px: unknown; sz: unknown; side: unknown; ts: unknown });
    }
    const symbols: ResumedReport['symbols'] = {};
    let allExact = true;
    for (const s of this.symbols) {
      const b = c.burst[s] ?? { first: 0, last: 0, n: 0, crc: 0 };
      const g = got.get(s) ?? { first: 0, last: 0, n: 0, crc: 0, idSkips: 0 };
      const exact = g.n === b.n && (b.n === 0 || (g.first === b.first && g.last === b.last && g.crc === b.crc && g.idSkips === 0));
      if (!exact) allExact = false;
      symbols[s] = { first: g.first, last: g.last, n: g.n, exact };
    }
    return {
      ev: 'resumed',
      expected: c.expected,
      trades: c.trades,
      timedOut,
      connectMs: Math.round(c.connectMs * 1000) / 1000,
      ackMs: ms(c.ackAt),
      firstMs: ms(c.firstAt),
      lastMs: ms(c.lastAt),
      recovered: c.recovered,
      duplicates: c.duplicates,
      missing: c.missing,
      gapMessages: c.gapMessages,
      symbols,
      exact: allExact && !timedOut && c.recovered && c.duplicates === 0 && c.missing === 0 && c.gapMessages === 0 && c.trades === c.expected,
      frames: c.frames,
      bytes: c.bytes,
    };
  }

  private finish(timedOut: boolean): void {
    const c = this.collect;
    if (c === null) return;
    this.collect = null;
    if (c.timer !== null) clearTimeout(c.timer);
    c.done(this.report(c, timedOut));
  }

  close(): void {
    this.ws?.terminate();
  }
}

runIfEntry(import.meta.url, {
  name: 'trade-catchup',
  usage: USAGE,
  parse: (argv) => parseCatchupArgs(argv),
  async run(opts, signal) {
    const out = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');
    const client = new CatchupClient(
      opts.url,
      Array.from({ length: opts.symbols }, (_, i) => catchupSymbol(i)),
      opts.timeoutMs,
    );
    const ac = new AbortController();
    signal.addEventListener('abort', () => ac.abort(), { once: true });
    const life = setTimeout(() => ac.abort(), opts.duration * 1000);
    const rl = createInterface({ input: process.stdin });
    let chain = Promise.resolve();
    try {
      await new Promise<void>((resolve) => {
        ac.signal.addEventListener('abort', () => resolve(), { once: true });
        rl.on('close', () => resolve());
        rl.on('line', (line) => {
          const trimmed = line.trim();
          const [cmd, n] = trimmed.split(/\s+/, 2);
          chain = chain.then(async () => {
            try {
              if (cmd === 'connect') out(await client.connect());
              else if (cmd === 'drop') out(await client.drop());
              else if (cmd === 'resume') {
                const rest = trimmed.slice(trimmed.indexOf(n!) + n!.length).trim();
                const expected = Number(n);
                if (!Number.isInteger(expected) || expected < 1) return out({ ev: 'error', msg: `resume: expected a positive integer, got ${JSON.stringify(n)}` });
                out(await client.resume(expected, rest === '' ? {} : (JSON.parse(rest) as Record<string, BurstSymbol>)));
              } else out({ ev: 'error', msg: `unknown command ${JSON.stringify(line)}` });
            } catch (err) {
              out({ ev: 'error', msg: `${cmd}: ${(err as Error).message}` });
            }
          });
        });
      });
    } finally {
      clearTimeout(life);
      rl.close();
      client.close();
    }
    return 0;
  },
});
