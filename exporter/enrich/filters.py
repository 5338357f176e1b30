"""iLogtail's include/exclude parameters: is a process watched?

As in iLogtail, the entries of one map are alternatives (any one matching is enough), different
parameters must all hold (a container must pass each one that is set), and an exclude wins over an
include. Container parameters (labels, environment, container, pod and namespace names) describe
containers: a host process matches no include of theirs and no exclude. `Common.IncludeCmdRegex` /
`ExcludeCmdRegex` and `EBPF.Pid` apply to every process, host or container."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.config import CommonConfig, EbpfConfig


@dataclass(frozen=True)
class ContainerFacts:
    """What the container parameters look at; empty when a source did not say."""

    names: tuple[str, ...] = ()  # the runtime's name and the Kubernetes container name
    labels: Mapping[str, str] = field(default_factory=dict)  # container (runtime) labels
    env: Mapping[str, str] = field(default_factory=dict)
    pod_name: str | None = None
    namespace: str | None = None
    pod_labels: Mapping[str, str] = field(default_factory=dict)


Test = Callable[[ContainerFacts], bool]


def _labels_exact(wanted: Mapping[str, str], get: Callable[[ContainerFacts], Mapping[str, str]]) -> Test:
    return lambda c: any(get(c).get(k) == v for k, v in wanted.items())


def _values_match(wanted: Mapping[str, re.Pattern[str]], get: Callable[[ContainerFacts], Mapping[str, str]]) -> Test:
    return lambda c: any(k in get(c) and p.search(get(c)[k]) is not None for k, p in wanted.items())


def _names_match(pattern: re.Pattern[str]) -> Test:
    return lambda c: any(pattern.search(n) is not None for n in c.names)


def _text_matches(pattern: re.Pattern[str], get: Callable[[ContainerFacts], str | None]) -> Test:
    return lambda c: get(c) is not None and pattern.search(get(c) or "") is not None


def _labels(c: ContainerFacts) -> Mapping[str, str]:
    return c.labels


def _pod_labels(c: ContainerFacts) -> Mapping[str, str]:
    return c.pod_labels


def _env(c: ContainerFacts) -> Mapping[str, str]:
    return c.env


# (include value, exclude value, how a value becomes a test), one row per container parameter pair
def _container_parameters(c: CommonConfig) -> list[tuple[Any, Any, Callable[[Any], Test]]]:
    return [
        (c.include_container_labels, c.exclude_container_labels, lambda m: _labels_exact(m, _labels)),
        (c.include_k8s_labels, c.exclude_k8s_labels, lambda m: _values_match(m, _pod_labels)),
        (c.include_envs, c.exclude_envs, lambda m: _values_match(m, _env)),
        (c.include_container_name_regex, c.exclude_container_name_regex, _names_match),
        (c.include_pod_name_regex, c.exclude_pod_name_regex, lambda p: _text_matches(p, lambda f: f.pod_name)),
        (c.include_namespace_name_regex, c.exclude_namespace_name_regex,
         lambda p: _text_matches(p, lambda f: f.namespace)),
    ]


class Filters:
    def __init__(self, common: CommonConfig, ebpf: EbpfConfig) -> None:
        parameters = _container_parameters(common)
        self.include: list[Test] = [make(value) for value, _, make in parameters if value]
        self.exclude: list[Test] = [make(value) for _, value, make in parameters if value]
        self.include_cmd = common.include_cmd_regex
        self.exclude_cmd = common.exclude_cmd_regex
        self.pids = frozenset(ebpf.pid)

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude or self.include_cmd or self.exclude_cmd or self.pids)

    @property
    def includes(self) -> bool:
        """Something must match for a process to be watched: unknown processes are not."""
        return bool(self.include or self.include_cmd or self.pids)

    @property
    def per_process(self) -> bool:
        """Processes of one container may differ (command lines, pids)."""
        return bool(self.include_cmd or self.exclude_cmd or self.pids)

    def container_watched(self, container: ContainerFacts | None) -> bool:
        """The container parameters alone; None for a host process."""
        if container is None:
            return not self.include
        return all(t(container) for t in self.include) and not any(t(container) for t in self.exclude)

    def process_watched(self, pid: int, cmdline: str) -> bool:
        """The process parameters alone."""
        if self.pids and pid not in self.pids:
            return False
        if self.include_cmd is not None and self.include_cmd.search(cmdline) is None:
            return False
        return self.exclude_cmd is None or self.exclude_cmd.search(cmdline) is None
