"""How the exporter's own health rows are named: a kind per self-metric, whose key is its attributes."""

from __future__ import annotations

from exporter.series.health import HealthKey
from exporter.series.instruments import SELF
from exporter.series.peers import Remote
from exporter.series.rows import Attributes
from exporter.telemetry.naming.kinds import Kind, Point


class HealthKind(Kind):
    def __init__(self, instrument: str) -> None:
        self.name = instrument
        self.points = (Point(instrument, 0),)

    def attributes(self, key: HealthKey, level: str, remote: Remote) -> Attributes:
        return key.attributes


HEALTH = {name: HealthKind(name) for name in SELF}
