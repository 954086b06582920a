import asyncio
import unittest

from tickgate import Client


class CloseTest(unittest.TestCase):
    def test_close_ends_a_run_that_swallowed_its_first_cancellation(self):
        # Python 3.11's asyncio.wait_for can swallow a cancellation that races with
        # what it waits for completing; the client's task then carries on. close()
        # must still end it.
        async def scenario():
            client = Client("ws://127.0.0.1:9/v1/stream")
            swallowed = 0

            async def stubborn():
                nonlocal swallowed
                while True:
                    try:
                        await asyncio.sleep(3600)
                    except asyncio.CancelledError:
                        if swallowed == 0:
                            swallowed += 1
                            continue  # as a racing wait_for would
                        raise

            client._closing = asyncio.Event()
            client._task = asyncio.ensure_future(stubborn())
            await asyncio.sleep(0)
            closer = asyncio.ensure_future(client.close())
            # asyncio.wait never cancels what it waits for: close() must end on its own.
            done, _ = await asyncio.wait([closer], timeout=8)
            ended = closer in done
            if not ended:
                closer.cancel()
                client._task.cancel()
            return swallowed, ended

        self.assertEqual(asyncio.run(scenario()), (1, True))


if __name__ == "__main__":
    unittest.main()
