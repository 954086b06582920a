#!/usr/bin/env python3
"""Print trades from a tickgate gateway, resuming after every reconnect.

    /usr/bin/python3 trades.py AAPL MSFT --url ws://gw-a:8080/v1/stream --url ws://gw-b:8080/v1/stream

Subscribes to the `trade` channel (docs/PROTOCOL.md, Trade prints) and keeps
each symbol's position {e, q}: the epoch from the `ack`'s `pos` and the `q` of
the last trade it printed. After a drop it reconnects, to the next --url in
turn (a gateway that went away is probably still away), after a backoff with
full jitter: a random wait up to 1 s after a good session, doubling per
failed attempt up to 30 s, and at least the `retryMs` of the server's `bye`.
It then resubscribes with `since` set to the positions it holds, so that it
gets every trade after them, in order, nothing twice.

What cannot be recovered is said, on stderr and, with --json, as a line of
its own:

- `rec: false` in the `ack` (another epoch, e.g. a gateway restarted without
  a stream, or a position older than the history holds): trades after the
  position held may be lost; printing goes on with live trades, from the
  `ack`'s position.
- `gap {s, from, to}`: the trades with from < q <= to were lost (they left
  the history while this client was behind); the trades after `to` follow.

A trade at or below the position held (which the protocol rules out) is
skipped and counted. On exit, stderr gets one line with the trades printed,
the duplicates skipped, the gaps, the resumes and how many were recovered.

Prints a line per trade, or a JSON line per trade (--json). Needs only
`websockets` and `msgpack` (Debian: python3-websockets, python3-msgpack).
"""
import argparse
import asyncio
import json
import random
import sys
import time

import msgpack
import websockets

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0


class Tape:
    """Positions per symbol, and what resuming found."""

    def __init__(self):
        self.pos = {}  # symbol -> {"e": epoch, "q": q of the last trade printed (or the acked q)}
        self.epochs = {}  # symbol -> epoch of a subscription with `last` whose first trade has not come yet
        self.printed = 0
        self.duplicates = 0
        self.gaps = 0
        self.lost = 0  # positions named by gaps (an upper bound on trades lost: positions may skip)
        self.resumes = 0
        self.recovered = 0

    def request(self, symbols, last, throttle, req_id):
        """The `sub`: `since` for symbols with a position, `last` (when asked) for the others."""
        req = {"op": "sub", "id": req_id, "channel": "trade", "symbols": symbols}
        since = {s: self.pos[s] for s in symbols if s in self.pos}
        if since:
            req["since"] = since
        if last and len(since) < len(symbols):
            req["last"] = last
        if throttle:
            req["throttleMs"] = throttle
        return json.dumps(req), since

    def acked(self, m, since, last):
        """Applies an `ack`. Returns the symbols not recovered, each with the position it had and the acked one."""
        lost = []
        rec = m.get("rec") or {}
        for s, p in (m.get("pos") or {}).items():
            if s in since:
                self.resumes += 1
                if rec.get(s) is True:
                    self.recovered += 1
                    continue
                lost.append((s, since[s], p))
                self.pos[s] = {"e": p["e"], "q": p["q"]}
            elif last:
                # The `last` trades have q at or below the acked one: the position is the first trade's.
                self.epochs[s] = p["e"]
            else:
                self.pos[s] = {"e": p["e"], "q": p["q"]}
        return lost

    def trade(self, m):
        """Applies a `trade`; False for one at or below the position held (skipped)."""
        s = m["s"]
        p = self.pos.get(s)
        if p is None:
            e = self.epochs.pop(s, None)
            if e is None:
                return False  # not subscribed by this client: cannot happen
            self.pos[s] = {"e": e, "q": m["q"]}
        elif m["q"] <= p["q"]:
            self.duplicates += 1
            return False
        else:
            p["q"] = m["q"]
        self.printed += 1
        return True

    def gap(self, m):
        s = m["s"]
        self.gaps += 1
        self.lost += m["to"] - m["from"]
        p = self.pos.get(s)
        if p is not None and m["to"] > p["q"]:
            p["q"] = m["to"]

    def summary(self):
        def n(count, word):
            return f"{count} {word}" + ("" if count == 1 else "s")

        return (
            f"trades.py: {n(self.printed, 'trade')}, {n(self.duplicates, 'duplicate')} skipped, "
            f"{n(self.gaps, 'gap')} ({self.lost} positions lost), {n(self.resumes, 'resume')} ({self.recovered} recovered)"
        )


def line(m):
    stamp = time.strftime("%H:%M:%S")
    side = {"b": "buy ", "s": "sell"}.get(m.get("side"), "    ")
    tid = f"  id {m['id']}" if "id" in m else ""
    return f"{stamp}  {m['s']:<10} q={m['q']:<12} {side} {m['sz']:>12.10g} @ {m['px']:<14.10g}{tid}".rstrip()


def say(args, obj, text):
    """What a client must know about (rec false, gap): a line on stderr, and with --json one on stdout."""
    print(f"{obj['s']}: {text}", file=sys.stderr)
    if args.json:
        print(json.dumps(obj))


async def watch(args, tape):
    ever_connected = False
    deadline = time.monotonic() + args.duration if args.duration else None
    urls = args.url
    turn = 0  # index of the URL to try next
    failures = 0  # attempts in a row that did not get a session going
    retry_s = 0.0  # the last bye's retryMs

    while True:
        url = urls[turn % len(urls)]
        session_ok = False
        try:
            async with websockets.connect(url, max_size=None) as ws:
                ever_connected = True
                req, since = tape.request(args.symbols, args.last, args.throttle, "trades")
                last = args.last if len(since) < len(args.symbols) else 0
                await ws.send(req)
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
                        if t == "trade":
                            if not tape.trade(m):
                                if tape.pos.get(m["s"]) is not None:
                                    print(f"{m['s']}: trade q={m['q']} at or below the position held (q={tape.pos[m['s']]['q']}): skipped", file=sys.stderr)
                                continue
                            if args.json:
                                print(json.dumps(m))
                            else:
                                print(line(m))
                            if args.count and tape.printed >= args.count:
                                sys.stdout.flush()
                                return 0
                        elif t == "gap":
                            tape.gap(m)
                            say(args, m, f"GAP: trades with {m['from']} < q <= {m['to']} were lost (they left the gateway's history); continuing after q={m['to']}")
                        elif t == "hello":
                            hb_s = m["hbMs"] / 1000
                        elif t == "ack" and m.get("channel") == "trade":
                            session_ok = True
                            failures = 0
                            for e in m.get("err", ()):
                                print(f"{e['s']}: {e['code']}: {e['msg']}", file=sys.stderr)
                            for s, had, now in tape.acked(m, since, last):
                                say(
                                    args,
                                    {"t": "unrecovered", "s": s, "since": had, "pos": now},
                                    f"NOT RECOVERED (rec false): trades after q={had['q']} (epoch {had['e']}) may be lost"
                                    + (" (another epoch)" if had["e"] != now["e"] else " (older than the gateway's history)")
                                    + f"; continuing live from q={now['q']} (epoch {now['e']})",
                                )
                            if since:
                                ok = [s for s in since if (m.get("rec") or {}).get(s) is True]
                                if ok:
                                    print(f"resumed {', '.join(ok)} on {url}", file=sys.stderr)
                        elif t == "stat" and m.get("ch") == "trade" and m["st"] != "live":
                            print(f"{m['s']}: {m['st']}", file=sys.stderr)
                        elif t == "err":
                            print(f"error: {m['code']}: {m['msg']}", file=sys.stderr)
                        elif t == "bye":
                            retry_s = m.get("retryMs", 0) / 1000
                            print(f"server says bye: {m['code']}: {m['reason']}", file=sys.stderr)
                    sys.stdout.flush()
        except (OSError, ConnectionError, websockets.ConnectionClosed, websockets.InvalidHandshake) as e:
            sys.stdout.flush()
            if not session_ok:
                failures += 1
            if not ever_connected and failures >= len(urls):
                print(f"trades.py: cannot connect to {', '.join(urls)}: {e}", file=sys.stderr)
                return 1
            turn += 1
            # Full jitter, so that clients dropped together do not come back together.
            delay = max(retry_s, random.random() * min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(failures, 10)))
            retry_s = 0.0
            what = "connection lost" if session_ok else "cannot connect"
            print(f"{what} ({e}); reconnecting to {urls[turn % len(urls)]} in {delay:.1f} s", file=sys.stderr)
            await asyncio.sleep(delay)


def main():
    p = argparse.ArgumentParser(description="Print trades from a tickgate gateway, resuming after every reconnect.")
    p.add_argument("symbols", nargs="+", help="symbols, e.g. AAPL MSFT")
    p.add_argument("--url", action="append", help="gateway stream URL; give it more than once to reconnect to each in turn (default ws://127.0.0.1:8080/v1/stream)")
    p.add_argument("--last", type=int, default=0, help="on the first subscription, start with up to this many recent trades per symbol")
    p.add_argument("--throttle", type=int, default=0, help="at most one frame per symbol per this many ms (every trade still comes)")
    p.add_argument("--json", action="store_true", help="print each trade as a JSON line (and gap and unrecovered lines too)")
    p.add_argument("--count", type=int, default=0, help="stop after this many trades")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    args = p.parse_args()
    args.url = args.url or ["ws://127.0.0.1:8080/v1/stream"]
    tape = Tape()
    code = 0
    try:
        code = asyncio.run(watch(args, tape))
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    if code != 1:
        print(tape.summary(), file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
