"""Who is behind an address in the cluster: pods, Services and nodes as peers, parsed from the API's JSON.

Each object becomes one Claim: the Peer it names and the addresses it claims, and nothing else of
the object (no labels, no containers, no raw JSON). Strings that repeat across objects (namespaces,
node names, workload kinds and names) are interned, so 10,000 pods of one namespace hold its name once.

- A pod claims status.podIPs (IPv4 and IPv6) and status.podIP. A pod on the host network claims
  them for its node, since they are the node's. A pod that has Succeeded or Failed claims nothing:
  its addresses go back to the pool and are given to other pods.
- A Service claims spec.clusterIPs and spec.clusterIP, except a headless one ("None"), whose pods
  claim their own addresses; an ExternalName Service has none.
- A node claims its InternalIP and ExternalIP addresses.

Addresses are kept in Python's canonical text form, IPv4-mapped IPv6 as IPv4, as the collectors
format theirs (socket.inet_ntop)."""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.enrich.kubernetes_pods import workload_of
from exporter.series.peers import Peer

# workload_of's attributes, the outermost owner first: a Deployment's pod names its Deployment
_WORKLOADS = (("k8s.deployment.name", "Deployment"), ("k8s.cronjob.name", "CronJob"),
              ("k8s.statefulset.name", "StatefulSet"), ("k8s.daemonset.name", "DaemonSet"),
              ("k8s.job.name", "Job"), ("k8s.replicaset.name", "ReplicaSet"))
_ENDED_PHASES = ("Succeeded", "Failed")
_NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


@dataclass(slots=True, eq=False)
class Claim:
    """One object's addresses, and what decides between two objects claiming the same one."""

    uid: str
    peer: Peer
    addresses: tuple[str, ...]  # canonical; () claims nothing (an ended pod, a headless Service)
    created: int = 0  # metadata.creationTimestamp, seconds since the epoch
    terminating: bool = False  # metadata.deletionTimestamp is set
    seq: int = 0  # set by the index: the order in which objects first claimed these addresses


def canonical(address: str) -> str | None:
    """An address in the form the index keeps, or None if it is not an IP address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return sys.intern(value) if isinstance(value, str) else ""


def _addresses(candidates: list[Any]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for candidate in candidates:
        address = canonical(candidate) if isinstance(candidate, str) and candidate != "None" else None
        if address is not None:
            found[address] = None
    return tuple(found)


def _created(meta: dict[str, Any]) -> int:
    try:
        return int(datetime.fromisoformat(str(meta.get("creationTimestamp"))).timestamp())
    except ValueError:
        return 0


def _identity(obj: Any, what: str, namespaced: bool = True) -> tuple[dict[str, Any], str, str, str]:
    """metadata, uid, name, namespace; ValueError when one of them is missing."""
    meta = _dict(_dict(obj).get("metadata"))
    uid, name, namespace = meta.get("uid"), meta.get("name"), meta.get("namespace", "")
    if not (isinstance(uid, str) and isinstance(name, str) and isinstance(namespace, str)
            and uid and name and (namespace or not namespaced)):
        raise ValueError(f"{what} without metadata.uid, name" + (" or namespace" if namespaced else ""))
    return meta, uid, name, _text(namespace)


def node_peer(name: str) -> Peer:
    name = sys.intern(name)
    return Peer("node", name, node=name)


def _workload(meta: dict[str, Any]) -> tuple[str, str]:
    """(kind, name) of the pod's outermost owner workload, as workload_of reads it; ("", "") for none."""
    for owner in _list(meta.get("ownerReferences")):
        owner = _dict(owner)
        if owner.get("controller"):
            template_hash = _dict(meta.get("labels")).get("pod-template-hash")
            labels = {"pod-template-hash": template_hash} if isinstance(template_hash, str) else {}
            attributes = workload_of(str(owner.get("kind", "")), str(owner.get("name", "")), labels)
            for attribute, kind in _WORKLOADS:
                if attribute in attributes:
                    return sys.intern(kind), sys.intern(attributes[attribute])
    return "", ""


def parse_pod_claim(obj: Any) -> Claim:
    """A pod's claim; ValueError when it has no uid, name or namespace."""
    meta, uid, name, namespace = _identity(obj, "pod")
    spec, status = _dict(_dict(obj).get("spec")), _dict(_dict(obj).get("status"))
    node = _text(spec.get("nodeName"))
    addresses = () if status.get("phase") in _ENDED_PHASES else \
        _addresses([_dict(p).get("ip") for p in _list(status.get("podIPs"))] + [status.get("podIP")])
    if spec.get("hostNetwork") is True:
        peer = node_peer(node)
        if not node:
            addresses = ()
    else:
        peer = Peer("pod", name, namespace, *_workload(meta), node=node)
    return Claim(uid, peer, addresses, _created(meta), bool(meta.get("deletionTimestamp")))


def parse_service_claim(obj: Any) -> Claim:
    """A Service's claim on its cluster IPs; ValueError when it has no uid, name or namespace."""
    meta, uid, name, namespace = _identity(obj, "service")
    spec = _dict(_dict(obj).get("spec"))
    addresses = _addresses([*_list(spec.get("clusterIPs")), spec.get("clusterIP")])
    return Claim(uid, Peer("service", name, namespace), addresses, _created(meta),
                 bool(meta.get("deletionTimestamp")))


def parse_node_claim(obj: Any) -> Claim:
    """A node's claim on its internal and external addresses; ValueError when it has no uid or name."""
    meta, uid, name, _ = _identity(obj, "node", namespaced=False)
    addresses = _addresses([_dict(a).get("address") for a in _list(_dict(_dict(obj).get("status")).get("addresses"))
                            if _dict(a).get("type") in _NODE_ADDRESS_TYPES])
    return Claim(uid, node_peer(name), addresses, _created(meta), bool(meta.get("deletionTimestamp")))
