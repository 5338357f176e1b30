"""atheris target: cgroup files and paths to containers (exporter/enrich/cgroups.py, exporter/collectors/owners.py).

Any text as /proc/<pid>/cgroup: parsed, or a ValueError; any path, and any names the kernel recorded of
a cgroup: a container or None; nothing else."""

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from exporter.collectors.owners import LEVELS, NAME_LEN, CgroupNamesValue, path_of
    from exporter.enrich.cgroups import container_from_path, container_of, parse_proc_cgroup


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    names = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, NAME_LEN - 1)) for _ in range(LEVELS)]
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    with contextlib.suppress(ValueError):
        container_of(parse_proc_cgroup(text))
    container_from_path(text)
    value = CgroupNamesValue()
    for i, name in enumerate(names):
        value.names[i].value = name.replace(b"\0", b"")
    container_from_path(path_of(value))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
