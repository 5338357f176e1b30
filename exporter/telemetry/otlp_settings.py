"""Where and how to push OTLP metrics: the configuration and the OTEL_EXPORTER_OTLP_[METRICS_]*
variables, read as the OpenTelemetry specification ("OTLP Exporter Configuration") says, except that
a value we cannot use stops start-up (ValueError naming the variable) instead of being ignored."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

log = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
COMPRESSIONS = ("gzip", "none")
DEFAULT_TIMEOUT = 10.0  # seconds


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
