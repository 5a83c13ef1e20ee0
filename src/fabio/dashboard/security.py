"""The dashboard's guards: the control token, allowed hosts, and strict response headers."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass

from fabio.errors import FabioError

# Nothing inline, nothing from another origin, no framing, no plugins, no form posts. (uPlot
# and the page set styles through the CSSOM, which style-src 'self' allows.)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ControlToken:
    """The token every control action (kill, release) must present."""

    value: str
    generated: bool = False

    def __repr__(self) -> str:  # never shown by accident
        return "ControlToken(***)"

    def matches(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.value.encode())


def control_token(configured: str | None, host: str) -> ControlToken:
    """DASHBOARD_TOKEN, or a generated one on loopback; a public bind without one refuses."""
    if configured:
        if len(configured) < MIN_TOKEN_LENGTH:
            raise FabioError(
                f"DASHBOARD_TOKEN is too short: use at least {MIN_TOKEN_LENGTH} "
                "characters (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(24))'`)"
            )
        return ControlToken(configured)
    if not is_loopback(host):
        raise FabioError(
            f"--host {host} exposes the dashboard beyond this machine: set "
            "DASHBOARD_TOKEN (at least 16 characters) first, or keep the default "
            "127.0.0.1"
        )
    return ControlToken(secrets.token_urlsafe(24), generated=True)


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host headers accepted (a loopback bind refuses other names: DNS rebinding)."""
    names = {"127.0.0.1", "localhost", "[::1]"} if is_loopback(host) else set()
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        names.add(host)
    return {f"{n}:{port}" for n in names} | names
