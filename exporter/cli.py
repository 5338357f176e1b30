"""The netobs-exporter command: flags, logging, configuration, then run the exporter or check its programs.

Every mistake in the flags or the configuration is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

import exporter
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    DEFAULT_TELEMETRY_PATH,
    ConfigError,
    WebConfig,
    load_config,
)
from exporter.logging_setup import FORMATS, LEVELS, setup_logging
from exporter.telemetry.otlp_settings import metrics_settings

PROG = "netobs-exporter"
EXIT_USAGE = 2

log = logging.getLogger(__name__)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Reports a bad flag as one line instead of usage text plus an error."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Export network observations made with eBPF (flows, DNS, L7 protocols) as "
        "OpenTelemetry metrics. Configuration keys: docs/configuration.md.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        default=environ.get("NETOBS_CONFIG_FILE"),
        help="YAML configuration file (default $NETOBS_CONFIG_FILE; without one, the embedded defaults).",
    )
    parser.add_argument(
        "--config.set",
        dest="config_set",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        help="Override one configuration key, e.g. Common.FlushOutL4Interval=5 (value parsed as YAML); "
        "beats the file and NETOBS_* variables. Repeatable.",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="ADDRESS",
        default=DEFAULT_LISTEN_ADDRESS,
        help="Address of the metrics endpoint: host:port, [ipv6]:port or :port (default %(default)s; "
        "outside Prometheus's allocated exporter ports 9100-9999, which are all taken).",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        metavar="PATH",
        default=DEFAULT_TELEMETRY_PATH,
        help="Path under which metrics are served (default %(default)s).",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        default="",
        help="File in exporter-toolkit's format that turns on TLS and/or basic authentication "
        "on the metrics endpoint (docs/install.md); read again when it or its certificates change.",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="Load and attach every enabled eBPF program, print a table of programs and results, "
        "then exit 0 if all attached and 1 otherwise.",
    )
    parser.add_argument(
        "--log.level", dest="log_level", choices=list(LEVELS), default="info", help="Default %(default)s."
    )
    parser.add_argument(
        "--log.format", dest="log_format", choices=FORMATS, default="logfmt", help="Default %(default)s."
    )
    parser.add_argument("--version", action="store_true", help="Print the version and exit.")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Runs the exporter (or --check-config) and returns the exit status."""
    environ = os.environ if environ is None else environ
    try:
        args = build_parser(environ).parse_args(argv)
    except _UsageError as err:
        print(f"{PROG}: {err} (see --help)", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help printed its text
        return done.code if isinstance(done.code, int) else 0
    if args.version:
        print(f"{PROG} {exporter.__version__}")
        return 0

    setup_logging(args.log_level, args.log_format)
    try:
        web = WebConfig(listen_address=args.listen_address, telemetry_path=args.telemetry_path,
                        config_file=args.web_config_file)
        config = dataclasses.replace(load_config(args.config_file, environ, args.config_set), web=web)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return EXIT_USAGE
    try:  # the OTEL_EXPORTER_OTLP_* variables, checked as the configuration is
        metrics_settings(config.telemetry.otlp_endpoint or None, config.telemetry.otlp_protocol or None, environ)
    except ValueError as err:
        print(f"config: {err}", file=sys.stderr)
        return EXIT_USAGE
    log.debug("configuration loaded", extra={"file": args.config_file or "(embedded defaults only)"})

    try:
        if args.check_config:
            from exporter.app import check_config

            return check_config(config)
        from exporter.app import run

        return run(config)
    except KeyboardInterrupt:
        return 130
