#!/usr/bin/env python3
"""Print trades from a tickgate gateway, resuming after every reconnect.

    /usr/bin/python3 trades.py AAPL MSFT --url ws://gw-a:8080/v1/stream --url ws://gw-b:8080/v1/stream

Uses the ``tickgate`` package (clients/python), which keeps each symbol's
position {e, q} (docs/PROTOCOL.md, Trade prints): the epoch from the `ack`'s
`pos` and the `q` of the last trade delivered. After a drop it reconnects to
the next --url in turn (a gateway that went away is probably still away),
after a backoff with full jitter (a random wait up to 1 s after a good
session, doubling per failed attempt up to 30 s, and at least the `retryMs`
of the server's `bye`), and resubscribes with `since` set to the positions
it holds, so that it gets every trade after them, in order, nothing twice.

What cannot be recovered is said, on stderr and, with --json, as a line of
its own:

- `rec: false` in the `ack` (another epoch, e.g. a gateway restarted without
  a stream, or a position older than the history holds): trades after the
  position held may be lost; printing goes on with live trades, from the
  `ack`'s position. JSON: {"t":"unrecovered","s","since","pos"}.
- `gap {s, from, to}`: the trades with from < q <= to were lost (they left
  the history while this client was behind); the trades after `to` follow.

A trade at or below the position held (which the protocol rules out) is
skipped and counted. A status change goes to stderr (and, with --json, as
{"t":"stat","s","st"}). On exit, stderr gets one line with the trades
printed, the duplicates skipped, the gaps, the resumes and how many were
recovered.
"""
import json
import sys
import time

import _cli
import tickgate


def line(t):
    stamp = time.strftime("%H:%M:%S")
    side = {"b": "buy ", "s": "sell"}.get(t.side, "    ")
    tid = f"  id {t.id}" if t.id is not None else ""
    return f"{stamp}  {t.symbol:<10} q={t.q:<12} {side} {t.sz:>12.10g} @ {t.px:<14.10g}{tid}".rstrip()


def say(args, obj, text):
    """What a client must know about (rec false, gap): a line on stderr, and with --json one on stdout."""
    print(f"{obj['s']}: {text}", file=sys.stderr)
    if args.json:
        print(json.dumps(obj))


def summary(c, printed):
    def n(count, word):
        return f"{count} {word}" + ("" if count == 1 else "s")

    return (
        f"trades.py: {n(printed, 'trade')}, {n(c.trade_duplicates, 'duplicate')} skipped, "
        f"{n(c.trade_gaps, 'gap')} ({c.trade_positions_lost} positions lost), {n(c.trade_resumes, 'resume')} ({c.trade_recovered} recovered)"
    )


async def consume(client, args, tally):
    async for u in client.updates():
        if isinstance(u, tickgate.Trade):
            print(json.dumps(dict(u.message)) if args.json else line(u))
            tally["printed"] += 1
            if args.count and tally["printed"] >= args.count:
                return
        elif isinstance(u, tickgate.TradeGap):
            say(args, {"t": "gap", "s": u.symbol, "from": u.from_q, "to": u.to_q},
                f"GAP: trades with {u.from_q} < q <= {u.to_q} were lost (they left the gateway's history); continuing after q={u.to_q}")
        elif isinstance(u, tickgate.TradeResume):
            if u.recovered:
                print(f"resumed {u.symbol} on {u.url}", file=sys.stderr)
            else:
                had, now = u.since, u.position
                say(
                    args,
                    {"t": "unrecovered", "s": u.symbol, "since": {"e": had.e, "q": had.q}, "pos": {"e": now.e, "q": now.q}},
                    f"NOT RECOVERED (rec false): trades after q={had.q} (epoch {had.e}) may be lost"
                    + (" (another epoch)" if had.e != now.e else " (older than the gateway's history)")
                    + f"; continuing live from q={now.q} (epoch {now.e})",
                )
        elif isinstance(u, tickgate.TradeSkipped):
            print(f"{u.symbol}: trade q={u.q} at or below the position held (q={u.held}): skipped", file=sys.stderr)
        else:
            _cli.print_event(u, args.json, several_urls=True)
        sys.stdout.flush()


def main():
    p = _cli.parser("Print trades from a tickgate gateway, resuming after every reconnect.", "symbols, e.g. AAPL MSFT", several_urls=True)
    p.add_argument("--last", type=int, default=0, help="on the first subscription, start with up to this many recent trades per symbol")
    p.add_argument("--throttle", type=int, default=0, help="at most one frame per symbol per this many ms (every trade still comes)")
    p.add_argument("--json", action="store_true", help="print each trade as a JSON line (and gap, unrecovered and stat lines too)")
    _cli.add_limits(p, "trades")
    args = _cli.parse(p)
    client = _cli.client(args, backoff=tickgate.Backoff(initial_s=1.0, max_s=30.0))
    client.subscribe_trades(args.symbols, last=args.last, throttle_ms=args.throttle)
    tally = {"printed": 0}
    _cli.run("trades.py", client, lambda: consume(client, args, tally), args.duration, lambda: summary(client.counters, tally["printed"]))


if __name__ == "__main__":
    main()
