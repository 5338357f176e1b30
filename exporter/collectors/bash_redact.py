"""Secrets out of a command line before it leaves the process (Bash.Redact)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

MASK = "***"
SECRET_GROUP = "secret"


def _masker(pattern: re.Pattern[str]) -> Callable[[re.Match[str]], str]:
    has_group = SECRET_GROUP in pattern.groupindex

    def mask(match: re.Match[str]) -> str:
        if not has_group or match.group(SECRET_GROUP) is None:
            return MASK
        start, end = match.span(SECRET_GROUP)
        text, base = match.group(0), match.start()
        return text[: start - base] + MASK + text[end - base :]

    return mask


def redact(line: str, patterns: Sequence[re.Pattern[str]]) -> str:
    """`line` with every secret replaced by ***: for each pattern, the text of its group named
    `secret`, or the whole match when it has no such group (or the group did not take part)."""
    for pattern in patterns:
        line = pattern.sub(_masker(pattern), line)
    return line
