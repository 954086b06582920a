"""Check a live tickgate stream the way a plain Python client sees it.

Connects to /v1/stream, checks the hello, error replies and the sub ack, then
merges snap and upd messages per symbol (docs/PROTOCOL.md, "Writing a client")
until each symbol's state equals the JSON object in --expect-file, which may
appear later. Ends with a ping. --timeout bounds the whole run.

    /usr/bin/python3 test/python/check_stream.py --url ws://127.0.0.1:8080/v1/stream \
        --symbols AAPL,EUR/USD --expect-file /tmp/expected.json --timeout 10

Prints one JSON summary line and exits 0, or explains the failure on stderr
and exits 1. Needs only the standard library, websockets and msgpack.
"""
import argparse
import asyncio
import collections
import json
import sys
import time

import msgpack
import websockets

REPLIES = {"hello", "ack", "err", "pong", "symbols", "bye"}  # answers, not stream data


class CheckFailed(Exception):
    pass


def fail(expected, seen):
    raise CheckFailed(f"expected {expected}; saw {seen!r}")


def decode_frame(frame):
    """One server frame -> its list of messages, checking the framing rules."""
    if not isinstance(frame, bytes):
        fail("a binary frame", frame)
    try:
        messages = msgpack.unpackb(frame, raw=False)
    except Exception as e:  # the decoder raises several unrelated types
        fail("a frame that decodes as MessagePack", f"{e} in {frame[:64].hex()}")
    if not isinstance(messages, list) or not messages:
        fail("a frame holding a non-empty array", messages)
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("t"), str):
            fail("each message to be a map with a string 't'", m)
    return messages


class Book:
    """Per-symbol q and merged state: snap replaces, upd merges d."""

    def __init__(self):
        self.subscribed = set()  # filled once the sub ack has been seen
        self.q = {}
        self.state = {}

    def apply(self, m):
        if m["t"] not in ("snap", "upd", "stat"):
            return
        s = m.get("s")
        if s not in self.subscribed:
            fail(f"the sub ack before any {m['t']} for {s!r}", m)
        if m["t"] == "stat":
            return
        if not isinstance(m.get("d"), dict):
            fail(f"a map in 'd' of {m['t']}", m)
        if m["t"] == "upd" and s not in self.state:
            fail(f"a snap for {s!r} before its first upd", m)
        held = self.q.get(s, 0)
        if not isinstance(m.get("q"), int) or m["q"] <= held:
            fail(f"{m['t']} for {s!r} with integer q > {held}", m)
        self.q[s] = m["q"]
        if m["t"] == "snap":
            self.state[s] = dict(m["d"])
        else:
            self.state[s].update(m["d"])


class Stream:
    """Reads frames into a queue of messages, feeding data to the book."""

    def __init__(self, ws, deadline):
        self.ws, self.deadline = ws, deadline
        self.book = Book()
        self.pending = collections.deque()
        self.frames = self.messages = self.max_batch = 0

    async def next(self, waiting_for, poll=None):
        """The next message; None if poll seconds pass without one."""
        while not self.pending:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(f"timed out waiting for {waiting_for}")
            try:
                frame = await asyncio.wait_for(self.ws.recv(), min(remaining, poll or remaining))
            except asyncio.TimeoutError:
                if poll:
                    return None
                raise CheckFailed(f"timed out waiting for {waiting_for}") from None
            except websockets.ConnectionClosed as e:
                raise CheckFailed(f"connection closed ({e}) while waiting for {waiting_for}") from None
            batch = decode_frame(frame)
            self.frames += 1
            self.messages += len(batch)
            self.max_batch = max(self.max_batch, len(batch))
            self.pending.extend(batch)
        m = self.pending.popleft()
        self.book.apply(m)
        return m

    async def reply(self, waiting_for):
        """The next answer to a request, skipping hb, data and unknown types."""
        while True:
            m = await self.next(waiting_for)
            if m["t"] == "bye":
                fail(waiting_for, m)
            if m["t"] in REPLIES:
                return m


def read_expected(path):
    """The expected states, or None while the file is missing or half written."""
    try:
        with open(path, encoding="utf-8") as f:
            expected = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(expected, dict):
        fail(f"a JSON object in {path}", expected)
    return expected


async def check(args):
    symbols = [s for s in args.symbols.split(",") if s]
    deadline = time.monotonic() + args.timeout
    async with websockets.connect(args.url, max_size=None, open_timeout=args.timeout) as ws:
        stream = Stream(ws, deadline)
        m = await stream.next("hello")
        if m["t"] != "hello" or m.get("v") != 1:
            fail("hello with v == 1 as the first message", m)

        await ws.send(b"\xc1")  # a byte MessagePack never uses
        m = await stream.reply("err BAD_REQUEST for an undecodable frame")
        if m["t"] != "err" or m.get("code") != "BAD_REQUEST":
            fail("err BAD_REQUEST for an undecodable frame", m)

        await ws.send(json.dumps({"op": "nope", "id": 7}))
        m = await stream.reply("err UNKNOWN_OP with id 7")
        if m["t"] != "err" or m.get("code") != "UNKNOWN_OP" or m.get("id") != 7:
            fail("err UNKNOWN_OP with id 7", m)

        await ws.send(msgpack.packb({"op": "sub", "id": "s1", "symbols": symbols}))
        m = await stream.reply("ack s1")
        if m["t"] != "ack" or m.get("id") != "s1" or m.get("op") != "sub":
            fail("ack for sub with id 's1'", m)
        if sorted(m.get("ok") or []) != sorted(symbols) or m.get("err"):
            fail(f"ack with ok == {symbols} and no err", m)
        stream.book.subscribed.update(symbols)

        expected = None
        state = stream.book.state
        while expected is None or any(state.get(s, {}) != expected.get(s, {}) for s in symbols):
            if time.monotonic() >= deadline:
                if expected is None:
                    raise CheckFailed(f"timed out waiting for {args.expect_file} to appear")
                diffs = "; ".join(
                    f"{s}: expected {expected.get(s, {})!r}, saw {state.get(s, {})!r}"
                    for s in symbols if state.get(s, {}) != expected.get(s, {}))
                raise CheckFailed(f"timed out waiting for the expected state: {diffs}")
            if expected is None:
                expected = read_expected(args.expect_file)
            m = await stream.next("the expected state", poll=0.1)
            if m is not None and m["t"] in REPLIES:
                fail("only stream data while waiting for the expected state", m)

        await ws.send(msgpack.packb({"op": "ping", "id": "p", "ts": 123}))
        m = await stream.reply("pong p")
        if m["t"] != "pong" or m.get("id") != "p" or m.get("ts") != 123:
            fail("pong with id 'p' and ts 123", m)

        return {"ok": True, "frames": stream.frames, "messages": stream.messages,
                "maxBatch": stream.max_batch,
                "symbols": {s: state.get(s, {}) for s in symbols}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ws://HOST:PORT/v1/stream")
    parser.add_argument("--symbols", required=True, help="comma-separated symbols")
    parser.add_argument("--expect-file", required=True, help="JSON {symbol: {field: value}}")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole run")
    args = parser.parse_args()
    try:
        result = asyncio.run(check(args))
    except CheckFailed as e:
        print(f"check_stream: FAIL: {e}", file=sys.stderr)
        return 1
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        print(f"check_stream: FAIL: connection to {args.url}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
