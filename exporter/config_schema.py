"""Checks that turn one raw configuration value into its typed form, or say what was expected.

Each check takes the value as YAML produced it and either returns the typed value or raises
`Invalid` with the reason only; the loader in exporter/config.py adds the key name.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections.abc import Callable
from typing import Any, TypeGuard

import yaml

from exporter.series.attributes import NAMES, known
from exporter.series.instruments import KERNEL

PROTOCOLS = ("HTTP", "Redis", "MySQL", "PgSQL", "DNS", "Memcached")
MAX_U32 = 2**32 - 1
PID_MAX_LIMIT = 2**22  # the kernel's largest possible pid_max

Check = Callable[[Any], Any]


class ConfigError(Exception):
    """A configuration mistake; str() is one line naming the key and what was expected. A line break or
    other control character the user typed (in a key's name, say) is shown escaped, never as is."""

    def __init__(self, message: str) -> None:
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


class Invalid(Exception):
    """Raised by a check: what was expected and what was given, without the key name."""


def show(value: object) -> str:
    """A value as the user wrote it, short and on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _got(value: object) -> str:
    hint = ""
    if isinstance(value, str):
        try:
            float(value)
            hint = "; write numbers without quotes"
        except ValueError:
            pass
    return f"got {show(value)}{hint}"


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def seconds(value: object) -> float:
    if not _is_number(value) or value <= 0:
        raise Invalid(f"expected a positive number of seconds, {_got(value)}")
    return float(value)


def percent(value: object) -> float:
    if not _is_number(value) or not 0 <= value <= 100:
        raise Invalid(f"expected a number from 0 to 100, {_got(value)}")
    return float(value)


def count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_U32:
        raise Invalid(f"expected a whole number from 1 to {MAX_U32}, {_got(value)}")
    return value


CAPTURE_MAX = 1024  # L7_CAPTURE_MAX in bpf/l7.h


def capture_bytes(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 64 <= value <= CAPTURE_MAX:
        raise Invalid(f"expected a whole number of bytes from 64 to {CAPTURE_MAX}, {_got(value)}")
    return value


def boolean(value: object) -> bool:
    """YAML booleans, and 0 or 1 as iLogtail writes its Drop* switches."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise Invalid(f"expected true or false (or 1 or 0), got {show(value)}")


def text(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {show(value)}")
    return value


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise Invalid(f"invalid regular expression: {err}") from None


def otlp_protocol(value: object) -> str:
    protocol = text(value)
    if protocol not in ("", "grpc", "http/protobuf"):
        raise Invalid(f"expected grpc or http/protobuf (or \"\" for OTEL_EXPORTER_OTLP_PROTOCOL), got {show(value)}")
    return protocol


DNS_PORTS_MAX = 8  # the size of dns_ports in bpf/dns.c


def dns_ports(value: object) -> tuple[int, ...]:
    """Server ports whose traffic is DNS: a list of 1 to 8 ports."""
    if not isinstance(value, list) or not 1 <= len(value) <= DNS_PORTS_MAX:
        raise Invalid(f"expected a list of 1 to {DNS_PORTS_MAX} ports, {_got(value)}")
    ports: list[int] = []
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool) or not 1 <= item <= 65535:
            raise Invalid(f"expected ports from 1 to 65535, {_got(item)}")
        if item not in ports:
            ports.append(item)
    return tuple(ports)


def regex(value: object) -> re.Pattern[str] | None:
    """A regular expression, or None for the empty string (no filter)."""
    if not isinstance(value, str):
        raise Invalid(f"expected a regular expression (a string), got {show(value)}")
    return _compile(value) if value else None


def regex_list(value: object) -> tuple[re.Pattern[str], ...]:
    """A list of regular expressions, each compiled; an empty list is allowed."""
    if not isinstance(value, list):
        raise Invalid(f"expected a list of regular expressions, got {show(value)}")
    patterns: list[re.Pattern[str]] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise Invalid(f"expected a list of regular expressions, got {show(item)} at index {index}")
        try:
            patterns.append(_compile(item))
        except Invalid as err:
            raise Invalid(f"{err} (at index {index})") from None
    return tuple(patterns)


def str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a map of string to string, got {show(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise Invalid(f"expected a map of string to string, got the entry {show(key)}: {show(item)}")
    return dict(value)


def regex_map(value: object) -> dict[str, re.Pattern[str]]:
    """A map of name to regular expression, as IncludeK8sLabels and IncludeEnvs are."""
    if not isinstance(value, dict):
        raise Invalid(f"expected a map of name to regular expression, got {show(value)}")
    patterns: dict[str, re.Pattern[str]] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise Invalid(
                f"expected a map of name to regular expression, got the entry {show(key)}: {show(item)}"
            )
        try:
            patterns[key] = _compile(item)
        except Invalid as err:
            raise Invalid(f"{err} (for {key!r})") from None
    return patterns


_PROTOCOL_BY_NAME = {name.casefold(): name.upper() for name in PROTOCOLS}


def protocols(value: object) -> tuple[str, ...]:
    """Protocol names, any case, as a list or one comma-separated string -> canonical upper-case names."""
    allowed = ", ".join(PROTOCOLS)
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise Invalid(f"expected a list of protocol names (some of {allowed}), got {show(value)}")
    names: list[str] = []
    for item in value:
        name = _PROTOCOL_BY_NAME.get(item.casefold()) if isinstance(item, str) else None
        if name is None:
            raise Invalid(f"unknown protocol {show(item)} (expected some of {allowed})")
        if name not in names:
            names.append(name)
    return tuple(names)


def _pid(item: object, allow_text: bool) -> int:
    if allow_text and isinstance(item, str) and item.strip().isdigit():
        item = int(item)
    if not isinstance(item, int) or isinstance(item, bool) or not 1 <= item <= PID_MAX_LIMIT:
        raise Invalid(f"a pid must be a whole number from 1 to {PID_MAX_LIMIT}, got {show(item)}")
    return item


def pids(value: object) -> tuple[int, ...]:
    """One pid, a list of pids, or iLogtail's map form {"pid": "123"} whose values are pids."""
    if isinstance(value, int) and not isinstance(value, bool):
        items: list[object] = [value]
    elif isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        items = list(value.values())
    else:
        raise Invalid(f"expected a pid, a list of pids or a map whose values are pids, got {show(value)}")
    result: list[int] = []
    for item in items:
        pid = _pid(item, allow_text=isinstance(value, dict))
        if pid not in result:
            result.append(pid)
    return tuple(result)


_LISTEN_ADDRESS = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^\s:\[\]/]*)):(?P<port>[0-9]{1,5})")


def _is_ipv6_or_none(address: str | None) -> bool:
    try:
        return address is None or ipaddress.IPv6Address(address) is not None
    except ValueError:
        return False


def listen_address(value: str) -> tuple[str, int]:
    """'host:port', '[v6]:port' or ':port' -> (host, port); host '' means every interface."""
    match = _LISTEN_ADDRESS.fullmatch(value)
    if match and 1 <= int(match["port"]) <= 65535 and _is_ipv6_or_none(match["v6"]):
        return match["v6"] or match["host"], int(match["port"])
    raise Invalid(f"expected host:port, [ipv6]:port or :port with a port from 1 to 65535, got {value!r}")


def url_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise Invalid(f"expected a path starting with '/', got {value!r}")
    return value


def yaml_reason(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line with its line number."""
    if isinstance(err, yaml.MarkedYAMLError):
        reason = err.problem or err.context or "syntax error"
        if err.context and err.problem:
            reason += f" ({err.context})"
        mark = err.problem_mark or err.context_mark
        if mark is not None:
            reason += f" at line {mark.line + 1}, column {mark.column + 1}"
    else:
        reason = str(err)
    return " ".join(reason.split())


def _attribute_list(value: object) -> frozenset[str]:
    if not isinstance(value, list):
        raise Invalid(f"expected a list of attribute names, got {show(value)}")
    for item in value:
        if not isinstance(item, str) or not known(item):
            raise Invalid(f"unknown attribute {show(item)} (expected some of {', '.join(NAMES)}, "
                          "k8s.pod.label.<key> or k8s.pod.label.*)")
    return frozenset(value)


def attribute_names(value: object) -> frozenset[str]:
    """Process, container and Kubernetes attribute names (exporter/series/attributes.py)."""
    return _attribute_list(value)


def attribute_sets(value: object) -> dict[str, frozenset[str]]:
    """Instrument name, or a prefix of instrument names such as `dns`, -> attribute names."""
    if not isinstance(value, dict):
        raise Invalid(f"expected a map of instrument name to a list of attribute names, got {show(value)}")
    sets: dict[str, frozenset[str]] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not any(n == key or n.startswith(key + ".") for n in KERNEL):
            raise Invalid(f"unknown instrument {show(key)} (expected an instrument name such as netflow.bytes, "
                          "or a prefix such as netflow, dns or http)")
        try:
            sets[key] = _attribute_list(item)
        except Invalid as err:
            raise Invalid(f"{err} (for {key!r})") from None
    return sets


def str_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise Invalid(f"expected a list of non-empty strings, got {show(value)}")
    return tuple(dict.fromkeys(value))


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS label (RFC 1123), as Kubernetes wants


def namespaces(value: object) -> tuple[str, ...]:
    """Kubernetes namespace names, as a list or one comma-separated string; empty: every namespace."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise Invalid(f"expected a list of namespace names, got {show(value)}")
    for item in value:
        if not isinstance(item, str) or not _NAMESPACE.fullmatch(item):
            raise Invalid(f"expected a list of namespace names (lower-case letters, digits and '-', at most 63), "
                          f"got {show(item)}")
    return tuple(dict.fromkeys(value))


RESYNC_MIN = 60.0  # every node lists the whole cluster at each resync: not more often than this


def resync_interval(value: object) -> float:
    """Seconds between full lists of a watched resource; 0: never (the watch alone keeps it current)."""
    if not _is_number(value) or (value != 0 and value < RESYNC_MIN):
        raise Invalid(f"expected 0 (never) or a number of seconds from {RESYNC_MIN:g}, {_got(value)}")
    return float(value)


NETFLOW_LEVELS = ("flow", "peer", "peer_address", "workload")  # exporter/telemetry/naming/flows.py
RTT_BOUNDS_MAX = 18  # NETFLOW_RTT_BOUNDS in bpf/netflow.h


def netflow_level(value: object) -> str:
    if value not in NETFLOW_LEVELS:
        raise Invalid(f"expected one of {', '.join(NETFLOW_LEVELS)}, got {show(value)}")
    return str(value)


def rtt_histogram_level(value: object) -> str:
    if value != "off" and value not in NETFLOW_LEVELS:
        raise Invalid(f"expected one of {', '.join(NETFLOW_LEVELS)} or off, got {show(value)}")
    return str(value)


def rtt_buckets(value: object) -> tuple[float, ...]:
    """Bucket bounds in seconds, rising, whole microseconds from 1 us to about 71 minutes (the kernel
    compares microseconds in 32 bits), at most RTT_BOUNDS_MAX of them."""
    expected = f"a rising list of 1 to {RTT_BOUNDS_MAX} bounds in seconds, from 0.000001 to 4294"
    if not isinstance(value, list) or not 1 <= len(value) <= RTT_BOUNDS_MAX:
        raise Invalid(f"expected {expected}, {_got(value)}")
    micros = []
    for item in value:
        if not _is_number(item) or not 1e-6 <= item <= 4294:
            raise Invalid(f"expected {expected}, got {show(item)} in the list")
        micros.append(round(item * 1e6))
    if any(b <= a for a, b in itertools.pairwise(micros)):
        raise Invalid(f"expected {expected} (each bound larger than the one before, in whole microseconds), "
                      f"got {show(value)}")
    return tuple(m / 1e6 for m in micros)


TLS_LIBRARIES = ("openssl", "go")  # exporter/collectors/l7_tls.py


def tls_libraries(value: object) -> frozenset[str]:
    """Library names, any case, as a list or one comma-separated string."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise Invalid(f"expected a list of library names (some of {', '.join(TLS_LIBRARIES)}), got {show(value)}")
    names = {item.casefold() if isinstance(item, str) else item for item in value}
    unknown = sorted(map(str, names - set(TLS_LIBRARIES)))
    if unknown:
        raise Invalid(f"unknown library {unknown[0]!r} (expected some of {', '.join(TLS_LIBRARIES)})")
    return frozenset(str(name) for name in names)
