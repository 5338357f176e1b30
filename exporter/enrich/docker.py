"""Container name, image, labels and environment from the Docker Engine API, read-only.

`GET /containers/{id}/json` over the unix socket (Containers.DockerSocket). Answers are cached for
Common.FlushMetaInterval; when Docker cannot be asked, the last answer is kept and the error counted,
and the socket is not asked again for RETRY seconds."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from exporter.enrich.errors import SourceErrors
from exporter.enrich.http_client import SourceError, connection, get_json

TIMEOUT = 1.0  # seconds; Docker answers an inspect in milliseconds
RETRY = 10.0  # seconds without asking after an error
API_VERSION = "v1.41"  # Docker 20.10; every later engine serves it


@dataclass(frozen=True)
class ContainerMeta:
    name: str
    image: str
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def parse_inspect(body: Any) -> ContainerMeta:
    """The fields we use of an inspect answer; ValueError when it does not look like one."""
    if not isinstance(body, dict) or not isinstance(body.get("Config"), dict):
        raise ValueError("not a container inspect answer (no Config)")
    config = body["Config"]
    labels = config.get("Labels") or {}
    env_list = config.get("Env") or []
    if not isinstance(labels, dict) or not isinstance(env_list, list):
        raise ValueError("Config.Labels or Config.Env has the wrong type")
    env = dict(item.split("=", 1) for item in env_list if isinstance(item, str) and "=" in item)
    name = str(body.get("Name") or "").lstrip("/")
    return ContainerMeta(name=name, image=str(config.get("Image") or ""),
                         labels={str(k): str(v) for k, v in labels.items()}, env=env)


class DockerSource:
    def __init__(self, socket_path: str, ttl: float, errors: SourceErrors) -> None:
        self.socket_path = socket_path
        self.ttl = ttl
        self.errors = errors
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, ContainerMeta | None]] = {}  # id -> (expires, answer)
        self._quiet_until = 0.0

    def container(self, container_id: str) -> ContainerMeta | None:
        """The container's metadata; None when Docker does not know it (another runtime's) or is away."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(container_id)
            if cached is not None and (cached[0] > now or now < self._quiet_until):
                return cached[1]
            if now < self._quiet_until:
                return None
        try:
            meta = self._inspect(container_id)
        except SourceError as err:
            self.errors.count("docker", str(err))
            with self._lock:
                self._quiet_until = now + RETRY
            return cached[1] if cached is not None else None
        with self._lock:
            self._cache[container_id] = (now + self.ttl, meta)
        return meta

    def forget(self, alive: set[str]) -> None:
        """Drops the answers of containers that no longer have processes."""
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k in alive}

    def _inspect(self, container_id: str) -> ContainerMeta | None:
        conn = connection(f"unix://{self.socket_path}", TIMEOUT)
        try:
            status, body = get_json(conn, f"/{API_VERSION}/containers/{container_id}/json")
        finally:
            conn.close()
        if status == 404:
            return None
        if body is None:
            raise SourceError(f"GET /containers/{container_id[:12]}/json: HTTP {status}")
        try:
            return parse_inspect(body)
        except ValueError as err:
            raise SourceError(f"container {container_id[:12]}: {err}") from None
