"""The tickgate stream client: one WebSocket connection at a time, kept up.

The protocol's bookkeeping is done here (docs/PROTOCOL.md): quote snapshots
and deltas merged per symbol, old updates dropped by ``q``; order books kept
and verified by their checksum, fetched again on a mismatch; trade prints
delivered once each, in order, and resumed from their position after a
reconnect; per-symbol status per channel; reconnect with backoff and full
jitter, honouring the ``retryMs`` of a ``bye`` and the ``Retry-After`` of a
refused upgrade (429, 503); a connection that sends no
frame for about 3 x ``hbMs`` is given up as dead; tokens from a callable,
checked against their JWT ``exp`` and refreshed before they run out.
"""
from __future__ import annotations

import asyncio
import collections
import datetime
import email.utils
import inspect
import time
from dataclasses import dataclass, field
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

import msgpack
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatusCode

from .backoff import Backoff
from .errors import AuthError, ConnectError, ProtocolError, TickgateError, TokenExpiredError
from .events import (
    Book,
    BookResync,
    Bye,
    Channel,
    Connected,
    Disconnected,
    FieldValue,
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
from .jwt import jwt_expiry
from .orderbook import BOOK_DEPTHS, OrderBook, ResyncPolicy

PROTOCOL_VERSION = 1
"""The protocol version this client speaks (``hello.v``)."""

TokenSource = Union[str, Callable[[], Union[str, Awaitable[str]]]]
"""A static token, or a function (plain or async) returning a fresh one."""

_SUB_CHUNK = 500  # symbols per `sub` request, far below the server's message size limit
_STATUSES = ("live", "stale", "unknown")
_AUTH_CODES = ("AUTH_REQUIRED", "AUTH_INVALID", "AUTH_EXPIRED")
# The longest Retry-After waited out in one go. A longer one (a day-long
# failed-attempt window, a proxy's mistake) would leave the client silently
# parked; asking again after this costs one more refused upgrade, and the
# answer carries a fresh Retry-After.
_RETRY_AFTER_MAX_S = 300.0


def _valid_symbol(s: object) -> bool:
    return isinstance(s, str) and 0 < len(s) <= 64 and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in s)


def _int(v: object, default: int = 0) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


@dataclass
class Counters:
    """What the client found and did, since it was made."""

    connections: int = 0
    book_checked: int = 0
    book_mismatches: int = 0
    book_breaks: int = 0
    book_resubscribes: int = 0
    trade_duplicates: int = 0
    trade_gaps: int = 0
    trade_positions_lost: int = 0
    trade_resumes: int = 0
    trade_recovered: int = 0
    token_refreshes: int = 0


@dataclass
class _QuoteSub:
    throttle_ms: int
    q: int = 0
    synced: bool = False  # False until this connection's snap: upds cannot merge into an older state
    state: Optional[Dict[str, FieldValue]] = None
    status: Optional[Status] = None
    confirmed: bool = False  # whether this connection said anything of its status yet


@dataclass
class _BookSub:
    depth: int
    throttle_ms: int
    held: Optional[OrderBook] = None  # None while waiting for a (fresh) `book`
    view: Optional[Book] = None  # the last verified window
    status: Optional[Status] = None
    confirmed: bool = False
    resync: Optional["asyncio.Task[None]"] = None


@dataclass
class _TradeSub:
    throttle_ms: int
    last: int
    pos: Optional[Position] = None  # of the last trade delivered (or the acked one)
    epoch: Optional[str] = None  # epoch of a `last` subscription whose first trade has not come yet
    status: Optional[Status] = None
    confirmed: bool = False


@dataclass
class _TradeRequest:
    since: Dict[str, Position]
    last: int


@dataclass
class _End:
    """How a connection attempt or session ended."""

    reason: str
    opened: bool = False
    bye: Optional[Bye] = None
    http_status: Optional[int] = None
    retry_after_s: Optional[float] = None  # a refused upgrade's Retry-After
    terminal: Optional[TickgateError] = None
    open_s: float = 0.0  # how long it stayed open after its hello


class _Stream:
    """One ``updates()`` reader: a bounded queue. While it is full the client
    stops reading the socket, so the server's own flow control (conflation,
    fresh books, trade cursors) applies instead of a growing queue here."""

    def __init__(self, limit: int, done: Callable[["_Stream"], None]) -> None:
        self.items: Deque[Update] = collections.deque()
        self.limit = limit
        self.wake = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.ended = False
        self.error: Optional[BaseException] = None
        self._done = done

    def push(self, u: Update) -> None:
        self.items.append(u)
        self.wake.set()
        if len(self.items) >= self.limit:
            self.space.clear()

    def end(self, error: Optional[BaseException] = None) -> None:
        self.ended = True
        self.error = error
        self.wake.set()
        self.space.set()

    def __aiter__(self) -> "_Stream":
        return self

    async def __anext__(self) -> Update:
        while not self.items:
            if self.ended:
                self._done(self)
                if self.error is not None:
                    err, self.error = self.error, None
                    raise err
                raise StopAsyncIteration
            self.wake.clear()
            await self.wake.wait()
        u = self.items.popleft()
        if len(self.items) < self.limit:
            self.space.set()
        return u


class Client:
    """A tickgate stream client.

    ::

        client = Client("ws://127.0.0.1:8080/v1/stream", token=get_token)
        client.subscribe(["AAPL", "EUR/USD"])
        client.subscribe_book(["BTC/USDT"], depth=10)
        client.subscribe_trades(["AAPL"], last=100)
        async with client:
            async for u in client.updates():
                print(u)

    ``url`` may be a list: each attempt goes to the next one in turn.
    ``token``: a string, or a function (plain or async) called before every
    connection attempt, to refresh a JWT before its ``exp``, and after the
    gateway refuses a token. A token whose ``exp`` has passed is never sent.
    Without ``retry_first_connect``, failing to reach every URL once before
    the first connection ends the client with ``ConnectError``.
    """

    def __init__(
        self,
        url: Union[str, Sequence[str]],
        *,
        token: Optional[TokenSource] = None,
        backoff: Optional[Backoff] = None,
        heartbeat_multiplier: float = 3.0,
        connect_timeout_s: float = 10.0,
        retry_first_connect: bool = False,
        refresh_margin_s: float = 30.0,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls or not all(isinstance(u, str) and u.startswith(("ws://", "wss://")) for u in urls):
            raise ValueError(f"url: expected a ws:// or wss:// URL or a non-empty list of them, got {url!r}")
        if token is not None and not (callable(token) or (isinstance(token, str) and token)):
            raise ValueError("token: expected a non-empty string or a function returning one")
        if not heartbeat_multiplier > 1:
            raise ValueError(f"heartbeat_multiplier: expected a number > 1, got {heartbeat_multiplier!r}")
        if not connect_timeout_s > 0:
            raise ValueError(f"connect_timeout_s: expected a number > 0, got {connect_timeout_s!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending: expected an integer >= 1, got {max_pending!r}")
        self.urls: List[str] = urls
        self._token_source = token
        self.backoff = backoff or Backoff()
        self.heartbeat_multiplier = heartbeat_multiplier
        self.connect_timeout_s = connect_timeout_s
        self.retry_first_connect = retry_first_connect
        self.refresh_margin_s = refresh_margin_s
        self.max_pending = max_pending
        self._clock = clock
        self._wall = wall_clock
        self.counters = Counters()

        self._quotes: Dict[str, _QuoteSub] = {}
        self._books: Dict[str, _BookSub] = {}
        self._trades: Dict[str, _TradeSub] = {}
        self._trade_requests: Dict[int, _TradeRequest] = {}
        self._resyncs = ResyncPolicy()
        self._streams: Set[_Stream] = set()
        self._ws: Optional[Any] = None  # the open connection, once its hello is in
        self._url = urls[0]
        self._bye: Optional[Bye] = None
        self._opened_at = 0.0  # when the current connection's hello came (clock time)
        self._next_id = 1
        self._task: Optional["asyncio.Task[None]"] = None
        self._closing: Optional[asyncio.Event] = None
        self._auth_retry: Optional[asyncio.Event] = None
        self._error: Optional[TickgateError] = None
        self.hello: Optional[Mapping[str, Any]] = None
        """The current connection's ``hello``, or None while not connected."""

    # ---- subscriptions ----

    def subscribe(self, symbols: Iterable[str], *, throttle_ms: int = 0) -> None:
        """Quotes of ``symbols``: a snapshot, then every change (at most one
        per ``throttle_ms``). Sent now when connected, and again after every
        reconnect."""
        _check_throttle(throttle_ms)
        new = self._symbols(symbols)
        for s in new:
            sub = self._quotes.get(s)
            if sub is None:
                self._quotes[s] = _QuoteSub(throttle_ms)
            else:
                sub.throttle_ms = throttle_ms
                sub.synced = False
        if self._ws is not None and new:
            self._send_later(self._quote_requests(new, throttle_ms))

    def unsubscribe(self, symbols: Iterable[str]) -> None:
        """Stops quotes for ``symbols``; their state is dropped at once."""
        self._unsub(self._quotes, "quote", symbols)

    def subscribe_book(self, symbols: Iterable[str], *, depth: int = 10, throttle_ms: int = 0) -> None:
        """Order books of ``symbols``, ``depth`` levels per side, every message verified by its checksum."""
        if depth not in BOOK_DEPTHS:
            raise ValueError(f"depth: expected one of {', '.join(map(str, BOOK_DEPTHS))}, got {depth!r}")
        _check_throttle(throttle_ms)
        new = self._symbols(symbols)
        for s in new:
            old = self._books.get(s)
            if old is not None and old.resync is not None:
                old.resync.cancel()
            self._books[s] = _BookSub(depth, throttle_ms, status=old.status if old else None)
        if self._ws is not None and new:
            self._send_later(self._book_requests(new, depth, throttle_ms))

    def unsubscribe_book(self, symbols: Iterable[str]) -> None:
        self._unsub(self._books, "book", symbols)

    def subscribe_trades(
        self,
        symbols: Iterable[str],
        *,
        last: int = 0,
        throttle_ms: int = 0,
        since: Optional[Mapping[str, Position]] = None,
    ) -> None:
        """Trade prints of ``symbols``: every one, in order, each once.

        ``last``: start with up to that many recent trades. ``since``: resume
        after positions kept from an earlier run (``trade_position``). After a
        reconnect the client resumes on its own from the last trade delivered.
        """
        if not isinstance(last, int) or last < 0:
            raise ValueError(f"last: expected a non-negative integer, got {last!r}")
        _check_throttle(throttle_ms)
        new = self._symbols(symbols)
        for s in new:
            sub = self._trades.get(s)
            if sub is None:
                sub = self._trades[s] = _TradeSub(throttle_ms, last)
            else:
                sub.throttle_ms = throttle_ms
                sub.last = last
            if since is not None and s in since:
                p = since[s]
                sub.pos = Position(str(p[0]), int(p[1]))
        if self._ws is not None and new:
            self._send_later(self._trade_sub_requests(new))

    def unsubscribe_trades(self, symbols: Iterable[str]) -> None:
        self._unsub(self._trades, "trade", symbols)

    # ---- what the client holds ----

    def quote(self, symbol: str) -> Optional[Mapping[str, FieldValue]]:
        """A copy of the merged state of a subscribed symbol, or None before its first snapshot."""
        sub = self._quotes.get(symbol)
        return dict(sub.state) if sub is not None and sub.state is not None else None

    def book(self, symbol: str) -> Optional[Book]:
        """The last verified window of a subscribed book, or None before the first."""
        sub = self._books.get(symbol)
        return sub.view if sub is not None else None

    def trade_position(self, symbol: str) -> Optional[Position]:
        """The position of the last trade delivered (keep it to resume later with ``since``)."""
        sub = self._trades.get(symbol)
        return sub.pos if sub is not None else None

    def status(self, symbol: str, channel: Channel = "quote") -> Optional[Status]:
        """A subscribed symbol's status on ``channel``, or None before the gateway said."""
        subs: Mapping[str, Any] = {"quote": self._quotes, "book": self._books, "trade": self._trades}[channel]
        sub = subs.get(symbol)
        return sub.status if sub is not None else None

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def url(self) -> str:
        """The URL of the current connection (or the last one tried)."""
        return self._url

    # ---- lifecycle ----

    async def start(self) -> None:
        """Starts connecting (and reconnecting) in the background. Returns at once."""
        if self._task is not None:
            return
        self._closing = asyncio.Event()
        self._auth_retry = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Closes the connection and ends every ``updates()`` iterator."""
        task, self._task = self._task, None
        if self._closing is not None:
            self._closing.set()
        if task is not None and not task.done():
            task.cancel()
            # Python 3.11's asyncio.wait_for can swallow a cancellation that races
            # with the completion of what it waits for (a frame arriving just then),
            # and the task carries on: cancel again until it takes. The wait lets a
            # cancelled session finish its close handshake (at most 1.5 s) first.
            while True:
                done, _ = await asyncio.wait([task], timeout=2.0)
                if done:
                    break
                task.cancel()
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        for s in list(self._streams):
            s.end()

    async def __aenter__(self) -> "Client":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def updates(self) -> AsyncIterator[Update]:
        """Events as an async iterator: first the current state (a ``Quote``
        and ``Book`` per symbol held, a ``StatusChange`` per known non-live
        status), then every event as it happens. It ends when the client is
        closed, and raises the error that stopped the client for good."""
        st = _Stream(self.max_pending, self._streams.discard)
        for s, q in self._quotes.items():
            if q.state is not None:
                st.push(Quote(s, q.q, dict(q.state), dict(q.state), True, q.status or "live"))
            elif q.status is not None and q.status != "live":
                st.push(StatusChange(s, "quote", q.status))
        for b in self._books.values():
            if b.view is not None:
                st.push(b.view)
        for s, t in self._trades.items():
            if t.status is not None and t.status != "live":
                st.push(StatusChange(s, "trade", t.status))
        if self._error is not None or (self._task is None and self._closing is not None):
            st.end(self._error)
        else:
            self._streams.add(st)
        return st

    # ---- connecting ----

    async def _run(self) -> None:
        attempt = 0  # attempts since the last connection that stayed open backoff.stable_s
        ever_opened = False
        retry_s: Optional[float] = None  # the last bye's retryMs, until a connection opens
        refused: Optional[str] = None  # a token the gateway refused: never offered again
        turn = 0
        try:
            while True:
                url = self.urls[turn % len(self.urls)]
                turn += 1
                attempt += 1
                self._url = url
                end, token = await self._token_for_attempt(refused)
                if end is None:
                    end = await self._session(url, token, attempt)
                if end.opened:
                    ever_opened = True
                    retry_s = None
                    # Only a connection that lasted starts the backoff over: clients
                    # cut soon after hello keep waiting longer instead of coming back at once.
                    if end.open_s >= self.backoff.stable_s:
                        attempt = 1
                if end.bye is not None and end.bye.retry_ms is not None and end.bye.code != "AUTH_EXPIRED":
                    retry_s = end.bye.retry_ms / 1000
                # The credentials are done for: a refused upgrade, or a bye saying so.
                creds_done = end.http_status == 401 or (end.bye is not None and (end.bye.code == "AUTH_EXPIRED" or end.bye.retry_ms is None))
                if creds_done:
                    refused = token
                    if not callable(self._token_source):
                        why = end.reason if end.bye is None else f"gateway said bye {end.bye.code}: {end.bye.reason}"
                        end.terminal = end.terminal or AuthError(f"{why}; no get_token to get another token", "AUTH_EXPIRED" if end.bye else "AUTH_INVALID")
                # Before any connection, one round of the URLs decides, unless a fresh token may change the answer.
                fresh_token_may_help = creds_done and callable(self._token_source)
                if end.terminal is None and not ever_opened and not self.retry_first_connect and attempt >= len(self.urls) and not fresh_token_may_help:
                    end.terminal = ConnectError(f"cannot connect to {', '.join(self.urls)}: {end.reason}")
                next_url = self.urls[turn % len(self.urls)]
                if end.terminal is not None:
                    self._stop(end.terminal)  # the error says why; there is no next attempt to announce
                    return
                delay = _reconnect_delay(self.backoff, attempt, retry_s, end.retry_after_s, opened=end.opened)
                self._emit(Disconnected(url, end.reason, end.opened, end.bye, next_url, delay, attempt))
                assert self._closing is not None
                try:
                    await asyncio.wait_for(self._closing.wait(), delay)
                    return
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug here must end the iterators, not leave them waiting forever
            self._stop(TickgateError(f"client failed: {e!r}"))
            raise

    def _stop(self, error: TickgateError) -> None:
        self._error = error
        for s in list(self._streams):
            s.end(error)

    async def _token_for_attempt(self, refused: Optional[str]) -> Tuple[Optional[_End], Optional[str]]:
        """The token for the next attempt, or how the attempt failed without connecting."""
        src = self._token_source
        if src is None:
            return None, None
        if isinstance(src, str):
            exp = jwt_expiry(src)
            if exp is not None and exp <= self._wall():
                return _End(f"token expired at {_stamp(exp)}", terminal=TokenExpiredError(f"the token expired at {_stamp(exp)}; pass a get_token function to refresh it")), None
            return None, src
        try:
            token = await self._call_token()
            if token == refused or _expired(token, self._wall()):
                token = await self._call_token()  # once more: the first may have been cached
        except Exception as e:
            return _End(f"get_token failed: {e!r}"), None
        if token == refused:
            return _End("get_token returned the token the gateway refused"), None
        exp = jwt_expiry(token)
        if exp is not None and exp <= self._wall():
            return _End(f"get_token returned a token that expired at {_stamp(exp)}"), None
        return None, token

    async def _call_token(self) -> str:
        assert callable(self._token_source)
        r = self._token_source()
        if inspect.isawaitable(r):
            r = await r
        if not isinstance(r, str) or not r:
            raise TypeError(f"get_token: expected a non-empty string, got {type(r).__name__}")
        return r

    async def _session(self, url: str, token: Optional[str], attempt: int) -> _End:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await websockets.connect(
                url,
                extra_headers=headers,
                max_size=None,
                ping_interval=None,  # liveness comes from the server's frames (hb), not our pings
                close_timeout=1,
                open_timeout=self.connect_timeout_s,
                compression=None,
            )
        except InvalidStatusCode as e:
            code = e.status_code
            if code == 403:
                return _End(f"upgrade refused with HTTP 403", http_status=403, terminal=AuthError(f"{url} refused the upgrade with HTTP 403 (origin not allowed)", "ORIGIN_NOT_ALLOWED"))
            after = _retry_after_s(e.headers.get("Retry-After"), self._wall())
            said = "" if after is None else f" (Retry-After {after:g} s)"
            return _End(f"upgrade refused with HTTP {code}{said}", http_status=code, retry_after_s=after)
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as e:
            return _End(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        self._bye = None
        dead = False
        try:
            try:
                frame = await asyncio.wait_for(ws.recv(), self.connect_timeout_s)
                first = msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else None
            except asyncio.TimeoutError:
                dead = True
                return _End(f"no hello within {self.connect_timeout_s:g} s")
            except (ValueError, msgpack.UnpackException) as e:
                return _End(f"undecodable first frame: {e}", terminal=ProtocolError(f"{url} does not speak tickgate v1: {e}"))
            hello = first[0] if isinstance(first, list) and first and isinstance(first[0], dict) else None
            if hello is None or hello.get("t") != "hello" or hello.get("v") != PROTOCOL_VERSION:
                return _End("first message is not hello v1", terminal=ProtocolError(f"{url} does not speak tickgate v1 (first message {first!r:.200})"))
            return await self._open(ws, url, token, attempt, hello, first[1:])
        except ConnectionClosed as e:
            return self._ended(_closed_reason(e, self._bye))
        except _Dead as e:
            dead = True
            return self._ended(str(e))
        except (ValueError, msgpack.UnpackException) as e:
            return self._ended(f"undecodable frame: {e}")
        finally:
            self._ws = None
            self.hello = None
            for b in self._books.values():
                if b.resync is not None:
                    b.resync.cancel()
                    b.resync = None
            if dead:
                ws.transport.abort()  # a dead peer never answers a close handshake
            else:
                try:
                    await asyncio.wait_for(ws.close(), 1.5)
                except Exception:
                    ws.transport.abort()

    def _ended(self, reason: str) -> _End:
        """How the connection (or attempt) ended, now: after its hello, for how long it was open."""
        opened = self.hello is not None
        return _End(reason, opened=opened, bye=self._bye, open_s=self._clock() - self._opened_at if opened else 0.0)

    async def _open(self, ws: Any, url: str, token: Optional[str], attempt: int, hello: Dict[str, Any], rest: List[Any]) -> _End:
        self.hello = hello
        self._opened_at = self._clock()
        self._ws = ws
        self.counters.connections += 1
        hb_s = max(_int(hello.get("hbMs"), 5000), 1) / 1000
        dead_after = self.heartbeat_multiplier * hb_s
        # q restarts with every connection: nothing merges until the fresh snapshots.
        for q in self._quotes.values():
            q.synced = False
            q.confirmed = False
        for b in self._books.values():
            b.held = None
            b.confirmed = False
        for t in self._trades.values():
            t.confirmed = False
        self._trade_requests.clear()
        for req in self._all_requests():
            await ws.send(msgpack.packb(req))
        self._emit(Connected(url, str(hello.get("sid", "")), int(hb_s * 1000), attempt))
        refresher = asyncio.ensure_future(self._refresh_token(ws, token)) if token is not None and callable(self._token_source) else None
        try:
            for m in rest:
                self._on_message(m)
            last_frame = self._clock()
            while True:
                wait = last_frame + dead_after - self._clock()
                if wait <= 0:
                    raise _Dead(f"no frame for {dead_after:g} s")
                try:
                    frame = await asyncio.wait_for(ws.recv(), wait)
                except asyncio.TimeoutError:
                    raise _Dead(f"no frame for {dead_after:g} s") from None
                last_frame = self._clock()
                if isinstance(frame, bytes):
                    msgs = msgpack.unpackb(frame, raw=False)
                    if isinstance(msgs, list):
                        for m in msgs:
                            if isinstance(m, dict):
                                self._on_message(m)
                for st in list(self._streams):
                    if not st.space.is_set():
                        await st.space.wait()
                        last_frame = self._clock()  # not reading meanwhile: no sign of death
        finally:
            if refresher is not None:
                refresher.cancel()

    async def _refresh_token(self, ws: Any, token: str) -> None:
        """Sends ``auth`` with a fresh token before the current one's ``exp``,
        so that a long session is not cut at expiry."""
        assert self._auth_retry is not None
        exp = jwt_expiry(token)
        obtained = self._wall()
        while exp is not None:
            lead = min(self.refresh_margin_s, 0.25 * max(exp - obtained, 0.0))
            due = exp - lead - self._wall()
            self._auth_retry.clear()
            try:
                await asyncio.wait_for(self._auth_retry.wait(), max(due, 0.0))
            except asyncio.TimeoutError:
                pass
            try:
                fresh = await self._call_token()
            except Exception:
                fresh = None
            new_exp = jwt_expiry(fresh) if fresh is not None else None
            if fresh is None or fresh == token or (new_exp is not None and new_exp <= exp):
                # Nothing fresher yet: ask again soon, until the current token runs out.
                obtained = self._wall()
                if exp - obtained <= 0:
                    return  # the gateway says bye AUTH_EXPIRED; the next connection asks again
                await asyncio.sleep(min(1.0, max((exp - obtained) / 4, 0.05)))
                continue
            await ws.send(msgpack.packb({"op": "auth", "id": "auth", "token": fresh}))
            self.counters.token_refreshes += 1
            token, exp, obtained = fresh, new_exp, self._wall()

    # ---- requests ----

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _all_requests(self) -> List[Dict[str, Any]]:
        reqs: List[Dict[str, Any]] = []
        by_throttle: Dict[int, List[str]] = {}
        for s, q in self._quotes.items():
            by_throttle.setdefault(q.throttle_ms, []).append(s)
        for t, syms in by_throttle.items():
            reqs += self._quote_requests(syms, t)
        by_view: Dict[Tuple[int, int], List[str]] = {}
        for s, b in self._books.items():
            by_view.setdefault((b.depth, b.throttle_ms), []).append(s)
        for (d, t), syms in by_view.items():
            reqs += self._book_requests(syms, d, t)
        reqs += self._trade_sub_requests(list(self._trades))
        return reqs

    def _quote_requests(self, symbols: Sequence[str], throttle_ms: int) -> List[Dict[str, Any]]:
        out = []
        for i in range(0, len(symbols), _SUB_CHUNK):
            req: Dict[str, Any] = {"op": "sub", "id": self._new_id(), "symbols": list(symbols[i : i + _SUB_CHUNK])}
            if throttle_ms:
                req["throttleMs"] = throttle_ms
            out.append(req)
        return out

    def _book_requests(self, symbols: Sequence[str], depth: int, throttle_ms: int) -> List[Dict[str, Any]]:
        out = []
        for i in range(0, len(symbols), _SUB_CHUNK):
            req: Dict[str, Any] = {"op": "sub", "id": self._new_id(), "channel": "book", "symbols": list(symbols[i : i + _SUB_CHUNK]), "depth": depth}
            if throttle_ms:
                req["throttleMs"] = throttle_ms
            out.append(req)
        return out

    def _trade_sub_requests(self, symbols: Sequence[str]) -> List[Dict[str, Any]]:
        """Trade `sub`s: `since` for symbols with a position, `last` for the others; one per (throttle, last)."""
        groups: Dict[Tuple[int, int], List[str]] = {}
        for s in symbols:
            t = self._trades[s]
            groups.setdefault((t.throttle_ms, 0 if t.pos is not None else t.last), []).append(s)
        out = []
        for (throttle, last), syms in groups.items():
            for i in range(0, len(syms), _SUB_CHUNK):
                chunk = syms[i : i + _SUB_CHUNK]
                rid = self._new_id()
                req: Dict[str, Any] = {"op": "sub", "id": rid, "channel": "trade", "symbols": chunk}
                since = {s: self._trades[s].pos for s in chunk if self._trades[s].pos is not None}
                if since:
                    req["since"] = {s: {"e": p.e, "q": p.q} for s, p in since.items() if p is not None}
                if last:
                    req["last"] = last
                if throttle:
                    req["throttleMs"] = throttle
                self._trade_requests[rid] = _TradeRequest({s: p for s, p in since.items() if p is not None}, last)
                out.append(req)
        return out

    def _send_later(self, reqs: List[Dict[str, Any]]) -> None:
        ws = self._ws
        if ws is None:
            return
        for req in reqs:
            # Scheduled in order; each write is whole, so requests leave in this order.
            asyncio.ensure_future(_send_quietly(ws, req))

    def _unsub(self, subs: Dict[str, Any], channel: Channel, symbols: Iterable[str]) -> None:
        gone = [s for s in symbols if subs.pop(s, None) is not None]
        for s in gone:
            if channel == "book":
                self._resyncs.forget(s)
        if self._ws is not None and gone:
            req: Dict[str, Any] = {"op": "unsub", "id": self._new_id(), "symbols": gone}
            if channel != "quote":
                req["channel"] = channel
            self._send_later([req])

    def _symbols(self, symbols: Iterable[str]) -> List[str]:
        if isinstance(symbols, str):
            raise ValueError("symbols: expected a list of symbols, got a single string")
        out = []
        for s in symbols:
            if not _valid_symbol(s):
                raise ValueError(f"symbols: {s!r} is not a symbol (1-64 characters without control characters)")
            out.append(s)
        return out

    # ---- messages ----

    def _emit(self, u: Update) -> None:
        for st in self._streams:
            st.push(u)

    def _on_message(self, m: Dict[str, Any]) -> None:
        t = m.get("t")
        if t == "snap" or t == "upd":
            self._on_quote(m, t == "snap")
        elif t == "book" or t == "bupd":
            self._on_book(m, t == "book")
        elif t == "trade":
            self._on_trade(m)
        elif t == "gap":
            self._on_gap(m)
        elif t == "stat":
            self._on_stat(m)
        elif t == "ack":
            self._on_ack(m)
        elif t == "err":
            self._on_err(m)
        elif t == "bye":
            retry = m.get("retryMs")
            self._bye = Bye(str(m.get("code", "")), str(m.get("reason", "")), _int(retry) if isinstance(retry, (int, float)) else None)
        # hello, hb, pong, symbols and types this client does not know: nothing to do

    def _data_status(self, sub: Any, symbol: str, channel: Channel) -> None:
        """Data arrived: the symbol is live unless the gateway says otherwise (its
        `stat` follows the snapshot). A stale status kept from the previous
        connection is cleared by this connection's first data."""
        if sub.status is None:
            sub.status = "live"  # the usual case: no event for it
        elif sub.status == "unknown" or (not sub.confirmed and sub.status != "live"):
            self._set_status(sub, symbol, channel, "live")
        sub.confirmed = True

    def _set_status(self, sub: Any, symbol: str, channel: Channel, st: Status) -> None:
        sub.confirmed = True
        if sub.status != st:
            sub.status = st
            self._emit(StatusChange(symbol, channel, st))

    def _on_quote(self, m: Dict[str, Any], snapshot: bool) -> None:
        s = m.get("s")
        sub = self._quotes.get(s) if isinstance(s, str) else None
        d = m.get("d")
        q = m.get("q")
        if sub is None or not isinstance(d, dict) or not isinstance(q, int):
            return
        assert isinstance(s, str)
        if snapshot:
            sub.state = dict(d)
            sub.q = q
            sub.synced = True
            self._data_status(sub, s, "quote")
        else:
            if not sub.synced or sub.state is None or q <= sub.q:
                return  # before this connection's snapshot, or old: ignore
            sub.state.update(d)
            sub.q = q
        if self._streams:
            self._emit(Quote(s, q, dict(sub.state), dict(d), snapshot, sub.status or "live", max(_int(m.get("n"), 1), 1)))

    def _on_book(self, m: Dict[str, Any], snapshot: bool) -> None:
        s = m.get("s")
        sub = self._books.get(s) if isinstance(s, str) else None
        q = m.get("q")
        if sub is None or not isinstance(q, int):
            return
        assert isinstance(s, str)
        if snapshot:
            b = sub.held = OrderBook(s, sub.depth)
            b.replace(m)
        else:
            held = sub.held
            if held is None:
                return  # waiting for a fresh book: this bupd belongs to the one dropped
            if q != held.q + 1:
                self.counters.book_breaks += 1
                self._resync(sub, s, q, "sequence", held.q, None, None)
                return
            b = held
            prev = b.q
            b.update(m)
        self.counters.book_checked += 1
        cs = m.get("cs")
        if isinstance(cs, int):
            mine = b.checksum()
            if mine != cs:
                self.counters.book_mismatches += 1
                self._resync(sub, s, q, "checksum", q - 1 if not snapshot else 0, cs, mine)
                return
        if snapshot:
            self._data_status(sub, s, "book")
        sub.view = Book(s, b.q, b.depth, tuple(b.bids), tuple(b.asks), snapshot, sub.status or "live")
        self._emit(sub.view)

    def _resync(self, sub: _BookSub, s: str, q: int, reason: str, prev_q: int, expected: Optional[int], computed: Optional[int]) -> None:
        """Drops a book that failed its check and fetches it again (at once, or after a delay when it keeps failing)."""
        sub.held = None
        if sub.resync is not None:
            return  # a resubscribe is on its way already
        self.counters.book_resubscribes += 1
        delay = self._resyncs.delay(s, self._clock())
        self._emit(BookResync(s, q, reason, prev_q, expected, computed, delay))  # type: ignore[arg-type]
        reqs = self._book_requests([s], sub.depth, sub.throttle_ms)
        if delay == 0:
            self._send_later(reqs)
        else:
            sub.resync = asyncio.ensure_future(self._resync_later(sub, delay, reqs))

    async def _resync_later(self, sub: _BookSub, delay: float, reqs: List[Dict[str, Any]]) -> None:
        try:
            await asyncio.sleep(delay)
            sub.resync = None
            self._send_later(reqs)
        finally:
            sub.resync = None

    def _on_trade(self, m: Dict[str, Any]) -> None:
        s = m.get("s")
        sub = self._trades.get(s) if isinstance(s, str) else None
        q = m.get("q")
        if sub is None or not isinstance(q, int):
            return
        assert isinstance(s, str)
        if sub.pos is None:
            if sub.epoch is None:
                return  # no ack for it on this connection: cannot place it
            sub.pos = Position(sub.epoch, q)
            sub.epoch = None
        elif q <= sub.pos.q:
            self.counters.trade_duplicates += 1
            self._emit(TradeSkipped(s, q, sub.pos.q))
            return
        else:
            sub.pos = Position(sub.pos.e, q)
        side = m.get("side")
        tid = m.get("id")
        ts = m.get("ts")
        self._emit(
            Trade(
                s,
                sub.pos,
                float(m.get("px", 0.0)),
                float(m.get("sz", 0.0)),
                side if isinstance(side, str) else None,
                tid if isinstance(tid, (str, int)) else None,
                float(ts) if isinstance(ts, (int, float)) else None,
                m,
            )
        )

    def _on_gap(self, m: Dict[str, Any]) -> None:
        s = m.get("s")
        sub = self._trades.get(s) if isinstance(s, str) else None
        if sub is None:
            return
        assert isinstance(s, str)
        lo, hi = _int(m.get("from")), _int(m.get("to"))
        self.counters.trade_gaps += 1
        self.counters.trade_positions_lost += max(hi - lo, 0)
        if sub.pos is not None and hi > sub.pos.q:
            sub.pos = Position(sub.pos.e, hi)
        self._emit(TradeGap(s, lo, hi))

    def _on_stat(self, m: Dict[str, Any]) -> None:
        s = m.get("s")
        st = m.get("st")
        ch = m.get("ch", "quote")
        subs: Optional[Mapping[str, Any]] = {"quote": self._quotes, "book": self._books, "trade": self._trades}.get(ch)
        if subs is None or st not in _STATUSES or not isinstance(s, str):
            return
        sub = subs.get(s)
        if sub is not None:
            self._set_status(sub, s, ch, st)

    def _on_ack(self, m: Dict[str, Any]) -> None:
        ch = m.get("channel", "quote")
        if m.get("op") == "sub":
            subs: Optional[Dict[str, Any]] = {"quote": self._quotes, "book": self._books, "trade": self._trades}.get(ch)
            for e in m.get("err") or ():
                if not isinstance(e, dict):
                    continue
                s = e.get("s")
                if subs is not None and isinstance(s, str):
                    subs.pop(s, None)
                self._emit(SubscribeError(s if isinstance(s, str) else None, ch, str(e.get("code", "")), str(e.get("msg", ""))))
        if ch == "trade" and m.get("op") == "sub":
            req = self._trade_requests.pop(m.get("id"), None)  # type: ignore[arg-type]
            if req is not None:
                self._on_trade_ack(m, req)

    def _on_trade_ack(self, m: Dict[str, Any], req: _TradeRequest) -> None:
        pos = m.get("pos") or {}
        rec = m.get("rec") or {}
        for s, p in pos.items():
            sub = self._trades.get(s)
            if sub is None or not isinstance(p, dict):
                continue
            acked = Position(str(p.get("e", "")), _int(p.get("q")))
            self._data_status(sub, s, "trade")
            had = req.since.get(s)
            if had is not None:
                self.counters.trade_resumes += 1
                ok = rec.get(s) is True
                if ok:
                    self.counters.trade_recovered += 1
                else:
                    sub.pos = acked
                self._emit(TradeResume(s, self._url, had, acked, ok))
            elif req.last:
                # The `last` trades have q at or below the acked one: the position is the first trade's.
                sub.epoch = acked.e
            else:
                sub.pos = acked

    def _on_err(self, m: Dict[str, Any]) -> None:
        code = str(m.get("code", ""))
        msg = str(m.get("msg", ""))
        s = m.get("s")
        if code == "NOT_ENTITLED" and isinstance(s, str):
            for ch, subs in (("quote", self._quotes), ("book", self._books), ("trade", self._trades)):
                if s in subs:
                    del subs[s]  # type: ignore[attr-defined]
                    self._emit(SubscribeError(s, ch, code, msg))  # type: ignore[arg-type]
            return
        if m.get("id") == "auth" and code in _AUTH_CODES and self._auth_retry is not None:
            self._auth_retry.set()  # the refreshed token was refused: ask get_token again
        rid = m.get("id")
        self._emit(ServerError(code, msg, rid if isinstance(rid, (str, int)) else None))


class _Dead(Exception):
    """No frame for too long: the connection is given up without a close handshake."""


async def _send_quietly(ws: Any, req: Dict[str, Any]) -> None:
    try:
        await ws.send(msgpack.packb(req))
    except ConnectionClosed:
        pass  # the next connection subscribes afresh


def _check_throttle(throttle_ms: int) -> None:
    if not isinstance(throttle_ms, int) or isinstance(throttle_ms, bool) or throttle_ms < 0:
        raise ValueError(f"throttle_ms: expected a non-negative integer, got {throttle_ms!r}")


def _expired(token: str, now: float) -> bool:
    exp = jwt_expiry(token)
    return exp is not None and exp <= now


def _stamp(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def _retry_after_s(value: Optional[str], now: float) -> Optional[float]:
    """Seconds a ``Retry-After`` header value asks to wait: delay-seconds (what
    the gateway sends) or an HTTP-date (``now`` is the wall clock), at most
    ``_RETRY_AFTER_MAX_S``. None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        s = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": HTTP-dates are GMT
            when = when.replace(tzinfo=datetime.timezone.utc)
        s = when.timestamp() - now
    return min(max(s, 0.0), _RETRY_AFTER_MAX_S)


def _reconnect_delay(backoff: Backoff, attempt: int, retry_s: Optional[float], retry_after_s: Optional[float], opened: bool = False) -> float:
    """Seconds to wait before the next attempt; ``attempt`` counts as for
    ``Backoff.delay``.

    ``retry_s`` is the last ``bye``'s ``retryMs`` (see ``Backoff.delay``);
    ``retry_after_s`` the ``Retry-After`` of the upgrade just refused. The
    latter is a floor with the normal backoff's full jitter on top: clients
    refused together (a blocked user's instances, a draining server's
    clients) come back spread out, and never before the server said.

    ``opened``: the connection that ended had its ``hello``, so a
    ``retry_s`` is its own bye's and this is the first attempt after it
    (``Backoff.delay``'s ``first``).
    """
    d = backoff.delay(attempt, retry_s, first=True if opened else None)
    if retry_after_s is None:
        return d
    return max(d, retry_after_s + backoff.random() * backoff.cap(attempt))


def _closed_reason(e: ConnectionClosed, bye: Optional[Bye]) -> str:
    if bye is not None:
        return f"bye {bye.code}: {bye.reason}"
    rcvd = getattr(e, "rcvd", None)
    if rcvd is not None:
        return f"closed by the server (code {rcvd.code}{': ' + rcvd.reason if rcvd.reason else ''})"
    return "connection lost (no close frame)"


__all__ = ["Client", "Counters", "PROTOCOL_VERSION", "TokenSource"]
