"""One Kubernetes resource, listed and then watched into a sink: the loop every watcher shares.

The loop: list (in pages of PAGE_SIZE, remembering the list's resourceVersion), then watch from it
with bookmarks until the server ends the watch (timeoutSeconds), the connection drops or the
periodic resync is due, then watch again from the last version seen. 410 Gone (as an HTTP status or
as an ERROR event: the version is older than the server keeps) and the resync mean list again.

Any failure keeps what the sink holds, is counted under the watcher's source (netobs.enrich.errors),
and is retried after an exponential backoff with jitter; the retry lists again, as the gap may hide
changes. So is a 410 Gone from a list (an expired continue token) or from the watch of a version
just listed, which would otherwise list again and again at once. The backoff starts over once a
watch has delivered an event or ended normally, not after a list alone: a server that lists but
cannot watch is not listed again every second.

Objects are parsed as they arrive and only the parsed form goes to the sink: one page of a list,
or one watch event, is the most raw JSON held at once."""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote

from exporter.enrich.errors import SourceErrors
from exporter.enrich.http_client import SourceError, connection, get_json
from exporter.enrich.kubernetes_api import ApiServer

log = logging.getLogger(__name__)

T = TypeVar("T")

PAGE_SIZE = 100  # objects per page of a list: bounds the JSON parsed at once (docs/attribution.md#peers)
RESYNC_EARLY = 0.01  # seconds: a read timing out this close to the resync is the resync


class Gone(Exception):
    """The watch's resourceVersion, or a list's continue token, is too old: list again."""


class Sink(Protocol[T]):
    """Where a watcher puts what it parsed: the whole list, then each change."""

    def replace(self, items: list[T]) -> None: ...

    def upsert(self, item: T) -> None: ...

    def delete(self, item: T) -> None: ...


@dataclass(frozen=True)
class Timing:
    watch_seconds: float = 300.0  # the server ends a watch after this (±10 %)
    resync: float = 0.0  # seconds between full lists (±10 %); 0: only when the watch cannot go on
    backoff_min: float = 1.0  # seconds before the first retry, doubled at each failure in a row
    backoff_max: float = 60.0
    timeout: float = 15.0  # seconds to connect and for a page of a list; of silence past a watch's end


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class ListWatch(Generic[T]):
    """Lists and watches `path` (e.g. /api/v1/pods) in a thread of its own, into `sink`. `parse` turns
    an API object into what the sink keeps, or raises ValueError for an object to skip (counted)."""

    def __init__(self, api: ApiServer, path: str, parse: Callable[[Any], T], sink: Sink[T],
                 errors: SourceErrors, *, source: str, what: str, params: dict[str, str] | None = None,
                 timing: Timing = Timing()) -> None:
        self.api, self.path, self.parse, self.sink, self.errors = api, path, parse, sink, errors
        self.source = source  # the errors' source: kubernetes, kubernetes_peers
        self.what = what  # in messages: "pods", "services in shop"
        self.params = params or {}  # fieldSelector, labelSelector
        self.timing = timing
        self.synced = threading.Event()  # set once the first list has been read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubernetes-{what.replace(' ', '-')}", daemon=True)
        self._version = ""
        self._resync_at = math.inf
        self._worked = False  # the current watch delivered an event

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops after the current request: a watch ends at its next event or when the server ends it."""
        self._stop.set()

    def _url(self, **params: str) -> str:
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in {**self.params, **params}.items())
        return f"{self.path}?{query}"

    def _run(self) -> None:
        backoff = self.timing.backoff_min
        while not self._stop.is_set():
            self._worked = False
            fresh = not self._version or time.monotonic() >= self._resync_at
            try:
                if fresh:
                    self._list()
                self._watch()
                backoff = self.timing.backoff_min
                continue
            except Gone:
                self._version = ""
                if self._worked or not fresh:
                    continue  # the version aged: list again now
                # Gone from a list, or from the watch of a version just listed: not to be retried at once
                message = f"{self.what}: 410 Gone right after a list"
            except Exception as err:  # a dead watcher thread would freeze the sink: count and retry
                message = str(err) if isinstance(err, SourceError) else f"{self.what}: {type(err).__name__}: {err}"
                self._version = ""  # a gap: list again rather than trust an old version
            self.errors.count(self.source, message)
            if self._worked:
                backoff = self.timing.backoff_min  # it worked for a while: a new outage
            self._stop.wait(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.timing.backoff_max)

    def _list(self) -> None:
        items: list[T] = []
        token, version = "", ""
        conn = connection(self.api.url, self.timing.timeout, self.api.context)
        try:
            while True:
                page = {"limit": str(PAGE_SIZE), **({"continue": token} if token else {})}
                status, body = get_json(conn, self._url(**page), self.api.headers())
                if status == 410:
                    raise Gone  # the continue token expired: start over
                if body is None:
                    raise SourceError(f"listing {self.what}: HTTP {status}")
                if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                    raise SourceError(f"listing {self.what}: not a list")
                for item in body["items"]:
                    try:
                        items.append(self.parse(item))
                    except ValueError as err:
                        self.errors.count(self.source, f"listing {self.what}: {err}")
                meta = _dict(body.get("metadata"))
                token, version = str(meta.get("continue") or ""), str(meta.get("resourceVersion") or "")
                if not token:
                    break
        finally:
            conn.close()
        if not version:
            raise SourceError(f"listing {self.what}: no resourceVersion")
        self.sink.replace(items)
        self._version = version
        resync = self.timing.resync
        self._resync_at = time.monotonic() + resync * random.uniform(0.9, 1.1) if resync > 0 else math.inf
        if not self.synced.is_set():
            log.info("%s: %d %s", self.source, len(items), self.what)
        self.synced.set()

    def _watch(self) -> None:
        seconds = max(1, int(self.timing.watch_seconds * random.uniform(0.9, 1.1)))
        path = self._url(watch="1", resourceVersion=self._version, allowWatchBookmarks="true",
                         timeoutSeconds=str(seconds))
        end = time.monotonic() + seconds + self.timing.timeout
        conn = connection(self.api.url, self.timing.timeout, self.api.context)
        try:
            conn.connect()
            sock = conn.sock  # kept: http.client forgets it when the server will close the connection
            conn.request("GET", path, headers=self.api.headers())
            response = conn.getresponse()
            if response.status == 410:
                raise Gone
            if response.status != 200:
                raise SourceError(f"watching {self.what}: HTTP {response.status}")
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= self._resync_at:
                    return
                sock.settimeout(max(min(end, self._resync_at) - now, RESYNC_EARLY))
                try:
                    line = response.readline()
                except TimeoutError:
                    if time.monotonic() >= self._resync_at - RESYNC_EARLY:
                        return
                    raise
                if not line:
                    return  # the server ended the watch: watch again from the last version
                if line.strip():
                    self._event(line)
        except (OSError, http.client.HTTPException) as err:
            raise SourceError(f"watching {self.what}: {err or type(err).__name__}") from None
        finally:
            conn.close()

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
        except (ValueError, KeyError, TypeError):
            self.errors.count(self.source, f"watching {self.what}: not a watch event: {line[:80]!r}")
            return
        if kind == "ERROR":
            if _dict(obj).get("code") == 410:
                raise Gone
            raise SourceError(f"watching {self.what}: {obj.get('message') if isinstance(obj, dict) else obj}")
        self._worked = True
        version = _dict(_dict(obj).get("metadata")).get("resourceVersion")
        if kind == "BOOKMARK":
            self._version = str(version or self._version)
            return
        try:
            item = self.parse(obj)
        except ValueError as err:
            self.errors.count(self.source, f"watching {self.what}: {err}")
            return
        if kind == "DELETED":
            self.sink.delete(item)
        else:
            self.sink.upsert(item)
        self._version = str(version or self._version)
