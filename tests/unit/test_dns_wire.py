"""DNS wire format and DNS-over-TCP framing on hand-built byte literals, plus properties over random input."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from exporter.collectors.dns_wire import (
    Answer,
    Framed,
    Message,
    TcpFramer,
    parse,
    rcode_name,
    type_name,
)

A, NS, CNAME, SOA, MX, TXT, AAAA = 1, 2, 5, 6, 15, 16, 28
IN = 1
RESPONSE = 0x8180  # QR, RD, RA
QUERY = 0x0100  # RD
NXDOMAIN_RESPONSE = RESPONSE | 3
REFUSED_RESPONSE = RESPONSE | 5
QUESTION_AT = 12  # where the question name starts, the usual compression target

# A real answer for example.com: the answer's owner name is a pointer to offset 12.
EXAMPLE_COM_A = bytes.fromhex(
    "1234 8180 0001 0001 0000 0000"  # header: id, flags, qd an ns ar
    "07 6578616d706c65 03 636f6d 00 0001 0001"  # example.com IN A
    "c00c 0001 0001 00000e10 0004 5db8d70e"  # -> example.com IN A ttl 3600 93.184.215.14
)


def header(flags: int = RESPONSE, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, ident: int = 0x1234) -> bytes:
    return struct.pack("!6H", ident, flags, qd, an, ns, ar)


def name(text: str) -> bytes:
    labels = [label.encode() for label in text.split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def pointer(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def question(owner: bytes, qtype: int = A, qclass: int = IN) -> bytes:
    return owner + struct.pack("!HH", qtype, qclass)


def record(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = IN) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def ipv4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ipv6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def one_answer(rtype: int, rdata: bytes, ttl: int = 300, qtype: int = A) -> bytes:
    """A response for example.com with one answer owned by a pointer to the question name."""
    return header(an=1) + question(name("example.com"), qtype) + record(pointer(QUESTION_AT), rtype, rdata, ttl)


def a_response(owner: str = "example.com", addresses: tuple[str, ...] = ("192.0.2.1",)) -> bytes:
    answers = b"".join(record(pointer(QUESTION_AT), A, ipv4(address)) for address in addresses)
    return header(an=len(addresses)) + question(name(owner)) + answers


def parsed(data: bytes, cut: bool = False) -> Message:
    message = parse(data, cut=cut)
    assert message is not None
    return message


# Names of codes and types


def test_rcode_and_type_names_fall_back_to_numbers() -> None:
    assert rcode_name(3) == "NXDOMAIN"
    assert rcode_name(10) == "NOTZONE"
    assert rcode_name(23) == "RCODE23"
    assert [type_name(t) for t in (1, 28, 5, 64, 65, 252, 255, 257)] == [
        "A", "AAAA", "CNAME", "SVCB", "HTTPS", "AXFR", "ANY", "CAA",
    ]
    assert type_name(65280) == "TYPE65280"


# Whole messages


def test_real_a_answer_with_compression_pointer() -> None:
    assert parse(EXAMPLE_COM_A) == Message(
        id=0x1234, is_response=True, opcode=0, rcode=0, truncated=False,
        qdcount=1, ancount=1, nscount=0, arcount=0,
        question_name="example.com", question_type=A, question_class=IN,
        answers=(Answer("example.com", A, 3600, "93.184.215.14"),),
    )


def test_aaaa_answer_is_the_compressed_address() -> None:
    data = bytes.fromhex(
        "abcd 8180 0001 0001 0000 0000"
        "03 777777 07 6578616d706c65 03 6f7267 00 001c 0001"  # www.example.org IN AAAA
        "c00c 001c 0001 0000003c 0010 20010db8000000000000000000000001"
    )
    message = parsed(data)
    assert message.question_type == AAAA
    assert message.answers == (Answer("www.example.org", AAAA, 60, "2001:db8::1"),)


def test_cname_chain_then_address() -> None:
    qname = name("www.shop.example")
    first_target_at = QUESTION_AT + len(qname) + 4 + 2 + 10  # rdata of the first answer
    data = (
        header(an=3)
        + question(qname)
        + record(pointer(QUESTION_AT), CNAME, name("edge.cdn.example"))
        + record(pointer(first_target_at), CNAME, b"\x04node" + pointer(first_target_at + 5))
        + record(name("node.cdn.example"), A, ipv4("198.51.100.7"), ttl=20)
    )
    assert parsed(data).answers == (
        Answer("www.shop.example", CNAME, 300, "edge.cdn.example"),
        Answer("edge.cdn.example", CNAME, 300, "node.cdn.example"),
        Answer("node.cdn.example", A, 20, "198.51.100.7"),
    )


def test_nxdomain_with_soa_in_authority() -> None:
    soa = name("ns.example") + name("admin.example") + struct.pack("!5I", 2024010101, 7200, 900, 1209600, 300)
    data = header(NXDOMAIN_RESPONSE, ns=1) + question(name("missing.example")) + record(name("example"), SOA, soa)
    message = parsed(data)
    assert (message.rcode, rcode_name(message.rcode), message.nscount) == (3, "NXDOMAIN", 1)
    assert message.question_name == "missing.example"
    assert message.answers == ()


def test_refused_without_answers() -> None:
    message = parsed(header(REFUSED_RESPONSE) + question(name("example.com"), qtype=MX))
    assert (message.rcode, message.question_type, message.answers) == (5, MX, ())


def test_query() -> None:
    message = parsed(bytes.fromhex("0001 0100 0001 0000 0000 0001 03 646e73 00 0041 0001"))
    assert not message.is_response
    assert (message.id, message.opcode, message.arcount) == (1, 0, 1)
    assert (message.question_name, type_name(message.question_type)) == ("dns", "HTTPS")


def test_header_bits() -> None:
    message = parsed(header(0x8000 | 2 << 11 | 0x0200 | 2) + question(name("example.com")))
    assert (message.is_response, message.opcode, message.truncated, message.rcode) == (True, 2, True, 2)


@pytest.mark.parametrize("data", [EXAMPLE_COM_A, bytearray(EXAMPLE_COM_A), memoryview(EXAMPLE_COM_A)])
def test_any_bytes_type(data: bytes) -> None:
    assert parsed(data).answers[0].data == "93.184.215.14"


def test_not_bytes_at_all_is_none() -> None:
    assert parse("not bytes") is None  # type: ignore[arg-type]
    assert parse(None) is None  # type: ignore[arg-type]


# Names


def test_upper_case_name_is_lower_cased() -> None:
    cname = record(pointer(QUESTION_AT), CNAME, name("CDN.Example.NET"))
    data = header(an=1) + question(name("WWW.Example.COM")) + cname
    message = parsed(data)
    assert message.question_name == "www.example.com"
    assert message.answers == (Answer("www.example.com", CNAME, 300, "cdn.example.net"),)


def test_no_trailing_dot_and_root_is_a_dot() -> None:
    assert parsed(header() + question(name("example.com."))).question_name == "example.com"
    assert parsed(header() + question(b"\x00", qtype=NS)).question_name == "."


def test_escapes_inside_labels() -> None:
    owner = b"\x03a.b" + b"\x04a\\b " + b"\x03\x00\x7f\xff" + b"\x03com\x00"
    assert parsed(header() + question(owner)).question_name == r"a\.b.a\\b\032.\000\127\255.com"


def test_name_of_exactly_255_octets() -> None:
    labels = ("a" * 63, "b" * 63, "c" * 63, "d" * 61)  # 3 * 64 + 62 + 1 for the root
    assert parsed(header() + question(name(".".join(labels)))).question_name == ".".join(labels)


@pytest.mark.parametrize("owner", [
    pytest.param(pointer(QUESTION_AT), id="pointer to itself"),
    pytest.param(pointer(QUESTION_AT + 2) + pointer(QUESTION_AT), id="two pointers to each other"),
    pytest.param(pointer(QUESTION_AT + 2) + b"\x00", id="forward pointer"),
    pytest.param(b"\x03www" + pointer(QUESTION_AT), id="pointer back into the same name"),
    pytest.param(b"\x40" + b"x" * 64 + b"\x00", id="label of 64 octets"),
    pytest.param(b"\x41" + b"x" * 65 + b"\x00", id="label type 01"),
    pytest.param(b"\x81x\x00", id="label type 10"),
    pytest.param(name(".".join(("a" * 63, "b" * 63, "c" * 63, "d" * 62))), id="name of 256 octets"),
])
@pytest.mark.parametrize("cut", [False, True])
def test_malformed_question_name(owner: bytes, cut: bool) -> None:
    assert parse(header() + question(owner) + b"\x00" * 16, cut=cut) is None


def test_compression_loop_in_an_answer() -> None:
    answers_at = QUESTION_AT + len(name("example.com")) + 4
    looped = header(an=1) + question(name("example.com")) + record(pointer(answers_at), A, ipv4("192.0.2.1"))
    assert parse(looped) is None
    assert parse(looped, cut=True) is None


def pointer_chain(jumps: int) -> bytes:
    """A message whose single A answer is owned by a chain of `jumps` pointers ending at the question name.
    The chain lives in the rdata of a record of an unknown type, which the parser skips."""
    prefix = header(an=2) + question(name("example.com"))
    chain_at = len(prefix) + 1 + 10
    links = [pointer(QUESTION_AT)] + [pointer(chain_at + 2 * i) for i in range(jumps - 2)]
    filler = record(b"\x00", 0xFF00, b"".join(links))
    return prefix + filler + record(pointer(chain_at + 2 * (jumps - 2)), A, ipv4("192.0.2.9"))


def test_pointer_jumps_are_bounded() -> None:
    assert parsed(pointer_chain(128)).answers == (Answer("example.com", A, 300, "192.0.2.9"),)
    assert parse(pointer_chain(129)) is None


# Truncation and lying counts


@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize("size", [0, 1, 11, 12, 20, 24, 28])  # inside the header, then inside the question
def test_truncated_header_or_question(size: int, cut: bool) -> None:
    assert parse(EXAMPLE_COM_A[:size], cut=cut) is None


def test_cut_inside_answers_returns_the_complete_ones() -> None:
    data = a_response(addresses=("192.0.2.1", "192.0.2.2", "192.0.2.3"))
    for size in range(len(data) - 16, len(data)):  # every cut inside the third answer
        message = parsed(data[:size], cut=True)
        assert [answer.data for answer in message.answers] == ["192.0.2.1", "192.0.2.2"]
        assert message.ancount == 3
        assert parse(data[:size]) is None
    assert parsed(a_response()[:29], cut=True).answers == ()


def test_counts_that_lie() -> None:
    lying = header(an=5) + a_response(addresses=("192.0.2.1", "192.0.2.2"))[12:]
    assert parse(lying) is None
    assert [answer.data for answer in parsed(lying, cut=True).answers] == ["192.0.2.1", "192.0.2.2"]


def test_rdlength_past_the_end() -> None:
    data = one_answer(TXT, b"\x05hello")[:-2]
    assert parse(data) is None
    assert parsed(data, cut=True).answers == ()


@pytest.mark.parametrize("cut", [False, True])
def test_address_of_the_wrong_length(cut: bool) -> None:
    assert parse(one_answer(A, b"\xc0\x00\x02\x01\x00"), cut=cut) is None
    assert parse(one_answer(AAAA, ipv4("192.0.2.1"), qtype=AAAA), cut=cut) is None


def test_cname_rdata_must_be_exactly_one_name() -> None:
    assert parse(one_answer(CNAME, name("cdn.example") + b"\x00")) is None


def test_unknown_and_unwanted_record_types_are_skipped() -> None:
    data = (
        header(an=4)
        + question(name("example.com"))
        + record(pointer(QUESTION_AT), MX, struct.pack("!H", 10) + pointer(QUESTION_AT))
        + record(pointer(QUESTION_AT), A, ipv4("192.0.2.1"))
        + record(pointer(QUESTION_AT), 0xFF01, b"\x01\x02\x03")
        + record(pointer(QUESTION_AT), AAAA, ipv6("2001:db8::5"))
    )
    assert [(answer.rtype, answer.data) for answer in parsed(data).answers] == [(A, "192.0.2.1"), (AAAA, "2001:db8::5")]


def test_ttl_with_the_top_bit_set_is_zero() -> None:
    assert parsed(one_answer(A, ipv4("192.0.2.1"), ttl=1 << 31)).answers[0].ttl == 0
    assert parsed(one_answer(A, ipv4("192.0.2.1"), ttl=(1 << 31) - 1)).answers[0].ttl == (1 << 31) - 1


# Question counts


def test_no_question_is_none() -> None:
    assert parse(header(qd=0, an=1) + record(name("example.com"), A, ipv4("192.0.2.1"))) is None


def test_two_questions_reads_the_first_and_skips_the_second() -> None:
    data = (
        header(qd=2, an=1)
        + question(name("first.example"))
        + question(name("second.example"), AAAA)
        + record(pointer(QUESTION_AT), A, ipv4("192.0.2.1"))
    )
    message = parsed(data)
    assert (message.qdcount, message.question_name, message.question_type) == (2, "first.example", A)
    assert message.answers == (Answer("first.example", A, 300, "192.0.2.1"),)


def test_second_question_that_cannot_be_skipped() -> None:
    data = header(qd=2, an=1) + question(name("first.example")) + b"\x09second"
    assert parse(data) is None
    message = parsed(data, cut=True)
    assert (message.question_name, message.answers) == ("first.example", ())


# DNS over TCP


def framed_bytes(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


def feed_all(framer: TcpFramer, chunks: list[bytes]) -> list[Framed]:
    return [framed for chunk in chunks for framed in framer.feed(chunk, len(chunk))]


def test_prefix_and_body_in_one_chunk() -> None:
    framer = TcpFramer()
    chunk = framed_bytes(EXAMPLE_COM_A)
    assert framer.feed(chunk, len(chunk)) == [Framed(EXAMPLE_COM_A, len(EXAMPLE_COM_A))]
    assert framer.desyncs == 0


def test_two_messages_in_one_chunk() -> None:
    query = a_response()[:29]
    chunk = framed_bytes(query) + framed_bytes(EXAMPLE_COM_A)
    assert TcpFramer().feed(chunk, len(chunk)) == [Framed(query, 29), Framed(EXAMPLE_COM_A, len(EXAMPLE_COM_A))]


def test_prefix_split_over_two_chunks() -> None:
    stream = framed_bytes(EXAMPLE_COM_A)
    framer = TcpFramer()
    assert feed_all(framer, [stream[:1], stream[1:2]]) == []
    assert framer.feed(stream[2:], len(stream) - 2) == [Framed(EXAMPLE_COM_A, len(EXAMPLE_COM_A))]


def test_body_split_over_many_chunks() -> None:
    stream = framed_bytes(EXAMPLE_COM_A) * 2
    framer = TcpFramer()
    completed = feed_all(framer, [stream[i : i + 1] for i in range(len(stream))])
    assert completed == [Framed(EXAMPLE_COM_A, len(EXAMPLE_COM_A))] * 2
    assert framer.desyncs == 0


def test_uncaptured_bytes_inside_a_body() -> None:
    stream = framed_bytes(EXAMPLE_COM_A)
    framer = TcpFramer()
    assert framer.feed(stream[:20], len(stream) - 5) == []
    # A hole was left, so the tail captured by the next read is not part of the message's captured prefix.
    assert framer.feed(stream[-5:], 5) == [Framed(EXAMPLE_COM_A[:18], len(EXAMPLE_COM_A))]
    assert framer.feed(stream[:20], len(stream)) == [Framed(EXAMPLE_COM_A[:18], len(EXAMPLE_COM_A))]
    assert framer.desyncs == 0


def test_uncaptured_next_prefix_desyncs_then_the_next_chunk_resynchronises() -> None:
    stream = framed_bytes(EXAMPLE_COM_A) + framed_bytes(EXAMPLE_COM_A)
    framer = TcpFramer()
    first = len(EXAMPLE_COM_A) + 2
    assert framer.feed(stream[: first + 1], len(stream)) == [Framed(EXAMPLE_COM_A, len(EXAMPLE_COM_A))]
    assert framer.desyncs == 1
    assert framer.feed(framed_bytes(b"\x01\x02\x03"), 5) == [Framed(b"\x01\x02\x03", 3)]
    assert framer.desyncs == 1


def test_partial_prefix_lost_is_a_desync() -> None:
    framer = TcpFramer()
    assert framer.feed(b"\x00", 1) == []
    assert framer.feed(b"", 40) == []
    assert framer.desyncs == 1
    assert framer.feed(framed_bytes(b"ok"), 4) == [Framed(b"ok", 2)]


def test_zero_length_prefix_is_a_desync() -> None:
    framer = TcpFramer()
    chunk = b"\x00\x00" + framed_bytes(b"dropped")
    assert framer.feed(chunk, len(chunk)) == []
    assert framer.desyncs == 1
    assert framer.feed(framed_bytes(b"kept"), 6) == [Framed(b"kept", 4)]


def test_error_returns_and_overlong_captures() -> None:
    framer = TcpFramer()
    assert framer.feed(b"\x00\x02ab", -11) == []
    assert framer.feed(b"", 0) == []
    assert framer.feed(b"\x00\x02abXYZ", 4) == [Framed(b"ab", 2)]  # only `length` bytes went through
    assert framer.desyncs == 0


def test_memory_is_bounded_by_max_message_capture() -> None:
    body = bytes(range(256)) * 240  # 60 KB
    stream = framed_bytes(body)
    framer = TcpFramer(max_message_capture=512)
    completed: list[Framed] = []
    for i in range(len(stream)):
        completed += framer.feed(stream[i : i + 1], 1)
        assert len(framer._captured) <= 512
    assert completed == [Framed(body[:512], len(body))]


def test_negative_capture_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_message_capture"):
        TcpFramer(max_message_capture=-1)


# Properties


@given(st.binary(max_size=600), st.booleans())
def test_parse_never_raises_on_random_bytes(data: bytes, cut: bool) -> None:
    result = parse(data, cut=cut)
    assert result is None or isinstance(result, Message)


@given(st.data(), st.booleans())
def test_parse_never_raises_on_damaged_messages(data: st.DataObject, cut: bool) -> None:
    message = bytearray(a_response(addresses=("192.0.2.1", "192.0.2.2")))
    for _ in range(data.draw(st.integers(1, 4))):
        message[data.draw(st.integers(0, len(message) - 1))] = data.draw(st.integers(0, 255))
    result = parse(bytes(message[: data.draw(st.integers(0, len(message)))]), cut=cut)
    assert result is None or isinstance(result, Message)


chunks = st.lists(st.tuples(st.binary(max_size=80), st.integers(-4, 120)), max_size=40)


@given(chunks, st.integers(0, 64))
def test_framer_never_raises_and_keeps_at_most_the_capture(fed: list[tuple[bytes, int]], capture: int) -> None:
    framer = TcpFramer(max_message_capture=capture)
    for data, length in fed:
        for framed in framer.feed(data, length):
            assert framed.length > 0
            assert len(framed.data) <= min(framed.length, capture)


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8), st.data())
def test_framer_recovers_messages_split_anywhere(messages: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(framed_bytes(message) for message in messages)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(stream) - 1, 1)))))
    pieces = [stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    framer = TcpFramer(max_message_capture=1024)
    assert feed_all(framer, pieces) == [Framed(message, len(message)) for message in messages]
    assert framer.desyncs == 0


labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=63)
addresses = st.one_of(
    st.ip_addresses(v=4).map(lambda address: (A, address)),
    st.ip_addresses(v=6).map(lambda address: (AAAA, address)),
)


@given(
    st.lists(labels, min_size=1, max_size=5),
    st.integers(0, 0xFFFF),
    st.lists(st.tuples(addresses, st.integers(0, (1 << 31) - 1)), max_size=6),
    st.booleans(),
)
def test_well_formed_messages_round_trip(
    owner_labels: list[str],
    qtype: int,
    answers: list[tuple[tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address], int]],
    compress: bool,
) -> None:
    assume(sum(len(label) + 1 for label in owner_labels) + 1 <= 255)
    owner = ".".join(owner_labels)
    records = b"".join(
        record(pointer(QUESTION_AT) if compress else name(owner), rtype, address.packed, ttl)
        for (rtype, address), ttl in answers
    )
    message = parsed(header(an=len(answers)) + question(name(owner), qtype) + records)
    assert (message.question_name, message.question_type) == (owner.lower(), qtype)
    assert message.answers == tuple(
        Answer(owner.lower(), rtype, ttl, address.compressed) for (rtype, address), ttl in answers
    )
