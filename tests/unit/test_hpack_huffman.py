"""HPACK's Huffman decoding state machine (bpf/l7_hpack_huffman.h, written by scripts/gen_hpack_huffman.py): the
committed header is the script's output, its code table is RFC 7541's (as the hpack package has it), and the table the
kernel reads decodes what an encoder writes, rejecting what RFC 7541 5.2 rejects."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hpack.exceptions import HPACKDecodingError
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import gen_hpack_huffman  # noqa: E402

HEADER = REPO / "bpf" / "l7_hpack_huffman.h"
SCRIPT = REPO / "scripts" / "gen_hpack_huffman.py"
PROPERTY = settings(max_examples=200, deadline=None)
ENCODER = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def committed_fsm() -> list[int]:
    """The entries of hpack_huff_fsm as the committed header has them, and the flags as it defines them."""
    text = HEADER.read_text()
    flags = dict(re.findall(r"#define HPACK_HUFF_(\w+) (0x[0-9a-f]+)", text))
    assert {k: int(v, 16) for k, v in flags.items()} == {"EMIT": EMIT, "FAIL": FAIL, "ACCEPT": ACCEPT}
    body = re.search(r"hpack_huff_fsm\[256 \* 16\] = \{(.*?)\};", text, re.S)
    assert body
    entries = [int(v, 16) for v in re.findall(r"0x[0-9a-f]+", re.sub(r"/\*.*?\*/", "", body.group(1)))]
    assert len(entries) == 256 * 16
    return entries


EMIT, FAIL, ACCEPT = 0x100, 0x200, 0x400
FSM = committed_fsm()


def huffman_decode(data: bytes) -> bytes | None:
    """What the kernel's loop does with the table: None for a malformed string."""
    state, accept, out = 0, True, bytearray()
    for byte in data:
        for nibble in (byte >> 4, byte & 15):
            entry = FSM[state * 16 + nibble]
            if entry & FAIL:
                return None
            if entry & EMIT:
                out.append(entry >> 16 & 0xFF)
            state, accept = entry & 0xFF, bool(entry & ACCEPT)
    return bytes(out) if accept else None


def test_the_committed_header_is_the_scripts_output(tmp_path: Path) -> None:
    out = tmp_path / "l7_hpack_huffman.h"
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True)
    assert out.read_text() == HEADER.read_text(), f"run .venv/bin/python {SCRIPT.relative_to(REPO)}"
    assert max(len(line.expandtabs(8)) for line in out.read_text().splitlines()) <= 120


def test_the_code_table_is_rfc_7541s() -> None:
    assert [code for code, _ in gen_hpack_huffman.CODES] == REQUEST_CODES
    assert [bits for _, bits in gen_hpack_huffman.CODES] == REQUEST_CODES_LENGTH
    # canonical: by (length, symbol), each code is the previous one plus one, shifted to its length
    order = sorted(range(257), key=lambda s: (REQUEST_CODES_LENGTH[s], s))
    code, bits = -1, 0
    for symbol in order:
        code = (code + 1) << (REQUEST_CODES_LENGTH[symbol] - bits)
        bits = REQUEST_CODES_LENGTH[symbol]
        assert gen_hpack_huffman.CODES[symbol] == (code, bits), symbol


@pytest.mark.parametrize(
    ("literal", "text"),
    [
        # RFC 7541 C.4.1-C.4.3: request values
        ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", b"www.example.com"),
        ("a8eb 1064 9cbf", b"no-cache"),
        ("25a8 49e9 5ba9 7d7f", b"custom-key"),
        ("25a8 49e9 5bb8 e8b4 bf", b"custom-value"),
        # RFC 7541 C.6.1-C.6.3: response values
        ("6402", b"302"),
        ("aec3 771a 4b", b"private"),
        ("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff", b"Mon, 21 Oct 2013 20:13:21 GMT"),
        ("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3", b"https://www.example.com"),
        ("640e ff", b"307"),
        ("d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff", b"Mon, 21 Oct 2013 20:13:22 GMT"),
        ("9bd9 ab", b"gzip"),
        ("94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 "
         "b106 3d50 07", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
    ],
)
def test_rfc_7541_appendix_c_strings(literal: str, text: bytes) -> None:
    assert huffman_decode(bytes.fromhex(literal)) == text


def test_padding_and_eos() -> None:
    assert huffman_decode(b"") == b""
    assert huffman_decode(bytes.fromhex("1f")) == b"a"  # 'a' is 00011: 3 bits of padding, all ones
    assert huffman_decode(bytes.fromhex("18")) is None  # padding that is not EOS's first bits
    assert huffman_decode(bytes.fromhex("1fff")) is None  # 11 bits of padding
    assert huffman_decode(b"\xff") is None  # 8 bits of padding: a whole byte
    assert huffman_decode(b"\xff\xff\xff\xfc") is None  # EOS (30 one-bits) decoded
    assert huffman_decode(b"\xfe") is None  # a code cut short: 7 bits of '!' (1111111000)


@PROPERTY
@given(st.binary(max_size=200))
def test_what_an_encoder_writes_decodes_back(data: bytes) -> None:
    assert huffman_decode(ENCODER.encode(data)) == data


@PROPERTY
@given(st.binary(max_size=64))
def test_random_strings_are_judged_as_the_hpack_package_judges_them(data: bytes) -> None:
    try:
        expected: bytes | None = decode_huffman(data)
    except HPACKDecodingError:
        expected = None
    assert huffman_decode(data) == expected
