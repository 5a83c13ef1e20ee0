"""Venue errors: each reaches the user as one clear line, never with a secret in it."""

from __future__ import annotations

from fabio.errors import FabioError


class GatewayError(FabioError):
    """The gateway refused a call (`success: false`) or answered something unusable."""

    def __init__(self, endpoint: str, message: str, code: int | None = None) -> None:
        self.endpoint = endpoint
        self.code = code
        suffix = f" (errorCode {code})" if code is not None else ""
        super().__init__(f"ProjectX {endpoint}: {message}{suffix}")


class AuthError(GatewayError):
    """Login failed, or the session cannot be renewed."""


class RateLimited(GatewayError):
    """HTTP 429 after our own limiter: the gateway's window is fuller than we thought."""


class VenueUnavailable(GatewayError):
    """The gateway cannot be reached or answers 5xx."""


class OrderUncertain(GatewayError):
    """A money-moving call whose outcome is unknown (timeout, 5xx, 429, lost response).

    Never retried blindly: the caller looks the order up by its `customTag` first.
    """


class ParseError(FabioError):
    """A payload that cannot be read safely (e.g. a position size with an unknown side)."""
