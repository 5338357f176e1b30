"""atheris target: the configuration loader (exporter/config.py).

Any bytes as the configuration file, and any lines as --config.set items and NETOBS_ variables: a
Config, or a ConfigError whose message is one line; nothing else."""

import copy
import functools
import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["exporter"]):  # our code; not PyYAML's
    from exporter import config
    from exporter.config import ConfigError, load_config

# the defaults parsed once, not at every input (a copy each time: the loader may keep what it is given)
_defaults = functools.cache(config.default_document)
config.default_document = lambda: copy.deepcopy(_defaults())  # type: ignore[assignment]

FILE = os.path.join(tempfile.mkdtemp(prefix="fuzz-config-"), "config.yaml")


def one_line(call) -> None:  # type: ignore[no-untyped-def]
    try:
        call()
    except ConfigError as err:
        assert "\n" not in str(err), str(err)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    items = [fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 60)) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    variable = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    document = fdp.ConsumeBytes(fdp.remaining_bytes())
    with open(FILE, "wb") as f:
        f.write(document)
    one_line(lambda: load_config(FILE, {}, []))
    one_line(lambda: load_config(None, {}, items))
    name, _, value = variable.partition("=")
    one_line(lambda: load_config(None, {f"NETOBS_{name}": value}, []))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
