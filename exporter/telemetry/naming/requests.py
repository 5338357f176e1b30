"""How the rows of HTTP, gRPC and the databases are named: their attributes (OpenTelemetry's HTTP,
RPC and database conventions; a client's series also names its server's Kubernetes identity), and
iLogtail's `protocols` records."""

from __future__ import annotations

from collections.abc import Callable

from exporter.series.peers import Remote
from exporter.series.requests import DB_ERROR, OTHER_ROUTE, RequestFigures, RequestKey
from exporter.series.rows import Attributes
from exporter.telemetry.naming.kinds import Kind, Point, ProtocolRecord, peer_attributes

NO_RESPONSE = "no_response"  # error.type of a request whose connection closed before its response
OTHER = "_OTHER"  # OpenTelemetry's value for what cannot be named (an error, a gRPC service or method)

GRPC_OK, GRPC_UNKNOWN = 0, 2  # github.com/grpc/grpc/blob/master/doc/statuscodes.md
# The codes that are errors of the server (OpenTelemetry's gRPC conventions): UNKNOWN, DEADLINE_EXCEEDED,
# UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. For a client, every code but OK is.
GRPC_SERVER_ERRORS = frozenset({2, 4, 12, 13, 14, 15})
# The code a gRPC client takes from an HTTP status that came without grpc-status; any other status is
# UNKNOWN (github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md).
HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 431: 13, 502: 14, 503: 14, 504: 14}


def host_of(authority: str) -> str:
    """The host of a Host header value: "example.com:8080" -> "example.com", "[::1]:80" -> "::1"."""
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    if authority.count(":") == 1:
        return authority.split(":", 1)[0]
    return authority


def error_type(key: RequestKey) -> str | None:
    """OpenTelemetry's rule: 5xx is an error for servers, 4xx and 5xx for clients."""
    if key.status == 0:
        return NO_RESPONSE
    if key.status >= 500 or (key.client and key.status >= 400):
        return str(key.status)
    return None


def tls_attributes(key: RequestKey) -> Attributes:
    """An encrypted exchange says so with OpenTelemetry's TLS attribute (absent when in clear)."""
    return (("tls.protocol.name", "tls"),) if key.tls else ()


def http_connection_attributes(key: RequestKey) -> Attributes:
    """What HTTP requests and gRPC calls say of their connection and server."""
    return (("network.protocol.name", "http"), ("network.protocol.version", key.version),
            ("network.transport", "tcp"), ("network.type", key.family),
            ("server.address", host_of(key.authority) or key.server_address), ("server.port", key.server_port),
            *tls_attributes(key))


def http_attributes(key: RequestKey) -> Attributes:
    # HTTP/2 leaves a field empty when its header referred to a table entry not known (docs/grpc.md):
    # OpenTelemetry's _OTHER for the method, and no route
    attrs: list[tuple[str, str | int]] = [("http.request.method", key.method or "_OTHER")]
    if key.status:
        attrs.append(("http.response.status_code", key.status))
    if key.route:
        attrs.append(("http.route", key.route))
    error = error_type(key)
    if error:
        attrs.append(("error.type", error))
    attrs += [*http_connection_attributes(key), ("url.scheme", "https" if key.tls else "http")]
    return tuple(attrs)


def db_error_type(key: RequestKey) -> str | None:
    if key.status == 0:
        return NO_RESPONSE
    if key.status == DB_ERROR:
        return key.code or OTHER
    return None


def db_attributes(key: RequestKey) -> Attributes:
    attrs: list[tuple[str, str | int]] = [("db.system.name", key.protocol)]
    if key.method:
        attrs.append(("db.operation.name", key.method))
    if key.code:
        attrs.append(("db.response.status_code", key.code))
    error = db_error_type(key)
    if error:
        attrs.append(("error.type", error))
    attrs += [
        ("network.transport", "tcp"),
        ("network.type", key.family),
        ("server.address", key.server_address),
        ("server.port", key.server_port),
        *tls_attributes(key),
    ]
    return tuple(attrs)


def grpc_status(key: RequestKey) -> int | None:
    """A gRPC call's status code: its grpc-status (one that is not a decimal number is UNKNOWN); without
    one, the code a client takes from an HTTP status other than 200; None when neither came: the stream
    was reset or the connection closed first."""
    if key.code:
        return int(key.code) if key.code.isascii() and key.code.isdigit() else GRPC_UNKNOWN
    if key.status and key.status != 200:
        return HTTP_TO_GRPC.get(key.status, GRPC_UNKNOWN)
    return None


def rpc_error_type(key: RequestKey) -> str | None:
    """The status code as text when it is an error for the role (GRPC_SERVER_ERRORS for a server, any
    code but OK for a client), as HTTP's error.type is the status number; no_response without one."""
    status = grpc_status(key)
    if status is None:
        return NO_RESPONSE
    if status != GRPC_OK and (key.client or status in GRPC_SERVER_ERRORS):
        return str(status)
    return None


def rpc_service_method(path: str) -> tuple[str, str]:
    """"/helloworld.Greeter/SayHello" -> ("helloworld.Greeter", "SayHello"). A missing or empty part is
    "_OTHER"; a path folded into "~other" (L7.MaxRoutesPerProcess) is "~other" in both."""
    if path == OTHER_ROUTE:
        return OTHER_ROUTE, OTHER_ROUTE
    service, _, method = path.removeprefix("/").partition("/")
    return service or OTHER, method or OTHER


def rpc_attributes(key: RequestKey) -> Attributes:
    service, method = rpc_service_method(key.route)
    attrs: list[tuple[str, str | int]] = [("rpc.system", "grpc"), ("rpc.service", service), ("rpc.method", method)]
    status = grpc_status(key)
    if status is not None:
        attrs.append(("rpc.grpc.status_code", status))
    error = rpc_error_type(key)
    if error:
        attrs.append(("error.type", error))
    attrs += http_connection_attributes(key)
    return tuple(attrs)


_RECORD_PROTOCOL = {"postgresql": "pgsql"}  # iLogtail's protocol names


def _resp_code(key: RequestKey) -> str:
    if key.http:
        return str(key.status)
    if key.grpc:
        status = grpc_status(key)
        return NO_RESPONSE if status is None else str(status)
    return db_error_type(key) or key.code or "OK"


class Protocols(ProtocolRecord):
    """iLogtail's `protocols` record of HTTP, gRPC and the databases. For gRPC, `url` is the path and
    `resp_code` the status code (grpc_status) or no_response; for databases, `method` is the operation
    and `resp_code` the error code (or memcached's reply)."""

    def fields(self, key: RequestKey) -> dict[str, str]:
        return {"protocol": _RECORD_PROTOCOL.get(key.protocol, key.protocol), "version": key.version,
                "host": key.authority, "method": key.method, "url": key.route, "resp_code": _resp_code(key)}


def _figure(name: str) -> int:
    return RequestFigures._fields.index(name)


class RequestKind(Kind):
    """The rows of one protocol family and role: its instruments (points) and how its keys are named. A
    client's rows also name the server's Kubernetes identity (peer_attributes), a server's rows their
    clients' workload."""

    record = Protocols()

    def __init__(self, name: str, points: tuple[Point, ...], naming: Callable[[RequestKey], Attributes]) -> None:
        self.name = name
        self.points = points
        self._naming = naming

    def attributes(self, key: RequestKey, level: str, remote: Remote) -> Attributes:
        # a client's server by its address; a server's clients by their workload, the kernel's number of it
        return self._naming(key) + peer_attributes(remote.peer) + peer_attributes(key.clients, workload=True)


def _http(role: str) -> RequestKind:
    return RequestKind(f"http.{role}", (
        Point(f"http.{role}.request.duration", _figure("duration")),
        Point(f"http.{role}.request.body.size", _figure("request_body")),
        Point(f"http.{role}.response.body.size", _figure("response_body")),
    ), http_attributes)


def _rpc(role: str) -> RequestKind:
    return RequestKind(f"rpc.{role}", (Point(f"rpc.{role}.call.duration", _figure("duration")),), rpc_attributes)


def _db(role: str) -> RequestKind:
    return RequestKind(f"db.{role}", (Point(f"db.{role}.operation.duration", _figure("duration")),), db_attributes)


HTTP_CLIENT, HTTP_SERVER = _http("client"), _http("server")
RPC_CLIENT, RPC_SERVER = _rpc("client"), _rpc("server")
DB_CLIENT, DB_SERVER = _db("client"), _db("server")


def request_kind(key: RequestKey) -> Kind:
    if key.http:
        return HTTP_CLIENT if key.client else HTTP_SERVER
    if key.grpc:
        return RPC_CLIENT if key.client else RPC_SERVER
    return DB_CLIENT if key.client else DB_SERVER
