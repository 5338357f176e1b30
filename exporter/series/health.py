"""The rows of the exporter's own health: one per self-metric series."""

from __future__ import annotations

from typing import NamedTuple

from exporter.series.rows import Attributes


class HealthKey(NamedTuple):
    instrument: str  # a name of exporter.series.instruments.SELF
    attributes: Attributes = ()

    @property
    def peer(self) -> str | None:
        return None  # no DNS name decorates this kind of series


class HealthFigures(NamedTuple):
    value: int | float
