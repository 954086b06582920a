import struct
import unittest
import zlib

from tickgate import OrderBook, book_checksum
from tickgate.orderbook import ResyncPolicy


class OrderBookTest(unittest.TestCase):
    def test_checksum_is_crc32_of_asks_then_bids_as_big_endian_doubles(self):
        asks = [(100.5, 1.0), (101.0, 4.0)]
        bids = [(99.5, 1.0)]
        raw = struct.pack(">dddddd", 100.5, 1.0, 101.0, 4.0, 99.5, 1.0)
        self.assertEqual(book_checksum(asks, bids, 10), zlib.crc32(raw))
        # At most 25 levels per side count, whatever the depth.
        many = [(float(i), 1.0) for i in range(30)]
        self.assertEqual(book_checksum(many, many, 100), book_checksum(many[:25], many[:25], 25))

    def test_bupd_sets_removes_and_cuts_to_depth(self):
        b = OrderBook("X", 2)
        b.replace({"q": 1, "bids": [[99, 1], [98, 2]], "asks": [[101, 1], [102, 2]]})
        b.update({"q": 2, "bids": [[99, 0], [97, 5], [99.5, 3]], "asks": [[100.5, 7]]})
        self.assertEqual(b.q, 2)
        self.assertEqual(b.bids, [(99.5, 3.0), (98.0, 2.0)])
        self.assertEqual(b.asks, [(100.5, 7.0), (101.0, 1.0)])

    def test_resync_at_once_then_after_a_doubling_delay_while_failures_repeat(self):
        r = ResyncPolicy(quiet_s=30, first_delay_s=1, max_delay_s=4)
        self.assertEqual([r.delay("X", t) for t in (0, 1, 2, 3, 4, 5)], [0, 1, 2, 4, 4, 4])
        self.assertEqual(r.delay("X", 100), 0)  # quiet for longer than quiet_s: at once again
        self.assertEqual(r.delay("Y", 100), 0)


if __name__ == "__main__":
    unittest.main()
