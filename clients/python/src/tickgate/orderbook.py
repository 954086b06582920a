"""A client-side copy of one order book window, kept by the protocol's rules.

A ``book`` replaces the window; a ``bupd`` sets the levels it names (size 0
removes one) and each side is then cut to the depth. ``cs`` is checked after
every message: CRC32 over the top min(depth, 25) asks, then bids, each level's
price and size as big-endian float64 (docs/PROTOCOL.md, Checksum).
"""
from __future__ import annotations

import struct
import zlib
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

Level = Tuple[float, float]
"""One price level: (price, size)."""

BOOK_DEPTHS = (1, 5, 10, 25, 50, 100, 500, 1000)
"""The depths a book subscription may ask for."""

CHECKSUM_LEVELS = 25
"""The checksum covers at most this many levels per side, whatever the depth."""

_LEVEL = struct.Struct(">dd")


def book_checksum(asks: Sequence[Level], bids: Sequence[Level], depth: int) -> int:
    """The protocol's ``cs`` of a window: exact float64 bytes, no decimal formatting to get wrong."""
    k = min(depth, CHECKSUM_LEVELS)
    return zlib.crc32(b"".join(_LEVEL.pack(p, s) for p, s in list(asks[:k]) + list(bids[:k])))


def _levels(raw: object) -> Iterable[Level]:
    if not isinstance(raw, list):
        return ()
    out = []
    for lv in raw:
        if isinstance(lv, (list, tuple)) and len(lv) >= 2:
            out.append((float(lv[0]), float(lv[1])))
    return out


def _merge(side: Sequence[Level], changes: Iterable[Level], best_is_highest: bool, depth: int) -> List[Level]:
    levels: Dict[float, float] = dict(side)
    for p, s in changes:
        if s == 0:
            levels.pop(p, None)
        else:
            levels[p] = s
    return sorted(levels.items(), reverse=best_is_highest)[:depth]


class OrderBook:
    """One symbol's window: bids best (highest) first, asks best (lowest) first."""

    __slots__ = ("symbol", "depth", "q", "bids", "asks")

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.q = 0
        self.bids: List[Level] = []
        self.asks: List[Level] = []

    def replace(self, m: Dict[str, object]) -> None:
        """Applies a ``book``. It is sorted and cut already; sorting again costs little and trusts nothing."""
        self.q = int(m["q"])  # type: ignore[call-overload]
        self.bids = _merge((), _levels(m.get("bids")), True, self.depth)
        self.asks = _merge((), _levels(m.get("asks")), False, self.depth)

    def update(self, m: Dict[str, object]) -> None:
        """Applies a ``bupd`` (the caller has checked that its ``q`` follows)."""
        self.q = int(m["q"])  # type: ignore[call-overload]
        if "bids" in m:
            self.bids = _merge(self.bids, _levels(m["bids"]), True, self.depth)
        if "asks" in m:
            self.asks = _merge(self.asks, _levels(m["asks"]), False, self.depth)

    def checksum(self) -> int:
        return book_checksum(self.asks, self.bids, self.depth)


class ResyncPolicy:
    """When to resubscribe a book that failed its check: at once, unless it
    also failed within the last ``quiet_s``; then after a delay that doubles
    (1 s, 2 s, ...) up to ``max_delay_s``. A persistent fault then costs a
    request every ``max_delay_s``, not a flood."""

    def __init__(self, quiet_s: float = 30.0, first_delay_s: float = 1.0, max_delay_s: float = 30.0) -> None:
        self.quiet_s = quiet_s
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self._last: Dict[str, Tuple[float, float]] = {}  # symbol -> (time of last failure, delay used then)

    def delay(self, symbol: str, now: float) -> float:
        """Records a failure of ``symbol`` at ``now`` (monotonic seconds) and returns the wait before resubscribing."""
        prev: Optional[Tuple[float, float]] = self._last.get(symbol)
        if prev is None or now - prev[0] > self.quiet_s:
            d = 0.0
        else:
            d = min(max(self.first_delay_s, 2 * prev[1]), self.max_delay_s)
        self._last[symbol] = (now, d)
        return d

    def forget(self, symbol: str) -> None:
        self._last.pop(symbol, None)
