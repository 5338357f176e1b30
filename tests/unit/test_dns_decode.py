"""From a ring-buffer record (struct dns_event, built with its ctypes mirror) to a Chunk."""

from __future__ import annotations

import ctypes
import socket

from exporter.collectors.dns import decode
from exporter.collectors.dns_lookups import Chunk
from exporter.collectors.dns_maps import DATA_MAX, HEADER_SIZE, DnsEvent
from exporter.series.addresses import pack_address

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17
PAYLOAD = b"\x12\x34\x01\x00\x00\x01"


def event(local: str = "10.0.0.5", remote: str = "10.0.0.53", protocol: int = IPPROTO_UDP, sent: bool = True,
          data: bytes = PAYLOAD, captured: int | None = None, comm: bytes = b"curl",
          family: int | None = None) -> bytes:
    """A whole record, as the kernel writes it: the header, then all of data[]."""
    local_raw, local_family = pack_address(local)
    remote_raw, _ = pack_address(remote)
    e = DnsEvent(ktime_ns=123_456_789, sock=0xFFFF_8880_1234_5678, pid=4321, length=len(data), local_port=40000,
                 remote_port=53, family=local_family if family is None else family,
                 captured=len(data) if captured is None else captured, protocol=protocol, sent=int(sent), comm=comm)
    e.local_addr[:] = list(local_raw)
    e.remote_addr[:] = list(remote_raw)
    ctypes.memmove(e.data, data, len(data))
    return bytes(e)


def test_udp_ipv4_record() -> None:
    assert decode(event()) == Chunk(
        ktime_ns=123_456_789, sock=0xFFFF_8880_1234_5678, pid=4321, comm="curl", transport="udp", family="ipv4",
        local_address="10.0.0.5", local_port=40000, remote_address="10.0.0.53", remote_port=53,
        sent=True, length=len(PAYLOAD), data=PAYLOAD,
    )


def test_tcp_ipv6_record_read_by_the_process() -> None:
    chunk = decode(event(local="2001:db8::5", remote="2001:db8::53", protocol=IPPROTO_TCP, sent=False))
    assert chunk is not None
    assert (chunk.transport, chunk.family, chunk.sent) == ("tcp", "ipv6", False)
    assert (chunk.local_address, chunk.remote_address) == ("2001:db8::5", "2001:db8::53")


def test_memoryview_is_decoded_like_bytes() -> None:
    raw = event()
    assert decode(memoryview(raw)) == decode(raw)


def test_comm_of_the_full_sixteen_bytes_has_no_terminator() -> None:
    chunk = decode(event(comm=b"a-very-long-name"))
    assert chunk is not None and chunk.comm == "a-very-long-name"


def test_invalid_utf8_in_comm_is_replaced() -> None:
    chunk = decode(event(comm=b"bad\xffname"))
    assert chunk is not None and chunk.comm == "bad\ufffdname"


def test_data_is_only_the_captured_bytes() -> None:
    chunk = decode(event())
    assert chunk is not None and chunk.data == PAYLOAD  # not the rest of data[]
    assert len(event()) == HEADER_SIZE + DATA_MAX


def test_record_shorter_than_the_header_is_none() -> None:
    assert decode(event()[: HEADER_SIZE - 1]) is None
    assert decode(b"") is None


def test_header_alone_is_a_chunk_without_data() -> None:
    chunk = decode(event()[:HEADER_SIZE])
    assert chunk is not None and (chunk.data, chunk.length) == (b"", len(PAYLOAD))


def test_captured_beyond_the_record_is_clamped() -> None:
    chunk = decode(event(captured=DATA_MAX)[: HEADER_SIZE + 4])
    assert chunk is not None and chunk.data == PAYLOAD[:4]


def test_unknown_family_is_none() -> None:
    assert decode(event(family=socket.AF_UNIX)) is None


def test_unknown_protocol_is_none() -> None:
    assert decode(event(protocol=IPPROTO_ICMP)) is None
