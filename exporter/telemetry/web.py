"""The HTTP endpoint: a landing page, the Prometheus metrics path and health checks.

The metrics path answers in OpenMetrics when the client prefers it, else in the text format 0.0.4,
and gzip-compressed when the client accepts it (Prometheus always does). With --web.config.file
(exporter/telemetry/web_config.py) it speaks TLS, asks for a user and password, and adds headers."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exporter import __version__
from exporter.telemetry.web_config import WebConfigFile

log = logging.getLogger(__name__)


def parse_listen_address(address: str) -> tuple[str, int]:
    """':10039' -> ('', 10039); '[::1]:10039' -> ('::1', 10039)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class ListenError(Exception):
    """The listen address cannot be bound: in use, not an address of this host, no permission."""


HANDSHAKE_TIMEOUT_S = 10


class Server(ThreadingHTTPServer):
    daemon_threads = True
    web_config: WebConfigFile | None = None

    def __init__(self, address: tuple[str, int], handler: type, ipv6: bool) -> None:
        self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
        super().__init__(address, handler)

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        """In the connection's own thread: the TLS handshake first, when the web config asks for TLS."""
        tls = self.web_config.current().tls if self.web_config is not None else None
        if tls is not None:
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                request = tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:  # plain HTTP, no client certificate, a scanner
                log.debug("http: TLS handshake with %s failed: %s", client_address[0], e)
                return
            request.settimeout(None)
        self.RequestHandlerClass(request, client_address, self)  # type: ignore[arg-type]


def bind(listen_address: str, web_config_file: str = "") -> Server:
    """Binds the listen address, before anything else starts: a taken port is a one-line error, and so
    is a mistake in the web config file (ConfigError)."""
    web_config = WebConfigFile(web_config_file) if web_config_file else None
    host, port = parse_listen_address(listen_address)
    try:
        if host:
            server = Server((host, port), BaseHTTPRequestHandler, ipv6=":" in host)
        else:
            try:  # every address: dual-stack when the host has IPv6
                server = Server(("::", port), BaseHTTPRequestHandler, ipv6=True)
            except OSError:
                server = Server(("", port), BaseHTTPRequestHandler, ipv6=False)
    except OSError as e:
        raise ListenError(f"cannot listen on {listen_address}: {e.strerror or e}") from None
    server.web_config = web_config
    return server


Scrape = Callable[[str, str], tuple[bytes, str, bool]]  # (Accept, Accept-Encoding) -> body, type, gzip'd


def serve(server: Server, listen_address: str, telemetry_path: str, scrape: Scrape) -> None:
    """Answers on a bound server from now on, in a thread of its own."""
    landing = (f"<html><head><title>netobs-exporter</title></head><body><h1>netobs-exporter {__version__}</h1>"
               f'<p><a href="{telemetry_path}">Metrics</a></p></body></html>').encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses its connection between scrapes
        _headers: Mapping[str, str] = {}  # of the web config file, on every answer
        timeout = 300  # seconds an idle kept-alive connection may wait for its next request

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError as e:  # a scraper that timed out and left: its business, not an error
                log.debug("http: client %s went away: %s", self.client_address[0], e)

        def do_GET(self) -> None:
            web_config = server.web_config
            if web_config is not None:
                security = web_config.current()
                self._headers = security.headers
                if not web_config.authorized(security, self.headers.get("Authorization")):
                    self._reply(401, b"Unauthorized\n", "text/plain", challenge=True)
                    return
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

        def _reply(self, status: int, body: bytes, content_type: str, encoding: str | None = None,
                   challenge: bool = False) -> None:
            self.send_response(status)
            for name, value in self._headers.items():
                self.send_header(name, value)
            if challenge:
                self.send_header("WWW-Authenticate", 'Basic realm="netobs-exporter"')
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
