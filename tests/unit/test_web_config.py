"""--web.config.file on a real listener: TLS, client certificates, basic authentication, headers, a file
changed under a running server, and mistakes as one line with exit status 2. Certificates are made by
openssl for each test session; everything talks to 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from exporter import cli
from exporter.telemetry import web, web_config
from tests.tools import require


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    openssl = require("openssl", "openssl")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.crt")
    for name in ("server", "client"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                                       "extendedKeyUsage=clientAuth\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


def hashed(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def write_config(path: Path, pki: Pki | None = None, users: dict[str, str] | None = None,
                 client_auth: str = "") -> Path:
    lines = []
    if pki is not None:
        lines += ["tls_server_config:", f"  cert_file: {pki.server_cert}", f"  key_file: {pki.server_key}"]
        if client_auth:
            lines += [f"  client_auth_type: {client_auth}", f"  client_ca_file: {pki.ca}"]
    if users:
        lines += ["basic_auth_users:"] + [f"  {u}: {hashed(p)}" for u, p in users.items()]
    lines += ["http_server_config:", "  headers:", "    X-Frame-Options: deny"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[web.Server] = []

    def start(config_file: Path) -> int:
        server = web.bind("127.0.0.1:0", str(config_file))
        web.serve(server, "127.0.0.1:0", "/metrics", lambda accept, encoding: (b"up 1\n", "text/plain", False))
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get(port: int, *, tls: ssl.SSLContext | None = None, user: str = "", password: str = "",
        ) -> http.client.HTTPResponse:
    conn: http.client.HTTPConnection = (http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=5)
                                        if tls else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
    headers = {}
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    conn.request("GET", "/metrics", headers=headers)
    response = conn.getresponse()
    response.read()
    return response


def client_context(pki: Pki, with_certificate: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if with_certificate:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


def test_https_with_the_right_password_and_not_without(pki: Pki, serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = serve(write_config(tmp_path / "web.yml", pki, {"prometheus": "s3cret"}))
    tls = client_context(pki)
    ok = get(port, tls=tls, user="prometheus", password="s3cret")
    assert ok.status == 200 and ok.getheader("X-Frame-Options") == "deny"
    assert get(port, tls=tls, user="prometheus", password="wrong").status == 401
    assert get(port, tls=tls, user="someone", password="s3cret").status == 401
    refused = get(port, tls=tls)
    assert refused.status == 401 and refused.getheader("WWW-Authenticate") == 'Basic realm="netobs-exporter"'
    assert get(port, tls=tls, user="prometheus", password="s3cret").status == 200  # remembered: no bcrypt again


def test_plain_http_to_a_tls_listener_is_refused(pki: Pki, serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = serve(write_config(tmp_path / "web.yml", pki))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine)):
        get(port)
    assert get(port, tls=client_context(pki)).status == 200


def test_a_client_certificate_when_the_file_requires_one(pki: Pki, serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = serve(write_config(tmp_path / "web.yml", pki, client_auth="RequireAndVerifyClientCert"))
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        get(port, tls=client_context(pki))
    assert get(port, tls=client_context(pki, with_certificate=True)).status == 200


def test_a_changed_password_takes_effect_without_a_restart(serve, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_config, "RECHECK_S", 0.0)
    path = write_config(tmp_path / "web.yml", users={"prometheus": "old"})
    port = serve(path)
    assert get(port, user="prometheus", password="old").status == 200
    write_config(path, users={"prometheus": "new"})
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new mtime even within the same second
    assert get(port, user="prometheus", password="new").status == 200
    assert get(port, user="prometheus", password="old").status == 401


@pytest.mark.parametrize(("text", "message"), [
    ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
     "web config: tls_server_config.cert_file/key_file: cannot load: No such file or directory"),
    ("tls_server_config:\n  cert_file: a.crt\n",
     "web config: tls_server_config: cert_file and key_file are both needed"),
    ("basic_auth_users:\n  prometheus: plain-text\n",
     "web config: basic_auth_users.prometheus: expected a bcrypt hash ($2b$...), got 'plain-text...'"),
    ("tls_config:\n  cert_file: a\n",
     "web config: tls_config: unknown key (known: tls_server_config, http_server_config, basic_auth_users)"),
    ("http_server_config:\n  headers:\n    Server: me\n",
     "web config: http_server_config.headers.Server: not one of Strict-Transport-Security, X-Content-Type-Options, "
     "X-Frame-Options, X-XSS-Protection, Content-Security-Policy"),
    ("- a\n", "web config: {path}: expected a map, got ['a']"),
])
def test_a_bad_file_is_one_line_and_exit_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                                  message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    assert cli.main(["--web.config.file", str(path), "--web.listen-address", "127.0.0.1:1"], {}) == 2
    err = capsys.readouterr().err
    assert err == message.format(path=path) + "\n"


def test_without_a_file_nothing_changes(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = web.bind("127.0.0.1:0")
    assert server.web_config is None
    server.server_close()
    with socket.create_connection(("127.0.0.1", serve(write_config(tmp_path / "w.yml"))), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
