"""DNS messages from captured bytes: the wire format (RFC 1035 4.1) and DNS-over-TCP framing (RFC 7766).

Pure functions over bytes; the kernel side copies a bounded prefix of each payload, so every reader here
expects short, cut or hostile input and answers None rather than raising.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

RCODE_NAMES: dict[int, str] = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
}

TYPE_A, TYPE_CNAME, TYPE_AAAA = 1, 5, 28

TYPE_NAMES: dict[int, str] = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    13: "HINFO",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    29: "LOC",
    33: "SRV",
    35: "NAPTR",
    39: "DNAME",
    41: "OPT",
    43: "DS",
    44: "SSHFP",
    46: "RRSIG",
    47: "NSEC",
    48: "DNSKEY",
    50: "NSEC3",
    51: "NSEC3PARAM",
    52: "TLSA",
    59: "CDS",
    60: "CDNSKEY",
    61: "OPENPGPKEY",
    64: "SVCB",
    65: "HTTPS",
    99: "SPF",
    249: "TKEY",
    250: "TSIG",
    251: "IXFR",
    252: "AXFR",
    255: "ANY",
    256: "URI",
    257: "CAA",
}


def rcode_name(rcode: int) -> str:
    return RCODE_NAMES.get(rcode, f"RCODE{rcode}")


def type_name(qtype: int) -> str:
    """The mnemonic of a record type, or the RFC 3597 form TYPE<n> for one without a mnemonic here."""
    return TYPE_NAMES.get(qtype, f"TYPE{qtype}")


@dataclass(frozen=True, slots=True)
class Answer:
    name: str
    rtype: int
    ttl: int
    data: str


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    is_response: bool
    opcode: int
    rcode: int
    truncated: bool
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    question_name: str
    question_type: int
    question_class: int
    answers: tuple[Answer, ...]


HEADER = struct.Struct("!6H")
QUESTION_TAIL = struct.Struct("!HH")
RECORD_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength

MAX_LABEL_OCTETS = 63
MAX_NAME_OCTETS = 255
MAX_POINTER_JUMPS = 128
ADDRESS_OCTETS = {TYPE_A: 4, TYPE_AAAA: 16}


class _Malformed(Exception):
    """The bytes are not a DNS message."""


class _Truncated(_Malformed):
    """The bytes ended before the message did; forgiven in the answer section of a cut capture."""


def _label_char(octet: int) -> str:
    if octet in b".\\":
        return "\\" + chr(octet)
    if 33 <= octet <= 126:
        return chr(octet)
    return f"\\{octet:03d}"


LABEL_CHARS = tuple(_label_char(octet) for octet in range(256))


def _name_text(labels: list[bytes]) -> str:
    """The presentation form used for dns.question.name: lower case, escaped, no trailing dot, root as '.'."""
    if not labels:
        return "."
    return ".".join("".join(LABEL_CHARS[octet] for octet in label.lower()) for label in labels)


def _octet(data: bytes, offset: int) -> int:
    if offset >= len(data):
        raise _Truncated
    return data[offset]


def _unpack(layout: struct.Struct, data: bytes, offset: int) -> tuple[int, ...]:
    if offset + layout.size > len(data):
        raise _Truncated
    return layout.unpack_from(data, offset)


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` and the offset just past it in place (after its first compression pointer)."""
    labels: list[bytes] = []
    wire_octets = 1  # the root label that ends every name
    run_start = position = offset
    end: int | None = None
    jumps = 0
    while (length := _octet(data, position)) != 0:
        kind = length & 0xC0
        if kind == 0xC0:
            target = (length & 0x3F) << 8 | _octet(data, position + 1)
            # Pointing strictly backwards from where this run of labels began rules out every loop.
            jumps += 1
            if target >= run_start or jumps > MAX_POINTER_JUMPS:
                raise _Malformed
            if end is None:
                end = position + 2
            run_start = position = target
            continue
        if kind:
            raise _Malformed
        wire_octets += 1 + length
        if wire_octets > MAX_NAME_OCTETS:
            raise _Malformed
        label = data[position + 1 : position + 1 + length]
        if len(label) < length:
            raise _Truncated
        labels.append(label)
        position += 1 + length
    return _name_text(labels), position + 1 if end is None else end


def _skip_questions(data: bytes, offset: int, count: int) -> int:
    for _ in range(count):
        _, offset = _read_name(data, offset)
        _unpack(QUESTION_TAIL, data, offset)
        offset += QUESTION_TAIL.size
    return offset


def _rdata_text(data: bytes, rtype: int, start: int, end: int) -> str:
    if rtype == TYPE_CNAME:
        target, name_end = _read_name(data, start)
        if name_end != end:
            raise _Malformed
        return target
    octets = data[start:end]
    address = ipaddress.IPv4Address(octets) if rtype == TYPE_A else ipaddress.IPv6Address(octets)
    return address.compressed


def _read_record(data: bytes, offset: int) -> tuple[Answer | None, int]:
    """One resource record: an Answer when it is A, AAAA or CNAME (None otherwise), and the offset after it."""
    owner, offset = _read_name(data, offset)
    rtype, _rclass, ttl, rdlength = _unpack(RECORD_FIXED, data, offset)
    start = offset + RECORD_FIXED.size
    end = start + rdlength
    if rtype in ADDRESS_OCTETS and rdlength != ADDRESS_OCTETS[rtype]:
        raise _Malformed
    if end > len(data):
        raise _Truncated
    if rtype not in (TYPE_A, TYPE_AAAA, TYPE_CNAME):
        return None, end
    # RFC 2181 8: a TTL with the top bit set is to be read as zero.
    ttl = ttl if ttl < 1 << 31 else 0
    return Answer(owner, rtype, ttl, _rdata_text(data, rtype, start, end)), end


def _read_answers(data: bytes, offset: int, count: int, cut: bool) -> tuple[Answer, ...]:
    answers: list[Answer] = []
    for _ in range(count):
        try:
            answer, offset = _read_record(data, offset)
        except _Truncated:
            if cut:
                break
            raise
        if answer is not None:
            answers.append(answer)
    return tuple(answers)


def _parse(data: bytes, cut: bool) -> Message:
    message_id, flags, qdcount, ancount, nscount, arcount = _unpack(HEADER, data, 0)
    if qdcount == 0:
        raise _Malformed
    question_name, offset = _read_name(data, HEADER.size)
    question_type, question_class = _unpack(QUESTION_TAIL, data, offset)
    answers: tuple[Answer, ...] = ()
    try:
        offset = _skip_questions(data, offset + QUESTION_TAIL.size, qdcount - 1)
    except _Malformed:
        if not cut:
            raise
    else:
        answers = _read_answers(data, offset, ancount, cut)
    return Message(
        id=message_id,
        is_response=bool(flags & 0x8000),
        opcode=flags >> 11 & 0xF,
        rcode=flags & 0xF,
        truncated=bool(flags & 0x0200),
        qdcount=qdcount,
        ancount=ancount,
        nscount=nscount,
        arcount=arcount,
        question_name=question_name,
        question_type=question_type,
        question_class=question_class,
        answers=answers,
    )


def _as_bytes(data: object) -> bytes | None:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        try:
            return bytes(data)
        except (ValueError, TypeError):  # a released or non-contiguous view
            return None
    return None


def parse(data: bytes, cut: bool = False) -> Message | None:
    """The DNS message in `data`, or None when it is malformed. With `cut`, `data` is only a prefix of the
    message: the answers end where the bytes do. Only the header, the first question and the A, AAAA and
    CNAME records of the answer section are read."""
    message = _as_bytes(data)
    if message is None:
        return None
    try:
        return _parse(message, cut)
    except _Malformed:
        return None


@dataclass(frozen=True, slots=True)
class Framed:
    data: bytes
    length: int


LENGTH_PREFIX_OCTETS = 2


class TcpFramer:
    """DNS over TCP (RFC 1035 4.2.2, RFC 7766): each message follows a 2-byte big-endian length.
    One framer per connection and direction."""

    def __init__(self, max_message_capture: int = 1024) -> None:
        if max_message_capture < 0:
            raise ValueError(f"max_message_capture must be >= 0, not {max_message_capture}")
        self.max_message_capture = max_message_capture
        self.desyncs = 0
        self._prefix = b""
        self._length = 0
        self._remaining = 0  # body bytes still to pass; 0 while reading a length prefix
        self._captured = bytearray()
        self._hole = False  # bytes of this body went uncaptured, so later ones are not part of its prefix

    def feed(self, data: bytes, length: int) -> list[Framed]:
        """The messages completed by one chunk of the stream: `length` bytes went through the socket and
        `data` is the captured start of them."""
        if length <= 0:  # an error or end of stream: nothing went through
            return []
        captured = memoryview(data)[:length]
        completed: list[Framed] = []
        if not self._take_captured(captured, completed):
            return completed
        self._skip_uncaptured(length - len(captured), completed)
        return completed

    def _take_captured(self, chunk: memoryview, completed: list[Framed]) -> bool:
        """Consume the captured bytes; False when the stream was lost and the rest of the chunk dropped."""
        position = 0
        while position < len(chunk):
            if self._remaining:
                taken = min(self._remaining, len(chunk) - position)
                self._keep(chunk[position : position + taken])
                position += taken
                self._remaining -= taken
                if not self._remaining:
                    completed.append(self._finish())
                continue
            wanted = LENGTH_PREFIX_OCTETS - len(self._prefix)
            self._prefix += bytes(chunk[position : position + wanted])
            position += wanted
            if len(self._prefix) == LENGTH_PREFIX_OCTETS and not self._start_body():
                return False
        return True

    def _skip_uncaptured(self, uncaptured: int, completed: list[Framed]) -> None:
        if not uncaptured:
            return
        skipped = min(uncaptured, self._remaining)
        if skipped:
            self._remaining -= skipped
            self._hole = True
            if not self._remaining:
                completed.append(self._finish())
        if uncaptured > skipped:  # the lost bytes hold (part of) a length prefix
            self._desync()

    def _start_body(self) -> bool:
        length = int.from_bytes(self._prefix, "big")
        self._prefix = b""
        if not length:
            self._desync()
            return False
        self._length = self._remaining = length
        return True

    def _keep(self, body: memoryview) -> None:
        room = self.max_message_capture - len(self._captured)
        if not self._hole and room > 0:
            self._captured += body[:room]

    def _finish(self) -> Framed:
        framed = Framed(bytes(self._captured), self._length)
        self._reset()
        return framed

    def _desync(self) -> None:
        self.desyncs += 1
        self._reset()

    def _reset(self) -> None:
        self._prefix = b""
        self._length = self._remaining = 0
        self._captured = bytearray()
        self._hole = False


def name_from_wire(raw: bytes) -> str | None:
    """The presentation form of an uncompressed name in wire form (as the kernel keeps question
    names), or None when it is not one."""
    try:
        name, end = _read_name(raw, 0)
    except _Malformed:
        return None
    return name if end == len(raw) else None
