"""tickgate: an asyncio client for the tickgate market-data stream.

See ``Client`` for the whole surface; the events it yields are in
``tickgate.events``. The wire protocol is docs/PROTOCOL.md in the tickgate
repository.
"""
from .backoff import Backoff
from .client import PROTOCOL_VERSION, Client, Counters, TokenSource
from .errors import AuthError, ConnectError, ProtocolError, TickgateError, TokenExpiredError
from .events import (
    Book,
    BookResync,
    Bye,
    Channel,
    Connected,
    Disconnected,
    Position,
    Quote,
    ServerError,
    Status,
    StatusChange,
    SubscribeError,
    Trade,
    TradeGap,
    TradeResume,
    TradeSkipped,
    Update,
)
from .jwt import jwt_expired, jwt_expiry
from .orderbook import BOOK_DEPTHS, Level, OrderBook, book_checksum

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "BOOK_DEPTHS",
    "Backoff",
    "Book",
    "BookResync",
    "Bye",
    "Channel",
    "Client",
    "ConnectError",
    "Connected",
    "Counters",
    "Disconnected",
    "Level",
    "OrderBook",
    "PROTOCOL_VERSION",
    "Position",
    "ProtocolError",
    "Quote",
    "ServerError",
    "Status",
    "StatusChange",
    "SubscribeError",
    "TickgateError",
    "TokenExpiredError",
    "TokenSource",
    "Trade",
    "TradeGap",
    "TradeResume",
    "TradeSkipped",
    "Update",
    "book_checksum",
    "jwt_expired",
    "jwt_expiry",
]
