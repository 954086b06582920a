import { describe, it, expect } from 'vitest';
import { NatsLines, SyntheticBook, frameText, isSubjectToken, natsConnect, natsPub, stampLatencyMs, utf8Length } from './book-feed.ts';
import { prng } from './protocol.ts';

describe('SyntheticBook', () => {
  it('keeps its stamp as the best bid, restamped by every change', () => {
    const book = new SyntheticBook(20, prng(1));
    const snap = book.snapshot(1_718_000_000_000);
    expect(snap).toMatchObject({ snapshot: true, seq: 1, ts: 1_718_000_000_000 });
    expect(snap.bids[0]).toEqual([100, 1_718_000_000_000]);
    for (let i = 1; i <= 500; i++) {
      const stamp = 1_718_000_000_000 + i;
      const m = book.change(stamp);
      expect(m.seq).toBe(i + 1);
      expect(m.bids[0]).toEqual([100, stamp]);
      expect(m.bids.length + m.asks.length).toBeGreaterThan(1);
      const w = book.window(5);
      expect(w.bids[0]).toEqual([100, stamp]);
      // Every other bid is below the stamp, every ask above it.
      expect(w.bids.slice(1).every(([p]) => p < 100)).toBe(true);
      expect(w.asks.every(([p]) => p > 100)).toBe(true);
    }
  });

  it('changes levels that a change message names, nothing else, and names each price once', () => {
    const book = new SyntheticBook(30, prng(7));
    book.snapshot(1);
    const shadow = { bids: new Map(book.bids), asks: new Map(book.asks) };
    let removed = 0;
    for (let i = 0; i < 300; i++) {
      const m = book.change(2 + i);
      for (const side of ['bids', 'asks'] as const) {
        expect(new Set(m[side].map(([p]) => p)).size).toBe(m[side].length);
        for (const [p, s] of m[side]) {
          if (s === 0) removed++;
          s === 0 ? shadow[side].delete(p) : shadow[side].set(p, s);
        }
      }
      expect(book.bids).toEqual(shadow.bids);
      expect(book.asks).toEqual(shadow.asks);
    }
    expect(removed).toBeGreaterThan(50);
    // At most the stamp and 30 slots per side; prices are whole ticks.
    expect(book.bids.size).toBeLessThanOrEqual(31);
    expect(book.asks.size).toBeLessThanOrEqual(30);
    for (const p of [...book.bids.keys(), ...book.asks.keys()]) expect(Math.round(p * 100) / 100).toBe(p);
  });

  it('is the same for the same seed', () => {
    const run = (seed: number) => {
      const b = new SyntheticBook(10, prng(seed));
      return [b.snapshot(1), b.change(2), b.change(3)];
    };
    expect(run(5)).toEqual(run(5));
    expect(run(5)).not.toEqual(run(6));
  });
});

describe('stampLatencyMs', () => {
  it('is receipt time minus the best bid size, 0 for a stamp ahead, undefined without bids', () => {
    expect(stampLatencyMs([[100, 1000], [99, 5]], 1012.5)).toBe(12.5);
    expect(stampLatencyMs([[100, 2000]], 1000)).toBe(0);
    expect(stampLatencyMs([], 1000)).toBeUndefined();
  });
});

describe('NATS protocol over WebSocket', () => {
  it('writes CONNECT with a PING, and PUB with the payload length in UTF-8 bytes', () => {
    const c = natsConnect('k6-book-feed');
    expect(c.endsWith('\r\nPING\r\n')).toBe(true);
    expect(JSON.parse(c.slice('CONNECT '.length, c.indexOf('\r\n')))).toMatchObject({ verbose: false, pedantic: false, echo: false, name: 'k6-book-feed' });
    expect(JSON.parse(c.slice(8, c.indexOf('\r\n')))).not.toHaveProperty('auth_token');
    expect(JSON.parse(natsConnect('x', { token: 't' }).split('\r\n')[0]!.slice(8))).toMatchObject({ auth_token: 't' });
    expect(JSON.parse(natsConnect('x', { user: 'u', pass: 'p' }).split('\r\n')[0]!.slice(8))).toMatchObject({ user: 'u', pass: 'p' });
    expect(natsPub('book.A', '{"seq":1}')).toBe('PUB book.A 9\r\n{"seq":1}\r\n');
    expect(natsPub('book.A', 'é€😀')).toBe('PUB book.A 9\r\né€😀\r\n');
  });

  it('counts UTF-8 bytes as an encoder does', () => {
    // A lone surrogate is encoded as U+FFFD, 3 bytes.
    const cases: Array<[string, number]> = [['', 0], ['abc', 3], ['é', 2], ['€', 3], ['😀', 4], ['a😀b€é', 11], ['\ud800x', 4]];
    for (const [s, n] of cases) expect(utf8Length(s), s).toBe(n);
  });

  it('reads the server lines across frames: PING, PONG, INFO, +OK and -ERR', () => {
    const r = new NatsLines();
    expect(r.push('INFO {"server_id":"x"}\r\nPI')).toEqual([{ kind: 'info' }]);
    expect(r.push('NG\r\n')).toEqual([{ kind: 'ping' }]);
    expect(r.push("PONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\nWHAT\r\n")).toEqual([
      { kind: 'pong' },
      { kind: 'ok' },
      { kind: 'error', text: "'Authorization Violation'" },
      { kind: 'other', line: 'WHAT' },
    ]);
    expect(frameText(Uint8Array.from('PING\r\n', (c) => c.charCodeAt(0)).buffer)).toBe('PING\r\n');
  });

  it('accepts only symbols that make one subject token', () => {
    for (const s of ['BTC-USD', 'EUR/USD', 'AAPL']) expect(isSubjectToken(s), s).toBe(true);
    for (const s of ['', 'a.b', 'a b', '*', 'x>', 'a\tb']) expect(isSubjectToken(s), s).toBe(false);
  });
});
