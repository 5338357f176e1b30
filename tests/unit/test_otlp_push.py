"""The metrics push while its endpoint is down: told once, told again when it lasts, told when it works
again; every failure counted; the first push that works sends the current values."""

from __future__ import annotations

import logging

import pytest

from exporter.telemetry import otlp_push
from exporter.telemetry.otlp_encode import Encoder
from exporter.telemetry.otlp_push import MetricPusher
from exporter.telemetry.otlp_transport import OtlpError
from tests.unit.series_fixture import RESOURCE, collection


class Endpoint:
    """A client whose endpoint is down until `up` is set."""

    def __init__(self) -> None:
        self.up = False
        self.received: list[bytes] = []

    def send(self, request: bytes) -> None:
        if not self.up:
            raise OtlpError("http://127.0.0.1:4318/v1/metrics: connection refused")
        self.received.append(request)

    def close(self) -> None:
        pass


def pusher(endpoint: Endpoint) -> MetricPusher:
    return MetricPusher(collection(), Encoder(RESOURCE), endpoint, "http://127.0.0.1:4318",  # type: ignore[arg-type]
                        environ={})


def told(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "exporter.telemetry.otlp_push"
            and r.levelno >= logging.INFO]


def test_an_outage_is_told_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Endpoint()
    p = pusher(endpoint)
    with caplog.at_level(logging.DEBUG, logger="exporter.telemetry.otlp_push"):
        assert not any(p.push() for _ in range(30))  # a minute of pushes every 2 s
        endpoint.up = True
        assert p.push()
    lines = told(caplog)
    assert len(lines) == 2 and lines[0].startswith("OTLP metrics push failing: ")
    assert lines[1] == "OTLP metrics push to http://127.0.0.1:4318 works again, after 30 failed pushes"
    assert p.outcomes == {"success": 1, "failure": 30}
    assert endpoint.received  # the current values, at once


def test_a_lasting_outage_is_told_again_with_its_count(caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_push, "REMIND_S", 0.0)
    p = pusher(Endpoint())
    with caplog.at_level(logging.INFO, logger="exporter.telemetry.otlp_push"):
        for _ in range(3):
            p.push()
    assert "3 pushes failed in a row" in told(caplog)[-1]
