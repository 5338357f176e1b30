"""What an OTLP endpoint answers, read without generated code (the messages are few and small):
the partial success of an export, HTTP's Retry-After, gRPC's RetryInfo; and how a transport says
that one attempt failed."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

from exporter import __version__

USER_AGENT = f"netobs-exporter/{__version__}"
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
REASON_MAX = 200  # characters of a server's message kept in an OtlpError


class AttemptFailed(Exception):
    def __init__(self, reason: str, retryable: bool, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.delay = delay  # seconds the server asked us to wait, when it did


def one_line(text: str, limit: int = REASON_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, IndexError):
        return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 70:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise ValueError("varint too long")


def protobuf_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each varint (int) and length-delimited (bytes) field; fixed-size ones skipped."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield key >> 3, value
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated field")
            yield key >> 3, data[pos:pos + size]
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def partial_success(response: bytes) -> tuple[int, str]:
    """ExportMetricsServiceResponse.partial_success: (rejected_data_points, error_message); (0, "") if unreadable."""
    rejected, message = 0, ""
    try:
        for number, value in protobuf_fields(response):
            if number == 1 and isinstance(value, bytes):
                for inner, field in protobuf_fields(value):
                    if inner == 1 and isinstance(field, int):
                        rejected = field - (1 << 64) if field >= 1 << 63 else field
                    elif inner == 2 and isinstance(field, bytes):
                        message = field.decode("utf-8", "replace")
    except ValueError:
        return 0, ""
    return rejected, message


def retry_info_delay(metadata: Sequence[Any]) -> float | None:
    """The delay of a google.rpc.RetryInfo in gRPC trailing metadata (on its own, or in grpc-status-details-bin)."""
    for key, value in metadata:
        if not isinstance(value, bytes):
            continue
        try:
            if key == "google.rpc.retryinfo-bin":
                return _retry_info(value)
            if key == "grpc-status-details-bin":
                for number, detail in protobuf_fields(value):  # google.rpc.Status: 3 = repeated Any details
                    if number == 3 and isinstance(detail, bytes):
                        packed = _length_delimited(detail)  # google.protobuf.Any: 1 = type_url, 2 = value
                        if packed.get(1) == RETRY_INFO_TYPE.encode():
                            return _retry_info(packed.get(2, b""))
        except ValueError:
            continue
    return None


def _length_delimited(data: bytes) -> dict[int, bytes]:
    return {number: value for number, value in protobuf_fields(data) if isinstance(value, bytes)}


def _retry_info(data: bytes) -> float:
    """RetryInfo.retry_delay (field 1, a google.protobuf.Duration: 1 = seconds, 2 = nanos) in seconds."""
    duration = {number: value for number, value in protobuf_fields(_length_delimited(data).get(1, b""))
                if isinstance(value, int)}
    seconds, nanos = duration.get(1, 0), duration.get(2, 0)
    if seconds >= 1 << 63 or nanos >= 1 << 31:  # negative: no sensible delay
        return 0.0
    return seconds + nanos / 1e9
