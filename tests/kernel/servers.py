"""Real database and cache servers from Debian, started for a test module on 127.0.0.1 and a free
port, with their data in a temporary directory; stopped (and waited for) afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.kernel.harness import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{what} did not start: {err[-2000:]}") from None
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def redis_server(tmp: Path, *extra: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp), "--protected-mode", "no", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, "redis-server")
        yield port
    finally:
        _stop(proc)


@contextmanager
def memcached() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(["memcached", "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, "memcached")
        yield port
    finally:
        _stop(proc)


@contextmanager
def postgres(tmp: Path | None = None, tls: tuple[Path, Path] | None = None) -> Iterator[int]:
    """A PostgreSQL cluster owned by the `postgres` user, trusting local TCP connections; with `tls`
    (certificate, key), also over TLS."""
    port = free_port()
    # pytest's temporary directories are root's alone (0700): postgres gets one of its own
    tmp = Path(tempfile.mkdtemp(prefix="netobs-pg-"))
    data = tmp / "pgdata"
    data.mkdir()
    user = pwd.getpwnam("postgres")
    os.chown(tmp, user.pw_uid, user.pw_gid)
    os.chown(data, user.pw_uid, user.pw_gid)

    def as_postgres() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    subprocess.run([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, preexec_fn=as_postgres, cwd=tmp)
    ssl = ["-c", "ssl=off"]
    if tls is not None:  # postgres wants its key its own, and private
        for source, name in zip(tls, ("server.crt", "server.key"), strict=True):
            shutil.copy(source, tmp / name)
            os.chown(tmp / name, user.pw_uid, user.pw_gid)
            os.chmod(tmp / name, 0o600)
        ssl = ["-c", "ssl=on", "-c", f"ssl_cert_file={tmp / 'server.crt'}", "-c", f"ssl_key_file={tmp / 'server.key'}"]
    proc = subprocess.Popen([str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                             "-k", str(tmp), "-c", "fsync=off", *ssl],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=as_postgres, cwd=tmp)
    try:
        wait_port(port, proc, "postgres")
        yield port
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def mariadb(tmp: Path, tls: tuple[Path, Path] | None = None) -> Iterator[int]:
    """A MariaDB server whose root user needs no password over TCP; with `tls` (certificate, key),
    also over TLS."""
    port = free_port()
    data = tmp / "mysql"
    subprocess.run(["mariadb-install-db", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"], check=True, capture_output=True)
    proc = subprocess.Popen(["mariadbd", "--no-defaults", f"--datadir={data}", "--user=root", f"--port={port}",
                             "--bind-address=127.0.0.1", f"--socket={tmp / 'mysqld.sock'}", "--skip-grant-tables",
                             "--innodb-buffer-pool-size=16M", "--skip-log-bin", f"--pid-file={tmp / 'mysqld.pid'}",
                             *([f"--ssl-cert={tls[0]}", f"--ssl-key={tls[1]}"] if tls else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, "mariadbd", timeout=60)
        yield port
    finally:
        _stop(proc)
        shutil.rmtree(data, ignore_errors=True)


NGINX_CONF = """
worker_processes 1;
daemon off;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port}{listen};
        root {dir}/html;
{locations}
    }}
}}
"""


@contextmanager
def nginx(root: Path, port: int, locations: str = "", listen: str = "", main: str = "") -> Iterator[Path]:
    """nginx serving root/html on 127.0.0.1:port, its temporary files in root; `listen` adds to the
    listen directive (" ssl"), `locations` to the server block, `main` to the main context (load_module)."""
    (root / "html").mkdir(exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(main + NGINX_CONF.format(dir=root, port=port, listen=listen, locations=locations))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(root)], stderr=subprocess.PIPE)
    try:
        wait_port(port, proc, "nginx")
        yield root
    finally:
        _stop(proc)

