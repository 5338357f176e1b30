"""--web.config.file: TLS, basic authentication and response headers for the metrics endpoint, in the
format of Prometheus' exporter-toolkit (https://github.com/prometheus/exporter-toolkit), so the file an
operator writes for node_exporter works here:

    tls_server_config:
      cert_file: /etc/netobs/tls.crt
      key_file: /etc/netobs/tls.key
      client_auth_type: RequireAndVerifyClientCert   # with client_ca_file
      client_ca_file: /etc/netobs/ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2b$12$...                          # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\\n')
    http_server_config:
      headers:
        Strict-Transport-Security: max-age=31536000

Read at start, where a mistake is one line naming the key (exit status 2). Read again when the file or a
certificate it names changes, as exporter-toolkit does; a mistake then is logged and the previous
settings stay. Python's ssl module verifies a client certificate whenever it asks for one, so
RequestClientCert and RequireAnyClientCert behave as VerifyClientCertIfGiven and
RequireAndVerifyClientCert, and need client_ca_file."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from exporter.config_schema import ConfigError, show

log = logging.getLogger(__name__)

CLIENT_AUTH = {  # exporter-toolkit's client_auth_type -> (verify mode, needs client_ca_file)
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_OPTIONAL, True),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
            "TLS13": ssl.TLSVersion.TLSv1_3}
CIPHERS = {  # Go's names of the TLS 1.2 suites -> OpenSSL's (TLS 1.3 suites are not configurable in Go either)
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
}
HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "X-XSS-Protection",
           "Content-Security-Policy")  # the ones exporter-toolkit lets a file set
KEYS = {
    "tls_server_config": {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
                          "max_version", "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"},
    "http_server_config": {"http2", "headers"},
    "basic_auth_users": None,  # any user name
}
RECHECK_S = 1.0  # the file and its certificates are looked at no more often than this


@dataclass(frozen=True)
class WebSecurity:
    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)


def _map(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"web config: {where}: expected a map, got {show(value)}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"web config: {where}: expected text, got {show(value)}")
    return value


def _tls(section: dict[str, Any], base: str) -> ssl.SSLContext:
    def path(key: str) -> str:
        return os.path.join(base, _text(section.get(key), f"tls_server_config.{key}"))

    if "cert_file" not in section or "key_file" not in section:
        raise ConfigError("web config: tls_server_config: cert_file and key_file are both needed")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(path("cert_file"), path("key_file"))
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"web config: tls_server_config.cert_file/key_file: cannot load: "
                          f"{getattr(err, 'strerror', None) or err}") from None
    auth = section.get("client_auth_type", "NoClientCert")
    if auth not in CLIENT_AUTH:
        raise ConfigError(f"web config: tls_server_config.client_auth_type: expected one of "
                          f"{', '.join(CLIENT_AUTH)}, got {show(auth)}")
    mode, needs_ca = CLIENT_AUTH[auth]
    if needs_ca and "client_ca_file" not in section:
        raise ConfigError(f"web config: tls_server_config.client_ca_file: needed with client_auth_type {auth}")
    if not needs_ca and "client_ca_file" in section:
        raise ConfigError("web config: tls_server_config.client_auth_type: client_ca_file is set but no client "
                          "certificate is asked for (NoClientCert)")
    if "client_ca_file" in section:
        try:
            context.load_verify_locations(cafile=path("client_ca_file"))
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"web config: tls_server_config.client_ca_file: cannot load: "
                              f"{getattr(err, 'strerror', None) or err}") from None
    context.verify_mode = mode
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        version = section.get(key, default)
        if version not in VERSIONS:
            raise ConfigError(f"web config: tls_server_config.{key}: expected one of {', '.join(VERSIONS)}, "
                              f"got {show(version)}")
        versions[key] = VERSIONS[version]
    if versions["min_version"] > versions["max_version"]:
        raise ConfigError("web config: tls_server_config.min_version: above max_version")
    context.minimum_version, context.maximum_version = versions["min_version"], versions["max_version"]
    suites = section.get("cipher_suites")
    if suites is not None:
        if not isinstance(suites, list) or not suites or any(s not in CIPHERS for s in suites):
            raise ConfigError(f"web config: tls_server_config.cipher_suites: expected a list of "
                              f"{', '.join(CIPHERS)}, got {show(suites)}")
        context.set_ciphers(":".join(CIPHERS[s] for s in suites))
    if section.get("prefer_server_cipher_suites", True):
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if section.get("curve_preferences") is not None:
        raise ConfigError("web config: tls_server_config.curve_preferences: not supported (Python's ssl module "
                          "chooses the curves)")
    return context


def load(path: str) -> WebSecurity:
    """The settings of the file at `path`; ConfigError (one line naming the key) on any mistake."""
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except OSError as err:
        raise ConfigError(f"web config: {path}: cannot read: {err.strerror or err}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"web config: {path}: not valid YAML: {str(err).splitlines()[0]}") from None
    top = _map(document, path)
    for key, value in top.items():
        if key not in KEYS:
            raise ConfigError(f"web config: {key}: unknown key (known: {', '.join(KEYS)})")
        allowed = KEYS[key]
        if allowed is not None:
            for sub in _map(value, key):
                if sub not in allowed:
                    raise ConfigError(f"web config: {key}.{sub}: unknown key (known: {', '.join(sorted(allowed))})")
    base = os.path.dirname(os.path.abspath(path))  # relative paths are the file's, as in exporter-toolkit
    tls_section = _map(top.get("tls_server_config"), "tls_server_config")
    tls = _tls(tls_section, base) if tls_section else None
    users: dict[str, bytes] = {}
    for user, hashed in _map(top.get("basic_auth_users"), "basic_auth_users").items():
        text = _text(hashed, f"basic_auth_users.{user}")
        if not text.startswith(("$2a$", "$2b$", "$2y$")) or len(text) != 60:
            raise ConfigError(f"web config: basic_auth_users.{user}: expected a bcrypt hash ($2b$...), "
                              f"got {show(text[:10] + '...')}")
        users[user] = text.encode()
    headers: dict[str, str] = {}
    for name, value in _map(_map(top.get("http_server_config"), "http_server_config").get("headers"),
                            "http_server_config.headers").items():
        if name not in HEADERS:
            raise ConfigError(f"web config: http_server_config.headers.{name}: not one of {', '.join(HEADERS)}")
        headers[name] = _text(value, f"http_server_config.headers.{name}")
    return WebSecurity(tls, users, headers)


def _files(path: str, security: WebSecurity | None = None) -> list[str]:
    """The file and the certificates it names: what a change of is looked for."""
    files = [path]
    try:
        with open(path, encoding="utf-8") as f:
            tls = (yaml.safe_load(f) or {}).get("tls_server_config") or {}
        base = os.path.dirname(os.path.abspath(path))
        files += [os.path.join(base, tls[k]) for k in ("cert_file", "key_file", "client_ca_file") if k in tls]
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        pass
    return files


def _stamp(files: list[str]) -> tuple[tuple[float, int], ...]:
    out = []
    for name in files:
        try:
            st = os.stat(name)
            out.append((st.st_mtime, st.st_ino))
        except OSError:
            out.append((0.0, 0))
    return tuple(out)


class WebConfigFile:
    """The file's settings as they stand: re-read when it or a certificate it names has changed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._security = load(path)
        self._files = _files(path)
        self._stamp = _stamp(self._files)
        self._checked = time.monotonic()
        self._verified: dict[tuple[str, bytes], bytes] = {}  # (user, password digest) -> the hash it matched

    def current(self) -> WebSecurity:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= RECHECK_S:
                self._checked = now
                files = _files(self.path)
                stamp = _stamp(files)
                if stamp != self._stamp or files != self._files:
                    self._files, self._stamp = files, stamp
                    try:
                        self._security = load(self.path)
                        self._verified = {}
                        log.info("web config: %s read again", self.path)
                    except ConfigError as err:
                        log.error("%s; the previous settings stay", err)
            return self._security

    def authorized(self, security: WebSecurity, authorization: str | None) -> bool:
        """Whether a request's Authorization header names a user of the file with its password. A bcrypt
        check takes tens of milliseconds: one that succeeded is remembered until the file changes."""
        if not security.users:
            return True
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = security.users.get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        with self._lock:
            if self._verified.get(key) == hashed:
                return True
        import bcrypt

        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._verified[key] = hashed
        return True
