"""Sends serialized OTLP metric requests to a collector, over gRPC or HTTP/protobuf.

Where and how comes from the configuration and the OTEL_EXPORTER_OTLP_[METRICS_]* variables, as
the OpenTelemetry specification ("OTLP Exporter Configuration") says, except that a value we
cannot use stops start-up (ValueError naming the variable) instead of being ignored. Transient
failures are retried with exponential backoff until the send's timeout has passed; the caller
gets one OtlpError and decides how to report it."""

from __future__ import annotations

import gzip
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import grpc
import requests

from exporter import __version__

log = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
COMPRESSIONS = ("gzip", "none")
DEFAULT_TIMEOUT = 10.0  # seconds
FIRST_BACKOFF = 1.0  # seconds before the first retry, doubled at each one
GRPC_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
USER_AGENT = f"netobs-exporter/{__version__}"
HTTP_RETRYABLE = frozenset({429, 502, 503, 504})
GRPC_RETRYABLE = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
                            grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
REASON_MAX = 200  # characters of a server's message kept in an OtlpError


class OtlpError(Exception):
    """A push that failed for good (after retries): str() is one line saying why (endpoint, status/code, reason)."""


@dataclass(frozen=True)
class OtlpSettings:
    endpoint: str  # gRPC: host:port (scheme stripped); HTTP: the full URL of the metrics signal, .../v1/metrics
    protocol: str  # "grpc" or "http/protobuf"
    insecure: bool  # gRPC only: plaintext channel
    headers: tuple[tuple[str, str], ...]
    timeout: float  # seconds, for one send() including its retries
    compression: str  # "gzip" or "none"
    certificate_file: str | None
    client_key_file: str | None
    client_certificate_file: str | None


# --- configuration ---------------------------------------------------------------------------

def _variable(environ: Mapping[str, str], key: str) -> tuple[str, str] | None:
    """(name, value) of OTEL_EXPORTER_OTLP_METRICS_<key>, else of OTEL_EXPORTER_OTLP_<key>; empty is unset."""
    for name in (f"OTEL_EXPORTER_OTLP_METRICS_{key}", f"OTEL_EXPORTER_OTLP_{key}"):
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def metrics_settings(endpoint: str | None, protocol: str | None,
                     environ: Mapping[str, str] = os.environ) -> OtlpSettings | None:
    """None when no endpoint is configured anywhere. `endpoint`/`protocol` come from the exporter's configuration
    (Telemetry.OtlpEndpoint / Telemetry.OtlpProtocol, "" or None when unset) and beat the environment."""
    if endpoint:
        source, url, signal_url = "Telemetry.OtlpEndpoint", endpoint.strip(), False
    elif value := environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip():
        source, url, signal_url = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", value, True
    elif value := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        source, url, signal_url = "OTEL_EXPORTER_OTLP_ENDPOINT", value, False
    else:
        return None
    chosen = _protocol(protocol, environ)
    if chosen == "grpc":
        target, insecure = _grpc_target(source, url, environ)
        tls = not insecure
    else:
        target, insecure = _http_url(source, url, signal_url), False
        tls = target.startswith("https:")
    files = {key: _variable(environ, key) for key in ("CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE")}
    if tls:
        for found in files.values():
            if found is not None:
                _check_readable(*found)
    headers = _variable(environ, "HEADERS")
    return OtlpSettings(
        endpoint=target, protocol=chosen, insecure=insecure,
        headers=parse_headers(*headers) if headers else (),
        timeout=_timeout(environ), compression=_compression(environ),
        certificate_file=_value(files["CERTIFICATE"]), client_key_file=_value(files["CLIENT_KEY"]),
        client_certificate_file=_value(files["CLIENT_CERTIFICATE"]))


def _value(found: tuple[str, str] | None) -> str | None:
    return found[1] if found else None


def _protocol(configured: str | None, environ: Mapping[str, str]) -> str:
    found = ("Telemetry.OtlpProtocol", configured.strip()) if configured and configured.strip() else None
    name, value = found or _variable(environ, "PROTOCOL") or ("", "http/protobuf")
    if value not in PROTOCOLS:
        raise ValueError(f"{name}: unsupported OTLP protocol {value!r}, expected grpc or http/protobuf")
    return value


def _http_url(source: str, url: str, signal_url: bool) -> str:
    """The URL to POST to: a signal URL as is, any other gets /v1/metrics appended to its path."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as err:
        raise ValueError(f"{source}: {url!r} is not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{source}: {url!r} is not an http:// or https:// URL, as OTLP/HTTP needs")
    if signal_url:
        return url
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/v1/metrics"))


def _grpc_target(source: str, url: str, environ: Mapping[str, str]) -> tuple[str, bool]:
    """(host:port, insecure): the scheme decides security, else OTEL_EXPORTER_OTLP_[METRICS_]INSECURE does."""
    if "://" not in url:
        found = _variable(environ, "INSECURE")
        return url.rstrip("/"), _boolean(*found) if found else False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ValueError(f"{source}: {url!r} is not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{source}: {url!r} is not an http:// or https:// URL (or host:port) for OTLP/gRPC")
    netloc = parts.netloc.rpartition("@")[2]
    if port is None:  # the scheme's own port, not grpc's default of 443 for every target
        netloc += ":443" if parts.scheme == "https" else ":80"
    return netloc, parts.scheme == "http"


def _boolean(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        log.warning("%s=%r is not true or false; taken as false", name, value)
    return value.lower() == "true"


def _timeout(environ: Mapping[str, str]) -> float:
    found = _variable(environ, "TIMEOUT")
    if found is None:
        return DEFAULT_TIMEOUT
    name, value = found
    try:
        milliseconds = float(value)
    except ValueError:
        milliseconds = math.nan
    if not math.isfinite(milliseconds) or milliseconds <= 0:
        raise ValueError(f"{name}: expected a positive number of milliseconds, got {value!r}")
    return milliseconds / 1000


def _compression(environ: Mapping[str, str]) -> str:
    found = _variable(environ, "COMPRESSION")
    if found is None:
        return "none"
    name, value = found
    if value.lower() not in COMPRESSIONS:
        raise ValueError(f"{name}: unsupported compression {value!r}, expected gzip or none")
    return value.lower()


def _check_readable(name: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise ValueError(f"{name}: cannot read {path!r}: {err.strerror}") from None


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_headers(name: str, text: str) -> tuple[tuple[str, str], ...]:
    """`key1=value1,key2=value2` (W3C baggage without properties, values percent-encoded); keys lower-cased,
    malformed entries skipped with a warning that does not show them (they may hold credentials)."""
    headers, skipped = [], 0
    for entry in text.split(","):
        key, sep, value = entry.partition("=")
        key, value = key.strip().lower(), unquote(value.strip())
        if sep and _TOKEN.fullmatch(key) and not _CONTROL.search(value):
            headers.append((key, value))
        elif entry.strip():
            skipped += 1
    if skipped:
        log.warning("%s: skipped %d malformed entries (expected key=value, separated by commas)", name, skipped)
    return tuple(headers)


# --- sending ---------------------------------------------------------------------------------

class _AttemptFailed(Exception):
    def __init__(self, reason: str, retryable: bool, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.delay = delay  # seconds the server asked us to wait, when it did


def backoff_delay(retry: int) -> float:
    """Seconds to wait before retry number `retry` (0 for the first): 1, 2, 4 ... with ±20 % jitter."""
    return FIRST_BACKOFF * 2 ** min(retry, 20) * random.uniform(0.8, 1.2)


class OtlpMetricsClient:
    def __init__(self, settings: OtlpSettings) -> None:
        if settings.protocol not in PROTOCOLS:
            raise ValueError(f"unsupported OTLP protocol {settings.protocol!r}")
        self.settings = settings
        self._closed = threading.Event()
        self._transport: _HttpTransport | _GrpcTransport = (
            _GrpcTransport(settings) if settings.protocol == "grpc" else _HttpTransport(settings))
        self._warned_rejections = False

    def send(self, request: bytes) -> None:
        """Sends one serialized ExportMetricsServiceRequest; retries transient failures with exponential backoff and
        jitter until settings.timeout has passed; raises OtlpError when it gives up or the failure is not transient."""
        where, timeout = self.settings.endpoint, self.settings.timeout
        deadline = time.monotonic() + timeout
        attempts = 0
        while True:
            if self._closed.is_set():
                raise OtlpError(f"{where}: the OTLP client is closed")
            attempts += 1
            try:
                rejected, message = self._transport.export(request, max(deadline - time.monotonic(), 0.001))
            except _AttemptFailed as failure:
                if not failure.retryable:
                    raise OtlpError(f"{where}: {failure.reason}") from None
                delay = failure.delay if failure.delay is not None else backoff_delay(attempts - 1)
                if time.monotonic() + delay >= deadline:
                    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                    raise OtlpError(f"{where}: {failure.reason} (gave up after {tries}, timeout {timeout:g} s)") \
                        from None
                log.debug("OTLP push to %s failed (%s); retrying in %.2f s", where, failure.reason, delay)
                if self._closed.wait(delay):
                    raise OtlpError(f"{where}: {failure.reason} (closed while waiting to retry)") from None
                continue
            if rejected > 0:
                self._report_rejections(rejected, message)
            return

    def _report_rejections(self, rejected: int, message: str) -> None:
        level = logging.DEBUG if self._warned_rejections else logging.WARNING
        self._warned_rejections = True
        log.log(level, "OTLP endpoint %s rejected %d data points: %s%s", self.settings.endpoint, rejected,
                _one_line(message) or "no reason given",
                "" if level == logging.DEBUG else " (later rejections are logged at debug level)")

    def close(self) -> None:
        """Stops a retry wait at once; an attempt in flight ends at its timeout (HTTP) or is cancelled (gRPC)."""
        self._closed.set()
        self._transport.close()


def _one_line(text: str, limit: int = REASON_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _HttpTransport:
    def __init__(self, settings: OtlpSettings) -> None:
        self._url = settings.endpoint
        self._gzip = settings.compression == "gzip"
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers.update(dict(settings.headers))
        self._session.headers["Content-Type"] = "application/x-protobuf"
        if self._gzip:
            self._session.headers["Content-Encoding"] = "gzip"
        self._verify: str | bool = settings.certificate_file or True
        cert, key = settings.client_certificate_file, settings.client_key_file
        self._cert: tuple[str, str] | str | None = (cert, key) if cert and key else cert

    def export(self, request: bytes, timeout: float) -> tuple[int, str]:
        body = gzip.compress(request, compresslevel=6) if self._gzip else request
        try:
            response = self._session.post(self._url, data=body, timeout=timeout, verify=self._verify,
                                          cert=self._cert, allow_redirects=False)
        except requests.exceptions.SSLError as err:
            raise _AttemptFailed(f"TLS error: {_one_line(str(err))}", retryable=False) from None
        except requests.exceptions.Timeout:
            raise _AttemptFailed(f"no answer within {timeout:.3g} s", retryable=True) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
            raise _AttemptFailed(f"connection failed: {_one_line(str(err))}", retryable=True) from None
        except requests.exceptions.RequestException as err:
            raise _AttemptFailed(f"request failed: {_one_line(str(err))}", retryable=False) from None
        if 200 <= response.status_code < 300:
            return partial_success(response.content)
        reason = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
        excerpt = _one_line(response.content[:4 * REASON_MAX].decode("utf-8", "replace"))
        if excerpt:
            reason += f": {excerpt}"
        if response.status_code in HTTP_RETRYABLE:
            raise _AttemptFailed(reason, retryable=True, delay=retry_after(response.headers.get("Retry-After")))
        raise _AttemptFailed(reason, retryable=False)

    def close(self) -> None:
        self._session.close()


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, IndexError):
        return None


class _GrpcTransport:
    def __init__(self, settings: OtlpSettings) -> None:
        options = [("grpc.primary_user_agent", USER_AGENT),
                   # grpc waits up to 2 minutes between reconnections by default, longer than our retries
                   ("grpc.initial_reconnect_backoff_ms", 1000), ("grpc.max_reconnect_backoff_ms", 5000)]
        compression = grpc.Compression.Gzip if settings.compression == "gzip" else grpc.Compression.NoCompression
        if settings.insecure:
            self._channel = grpc.insecure_channel(settings.endpoint, options, compression)
        else:
            credentials = grpc.ssl_channel_credentials(_read(settings.certificate_file),
                                                       _read(settings.client_key_file),
                                                       _read(settings.client_certificate_file))
            self._channel = grpc.secure_channel(settings.endpoint, credentials, options, compression)
        self._export = self._channel.unary_unary(GRPC_METHOD, request_serializer=None, response_deserializer=None)
        self._metadata = tuple((key, value.encode() if key.endswith("-bin") else value)
                               for key, value in settings.headers)

    def export(self, request: bytes, timeout: float) -> tuple[int, str]:
        try:
            response = self._export(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            reason = f"gRPC {code.name}: {_one_line(details or '')}".rstrip(": ")
            trailing = error.trailing_metadata() if isinstance(error, grpc.Call) else None
            delay = retry_info_delay(trailing or ())
            if code in GRPC_RETRYABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                raise _AttemptFailed(reason, retryable=True, delay=delay) from None
            raise _AttemptFailed(reason, retryable=False) from None
        return partial_success(response or b"")

    def close(self) -> None:
        self._channel.close()


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


# --- the few protobuf messages we read back (decoded by hand: too small to need generated code) ----

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 70:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ValueError("varint too long")


def protobuf_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each varint (int) and length-delimited (bytes) field; fixed-size ones skipped."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield key >> 3, value
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated field")
            yield key >> 3, data[pos:pos + size]
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def partial_success(response: bytes) -> tuple[int, str]:
    """ExportMetricsServiceResponse.partial_success: (rejected_data_points, error_message); (0, "") if unreadable."""
    rejected, message = 0, ""
    try:
        for number, value in protobuf_fields(response):
            if number == 1 and isinstance(value, bytes):
                for inner, field in protobuf_fields(value):
                    if inner == 1 and isinstance(field, int):
                        rejected = field - (1 << 64) if field >= 1 << 63 else field
                    elif inner == 2 and isinstance(field, bytes):
                        message = field.decode("utf-8", "replace")
    except ValueError:
        return 0, ""
    return rejected, message


def retry_info_delay(metadata: Sequence[Any]) -> float | None:
    """The delay of a google.rpc.RetryInfo in gRPC trailing metadata (on its own, or in grpc-status-details-bin)."""
    for key, value in metadata:
        if not isinstance(value, bytes):
            continue
        try:
            if key == "google.rpc.retryinfo-bin":
                return _retry_info(value)
            if key == "grpc-status-details-bin":
                for number, detail in protobuf_fields(value):  # google.rpc.Status: 3 = repeated Any details
                    if number == 3 and isinstance(detail, bytes):
                        packed = _length_delimited(detail)  # google.protobuf.Any: 1 = type_url, 2 = value
                        if packed.get(1) == RETRY_INFO_TYPE.encode():
                            return _retry_info(packed.get(2, b""))
        except ValueError:
            continue
    return None


def _length_delimited(data: bytes) -> dict[int, bytes]:
    return {number: value for number, value in protobuf_fields(data) if isinstance(value, bytes)}


def _retry_info(data: bytes) -> float:
    """RetryInfo.retry_delay (field 1, a google.protobuf.Duration: 1 = seconds, 2 = nanos) in seconds."""
    duration = {number: value for number, value in protobuf_fields(_length_delimited(data).get(1, b""))
                if isinstance(value, int)}
    seconds, nanos = duration.get(1, 0), duration.get(2, 0)
    if seconds >= 1 << 63 or nanos >= 1 << 31:  # negative: no sensible delay
        return 0.0
    return seconds + nanos / 1e9
