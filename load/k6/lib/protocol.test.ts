import { describe, it, expect } from 'vitest';
import { encode } from '@msgpack/msgpack';
import { SymbolBook, latencyMs, parseFrame, pickSymbols, pingRequest, streamUrl, subRequest, symbolsRequest, withoutQuery } from './protocol.ts';

describe('parseFrame', () => {
  it('returns the known messages of a frame in order and skips unknown types', () => {
    const frame = encode([
      { t: 'ack', id: 's1', op: 'sub', ok: ['AAPL'], err: [] },
      { t: 'snap', s: 'AAPL', q: 41, d: { bid: 189.49, ts: 1718000000123.5 } },
      { t: 'news', s: 'AAPL', text: 'from a newer server' },
      { t: 'upd', s: 'AAPL', q: 43, d: { bid: 189.5 }, n: 2 },
    ]);
    const r = parseFrame(frame);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.messages.map((m) => m.t)).toEqual(['ack', 'snap', 'upd']);
  });

  it('reports frames that break the protocol instead of throwing', () => {
    const bad = [
      new Uint8Array([0xc1]),
      encode({ t: 'hb' }),
      encode([1]),
      encode([{ type: 'hb' }]),
      encode([{ t: 'upd', s: 'AAPL', q: '1', d: {} }]),
      encode([{ t: 'upd', s: 'AAPL', q: 1, d: { bid: '1.5' } }]),
      encode([{ t: 'snap', s: 'AAPL', q: 1 }]),
      encode([{ t: 'upd', s: 'AAPL', q: 1, d: {}, n: 'x' }]),
    ];
    for (const b of bad) expect(parseFrame(b).ok).toBe(false);
  });
});

describe('SymbolBook', () => {
  it('replaces on snap, merges upd field by field and ignores an upd whose q does not increase', () => {
    const book = new SymbolBook();
    expect(book.apply({ t: 'snap', s: 'A', q: 5, d: { bid: 1, ask: 2 } })).toBe('applied');
    expect(book.apply({ t: 'upd', s: 'A', q: 7, d: { bid: 1.5 } })).toBe('applied');
    expect(book.state('A')).toEqual({ bid: 1.5, ask: 2 });
    expect(book.apply({ t: 'upd', s: 'A', q: 7, d: { bid: 9 } })).toBe('stale');
    expect(book.apply({ t: 'upd', s: 'A', q: 6, d: { bid: 9 } })).toBe('stale');
    expect(book.state('A')).toEqual({ bid: 1.5, ask: 2 });
    expect(book.q('A')).toBe(7);
    // A repeated sub's snap may carry the held q; an older one is stale.
    expect(book.apply({ t: 'snap', s: 'A', q: 7, d: { last: 3 } })).toBe('applied');
    expect(book.state('A')).toEqual({ last: 3 });
    expect(book.apply({ t: 'snap', s: 'A', q: 6, d: { last: 4 } })).toBe('stale');
  });

  it('calls an upd before any snap an orphan, unless the subscription asked for no snapshots', () => {
    expect(new SymbolBook().apply({ t: 'upd', s: 'A', q: 1, d: { bid: 1 } })).toBe('orphan');
    const noSnap = new SymbolBook(false);
    expect(noSnap.apply({ t: 'upd', s: 'A', q: 1, d: { bid: 1 } })).toBe('applied');
    expect(noSnap.state('A')).toEqual({ bid: 1 });
  });

  it('does not share state with the message it came from', () => {
    const book = new SymbolBook();
    const d = { bid: 1 };
    book.apply({ t: 'snap', s: 'A', q: 1, d });
    book.apply({ t: 'upd', s: 'A', q: 2, d: { bid: 2 } });
    expect(d).toEqual({ bid: 1 });
    book.drop('A');
    expect(book.size).toBe(0);
  });
});

describe('latencyMs', () => {
  it('is receipt time minus ts, 0 for a ts in the future, undefined without ts', () => {
    expect(latencyMs({ ts: 1000.5 }, 1012)).toBe(11.5);
    expect(latencyMs({ ts: 2000 }, 1000)).toBe(0);
    expect(latencyMs({ bid: 1 }, 1000)).toBeUndefined();
  });
});

describe('pickSymbols', () => {
  const universe = Array.from({ length: 50 }, (_, i) => `S${i}`);

  it('picks the same distinct symbols for the same seed', () => {
    const a = pickSymbols(universe, 10, 7);
    expect(pickSymbols(universe, 10, 7)).toEqual(a);
    expect(new Set(a).size).toBe(10);
    expect(a.every((s) => universe.includes(s))).toBe(true);
    expect(pickSymbols(universe, 10, 8)).not.toEqual(a);
  });

  it('returns the whole universe when asked for more', () => {
    expect(pickSymbols(universe, 80, 1).sort()).toEqual([...universe].sort());
    expect(pickSymbols([], 3, 1)).toEqual([]);
  });
});

describe('requests and URLs', () => {
  it('writes JSON requests with only the keys that differ from the defaults', () => {
    expect(JSON.parse(subRequest('s', ['AAPL']))).toEqual({ op: 'sub', id: 's', symbols: ['AAPL'] });
    expect(JSON.parse(subRequest(1, ['A'], 250, false))).toEqual({ op: 'sub', id: 1, symbols: ['A'], throttleMs: 250, snapshot: false });
    expect(JSON.parse(symbolsRequest('l', 100))).toEqual({ op: 'symbols', id: 'l', limit: 100 });
    expect(JSON.parse(symbolsRequest('l', 100, 'EUR'))).toEqual({ op: 'symbols', id: 'l', prefix: 'EUR', limit: 100 });
    expect(JSON.parse(pingRequest(3, 1718000001000))).toEqual({ op: 'ping', id: 3, ts: 1718000001000 });
  });

  it('adds the token as a query parameter and can strip it again for messages', () => {
    expect(streamUrl('ws://h/v1/stream')).toBe('ws://h/v1/stream');
    expect(streamUrl('ws://h/v1/stream', 'a b&c')).toBe('ws://h/v1/stream?token=a%20b%26c');
    expect(streamUrl('ws://h/v1/stream?x=1', 't')).toBe('ws://h/v1/stream?x=1&token=t');
    expect(withoutQuery('ws://h/v1/stream?token=secret')).toBe('ws://h/v1/stream');
  });
});
