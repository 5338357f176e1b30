"""The HTTP endpoint: a landing page, the Prometheus metrics path and health checks.

The metrics path answers in OpenMetrics when the client prefers it, else in the text format 0.0.4,
and gzip-compressed when the client accepts it (Prometheus always does)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exporter import __version__

log = logging.getLogger(__name__)


def parse_listen_address(address: str) -> tuple[str, int]:
    """':10039' -> ('', 10039); '[::1]:10039' -> ('::1', 10039)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class ListenError(Exception):
    """The listen address cannot be bound: in use, not an address of this host, no permission."""


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, ipv6: bool) -> None:
        import socket

        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        super().__init__(address, handler)


def bind(listen_address: str) -> Server:
    """Binds the listen address, before anything else starts: a taken port is a one-line error."""
    host, port = parse_listen_address(listen_address)
    try:
        if host:
            return Server((host, port), BaseHTTPRequestHandler, ipv6=":" in host)
        try:  # every address: dual-stack when the host has IPv6
            return Server(("::", port), BaseHTTPRequestHandler, ipv6=True)
        except OSError:
            return Server(("", port), BaseHTTPRequestHandler, ipv6=False)
    except OSError as e:
        raise ListenError(f"cannot listen on {listen_address}: {e.strerror or e}") from None


Scrape = Callable[[str, str], tuple[bytes, str, bool]]  # (Accept, Accept-Encoding) -> body, type, gzip'd


def serve(server: Server, listen_address: str, telemetry_path: str, scrape: Scrape) -> None:
    """Answers on a bound server from now on, in a thread of its own."""
    landing = (f"<html><head><title>netobs-exporter</title></head><body><h1>netobs-exporter {__version__}</h1>"
               f'<p><a href="{telemetry_path}">Metrics</a></p></body></html>').encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection between scrapes
        timeout = 300  # seconds an idle kept-alive connection may wait for its next request

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError as e:  # a scraper that timed out and left: its business, not an error
                log.debug("http: client %s went away: %s", self.client_address[0], e)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == telemetry_path:
                try:
                    body, content_type, compressed = scrape(self.headers.get("Accept", ""),
                                                            self.headers.get("Accept-Encoding", ""))
                except Exception as e:  # a scrape error is an HTTP 500, never a dead server
                    log.error("scrape failed: %s", e, exc_info=True)
                    self._reply(500, b"scrape failed\n", "text/plain")
                    return
                self._reply(200, body, content_type, "gzip" if compressed else None)
            elif path == "/":
                self._reply(200, landing, "text/html; charset=utf-8")
            elif path in ("/-/healthy", "/-/ready"):
                self._reply(200, b"OK\n", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str, encoding: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if encoding is not None:
                self.send_header("Content-Encoding", encoding)
            self.send_header("Vary", "Accept, Accept-Encoding")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http: " + format, *args)

    server.RequestHandlerClass = Handler
    threading.Thread(target=server.serve_forever, name="web", daemon=True).start()
    log.info("listening on %s, metrics at %s", listen_address, telemetry_path)
