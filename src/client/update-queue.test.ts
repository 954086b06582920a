import { expect, it } from 'vitest';
import type { Update } from './types.js';
import { UpdateQueue } from './update-queue.js';

const upd = (symbol: string, q: number, changed: Record<string, number>, snapshot = false): Update => ({ symbol, q, changed, state: changed, snapshot });

it('hands updates straight to a waiting reader', async () => {
  const q = new UpdateQueue(() => {});
  const next = q.next();
  q.push(upd('A', 1, { bid: 1 }));
  expect((await next).value).toMatchObject({ symbol: 'A', q: 1 });
});

it('merges a lagging reader\'s updates per symbol, bounded by the number of symbols', async () => {
  const q = new UpdateQueue(() => {});
  q.push(upd('A', 1, { bid: 1, ask: 2 }, true));
  q.push(upd('B', 7, { bid: 10 }));
  q.push(upd('A', 2, { bid: 1.5 }));
  q.push(upd('B', 9, { ask: 11 }, false));
  q.push(upd('A', 3, { last: 1.6 }));
  const a = (await q.next()).value as Update;
  expect(a).toMatchObject({ symbol: 'A', q: 3, snapshot: true, changed: { bid: 1.5, ask: 2, last: 1.6 }, n: 3 });
  const b = (await q.next()).value as Update;
  expect(b).toMatchObject({ symbol: 'B', q: 9, snapshot: false, changed: { bid: 10, ask: 11 }, n: 2 });
  // A snapshot replaces what was waiting.
  q.push(upd('C', 4, { bid: 1 }));
  q.push(upd('C', 5, { bid: 2, ask: 3 }, true));
  expect((await q.next()).value).toEqual(upd('C', 5, { bid: 2, ask: 3 }, true));
});

it('ends: pending first, then done; break stops it at once', async () => {
  let ended = 0;
  const q = new UpdateQueue(() => ended++);
  q.push(upd('A', 1, { bid: 1 }));
  q.end();
  expect((await q.next()).done).toBe(false);
  expect((await q.next()).done).toBe(true);
  expect(ended).toBe(1);

  const r = new UpdateQueue(() => {});
  const waiting = r.next();
  await r.return();
  expect((await waiting).done).toBe(true);
  r.push(upd('A', 2, { bid: 1 }));
  expect((await r.next()).done).toBe(true);
});
