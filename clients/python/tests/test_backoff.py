import unittest

from tickgate import Backoff


class BackoffTest(unittest.TestCase):
    def test_full_jitter_caps_double_up_to_the_maximum(self):
        b = Backoff(initial_s=0.5, max_s=4.0, random=lambda: 1.0)
        self.assertEqual([b.delay(k) for k in range(1, 7)], [0.5, 1.0, 2.0, 4.0, 4.0, 4.0])

    def test_full_jitter_spreads_over_the_whole_window(self):
        draws = iter([0.0, 0.25, 0.999])
        b = Backoff(initial_s=1.0, max_s=30.0, random=lambda: next(draws))
        self.assertEqual(b.delay(3), 0.0)
        self.assertEqual(b.delay(3), 1.0)
        self.assertAlmostEqual(b.delay(3), 3.996)

    def test_retry_ms_of_a_bye_is_a_floor_with_jitter_on_top(self):
        b = Backoff(initial_s=0.25, max_s=30.0, random=lambda: 1.0)
        self.assertEqual(b.delay(1, retry_s=2.0), 3.0)  # retryMs plus up to half of it
        self.assertEqual(b.delay(1, retry_s=0.1), 0.35)  # at least initial_s of jitter
        zero = Backoff(initial_s=0.25, max_s=30.0, random=lambda: 0.0)
        self.assertEqual(zero.delay(1, retry_s=2.0), 2.0)
        # Later attempts: the normal backoff, never below retryMs.
        self.assertEqual(zero.delay(4, retry_s=2.0), 2.0)
        self.assertEqual(b.delay(6, retry_s=2.0), 8.0)

    def test_invalid_settings_fail_naming_the_field(self):
        with self.assertRaisesRegex(ValueError, "initial_s"):
            Backoff(initial_s=0)
        with self.assertRaisesRegex(ValueError, "max_s"):
            Backoff(initial_s=2.0, max_s=1.0)
        for bad in (-1, float("nan"), float("inf"), "10"):
            with self.assertRaisesRegex(ValueError, "stable_s", msg=repr(bad)):
                Backoff(stable_s=bad)

    def test_a_connection_must_last_ten_seconds_by_default_to_reset_it(self):
        self.assertEqual(Backoff().stable_s, 10.0)
        self.assertEqual(Backoff(stable_s=0).stable_s, 0)


if __name__ == "__main__":
    unittest.main()
