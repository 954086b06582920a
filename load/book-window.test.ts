import { decode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { EMBEDDED_FEED } from '../src/feed/embedded-source.js';
import { BookNormalizer } from '../src/feed/book-normalize.js';
import { Hub } from '../src/fanout/hub.js';
import { SendStatus } from '../src/fanout/outbox.js';
import { createLogger } from '../src/log.js';
import { encodeData } from '../src/protocol/codec.js';
import type { ClientSocket } from '../src/transport/connection.js';
import { BookSim, levelCount, sizeAt, tsOfSize, type Level } from './book-sim.js';
import { ClientBook, numberSize, packedSize } from './book-window.js';

type Msg = Record<string, unknown>;

/** A socket that decodes every frame with a standard MessagePack decoder. */
class DecodingSocket implements ClientSocket {
  readonly messages: Msg[] = [];
  sendFrame(frame: Uint8Array) {
    for (const m of decode(frame) as Msg[]) this.messages.push(m);
    return SendStatus.Sent;
  }
  bufferedAmount() {
    return 0;
  }
  close() {}
}

function request(o: object): ArrayBuffer {
  const b = new TextEncoder().encode(JSON.stringify(o));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

describe('sizes that carry a time', () => {
  it('round-trips a wall-clock time to the microsecond, across the 2^32 µs period', () => {
    const ts = 1_767_000_000_123.456;
    const s = sizeAt(42, ts);
    expect(Math.floor(s)).toBe(42);
    expect(tsOfSize(s, ts + 3.5)).toBeCloseTo(ts, 3);
    // Read 70 minutes later (the period is about 71.6): still the same time.
    expect(tsOfSize(s, ts + 70 * 60_000)).toBeCloseTo(ts, 3);
    // A receiver clock a little behind the sender's: no wrap.
    expect(tsOfSize(s, ts - 0.2)).toBeCloseTo(ts, 3);
    expect(tsOfSize(0, ts)).toBeNaN();
  });

  it('sizes numbers as msgpackr does', () => {
    for (const x of [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, -32, -33, -128, -129, -32768, -32769, 0.5, 100.01, sizeAt(7, Date.now())]) {
      expect(numberSize(x), String(x)).toBe(encodeData({ x }).byteLength - 3);
    }
  });
});

describe('a client window against the gateway, in process', () => {
  it('keeps windows at depths 1, 10 and 25 exact, checksums matching, and sizes its messages as encoded', () => {
    const config = loadConfig({ env: {}, overrides: { limits: { maxMessagesPerSec: 100_000 } } });
    const hub = new Hub(config, createLogger('silent', false));
    const norm = new BookNormalizer({ ...EMBEDDED_FEED, name: 'lob', kind: 'book' });
    const sim = new BookSim({ books: 3, levels: 40, seed: 5 });
    const depths = [1, 10, 25];
    const sockets = depths.map((depth) => {
      const sock = new DecodingSocket();
      hub.openSession(sock).onMessage(request({ op: 'sub', channel: 'book', symbols: sim.symbols, depth }), false);
      return sock;
    });
    const t0 = Date.now();
    for (let i = 0; i < sim.symbols.length; i++) hub.onBook(norm.fromObject('', sim.snapshot(i, t0)) as never, 'lob');
    let levels = 0;
    for (let k = 0; k < 3000; k++) {
      const m = sim.next(t0 + k);
      levels += levelCount(m);
      const ev = norm.fromObject('', m);
      expect(typeof ev).not.toBe('string');
      hub.onBook(ev as never, 'lob');
      if (k % 7 === 0) hub.scheduler.run();
    }
    hub.scheduler.run();
    expect(levels).toBeGreaterThan(6000);
    expect(hub.counters.messages.bupd).toBe(3 * 3000);

    depths.forEach((depth, c) => {
      const books = new Map(sim.symbols.map((s) => [s, new ClientBook(s, depth)]));
      let checked = 0;
      let latest = 0;
      for (const m of sockets[c]!.messages) {
        if (m['t'] !== 'book' && m['t'] !== 'bupd') continue;
        const b = books.get(m['s'] as string)!;
        const bids = m['bids'] as Level[] | undefined;
        const asks = m['asks'] as Level[] | undefined;
        if (m['t'] === 'book') b.replace(m['q'] as number, bids, asks);
        else {
          expect(m['q']).toBe(b.q + 1);
          expect(b.apply(m['q'] as number, bids, asks)).toBe(true);
        }
        expect(b.checksum()).toBe(m['cs']);
        // What the message took on the wire, and the whole window as one book message.
        expect(packedSize(m)).toBe(encodeData(m).byteLength);
        const whole = { t: 'book', s: b.symbol, q: b.q, bids: b.bids.prices.map((p, i) => [p, b.bids.sizes[i]]), asks: b.asks.prices.map((p, i) => [p, b.asks.sizes[i]]), cs: m['cs'] };
        expect(b.windowBytes(m['cs'] as number)).toBe(encodeData(whole).byteLength);
        for (const s of b.allSizes()) latest = Math.max(latest, tsOfSize(s, t0 + 5000));
        checked++;
      }
      expect(checked).toBe(3 + 3000);
      // Sizes carry the time of the message that set them: the newest is from the last messages.
      expect(latest).toBeGreaterThan(t0 + 2000);
      sim.symbols.forEach((s, i) => {
        const b = books.get(s)!;
        const w = sim.window(i, depth);
        expect(b.bids.prices).toEqual(w.bids.map((l) => l[0]));
        expect(b.asks.sizes).toEqual(w.asks.map((l) => l[1]));
      });
    });
  });

  it('never crosses a book and keeps every side near its size', () => {
    const sim = new BookSim({ books: 5, levels: 50, seed: 9 });
    for (let i = 0; i < 5; i++) sim.snapshot(i, 0);
    for (let k = 0; k < 20_000; k++) {
      const m = sim.next(k);
      for (const side of [m.bids ?? [], m.asks ?? []]) expect(new Set(side.map((l) => l[0])).size).toBe(side.length);
    }
    for (let i = 0; i < 5; i++) {
      const w = sim.window(i, 1000);
      expect(w.bids[0]![0]).toBeLessThan(w.asks[0]![0]);
      expect(w.bids.length).toBeGreaterThan(25);
      expect(w.asks.length).toBeLessThan(80);
    }
  });
});
