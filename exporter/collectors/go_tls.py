"""Where to probe Go's crypto/tls in an x86-64 executable: the entries and the RET instructions of
crypto/tls.(*Conn).Read and Write, as file offsets.

Returns are caught with uprobes on each RET, never with uretprobes: those rewrite the return address
on the stack, which Go moves when it grows a goroutine's stack. The RETs come from the function's pcsp
table in .gopclntab (the SP delta at each pc): a function with a frame returns with `POPQ BP; RET` (Go
1.21+) or `ADDQ $n, SP; RET`, so each RET starts a stretch where the delta is back to 0, and no other
instruction starts with the byte 0xC3. The pclntab's entries count from runtime.text, read from the
runtime's module data (text_start), which stripped (-ldflags='-s -w'), PIE and C-linked (cgo) binaries
keep too; from .symtab when the module data cannot be read.

Only the layouts of Go 1.18+ are read (pcHeader magics 0xfffffff0 and 0xfffffff1): anything else gives
None, never a guessed offset, since a uprobe in the middle of an instruction corrupts the traced
program. Pure functions over the file's bytes."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from exporter.collectors.elf import Buffer, ElfError, address_to_offset, symbol_addresses
from exporter.collectors.x86_calls import instruction_length

READ, WRITE = "crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Write"
# where a connection's handshake reads and writes its socket: the socket is then the session's, for a
# first Read served from what the handshake read ahead
HANDSHAKES = ("crypto/tls.(*Conn).clientHandshake", "crypto/tls.(*Conn).serverHandshake")
PCLNTAB_MAGICS = (0xFFFFFFF0, 0xFFFFFFF1)  # Go 1.18-1.19, Go 1.20+
PCLNTAB_SECTIONS = (".gopclntab", ".data.rel.ro.gopclntab")  # the latter: PIEs before Go 1.21
BUILDINFO_MAGIC = b"\xff Go buildinf:"
MIN_MINOR = 17  # the register ABI: arguments and results in registers
SHF_WRITE, SHF_EXECINSTR = 1, 4
SHT_PROGBITS, SHT_RELA = 1, 4
R_X86_64_RELATIVE = 8
RET = 0xC3
STACK_CHECK_JUMPS = frozenset({0x76, 0x72, 0x0F86, 0x0F82})  # jbe, jb: rel8 and rel32


class GoBinaryError(ElfError):
    """A Go binary whose tables are truncated, corrupt or of a layout this module does not read."""


@dataclass(frozen=True)
class GoTls:
    """File offsets: where the entry uprobes go, and each RET."""

    version: str  # "go1.22.5"
    read: int
    write: int
    read_returns: tuple[int, ...]
    write_returns: tuple[int, ...]
    handshakes: tuple[int, ...] = ()  # entry probes of HANDSHAKES found


@dataclass(frozen=True)
class Section:
    address: int
    offset: int
    size: int
    flags: int
    kind: int


@dataclass(frozen=True)
class Function:
    entry: int  # virtual address
    end: int
    probe: int  # from the entry: where the entry uprobe goes (entry_probe)
    returns: tuple[int, ...]  # virtual addresses of the RET instructions


def go_tls(image: Buffer) -> GoTls | None:
    """The probe points of crypto/tls in a Go executable; None if the file is not an x86-64 Go
    executable of Go 1.18+, does not use crypto/tls, or has tables this module cannot read."""
    try:
        return _go_tls(image)
    except ElfError:
        return None


def _go_tls(image: Buffer) -> GoTls | None:
    if not _is_x86_64(image):
        return None
    sections = elf_sections(image)
    version = go_version(image, sections)
    if version is None or not _has_register_abi(version):
        return None
    table, text = find_pclntab(image, sections)
    funcs = table.find((READ, WRITE, *HANDSHAKES))
    if READ not in funcs or WRITE not in funcs:
        return None
    if text is None:  # module data of a layout not known: .symtab if not stripped
        text = _text_start_from_symbols(image, table, funcs)
        if text is None:
            return None
    read, write = (table.function(funcs[name], text, image) for name in (READ, WRITE))
    handshakes = [f for name in HANDSHAKES if name in funcs and (f := _optional(table, funcs[name], text, image))]
    return GoTls(version, _offset(image, read.entry + read.probe), _offset(image, write.entry + write.probe),
                 tuple(_offset(image, at) for at in read.returns), tuple(_offset(image, at) for at in write.returns),
                 tuple(_offset(image, f.entry + f.probe) for f in handshakes))


def _optional(table: Pclntab, func: int, text: int, image: Buffer) -> Function | None:
    """A function whose RETs are not needed: one the checks refuse is left out, not the binary."""
    try:
        return table.function(func, text, image)
    except GoBinaryError:
        return None


def find_pclntab(image: Buffer, sections: dict[str, Section]) -> tuple[Pclntab, int | None]:
    """The pclntab, and runtime.text if module data agree with it (text_start). A C linker merges the
    pclntab of a PIE before Go 1.21 into .data.rel.ro: it is then where its header is, when module
    data agree."""
    for name in PCLNTAB_SECTIONS:
        if name in sections:
            table = Pclntab.parse(_section_bytes(image, sections[name]), sections[name].address)
            try:
                return table, text_start(image, sections, table)
            except GoBinaryError:
                return table, None
    for section in sections.values():
        if section.kind != SHT_PROGBITS or section.flags & SHF_EXECINSTR:
            continue
        data = _section_bytes(image, section)
        for magic in PCLNTAB_MAGICS:
            at = data.find(struct.pack("<IHBB", magic, 0, 1, 8))
            while at >= 0:
                try:
                    table = Pclntab.parse(data[at:], section.address + at)
                    return table, text_start(image, sections, table)
                except GoBinaryError:
                    at = data.find(struct.pack("<IHBB", magic, 0, 1, 8), at + 8)
    raise GoBinaryError("no pclntab")


def _is_x86_64(image: Buffer) -> bool:
    return len(image) > 64 and image[0:6] == b"\x7fELF\x02\x01" and image[18:20] == b"\x3e\x00"


def _offset(image: Buffer, address: int) -> int:
    offset = address_to_offset(image, address)
    if offset is None:
        raise GoBinaryError(f"address {address:#x} is in no PT_LOAD segment")
    return offset


def _unpack(fmt: str, data: Buffer, at: int) -> tuple[int, ...]:
    if at < 0 or at + struct.calcsize(fmt) > len(data):
        raise GoBinaryError(f"a read at {at:#x} ends past the end")
    return struct.unpack_from(fmt, data, at)  # type: ignore[arg-type]


def _section_bytes(image: Buffer, section: Section) -> bytes:
    if section.offset + section.size > len(image):
        raise GoBinaryError("a section ends past the end of the file")
    return image[section.offset:section.offset + section.size]


def elf_sections(image: Buffer) -> dict[str, Section]:
    """The sections of an ELF64 little-endian file, by name (the first of each name)."""
    shoff, _flags, _ehsize, _phentsize, _phnum, shentsize, shnum, shstrndx = _unpack("<QIHHHHHH", image, 40)
    if shnum and shentsize < 64:
        raise GoBinaryError(f"section headers of {shentsize} bytes")
    headers = [_unpack("<IIQQQQIIQQ", image, shoff + i * shentsize) for i in range(shnum)]
    if shstrndx >= len(headers):
        return {}
    names = _section_bytes(image, Section(0, headers[shstrndx][4], headers[shstrndx][5], 0, 0))
    sections: dict[str, Section] = {}
    for name_at, kind, flags, address, offset, size, *_ in headers:
        name = names[name_at:names.find(b"\0", name_at)].decode("latin-1")
        sections.setdefault(name, Section(address, offset, size, flags, kind))
    return sections


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    """(value, offset after it) of an unsigned LEB128 number of at most 32 bits."""
    value = shift = 0
    while True:
        if at >= len(data) or shift > 28:
            raise GoBinaryError("a truncated or overlong varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def go_version(image: Buffer, sections: dict[str, Section]) -> str | None:
    """The Go version of .go.buildinfo, "go1.22.5"; None without one, or in the layout before Go 1.18
    (pointers to the strings instead of the strings)."""
    if ".go.buildinfo" not in sections:
        return None
    data = _section_bytes(image, sections[".go.buildinfo"])
    if not data.startswith(BUILDINFO_MAGIC) or len(data) < 32 or not data[15] & 2:
        return None
    length, at = _uvarint(data, 32)
    if at + length > len(data):
        raise GoBinaryError("a truncated Go version")
    return data[at:at + length].decode("utf-8", "replace")


def _has_register_abi(version: str) -> bool:
    """Go 1.17 and later; "devel go1.23-abcdef ..." and "go1.22.5 X:boringcrypto" too."""
    match = re.search(r"\bgo1\.(\d+)", version)
    return match is not None and int(match.group(1)) >= MIN_MINOR


def pc_values(table: bytes, at: int, entry: int, quantum: int) -> Iterator[tuple[int, int, int]]:
    """The (start, end, value) stretches of a pc-value table at `at`: pairs of a zigzag-encoded value
    delta and a pc delta in units of `quantum`, starting from the value -1 at `entry`, up to a value
    delta of 0 after the first pair."""
    pc, value, first = entry, -1, True
    while True:
        if at >= len(table):
            raise GoBinaryError("a pc-value table runs past the end")
        if table[at] == 0 and not first:
            return
        delta, at = _uvarint(table, at)
        pc_delta, at = _uvarint(table, at)
        value += -(delta >> 1) - 1 if delta & 1 else delta >> 1
        yield pc, pc + pc_delta * quantum, value
        pc, first = pc + pc_delta * quantum, False


@dataclass(frozen=True)
class Pclntab:
    """The parts of a Go 1.18+ .gopclntab that give a function's entry, end and pcsp table."""

    data: bytes
    address: int
    quantum: int
    nfunc: int
    funcnames: int  # offsets in data
    pctab: int
    functab: int  # nfunc (entryoff, funcoff) uint32 pairs and the end's entryoff; a funcoff is from here

    @classmethod
    def parse(cls, data: bytes, address: int) -> Pclntab:
        magic, pad, quantum, ptr_size, nfunc = _unpack("<IHBBQ", data, 0)
        if magic not in PCLNTAB_MAGICS or pad or quantum != 1 or ptr_size != 8:
            raise GoBinaryError(f"a pclntab of magic {magic:#x} or unknown layout")
        funcnames, _cu, _files, pctab, functab = _unpack("<5Q", data, 32)
        if functab + (2 * nfunc + 1) * 4 > len(data):
            raise GoBinaryError("a truncated functab")
        return cls(data, address, quantum, nfunc, funcnames, pctab, functab)

    def entry_offset(self, index: int) -> int:
        return _unpack("<I", self.data, self.functab + 8 * index)[0]

    def find(self, names: tuple[str, ...]) -> dict[str, int]:
        """The offset in data of the _func record of each of `names` that the table has."""
        offsets: dict[int, str] = {}  # of every place in funcnametab a name is spelled out, to the name
        for name in names:
            spelled = name.encode() + b"\0"
            at = self.data.find(spelled, self.funcnames, self.pctab)
            while at >= 0:
                offsets[at - self.funcnames] = name
                at = self.data.find(spelled, at + 1, self.pctab)
        found: dict[str, int] = {}
        pairs = self.data[self.functab:self.functab + 8 * self.nfunc]
        for _entry, funcoff in struct.iter_unpack("<II", pairs):
            name_offset = _unpack("<i", self.data, self.functab + funcoff + 4)[0]
            if (named := offsets.get(name_offset)) is not None and named not in found:
                found[named] = self.functab + funcoff
        return found

    def function(self, func: int, text: int, image: Buffer) -> Function:
        """The entry, end and RETs of the function whose _func record is at `func`."""
        entry_offset, _name, _args, _defer, pcsp = _unpack("<IiiII", self.data, func)
        entry, last = text + entry_offset, text + self.entry_offset(self.nfunc)
        stretches = []
        for stretch in pc_values(self.data, self.pctab + pcsp, entry, self.quantum):
            if stretch[1] > last:  # garbage: stop before walking the whole table
                raise GoBinaryError(f"the pcsp table of the function at {entry:#x} goes past the last function")
            stretches.append(stretch)
        end = stretches[-1][1]
        if end <= entry:
            raise GoBinaryError(f"an empty pcsp table for the function at {entry:#x}")
        start = _offset(image, entry)
        code = image[start:start + end - entry]
        if len(code) != end - entry:
            raise GoBinaryError(f"the function at {entry:#x} ends past the end of the file")
        # From the second stretch: the first one, at the entry, also has the delta 0.
        returns = tuple(at for at, _end, value in stretches[1:] if value == 0 and at < end and code[at - entry] == RET)
        if not returns or not all(follows_epilogue(code, at - entry) for at in returns):
            raise GoBinaryError(f"no RET, or one after no epilogue, in the function at {entry:#x}")
        return Function(entry, end, entry_probe(code), returns)


def _text_start_from_symbols(image: Buffer, table: Pclntab, funcs: dict[str, int]) -> int | None:
    """runtime.text from .symtab: where both functions are, less their entry offsets."""
    addresses = symbol_addresses(image, funcs)
    if set(addresses) != set(funcs):
        return None
    starts = {addresses[name] - _unpack("<I", table.data, func)[0] for name, func in funcs.items()}
    if len(starts) != 1:
        raise GoBinaryError(".symtab and .gopclntab disagree")
    return starts.pop()


def text_start(image: Buffer, sections: dict[str, Section], table: Pclntab) -> int:
    """runtime.text, which the functab's entry offsets count from, from the module data (runtime's
    moduledata): the .text section starts there only when Go links alone, not with a C linker
    (-linkmode=external, cgo). The module data is where the pcHeader's address is written, or in a PIE
    where a relocation writes it; it is taken only when its other fields agree with the pclntab."""
    relocations = _relative_relocations(image, sections)

    def word(address: int) -> int:
        if address in relocations:
            return relocations[address]
        return _unpack("<Q", image, _offset(image, address))[0]

    candidates = {at for at, value in relocations.items() if value == table.address}
    needle = struct.pack("<Q", table.address)
    for section in sections.values():
        if section.flags & SHF_WRITE and section.kind == SHT_PROGBITS:
            data = _section_bytes(image, section)
            at = data.find(needle)
            while at >= 0:
                candidates.add(section.address + at)
                at = data.find(needle, at + 8)
    starts = {text for at in candidates if (text := _module_text(word, at, table)) is not None}
    if len(starts) != 1:
        raise GoBinaryError(f"{len(starts)} module data agree with the pclntab")
    return starts.pop()


def _module_text(word: Callable[[int], int], at: int, table: Pclntab) -> int | None:
    """moduledata.text, if the module data at `at` has the pclntab's slices and function bounds:
    pcHeader, funcnametab, cutab, filetab, pctab, pclntable and ftab (3 words each), findfunctab,
    minpc, maxpc, text."""
    try:
        if (word(at + 8) != table.address + table.funcnames or word(at + 80) != table.address + table.pctab
                or word(at + 128) != table.address + table.functab or word(at + 136) != table.nfunc + 1):
            return None
        minpc, maxpc, text = word(at + 160), word(at + 168), word(at + 176)
    except GoBinaryError:
        return None
    if minpc != text + table.entry_offset(0) or maxpc != text + table.entry_offset(table.nfunc):
        return None
    return text


def _relative_relocations(image: Buffer, sections: dict[str, Section]) -> dict[int, int]:
    """address -> value of the R_X86_64_RELATIVE relocations: what a PIE's pointers hold once loaded."""
    found: dict[int, int] = {}
    for section in sections.values():
        if section.kind == SHT_RELA:
            data = _section_bytes(image, section)
            for address, info, addend in struct.iter_unpack("<QQq", data[:len(data) // 24 * 24]):
                if info & 0xFFFFFFFF == R_X86_64_RELATIVE:
                    found[address] = addend
    return found


def entry_probe(code: bytes) -> int:
    """Where the entry uprobe goes, from the entry: on the jump of the stack check, which the kernel
    emulates where it would single-step the instructions before it: `cmp N(%r14),%rsp; jbe`, or for
    frames over 128 bytes `lea -N(%rsp),%r12; cmp N(%r14),%r12; jbe`. They write no argument register
    (r12 is a scratch one in Go's register ABI). On the entry itself for functions that begin otherwise."""
    at, compare = 0, b"\x49\x3b"  # REX.WB 3B /r: cmp r/m64,rsp
    if code[:2] == b"\x4c\x8d" and code[2:4] in (b"\x64\x24", b"\xa4\x24"):  # lea disp(%rsp),%r12
        at, compare = 5 if code[2] == 0x64 else 8, b"\x4d\x3b"  # REX.WRB: cmp r/m64,r12
    # the r/m operand: r14 plus an 8- or 32-bit displacement
    if code[at:at + 2] != compare or code[at + 2:at + 3] not in (b"\x66", b"\xa6"):
        return 0
    compared = instruction_length(code, at)
    if compared is None:
        return 0
    at += compared[1]
    jump = instruction_length(code, at)
    return at if jump is not None and jump[0] in STACK_CHECK_JUMPS else 0


def follows_epilogue(code: bytes, at: int) -> bool:
    """The RET at `at` follows the end of an epilogue: `POPQ BP` (Go 1.21+) or `ADDQ $n, SP`."""
    before = code[max(at - 7, 0):at]
    return before.endswith(b"\x5d") or before[-4:-1] == b"\x48\x83\xc4" or (
        len(before) == 7 and before.startswith(b"\x48\x81\xc4"))
