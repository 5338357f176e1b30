"""The first call of a wrapper, from x86-64 machine code written out byte by byte."""

from __future__ import annotations

import pytest

from exporter.collectors.x86_calls import first_call, starts_with_push


def call(rel: int) -> bytes:
    return b"\xe8" + rel.to_bytes(4, "little", signed=True)


# OpenSSL 3.0's SSL_read (Debian 12), up to its call of ssl_read_internal
SSL_READ = bytes.fromhex(
    "4883ec18"            # sub $0x18,%rsp
    "64488b042528000000"  # mov %fs:0x28,%rax
    "4889442408"          # mov %rax,0x8(%rsp)
    "31c0"                # xor %eax,%eax
    "85d2"                # test %edx,%edx
    "782f"                # js (the error path: falls through)
    "4889e1"              # mov %rsp,%rcx
    "4863d2"              # movslq %edx,%rdx
) + call(-0x1C3)          # call ssl_read_internal


def test_the_call_of_openssls_ssl_read() -> None:
    code = bytes(0x200) + SSL_READ
    assert first_call(code, 0x200) == 0x200 + len(SSL_READ) - 0x1C3


@pytest.mark.parametrize("prologue", [
    bytes.fromhex("4883ec08"),                        # sub $8,%rsp (SSL_read_ex)
    bytes.fromhex("f30f1efa" "55" "4889e5"),          # endbr64; push %rbp; mov %rsp,%rbp
    bytes.fromhex("4154" "4881ec08010000"),           # push %r12; sub $0x108,%rsp
    bytes.fromhex("488d0d00100000" "0f1f4000"),       # lea 0x1000(%rip),%rcx; nopl 0x0(%rax)
    bytes.fromhex("48b8" "0102030405060708"),         # movabs $imm64,%rax
    bytes.fromhex("f6470401" "0f84" "10000000"),      # testb $1,4(%rdi); je rel32
    bytes.fromhex("66c7442402" "3412"),               # movw $0x1234,2(%rsp)
])
def test_prologues_before_the_call(prologue: bytes) -> None:
    code = prologue + call(0x40) + bytes(0x80)
    assert first_call(code, 0) == len(prologue) + 5 + 0x40


@pytest.mark.parametrize("before", [
    bytes.fromhex("c3"),          # ret
    bytes.fromhex("eb10"),        # jmp: the path leaves
    bytes.fromhex("ff2500000000"),  # jmp *(%rip): a PLT stub
    bytes.fromhex("0f05"),        # syscall: not a prologue's
    bytes.fromhex("d9ee"),        # an x87 instruction this decoder does not know
])
def test_anything_else_gives_up(before: bytes) -> None:
    assert first_call(before + call(0) + bytes(16), 0) is None


def test_a_call_out_of_the_code_or_too_far_gives_up() -> None:
    assert first_call(call(-100) + bytes(8), 0) is None
    assert first_call(bytes.fromhex("90") * 100 + call(0) + bytes(8), 0, limit=96) is None
    assert first_call(bytes.fromhex("4883"), 0) is None  # cut short


@pytest.mark.parametrize(("code", "push"), [
    (bytes.fromhex("4155"), True),    # push %r13 (ssl_read_internal)
    (bytes.fromhex("55" "53"), True),  # push %rbp
    (bytes.fromhex("4883ec18"), False),  # sub $0x18,%rsp: single-stepped
    (bytes.fromhex("f30f1efa"), False),  # endbr64: single-stepped
    (bytes.fromhex("4158"), False),   # pop %r8
])
def test_which_first_instructions_the_kernel_emulates(code: bytes, push: bool) -> None:
    assert starts_with_push(code + bytes(4), 0) is push
