"""Where a wrapper function's work starts, from its x86-64 machine code: the target of its first call.

Why: a uprobe replaces an instruction with a breakpoint, and after the handler the kernel either
emulates that instruction (push, jmp, call, jcc, nop) or runs it out of line in single-step mode, a
second trap. Where the hypervisor intercepts that trap (AMD hosts do, for every guest), it costs
~9.5 us instead of ~1 us (bench/uprobe_cost.py). OpenSSL's SSL_read and SSL_write begin with
`sub $n,%rsp`; the internal function they both call (ssl_read_internal, ssl_write_internal) begins
with pushes, and takes the arguments of SSL_read_ex and SSL_write_ex.

The decoder knows the instructions of function prologues and argument set-up (moves, arithmetic,
tests, conditional jumps, stack-protector loads), and gives up on anything else, so a wrong guess
is never made: the caller then probes the exported function itself. Pure functions over bytes."""

from __future__ import annotations

from collections.abc import Sequence

LEGACY_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF2, 0xF3})
# one-byte opcodes followed by a ModRM byte and no immediate
MODRM = frozenset({*range(0x00, 0x04), *range(0x08, 0x0C), *range(0x10, 0x14), *range(0x18, 0x1C),
                   *range(0x20, 0x24), *range(0x28, 0x2C), *range(0x30, 0x34), *range(0x38, 0x3C),
                   0x63, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0x8D, 0xD1, 0xD3})
MODRM_IMM8 = frozenset({0x6B, 0x80, 0x83, 0xC0, 0xC1, 0xC6})
MODRM_IMM32 = frozenset({0x69, 0x81, 0xC7})
IMM8 = frozenset({0x04, 0x0C, 0x14, 0x1C, 0x24, 0x2C, 0x34, 0x3C, 0xA8, *range(0x70, 0x80)})  # jcc rel8 too
IMM32 = frozenset({0x05, 0x0D, 0x15, 0x1D, 0x25, 0x2D, 0x35, 0x3D, 0xA9})
PLAIN = frozenset({*range(0x50, 0x60), 0x90, 0x98, 0x99})  # push, pop, nop, cdqe, cqo
# two-byte opcodes (0f xx) followed by a ModRM byte: nop r/m and endbr64, cmovcc, setcc, movzx, movsx
MODRM_0F = frozenset({0x1E, 0x1F, *range(0x40, 0x50), *range(0x90, 0xA0), 0xAF, 0xB6, 0xB7, 0xBE, 0xBF})
CALL_REL32 = 0xE8


def _modrm_length(code: Sequence[int], at: int) -> int | None:
    """Bytes of a ModRM byte at `at` with its SIB byte and displacement."""
    if at >= len(code):
        return None
    modrm = code[at]
    mod, rm = modrm >> 6, modrm & 7
    length = 1
    if mod != 3 and rm == 4:  # a SIB byte follows
        if at + 1 >= len(code):
            return None
        length += 1
        if mod == 0 and code[at + 1] & 7 == 5:
            return length + 4
    if mod == 0 and rm == 5:  # RIP-relative
        return length + 4
    return length + {0: 0, 1: 1, 2: 4, 3: 0}[mod]


def instruction_length(code: Sequence[int], at: int) -> tuple[int, int] | None:
    """(opcode, length) of the instruction at `at`; None if it is not one this decoder knows. Two-byte
    opcodes come back as 0x0F00 | xx."""
    start, operand16, wide = at, False, False
    while at < len(code) and code[at] in LEGACY_PREFIXES:
        operand16 |= code[at] == 0x66
        at += 1
    if at < len(code) and 0x40 <= code[at] <= 0x4F:  # REX
        wide = bool(code[at] & 8)
        at += 1
    if at >= len(code):
        return None
    op = code[at]
    at += 1
    imm32 = 2 if operand16 else 4
    if op == 0x0F:
        if at >= len(code):
            return None
        op2 = code[at]
        if 0x80 <= op2 <= 0x8F:  # jcc rel32
            return 0x0F00 | op2, at + 1 + 4 - start
        modrm = _modrm_length(code, at + 1) if op2 in MODRM_0F else None
        return None if modrm is None else (0x0F00 | op2, at + 1 + modrm - start)
    if op in PLAIN:
        return op, at - start
    if op in IMM8:
        return op, at + 1 - start
    if op in IMM32 or op == CALL_REL32:
        return op, at + (4 if op == CALL_REL32 else imm32) - start
    if 0xB8 <= op <= 0xBF:  # mov reg, imm32 (imm64 with REX.W)
        return op, at + (8 if wide else imm32) - start
    if op in (0xF6, 0xF7):  # test r/m, imm with /0; not, neg, mul, div without
        modrm = _modrm_length(code, at)
        if modrm is None:
            return None
        imm = (1 if op == 0xF6 else imm32) if (code[at] >> 3) & 7 in (0, 1) else 0
        return op, at + modrm + imm - start
    extra = 0 if op in MODRM else 1 if op in MODRM_IMM8 else imm32 if op in MODRM_IMM32 else None
    if extra is None:
        return None
    modrm = _modrm_length(code, at)
    return None if modrm is None else (op, at + modrm + extra - start)


def first_call(code: Sequence[int], start: int, limit: int = 96) -> int | None:
    """The offset (in `code`'s coordinates) that the first `call rel32` after `start` goes to, along the
    straight path (conditional jumps fall through); None if an instruction is not known, or if an
    unconditional jump or a return comes first, within `limit` bytes."""
    at = start
    while at < start + limit:
        decoded = instruction_length(code, at)
        if decoded is None:
            return None
        op, length = decoded
        if at + length > len(code):
            return None
        if op == CALL_REL32:
            rel = int.from_bytes(bytes(code[at + 1:at + 5]), "little", signed=True)
            target = at + 5 + rel
            return target if 0 <= target < len(code) else None
        at += length
    return None


def starts_with_push(code: Sequence[int], at: int) -> bool:
    """The function at `at` begins with `push reg`, which the kernel emulates at a uprobe."""
    if at + 1 >= len(code):
        return False
    first = code[at]
    return 0x50 <= first <= 0x57 or (first == 0x41 and 0x50 <= code[at + 1] <= 0x57)
