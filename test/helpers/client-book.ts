/**
 * A book as a client keeps it, by the protocol's rules (docs/PROTOCOL.md,
 * Order books): `book` replaces the window, `bupd` sets the levels it names
 * (size 0 removes one) and the client cuts each side to its depth; every
 * checksum is recomputed.
 */
import { crc32 } from 'node:zlib';
import type { Msg } from './ws-client.js';

/** One level: [price, size]. */
export type Level = [number, number];

/** The checksum of a window: CRC32 over the top min(depth, 25) asks then bids, price and size as big-endian float64. */
export function bookChecksum(asks: Level[], bids: Level[], depth: number): number {
  const k = Math.min(depth, 25);
  const levels = [...asks.slice(0, k), ...bids.slice(0, k)];
  const buf = Buffer.alloc(levels.length * 16);
  levels.forEach(([p, s], i) => {
    buf.writeDoubleBE(p, 16 * i);
    buf.writeDoubleBE(s, 16 * i + 8);
  });
  return crc32(buf) >>> 0;
}

/**
 * Folds the `book` and `bupd` messages of one symbol at one depth; returns
 * the window (best first), its `q`, the number of book messages applied, and
 * what broke the rules: a `bupd` whose `q` is not the previous + 1, or a
 * checksum mismatch.
 */
export function clientBook(messages: Msg[], symbol: string, depth: number) {
  let bids = new Map<number, number>();
  let asks = new Map<number, number>();
  let q = 0;
  let applied = 0;
  const problems: string[] = [];
  const sorted = () => ({
    bids: [...bids].sort((a, b) => b[0] - a[0]),
    asks: [...asks].sort((a, b) => a[0] - b[0]),
  });
  for (const m of messages) {
    if (m['s'] !== symbol) continue;
    if (m.t === 'book') {
      bids = new Map(m['bids'] as Level[]);
      asks = new Map(m['asks'] as Level[]);
    } else if (m.t === 'bupd') {
      if (m['q'] !== q + 1) problems.push(`bupd q ${String(m['q'])} after ${q}`);
      for (const [p, s] of (m['bids'] as Level[] | undefined) ?? []) s === 0 ? bids.delete(p) : bids.set(p, s);
      for (const [p, s] of (m['asks'] as Level[] | undefined) ?? []) s === 0 ? asks.delete(p) : asks.set(p, s);
    } else continue;
    applied++;
    q = m['q'] as number;
    const w = sorted();
    bids = new Map(w.bids.slice(0, depth));
    asks = new Map(w.asks.slice(0, depth));
    if (bookChecksum(w.asks.slice(0, depth), w.bids.slice(0, depth), depth) !== m['cs']) problems.push(`cs mismatch at q ${q}`);
  }
  return { ...sorted(), q, applied, problems };
}
