#!/usr/bin/env python3
"""Keep order books from a tickgate gateway, checking every checksum.

    /usr/bin/python3 book.py BTC-USD ETH-USD --depth 10 --url ws://127.0.0.1:8080/v1/stream

Uses the ``tickgate`` package (clients/python), which keeps each book the way
docs/PROTOCOL.md (Order books) describes: a `book` replaces the window; a
`bupd` sets the levels it names (size 0 removes one), then each side is cut
to the depth. After every message it recomputes the window's checksum (CRC32
over the top min(depth, 25) asks, then bids, as big-endian float64 pairs)
and compares it with `cs`. On a mismatch, or a `bupd` whose `q` is not the
previous one + 1, the book is dropped and fetched again, and that symbol's
`bupd`s are ignored until the fresh book arrives. A symbol that fails again
within 30 s is resubscribed after a growing delay (1 s, 2 s, ... up to 30 s).

Prints a line per message (best bid and ask), a JSON line per message with
the whole window (--json: {"t","s","q","bids","asks","stale"}, and
{"t":"stat","s","st"} when a book's status changes), or a ladder refreshed
twice a second (--ladder). On exit, stderr gets one line with the messages
checked, the checksum mismatches, the sequence breaks and the resubscribes.
"""
import asyncio
import json
import sys
import time

import _cli
import tickgate


def num(v):
    return f"{v:.10g}"


def line(b):
    stamp = time.strftime("%H:%M:%S")
    bid = f"{num(b.bids[0][0]):>12} x {num(b.bids[0][1]):<10}" if b.bids else " " * 25
    ask = f"{num(b.asks[0][0]):>12} x {num(b.asks[0][1]):<10}" if b.asks else " " * 25
    flag = "  STALE" if b.stale else ""
    return f"{stamp}  {b.symbol:<10} q={b.q:<8} bid {bid} ask {ask} levels {len(b.bids)}/{len(b.asks)}{flag}"


def ladder(client, symbols, rows):
    out = []
    for s in sorted(symbols):
        b = client.book(s)
        if b is None:
            continue
        st = client.status(s, "book") or "live"
        out.append(f"{s}  q={b.q}  depth {b.depth}" + ("" if st == "live" else f"  {st.upper()}"))
        out.append(f"{'bid size':>14} {'price':>14} {'ask size':<14}")
        for p, sz in reversed(b.asks[:rows]):
            out.append(f"{'':>14} {num(p):>14} {num(sz):<14}")
        for p, sz in b.bids[:rows]:
            out.append(f"{num(sz):>14} {num(p):>14}")
        out.append("")
    return "\x1b[H\x1b[2J" + "\n".join(l.rstrip() for l in out)


def summary(c):
    def n(count, word):
        return f"{count} {word}" + ("" if count == 1 else "es" if word.endswith("h") else "s")

    return (
        f"book.py: {n(c.book_checked, 'message')} checked, {n(c.book_mismatches, 'checksum mismatch')}, "
        f"{n(c.book_breaks, 'sequence break')}, {n(c.book_resubscribes, 'resubscribe')}"
    )


async def consume(client, args):
    printed = 0
    next_ladder = 0.0
    dirty = False
    it = client.updates().__aiter__()
    while True:
        try:
            # With --ladder, wake up to redraw even when nothing arrives.
            u = await asyncio.wait_for(it.__anext__(), 0.5 if args.ladder else None)
        except asyncio.TimeoutError:
            u = None
        except StopAsyncIteration:
            return
        if isinstance(u, tickgate.Book):
            if args.json:
                print(json.dumps({"t": "book" if u.snapshot else "bupd", "s": u.symbol, "q": u.q, "bids": u.bids, "asks": u.asks, "stale": u.stale}), flush=False)
            elif args.ladder:
                dirty = True
            else:
                print(line(u), flush=False)
            printed += 1
            if args.count and printed >= args.count:
                return
        elif isinstance(u, tickgate.BookResync):
            if u.reason == "checksum":
                print(f"{u.symbol}: checksum mismatch at q={u.q} (gateway {u.expected:#010x}, computed {u.computed:#010x}); resubscribing", file=sys.stderr)
            else:
                print(f"{u.symbol}: bupd q={u.q} after q={u.prev_q}; resubscribing", file=sys.stderr)
            if u.delay_s > 0:
                print(f"{u.symbol}: failed again; resubscribing in {u.delay_s:.0f} s", file=sys.stderr)
        else:
            if isinstance(u, tickgate.StatusChange):
                dirty = args.ladder
            _cli.print_event(u, args.json)
        if dirty and time.monotonic() >= next_ladder:
            print(ladder(client, args.symbols, args.rows), flush=True)
            dirty = False
            next_ladder = time.monotonic() + 0.5
        sys.stdout.flush()


def main():
    p = _cli.parser("Keep order books from a tickgate gateway, checking every checksum.", "symbols, e.g. BTC-USD ETH-USD")
    p.add_argument("--depth", type=int, default=10, choices=tickgate.BOOK_DEPTHS, help="levels per side: 1, 5, 10, 25, 50, 100, 500 or 1000 (default 10)")
    p.add_argument("--throttle", type=int, default=0, help="at most one message per book per this many ms")
    p.add_argument("--json", action="store_true", help='print {"t","s","q","bids","asks","stale"} JSON lines, the window after each message')
    p.add_argument("--ladder", action="store_true", help="show a ladder per book, refreshed twice a second")
    p.add_argument("--rows", type=int, default=5, help="levels per side in the ladder (default 5)")
    _cli.add_limits(p, "messages")
    args = _cli.parse(p)
    client = _cli.client(args)
    client.subscribe_book(args.symbols, depth=args.depth, throttle_ms=args.throttle)
    _cli.run("book.py", client, lambda: consume(client, args), args.duration, lambda: summary(client.counters))


if __name__ == "__main__":
    main()
