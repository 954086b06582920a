"""What the example command lines share: their common options, the client
they make of them, how they report the events every stream has (status
changes, refused subscriptions, server errors, lost connections), and how
they run and exit.
"""
import argparse
import asyncio
import json
import os
import sys

import _path  # noqa: F401  (finds the package in a checkout)
import tickgate

DEFAULT_URL = "ws://127.0.0.1:8080/v1/stream"


def parser(description, symbols_help, *, several_urls=False):
    """An argument parser with the symbols, --url and --token.

    With ``several_urls``, --url may be given more than once and
    ``args.url`` is always a list (the default URL alone when none is given).
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("symbols", nargs="+", help=symbols_help)
    if several_urls:
        p.add_argument("--url", action="append", help=f"gateway stream URL; give it more than once to reconnect to each in turn (default {DEFAULT_URL})")
    else:
        p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--token", default=os.environ.get("TICKGATE_TOKEN", ""), help="bearer token (default: $TICKGATE_TOKEN)")
    return p


def add_limits(p, what):
    """--count (of ``what``) and --duration, after the example's own options."""
    p.add_argument("--count", type=int, default=0, help=f"stop after this many {what}")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")


def parse(p):
    args = p.parse_args()
    if args.url is None:
        args.url = [DEFAULT_URL]
    return args


def client(args, **options):
    """A client for the parsed --url and --token."""
    return tickgate.Client(args.url, token=args.token or None, **options)


def print_event(u, json_lines, *, several_urls=False):
    """Reports the events every stream has; any other event is left to the caller.

    A status change is a JSON line on stdout with ``json_lines`` and, unless
    live, a line on stderr; the rest go to stderr. With ``several_urls``, a
    lost connection names the URL tried next and a failed connect says so.
    """
    if isinstance(u, tickgate.StatusChange):
        if json_lines:
            print(json.dumps({"t": "stat", "s": u.symbol, "st": u.status}), flush=False)
        if u.status != "live":
            print(f"{u.symbol}: {u.status}", file=sys.stderr)
    elif isinstance(u, tickgate.SubscribeError):
        print(f"{u.symbol}: {u.code}: {u.msg}", file=sys.stderr)
    elif isinstance(u, tickgate.ServerError):
        print(f"error: {u.code}: {u.msg}", file=sys.stderr)
    elif isinstance(u, tickgate.Disconnected):
        if u.bye is not None:
            print(f"server says bye: {u.bye.code}: {u.bye.reason}", file=sys.stderr)
        if several_urls:
            what = "connection lost" if u.opened else "cannot connect"
            print(f"{what} ({u.reason}); reconnecting to {u.next_url} in {u.delay_s:.1f} s", file=sys.stderr)
        else:
            print(f"connection lost ({u.reason}); reconnecting in {u.delay_s:.1f} s", file=sys.stderr)


async def _stream(prog, client, consume, duration):
    async with client:
        try:
            await asyncio.wait_for(consume(), duration or None)
        except asyncio.TimeoutError:
            pass  # --duration is up
        except tickgate.TickgateError as e:
            print(f"{prog}: {e}", file=sys.stderr)
            return 1
        finally:
            sys.stdout.flush()
    return 0


def run(prog, client, consume, duration, summary=None):
    """Connects ``client``, awaits ``consume()`` for up to ``duration`` seconds
    (0: no limit) or until Ctrl-C, and exits.

    The exit status is 1 when the client gave up (its error printed as
    ``prog: ...``), else 0; then ``summary()``, if given, goes to stderr.
    """
    code = 0
    try:
        code = asyncio.run(_stream(prog, client, consume, duration))
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    if summary is not None and code != 1:
        print(summary(), file=sys.stderr)
    sys.exit(code)
