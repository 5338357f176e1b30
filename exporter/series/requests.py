"""The rows of the application protocols: one per process, role, operation, outcome and server."""

from __future__ import annotations

from typing import NamedTuple

from exporter.series.rows import HistogramValue

HTTP = "http"
DB_SYSTEMS = ("redis", "postgresql", "mysql", "memcached")  # db.system.name of each database protocol
DB_OK, DB_ERROR = 1, 2  # RequestKey.status of a database operation; 0: no response


class RequestKey(NamedTuple):
    protocol: str  # "http", or a db.system.name of DB_SYSTEMS
    client: bool  # the process sent the request (client) rather than answered it (server)
    method: str  # HTTP method, or database operation
    route: str  # HTTP only: the folded path, or "~other"
    authority: str  # HTTP Host header, as sent
    status: int  # HTTP status, or DB_OK / DB_ERROR; 0: no response
    version: str  # HTTP "1.0", "1.1"
    family: str  # "ipv4" or "ipv6"
    server_address: str  # the server's IP address
    server_port: int
    code: str = ""  # databases: the error code (SQLSTATE, MySQL number, Redis prefix) or memcached's reply
    tls: bool = False  # the exchange was encrypted: its plaintext came from the TLS library

    @property
    def peer(self) -> str | None:
        return None  # no DNS name decorates this kind of series

    @property
    def http(self) -> bool:
        return self.protocol == HTTP


class RequestFigures(NamedTuple):
    duration: HistogramValue  # seconds
    request_body: HistogramValue  # bytes (HTTP; zeros for databases)
    response_body: HistogramValue
    request_bytes: int  # bytes of whole requests and responses, heads included (iLogtail's records)
    response_bytes: int
