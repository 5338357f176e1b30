"""The Bash section of the configuration: defaults, overrides and one-line mistakes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config


def test_defaults() -> None:
    bash = load_config(None, {}).bash
    assert (bash.enabled, bash.containers, bash.max_command_length, bash.queue_size) == (True, True, 4096, 2048)
    assert len(bash.redact) >= 7 and all(isinstance(p, re.Pattern) for p in bash.redact)


def test_a_redact_list_replaces_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "netobs.yaml"
    path.write_text("Bash:\n  Containers: false\n  Redact: ['sk-\\d+', '(?i)pin=(?P<secret>\\d+)']\n")
    bash = load_config(str(path), {}).bash
    assert bash.containers is False
    assert [p.pattern for p in bash.redact] == [r"sk-\d+", r"(?i)pin=(?P<secret>\d+)"]


def test_redact_from_the_environment_and_flags() -> None:
    assert load_config(None, {"NETOBS_BASH_REDACT": "[]"}).bash.redact == ()
    config = load_config(None, {}, ["Bash.Redact=['x+']", "Bash.MaxCommandLength=256", "Bash.Enabled=false"])
    assert [p.pattern for p in config.bash.redact] == ["x+"]
    assert (config.bash.max_command_length, config.bash.enabled) == (256, False)


@pytest.mark.parametrize("override,expected", [
    ("Bash.Redact=['ok', '(unclosed']",
     "config: Bash.Redact (from --config.set): invalid regular expression: "
     "missing ), unterminated subpattern at position 0 (at index 1)"),
    ("Bash.Redact=password",
     "config: Bash.Redact (from --config.set): expected a list of regular expressions, got 'password'"),
    ("Bash.Redact=['a', 3]",
     "config: Bash.Redact (from --config.set): expected a list of regular expressions, got 3 at index 1"),
    ("Bash.QueueSize=0",
     "config: Bash.QueueSize (from --config.set): expected a whole number from 1 to 4294967295, got 0"),
    ("Bash.MaxCommandLenght=10",
     "config: Bash.MaxCommandLenght (from --config.set): unknown key (did you mean MaxCommandLength?)"),
])
def test_mistakes_name_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {}, [override])
    assert str(caught.value) == expected
