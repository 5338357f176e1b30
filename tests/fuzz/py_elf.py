"""atheris target: the ELF reader that finds bash's readline (exporter/collectors/bash_elf.py).

Any bytes as a binary: a symbol's address and file offset, or None, or ElfError; nothing else."""

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from exporter.collectors.bash_elf import ElfError, address_to_offset, symbol_address, symbol_file_offset


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    address = fdp.ConsumeIntInRange(0, 2**64 - 1)
    image = fdp.ConsumeBytes(fdp.remaining_bytes())
    for call in (lambda: symbol_address(image, "readline"), lambda: symbol_file_offset(image, "readline"),
                 lambda: address_to_offset(image, address)):
        with contextlib.suppress(ElfError):
            call()


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
