#!/usr/bin/env python3
"""Watch live prices from a tickgate gateway.

    /usr/bin/python3 watch.py AAPL EUR/USD BTC/USDT --url ws://127.0.0.1:8080/v1/stream

Keeps each symbol's merged state the way docs/PROTOCOL.md describes: a
`snap` replaces it, an `upd` merges its fields into it, and an `upd` whose
`q` is not newer than the one held is ignored. Prints a line per update,
a JSON line per update (--json), or a table refreshed twice a second
(--table). Reconnects after a drop, waiting the `retryMs` of the server's
`bye` when it sent one.

Needs only `websockets` and `msgpack` (Debian: python3-websockets,
python3-msgpack).
"""
import argparse
import asyncio
import json
import random
import sys
import time

import msgpack
import websockets


class Book:
    """Merged state per symbol: symbol -> [q, {field: value}]."""

    def __init__(self):
        self.held = {}

    def apply(self, m):
        """Applies a snap or upd; returns True if the state changed."""
        s = m["s"]
        if m["t"] == "snap":
            self.held[s] = [m["q"], dict(m["d"])]
            return True
        h = self.held.get(s)
        if h is None or m["q"] <= h[0]:
            return False  # old (or before its snapshot): ignore
        h[0] = m["q"]
        h[1].update(m["d"])
        return True


def num(v, width=12):
    if v is None:
        return " " * width
    return f"{v:>{width},.2f}" if abs(v) >= 10 else f"{v:>{width}.5f}"


def line(s, q, st):
    stamp = time.strftime("%H:%M:%S")
    return f"{stamp}  {s:<10} q={q:<8} bid {num(st.get('bid'))}  ask {num(st.get('ask'))}  last {num(st.get('last'))}"


def table(book):
    rows = [f"{'symbol':<10} {'bid':>12} {'ask':>12} {'last':>12} {'chg %':>8} {'volume':>14}"]
    for s, (q, st) in sorted(book.held.items()):
        last, ref = st.get("last"), st.get("close", st.get("open"))
        chg = f"{(last - ref) / ref * 100:+8.2f}" if last is not None and ref else " " * 8
        vol = f"{st['volume']:>14,.0f}" if "volume" in st else " " * 14
        rows.append(f"{s:<10} {num(st.get('bid'))} {num(st.get('ask'))} {num(st.get('last'))} {chg} {vol}")
    return "\x1b[H\x1b[2J" + "\n".join(rows)


async def watch(args):
    book = Book()
    printed = 0
    ever_connected = False
    retry_s = 0.0
    deadline = time.monotonic() + args.duration if args.duration else None
    next_table = 0.0

    while True:
        try:
            async with websockets.connect(args.url, max_size=None) as ws:
                ever_connected = True
                book.held.clear()  # q restarts with every connection: start from fresh snaps
                await ws.send(json.dumps({"op": "sub", "symbols": args.symbols}))
                hb_s = 5.0
                while True:
                    # No frame for 3 heartbeats means the connection is dead.
                    wait = 3 * hb_s
                    if deadline is not None:
                        wait = min(wait, deadline - time.monotonic())
                        if wait <= 0:
                            return 0
                    try:
                        frame = await asyncio.wait_for(ws.recv(), wait)
                    except asyncio.TimeoutError:
                        if deadline is not None and time.monotonic() >= deadline:
                            return 0
                        raise ConnectionError(f"no frame for {3 * hb_s:.0f} s")
                    for m in msgpack.unpackb(frame, raw=False):
                        t = m.get("t")
                        if t == "hello":
                            hb_s = m["hbMs"] / 1000
                        elif t in ("snap", "upd"):
                            if not book.apply(m):
                                continue
                            q, st = book.held[m["s"]]
                            if args.json:
                                print(json.dumps({"s": m["s"], "q": q, "state": st}), flush=False)
                            elif not args.table:
                                print(line(m["s"], q, st))
                            printed += 1
                            if args.count and printed >= args.count:
                                sys.stdout.flush()
                                return 0
                        elif t == "stat" and m["st"] != "live":
                            print(f"{m['s']}: {m['st']}", file=sys.stderr)
                        elif t == "err":
                            print(f"error: {m['code']}: {m['msg']}", file=sys.stderr)
                        elif t == "bye":
                            retry_s = m.get("retryMs", 0) / 1000
                            print(f"server says bye: {m['code']}: {m['reason']}", file=sys.stderr)
                    if args.table and time.monotonic() >= next_table:
                        print(table(book), flush=True)
                        next_table = time.monotonic() + 0.5
                    sys.stdout.flush()
        except (OSError, ConnectionError, websockets.ConnectionClosed, websockets.InvalidHandshake) as e:
            if not ever_connected:
                print(f"watch.py: cannot connect to {args.url}: {e}", file=sys.stderr)
                return 1
            # Wait what the bye asked for (or a second), plus jitter so clients do not return together.
            delay = max(retry_s, 1.0) * (1 + random.random() / 2)
            retry_s = 0.0
            print(f"connection lost ({e}); reconnecting in {delay:.1f} s", file=sys.stderr)
            await asyncio.sleep(delay)


def main():
    p = argparse.ArgumentParser(description="Watch live prices from a tickgate gateway.")
    p.add_argument("symbols", nargs="+", help="symbols, e.g. AAPL EUR/USD BTC/USDT")
    p.add_argument("--url", default="ws://127.0.0.1:8080/v1/stream")
    p.add_argument("--json", action="store_true", help='print {"s","q","state"} JSON lines')
    p.add_argument("--table", action="store_true", help="show a table, refreshed twice a second")
    p.add_argument("--count", type=int, default=0, help="stop after this many updates")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    args = p.parse_args()
    try:
        sys.exit(asyncio.run(watch(args)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
