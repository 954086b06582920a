import asyncio
import unittest

from tickgate import Backoff, Client
from tickgate.client import _RETRY_AFTER_MAX_S, _reconnect_delay, _retry_after_s

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class RetryAfterTest(unittest.TestCase):
    def test_reads_delay_seconds_and_http_dates(self):
        self.assertEqual(_retry_after_s("5", NOW), 5.0)
        self.assertEqual(_retry_after_s(" 0 ", NOW), 0.0)
        self.assertEqual(_retry_after_s("Tue, 14 Nov 2023 22:13:50 GMT", NOW), 30.0)
        self.assertEqual(_retry_after_s("Tue, 14 Nov 2023 22:13:50 -0000", NOW), 30.0)
        self.assertEqual(_retry_after_s("Tue, 14 Nov 2023 22:13:00 GMT", NOW), 0.0)  # already past

    def test_absent_or_unreadable_is_none(self):
        for v in (None, "", "soon", "-1", "1.5", "\u00b2"):
            self.assertIsNone(_retry_after_s(v, NOW), v)

    def test_is_capped(self):
        self.assertEqual(_retry_after_s("86400", NOW), _RETRY_AFTER_MAX_S)


class ReconnectDelayTest(unittest.TestCase):
    def test_retry_after_is_a_floor_with_the_backoff_jitter_on_top(self):
        one = Backoff(initial_s=0.5, max_s=30.0, random=lambda: 1.0)
        zero = Backoff(initial_s=0.5, max_s=30.0, random=lambda: 0.0)
        self.assertEqual(_reconnect_delay(one, 1, None, 5.0), 5.5)
        self.assertEqual(_reconnect_delay(one, 3, None, 5.0), 7.0)
        self.assertEqual(_reconnect_delay(zero, 3, None, 5.0), 5.0)
        # A 0.5 s backoff never cuts a TOO_MANY_ATTEMPTS block short.
        self.assertGreaterEqual(_reconnect_delay(one, 1, None, 42.0), 42.0)

    def test_without_retry_after_it_is_the_backoff(self):
        one = Backoff(initial_s=0.5, max_s=30.0, random=lambda: 1.0)
        self.assertEqual(_reconnect_delay(one, 3, None, None), 2.0)
        self.assertEqual(_reconnect_delay(one, 1, 2.0, None), 3.0)  # a bye's retryMs

    def test_a_bye_ending_an_opened_connection_waits_as_a_first_retry_and_no_less_than_the_backoff_reached(self):
        one = Backoff(initial_s=0.5, max_s=30.0, random=lambda: 1.0)
        self.assertEqual(_reconnect_delay(one, 1, 2.0, None, opened=True), 3.0)
        # Connections before it were short-lived: retryMs keeps its jitter (not max(2.0, 1.0))...
        self.assertEqual(_reconnect_delay(one, 2, 2.0, None, opened=True), 3.0)
        # ...and a backoff grown past it wins (attempt 5: up to 8 s).
        self.assertEqual(_reconnect_delay(one, 5, 2.0, None, opened=True), 8.0)
        self.assertEqual(_reconnect_delay(one, 5, None, None, opened=True), 8.0)

    def test_a_bye_retry_ms_still_counts(self):
        one = Backoff(initial_s=0.5, max_s=30.0, random=lambda: 1.0)
        self.assertEqual(_reconnect_delay(one, 2, 4.0, 1.0), 4.0)
        self.assertEqual(_reconnect_delay(one, 2, 1.0, 4.0), 5.0)


class RefusedUpgradeTest(unittest.TestCase):
    """A real refusal over a socket: the status and Retry-After reach the delay."""

    def refuse(self, status_line: str, headers: str) -> object:
        async def go():
            async def answer(reader, writer):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(f"HTTP/1.1 {status_line}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(answer, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                client = Client(f"ws://127.0.0.1:{port}/", connect_timeout_s=2)
                return await client._session(client.urls[0], None, 1)
            finally:
                server.close()
                await server.wait_closed()

        return asyncio.run(go())

    def test_429_with_retry_after(self):
        end = self.refuse("429 Too Many Requests", "Retry-After: 7\r\n")
        self.assertEqual((end.http_status, end.retry_after_s, end.opened), (429, 7.0, False))
        self.assertEqual(end.reason, "upgrade refused with HTTP 429 (Retry-After 7 s)")

    def test_503_without_retry_after(self):
        end = self.refuse("503 Service Unavailable", "")
        self.assertEqual((end.http_status, end.retry_after_s), (503, None))
        self.assertEqual(end.reason, "upgrade refused with HTTP 503")


if __name__ == "__main__":
    unittest.main()
