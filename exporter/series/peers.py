"""What is known of the other side of a row besides its address: its DNS name and its Kubernetes identity.

Attribution (exporter/enrich/stage.py) looks both up by the address a key names as its peer
(`Key.peer`); the naming of each kind (exporter/telemetry/naming/) decides which of them its series
carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

PeerKind = Literal["pod", "service", "node"]


@dataclass(frozen=True, slots=True)
class Peer:
    """The Kubernetes identity behind an address."""

    kind: PeerKind
    name: str
    namespace: str = ""  # "" for nodes
    workload_kind: str = ""  # pods: Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet; or ""
    workload_name: str = ""
    node: str = ""  # pods: spec.nodeName; nodes: their name; Services: ""


class Remote(NamedTuple):
    """The other side of a row, beyond its address."""

    domain: str | None = None  # the DNS name that resolved to the address, when one is known
    peer: Peer | None = None  # the pod, Service or node that has the address, when the cluster is watched


NOWHERE = Remote()  # nothing known: an address outside the cluster, not resolved, or no address at all
