"""The collectors, one module per feature. Each is enabled by its own configuration."""

from __future__ import annotations

from exporter.collectors.base import Collector
from exporter.config import Config


def enabled_collectors(config: Config) -> list[Collector]:
    if not config.ebpf.enabled:
        return []
    collectors: list[Collector] = []
    domains = None
    if dns_enabled(config):
        from exporter.collectors.dns import DnsCollector
        from exporter.enrich.domains import DomainCache

        dns = config.dns
        domains = DomainCache(dns.domain_cache_size, dns.domain_ttl_min, dns.domain_ttl_max)
        collectors.append(DnsCollector(config, domains))
    if config.netflow.enabled:
        from exporter.collectors.netflow import NetflowCollector

        collectors.append(NetflowCollector(config, domains))
    if l7_enabled(config):
        from exporter.collectors.l7 import L7Collector

        collectors.append(L7Collector(config))
    if config.bash.enabled:
        from exporter.collectors.bash import BashCollector

        collectors.append(BashCollector(config))
    return collectors


def dns_enabled(config: Config) -> bool:
    """DNS is an application protocol to iLogtail: Common.ProtocolProcess and IncludeProtocols apply."""
    common = config.common
    return config.dns.enabled and common.protocol_process and "DNS" in common.include_protocols


L7_PROTOCOLS = ("HTTP", "REDIS", "PGSQL", "MYSQL", "MEMCACHED")


def l7_enabled(config: Config) -> bool:
    """The l7 collector reads HTTP/1.x and the database protocols, whichever IncludeProtocols names."""
    common = config.common
    return common.protocol_process and any(p in common.include_protocols for p in L7_PROTOCOLS)
