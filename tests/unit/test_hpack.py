"""The kernel's HPACK decoder (bpf/l7_hpack.h), compiled for the host by way of tests/unit/h2_host.c and driven
through ctypes: RFC 7541's examples, gRPC's blocks, then the blocks of the hpack package's encoder and random bytes."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from pathlib import Path

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.bpf_host import build_host_library

HOST_SOURCE = Path(__file__).with_name("h2_host.c")

CAPTURE_MAX, OP_LEN, VALUE_LEN, DEPTH, VALUES, PER_BLOCK = 1024, 16, 64, 256, 32, 64  # checked in the library
FIELDS = {b":method": 1, b":path": 2, b":authority": 3, b":status": 4, b"content-type": 5, b"grpc-status": 6}
HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class HpackValue(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 7), ("value", ctypes.c_char * VALUE_LEN)]


class HpackTable(ctypes.Structure):
    _fields_ = [("inserted", ctypes.c_uint32), ("known", ctypes.c_uint32), ("kept", ctypes.c_uint32),
                ("pad", ctypes.c_uint32), ("field", ctypes.c_uint8 * DEPTH), ("value", ctypes.c_uint16 * DEPTH),
                ("values", HpackValue * VALUES)]


class H2Fields(ctypes.Structure):
    _fields_ = [("status", ctypes.c_uint32), ("seen", ctypes.c_uint8), ("unknown", ctypes.c_uint8),
                ("grpc", ctypes.c_uint8), ("error", ctypes.c_uint8), ("method", ctypes.c_uint8 * OP_LEN),
                ("path", ctypes.c_uint8 * VALUE_LEN), ("authority", ctypes.c_uint8 * VALUE_LEN),
                ("grpc_status", ctypes.c_uint8 * OP_LEN)]

    def said(self) -> dict[str, object]:
        """What the block said, the strings whole (the bytes past a value included), to compare with expect()."""
        return {"seen": self.seen, "status": self.status, "grpc": self.grpc, "method": bytes(self.method),
                "path": bytes(self.path), "authority": bytes(self.authority), "grpc_status": bytes(self.grpc_status)}


MIRRORS = (HpackTable, HpackValue, H2Fields)


def expect(headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    """H2Fields.said() for a block of these headers, cleared first: each field's last occurrence, cut."""
    last = {name: value for name, value in headers if name in FIELDS}
    status, content_type = last.get(b":status", b""), last.get(b"content-type", b"")
    return {"seen": sum(1 << FIELDS[name] for name in last),
            "status": int(status) if re.fullmatch(rb"[1-9][0-9]{2}", status) else 0,
            "grpc": int(bool(re.match(rb"application/grpc($|[+;])", content_type[:VALUE_LEN]))),
            "method": last.get(b":method", b"")[:OP_LEN - 1].ljust(OP_LEN, b"\0"),
            "path": last.get(b":path", b"")[:VALUE_LEN].ljust(VALUE_LEN, b"\0"),
            "authority": last.get(b":authority", b"")[:VALUE_LEN].ljust(VALUE_LEN, b"\0"),
            "grpc_status": last.get(b"grpc-status", b"")[:OP_LEN - 1].ljust(OP_LEN, b"\0")}


class Decoder:
    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        table, fields = ctypes.POINTER(HpackTable), ctypes.POINTER(H2Fields)
        lib.hpack_decode_block.argtypes = [ctypes.c_char_p, ctypes.c_uint, table, fields]
        lib.hpack_decode_block.restype = None
        lib.hpack_decode_over.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_char_p, ctypes.c_uint, table, fields]
        lib.hpack_decode_over.restype = None

    # block(): the window past the block is 0xff. over(): past it, fill, then the stale bytes (a longer block
    # decoded before); the block ends at `end` (its frame's length), past the window if it is longer than data.
    def block(self, data: bytes, table: HpackTable) -> H2Fields:
        out = H2Fields()
        self.lib.hpack_decode_block(data, len(data), ctypes.byref(table), ctypes.byref(out))
        return out

    def over(self, data: bytes, table: HpackTable, fill: int, stale: bytes, end: int | None = None) -> H2Fields:
        out = H2Fields()
        self.lib.hpack_decode_over(data, len(data), len(data) if end is None else end, fill, stale, len(stale),
                                   ctypes.byref(table), ctypes.byref(out))
        return out


@pytest.fixture(scope="module")
def decoder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Decoder]:
    yield Decoder(build_host_library(HOST_SOURCE, tmp_path_factory.mktemp("h2_host"), "bpf/l7_hpack.h"))


def test_struct_mirrors_match_the_c_layout(decoder: Decoder) -> None:
    offsets = [getattr(mirror, name).offset for mirror in (H2Fields, HpackTable, HpackValue)
               for name, *_ in mirror._fields_]
    layout = (ctypes.c_ulong * (len(MIRRORS) + len(offsets))).in_dll(decoder.lib, "hpack_layout")
    assert list(layout) == [ctypes.sizeof(m) for m in MIRRORS] + offsets
    constants = [CAPTURE_MAX, OP_LEN, VALUE_LEN, DEPTH, VALUES, PER_BLOCK]
    assert list((ctypes.c_ulong * len(constants)).in_dll(decoder.lib, "hpack_constants")) == constants


# ---------------------------------------------------------------- RFC 7541 Appendix C

REQUESTS = {  # C.3 (literals as they are), C.4 (Huffman): what each block says, and the insertions so far
    "C.3": ["8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"],
    "C.4": ["8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"],
}
REQUESTS_SAY = [(b"GET", b"/", b"www.example.com", 1), (b"GET", b"/", b"www.example.com", 2),
                (b"GET", b"/index.html", b"www.example.com", 3)]
RESPONSES = {  # C.5, C.6: a table of 256 bytes, from which the encoder evicts
    "C.5": ["4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32"
            "3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970"
            "7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61"
            "6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31"],
    "C.6": ["4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad"
            "1718 63c7 8f0b 97c8 e9ae 82ae 43d3", "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2"
            "e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"],
}
RESPONSES_SAY = [(302, 4), (307, 5), (200, 8)]


def decode_sequence(decoder: Decoder, blocks: list[str]) -> Iterator[tuple[H2Fields, HpackTable]]:
    table, reference = HpackTable(), hpack.Decoder()
    for block in map(bytes.fromhex, blocks):
        out = decoder.block(block, table)
        assert (out.unknown, out.error) == (0, 0)
        assert out.said() == expect([(name, value) for name, value in reference.decode(block, raw=True)])
        yield out, table


@pytest.mark.parametrize("section", REQUESTS)
def test_rfc_7541_requests(decoder: Decoder, section: str) -> None:
    for (out, table), (method, path, authority, inserted) in zip(decode_sequence(decoder, REQUESTS[section]),
                                                                  REQUESTS_SAY, strict=True):
        assert (bytes(out.method).rstrip(b"\0"), bytes(out.path).rstrip(b"\0")) == (method, path)
        assert bytes(out.authority).rstrip(b"\0") == authority
        assert (out.status, out.grpc, table.inserted, table.known) == (0, 0, inserted, inserted)


@pytest.mark.parametrize("section", RESPONSES)
def test_rfc_7541_responses(decoder: Decoder, section: str) -> None:
    for (out, table), (status, inserted) in zip(decode_sequence(decoder, RESPONSES[section]), RESPONSES_SAY,
                                                strict=True):
        assert (out.status, out.seen, table.inserted) == (status, 1 << FIELDS[b":status"], inserted)


@pytest.mark.parametrize(("literal", "inserted"), [
    ("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", 1),  # C.2.1: with indexing
    ("040c 2f73 616d 706c 652f 7061 7468", 0),  # C.2.2: :path /sample/path, without indexing
    ("1008 7061 7373 776f 7264 0673 6563 7265 74", 0),  # C.2.3: never indexed
    ("82", 0),  # C.2.4: :method GET, indexed
])
def test_rfc_7541_representations(decoder: Decoder, literal: str, inserted: int) -> None:
    [(_, table)] = decode_sequence(decoder, [literal])
    assert table.inserted == inserted


@pytest.mark.parametrize("section", REQUESTS)
def test_entries_not_known_are_never_guessed(decoder: Decoder, section: str) -> None:
    # the second request refers to :authority from the first (index 62): missed, or known no more
    first, second = map(bytes.fromhex, REQUESTS[section][:2])
    missed, forgotten = HpackTable(), HpackTable()
    decoder.block(first, forgotten)
    forgotten.known = 0  # as after a block cut short: the table still holds the entry, but it is not certain
    for table in (missed, forgotten):
        out = decoder.block(second, table)
        assert (out.unknown, out.error) == (1, 0)
        assert (bytes(out.method).rstrip(b"\0"), bytes(out.path).rstrip(b"\0")) == (b"GET", b"/")
        assert bytes(out.authority) == bytes(VALUE_LEN)
        assert not out.seen & 1 << FIELDS[b":authority"]
        assert table.known == 1  # cache-control, inserted by this block


# ---------------------------------------------------------------- gRPC

GRPC_REQUEST = [(":method", "POST"), (":scheme", "http"), (":path", "/helloworld.Greeter/SayHello"),
                (":authority", "localhost:50051"), ("content-type", "application/grpc"), ("te", "trailers"),
                ("grpc-timeout", "1S")]


def test_grpc_request_twice(decoder: Decoder) -> None:
    encoder, table = hpack.Encoder(), HpackTable()
    first, second = encoder.encode(GRPC_REQUEST), encoder.encode(GRPC_REQUEST)
    assert len(second) < 10  # all of it refers to the dynamic table
    for block in (first, second):
        out = decoder.block(block, table)
        assert (out.unknown, out.error, out.grpc) == (0, 0, 1)
        assert out.said() == expect([(n.encode(), v.encode()) for n, v in GRPC_REQUEST])
    assert bytes(out.path).rstrip(b"\0") == b"/helloworld.Greeter/SayHello"


def test_grpc_responses(decoder: Decoder) -> None:
    encoder, table = hpack.Encoder(), HpackTable()
    trailers = decoder.block(encoder.encode([("grpc-status", "5"), ("grpc-message", "not found")]), table)
    assert (trailers.grpc_status[:2], trailers.seen, trailers.grpc) == ([ord("5"), 0], 1 << FIELDS[b"grpc-status"], 0)
    only = decoder.block(encoder.encode([(":status", "200"), ("content-type", "application/grpc"),
                                         ("grpc-status", "14")]), table)
    assert (only.status, only.grpc, bytes(only.grpc_status).rstrip(b"\0"), only.unknown) == (200, 1, b"14", 0)


def test_a_block_cut_short_is_an_error(decoder: Decoder) -> None:
    encoder, whole, ends = hpack.Encoder(), b"", {0: 0}  # where a representation ends: the insertions before it
    for header in GRPC_REQUEST:
        whole += encoder.encode([header])
        ends[len(whole)] = len(encoder.header_table.dynamic_entries)
    for n in range(len(whole)):
        table = HpackTable(inserted=7, known=7)
        out = decoder.over(whole[:n], table, 0, whole)  # the block ends at n: the rest is stale bytes
        assert (out.error, table.known) == ((0, 7 + ends[n]) if n in ends else (1, 0)), n
        table = HpackTable(inserted=7, known=7)
        out = decoder.over(whole[:n], table, 0, whole, len(whole))  # the block goes on past the window
        assert (out.error, table.known, table.inserted) == (1, 0, 7 + max(i for e, i in ends.items() if e <= n)), n


def test_the_latest_32_values_are_remembered(decoder: Decoder) -> None:
    encoder, table = hpack.Encoder(), HpackTable()
    assert decoder.block(encoder.encode([(":authority", f"host{i}") for i in range(40)]), table).error == 0
    assert (table.inserted, table.known, table.kept) == (40, 40, 40)
    at_32 = decoder.block(encoder.encode([(":authority", "host8")]), table)  # index 62 + 31
    assert (at_32.unknown, bytes(at_32.authority).rstrip(b"\0")) == (0, b"host8")
    at_33 = decoder.block(encoder.encode([(":authority", "host7")]), table)  # its value pushed out by 32 others
    assert (at_33.unknown, at_33.seen, table.inserted) == (1, 0, 40)


def test_the_fields_of_the_latest_256_insertions_are_remembered(decoder: Decoder) -> None:
    # other fields' insertions (a changing grpc-timeout) push no value out; only the depth limits
    encoder, table = hpack.Encoder(), HpackTable()
    encoder.header_table_size = 1 << 16  # as a peer's SETTINGS_HEADER_TABLE_SIZE may allow
    decoder.block(encoder.encode([(":path", "/p")]), table)
    for start in range(0, 300, 50):
        decoder.block(encoder.encode([("grpc-timeout", f"{i}m") for i in range(start, start + 50)]), table)
        out = decoder.block(encoder.encode([(":path", "/p")]), table)
        assert (out.unknown, bytes(out.path).rstrip(b"\0")) == ((0, b"/p") if start + 51 <= DEPTH else (1, b"")), start
    assert (table.inserted, table.known, table.kept) == (301, DEPTH, 1)


@pytest.mark.parametrize("index", range(1, 62))
def test_rfc_7541_static_table(decoder: Decoder, index: int) -> None:
    name, value = HeaderTable.STATIC_TABLE[index - 1]
    assert decoder.block(bytes([0x80 | index]), HpackTable()).said() == expect([(name, value)])
    literal = decoder.block(bytes([0x40 | index, 3]) + b"204", table := HpackTable())  # its name, another value
    assert (literal.said(), literal.error, table.inserted) == (expect([(name, b"204")]), 0, 1)


@pytest.mark.parametrize("name", [*FIELDS, b":path2", b":pat", b"content-typ", b"grpc-statuses", b":METHOD"])
def test_literal_names(decoder: Decoder, name: bytes) -> None:
    # an encoder may spell out a name the static table has: with indexing, then the entry referred to
    for huffman in (False, True):
        coded = HUFFMAN.encode(name) if huffman else name
        block = bytes([0x40, huffman << 7 | len(coded)]) + coded + b"\x03204"
        out = decoder.block(block + b"\xbe", table := HpackTable())
        assert (out.said(), out.unknown, out.error, table.inserted) == (expect([(name, b"204")]), 0, 0, 1)


@pytest.mark.parametrize(("literal", "why"), [
    ("4481 18", "Huffman padding that is not EOS's first bits"),
    ("4482 1fff", "Huffman padding of 8 bits or more"),
    ("4484 ffff fffc", "EOS in a Huffman string"),
    ("4481 fe", "a Huffman code cut short"),
    ("80", "index 0"),
    ("447f 8080 8080 80", "an integer longer than the decoder reads"),
    ("440a 2f", "a string longer than the block"),
])
def test_malformed_blocks(decoder: Decoder, literal: str, why: str) -> None:
    table = HpackTable(inserted=3, known=3)
    out = decoder.block(bytes.fromhex(literal), table)
    assert (out.error, table.known) == (1, 0), why


@pytest.mark.parametrize(("content_type", "grpc"), [
    (b"application/grpc", 1), (b"application/grpc+proto", 1), (b"application/grpc+json", 1),
    (b"application/grpc-web", 0), (b"application/grpc-web+proto", 0), (b"application/grpcx", 0),
    (b"application/grp", 0), (b"application/json", 0), (b"", 0),
])
def test_grpc_content_types(decoder: Decoder, content_type: bytes, grpc: int) -> None:
    for huffman in (False, True):
        block = hpack.Encoder().encode([(b"content-type", content_type)], huffman=huffman)
        assert decoder.block(block, HpackTable()).grpc == grpc


def test_representations_decoded_per_block(decoder: Decoder) -> None:
    assert decoder.block(b"\x82" * PER_BLOCK, HpackTable()).error == 0
    assert decoder.block(b"\x82" * (PER_BLOCK + 1), table := HpackTable(known=1)).error == 1  # the rest not decoded
    assert table.known == 0


def test_a_block_past_the_window(decoder: Decoder) -> None:
    table, block = HpackTable(), hpack.Encoder().encode([(":path", "/a"), ("x-long", "x" * CAPTURE_MAX)], huffman=False)
    out = decoder.block(block, table)
    assert (out.error, bytes(out.path).rstrip(b"\0"), table.inserted, table.known) == (1, b"/a", 1, 0)


# ---------------------------------------------------------------- an encoder's blocks, random bytes

NAMES = st.sampled_from([*FIELDS, b":scheme", b"accept", b"te", b"grpc-timeout"]) | st.from_regex(
    rb"[a-z][a-z0-9-]{0,20}", fullmatch=True)
VALUE_BYTES = st.lists(st.integers(1, 255), max_size=100).map(bytes)
SPECIAL = st.sampled_from([b"GET", b"POST", b"/", b"/index.html", b"200", b"404", b"503", b"application/grpc",
                           b"application/grpc+proto", b"application/json"])


Blocks = list[tuple[int | None, list[tuple[bytes, bytes, bool, bool]]]]


@st.composite
def header_blocks(draw: st.DrawFn) -> Blocks:
    """Blocks of (name, value, huffman, never indexed), each maybe after a table size update. Half the values come
    from a small pool, so that blocks refer to what earlier ones inserted."""
    pool = st.sampled_from(draw(st.lists(VALUE_BYTES | SPECIAL, min_size=1, max_size=6)))
    header = st.tuples(NAMES, st.one_of(pool, pool, VALUE_BYTES, SPECIAL), st.booleans(),
                       st.sampled_from([False, False, False, True]))
    size = st.sampled_from([None, None, None, None, 0, 256, 4096])
    return draw(st.lists(st.tuples(size, st.lists(header, max_size=12)), min_size=1, max_size=6))


@PROPERTY
@given(header_blocks())
def test_an_encoders_blocks(decoder: Decoder, blocks: Blocks) -> None:
    encoder, table, inserted, lost = hpack.Encoder(), HpackTable(), 0, False
    for size, headers in blocks:
        if size is not None:
            encoder.header_table_size = size
        block = b""
        for name, value, huffman, never in headers:
            match = encoder.header_table.search(name, value)
            lost |= match is not None and match[0] - 61 > VALUES  # its value may have been pushed out
            inserted += not never and (match is None or match[2] is None)
            block += encoder.encode([hpack.NeverIndexedHeaderTuple(name, value) if never else (name, value)],
                                    huffman=huffman)
        out = decoder.block(block, table)
        if len(block) > CAPTURE_MAX:  # past the window: what it inserted is not known
            assert (out.error, table.known) == (1, 0)
            lost, inserted = True, table.inserted
            continue
        assert (out.error, table.inserted) == (0, inserted)
        assert lost or not out.unknown
        if not out.unknown:
            assert out.said() == expect([(name, value) for name, value, _, _ in headers])


@PROPERTY
@given(st.binary(max_size=300), st.binary(max_size=100), st.integers(0, 2))
def test_random_bytes(decoder: Decoder, data: bytes, tail: bytes, history: int) -> None:
    # from a table that holds C.3's entries (some of them), the same result whatever the window holds past n
    before = HpackTable()
    for block in REQUESTS["C.3"][:history]:
        decoder.block(bytes.fromhex(block), before)
    results = []
    for fill, stale in ((0xFF, b""), (0x00, data + tail), (0x0A, tail)):
        table = HpackTable.from_buffer_copy(before)
        out = decoder.over(data, table, fill, stale)
        results.append((bytes(out), bytes(table)))
        assert table.known <= DEPTH and (not out.error or table.known == 0)
        assert out.method[OP_LEN - 1] == out.grpc_status[OP_LEN - 1] == 0 and out.grpc <= 1 and out.status <= 999
    assert results[0] == results[1] == results[2]
