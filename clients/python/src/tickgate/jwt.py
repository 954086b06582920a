"""Reading a JWT's expiry locally, without verifying it.

The client never needs to trust the claims (the gateway verifies the
signature); it only needs ``exp`` to avoid connecting with a token the
gateway is bound to refuse, and to refresh a token before it runs out.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Optional


def jwt_expiry(token: str) -> Optional[float]:
    """The ``exp`` claim of a JWT, in epoch seconds, or None.

    None means the token is not a JWT (an API key, say) or has no numeric
    ``exp``: it does not expire as far as the client can tell.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return float(exp)


def jwt_expired(token: str, now: float) -> bool:
    """Whether the token's ``exp`` (epoch seconds) is at or before ``now``."""
    exp = jwt_expiry(token)
    return exp is not None and exp <= now
