"""What ``Client.updates()`` yields: one frozen dataclass per kind of event."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, NamedTuple, Optional, Tuple, Union

from .orderbook import Level

Status = Literal["live", "stale", "unknown"]
"""A symbol's status on one channel (docs/PROTOCOL.md, ``stat``)."""

Channel = Literal["quote", "book", "trade"]

FieldValue = Union[float, int, str]


class Position(NamedTuple):
    """A trade position: epoch ``e`` and position ``q``, compared only within one epoch."""

    e: str
    q: int


@dataclass(frozen=True)
class Bye:
    """The server's goodbye before it closed the connection."""

    code: str
    reason: str
    retry_ms: Optional[int]
    """None when the ``bye`` had no ``retryMs``."""


@dataclass(frozen=True)
class Quote:
    """A symbol's merged state after a ``snap`` (``snapshot``) or an ``upd``.

    ``state`` is the whole state (a copy, safe to keep); ``changed`` the
    fields this event changed (every field for a snapshot). ``merged`` counts
    the source ticks behind it: the server's ``n``, plus updates the client
    merged while the reader was behind.
    """

    symbol: str
    q: int
    state: Mapping[str, FieldValue]
    changed: Mapping[str, FieldValue]
    snapshot: bool
    status: Status
    merged: int = 1

    @property
    def stale(self) -> bool:
        return self.status == "stale"


@dataclass(frozen=True)
class Book:
    """A verified order book window after a ``book`` (``snapshot``) or a ``bupd``."""

    symbol: str
    q: int
    depth: int
    bids: Tuple[Level, ...]
    asks: Tuple[Level, ...]
    snapshot: bool
    status: Status

    @property
    def stale(self) -> bool:
        return self.status == "stale"


@dataclass(frozen=True)
class Trade:
    """One trade print, delivered once, in order per symbol."""

    symbol: str
    position: Position
    px: float
    sz: float
    side: Optional[str]
    id: Optional[Union[str, int]]
    ts: Optional[float]
    message: Mapping[str, Any] = field(repr=False)
    """The ``trade`` message as received."""

    @property
    def q(self) -> int:
        return self.position.q


@dataclass(frozen=True)
class TradeGap:
    """Trades with ``from_q < q <= to_q`` were lost: they left the gateway's history while this client was behind."""

    symbol: str
    from_q: int
    to_q: int


@dataclass(frozen=True)
class TradeResume:
    """A trade subscription renewed with ``since`` after a reconnect.

    ``recovered`` false: the trades after ``since`` may be lost (another
    epoch, or older than the gateway's history); live trades continue from
    ``position``.
    """

    symbol: str
    url: str
    since: Position
    position: Position
    recovered: bool


@dataclass(frozen=True)
class TradeSkipped:
    """A trade at or below the position held (the protocol rules it out): not delivered."""

    symbol: str
    q: int
    held: int


@dataclass(frozen=True)
class StatusChange:
    """A symbol's status changed on one channel (``stat``, or ``live`` when data follows a non-live status)."""

    symbol: str
    channel: Channel
    status: Status


@dataclass(frozen=True)
class BookResync:
    """A book failed its check and is being fetched again.

    ``reason`` is ``"checksum"`` (then ``expected`` is the server's ``cs``
    and ``computed`` the client's) or ``"sequence"`` (a ``bupd`` whose ``q``
    is not ``prev_q`` + 1). The resubscribe goes out after ``delay_s``.
    """

    symbol: str
    q: int
    reason: Literal["checksum", "sequence"]
    prev_q: int
    expected: Optional[int]
    computed: Optional[int]
    delay_s: float


@dataclass(frozen=True)
class SubscribeError:
    """A symbol the server refused (``ack.err``, or ``err`` ``NOT_ENTITLED``); it is no longer subscribed."""

    symbol: Optional[str]
    channel: Channel
    code: str
    msg: str


@dataclass(frozen=True)
class ServerError:
    """An ``err`` from the server that names no subscription."""

    code: str
    msg: str
    id: Optional[Union[str, int]]


@dataclass(frozen=True)
class Connected:
    """A connection is open (``hello`` received) and the subscriptions have been sent."""

    url: str
    sid: str
    hb_ms: int
    attempt: int


@dataclass(frozen=True)
class Disconnected:
    """A connection ended or an attempt failed; the next attempt goes to ``next_url`` after ``delay_s``.

    ``opened`` is false for an attempt that never got a ``hello``.
    ``attempt`` counts attempts since the last connection that stayed open
    ``Backoff.stable_s`` after its ``hello``; one that ended sooner counts
    as an attempt too, so the delays go on growing.
    """

    url: str
    reason: str
    opened: bool
    bye: Optional[Bye]
    next_url: str
    delay_s: float
    attempt: int


Update = Union[
    Quote,
    Book,
    Trade,
    TradeGap,
    TradeResume,
    TradeSkipped,
    StatusChange,
    BookResync,
    SubscribeError,
    ServerError,
    Connected,
    Disconnected,
]
"""Everything ``Client.updates()`` yields."""
