#!/usr/bin/env python3
"""Watch live prices from a tickgate gateway.

    /usr/bin/python3 watch.py AAPL EUR/USD BTC/USDT --url ws://127.0.0.1:8080/v1/stream

Uses the ``tickgate`` package (clients/python): it keeps each symbol's merged
state (a `snap` replaces it, an `upd` merges into it, an old `upd` is
ignored), reconnects with backoff after a drop (waiting the `retryMs` of the
server's `bye`), gives up a connection that sends nothing for 3 heartbeats,
and resubscribes with fresh snapshots.

Prints a line per update, a JSON line per update (--json:
{"s","q","state","stale"}, and {"t":"stat","s","st"} when a symbol's status
changes), or a table refreshed twice a second (--table). Status changes
other than live also go to stderr. --token (or TICKGATE_TOKEN) is sent as a
bearer token.
"""
import json
import sys
import time

import _cli
import tickgate


def num(v, width=12):
    if not isinstance(v, (int, float)):
        return " " * width
    return f"{v:>{width},.2f}" if abs(v) >= 10 else f"{v:>{width}.5f}"


def line(u):
    st = u.state
    stamp = time.strftime("%H:%M:%S")
    flag = "  STALE" if u.stale else ""
    return f"{stamp}  {u.symbol:<10} q={u.q:<8} bid {num(st.get('bid'))}  ask {num(st.get('ask'))}  last {num(st.get('last'))}{flag}"


def table(client, symbols):
    rows = [f"{'symbol':<10} {'bid':>12} {'ask':>12} {'last':>12} {'chg %':>8} {'volume':>14}"]
    for s in sorted(symbols):
        st = client.quote(s)
        if st is None:
            continue
        last, ref = st.get("last"), st.get("close", st.get("open"))
        chg = f"{(last - ref) / ref * 100:+8.2f}" if isinstance(last, (int, float)) and ref else " " * 8
        vol = f"{st['volume']:>14,.0f}" if "volume" in st else " " * 14
        flag = "  STALE" if client.status(s) == "stale" else ""
        rows.append(f"{s:<10} {num(st.get('bid'))} {num(st.get('ask'))} {num(st.get('last'))} {chg} {vol}{flag}")
    return "\x1b[H\x1b[2J" + "\n".join(rows)


async def consume(client, args):
    printed = 0
    next_table = 0.0
    async for u in client.updates():
        if isinstance(u, tickgate.Quote):
            if args.json:
                print(json.dumps({"s": u.symbol, "q": u.q, "state": u.state, "stale": u.stale}), flush=False)
            elif not args.table:
                print(line(u), flush=False)
            printed += 1
            if args.count and printed >= args.count:
                return
        else:
            _cli.print_event(u, args.json)
        if args.table and time.monotonic() >= next_table:
            print(table(client, args.symbols), flush=True)
            next_table = time.monotonic() + 0.5
        sys.stdout.flush()


def main():
    p = _cli.parser("Watch live prices from a tickgate gateway.", "symbols, e.g. AAPL EUR/USD BTC/USDT")
    p.add_argument("--json", action="store_true", help='print {"s","q","state","stale"} JSON lines, and {"t":"stat","s","st"} on status changes')
    p.add_argument("--table", action="store_true", help="show a table, refreshed twice a second")
    _cli.add_limits(p, "updates")
    args = _cli.parse(p)
    client = _cli.client(args)
    client.subscribe(args.symbols)
    _cli.run("watch.py", client, lambda: consume(client, args), args.duration)


if __name__ == "__main__":
    main()
