import asyncio
import unittest

import msgpack
import websockets

from tickgate import Backoff, Client, Disconnected

HELLO = {"t": "hello", "v": 1, "sid": "s1", "hbMs": 60000, "serverTs": 0, "limits": {}}


def run_against(lasts, **backoff):
    """(attempt, delay_s) of each Disconnected, against a server that greets
    each connection and closes it (no bye) ``lasts[i]`` seconds after its
    hello by the client's clock."""

    async def go():
        now = [1000.0]
        ends = iter(lasts)

        async def serve(ws, path=None):
            await ws.send(msgpack.packb([HELLO]))
            await ws.recv()  # the client's sub: its hello is in
            now[0] += next(ends)
            await ws.close()

        async with websockets.serve(serve, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            b = Backoff(initial_s=0.001, max_s=0.016, random=lambda: 1.0, **backoff)
            client = Client(f"ws://127.0.0.1:{port}/", backoff=b, clock=lambda: now[0])
            client.subscribe(["AAPL"])
            seen = []
            async with client:
                async for u in client.updates():
                    if isinstance(u, Disconnected):
                        seen.append((u.attempt, u.delay_s))
                        if len(seen) == len(lasts):
                            break
            return seen

    return asyncio.run(asyncio.wait_for(go(), 30))


class ShortConnectionTest(unittest.TestCase):
    def test_connections_cut_soon_after_hello_keep_the_backoff_growing(self):
        # random() = 1: each delay is its cap, doubling from 1 ms up to 16 ms.
        seen = run_against([0.1] * 6 + [10.0, 0.1])
        self.assertEqual(
            seen,
            [(1, 0.001), (2, 0.002), (3, 0.004), (4, 0.008), (5, 0.016), (6, 0.016),
             # open the default stable_s (10 s): the backoff starts over
             (1, 0.001), (2, 0.002)],
        )

    def test_stable_s_decides_what_lasted(self):
        seen = run_against([0.4, 0.49, 0.5, 0.1], stable_s=0.5)
        self.assertEqual(seen, [(1, 0.001), (2, 0.002), (1, 0.001), (2, 0.002)])

    def test_stable_s_zero_resets_on_hello(self):
        seen = run_against([0.1, 0.1, 0.1], stable_s=0)
        self.assertEqual(seen, [(1, 0.001), (1, 0.001), (1, 0.001)])


if __name__ == "__main__":
    unittest.main()
