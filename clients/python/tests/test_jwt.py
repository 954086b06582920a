import base64
import json
import unittest

from tickgate import jwt_expired, jwt_expiry


def b64(obj):
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(claims):
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJl"


class JwtExpiryTest(unittest.TestCase):
    def test_reads_exp_from_the_payload_without_padding(self):
        for claims in ({"exp": 1700000000}, {"sub": "a", "exp": 1700000000.5}, {"sub": "ab", "exp": 1}):
            self.assertEqual(jwt_expiry(token(claims)), float(claims["exp"]))

    def test_expired_at_or_after_exp(self):
        t = token({"exp": 1000})
        self.assertFalse(jwt_expired(t, 999.9))
        self.assertTrue(jwt_expired(t, 1000))
        self.assertTrue(jwt_expired(t, 2000))

    def test_no_expiry_for_what_is_not_a_jwt_with_a_numeric_exp(self):
        for t in (
            "an-api-key",
            "a.b",
            token({"sub": "no exp"}),
            token({"exp": "1700000000"}),
            token({"exp": True}),
            token([1, 2]),
            f"{b64({'alg': 'none'})}.{b64(b'not json')}.x",
            "x.!!!.y",
        ):
            self.assertIsNone(jwt_expiry(t), t)
            self.assertFalse(jwt_expired(t, 1e12), t)


if __name__ == "__main__":
    unittest.main()
