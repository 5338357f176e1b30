"""atheris target: the ELF reader that finds bash's readline and OpenSSL's functions
(exporter/collectors/elf.py).

Any bytes as a binary: symbols' addresses and file offsets, or None, or ElfError; nothing else."""

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


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    address = fdp.ConsumeIntInRange(0, 2**64 - 1)
    image = fdp.ConsumeBytes(fdp.remaining_bytes())
    for call in (lambda: symbol_address(image, "readline"), lambda: symbol_file_offset(image, "readline"),
                 lambda: address_to_offset(image, address),
                 lambda: symbol_file_offsets(image, ("SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"))):
        with contextlib.suppress(ElfError):
            call()


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
