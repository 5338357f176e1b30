"""What a Grafana panel's query becomes before it reaches Prometheus: its variables replaced by
values that select everything (or the given ones); and PromQL's own parser, run under Node."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

SHIP = Path(__file__).resolve().parent

# The dashboard "All" values and Grafana's built-in interval variables.
DEFAULTS = {
    "__rate_interval": "1m", "__interval": "15s", "__range": "1h",
    "datasource": "prometheus", "job": ".*", "cluster": ".*", "namespace": ".*", "workload_kind": "deployment",
    "workload": ".*", "pod": ".*", "instance": ".*", "direction": "outgoing", "db_system": ".*",
}


def substitute(expr: str, values: Mapping[str, str] | None = None) -> str:
    """`$name` and `${name}` replaced; an unknown variable is an error (a typo in a dashboard). `$1`, a
    label_replace's group, is no variable: Grafana leaves it, as it leaves every name it does not know."""
    known = {**DEFAULTS, **(values or {})}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in known:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return known[name]

    return re.sub(r"\$\{(\w+)\}|\$([A-Za-z_]\w*)", value, expr)


def parse_errors(expressions: list[str]) -> list[str | None]:
    """For each expression, None if it parses, else where it does not."""
    done = subprocess.run(["node", str(SHIP / "promql_parse.mjs")], input=json.dumps(expressions),
                          capture_output=True, text=True, cwd=SHIP, check=True)
    return list(json.loads(done.stdout))
