"""How the rows of HTTP and the databases are named: their attributes (OpenTelemetry's HTTP and
database conventions), and iLogtail's `protocols` records."""

from __future__ import annotations

from exporter.series.requests import DB_ERROR, RequestFigures, RequestKey
from exporter.series.rows import Attributes
from exporter.telemetry.naming.kinds import Kind, Point, ProtocolRecord

NO_RESPONSE = "no_response"  # error.type of a request whose connection closed before its response


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


def http_attributes(key: RequestKey) -> Attributes:
    attrs: list[tuple[str, str | int]] = [("http.request.method", key.method)]
    if key.status:
        attrs.append(("http.response.status_code", key.status))
    attrs.append(("http.route", key.route))
    error = error_type(key)
    if error:
        attrs.append(("error.type", error))
    attrs += [
        ("network.protocol.name", "http"),
        ("network.protocol.version", key.version),
        ("network.transport", "tcp"),
        ("network.type", key.family),
        ("server.address", host_of(key.authority) or key.server_address),
        ("server.port", key.server_port),
        *tls_attributes(key),
        ("url.scheme", "https" if key.tls else "http"),
    ]
    return tuple(attrs)


def db_error_type(key: RequestKey) -> str | None:
    if key.status == 0:
        return NO_RESPONSE
    if key.status == DB_ERROR:
        return key.code or "_OTHER"
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


_RECORD_PROTOCOL = {"postgresql": "pgsql"}  # iLogtail's protocol names


class Protocols(ProtocolRecord):
    """iLogtail's `protocols` record of HTTP and the databases. For databases, `method` is the operation
    and `resp_code` the error code (or memcached's reply)."""

    def fields(self, key: RequestKey) -> dict[str, str]:
        return {"protocol": _RECORD_PROTOCOL.get(key.protocol, key.protocol), "version": key.version,
                "host": key.authority, "method": key.method, "url": key.route,
                "resp_code": str(key.status) if key.http else (db_error_type(key) or key.code or "OK")}


def _figure(name: str) -> int:
    return RequestFigures._fields.index(name)


class HttpKind(Kind):
    record = Protocols()

    def __init__(self, role: str) -> None:
        self.name = f"http.{role}"
        self.points = (
            Point(f"http.{role}.request.duration", _figure("duration")),
            Point(f"http.{role}.request.body.size", _figure("request_body")),
            Point(f"http.{role}.response.body.size", _figure("response_body")),
        )

    def attributes(self, key: RequestKey, level: str, domain: str | None) -> Attributes:
        return http_attributes(key)


class DbKind(Kind):
    record = Protocols()

    def __init__(self, role: str) -> None:
        self.name = f"db.{role}"
        self.points = (Point(f"db.{role}.operation.duration", _figure("duration")),)

    def attributes(self, key: RequestKey, level: str, domain: str | None) -> Attributes:
        return db_attributes(key)


HTTP_CLIENT, HTTP_SERVER = HttpKind("client"), HttpKind("server")
DB_CLIENT, DB_SERVER = DbKind("client"), DbKind("server")


def request_kind(key: RequestKey) -> Kind:
    if key.http:
        return HTTP_CLIENT if key.client else HTTP_SERVER
    return DB_CLIENT if key.client else DB_SERVER
