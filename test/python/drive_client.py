"""Runs the tickgate Python package against a live gateway and prints every
event it yields as a JSON line ({"ev": <event class>, ...its fields}), for
the integration tests to check.

    /usr/bin/python3 test/python/drive_client.py --url ws://127.0.0.1:PORT/v1/stream \
        --quotes AAPL,MSFT --duration 5

--jwt-secret mints HS256 tokens (stdlib hmac) of --jwt-ttl seconds in a
get_token function, logging each call as {"ev": "get_token"}; --bad-first
makes its first token carry a wrong signature. --token passes a static token.
--jitter-one fixes the backoff's random draw at 1 (delays at their caps).
Ends after --duration with {"ev": "counters"}; on an error that stops the
client, prints {"ev": "error"} and exits 2.
"""
import argparse
import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python", "src"))

import tickgate  # noqa: E402


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint(secret, ttl, good=True):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    payload = b64(json.dumps({"sub": "py", "iat": now, "exp": now + ttl, "aud": "tickgate", "ent": ["*"]}).encode())
    key = secret.encode() if good else b"not-the-secret-not-the-secret-!!"
    sig = b64(hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}"


def out(obj):
    print(json.dumps(obj), flush=True)


def event(u):
    d = {f.name: getattr(u, f.name) for f in dataclasses.fields(u) if f.name != "message"}
    for k, v in d.items():
        if dataclasses.is_dataclass(v):
            d[k] = dataclasses.asdict(v)
    d["ev"] = type(u).__name__
    if isinstance(u, tickgate.Trade):
        d["id"] = u.id
    return d


async def run(args):
    token = args.token or None
    if args.jwt_secret:
        calls = {"n": 0}

        async def get_token():
            calls["n"] += 1
            t = mint(args.jwt_secret, args.jwt_ttl, good=not (args.bad_first and calls["n"] == 1))
            out({"ev": "get_token", "n": calls["n"], "exp": tickgate.jwt_expiry(t), "at": time.time()})
            return t

        token = get_token
    rnd = (lambda: 1.0) if args.jitter_one else None
    backoff = tickgate.Backoff(initial_s=args.backoff_initial, max_s=args.backoff_max, **({"random": rnd} if rnd else {}))
    client = tickgate.Client(args.url, token=token, backoff=backoff, heartbeat_multiplier=args.hb_mult, retry_first_connect=args.retry_first, connect_timeout_s=args.connect_timeout)
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    if args.quotes:
        client.subscribe(split(args.quotes))
    if args.books:
        client.subscribe_book(split(args.books), depth=args.depth)
    if args.trades:
        client.subscribe_trades(split(args.trades), last=args.last)

    async def consume():
        async for u in client.updates():
            out(event(u))

    code = 0
    async with client:
        try:
            await asyncio.wait_for(consume(), args.duration)
        except asyncio.TimeoutError:
            pass
        except tickgate.TickgateError as e:
            out({"ev": "error", "type": type(e).__name__, "msg": str(e)})
            code = 2
    out({"ev": "counters", **dataclasses.asdict(client.counters)})
    return code


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", action="append", required=True)
    p.add_argument("--quotes", default="")
    p.add_argument("--books", default="")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--trades", default="")
    p.add_argument("--last", type=int, default=0)
    p.add_argument("--token", default="")
    p.add_argument("--jwt-secret", default="")
    p.add_argument("--jwt-ttl", type=int, default=3600)
    p.add_argument("--bad-first", action="store_true")
    p.add_argument("--backoff-initial", type=float, default=0.1)
    p.add_argument("--backoff-max", type=float, default=2.0)
    p.add_argument("--jitter-one", action="store_true")
    p.add_argument("--hb-mult", type=float, default=3.0)
    p.add_argument("--connect-timeout", type=float, default=5.0)
    p.add_argument("--retry-first", action="store_true")
    p.add_argument("--duration", type=float, default=10.0)
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
