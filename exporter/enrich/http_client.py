"""Plain HTTP GETs for the metadata sources: over a unix socket (Docker) or TCP/TLS (Kubernetes).

The standard library only: http.client with a unix-socket connection class. Every failure, from an
unreachable socket to a body that is not JSON, is one `SourceError` whose message fits on a line."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit


class SourceError(Exception):
    """A metadata source could not answer; str() is one line."""


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def connection(base_url: str, timeout: float, context: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
    """A connection to `http://host:port`, `https://host:port` or `unix:///path`."""
    url = urlsplit(base_url)
    if url.scheme == "unix":
        return UnixConnection(url.path, timeout)
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.hostname or "", url.port or 443, timeout=timeout, context=context)
    if url.scheme == "http":
        return http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=timeout)
    raise SourceError(f"unsupported URL {base_url!r}")


def get_json(conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None,
             limit: int = 64 << 20) -> tuple[int, Any]:
    """(status, parsed body) of one GET; the body is None when the status is not 2xx."""
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read(limit)
    except (OSError, http.client.HTTPException) as err:
        conn.close()
        raise SourceError(f"GET {path}: {err or type(err).__name__}") from None
    if not 200 <= response.status < 300:
        return response.status, None
    try:
        return response.status, json.loads(body)
    except ValueError as err:
        raise SourceError(f"GET {path}: not JSON: {err}") from None
