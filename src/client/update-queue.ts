/**
 * The buffer behind `client.updates()`. While the reader keeps up it holds
 * nothing: each update goes straight to the waiting `next()`. When the
 * reader falls behind, updates for a symbol already waiting are merged into
 * the waiting one (newest `q`, union of changed fields, `n` counts the
 * merged messages), so memory stays bounded by the number of subscribed
 * symbols however fast the stream and however slow the reader: the same
 * choice the gateway makes for a slow client.
 */
import type { ConfiguredFields, SymbolState, Update } from './types.js';

const DONE: IteratorReturnResult<undefined> = { value: undefined, done: true };

/** `X`: the client's configured fields (types only; values are merged as they are, numbers or strings). */
export class UpdateQueue<X extends ConfiguredFields<X> = {}> implements AsyncIterableIterator<Update<X>> {
  /** Waiting updates, one per symbol, in the order their symbol first fell behind. */
  private readonly pending = new Map<string, Update<X>>();
  private waiter: ((r: IteratorResult<Update<X>>) => void) | null = null;
  private ended = false;

  constructor(private readonly onEnd: (q: UpdateQueue<X>) => void) {}

  /** Hands one update to the reader, or merges it into the symbol's waiting one. */
  push(u: Update<X>): void {
    if (this.ended) return;
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      w({ value: u, done: false });
      return;
    }
    const held = this.pending.get(u.symbol);
    if (held === undefined || u.snapshot) {
      // A snapshot replaces whatever was waiting; Map.set keeps the key's position.
      this.pending.set(u.symbol, u);
      return;
    }
    // The rare, lagging path: a fresh object, since `held.changed` may be
    // the decoded message the caller's listeners also saw.
    const changed: SymbolState = { ...(held.changed as SymbolState) };
    const next = u.changed as SymbolState;
    for (const k in next) changed[k] = next[k]!;
    const merged: Update<X> = {
      symbol: u.symbol,
      state: u.state,
      changed: changed as SymbolState<X>,
      q: u.q,
      snapshot: held.snapshot,
      n: (held.n ?? 1) + (u.n ?? 1),
    };
    this.pending.set(u.symbol, merged);
  }

  next(): Promise<IteratorResult<Update<X>>> {
    for (const [symbol, u] of this.pending) {
      this.pending.delete(symbol);
      return Promise.resolve({ value: u, done: false });
    }
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Called by `break` in a `for await` loop: stop receiving. */
  return(): Promise<IteratorResult<Update<X>>> {
    this.pending.clear();
    this.end();
    return Promise.resolve(DONE);
  }

  /** Ends the iteration: the reader gets what is waiting, then `done`. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(this);
    const w = this.waiter;
    this.waiter = null;
    w?.(DONE);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
