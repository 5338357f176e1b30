"""OTLP over gRPC: one channel, kept open between pushes; the request is sent as the bytes we
serialized (no generated stub)."""

from __future__ import annotations

import grpc

from exporter.telemetry.otlp_replies import USER_AGENT, AttemptFailed, one_line, partial_success, retry_info_delay
from exporter.telemetry.otlp_settings import OtlpSettings

GRPC_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
GRPC_RETRYABLE = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
                            grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS})


class GrpcTransport:
    def __init__(self, settings: OtlpSettings) -> None:
        options = [("grpc.primary_user_agent", USER_AGENT),
                   # grpc waits up to 2 minutes between reconnections by default, longer than our retries
                   ("grpc.initial_reconnect_backoff_ms", 1000), ("grpc.max_reconnect_backoff_ms", 5000)]
        compression = grpc.Compression.Gzip if settings.compression == "gzip" else grpc.Compression.NoCompression
        if settings.insecure:
            self._channel = grpc.insecure_channel(settings.endpoint, options, compression)
        else:
            credentials = grpc.ssl_channel_credentials(_read(settings.certificate_file),
                                                       _read(settings.client_key_file),
                                                       _read(settings.client_certificate_file))
            self._channel = grpc.secure_channel(settings.endpoint, credentials, options, compression)
        self._export = self._channel.unary_unary(GRPC_METHOD, request_serializer=None, response_deserializer=None)
        self._metadata = tuple((key, value.encode() if key.endswith("-bin") else value)
                               for key, value in settings.headers)

    def export(self, request: bytes, timeout: float) -> tuple[int, str]:
        try:
            response = self._export(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            reason = f"gRPC {code.name}: {one_line(details or '')}".rstrip(": ")
            trailing = error.trailing_metadata() if isinstance(error, grpc.Call) else None
            delay = retry_info_delay(trailing or ())
            if code in GRPC_RETRYABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None):
                raise AttemptFailed(reason, retryable=True, delay=delay) from None
            raise AttemptFailed(reason, retryable=False) from None
        return partial_success(response or b"")

    def close(self) -> None:
        self._channel.close()


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()
