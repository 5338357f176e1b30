"""atheris target: the ELF reader that finds bash's readline and OpenSSL's functions
(exporter/collectors/elf.py), and the x86-64 decoder that finds a wrapper's first call
(exporter/collectors/x86_calls.py).

Any bytes as a binary: symbols' addresses and file offsets, or None, or ElfError; a call target
inside the bytes, or None; nothing else."""

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from exporter.collectors.elf import (
        ElfError,
        address_to_offset,
        symbol_address,
        symbol_file_offset,
        symbol_file_offsets,
    )
    from exporter.collectors.x86_calls import first_call, starts_with_push


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    address = fdp.ConsumeIntInRange(0, 2**64 - 1)
    image = fdp.ConsumeBytes(fdp.remaining_bytes())
    for call in (lambda: symbol_address(image, "readline"), lambda: symbol_file_offset(image, "readline"),
                 lambda: address_to_offset(image, address),
                 lambda: symbol_file_offsets(image, ("SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"))):
        with contextlib.suppress(ElfError):
            call()
    start = address % (len(image) + 1)
    target = first_call(image, start)
    assert target is None or 0 <= target < len(image)
    starts_with_push(image, start)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
