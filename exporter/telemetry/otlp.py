"""Where and how OTLP data is sent, for every signal alike: the configuration's endpoint wins
over OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT and OTEL_EXPORTER_OTLP_ENDPOINT; the protocol
defaults to http/protobuf, as the OpenTelemetry specification says."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class OtlpTarget:
    endpoint: str | None  # to pass to the exporter; None lets it read OTEL_* itself
    protocol: str  # "grpc" or "http/protobuf"


def otlp_target(signal: str, endpoint: str | None, protocol: str | None) -> OtlpTarget | None:
    """None when no endpoint is configured anywhere. `signal`: "metrics" or "logs"."""
    env, upper = os.environ, signal.upper()
    if not (endpoint or env.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return None
    protocol = (protocol or env.get(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if endpoint and protocol != "grpc":  # OTLP/HTTP takes the full URL of the signal
        endpoint = endpoint.rstrip("/") + f"/v1/{signal}"
    return OtlpTarget(endpoint or None, protocol)
