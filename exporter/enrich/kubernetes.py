"""Watches the pods of this node on the Kubernetes API server and keeps them in a PodIndex.

Why the API server rather than the kubelet's /pods: a watch tells changes as they happen, for one
list at start and after each expiry, where the kubelet can only be polled; and the watch needs RBAC
on pods only (`get`, `list`, `watch`), which a DaemonSet's service account is commonly given, while
the kubelet's API wants `nodes/proxy`, a much wider right. `fieldSelector=spec.nodeName=<node>`
keeps the traffic to this node's pods.

The loop: list (remember resourceVersion), then watch from it with bookmarks until the server ends
the watch (timeoutSeconds) or the connection drops, then watch again from the last version seen.
410 Gone (the version is too old) means list again. Any failure keeps the pods known so far,
is counted (netobs.enrich.errors{source="kubernetes"}) and retried after an exponential backoff."""

from __future__ import annotations

import json
import logging
import random
import threading
from urllib.parse import quote

from exporter.enrich.errors import SourceErrors
from exporter.enrich.http_client import SourceError, connection, get_json
from exporter.enrich.kubernetes_api import ApiServer
from exporter.enrich.kubernetes_pods import PodIndex, parse_pod

log = logging.getLogger(__name__)

WATCH_SECONDS = 300  # the server ends a watch after this (with some jitter)
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
TIMEOUT = 15.0  # seconds for a list, and of silence on a watch beyond its end


class Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class PodWatcher:
    def __init__(self, api: ApiServer, node: str, index: PodIndex, errors: SourceErrors) -> None:
        self.api = api
        self.node = node
        self.index = index
        self.errors = errors
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubernetes-pods", daemon=True)
        self._version = ""
        self.synced = threading.Event()  # set once the first list has been read

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _path(self, **params: str) -> str:
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in
                         {"fieldSelector": f"spec.nodeName={self.node}", **params}.items())
        return f"/api/v1/pods?{query}"

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while not self._stop.is_set():
            try:
                if not self._version:
                    self._list()
                backoff = BACKOFF_MIN
                self._watch()
            except Gone:
                self._version = ""
                continue
            except SourceError as err:
                self.errors.count("kubernetes", str(err))
                self._version = ""  # a long gap: list again rather than trust an old version
                self._stop.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _list(self) -> None:
        conn = connection(self.api.url, TIMEOUT, self.api.context)
        try:
            status, body = get_json(conn, self._path(), self.api.headers())
        finally:
            conn.close()
        if body is None:
            raise SourceError(f"listing pods: HTTP {status}")
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise SourceError("listing pods: not a PodList")
        pods = []
        for item in body["items"]:
            try:
                pods.append(parse_pod(item))
            except ValueError as err:
                self.errors.count("kubernetes", f"listing pods: {err}")
        self.index.replace(pods)
        self._version = str(body.get("metadata", {}).get("resourceVersion", ""))
        if not self.synced.is_set():
            log.info("kubernetes: %d pods on node %s", len(pods), self.node)
        self.synced.set()

    def _watch(self) -> None:
        seconds = int(WATCH_SECONDS * random.uniform(0.9, 1.1))
        path = self._path(watch="1", resourceVersion=self._version, allowWatchBookmarks="true",
                          timeoutSeconds=str(seconds))
        conn = connection(self.api.url, seconds + TIMEOUT, self.api.context)
        try:
            conn.request("GET", path, headers=self.api.headers())
            response = conn.getresponse()
            if response.status == 410:
                raise Gone
            if response.status != 200:
                raise SourceError(f"watching pods: HTTP {response.status}")
            while not self._stop.is_set():
                line = response.readline()
                if not line:
                    return  # the server ended the watch: watch again from the last version
                if line.strip():
                    self._event(line)
        except OSError as err:
            raise SourceError(f"watching pods: {err or type(err).__name__}") from None
        finally:
            conn.close()

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
        except (ValueError, KeyError, TypeError):
            self.errors.count("kubernetes", f"watching pods: not a watch event: {line[:80]!r}")
            return
        if kind == "ERROR":
            if isinstance(obj, dict) and obj.get("code") == 410:
                raise Gone
            raise SourceError(f"watching pods: {obj.get('message') if isinstance(obj, dict) else obj}")
        version = obj.get("metadata", {}).get("resourceVersion") if isinstance(obj, dict) else None
        if kind == "BOOKMARK":
            self._version = str(version or self._version)
            return
        try:
            pod = parse_pod(obj)
        except ValueError as err:
            self.errors.count("kubernetes", f"watching pods: {err}")
            return
        if kind == "DELETED":
            self.index.delete(pod.uid)
        else:
            self.index.upsert(pod)
        self._version = str(version or self._version)
