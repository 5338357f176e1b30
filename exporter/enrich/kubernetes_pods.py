"""The pods of this node as we keep them: parsed from the API's JSON, indexed by container id and pod uid.

The owner workload is read from the pod alone, so the exporter needs RBAC on pods only:
- ReplicaSet `<deployment>-<pod-template-hash>` -> Deployment: the ReplicaSet name minus the pod's
  `pod-template-hash` label, when it ends with it (as the Deployment controller names it);
- Job `<cronjob>-<minutes since the epoch>` -> CronJob: the Job name minus a numeric suffix of 8 or more
  digits (as the CronJob controller names it);
- StatefulSet, DaemonSet, Job, ReplicaSet without a hash: their own name."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DELETED_GRACE = 300.0  # seconds a deleted pod still answers: its processes' last series are still read
_CRONJOB_JOB = re.compile(r"^(?P<cronjob>.+)-\d{8,}$")
_RUNTIME_PREFIX = re.compile(r"^[a-z0-9-]+://")


@dataclass(frozen=True)
class PodContainer:
    name: str
    image: str
    env: dict[str, str] = field(default_factory=dict)  # literal values of the spec (not valueFrom)


@dataclass(frozen=True)
class Pod:
    uid: str
    name: str
    namespace: str
    node: str
    labels: dict[str, str]
    workload: dict[str, str]  # attribute name (k8s.deployment.name...) -> value
    containers: dict[str, PodContainer]  # container id -> container
    by_name: dict[str, PodContainer]  # container name -> container (for ids not yet in the status)


def workload_of(kind: str, name: str, labels: dict[str, str]) -> dict[str, str]:
    if kind == "ReplicaSet":
        out = {"k8s.replicaset.name": name}
        suffix = labels.get("pod-template-hash", "")
        if suffix and name.endswith("-" + suffix):
            out["k8s.deployment.name"] = name[: -len(suffix) - 1]
        return out
    if kind == "Job":
        match = _CRONJOB_JOB.match(name)
        return {"k8s.job.name": name, **({"k8s.cronjob.name": match["cronjob"]} if match else {})}
    if kind in ("StatefulSet", "DaemonSet", "Deployment", "CronJob"):
        return {f"k8s.{kind.lower()}.name": name}
    return {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_pod(obj: Any) -> Pod:
    """A pod from its API object; ValueError when it has no uid, name or namespace."""
    meta, spec, status = _dict(_dict(obj).get("metadata")), _dict(_dict(obj).get("spec")), \
        _dict(_dict(obj).get("status"))
    uid, name, namespace = meta.get("uid"), meta.get("name"), meta.get("namespace")
    if not (isinstance(uid, str) and isinstance(name, str) and isinstance(namespace, str)):
        raise ValueError("pod without metadata.uid, name or namespace")
    labels = {str(k): str(v) for k, v in _dict(meta.get("labels")).items()}
    workload: dict[str, str] = {}
    for owner in _list(meta.get("ownerReferences")):
        if _dict(owner).get("controller"):
            workload = workload_of(str(owner.get("kind", "")), str(owner.get("name", "")), labels)
    by_name: dict[str, PodContainer] = {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _list(spec.get(key)):
            c = _dict(c)
            env = {str(e["name"]): str(e["value"]) for e in _list(c.get("env"))
                   if isinstance(e, dict) and "name" in e and isinstance(e.get("value"), str)}
            by_name[str(c.get("name", ""))] = PodContainer(str(c.get("name", "")), str(c.get("image", "")), env)
    containers: dict[str, PodContainer] = {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for s in _list(status.get(key)):
            s = _dict(s)
            container_id = _RUNTIME_PREFIX.sub("", str(s.get("containerID") or ""))
            if container_id:
                spec_container = by_name.get(str(s.get("name", "")))
                env = spec_container.env if spec_container else {}
                image = str(spec_container.image if spec_container else s.get("image", ""))
                containers[container_id] = PodContainer(str(s.get("name", "")), image, env)
    return Pod(uid, name, namespace, str(spec.get("nodeName") or ""), labels, workload, containers, by_name)


class PodIndex:
    """Thread-safe: the watcher writes, the attribution stage reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[str, Pod] = {}
        self._by_container: dict[str, tuple[Pod, PodContainer]] = {}
        self._deleted: dict[str, tuple[float, Pod]] = {}
        self.version = 0  # changes whenever a pod does: attribution re-reads what it cached

    def replace(self, pods: list[Pod]) -> None:
        now = time.monotonic()
        with self._lock:
            new = {p.uid: p for p in pods}
            for uid, pod in self._pods.items():
                if uid not in new:
                    self._deleted[uid] = (now + DELETED_GRACE, pod)
            self._pods = new
            self._reindex(now)

    def upsert(self, pod: Pod) -> None:
        with self._lock:
            self._pods[pod.uid] = pod
            self._deleted.pop(pod.uid, None)
            self._reindex(time.monotonic())

    def delete(self, uid: str) -> None:
        with self._lock:
            pod = self._pods.pop(uid, None)
            if pod is not None:
                self._deleted[uid] = (time.monotonic() + DELETED_GRACE, pod)
            self._reindex(time.monotonic())

    def _reindex(self, now: float) -> None:
        self._deleted = {uid: v for uid, v in self._deleted.items() if v[0] > now}
        index: dict[str, tuple[Pod, PodContainer]] = {}
        for pod in [p for _, p in self._deleted.values()] + list(self._pods.values()):
            for container_id, container in pod.containers.items():
                index[container_id] = (pod, container)
        self._by_container = index
        self.version += 1

    def by_container(self, container_id: str) -> tuple[Pod, PodContainer] | None:
        with self._lock:
            return self._by_container.get(container_id)

    def by_uid(self, uid: str) -> Pod | None:
        with self._lock:
            found = self._pods.get(uid)
            return found if found is not None else self._deleted.get(uid, (0.0, None))[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._pods)
