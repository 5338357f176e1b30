"""LookupTracker on hand-built DNS messages: pairing, timeouts, name caps, windowed maxima, TCP, records."""

from __future__ import annotations

import ipaddress
import json
import struct

import pytest

from exporter.collectors.dns_lookups import FRAMER_IDLE_NS, OTHER_NAME, Chunk, LookupTracker
from exporter.enrich.domains import DomainCache
from exporter.series.lookups import LookupKey
from exporter.series.rows import Attributes, HistogramValue
from exporter.telemetry.collection import unattributed
from exporter.telemetry.naming.lookups import LOOKUPS, lookup_attributes
from exporter.telemetry.records import RecordDeltas

A, CNAME = 1, 5
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5
MS = 1_000_000
S = 1_000 * MS
BOUNDS = (0.01, 0.1, 1.0)
CLIENT = ("10.0.0.5", 40000)
SERVER = ("10.0.0.53", 53)


# Messages


def name(text: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".")) + b"\x00"


def record(owner: str, rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    return name(owner) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def a_record(owner: str, address: str, ttl: int = 300) -> bytes:
    return record(owner, A, ipaddress.IPv4Address(address).packed, ttl)


def query(qname: str = "example.com", ident: int = 0x1234) -> bytes:
    return struct.pack("!6H", ident, 0x0100, 1, 0, 0, 0) + name(qname) + struct.pack("!HH", A, 1)


def answer(qname: str = "example.com", ident: int = 0x1234, rcode: int = NOERROR, records: tuple[bytes, ...] = ()
           ) -> bytes:
    header = struct.pack("!6H", ident, 0x8180 | rcode, 1, len(records), 0, 0)
    return header + name(qname) + struct.pack("!HH", A, 1) + b"".join(records)


def framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


# Chunks and the tracker


def chunk(data: bytes, at_ms: float, *, sent: bool, length: int | None = None, sock: int = 1, pid: int = 100,
          transport: str = "udp", local: tuple[str, int] = CLIENT, remote: tuple[str, int] = SERVER) -> Chunk:
    return Chunk(ktime_ns=int(at_ms * MS), sock=sock, pid=pid, comm="curl", transport=transport, family="ipv4",
                 local_address=local[0], local_port=local[1], remote_address=remote[0], remote_port=remote[1],
                 sent=sent, length=len(data) if length is None else length, data=data)


def tracker(domains: DomainCache | None = None, **overrides: float) -> LookupTracker:
    settings = {"timeout": 5.0, "max_names_per_process": 10, "max_pending": 100, "series_expiry": 60.0,
                "max_window": 10.0} | overrides
    return LookupTracker(timeout=settings["timeout"], max_names_per_process=int(settings["max_names_per_process"]),
                         max_pending=int(settings["max_pending"]), series_expiry=settings["series_expiry"],
                         bounds=BOUNDS, max_window=settings["max_window"],
                         learn=domains.learn if domains is not None else None)


def snapshot(t: LookupTracker, now_ns: int) -> dict[str, dict[Attributes, object]]:
    """instrument -> attributes (the process's pid and name last) -> value, as the rows would be exported."""
    out: dict[str, dict[Attributes, object]] = {}
    for row in t.rows(now_ns):
        assert isinstance(row.key, LookupKey)
        owner = (("process.pid", row.owner.pid), ("process.executable.name", row.owner.comm))
        attrs = (*lookup_attributes(row.key), *owner)
        for point in LOOKUPS.points:
            value = row.figures[point.figure]
            if value is not None:
                out.setdefault(point.instrument, {})[attrs] = value
    return out


def take_records(t: LookupTracker, deltas: RecordDeltas) -> list[dict[str, str]]:
    return deltas.records(unattributed("dns", t.rows(0)), now="0")


def lookup(t: LookupTracker, start_ms: float, end_ms: float, qname: str = "example.com", *, ident: int = 0x1234,
           rcode: int = NOERROR, sock: int = 1, pid: int = 100) -> None:
    """A client lookup over UDP: the query written at start_ms, its answer read at end_ms."""
    t.observe(chunk(query(qname, ident), start_ms, sent=True, sock=sock, pid=pid))
    t.observe(chunk(answer(qname, ident, rcode), end_ms, sent=False, sock=sock, pid=pid))


def durations(t: LookupTracker, now_ms: float = 0) -> dict[Attributes, HistogramValue]:
    points = snapshot(t, int(now_ms * MS)).get("dns.lookup.duration", {})
    return {attrs: value for attrs, value in points.items() if isinstance(value, HistogramValue)}


def only(t: LookupTracker) -> tuple[dict[str, str | int], HistogramValue]:
    """The attributes and histogram of the tracker's single series."""
    [(attrs, value)] = durations(t).items()
    return dict(attrs), value


def by_name(t: LookupTracker, instrument: str, now_ms: float = 0) -> dict[str, float]:
    points = snapshot(t, int(now_ms * MS)).get(instrument, {})
    return {str(dict(attrs)["dns.question.name"]): value for attrs, value in points.items()
            if not isinstance(value, HistogramValue)}


def maxima(t: LookupTracker, now_ms: float) -> dict[str, float]:
    return by_name(t, "dns.lookup.duration.max", now_ms)


def counts_by_name(t: LookupTracker) -> dict[str, float]:
    return by_name(t, "dns.lookups")


# Pairing


def test_query_written_then_answer_read_is_one_outgoing_lookup() -> None:
    t = tracker()
    lookup(t, 1_000, 1_030)
    [(attrs, value)] = durations(t).items()
    assert attrs == (
        ("dns.question.name", "example.com"),
        ("dns.question.type", "A"),
        ("dns.response_code", "NOERROR"),
        ("server.address", "10.0.0.53"),
        ("server.port", 53),
        ("network.transport", "udp"),
        ("network.type", "ipv4"),
        ("dnsflow.direction", "outgoing"),
        ("process.pid", 100),
        ("process.executable.name", "curl"),
    )
    assert value == HistogramValue(bucket_counts=(0, 1, 0, 0), sum=0.03, count=1)
    assert snapshot(t, 0)["dns.lookups"] == {attrs: 1}


def test_query_read_then_answer_written_is_an_incoming_lookup_served_locally() -> None:
    t = tracker()
    t.observe(chunk(query(), 1_000, sent=False, local=SERVER, remote=CLIENT))
    t.observe(chunk(answer(), 1_002, sent=True, local=SERVER, remote=CLIENT))
    attrs, value = only(t)
    assert (attrs["dnsflow.direction"], attrs["server.address"], attrs["server.port"]) == ("incoming", *SERVER)
    assert (value.count, value.sum, value.bucket_counts) == (1, 0.002, (1, 0, 0, 0))


@pytest.mark.parametrize(("rcode", "rcode_text"),
                         [(NXDOMAIN, "NXDOMAIN"), (REFUSED, "REFUSED"), (SERVFAIL, "SERVFAIL")])
def test_error_response_codes_are_the_error_type(rcode: int, rcode_text: str) -> None:
    t = tracker()
    lookup(t, 0, 10, rcode=rcode)
    attrs, _ = only(t)
    assert (attrs["dns.response_code"], attrs["error.type"]) == (rcode_text, rcode_text)


def test_noerror_has_no_error_type() -> None:
    t = tracker()
    lookup(t, 0, 10)
    attrs, _ = only(t)
    assert attrs["dns.response_code"] == "NOERROR"
    assert "error.type" not in attrs


def test_answer_without_a_query_is_unmatched() -> None:
    t = tracker()
    t.observe(chunk(answer(), 10, sent=False))
    assert t.skipped.counts["unmatched"] == 1
    assert durations(t) == {}


@pytest.mark.parametrize("data", [b"", b"\x12\x34\x81", b"not a dns message at all"])
def test_garbage_is_malformed(data: bytes) -> None:
    t = tracker()
    t.observe(chunk(data, 10, sent=True))
    assert t.skipped.counts["malformed"] == 1
    assert durations(t) == {}


def test_answer_to_another_question_with_the_same_id_is_unmatched() -> None:
    t = tracker()
    t.observe(chunk(query("example.com"), 0, sent=True))
    t.observe(chunk(answer("example.org"), 10, sent=False))
    assert t.skipped.counts["unmatched"] == 1


def test_repeated_query_is_one_lookup_timed_from_the_first() -> None:
    t = tracker()
    t.observe(chunk(query(), 0, sent=True))
    t.observe(chunk(query(), 1_000, sent=True))  # the resolver retried
    t.observe(chunk(answer(), 1_050, sent=False))
    _, value = only(t)
    assert (value.count, value.sum) == (1, 1.05)
    t.observe(chunk(answer(), 1_060, sent=False))  # the answer to the retry
    assert t.skipped.counts["unmatched"] == 1


def test_different_ids_on_one_socket_are_different_lookups() -> None:
    t = tracker()
    t.observe(chunk(query(ident=1), 0, sent=True))
    t.observe(chunk(query(ident=2), 5, sent=True))
    t.observe(chunk(answer(ident=2), 25, sent=False))
    t.observe(chunk(answer(ident=1), 40, sent=False))
    _, value = only(t)
    assert (value.count, value.sum) == (2, pytest.approx(0.06))
    assert t.skipped.counts["unmatched"] == 0


# Timeouts


def test_unanswered_query_times_out_after_exactly_the_timeout() -> None:
    t = tracker(timeout=5.0)
    t.observe(chunk(query(), 1_000, sent=True))
    t.expire(6 * S)
    attrs, value = only(t)
    assert (attrs["dns.response_code"], attrs["error.type"]) == ("TIMEOUT", "TIMEOUT")
    assert (value.count, value.sum, value.bucket_counts) == (1, 5.0, (0, 0, 0, 1))


def test_query_younger_than_the_timeout_is_still_pending() -> None:
    t = tracker(timeout=5.0)
    t.observe(chunk(query(), 1_000, sent=True))
    t.expire(6 * S - 1)
    assert durations(t) == {}
    t.observe(chunk(answer(), 5_500, sent=False))
    attrs, value = only(t)
    assert (attrs["dns.response_code"], value.sum) == ("NOERROR", 4.5)


def test_answer_after_the_timeout_is_unmatched() -> None:
    t = tracker(timeout=5.0)
    t.observe(chunk(query(), 0, sent=True))
    t.expire(5 * S)
    t.observe(chunk(answer(), 5_200, sent=False))
    assert t.skipped.counts["unmatched"] == 1
    assert only(t)[0]["dns.response_code"] == "TIMEOUT"


def test_queries_beyond_max_pending_are_skipped_and_their_answers_are_not_unmatched() -> None:
    """A query there was no room for is one lost lookup (pending_full), not two losses."""
    t = tracker(max_pending=2)
    for ident in (1, 2, 3):
        t.observe(chunk(query(ident=ident), 0, sent=True))
    assert t.skipped.counts["pending_full"] == 1
    t.observe(chunk(answer(ident=3), 10, sent=False))
    assert t.skipped.counts["unmatched"] == 0
    t.observe(chunk(answer(ident=4), 10, sent=False))
    assert t.skipped.counts["unmatched"] == 1
    t.observe(chunk(answer(ident=1), 10, sent=False))
    t.observe(chunk(answer(ident=2), 10, sent=False))
    assert only(t)[1].count == 2


# Pairing: the answer echoes the id and the question

UNKNOWN = ("0.0.0.0", 0)  # the peer of a datagram read without its address (recv, recvfrom(NULL))
OTHER_SERVER = ("10.0.0.54", 53)


def test_answer_read_without_its_address_pairs_with_its_query() -> None:
    t = tracker()
    t.observe(chunk(query(), 0, sent=True))
    t.observe(chunk(answer(rcode=NXDOMAIN), 7, sent=False, remote=UNKNOWN))
    attrs, value = only(t)
    assert (attrs["dns.response_code"], attrs["server.address"], attrs["server.port"]) == ("NXDOMAIN", *SERVER)
    assert (value.count, value.sum) == (1, 0.007)
    assert t.skipped.counts["unmatched"] == 0


def test_an_id_reused_for_another_question_is_another_lookup() -> None:
    t = tracker()
    t.observe(chunk(query("a.example"), 0, sent=True))
    t.observe(chunk(query("b.example"), 1, sent=True))
    t.observe(chunk(answer("b.example"), 3, sent=False, remote=UNKNOWN))
    t.observe(chunk(answer("a.example"), 5, sent=False, remote=UNKNOWN))
    sums = {dict(attrs)["dns.question.name"]: value.sum for attrs, value in durations(t).items()}
    assert sums == {"a.example": 0.005, "b.example": 0.002}


def test_same_id_to_two_servers_pairs_by_the_answers_peer() -> None:
    t = tracker()
    t.observe(chunk(query(), 0, sent=True, remote=SERVER))
    t.observe(chunk(query(), 1, sent=True, remote=OTHER_SERVER))
    t.observe(chunk(answer(rcode=REFUSED), 4, sent=False, remote=OTHER_SERVER))
    t.observe(chunk(answer(), 9, sent=False, remote=SERVER))
    got = {(dict(a)["server.address"], dict(a)["dns.response_code"]): v.sum for a, v in durations(t).items()}
    assert got == {("10.0.0.53", "NOERROR"): 0.009, ("10.0.0.54", "REFUSED"): 0.003}


def test_same_id_to_two_servers_read_without_addresses_pairs_oldest_first() -> None:
    """What docs/dns.md says: nothing tells the answers apart, so they complete the queries in order."""
    t = tracker()
    t.observe(chunk(query(), 0, sent=True, remote=SERVER))
    t.observe(chunk(query(), 1, sent=True, remote=OTHER_SERVER))
    t.observe(chunk(answer(), 4, sent=False, remote=UNKNOWN))
    t.observe(chunk(answer(), 9, sent=False, remote=UNKNOWN))
    got = {dict(a)["server.address"]: v.sum for a, v in durations(t).items()}
    assert got == {"10.0.0.53": 0.004, "10.0.0.54": 0.008}


def test_a_retry_to_the_same_server_is_one_lookup_from_the_first_query() -> None:
    t = tracker()
    t.observe(chunk(query(), 0, sent=True))
    t.observe(chunk(query(), 1_000, sent=True))
    t.observe(chunk(answer(), 1_002, sent=False, remote=UNKNOWN))
    assert (only(t)[1].count, only(t)[1].sum) == (1, 1.002)


def test_the_same_question_to_too_many_servers_at_once_is_counted_lost() -> None:
    t = tracker()
    for i in range(5):
        t.observe(chunk(query(), i, sent=True, remote=(f"10.0.1.{i}", 53)))
    assert t.skipped.counts["pending_full"] == 1
    t.observe(chunk(answer(), 9, sent=False, remote=("10.0.1.4", 53)))
    assert t.skipped.counts["unmatched"] == 0
    t.expire(10 * S)
    got = {(dict(a)["server.address"], dict(a)["dns.response_code"]): v.count for a, v in durations(t).items()}
    assert got == {(f"10.0.1.{i}", "TIMEOUT"): 1 for i in range(4)}


# Names per process


def test_names_beyond_the_cap_fold_into_other() -> None:
    t = tracker(max_names_per_process=2)
    for i, qname in enumerate(("a.example", "b.example", "c.example", "d.example", "a.example")):
        lookup(t, i * 100, i * 100 + 10, qname)
    assert counts_by_name(t) == {"a.example": 2, "b.example": 1, OTHER_NAME: 2}
    assert t.folded == 2


def test_each_process_has_its_own_name_cap() -> None:
    t = tracker(max_names_per_process=2)
    for i, qname in enumerate(("a.example", "b.example", "c.example")):
        lookup(t, i * 100, i * 100 + 10, qname, pid=100)
    lookup(t, 500, 510, "c.example", pid=200)
    names = {(dict(attrs)["process.pid"], dict(attrs)["dns.question.name"]) for attrs in durations(t)}
    assert names == {(100, "a.example"), (100, "b.example"), (100, OTHER_NAME), (200, "c.example")}


def test_expired_series_free_their_names() -> None:
    t = tracker(max_names_per_process=2, series_expiry=60.0)
    for i, qname in enumerate(("a.example", "b.example", "c.example")):
        lookup(t, i * 100, i * 100 + 10, qname)
    t.expire(60 * S + 211 * MS)  # 60 s and 1 ms after the last lookup ended
    assert durations(t) == {}
    lookup(t, 61_000, 61_010, "c.example")
    assert counts_by_name(t) == {"c.example": 1}


def test_series_used_within_the_expiry_stay() -> None:
    t = tracker(series_expiry=60.0)
    lookup(t, 0, 10)
    t.expire(60 * S + 10 * MS)
    assert counts_by_name(t) == {"example.com": 1}


# The windowed maximum (windows of 10 s)


def test_max_within_one_window_is_the_largest_lookup() -> None:
    t = tracker(max_window=10.0)
    lookup(t, 1_000, 1_300, ident=1)
    lookup(t, 2_000, 2_100, ident=2)
    assert maxima(t, 5_000) == {"example.com": 0.3}


def test_max_in_the_next_window_still_shows_the_previous_windows_max() -> None:
    t = tracker(max_window=10.0)
    lookup(t, 1_000, 1_300, ident=1)
    assert maxima(t, 15_000) == {"example.com": 0.3}
    lookup(t, 12_000, 12_050, ident=2)
    assert maxima(t, 15_000) == {"example.com": 0.3}
    assert maxima(t, 25_000) == {"example.com": 0.05}


def test_max_two_windows_after_the_last_lookup_has_no_point() -> None:
    t = tracker(max_window=10.0)
    lookup(t, 1_000, 1_300)
    assert maxima(t, 20_000) == {}
    assert counts_by_name(t) == {"example.com": 1}  # the counter and histogram stay


def test_max_keeps_the_current_window_when_a_lookup_from_the_previous_window_arrives_late() -> None:
    t = tracker(max_window=10.0)
    t.observe(chunk(query(ident=1), 9_000, sent=False, local=SERVER, remote=CLIENT))
    t.observe(chunk(query(ident=2), 9_500, sent=False, local=SERVER, remote=CLIENT))
    t.observe(chunk(answer(ident=1), 10_100, sent=True, local=SERVER, remote=CLIENT))  # 1.1 s, window 1
    t.observe(chunk(answer(ident=2), 9_900, sent=True, local=SERVER, remote=CLIENT))  # 0.4 s, window 0, emitted later
    assert maxima(t, 10_500) == {"example.com": 1.1}


# DNS over TCP


def test_tcp_query_in_one_chunk_and_answer_in_two_is_one_lookup() -> None:
    t = tracker()
    reply = answer(records=(a_record("example.com", "192.0.2.1"),))
    t.observe(chunk(framed(query()), 0, sent=True, transport="tcp"))
    t.observe(chunk(framed(reply)[:2], 20, sent=False, transport="tcp"))
    assert durations(t) == {}
    t.observe(chunk(framed(reply)[2:], 25, sent=False, transport="tcp"))
    attrs, value = only(t)
    assert (attrs["network.transport"], value.count, value.sum) == ("tcp", 1, 0.025)
    [record] = take_records(t, RecordDeltas())
    assert (record["total_req_bytes"], record["total_resp_bytes"]) == (str(len(query())), str(len(reply)))  # no prefix


def test_tcp_answer_cut_by_the_capture_still_pairs_and_teaches_its_complete_records() -> None:
    domains = DomainCache(capacity=10, ttl_min=1, ttl_max=3600, clock=lambda: 0.0)
    t = tracker(domains)
    addresses = ("192.0.2.1", "192.0.2.2", "192.0.2.3")
    reply = framed(answer(records=tuple(a_record("example.com", address) for address in addresses)))
    t.observe(chunk(framed(query()), 0, sent=True, transport="tcp"))
    t.observe(chunk(reply[:-4], 20, sent=False, transport="tcp", length=len(reply)))
    attrs, value = only(t)
    assert (attrs["dns.response_code"], value.count) == ("NOERROR", 1)
    assert [domains.name(address) for address in addresses] == ["example.com", "example.com", None]


def test_udp_answer_cut_by_the_capture_still_pairs() -> None:
    t = tracker()
    reply = answer(records=(a_record("example.com", "192.0.2.1"), a_record("example.com", "192.0.2.2")))
    t.observe(chunk(query(), 0, sent=True))
    t.observe(chunk(reply[:-3], 20, sent=False, length=len(reply)))
    assert only(t)[1].count == 1
    [record] = take_records(t, RecordDeltas())
    assert record["total_resp_bytes"] == str(len(reply))


def test_tcp_desync_is_counted_then_moved_to_skipped_when_the_stream_goes_idle() -> None:
    t = tracker()
    t.observe(chunk(b"\x00\x00", 0, sent=True, transport="tcp"))  # a zero length prefix
    assert t.tcp_desyncs() == 1
    t.expire(FRAMER_IDLE_NS)
    assert (t.tcp_desyncs(), t.skipped.counts["tcp_desync"]) == (0, 1)


# What answers teach


def test_noerror_answer_teaches_the_domain_cache_through_a_cname_chain() -> None:
    domains = DomainCache(capacity=10, ttl_min=1, ttl_max=3600, clock=lambda: 0.0)
    t = tracker(domains)
    qname = "www.shop.example"
    chain = (record(qname, CNAME, name("edge.cdn.example")), a_record("edge.cdn.example", "198.51.100.7"))
    t.observe(chunk(query(qname), 0, sent=True))
    t.observe(chunk(answer(qname, records=chain), 10, sent=False))
    assert domains.name("198.51.100.7") == qname


def test_nxdomain_answer_teaches_nothing() -> None:
    domains = DomainCache(capacity=10, ttl_min=1, ttl_max=3600, clock=lambda: 0.0)
    t = tracker(domains)
    t.observe(chunk(query(), 0, sent=True))
    t.observe(chunk(answer(rcode=NXDOMAIN, records=(a_record("example.com", "192.0.2.1"),)), 10, sent=False))
    assert len(domains) == 0


# Records


def test_records_total_per_series_then_start_again() -> None:
    t = tracker()
    deltas = RecordDeltas()
    lookup(t, 0, 10, ident=1)
    lookup(t, 100, 130, ident=2)
    lookup(t, 200, 205, "example.org")
    records = {r["query_record"]: r for r in take_records(t, deltas)}
    q, a = len(query()), len(answer())
    com = records["example.com"]
    assert (com["total_count"], com["total_latency_ns"], com["total_req_bytes"], com["total_resp_bytes"]) == (
        "2", str(40 * MS), str(2 * q), str(2 * a))
    org = records["example.org"]
    assert (org["total_count"], org["total_latency_ns"]) == ("1", str(5 * MS))
    assert (org["role"], org["success"], org["_process_pid_"]) == ("client", "1", "100")
    assert json.loads(org["remote_info"]) == {"remote_ip": SERVER[0], "remote_port": str(SERVER[1]),
                                              "remote_type": "dns"}
    assert len(records) == 2
    assert take_records(t, deltas) == []


def test_timeout_record_has_the_timeout_as_latency_and_no_response() -> None:
    t = tracker(timeout=2.0)
    t.observe(chunk(query(), 0, sent=True))
    t.expire(2 * S)
    [record] = take_records(t, RecordDeltas())
    assert record["success"] == "0"
    assert (record["total_count"], record["total_latency_ns"], record["total_req_bytes"],
            record["total_resp_bytes"]) == ("1", str(2 * S), str(len(query())), "0")


# Attributes


def test_series_attributes_of_an_incoming_lookup() -> None:
    key = LookupKey(False, "tcp", "ipv6", "::1", 5353, "example.com", "AAAA", "SERVFAIL")
    assert dict(lookup_attributes(key)) == {
        "dns.question.name": "example.com", "dns.question.type": "AAAA", "dns.response_code": "SERVFAIL",
        "error.type": "SERVFAIL", "server.address": "::1", "server.port": 5353, "network.transport": "tcp",
        "network.type": "ipv6", "dnsflow.direction": "incoming",
    }
