/**
 * Integration: feed:record and feed:replay against a real nats-server, read
 * back by a plain NATS subscriber with standard decoders (@msgpack/msgpack,
 * JSON.parse), and the sample capture replayed into an in-process gateway.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { decode, encode } from '@msgpack/msgpack';
import { connect, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CANONICAL_FIELDS } from '../src/protocol/fields.js';
import { startGateway } from '../test/helpers/gateway.js';
import { NatsListener } from '../test/helpers/nats-listener.js';
import { startNatsServer, type NatsServer } from '../test/helpers/nats-server.js';
import { ROOT } from '../test/helpers/process.js';
import { StateView, TestClient } from '../test/helpers/ws-client.js';
import { clientBook } from '../test/helpers/client-book.js';
import { CaptureFormatError, CaptureWriter, classifyPayload, encodePayload, readCapture, readCaptureHeader, type CaptureRecord } from './capture.js';
import { SAMPLE } from './make-sample.js';
import { parseRecordArgs, recordCapture, type RecordOptions, type RecordSummary } from './record.js';
import { parseReplayArgs, replayCapture, type ReplayOptions } from './replay.js';
import { parseSimArgs, runSim, UsageError } from './sim.js';

let nats: NatsServer;
let sub: NatsConnection;
let listener: NatsListener;
let dir: string;
let fileNo = 0;

beforeAll(async () => {
  nats = await startNatsServer();
  sub = await connect({ servers: nats.url });
  listener = new NatsListener(sub);
  dir = mkdtempSync(join(tmpdir(), 'tickgate-capture-'));
});

afterAll(async () => {
  await sub?.close();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(() => listener?.stop());

function tmpFile(name = 'capture'): string {
  return join(dir, `${name}-${++fileNo}.ndjson.gz`);
}

async function readAll(path: string): Promise<CaptureRecord[]> {
  const out: CaptureRecord[] = [];
  for await (const r of readCapture(path)) out.push(r);
  return out;
}

function recordOpts(out: string, extra: Partial<RecordOptions> = {}): RecordOptions {
  return { url: nats.url, subjects: ['md.sim.>'], out, force: false, duration: 30, count: null, ...extra };
}

function replayOpts(file: string, extra: Partial<ReplayOptions> = {}): ReplayOptions {
  return { url: nats.url, in: file, speed: 'max', duration: null, count: null, subjectPrefix: null, rewriteTs: true, ...extra };
}

/** Starts a recording and resolves once its subscription is registered, with the recording's promise (wrapped, so it is not awaited too). */
async function startRecording(opts: RecordOptions, signal?: AbortSignal): Promise<{ done: Promise<RecordSummary> }> {
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const done = recordCapture({ ...opts, onReady: () => ready() }, signal);
  await Promise.race([isReady, done]);
  return { done };
}

/** Writes a capture with the given header object and record lines, gzip-compressed. */
function writeRawCapture(lines: string[]): string {
  const file = tmpFile('raw');
  writeFileSync(file, gzipSync(lines.map((l) => l + '\n').join('')));
  return file;
}

/** A book snapshot in the book ingest contract. */
const BOOK_MSG = { s: 'BTC/USDT', ts: 1_764_100_000_000.5, seq: 1, snapshot: true, bids: [[64723.41, 2], [64723.35, 7]], asks: [[64723.54, 1], [64724, 0.001]] };

const HEADER = JSON.stringify({ format: 'tickgate-capture', v: 1, subject: 'syn.>', startedAt: 1_764_100_000_000 });
const utf8 = new TextDecoder();

describe('feed:record on a real nats-server', () => {
  it.each(['msgpack', 'json'] as const)('records exactly the N ticks feed:sim publishes (%s), decoded as a plain subscriber decodes them', async (codec) => {
    const got = await listener.listen('md.sim.>');
    const out = tmpFile(codec);
    const count = 2000;
    const { done: recording } = await startRecording(recordOpts(out, { count }));
    const sim = parseSimArgs(['--url', nats.url, '--count', String(count), '--rate', '20000', '--symbols', '50', '--codec', codec], {});
    if (sim === 'help') throw new Error('unexpected help');
    await runSim(sim);
    const summary = await recording;
    await sub.flush();

    expect(summary).toMatchObject({ out, records: count, stoppedBy: 'count' });
    expect(summary.codecs).toEqual({ msgpack: codec === 'msgpack' ? count : 0, json: codec === 'json' ? count : 0, bytes: 0 });
    expect(got).toHaveLength(count);

    const header = await readCaptureHeader(out);
    expect(header).toMatchObject({ format: 'tickgate-capture', v: 1, subject: 'md.sim.>' });
    expect(Math.abs(header.startedAt - Date.now())).toBeLessThan(60_000);

    const records = await readAll(out);
    expect(records).toHaveLength(count);
    let lastT = 0;
    records.forEach((r, i) => {
      const plain = got[i]!;
      const expected = codec === 'msgpack' ? decode(plain.data) : JSON.parse(utf8.decode(plain.data));
      expect(r.line).toBe(i + 2);
      expect(r.subject).toBe(plain.subject);
      expect(r.codec).toBe(codec);
      expect(r.data).toEqual(expected);
      // Replay re-encodes the same logical payload in the same codec.
      const again = encodePayload(r);
      expect(codec === 'msgpack' ? decode(again) : JSON.parse(utf8.decode(again))).toEqual(expected);
      expect(r.t).toBeGreaterThanOrEqual(lastT);
      lastT = r.t;
    });
  });

  it('keeps payloads that do not decode losslessly as bytes, and replay publishes those bytes unchanged', async () => {
    const text = new TextEncoder();
    const payloads: Array<[string, Uint8Array, 'msgpack' | 'json' | 'bytes']> = [
      ['msgpack map', encode({ s: 'AAPL', bid: 190.12, seq: 7, tags: ['a', { b: null }], ok: true }), 'msgpack'],
      ['msgpack map with a 40-bit integer (uint64 on the wire)', encode({ s: 'A', volume: 2 ** 40 }), 'msgpack'],
      ['msgpack map with a float32', encode({ s: 'A', bid: 1.5 }, { forceFloat32: true }), 'msgpack'],
      ['book message packed as feed:sim packs it', new Packr({ useRecords: false, variableMapSize: true }).pack(BOOK_MSG), 'msgpack'],
      ['JSON book message', text.encode(JSON.stringify(BOOK_MSG)), 'json'],
      ['JSON object', text.encode(' {"pair":"EUR/USD","b":"1.08425","a":1.0843} '), 'json'],
      ['JSON array', text.encode('[1,2,3]'), 'bytes'],
      ['JSON number', text.encode('5'), 'bytes'],
      ['JSON with a number beyond float64', text.encode('{"s":"A","bid":1e999}'), 'bytes'],
      ['JSON with -0', text.encode('{"s":"A","bid":-0}'), 'bytes'],
      ['plain text', text.encode('hello'), 'bytes'],
      ['empty payload', new Uint8Array(0), 'bytes'],
      ['msgpack array', encode([1, 2]), 'bytes'],
      ['msgpack map with an integer key', new Uint8Array([0x81, 0x01, 0xa1, 0x78]), 'bytes'],
      ['msgpack map with a binary value', encode({ s: 'A', raw: new Uint8Array([1, 2, 3]) }), 'bytes'],
      ['msgpack map with a timestamp', encode({ s: 'A', at: new Date(1_764_100_000_000) }), 'bytes'],
      ['msgpack map with a 64-bit integer beyond 2^53', encode({ s: 'A', n: 2n ** 60n + 1n }, { useBigInt64: true }), 'bytes'],
      ['msgpack map with invalid UTF-8 in a value', new Uint8Array([0x81, 0xa1, 0x73, 0xa2, 0xc3, 0x28]), 'bytes'],
      ['msgpack map with invalid UTF-8 in a key', new Uint8Array([0x81, 0xa2, 0xc0, 0xaf, 0x01]), 'bytes'],
      ['msgpack map nested 70 deep', encode(Array.from({ length: 69 }).reduce<unknown>((inner) => ({ x: inner }), { s: 'A' })), 'bytes'],
      ['msgpackr record (not standard MessagePack)', new Packr({ useRecords: true }).pack({ s: 'A', bid: 1 }), 'bytes'],
      ['truncated msgpack map', encode({ s: 'AAPL', bid: 1 }).subarray(0, 6), 'bytes'],
    ];
    for (const [what, bytes, codec] of payloads) expect(classifyPayload(bytes).codec, what).toBe(codec);

    const out = tmpFile('mixed');
    const { done: recording } = await startRecording(recordOpts(out, { subjects: ['mix.>'], count: payloads.length }));
    payloads.forEach(([, bytes], i) => sub.publish(`mix.${i}`, bytes));
    await sub.flush();
    const summary = await recording;
    expect(summary.records).toBe(payloads.length);
    const records = await readAll(out);
    expect(records.map((r) => r.codec)).toEqual(payloads.map(([, , c]) => c));

    const got = await listener.listen('again.>');
    const replayed = await replayCapture(replayOpts(out, { subjectPrefix: 'again', rewriteTs: false }));
    await sub.flush();
    expect(replayed).toMatchObject({ published: payloads.length, stoppedBy: 'end' });
    expect(got.map((m) => m.subject)).toEqual(payloads.map((_, i) => `again.mix.${i}`));
    got.forEach((m, i) => {
      const [what, bytes, codec] = payloads[i]!;
      if (codec === 'bytes') expect(Buffer.from(m.data).equals(Buffer.from(bytes)), what).toBe(true);
      else if (codec === 'msgpack') expect(decode(m.data), what).toEqual(decode(bytes));
      else expect(JSON.parse(utf8.decode(m.data)), what).toEqual(JSON.parse(utf8.decode(bytes)));
    });
  });

  it('records quotes and books from two subjects in one capture, and replays them into a gateway whose book windows match', async () => {
    const out = tmpFile('books');
    // 20 + 0.5 s x 400 ticks, 3 + 0.5 s x 1000 book messages.
    const ticks = 220;
    const bookMsgs = 503;
    const { done: recording } = await startRecording(recordOpts(out, { subjects: ['md.sim.>', 'book.sim.>'], count: ticks + bookMsgs }));
    const sim = parseSimArgs(['--url', nats.url, '--symbols', '20', '--rate', '400', '--books', '3', '--book-rate', '1000', '--duration', '0.5'], {});
    if (sim === 'help') throw new Error('unexpected help');
    expect(await runSim(sim)).toMatchObject({ published: ticks, bookMessages: bookMsgs });
    expect(await recording).toMatchObject({ records: ticks + bookMsgs, stoppedBy: 'count', codecs: { msgpack: ticks + bookMsgs, json: 0, bytes: 0 } });
    expect(await readCaptureHeader(out)).toMatchObject({ subject: 'md.sim.>', subjects: ['md.sim.>', 'book.sim.>'] });

    const records = await readAll(out);
    const books = records.filter((r) => r.subject.startsWith('book.sim.'));
    expect(books).toHaveLength(bookMsgs);
    // The books' own sequence survives the recording: consecutive per symbol, a snapshot first.
    const want = new Map<string, { seq: number; bids: Map<number, number>; asks: Map<number, number> }>();
    for (const r of books) {
      const m = r.data as { s: string; seq: number; snapshot?: boolean; bids: [number, number][]; asks: [number, number][] };
      const held = want.get(m.s);
      expect(m.seq).toBe((held?.seq ?? 0) + 1);
      const b = m.snapshot ? { seq: m.seq, bids: new Map<number, number>(), asks: new Map<number, number>() } : held!;
      b.seq = m.seq;
      want.set(m.s, b);
      for (const [p, size] of m.bids) size === 0 ? b.bids.delete(p) : b.bids.set(p, size);
      for (const [p, size] of m.asks) size === 0 ? b.asks.delete(p) : b.asks.set(p, size);
    }
    const symbols = [...want.keys()];
    expect(symbols).toHaveLength(3);

    const gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [
        { name: 'sim', subject: 'md.sim.>' },
        { name: 'simbook', kind: 'book', subject: 'book.sim.>' },
      ],
    });
    const c = await TestClient.connect(gw.url);
    try {
      c.send({ op: 'sub', id: 1, channel: 'book', symbols, depth: 10 });
      await c.next((m) => m.t === 'ack', 'ack');
      expect(await replayCapture(replayOpts(out))).toMatchObject({ published: ticks + bookMsgs, stoppedBy: 'end' });
      const window = (s: string) => ({
        bids: [...want.get(s)!.bids].sort((a, b) => b[0] - a[0]).slice(0, 10),
        asks: [...want.get(s)!.asks].sort((a, b) => a[0] - b[0]).slice(0, 10),
      });
      const atRest = (s: string) => {
        const b = clientBook(c.messages, s, 10);
        return JSON.stringify([b.bids, b.asks]) === JSON.stringify([window(s).bids, window(s).asks]);
      };
      await c.until(() => symbols.every(atRest), 'every window at the recorded book', 10_000);
      for (const s of symbols) expect(clientBook(c.messages, s, 10).problems, s).toEqual([]);
      expect(await gw.metric('tickgate_book_messages_total', { feed: 'simbook' })).toBe(bookMsgs);
      expect(await gw.metric('tickgate_book_gaps_total', { feed: 'simbook' })).toBe(0);
      expect(await gw.metric('tickgate_ingest_ticks_total', { feed: 'sim' })).toBe(ticks);
    } finally {
      await c.close();
      await gw.stop();
    }
  });

  it('records quotes and trades in one capture, and replays them into a gateway whose clients get every print in order, ts rewritten', async () => {
    const out = tmpFile('trades');
    // 20 + 0.5 s x 400 ticks; 0.5 s x 600 trade messages, each followed by its tick.
    const ticks = 220 + 300;
    const tradeMsgs = 300;
    const { done: recording } = await startRecording(recordOpts(out, { subjects: ['md.sim.>', 'trade.sim.>'], count: ticks + tradeMsgs }));
    const sim = parseSimArgs(['--url', nats.url, '--symbols', '20', '--rate', '400', '--trades', '600', '--duration', '0.5'], {});
    if (sim === 'help') throw new Error('unexpected help');
    expect(await runSim(sim)).toMatchObject({ published: 220, tradeMessages: tradeMsgs });
    expect(await recording).toMatchObject({ records: ticks + tradeMsgs, stoppedBy: 'count', codecs: { msgpack: ticks + tradeMsgs, json: 0, bytes: 0 } });
    expect(await readCaptureHeader(out)).toMatchObject({ subject: 'md.sim.>', subjects: ['md.sim.>', 'trade.sim.>'] });

    // The recorded tape, per symbol, in order.
    type Print = { px: number; sz: number; side?: string; id: string; ts: number };
    const tape = new Map<string, Print[]>();
    for (const r of await readAll(out)) {
      if (!r.subject.startsWith('trade.sim.')) continue;
      const m = r.data as { s: string; trades?: Print[] } & Print;
      const list = m.trades ?? [{ px: m.px, sz: m.sz, ...(m.side === undefined ? {} : { side: m.side }), id: m.id, ts: m.ts }];
      tape.set(m.s, [...(tape.get(m.s) ?? []), ...list]);
    }
    const symbols = [...tape.keys()].slice(0, 4);
    expect(symbols.length).toBeGreaterThanOrEqual(3);
    expect([...tape.values()].some((l) => l.length > 1)).toBe(true);

    const gw = await startGateway({
      nats: { servers: [nats.url] },
      feeds: [
        { name: 'sim', subject: 'md.sim.>' },
        { name: 'simtrade', kind: 'trade', subject: 'trade.sim.>', staleAfterMs: 0 },
      ],
    });
    const c = await TestClient.connect(gw.url);
    try {
      c.send({ op: 'sub', id: 1, channel: 'trade', symbols });
      await c.next((m) => m.t === 'ack', 'ack');
      const started = Date.now();
      expect(await replayCapture(replayOpts(out, { speed: 'max' }))).toMatchObject({ published: ticks + tradeMsgs, stoppedBy: 'end' });
      const tradesOf = (s: string) => c.messages.filter((m) => m.t === 'trade' && m['s'] === s);
      await c.until(() => symbols.every((s) => tradesOf(s).length >= tape.get(s)!.length), 'every recorded print', 10_000);
      for (const s of symbols) {
        const got = tradesOf(s);
        // Every print once, in the recorded order, the gateway numbering them 1, 2, 3, ...
        expect(got.map(({ px, sz, side, id }) => ({ px, sz, side, id })), s).toEqual(tape.get(s)!.map(({ px, sz, side, id }) => ({ px, sz, side, id })));
        expect(got.map((m) => m['q']), s).toEqual(got.map((_, i) => i + 1));
        // Batched prints too: every ts is the replay's clock, not the recording's.
        expect(got.every((m) => (m['ts'] as number) >= started - 1), s).toBe(true);
      }
      expect(await gw.metric('tickgate_trades_total', { feed: 'simtrade' })).toBe([...tape.values()].reduce((n, l) => n + l.length, 0));
      expect(await gw.metric('tickgate_ingest_ticks_total', { feed: 'sim' })).toBe(ticks);
    } finally {
      await c.close();
      await gw.stop();
    }
  });

  it('stops on abort and still closes the gzip stream, so the capture reads to its end', async () => {
    const out = tmpFile('abort');
    const ac = new AbortController();
    const { done: recording } = await startRecording(recordOpts(out, { subjects: ['ab.>'], duration: null }), ac.signal);
    const sent = Array.from({ length: 100 }, (_, i) => ({ s: `S${i % 5}`, seq: i }));
    for (const [i, tick] of sent.entries()) sub.publish(`ab.${i % 5}`, encode(tick));
    await sub.flush();
    // Our flush says the server has them; the recorder's connection receives
    // them a moment later. Whatever it got by the abort must be in the file.
    await new Promise((r) => setTimeout(r, 200));
    ac.abort();
    const summary = await recording;
    expect(summary.stoppedBy).toBe('signal');
    expect(summary.records).toBeGreaterThan(0);
    const records = await readAll(out);
    expect(records.map((r) => r.data)).toEqual(sent.slice(0, summary.records));
  });

  it('stops at --duration', async () => {
    const out = tmpFile('duration');
    const summary = await recordCapture(recordOpts(out, { subjects: ['quiet.>'], duration: 0.2 }));
    expect(summary).toMatchObject({ records: 0, stoppedBy: 'duration' });
    expect(summary.seconds).toBeGreaterThanOrEqual(0.19);
    expect(await readAll(out)).toEqual([]);
  });

  it('refuses to replace an existing capture unless forced, and leaves no file when NATS is unreachable', async () => {
    const out = tmpFile('exists');
    writeFileSync(out, 'precious');
    await expect(recordCapture(recordOpts(out, { duration: 0.05 }))).rejects.toThrow(/^--out: .* exists/);
    await expect(recordCapture(recordOpts(out, { duration: 0.05, force: true }))).resolves.toMatchObject({ records: 0 });
    await expect(recordCapture(recordOpts(join(dir, 'no-such-dir', 'x.gz')))).rejects.toThrow(/^--out: cannot create .*ENOENT/);

    const nowhere = tmpFile('nowhere');
    await expect(recordCapture(recordOpts(nowhere, { url: 'nats://127.0.0.1:1' }))).rejects.toThrow();
    await expect(readCaptureHeader(nowhere)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

/** Canonical-field state per symbol folded from a capture as the gateway merges ticks, with the number of ticks that changed it. */
function fold(records: CaptureRecord[]): Map<string, { q: number; d: Record<string, number> }> {
  const canonical = new Set<string>(CANONICAL_FIELDS);
  const state = new Map<string, { q: number; d: Record<string, number> }>();
  for (const r of records) {
    if (r.codec === 'bytes') throw new Error(`line ${r.line}: unexpected bytes record`);
    const s = r.data['s'] as string;
    const st = state.get(s) ?? { q: 0, d: {} };
    state.set(s, st);
    let changed = false;
    for (const [k, v] of Object.entries(r.data)) {
      if (!canonical.has(k) || typeof v !== 'number') continue;
      if (st.d[k] !== v) changed = true;
      st.d[k] = v;
    }
    if (changed) st.q++;
  }
  return state;
}

describe('feed:replay on a real nats-server', () => {
  it('replays the sample at max speed into a gateway whose final state per symbol equals the folded capture', async () => {
    const records = await readAll(SAMPLE);
    expect(records.length).toBeGreaterThanOrEqual(2000);
    const expected = fold(records);
    const symbols = [...expected.keys()];
    expect(symbols.length).toBe(50);

    const gw = await startGateway({ nats: { servers: [nats.url] } });
    const c = await TestClient.connect(gw.url);
    try {
      c.send({ op: 'sub', id: 1, symbols });
      const ack = await c.next((m) => m.t === 'ack', 'ack');
      expect(ack['ok']).toEqual(symbols);

      const summary = await replayCapture(replayOpts(SAMPLE, { rewriteTs: false }));
      expect(summary).toMatchObject({ published: records.length, stoppedBy: 'end' });

      const view = new StateView();
      let applied = 0;
      const matches = () => {
        view.apply(c.messages.slice(applied));
        applied = c.messages.length;
        return symbols.every((s) => view.state.get(s)?.q === expected.get(s)!.q);
      };
      await c.until(matches, 'every symbol at its final q', 15_000);
      expect(view.violations).toEqual([]);
      for (const s of symbols) expect({ s, ...view.state.get(s) }).toEqual({ s, ...expected.get(s) });
      expect(await gw.metric('tickgate_ingest_ticks_total', { feed: 'sim' })).toBe(records.length);
      expect(await gw.metric('tickgate_ingest_invalid_ticks_total', { feed: 'sim', reason: 'decode' })).toBe(0);
    } finally {
      await c.close();
      await gw.stop();
    }
  });

  /** 101 msgpack ticks 20 ms apart: a 2 s span. */
  async function syntheticCapture(): Promise<string> {
    const file = tmpFile('synthetic');
    const w = await CaptureWriter.create(file);
    w.writeHeader({ subject: 'syn.>', startedAt: 1_764_100_000_000 });
    for (let i = 0; i <= 100; i++) w.write(500 + i * 20, 'syn.SYN', encode({ s: 'SYN', ts: 1_764_100_000_500 + i * 20, seq: i + 1, bid: 100 + i }));
    await w.close();
    return file;
  }

  it('paces --speed 2 at about half the recorded span and stamps ts with the replay clock; --count and --duration bound it', async () => {
    const file = await syntheticCapture();
    let got = await listener.listen('syn.>');
    const before = Date.now();
    const summary = await replayCapture(replayOpts(file, { speed: 2 }));
    const after = Date.now();
    await sub.flush();
    expect(summary).toMatchObject({ published: 101, spanMs: 2000, stoppedBy: 'end' });
    // Timers never fire early, so the lower bound is firm; the upper one only says "clearly faster than recorded".
    expect(summary.seconds).toBeGreaterThanOrEqual(0.95);
    expect(summary.seconds).toBeLessThan(1.9);
    expect(got).toHaveLength(101);
    got.forEach((m, i) => {
      const tick = decode(m.data) as Record<string, number>;
      expect(tick).toMatchObject({ s: 'SYN', seq: i + 1, bid: 100 + i });
      expect(tick['ts']).toBeGreaterThanOrEqual(before);
      expect(tick['ts']).toBeLessThanOrEqual(after);
    });
    // Due times are 10 ms apart at speed 2, and so are the stamps.
    const ts = got.map((m) => (decode(m.data) as Record<string, number>)['ts']!);
    expect(ts[100]! - ts[0]!).toBeCloseTo(1000, 6);

    listener.stop();
    got = await listener.listen('syn.>');
    const counted = await replayCapture(replayOpts(file, { speed: 2, count: 10, rewriteTs: false }));
    await sub.flush();
    expect(counted).toMatchObject({ published: 10, stoppedBy: 'count', spanMs: 180 });
    expect(got.map((m) => decode(m.data))).toEqual(
      Array.from({ length: 10 }, (_, i) => ({ s: 'SYN', ts: 1_764_100_000_500 + i * 20, seq: i + 1, bid: 100 + i })),
    );

    listener.stop();
    got = await listener.listen('syn.>');
    const timed = await replayCapture(replayOpts(file, { speed: 2, duration: 0.5 }));
    await sub.flush();
    // Due at (t - 500) / 2 ms: records up to t = 1500 are due within 0.5 s.
    expect(timed).toMatchObject({ published: 51, stoppedBy: 'duration' });
    expect(got).toHaveLength(51);
  });

  it('refuses a capture that would replay for over 3600 s unless --duration (or --count, or max) keeps it short', async () => {
    const file = writeRawCapture([
      HEADER,
      JSON.stringify({ t: 0, subject: 'long.A', codec: 'json', data: { s: 'A', bid: 1 } }),
      JSON.stringify({ t: 3_700_000, subject: 'long.A', codec: 'json', data: { s: 'A', bid: 2 } }),
    ]);
    const got = await listener.listen('long.>');
    await expect(replayCapture(replayOpts(file, { speed: 1 }))).rejects.toThrow(UsageError);
    await expect(replayCapture(replayOpts(file, { speed: 1 }))).rejects.toThrow(/^--duration: .*more than 3600 s.*line 3/);
    expect(await replayCapture(replayOpts(file, { speed: 1, duration: 0.1 }))).toMatchObject({ published: 1, stoppedBy: 'duration' });
    expect(await replayCapture(replayOpts(file, { speed: 1, count: 1 }))).toMatchObject({ published: 1, stoppedBy: 'count' });
    expect(await replayCapture(replayOpts(file, { speed: 'max' }))).toMatchObject({ published: 2, stoppedBy: 'end' });
    await sub.flush();
    expect(got).toHaveLength(4);
  }, 10_000);
});

/** One capture line: a JSON record on bad.A at `t`, with `extra` keys replacing the defaults. */
const rec = (t: number, extra: Record<string, unknown> = {}) => JSON.stringify({ t, subject: 'bad.A', codec: 'json', data: { s: 'A', bid: 1 }, ...extra });

describe('malformed captures', () => {
  it('fails naming line 3 when line 3 is not JSON, before publishing anything', async () => {
    const file = writeRawCapture([HEADER, rec(0), '{"t": 1, "subject": "bad.A",', rec(2)]);
    const seen: number[] = [];
    const err = await (async () => {
      for await (const r of readCapture(file)) seen.push(r.line);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureFormatError);
    expect(err).toMatchObject({ line: 3, path: file });
    expect((err as Error).message).toMatch(new RegExp(`^${file}: line 3: not valid JSON`));
    expect(seen).toEqual([2]);

    const got = await listener.listen('bad.>');
    await expect(replayCapture(replayOpts(file, { speed: 1 }))).rejects.toThrow(/line 3: not valid JSON/);
    await sub.flush();
    expect(got).toHaveLength(0);
  });

  it.each([
    ['a wrong format in the header', [JSON.stringify({ format: 'other', v: 1, subject: 'x', startedAt: 0 }), rec(0)], 1, /header "format" is "other"/],
    ['an unsupported version', [JSON.stringify({ format: 'tickgate-capture', v: 2, subject: 'x', startedAt: 0 })], 1, /unsupported capture version 2/],
    ['a header that is not an object', ['[1]'], 1, /header is not a JSON object/],
    ['subjects not led by subject', [JSON.stringify({ format: 'tickgate-capture', v: 1, subject: 'a.>', subjects: ['b.>', 'a.>'], startedAt: 0 })], 1, /header "subjects"/],
    ['no header at all', [], 1, /no header/],
    ['an empty line', [HEADER, rec(0), '', rec(1)], 3, /empty line/],
    ['t going backwards', [HEADER, rec(5), rec(4)], 3, /"t" 4 is earlier than the previous record's 5/],
    ['a negative t', [HEADER, rec(-1)], 2, /"t" is -1/],
    ['an unknown codec', [HEADER, rec(0, { codec: 'xml' })], 2, /"codec" is "xml"/],
    ['a wildcard subject', [HEADER, rec(0, { subject: 'bad.*' })], 2, /"subject" is "bad\.\*"/],
    ['bad base64', [HEADER, rec(0, { codec: 'bytes', data: 'not base64!' })], 2, /expected base64/],
    ['a msgpack record whose data is not a map', [HEADER, rec(0), rec(1, { codec: 'msgpack', data: [1] })], 3, /"data" of a msgpack record is \[1\]/],
  ] as const)('fails naming the line for %s', async (_what, lines, line, message) => {
    const file = writeRawCapture([...lines]);
    const err = await readAll(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureFormatError);
    expect(err).toMatchObject({ line });
    expect((err as Error).message).toContain(`line ${line}: `);
    expect((err as Error).message).toMatch(message);
  });

  it('names the line where a truncated gzip stream ends, and rejects a file that is not gzip', async () => {
    const lines = [HEADER, ...Array.from({ length: 5000 }, (_, i) => rec(i))];
    const whole = gzipSync(lines.map((l) => l + '\n').join(''));
    const cut = tmpFile('cut');
    writeFileSync(cut, whole.subarray(0, whole.length - 100));
    const err = await readAll(cut).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureFormatError);
    expect((err as Error).message).toMatch(/line \d+: the gzip stream ends early \(truncated capture\)/);
    expect((err as CaptureFormatError).line).toBeGreaterThan(1000);

    const plain = tmpFile('plain');
    writeFileSync(plain, lines.join('\n'));
    await expect(readAll(plain)).rejects.toThrow(/line 1: not a readable gzip stream/);
  });
});

describe('feed:record and feed:replay options', () => {
  it('have documented defaults', () => {
    expect(parseRecordArgs(['--out', 'x.gz'], {})).toEqual({
      url: 'nats://127.0.0.1:4222',
      subjects: ['md.sim.>'],
      out: 'x.gz',
      force: false,
      duration: 60,
      count: null,
    });
    expect(parseRecordArgs(['--out', 'x.gz', '--count', '10'], {})).toMatchObject({ count: 10, duration: null });
    expect(parseRecordArgs(['--out', 'x.gz', '--subject', 'md.sim.>', '--subject', 'book.sim.>'], {})).toMatchObject({ subjects: ['md.sim.>', 'book.sim.>'] });
    expect(parseRecordArgs(['--out', 'x.gz', '--duration', '0'], {})).toMatchObject({ count: null, duration: null });
    expect(parseReplayArgs(['--in', SAMPLE], { NATS_URL: 'nats://10.0.0.1:4222' })).toEqual({
      url: 'nats://10.0.0.1:4222',
      in: SAMPLE,
      speed: 1,
      duration: null,
      count: null,
      subjectPrefix: null,
      rewriteTs: true,
    });
    expect(parseReplayArgs(['--in', SAMPLE, '--speed', 'max', '--rewrite-ts', 'false'], {})).toMatchObject({ speed: 'max', rewriteTs: false });
    expect(parseReplayArgs(['--in', SAMPLE, '--no-rewrite-ts', '--subject-prefix', 'replay.a'], {})).toMatchObject({
      rewriteTs: false,
      subjectPrefix: 'replay.a',
    });
  });

  it.each([
    [['--url', 'http://x'], '--url'],
    [['--subject', 'md..sim'], '--subject'],
    [['--subject', 'md.>.x'], '--subject'],
    [['--subject', 'md.sim.>', '--subject', 'md.*.AAPL'], '--subject'],
    [['--subject', 'book.>', '--subject', 'book.sim.>'], '--subject'],
    [['--out', ''], '--out'],
    [['--duration', '-1'], '--duration'],
    [['--count', '0'], '--count'],
    [['--bogus'], "'--bogus'"],
  ])('feed:record %j fails naming %s', (argv, name) => {
    const args = argv.includes('--out') ? argv : ['--out', 'x.gz', ...argv];
    expect(() => parseRecordArgs(args, {})).toThrow(UsageError);
    expect(() => parseRecordArgs(args, {})).toThrow(name);
  });

  it('feed:record requires --out', () => {
    expect(() => parseRecordArgs([], {})).toThrow(/^--out: required/);
  });

  it.each([
    [['--speed', '0'], '--speed'],
    [['--speed', 'fast'], '--speed'],
    [['--duration', '0'], '--duration'],
    [['--count', '1.5'], '--count'],
    [['--subject-prefix', 'a.>'], '--subject-prefix'],
    [['--rewrite-ts', 'yes'], '--rewrite-ts'],
    [['--in', '/nonexistent/capture.gz'], '--in'],
    [['--url', 'nats://'], '--url'],
  ])('feed:replay %j fails naming %s', (argv, name) => {
    const args = argv.includes('--in') ? argv : ['--in', SAMPLE, ...argv];
    expect(() => parseReplayArgs(args, {})).toThrow(UsageError);
    expect(() => parseReplayArgs(args, {})).toThrow(new RegExp(`^${name}: `));
  });
});

/** Runs a feeds CLI as its own process, the way `npm run feed:*` does. */
function runCli(script: string, args: string[]) {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, stderr: () => stderr, exited };
}

describe('the CLIs as processes', () => {
  it('feed:replay exits 2 naming a bad option and 1 naming the bad line of a capture', async () => {
    const bad = runCli('feeds/replay.ts', ['--url', nats.url, '--in', SAMPLE, '--speed', '0']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain('feed:replay: --speed: expected');

    const file = writeRawCapture([HEADER, rec(0), '{oops']);
    const corrupt = runCli('feeds/replay.ts', ['--url', nats.url, '--in', file]);
    expect(await corrupt.exited).toBe(1);
    expect(corrupt.stderr()).toContain(`feed:replay: ${file}: line 3: not valid JSON`);
  });

  it('feed:record stops on SIGINT with a complete gzip file and a one-line JSON summary', async () => {
    const out = tmpFile('cli');
    const p = runCli('feeds/record.ts', ['--url', nats.url, '--subject', 'cli.>', '--out', out, '--duration', '0']);
    try {
      // A request to a subject nobody listens on fails at once (no responders);
      // once the recorder has subscribed, it times out instead.
      const deadline = Date.now() + 15_000;
      for (;;) {
        const err = await sub.request('cli.probe', 'probe', { timeout: 200 }).then(
          () => null,
          (e: unknown) => e,
        );
        if (err instanceof TimeoutError) break;
        if (Date.now() > deadline) throw new Error(`feed:record did not subscribe: ${p.stderr()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (let i = 0; i < 20; i++) sub.publish(`cli.${i}`, JSON.stringify({ s: `S${i}`, bid: i }));
      await sub.flush();
      await new Promise((r) => setTimeout(r, 200));
      p.proc.kill('SIGINT');
      expect(await p.exited).toBe(0);
    } finally {
      p.proc.kill('SIGKILL');
    }
    const lines = p.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0]!) as { out: string; records: number; stoppedBy: string; codecs: Record<string, number> };
    expect(summary).toMatchObject({ out, stoppedBy: 'signal' });
    // The probe that timed out was recorded first (as bytes: not JSON), then
    // whatever of the 20 ticks had arrived before the signal (all of them, unless the machine is very slow).
    const records = await readAll(out);
    expect(records).toHaveLength(summary.records);
    expect(records[0]).toMatchObject({ subject: 'cli.probe', codec: 'bytes' });
    expect(records.slice(1).map((r) => r.data)).toEqual(Array.from({ length: summary.records - 1 }, (_, i) => ({ s: `S${i}`, bid: i })));
    expect(summary.codecs).toEqual({ msgpack: 0, json: summary.records - 1, bytes: 1 });
  }, 30_000);
});
