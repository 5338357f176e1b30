"""OTLP metric transport: settings from configuration and OTEL_EXPORTER_OTLP_*, and sends over HTTP and gRPC
to servers on 127.0.0.1 (the test receivers, and scripted ones for errors, retries and silence)."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from exporter.telemetry import otlp_transport
from exporter.telemetry.otlp_replies import partial_success, retry_after, retry_info_delay
from exporter.telemetry.otlp_settings import OtlpSettings, metrics_settings
from exporter.telemetry.otlp_transport import OtlpError, OtlpMetricsClient, backoff_delay
from tests.kernel.otlp_receiver import GrpcReceiver, HttpReceiver

SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"


@pytest.fixture(autouse=True)
def _fast_backoff_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_transport, "FIRST_BACKOFF", 0.05)
    for name in ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def request(points: int = 1, name: str = "netflow.bytes") -> ExportMetricsServiceRequest:
    metric = Metric(name=name, unit="By", gauge=Gauge(data_points=[
        NumberDataPoint(as_int=i, time_unix_nano=1_700_000_000_000_000_000,
                        attributes=[KeyValue(key="destination.port", value=AnyValue(string_value=str(i)))])
        for i in range(points)]))
    resource = Resource(attributes=[KeyValue(key="host.name", value=AnyValue(string_value="node-1"))])
    return ExportMetricsServiceRequest(resource_metrics=[
        ResourceMetrics(resource=resource, scope_metrics=[ScopeMetrics(metrics=[metric])])])


def settings(endpoint: str, protocol: str = "http/protobuf", **changes: Any) -> OtlpSettings:
    base = OtlpSettings(endpoint=endpoint, protocol=protocol, insecure=True, headers=(), timeout=2.0,
                        compression="none", certificate_file=None, client_key_file=None,
                        client_certificate_file=None)
    return dataclasses.replace(base, **changes)


@contextmanager
def client(s: OtlpSettings) -> Iterator[OtlpMetricsClient]:
    c = OtlpMetricsClient(s)
    try:
        yield c
    finally:
        c.close()


def raises_at_once(c: OtlpMetricsClient, body: bytes, within: float) -> str:
    began = time.monotonic()
    with pytest.raises(OtlpError) as caught:
        c.send(body)
    assert time.monotonic() - began < within
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- servers -----------------------------------------------------------------------------------

class ScriptedHttp:
    """Answers POSTs with the scripted (status, headers, body) replies, the last one forever; keeps each request."""

    def __init__(self, *replies: tuple[int, dict[str, str], bytes], tls: ssl.SSLContext | None = None) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, headers, reply = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}/v1/metrics"
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def __enter__(self) -> ScriptedHttp:
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


OK = (200, {"Content-Type": "application/x-protobuf"}, ExportMetricsServiceResponse().SerializeToString())


class ScriptedGrpc:
    """MetricsService/Export over raw bytes: each outcome is None (OK) or (code, trailing metadata), the last one
    forever; keeps each call's metadata and request bytes."""

    def __init__(self, *outcomes: tuple[grpc.StatusCode, tuple[tuple[str, bytes], ...]] | None,
                 response: bytes = b"") -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[dict[str, Any], bytes]] = []

        def export(body: bytes, context: grpc.ServicerContext) -> bytes:
            self.calls.append((dict(context.invocation_metadata()), body))
            outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
            if outcome is None:
                return response
            code, trailing = outcome
            if trailing:
                context.set_trailing_metadata(trailing)
            context.abort(code, f"scripted {code.name}")
            raise AssertionError("abort returned")

        handler = grpc.method_handlers_generic_handler(SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)})
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
        self.endpoint = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def __enter__(self) -> ScriptedGrpc:
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop(grace=None)


@contextmanager
def silent_port() -> Iterator[int]:
    """A port whose connections are accepted by the kernel and never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        yield listener.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CountingRelay:
    """Relays TCP connections to `port`, counting the bytes sent towards it."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.upstream = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(down, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream:
                    self.upstream += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                s.close()

    def close(self) -> None:
        self._listener.close()


# --- settings ----------------------------------------------------------------------------------

def test_no_endpoint_anywhere_means_no_push() -> None:
    assert metrics_settings(None, None, {}) is None
    assert metrics_settings("", "grpc", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}) \
        is None


@pytest.mark.parametrize(("config", "environ", "expected"), [
    ("http://config:4318", {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:1/x",
                            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:2"}, "http://config:4318/v1/metrics"),
    (None, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:1/x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:2"},
     "http://m:1/x"),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:2"}, "http://g:2/v1/metrics"),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:2/"}, "http://g:2/v1/metrics"),
    ("", {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://g/otlp/"}, "https://g/otlp/v1/metrics"),
    ("http://config:4318/", {}, "http://config:4318/v1/metrics"),
    (None, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:4318"}, "http://m:4318"),  # the signal URL as is
    (None, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:2"},
     "http://g:2/v1/metrics"),  # empty is unset
])
def test_http_endpoint_precedence_and_signal_path(config: str | None, environ: dict[str, str], expected: str) -> None:
    s = metrics_settings(config, None, environ)
    assert s is not None and s.protocol == "http/protobuf" and s.endpoint == expected


@pytest.mark.parametrize(("config", "environ", "expected"), [
    (None, {}, "http/protobuf"),
    (None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
    (None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, "grpc"),
    ("http/protobuf", {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
     "http/protobuf"),
    ("grpc", {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"}, "grpc"),
])
def test_protocol_precedence(config: str | None, environ: dict[str, str], expected: str) -> None:
    s = metrics_settings("http://collector:4317", config, environ)
    assert s is not None and s.protocol == expected


@pytest.mark.parametrize(("config", "environ", "variable"), [
    (None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    (None, {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
    ("http/json", {}, "Telemetry.OtlpProtocol"),
])
def test_unsupported_protocol_is_an_error_naming_the_variable(config: str | None, environ: dict[str, str],
                                                             variable: str) -> None:
    with pytest.raises(ValueError, match=variable) as caught:
        metrics_settings("http://collector:4318", config, environ)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("url", "environ", "target", "insecure"), [
    ("https://collector:4317", {"OTEL_EXPORTER_OTLP_INSECURE": "true"}, "collector:4317", False),
    ("http://collector:4317", {}, "collector:4317", True),
    ("http://collector", {}, "collector:80", True),  # the URL's default port
    ("https://collector/", {}, "collector:443", False),
    ("http://[::1]:4317", {}, "[::1]:4317", True),
    ("collector:4317", {}, "collector:4317", False),
    ("collector:4317", {"OTEL_EXPORTER_OTLP_INSECURE": "TRUE"}, "collector:4317", True),
    ("collector:4317", {"OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_EXPORTER_OTLP_METRICS_INSECURE": "false"},
     "collector:4317", False),
    ("collector:4317", {"OTEL_EXPORTER_OTLP_METRICS_INSECURE": "true"}, "collector:4317", True),
])
def test_grpc_scheme_decides_security(url: str, environ: dict[str, str], target: str, insecure: bool) -> None:
    s = metrics_settings(url, "grpc", environ)
    assert s is not None and (s.endpoint, s.insecure) == (target, insecure)


def test_grpc_endpoint_from_environment_gets_no_signal_path() -> None:
    s = metrics_settings(None, None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                                      "OTEL_EXPORTER_OTLP_ENDPOINT": "http://g:4317"})
    assert s is not None and s.endpoint == "g:4317"


@pytest.mark.parametrize(("url", "protocol"), [("collector:4318", "http/protobuf"), ("ftp://c:1", "grpc"),
                                               ("http://c:port", "http/protobuf")])
def test_unusable_endpoint_is_an_error(url: str, protocol: str) -> None:
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        metrics_settings(None, protocol, {"OTEL_EXPORTER_OTLP_ENDPOINT": url})


def test_headers_are_percent_decoded_lower_cased_and_malformed_ones_skipped() -> None:
    environ = {"OTEL_EXPORTER_OTLP_HEADERS": "Api-Key=s%3Dcr%2Ct, x-tenant = a b ,broken,=novalue,bad key=1,ok=",
               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    s = metrics_settings(None, None, environ)
    assert s is not None and s.headers == (("api-key", "s=cr,t"), ("x-tenant", "a b"), ("ok", ""))
    environ["OTEL_EXPORTER_OTLP_METRICS_HEADERS"] = "only=metrics"
    s = metrics_settings(None, None, environ)
    assert s is not None and s.headers == (("only", "metrics"),)


@pytest.mark.parametrize(("environ", "seconds"), [
    ({}, 10.0),
    ({"OTEL_EXPORTER_OTLP_TIMEOUT": "500"}, 0.5),
    ({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500.5"}, 2.5005),
    ({"OTEL_EXPORTER_OTLP_TIMEOUT": "500", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "30000"}, 30.0),
])
def test_timeout_is_in_milliseconds(environ: dict[str, str], seconds: float) -> None:
    s = metrics_settings("http://c:4318", None, environ)
    assert s is not None and s.timeout == pytest.approx(seconds)


@pytest.mark.parametrize(("key", "value"), [("TIMEOUT", "ten"), ("TIMEOUT", "0"), ("TIMEOUT", "-5"),
                                            ("COMPRESSION", "zstd")])
def test_bad_timeout_or_compression_is_an_error_naming_the_variable(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"OTEL_EXPORTER_OTLP_METRICS_{key}"):
        metrics_settings("http://c:4318", None, {f"OTEL_EXPORTER_OTLP_METRICS_{key}": value})


def test_compression_and_tls_files(tmp_path: Any) -> None:
    ca, key, cert = (tmp_path / name for name in ("ca.pem", "key.pem", "cert.pem"))
    for path in (ca, key, cert):
        path.write_text("x")
    environ = {"OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "",
               "OTEL_EXPORTER_OTLP_CERTIFICATE": str(ca), "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY": str(key),
               "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(cert)}
    s = metrics_settings("https://c:4318", None, environ)
    assert s is not None and s.compression == "gzip"
    assert (s.certificate_file, s.client_key_file, s.client_certificate_file) == (str(ca), str(key), str(cert))
    assert (s := metrics_settings("http://c:4318", None, {})) is not None and s.compression == "none"


def test_unreadable_tls_file_is_an_error_only_when_tls_is_used(tmp_path: Any) -> None:
    environ = {"OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE": str(tmp_path / "missing.pem")}
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE"):
        metrics_settings("https://c:4318", None, environ)
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE"):
        metrics_settings("c:4317", "grpc", environ)
    assert metrics_settings("http://c:4318", None, environ) is not None
    assert metrics_settings("http://c:4317", "grpc", environ) is not None


# --- HTTP --------------------------------------------------------------------------------------

def test_http_receiver_decodes_exactly_what_was_sent() -> None:
    sent = request(points=3)
    with HttpReceiver() as receiver:
        s = metrics_settings(receiver.endpoint, None, {})
        assert s is not None
        with client(s) as c:
            c.send(sent.SerializeToString())
            c.send(request(name="dns.lookups").SerializeToString())  # the same session, kept open
        assert receiver.requests == [sent, request(name="dns.lookups")]


def test_http_headers_user_agent_and_gzip() -> None:
    body = request(points=200).SerializeToString()
    with ScriptedHttp(OK) as server, client(settings(server.url, headers=(("x-api-key", "s=cr,t"),),
                                                     compression="gzip")) as c:
        c.send(body)
        path, headers, received = server.requests[0]
    assert path == "/v1/metrics"
    assert headers["x-api-key"] == "s=cr,t"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["user-agent"].startswith("netobs-exporter/")
    assert headers["content-encoding"] == "gzip" and len(received) < len(body)
    assert gzip.decompress(received) == body


def test_http_retries_503_then_succeeds() -> None:
    body = request().SerializeToString()
    with ScriptedHttp((503, {}, b"busy"), (502, {}, b""), OK) as server, client(settings(server.url)) as c:
        c.send(body)
        assert [r[2] for r in server.requests] == [body, body, body]


def test_http_400_fails_at_once_with_one_line() -> None:
    with ScriptedHttp((400, {}, b"bad\nrequest: unknown field\n" + b"x" * 5000)) as server, \
            client(settings(server.url, timeout=5)) as c:
        message = raises_at_once(c, b"\x00", within=1)
        assert len(server.requests) == 1
    assert server.url in message and "HTTP 400" in message and "bad request: unknown field" in message
    assert len(message) < 400


def test_http_429_honours_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_transport, "FIRST_BACKOFF", 30.0)  # only Retry-After can make the retry quick
    with ScriptedHttp((429, {"Retry-After": "0"}, b""), OK) as server, client(settings(server.url, timeout=5)) as c:
        began = time.monotonic()
        c.send(b"")
        assert time.monotonic() - began < 1 and len(server.requests) == 2
    with ScriptedHttp((429, {"Retry-After": "30"}, b"slow down")) as server, \
            client(settings(server.url, timeout=2)) as c:
        message = raises_at_once(c, b"", within=1)  # waiting 30 s would pass the timeout: give up now
        assert len(server.requests) == 1 and "HTTP 429" in message and "gave up after 1 attempt," in message


def test_http_timeout_bounds_a_send_to_a_server_that_never_answers() -> None:
    with silent_port() as port, client(settings(f"http://127.0.0.1:{port}/v1/metrics", timeout=0.4)) as c:
        message = raises_at_once(c, request().SerializeToString(), within=1.5)
    assert "no answer" in message


def test_http_timeout_bounds_a_send_to_a_closed_port() -> None:
    with client(settings(f"http://127.0.0.1:{closed_port()}/v1/metrics", timeout=0.4)) as c:
        message = raises_at_once(c, b"", within=1.5)
    assert "connection failed" in message and "gave up after" in message


def test_backoff_never_goes_past_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_transport, "FIRST_BACKOFF", 0.2)
    with ScriptedHttp((503, {}, b"")) as server, client(settings(server.url, timeout=1.0)) as c:
        began = time.monotonic()
        with pytest.raises(OtlpError, match="HTTP 503"):
            c.send(b"")
        assert time.monotonic() - began < 1.0
        assert 2 <= len(server.requests) <= 3  # 0.2 s, 0.4 s, then 0.8 s would pass the second left


def test_backoff_doubles_with_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_transport, "FIRST_BACKOFF", 1.0)
    for retry in range(5):
        delays = [backoff_delay(retry) for _ in range(200)]
        assert all(0.8 * 2**retry <= d <= 1.2 * 2**retry for d in delays)
        assert max(delays) - min(delays) > 0.1 * 2**retry  # jittered


def test_close_interrupts_a_backoff_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_transport, "FIRST_BACKOFF", 5.0)
    errors: list[OtlpError] = []

    def send(c: OtlpMetricsClient) -> None:
        try:
            c.send(b"")
        except OtlpError as e:
            errors.append(e)

    with ScriptedHttp((503, {}, b"")) as server:
        c = OtlpMetricsClient(settings(server.url, timeout=30))
        sender = threading.Thread(target=send, args=(c,))
        sender.start()
        deadline = time.monotonic() + 2
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        began = time.monotonic()
        c.close()
        sender.join(2)
        assert not sender.is_alive() and time.monotonic() - began < 1
    assert len(errors) == 1 and "closed" in str(errors[0])
    with pytest.raises(OtlpError, match="closed"):
        c.send(b"")


def test_http_partial_success_is_logged_once_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    response = ExportMetricsServiceResponse(partial_success=ExportMetricsPartialSuccess(
        rejected_data_points=3, error_message="bad unit")).SerializeToString()
    with ScriptedHttp((200, {"Content-Type": "application/x-protobuf"}, response)) as server, \
            client(settings(server.url)) as c, caplog.at_level("DEBUG", logger=otlp_transport.__name__):
        c.send(b"")
        c.send(b"")
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "rejected 3 data points: bad unit" in warnings[0].getMessage()


# --- gRPC --------------------------------------------------------------------------------------

def test_grpc_receiver_decodes_exactly_what_was_sent() -> None:
    sent = request(points=3)
    with GrpcReceiver() as receiver:
        s = metrics_settings(receiver.endpoint, "grpc", {})
        assert s is not None and s.insecure
        with client(s) as c:
            c.send(sent.SerializeToString())
            c.send(request(name="dns.lookups").SerializeToString())
        assert receiver.requests == [sent, request(name="dns.lookups")]


def test_grpc_metadata_and_user_agent() -> None:
    body = request().SerializeToString()
    with ScriptedGrpc(None) as server, client(settings(server.endpoint, "grpc",
                                                       headers=(("x-api-key", "s=cr,t"),))) as c:
        c.send(body)
        metadata, received = server.calls[0]
    assert received == body
    assert metadata["x-api-key"] == "s=cr,t" and metadata["user-agent"].startswith("netobs-exporter/")


def test_grpc_gzip_compresses_the_request() -> None:
    body = request(points=5000).SerializeToString()  # repetitive, so it compresses well
    upstream = {}
    with ScriptedGrpc(None) as server:
        for compression in ("none", "gzip"):
            relay = CountingRelay(int(server.endpoint.rpartition(":")[2]))
            with client(settings(f"127.0.0.1:{relay.port}", "grpc", compression=compression)) as c:
                c.send(body)
            upstream[compression] = relay.upstream
            relay.close()
        assert [call[1] for call in server.calls] == [body, body]
    assert upstream["none"] > len(body) > 5 * upstream["gzip"]


def test_grpc_retries_unavailable_then_succeeds() -> None:
    with ScriptedGrpc((grpc.StatusCode.UNAVAILABLE, ()), (grpc.StatusCode.ABORTED, ()), None) as server, \
            client(settings(server.endpoint, "grpc")) as c:
        c.send(b"\x0a\x00")
        assert len(server.calls) == 3


def test_grpc_invalid_argument_fails_at_once() -> None:
    with ScriptedGrpc((grpc.StatusCode.INVALID_ARGUMENT, ())) as server, \
            client(settings(server.endpoint, "grpc", timeout=5)) as c:
        message = raises_at_once(c, b"", within=1)
        assert len(server.calls) == 1
    assert server.endpoint in message and "INVALID_ARGUMENT" in message and "scripted" in message


def retry_info(seconds: float) -> bytes:
    return RetryInfo(retry_delay=Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))).SerializeToString()


def status_with_retry_info(seconds: float) -> bytes:
    status = Status(code=8, message="full")
    status.details.add().Pack(RetryInfo(retry_delay=Duration(nanos=int(seconds * 1e9))))
    return status.SerializeToString()


def test_grpc_resource_exhausted_fails_at_once_without_retry_info() -> None:
    with ScriptedGrpc((grpc.StatusCode.RESOURCE_EXHAUSTED, ())) as server, \
            client(settings(server.endpoint, "grpc", timeout=5)) as c:
        assert "RESOURCE_EXHAUSTED" in raises_at_once(c, b"", within=1)
        assert len(server.calls) == 1


@pytest.mark.parametrize("trailing", [(("google.rpc.retryinfo-bin", retry_info(0.01)),),
                                      (("grpc-status-details-bin", status_with_retry_info(0.01)),)])
def test_grpc_resource_exhausted_is_retried_after_the_retry_info_delay(
        trailing: tuple[tuple[str, bytes], ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_transport, "FIRST_BACKOFF", 30.0)  # only RetryInfo can make the retry quick
    with ScriptedGrpc((grpc.StatusCode.RESOURCE_EXHAUSTED, trailing), None) as server, \
            client(settings(server.endpoint, "grpc", timeout=5)) as c:
        began = time.monotonic()
        c.send(b"")
        assert time.monotonic() - began < 1 and len(server.calls) == 2


def test_grpc_timeout_bounds_a_send_to_a_server_that_never_answers() -> None:
    with silent_port() as port, client(settings(f"127.0.0.1:{port}", "grpc", timeout=0.4)) as c:
        message = raises_at_once(c, b"", within=1.5)
    assert "DEADLINE_EXCEEDED" in message


def test_grpc_timeout_bounds_a_send_to_a_closed_port() -> None:
    with client(settings(f"127.0.0.1:{closed_port()}", "grpc", timeout=0.4)) as c:
        assert "UNAVAILABLE" in raises_at_once(c, b"", within=1.5)


def test_grpc_partial_success_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    response = ExportMetricsServiceResponse(partial_success=ExportMetricsPartialSuccess(
        rejected_data_points=2)).SerializeToString()
    with ScriptedGrpc(None, response=response) as server, client(settings(server.endpoint, "grpc")) as c, \
            caplog.at_level("WARNING", logger=otlp_transport.__name__):
        c.send(b"")
    assert [r.getMessage() for r in caplog.records if "rejected 2 data points" in r.getMessage()]


# --- the few messages decoded by hand ----------------------------------------------------------

def test_partial_success_decoding() -> None:
    def encoded(rejected: int, message: str) -> bytes:
        return ExportMetricsServiceResponse(partial_success=ExportMetricsPartialSuccess(
            rejected_data_points=rejected, error_message=message)).SerializeToString()

    assert partial_success(encoded(7, "too old")) == (7, "too old")
    assert partial_success(encoded(2**40, "")) == (2**40, "")
    assert partial_success(encoded(-1, "")) == (-1, "")
    assert partial_success(b"") == (0, "")
    assert partial_success(b"\x0a\x05\x08") == (0, "")  # truncated
    assert partial_success(b"\xff" * 12) == (0, "")


def test_retry_info_decoding() -> None:
    assert retry_info_delay([("google.rpc.retryinfo-bin", retry_info(2.5))]) == pytest.approx(2.5)
    assert retry_info_delay([("other", b"x"), ("grpc-status-details-bin", status_with_retry_info(0.25))]) \
        == pytest.approx(0.25)
    status = Status(code=8)
    status.details.add().Pack(Status(code=1))  # some other detail
    assert retry_info_delay([("grpc-status-details-bin", status.SerializeToString())]) is None
    assert retry_info_delay([("google.rpc.retryinfo-bin", b"\x0a\x05")]) is None  # truncated
    assert retry_info_delay([]) is None


def test_retry_after_values() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("1.5") == 1.5
    assert retry_after("-4") == 0.0
    assert retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


# --- TLS ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(cert, key) files of a self-signed certificate for 127.0.0.1, used as the CA too."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def test_https_verifies_with_the_configured_ca_and_sends_the_client_certificate(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cert)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED  # mTLS: the client must show a certificate signed by `cert`
    with ScriptedHttp(OK, tls=context) as server:
        url = server.url
        with client(settings(url, certificate_file=cert, client_certificate_file=cert, client_key_file=key)) as c:
            c.send(b"\x0a\x00")
        assert len(server.requests) == 1
        with client(settings(url, timeout=5)) as c:  # the system CAs do not know this certificate
            assert "TLS error" in raises_at_once(c, b"", within=2)


def test_grpc_tls_with_the_configured_ca_and_client_certificate(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    with open(cert, "rb") as f:
        cert_pem = f.read()
    with open(key, "rb") as f:
        key_pem = f.read()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[grpc.method_handlers_generic_handler(
        SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(lambda body, context: b"")})])
    credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=cert_pem,
                                              require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        s = metrics_settings(f"https://127.0.0.1:{port}", "grpc", {
            "OTEL_EXPORTER_OTLP_CERTIFICATE": cert, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cert,
            "OTEL_EXPORTER_OTLP_CLIENT_KEY": key, "OTEL_EXPORTER_OTLP_TIMEOUT": "3000"})
        assert s is not None and not s.insecure
        with client(s) as c:
            c.send(b"\x0a\x00")
    finally:
        server.stop(grace=None)
