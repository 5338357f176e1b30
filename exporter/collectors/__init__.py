"""The collectors, one module per feature. Each is enabled by its own configuration."""

from __future__ import annotations

from exporter.collectors.base import Collector
from exporter.collectors.bash import BashCollector
from exporter.collectors.dns import DnsCollector, LearnNames
from exporter.collectors.l7 import L7Collector
from exporter.collectors.netflow import NetflowCollector
from exporter.config import Config

L7_PROTOCOLS = ("HTTP", "REDIS", "PGSQL", "MYSQL", "MEMCACHED")


def enabled_collectors(config: Config, learn_names: LearnNames | None = None) -> list[Collector]:
    """The collectors the configuration turns on; `learn_names` is told the names DNS answers give
    to addresses (for destination.domain)."""
    if not config.ebpf.enabled:
        return []
    collectors: list[Collector] = []
    if dns_enabled(config):
        collectors.append(DnsCollector(config, learn_names))
    if config.netflow.enabled:
        collectors.append(NetflowCollector(config))
    if l7_enabled(config):
        collectors.append(L7Collector(config))
    if config.bash.enabled:
        collectors.append(BashCollector(config))
    return collectors


def dns_enabled(config: Config) -> bool:
    """DNS is an application protocol to iLogtail: Common.ProtocolProcess and IncludeProtocols apply."""
    common = config.common
    return config.dns.enabled and common.protocol_process and "DNS" in common.include_protocols


def l7_enabled(config: Config) -> bool:
    """The l7 collector reads HTTP/1.x and the database protocols, whichever IncludeProtocols names."""
    common = config.common
    return common.protocol_process and any(p in common.include_protocols for p in L7_PROTOCOLS)
