"""Helpers for daemon tests that are not fixtures."""

from __future__ import annotations

import httpx

from stackd.daemon.paths import socket_path
from stackd.roots import Roots


def raw_http(roots: Roots) -> httpx.Client:
    """An HTTP client on the daemon's socket that sends whatever it is told (for
    malformed requests the stackd client would never make)."""
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path(roots))),
                        base_url="http://stackd", timeout=10)
