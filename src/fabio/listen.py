"""A listening socket bound before a server starts, so that a busy port is one clear error."""

from __future__ import annotations

import socket

from fabio.errors import FabioError


def bind_listener(
    host: str, port: int, what: str, hint: str = "choose another port with --port"
) -> socket.socket:
    """A TCP socket bound to host:port (port 0: any free one), or a one-line `FabioError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FabioError(
            f"{what} cannot listen on {host}:{port}: {exc.strerror or exc} ({hint})"
        ) from None
    return sock
