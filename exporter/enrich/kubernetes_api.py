"""Where the Kubernetes API server is and how to authenticate: in-cluster or from a kubeconfig.

In a pod, the service account's token and CA (mounted under SERVICE_ACCOUNT) and the
KUBERNETES_SERVICE_HOST/PORT variables; outside, the current context of a kubeconfig file
(Kubernetes.Kubeconfig): its server, CA, and a bearer token or a client certificate. Only what a
read-only watch of pods needs; exec and auth-provider plugins are not supported."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.enrich.http_client import SourceError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class ApiServer:
    url: str  # https://host:port
    context: ssl.SSLContext | None = None
    token: str = ""
    token_file: str = ""  # re-read at every request: projected tokens rotate
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        token = self.token
        if self.token_file:
            try:
                token = Path(self.token_file).read_text().strip()
            except OSError as err:
                raise SourceError(f"cannot read the token {self.token_file}: {err.strerror}") from None
        headers = {"Accept": "application/json", **self.extra_headers}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers


def in_cluster(environ: Mapping[str, str], account: Path = SERVICE_ACCOUNT) -> ApiServer | None:
    """The API server as a pod sees it; None outside a cluster."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host or not (account / "token").exists():
        return None
    host = f"[{host}]" if ":" in host else host
    try:
        context = ssl.create_default_context(cafile=str(account / "ca.crt"))
    except (OSError, ssl.SSLError) as err:
        raise SourceError(f"in-cluster CA {account / 'ca.crt'}: {err}") from None
    return ApiServer(f"https://{host}:{port}", context, token_file=str(account / "token"))


def _named(items: Any, name: str, what: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name and isinstance(item.get(what), dict):
            return dict(item[what])
    raise SourceError(f"kubeconfig: no {what} named {name!r}")


def _file_of(entry: dict[str, Any], key: str, base: Path, keep: list[str]) -> str | None:
    """The path of `key`, or of `key-data` written to a temporary file (removed by the caller)."""
    if entry.get(f"{key}-data"):
        handle, path = tempfile.mkstemp(prefix="netobs-kube-")
        with os.fdopen(handle, "wb") as f:
            f.write(base64.b64decode(entry[f"{key}-data"]))
        keep.append(path)
        return path
    if entry.get(key):
        return str(base / entry[key])
    return None


def from_kubeconfig(path: str) -> ApiServer:
    """The current context's server and credentials; SourceError naming what is wrong."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise SourceError(f"kubeconfig {path}: {getattr(err, 'strerror', None) or err}") from None
    if not isinstance(document, dict):
        raise SourceError(f"kubeconfig {path}: not a kubeconfig")
    contexts = document.get("contexts")
    context = _named(contexts, str(document.get("current-context", "")), "context")
    cluster = _named(document.get("clusters"), str(context.get("cluster", "")), "cluster")
    user = _named(document.get("users"), str(context.get("user", "")), "user") if context.get("user") else {}
    server = str(cluster.get("server", ""))
    if not server.startswith(("http://", "https://")):
        raise SourceError(f"kubeconfig {path}: cluster server {server!r} is not an http(s) URL")
    base = Path(path).parent
    temporary: list[str] = []
    try:
        ssl_context = None
        if server.startswith("https://"):
            ssl_context = ssl.create_default_context(cafile=_file_of(cluster, "certificate-authority", base,
                                                                     temporary))
            if cluster.get("insecure-skip-tls-verify"):
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            cert = _file_of(user, "client-certificate", base, temporary)
            if cert:
                ssl_context.load_cert_chain(cert, _file_of(user, "client-key", base, temporary))
    except (OSError, ssl.SSLError, ValueError) as err:
        raise SourceError(f"kubeconfig {path}: {err}") from None
    finally:
        for name in temporary:
            os.unlink(name)
    token_file = str(base / user["tokenFile"]) if user.get("tokenFile") else ""
    return ApiServer(server.rstrip("/"), ssl_context, token=str(user.get("token", "")), token_file=token_file)
