"""DNS lookups from the messages processes write and read: pairing, timeouts, aggregation.

Pure logic over decoded chunks, so tests feed it byte literals. A query is paired with its
answer by socket, peer, transaction id and question; the time between them is the lookup's
duration, measured where the process wrote the query and read the answer (client) or read the
query and wrote the answer (server). A query left unanswered for `timeout` counts as TIMEOUT.
Every lookup lands in one series per (role, process, server, transport, name, type, rcode):
counts, a histogram and a windowed maximum, handed on as rows. No OpenTelemetry call is made per
lookup. Answers also tell `learn` which names resolved to which addresses."""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from exporter.collectors.dns_wire import Answer, Message, TcpFramer, parse, rcode_name, type_name
from exporter.series.lookups import LookupFigures, LookupKey
from exporter.series.rows import HistogramValue, Owner, Row

A, AAAA, CNAME = 1, 28, 5
OTHER_NAME = "~other"
TIMEOUT = "TIMEOUT"
MAX_FRAMERS = 16384  # TCP connection directions followed at once
FRAMER_IDLE_NS = 120 * 10**9


SAME_QUESTION = 4  # the same question and id in flight on one socket to that many servers at once
MAX_DROPPED = 4096  # queries the pending table had no room for, remembered so their answers are not unmatched

LearnNames = Callable[[str, list[tuple[str, int]]], None]  # (question, [(address, ttl)]) from an answer


def resolved_addresses(question: str, answers: Iterable[Answer]) -> list[tuple[str, int]]:
    """(address, ttl) of the A/AAAA records that answer `question`, following CNAME chains
    from it; records for unrelated owners (a server may add them) are ignored."""
    names = {question}
    addresses = []
    pending = list(answers)
    grew = True
    while grew:  # CNAMEs may come in any order: follow until the chain stops growing
        grew = False
        for answer in pending:
            if answer.rtype == CNAME and answer.name in names and answer.data not in names:
                names.add(answer.data)
                grew = True
    for answer in pending:
        if answer.rtype in (A, AAAA) and answer.name in names:
            addresses.append((answer.data, answer.ttl))
    return addresses


@dataclass(frozen=True, slots=True)
class Chunk:
    """One DNS message (UDP) or one piece of a DNS-over-TCP stream that a process read or wrote."""

    ktime_ns: int  # CLOCK_MONOTONIC, like time.monotonic_ns()
    sock: int      # names the socket while it lives
    pid: int
    comm: str
    transport: str  # "udp" or "tcp"
    family: str     # "ipv4" or "ipv6"
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    sent: bool
    length: int     # bytes the call moved; data may hold fewer (the capture is bounded)
    data: bytes
    paired: bool = False  # the kernel already counted it; only the addresses of its answer are new
    start: int = 0  # the process's start and cgroup (Owner); 0: not known
    cgroup_id: int = 0


class SeriesKey(NamedTuple):
    client: bool  # the process asked (outgoing) rather than answered (incoming)
    pid: int
    comm: str
    start: int  # with pid: the process, for good (Owner)
    cgroup_id: int
    transport: str
    family: str
    server_address: str
    server_port: int
    name: str
    qtype: str
    rcode: str


@dataclass(slots=True)
class Pending:
    ktime_ns: int
    series: SeriesKey  # rcode still empty
    remote_address: str
    remote_port: int
    request_bytes: int


@dataclass(slots=True)
class Series:
    buckets: list[int]
    count: int = 0
    sum_s: float = 0.0
    window: int = -2        # index of the window window_max belongs to
    window_max: float = 0.0
    previous_max: float = 0.0
    last_ns: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    row: Row | None = None  # the series' row, until it changes
    row_window: int = -2  # the window that row's maximum belongs to


@dataclass(frozen=True, slots=True)
class Increment:
    """Lookups to add to one series: one lookup from user space, or what the kernel counted since
    the last read. Windows are indexes of ktime_ns // window_ns, as the kernel computes them."""

    count: int
    sum_ns: int
    buckets: tuple[int, ...] | None  # None: one lookup of sum_ns, bucketed here
    window: int
    max_ns: int
    previous_max_ns: int
    last_ns: int
    request_bytes: int
    response_bytes: int


@dataclass
class Skipped:
    """Messages that did not become lookups, by reason (netobs_events_lost_total{collector="dns"})."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("malformed", "unmatched", "pending_full", "tcp_desync"), 0))

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n


class LookupTracker:
    def __init__(self, *, timeout: float, max_names_per_process: int, max_pending: int, series_expiry: float,
                 bounds: tuple[float, ...], max_window: float, learn: LearnNames | None = None,
                 capture: int = 1024) -> None:
        self.timeout_ns = int(timeout * 1e9)
        self.max_names = max_names_per_process
        self.max_pending = max_pending
        self.expiry_ns = int(series_expiry * 1e9)
        self.bounds = bounds
        self.window_ns = max(int(max_window * 1e9), 1)
        self.learn_names = learn
        self.capture = capture
        self.skipped = Skipped()
        self.folded = 0  # lookups whose name was folded into ~other
        self.series: dict[SeriesKey, Series] = {}
        self._pending: dict[tuple[object, ...], list[Pending]] = {}  # (socket, id, question) -> oldest first
        self._waiting = 0  # queries in _pending
        self._dropped: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._framers: OrderedDict[tuple[int, bool], tuple[TcpFramer, int]] = OrderedDict()
        self._names: dict[int, set[str]] = {}  # pid -> names it has series for

    # ------------------------------------------------------------------ input

    def observe(self, chunk: Chunk) -> None:
        if chunk.transport == "udp":
            self._message(chunk, chunk.data, chunk.length)
            return
        for framed in self._framer(chunk).feed(chunk.data, chunk.length):
            self._message(chunk, framed.data, framed.length)

    def _framer(self, chunk: Chunk) -> TcpFramer:
        key = (chunk.sock, chunk.sent)
        entry = self._framers.pop(key, None)
        framer = entry[0] if entry else TcpFramer(self.capture)
        self._framers[key] = (framer, chunk.ktime_ns)
        while len(self._framers) > MAX_FRAMERS:
            _, (old, _) = self._framers.popitem(last=False)
            self.skipped.add("tcp_desync", old.desyncs)
        return framer

    def _message(self, chunk: Chunk, data: bytes, length: int) -> None:
        message = parse(data, cut=len(data) < length)
        if message is None:
            self.skipped.add("malformed")
            return
        # who asks is the client: a query written, or an answer read
        client = chunk.sent != message.is_response
        # the answer echoes the id and the question: with the socket, they name the query even when
        # the answer was read without its address (remote_port 0)
        key = (chunk.sock, message.id, message.question_name, message.question_type)
        if not message.is_response:
            self._query(chunk, message, key, client, length)
            return
        pending = self._answered(key, chunk)
        if pending is None:
            if self._dropped.pop(key, False) is False:  # not the answer of a query there was no room for
                self.skipped.add("unmatched")
            return
        rcode = rcode_name(message.rcode)
        self._record(pending, rcode, chunk.ktime_ns - pending.ktime_ns, length)
        self._learn(message)

    def _answered(self, key: tuple[object, ...], chunk: Chunk) -> Pending | None:
        """The query an answer completes, taken out of _pending: the one sent to the answer's peer, or
        the oldest when a peer is not known."""
        waiting = self._pending.get(key)
        if not waiting:
            return None
        for i, p in enumerate(waiting):
            if _same_peer(p, chunk):
                del waiting[i]
                break
        else:
            return None
        if not waiting:
            del self._pending[key]
        self._waiting -= 1
        return p

    def learn(self, data: bytes, length: int) -> None:
        """An answer the kernel already counted, sent up for the addresses it holds."""
        message = parse(data, cut=len(data) < length)
        if message is not None:
            self._learn(message)

    def _learn(self, message: Message) -> None:
        if self.learn_names is not None and message.rcode == 0 and message.answers:
            found = resolved_addresses(message.question_name, message.answers)
            if found:
                self.learn_names(message.question_name, found)

    def _query(self, chunk: Chunk, message: Message, key: tuple[object, ...], client: bool, length: int) -> None:
        waiting = self._pending.setdefault(key, [])
        if any(_same_peer(p, chunk) for p in waiting):  # a retry: the lookup began with the first query
            return
        if self._waiting >= self.max_pending or len(waiting) >= SAME_QUESTION:
            self.skipped.add("pending_full")
            if not waiting:
                del self._pending[key]
            self._dropped[key] = None
            while len(self._dropped) > MAX_DROPPED:
                self._dropped.popitem(last=False)
            return
        server = (chunk.remote_address, chunk.remote_port) if client else (chunk.local_address, chunk.local_port)
        series = SeriesKey(client, chunk.pid, chunk.comm, chunk.start, chunk.cgroup_id, chunk.transport, chunk.family,
                           server[0], server[1], message.question_name, type_name(message.question_type), "")
        waiting.append(Pending(chunk.ktime_ns, series, chunk.remote_address, chunk.remote_port, length))
        self._waiting += 1

    # ------------------------------------------------------------------ aggregation

    def _fold(self, pid: int, name: str) -> str:
        names = self._names.setdefault(pid, set())
        if name in names:
            return name
        if len(names) >= self.max_names:
            return OTHER_NAME
        names.add(name)
        return name

    def _record(self, pending: Pending, rcode: str, duration_ns: int, response_bytes: int) -> None:
        duration_ns = max(duration_ns, 0)
        end_ns = pending.ktime_ns + duration_ns
        self.add(pending.series._replace(rcode=rcode), Increment(
            1, duration_ns, None, end_ns // self.window_ns, duration_ns, 0, end_ns,
            pending.request_bytes, response_bytes))

    def add(self, key: SeriesKey, inc: Increment) -> None:
        """Adds lookups to the series of `key`, its name folded by the per-process cap."""
        name = self._fold(key.pid, key.name)
        if name != key.name:
            self.folded += inc.count
            key = key._replace(name=name)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(buckets=[0] * (len(self.bounds) + 1))
        s.count += inc.count
        s.sum_s += inc.sum_ns / 1e9
        if inc.buckets is None:
            s.buckets[bisect.bisect_left(self.bounds, inc.sum_ns / 1e9)] += inc.count
        else:
            for i, n in enumerate(inc.buckets):
                s.buckets[i] += n
        self._merge_max(s, inc.window, inc.max_ns / 1e9, inc.previous_max_ns / 1e9)
        s.last_ns = max(s.last_ns, inc.last_ns)
        s.request_bytes += inc.request_bytes
        s.response_bytes += inc.response_bytes
        s.row = None

    @staticmethod
    def _merge_max(s: Series, window: int, max_s: float, previous_max_s: float) -> None:
        if window == s.window:
            s.window_max = max(s.window_max, max_s)
            s.previous_max = max(s.previous_max, previous_max_s)
        elif window > s.window:
            carried = s.window_max if window == s.window + 1 else 0.0
            s.previous_max = max(previous_max_s, carried)
            s.window, s.window_max = window, max_s
        elif window == s.window - 1:
            s.previous_max = max(s.previous_max, max_s)

    # ------------------------------------------------------------------ time

    def expire(self, now_ns: int) -> None:
        """Queries unanswered for `timeout` become TIMEOUT lookups; idle series and TCP streams go."""
        overdue = [k for k, waiting in self._pending.items() if now_ns - waiting[0].ktime_ns >= self.timeout_ns]
        for k in overdue:
            waiting = self._pending[k]
            while waiting and now_ns - waiting[0].ktime_ns >= self.timeout_ns:
                self._record(waiting.pop(0), TIMEOUT, self.timeout_ns, 0)
                self._waiting -= 1
            if not waiting:
                del self._pending[k]
        idle = [k for k, s in self.series.items() if now_ns - s.last_ns > self.expiry_ns]
        for k in idle:
            del self.series[k]
        if idle:
            self._names = {}
            for k in self.series:
                if k.name != OTHER_NAME:
                    self._names.setdefault(k.pid, set()).add(k.name)
        while self._framers:
            key, (framer, last_ns) = next(iter(self._framers.items()))
            if now_ns - last_ns < FRAMER_IDLE_NS:
                break
            del self._framers[key]
            self.skipped.add("tcp_desync", framer.desyncs)

    # ------------------------------------------------------------------ output

    def rows(self, now_ns: int) -> list[Row]:
        """A row per series; a series keeps its Row while its figures and its window's maximum stand."""
        window = now_ns // self.window_ns
        out = []
        for key, s in self.series.items():
            if s.row is None or s.row_window != window:
                s.row, s.row_window = _row(key, s, window), window
            out.append(s.row)
        return out

    def tcp_desyncs(self) -> int:
        return sum(framer.desyncs for framer, _ in self._framers.values())


def _same_peer(p: Pending, chunk: Chunk) -> bool:
    """Whether a query's peer is the peer of a later message; a peer not known (port 0) matches any."""
    if not p.remote_port or not chunk.remote_port:
        return True
    return p.remote_port == chunk.remote_port and p.remote_address == chunk.remote_address


def _row(key: SeriesKey, s: Series, window: int) -> Row:
    if window == s.window:
        maximum: float | None = max(s.window_max, s.previous_max)
    elif window == s.window + 1:
        maximum = s.window_max
    else:
        maximum = None
    return Row(LookupKey(key.client, key.transport, key.family, key.server_address, key.server_port, key.name,
                         key.qtype, key.rcode),
               Owner(key.pid, key.comm, key.start, key.cgroup_id),
               LookupFigures(HistogramValue(tuple(s.buckets), s.sum_s, s.count), s.count, maximum, s.request_bytes,
                             s.response_bytes))
