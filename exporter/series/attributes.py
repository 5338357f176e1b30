"""The attributes that say which process, container and pod a series belongs to.

Collectors say which pid and comm a row belongs to; the attribution stage (exporter/enrich/) finds the
process's attributes below, and each instrument keeps those that `Attributes.Process` /
`Attributes.Instruments` select (defaults in default.yaml)."""

from __future__ import annotations

from collections.abc import Mapping

POD_LABEL_PREFIX = "k8s.pod.label."  # + a label key chosen by Kubernetes.PodLabels

# OpenTelemetry semantic conventions, except netobs.running_mode (iLogtail's _running_mode_)
NAMES: tuple[str, ...] = (
    "process.pid",
    "process.executable.name",
    "process.command_line",
    "netobs.running_mode",
    "container.id",
    "container.name",
    "container.image.name",
    "container.runtime.name",
    "k8s.node.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "k8s.container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.job.name",
    "k8s.cronjob.name",
)

# The other side's Kubernetes identity (exporter/series/peers.py Peer), on series that name a peer. Ours:
# OpenTelemetry has no convention for a peer's Kubernetes attributes. A series carries those that apply.
PEER_KIND = "netobs.peer.kind"  # pod, service, node
PEER_NAMESPACE = "netobs.peer.k8s.namespace.name"  # pods and Services
PEER_POD = "netobs.peer.k8s.pod.name"
PEER_SERVICE = "netobs.peer.k8s.service.name"
PEER_NODE = "netobs.peer.k8s.node.name"  # a pod's node, or the node itself
PEER_WORKLOAD_KIND = "netobs.peer.k8s.workload.kind"  # a pod's owner workload: Deployment, StatefulSet ...
PEER_WORKLOAD_NAME = "netobs.peer.k8s.workload.name"
PEER_NAMES: tuple[str, ...] = (PEER_KIND, PEER_NAMESPACE, PEER_POD, PEER_SERVICE, PEER_NODE, PEER_WORKLOAD_KIND,
                               PEER_WORKLOAD_NAME)


def known(name: str) -> bool:
    """A name Attributes.* may select: one of NAMES, k8s.pod.label.<key>, or k8s.pod.label.* for all."""
    return name in NAMES or (name.startswith(POD_LABEL_PREFIX) and len(name) > len(POD_LABEL_PREFIX))


def selected(name: str, selection: frozenset[str]) -> bool:
    if name in selection:
        return True
    return name.startswith(POD_LABEL_PREFIX) and POD_LABEL_PREFIX + "*" in selection


def selected_by(instrument: str, default: frozenset[str],
                per_instrument: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The selection of an instrument: the longest name or dotted prefix of it in `per_instrument`, else
    `default` (Attributes.Instruments, Attributes.Process)."""
    keys = [k for k in per_instrument if instrument == k or instrument.startswith(k + ".")]
    return per_instrument[max(keys, key=len)] if keys else default
