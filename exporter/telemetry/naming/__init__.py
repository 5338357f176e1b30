"""Names for every kind of row: `kind_of(key)` finds the Kind that names a row by its key's type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exporter.series.flows import FailedKey, FlowKey
from exporter.series.health import HealthKey
from exporter.series.lookups import LookupKey
from exporter.series.requests import RequestKey
from exporter.telemetry.naming.flows import FAILED, FLOWS
from exporter.telemetry.naming.health import HEALTH
from exporter.telemetry.naming.kinds import Kind, Point
from exporter.telemetry.naming.lookups import LOOKUPS
from exporter.telemetry.naming.requests import (
    DB_CLIENT,
    DB_SERVER,
    HTTP_CLIENT,
    HTTP_SERVER,
    RPC_CLIENT,
    RPC_SERVER,
    request_kind,
)

__all__ = ["Kind", "Point", "all_kinds", "kind_of"]

_BY_TYPE: dict[type, Callable[[Any], Kind]] = {
    FlowKey: lambda _: FLOWS,
    FailedKey: lambda _: FAILED,
    LookupKey: lambda _: LOOKUPS,
    RequestKey: request_kind,
    HealthKey: lambda key: HEALTH[key.instrument],
}


def kind_of(key: Any) -> Kind:
    return _BY_TYPE[type(key)](key)


def all_kinds() -> list[Kind]:
    return [FLOWS, FAILED, LOOKUPS, HTTP_CLIENT, HTTP_SERVER, RPC_CLIENT, RPC_SERVER, DB_CLIENT, DB_SERVER,
            *HEALTH.values()]
