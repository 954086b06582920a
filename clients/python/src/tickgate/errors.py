"""Errors that end a client: each says why it stopped for good."""
from __future__ import annotations


class TickgateError(Exception):
    """Base class of the client's errors."""


class ConnectError(TickgateError):
    """No gateway could be reached before the first connection (see ``retry_first_connect``)."""


class AuthError(TickgateError):
    """The gateway refused the credentials, and there is no way to get others.

    ``code`` is the gateway's code (``AUTH_REQUIRED``, ``AUTH_INVALID``,
    ``AUTH_EXPIRED``, ``ORIGIN_NOT_ALLOWED``) when it gave one.
    """

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class TokenExpiredError(AuthError):
    """The token's JWT ``exp`` has passed: connecting with it would only be refused."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "AUTH_EXPIRED")


class ProtocolError(TickgateError):
    """The server does not speak tickgate protocol v1."""
