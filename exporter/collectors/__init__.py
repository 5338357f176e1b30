"""The collectors, one module per feature. Each is enabled by its own configuration."""

from __future__ import annotations

from exporter.collectors.base import Collector
from exporter.config import Config


def enabled_collectors(config: Config) -> list[Collector]:
    if not config.ebpf.enabled:
        return []
    collectors: list[Collector] = []
    if config.netflow.enabled:
        from exporter.collectors.netflow import NetflowCollector

        collectors.append(NetflowCollector(config))
    if config.bash.enabled:
        from exporter.collectors.bash import BashCollector

        collectors.append(BashCollector(config))
    return collectors
