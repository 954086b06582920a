#!/usr/bin/env python3
"""Keep order books from a tickgate gateway, checking every checksum.

    /usr/bin/python3 book.py BTC-USD ETH-USD --depth 10 --url ws://127.0.0.1:8080/v1/stream

Subscribes to the `book` channel and keeps each book the way
docs/PROTOCOL.md (Order books) describes: a `book` replaces the window; a
`bupd` sets the levels it names (size 0 removes one), then each side is cut
to the depth. After every message it recomputes the window's checksum and
compares it with `cs`: CRC32 over the top min(depth, 25) asks, then bids,
each level's price and size packed as big-endian float64. On a mismatch, or
a `bupd` whose `q` is not the previous one + 1, the book is wrong: it drops
it, resubscribes (which brings a fresh `book`) and ignores that symbol's
`bupd`s until the fresh book arrives. A symbol that fails again within 30 s
is resubscribed after a growing delay (1 s, 2 s, ... up to 30 s), so a
persistent fault does not turn into a flood of requests.

Prints a line per message (best bid and ask), a JSON line per message with
the whole window (--json), or a ladder refreshed twice a second (--ladder).
On exit, stderr gets one line with the messages checked, the checksum
mismatches, the sequence breaks and the resubscribes. Reconnects after a
drop, waiting the `retryMs` of the server's `bye` when it sent one.

Needs only `websockets` and `msgpack` (Debian: python3-websockets,
python3-msgpack), and the standard `struct` and `zlib`.
"""
import argparse
import asyncio
import json
import random
import struct
import sys
import time
import zlib

import msgpack
import websockets

# The checksum covers at most this many levels per side, whatever the depth.
CHECKSUM_LEVELS = 25
# What Books.apply returns for a book that failed its check.
RESYNC = "resync"


def checksum(asks, bids, depth):
    """The protocol's `cs` of a window: exact float64 bytes, no decimal formatting to get wrong."""
    k = min(depth, CHECKSUM_LEVELS)
    return zlib.crc32(b"".join(struct.pack(">dd", p, s) for p, s in asks[:k] + bids[:k]))


def merge(side, changes, best_is_highest, depth):
    """Sets each (price, size) of `changes` in `side` (size 0 removes), sorted best first, cut to depth."""
    levels = dict(side)
    for p, s in changes:
        if s == 0:
            levels.pop(p, None)
        else:
            levels[p] = s
    return sorted(levels.items(), reverse=best_is_highest)[:depth]


class OrderBook:
    """One symbol's window: bids best (highest) first, asks best (lowest) first, as (price, size)."""

    def __init__(self, depth):
        self.depth = depth
        self.q = 0
        self.bids = []
        self.asks = []

    def replace(self, m):
        self.q = m["q"]
        # A `book` is sorted and cut already; sorting again costs little and trusts nothing.
        self.bids = merge((), m.get("bids", ()), True, self.depth)
        self.asks = merge((), m.get("asks", ()), False, self.depth)

    def update(self, m):
        self.q = m["q"]
        if "bids" in m:
            self.bids = merge(self.bids, m["bids"], True, self.depth)
        if "asks" in m:
            self.asks = merge(self.asks, m["asks"], False, self.depth)

    def checksum(self):
        return checksum(self.asks, self.bids, self.depth)


class Books:
    """The books of one connection, and what checking them found."""

    def __init__(self, depth):
        self.depth = depth
        self.held = {}  # symbol -> OrderBook; absent while waiting for a (fresh) `book`
        self.checked = 0
        self.mismatches = 0
        self.breaks = 0
        self.resubscribes = 0

    def apply(self, m):
        """Applies a `book` or `bupd`. Returns the book when it checks out, RESYNC when it
        does not (the book is dropped: resubscribe), or None for a `bupd` with no book to apply to."""
        s = m["s"]
        if m["t"] == "book":
            b = self.held[s] = OrderBook(self.depth)
            b.replace(m)
        else:
            b = self.held.get(s)
            if b is None:
                return None  # waiting for a fresh book: this bupd belongs to the wrong one
            if m["q"] != b.q + 1:
                self.breaks += 1
                print(f"{s}: bupd q={m['q']} after q={b.q}; resubscribing", file=sys.stderr)
                del self.held[s]
                return RESYNC
            b.update(m)
        self.checked += 1
        if "cs" in m:
            mine = b.checksum()
            if mine != m["cs"]:
                self.mismatches += 1
                print(f"{s}: checksum mismatch at q={b.q} (gateway {m['cs']:#010x}, computed {mine:#010x}); resubscribing", file=sys.stderr)
                del self.held[s]
                return RESYNC
        return b

    def summary(self):
        def n(count, word):
            return f"{count} {word}" + ("" if count == 1 else "es" if word.endswith("h") else "s")

        return f"book.py: {n(self.checked, 'message')} checked, {n(self.mismatches, 'checksum mismatch')}, {n(self.breaks, 'sequence break')}, {n(self.resubscribes, 'resubscribe')}"


class Resyncs:
    """When to resubscribe a book that failed its check: at once, unless it failed
    within the last 30 s too; then after a delay that doubles up to 30 s."""

    QUIET_S = 30.0
    MAX_DELAY_S = 30.0

    def __init__(self):
        self.last = {}  # symbol -> (monotonic time of its last failure, delay used then)
        self.pending = {}  # symbol -> task sending a delayed resubscribe

    def delay(self, s, now):
        at, d = self.last.get(s, (None, 0.0))
        d = 0.0 if at is None or now - at > self.QUIET_S else min(max(1.0, 2 * d), self.MAX_DELAY_S)
        self.last[s] = (now, d)
        return d

    def cancel(self):
        for task in self.pending.values():
            task.cancel()
        self.pending.clear()


async def send_later(ws, delay, req, resyncs, s):
    try:
        await asyncio.sleep(delay)
        await ws.send(req)
    except websockets.ConnectionClosed:
        pass  # the next connection subscribes afresh
    finally:
        resyncs.pending.pop(s, None)


def num(v):
    return f"{v:.10g}"


def line(s, b):
    stamp = time.strftime("%H:%M:%S")
    bid = f"{num(b.bids[0][0]):>12} x {num(b.bids[0][1]):<10}" if b.bids else " " * 25
    ask = f"{num(b.asks[0][0]):>12} x {num(b.asks[0][1]):<10}" if b.asks else " " * 25
    return f"{stamp}  {s:<10} q={b.q:<8} bid {bid} ask {ask} levels {len(b.bids)}/{len(b.asks)}"


def ladder(books, rows, status):
    out = []
    for s, b in sorted(books.held.items()):
        st = status.get(s, "live")
        out.append(f"{s}  q={b.q}  depth {b.depth}" + ("" if st == "live" else f"  {st.upper()}"))
        out.append(f"{'bid size':>14} {'price':>14} {'ask size':<14}")
        for p, sz in reversed(b.asks[:rows]):
            out.append(f"{'':>14} {num(p):>14} {num(sz):<14}")
        for p, sz in b.bids[:rows]:
            out.append(f"{num(sz):>14} {num(p):>14}")
        out.append("")
    return "\x1b[H\x1b[2J" + "\n".join(l.rstrip() for l in out)


def sub_request(args, symbols, depth, req_id):
    req = {"op": "sub", "id": req_id, "channel": "book", "symbols": symbols, "depth": depth}
    if args.throttle:
        req["throttleMs"] = args.throttle
    return json.dumps(req)


async def watch(args, books):
    printed = 0
    ever_connected = False
    retry_s = 0.0
    deadline = time.monotonic() + args.duration if args.duration else None
    next_ladder = 0.0
    ladder_dirty = False
    status = {}
    resyncs = Resyncs()

    while True:
        try:
            async with websockets.connect(args.url, max_size=None) as ws:
                ever_connected = True
                books.held.clear()  # q restarts with every connection: start from fresh books
                status.clear()
                await ws.send(sub_request(args, args.symbols, books.depth, "book"))
                hb_s = 5.0
                last_frame = time.monotonic()
                while True:
                    now = time.monotonic()
                    if args.ladder and ladder_dirty and now >= next_ladder:
                        print(ladder(books, args.rows, status), flush=True)
                        ladder_dirty = False
                        next_ladder = now + 0.5
                    # No frame for 3 heartbeats means the connection is dead.
                    wait = last_frame + 3 * hb_s - now
                    if wait <= 0:
                        raise ConnectionError(f"no frame for {3 * hb_s:.0f} s")
                    if ladder_dirty:
                        wait = min(wait, next_ladder - now)
                    if deadline is not None:
                        wait = min(wait, deadline - now)
                        if wait <= 0:
                            return 0
                    try:
                        frame = await asyncio.wait_for(ws.recv(), wait)
                    except asyncio.TimeoutError:
                        continue  # the ladder is due, or the deadline or the heartbeat check
                    last_frame = time.monotonic()
                    for m in msgpack.unpackb(frame, raw=False):
                        t = m.get("t")
                        if t == "hello":
                            hb_s = m["hbMs"] / 1000
                        elif t in ("book", "bupd"):
                            b = books.apply(m)
                            if b is None:
                                continue
                            if b is RESYNC:
                                s = m["s"]
                                if s in resyncs.pending:
                                    continue  # a resubscribe is on its way already
                                books.resubscribes += 1
                                req = sub_request(args, [s], books.depth, "resync")
                                delay = resyncs.delay(s, time.monotonic())
                                if delay == 0:
                                    await ws.send(req)
                                else:
                                    print(f"{s}: failed again; resubscribing in {delay:.0f} s", file=sys.stderr)
                                    resyncs.pending[s] = asyncio.create_task(send_later(ws, delay, req, resyncs, s))
                                continue
                            if args.json:
                                print(json.dumps({"t": t, "s": m["s"], "q": b.q, "bids": b.bids, "asks": b.asks}), flush=False)
                            elif args.ladder:
                                ladder_dirty = True
                            else:
                                print(line(m["s"], b))
                            printed += 1
                            if args.count and printed >= args.count:
                                sys.stdout.flush()
                                return 0
                        elif t == "ack" and m.get("channel") == "book":
                            for e in m.get("err", ()):
                                print(f"{e['s']}: {e['code']}: {e['msg']}", file=sys.stderr)
                        elif t == "stat" and m.get("ch") == "book":
                            status[m["s"]] = m["st"]
                            ladder_dirty = args.ladder
                            if m["st"] != "live":
                                print(f"{m['s']}: {m['st']}", file=sys.stderr)
                        elif t == "err":
                            print(f"error: {m['code']}: {m['msg']}", file=sys.stderr)
                        elif t == "bye":
                            retry_s = m.get("retryMs", 0) / 1000
                            print(f"server says bye: {m['code']}: {m['reason']}", file=sys.stderr)
                    sys.stdout.flush()
        except (OSError, ConnectionError, websockets.ConnectionClosed, websockets.InvalidHandshake) as e:
            resyncs.cancel()
            if not ever_connected:
                print(f"book.py: cannot connect to {args.url}: {e}", file=sys.stderr)
                return 1
            # Wait what the bye asked for (or a second), plus jitter so clients do not return together.
            delay = max(retry_s, 1.0) * (1 + random.random() / 2)
            retry_s = 0.0
            print(f"connection lost ({e}); reconnecting in {delay:.1f} s", file=sys.stderr)
            await asyncio.sleep(delay)


def main():
    p = argparse.ArgumentParser(description="Keep order books from a tickgate gateway, checking every checksum.")
    p.add_argument("symbols", nargs="+", help="symbols, e.g. BTC-USD ETH-USD")
    p.add_argument("--url", default="ws://127.0.0.1:8080/v1/stream")
    p.add_argument("--depth", type=int, default=10, help="levels per side: 1, 5, 10, 25, 50, 100, 500 or 1000 (default 10)")
    p.add_argument("--throttle", type=int, default=0, help="at most one message per book per this many ms")
    p.add_argument("--json", action="store_true", help='print {"t","s","q","bids","asks"} JSON lines, the window after each message')
    p.add_argument("--ladder", action="store_true", help="show a ladder per book, refreshed twice a second")
    p.add_argument("--rows", type=int, default=5, help="levels per side in the ladder (default 5)")
    p.add_argument("--count", type=int, default=0, help="stop after this many messages")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    args = p.parse_args()
    books = Books(args.depth)
    code = 0
    try:
        code = asyncio.run(watch(args, books))
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    if code != 1:
        print(books.summary(), file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
