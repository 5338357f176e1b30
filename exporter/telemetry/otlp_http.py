"""OTLP/HTTP with protobuf bodies: one requests session, kept open between pushes."""

from __future__ import annotations

import gzip

import requests

from exporter.telemetry.otlp_replies import (
    REASON_MAX,
    USER_AGENT,
    AttemptFailed,
    one_line,
    partial_success,
    retry_after,
)
from exporter.telemetry.otlp_settings import OtlpSettings

HTTP_RETRYABLE = frozenset({429, 502, 503, 504})


class HttpTransport:
    def __init__(self, settings: OtlpSettings) -> None:
        self._url = settings.endpoint
        self._gzip = settings.compression == "gzip"
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers.update(dict(settings.headers))
        self._session.headers["Content-Type"] = "application/x-protobuf"
        if self._gzip:
            self._session.headers["Content-Encoding"] = "gzip"
        self._verify: str | bool = settings.certificate_file or True
        cert, key = settings.client_certificate_file, settings.client_key_file
        self._cert: tuple[str, str] | str | None = (cert, key) if cert and key else cert

    def export(self, request: bytes, timeout: float) -> tuple[int, str]:
        body = gzip.compress(request, compresslevel=6) if self._gzip else request
        try:
            response = self._session.post(self._url, data=body, timeout=timeout, verify=self._verify,
                                          cert=self._cert, allow_redirects=False)
        except requests.exceptions.SSLError as err:
            raise AttemptFailed(f"TLS error: {one_line(str(err))}", retryable=False) from None
        except requests.exceptions.Timeout:
            raise AttemptFailed(f"no answer within {timeout:.3g} s", retryable=True) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as err:
            raise AttemptFailed(f"connection failed: {one_line(str(err))}", retryable=True) from None
        except requests.exceptions.RequestException as err:
            raise AttemptFailed(f"request failed: {one_line(str(err))}", retryable=False) from None
        if 200 <= response.status_code < 300:
            return partial_success(response.content)
        reason = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
        excerpt = one_line(response.content[:4 * REASON_MAX].decode("utf-8", "replace"))
        if excerpt:
            reason += f": {excerpt}"
        if response.status_code in HTTP_RETRYABLE:
            raise AttemptFailed(reason, retryable=True, delay=retry_after(response.headers.get("Retry-After")))
        raise AttemptFailed(reason, retryable=False)

    def close(self) -> None:
        self._session.close()
