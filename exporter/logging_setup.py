"""Our own log lines on stderr, as logfmt or JSON, one record per line, with Prometheus-style level names.

logfmt: ts=2024-05-01T12:00:00.123Z level=info logger=exporter.cli msg="configuration loaded" file=x.yaml
Fields passed with `extra={...}` follow msg; an exception becomes one escaped `err` field.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
FORMATS = ("logfmt", "json")

_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_BARE_VALUE = re.compile(r'[^\s"=\\]+')


def _level_name(levelno: int) -> str:
    """The name of the highest of our levels at or below `levelno` (critical logs as error)."""
    names = [name for name, number in LEVELS.items() if number <= levelno]
    return names[-1] if names else "debug"


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, object]:
    """ts, level, logger, msg, then the record's extra fields, then err if an exception is attached."""
    fields: dict[str, object] = {
        "ts": _timestamp(record.created),
        "level": _level_name(record.levelno),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for name, value in vars(record).items():
        if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
            fields[name] = value
    if record.exc_info:
        fields["err"] = formatter.formatException(record.exc_info)
    return fields


def _logfmt_value(value: object, always_quote: bool = False) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    if _BARE_VALUE.fullmatch(text) and not always_quote:
        return text
    return json.dumps(text, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record, self).items()
        return " ".join(
            f"{name}={_logfmt_value(value, always_quote=name == 'msg')}" for name, value in fields
        )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_fields(record, self), ensure_ascii=False, default=str)


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time, so replacing sys.stderr (as tests do) is safe."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def setup_logging(level: str = "info", log_format: str = "logfmt") -> None:
    """Sends every logger's records at `level` and above to stderr in `log_format`; idempotent."""
    handler = _StderrHandler()
    handler.setFormatter(LogfmtFormatter() if log_format == "logfmt" else JsonFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # pyroute2 logs every netlink message at debug: far too much even for --log.level=debug
    logging.getLogger("pyroute2").setLevel(logging.WARNING)
    logging.captureWarnings(True)
