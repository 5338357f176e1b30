"""The rows of the application protocols: one per process, role, operation, outcome and server."""

from __future__ import annotations

from typing import NamedTuple

from exporter.series.peers import Peer
from exporter.series.rows import HistogramValue

HTTP = "http"
GRPC = "grpc"  # gRPC calls: HTTP/2 requests whose content-type is application/grpc
DB_SYSTEMS = ("redis", "postgresql", "mysql", "memcached")  # db.system.name of each database protocol
DB_OK, DB_ERROR = 1, 2  # RequestKey.status of a database operation; 0: no response
OTHER_ROUTE = "~other"  # the route (or gRPC path) of a process's requests beyond L7.MaxRoutesPerProcess


class RequestKey(NamedTuple):
    protocol: str  # "http", "grpc", or a db.system.name of DB_SYSTEMS
    client: bool  # the process sent the request (client) rather than answered it (server)
    method: str  # HTTP method (gRPC: "POST"), or database operation
    route: str  # HTTP: the folded path; gRPC: the path "/package.Service/Method"; or "~other"
    authority: str  # HTTP Host header or HTTP/2 :authority, as sent
    status: int  # HTTP status, or DB_OK / DB_ERROR; 0: no response
    version: str  # HTTP "1.0", "1.1", "2"
    family: str  # "ipv4" or "ipv6"
    server_address: str  # the server's IP address
    server_port: int
    # databases: the error code (SQLSTATE, MySQL number, Redis prefix) or memcached's reply;
    # gRPC: grpc-status as sent ("0".."16"), "" when none was seen
    code: str = ""
    tls: bool = False  # the exchange was encrypted: its plaintext came from the TLS library
    # a server's: its clients' Kubernetes identity (their workload; exporter/enrich/kubernetes_peer_ids.py),
    # None when the cluster is not watched or the clients are not in it
    clients: Peer | None = None

    @property
    def peer(self) -> str | None:
        return self.server_address if self.client else None  # a server's clients have no address in its key

    @property
    def http(self) -> bool:
        """An HTTP request (HTTP/1.x or HTTP/2) that is not a gRPC call."""
        return self.protocol == HTTP

    @property
    def grpc(self) -> bool:
        return self.protocol == GRPC


class RequestFigures(NamedTuple):
    duration: HistogramValue  # seconds
    request_body: HistogramValue  # bytes (HTTP; zeros for databases)
    response_body: HistogramValue
    request_bytes: int  # bytes of whole requests and responses, heads included (iLogtail's records)
    response_bytes: int
