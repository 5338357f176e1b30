"""Configuration: defaults, the precedence of file, environment and flags, and one-line errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from exporter.config import (
    SECTIONS,
    Config,
    ConfigError,
    WebConfig,
    _flatten,
    default_document,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "netobs.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(
    path: str | None = None, environ: dict[str, str] | None = None, overrides: tuple[str, ...] = ()
) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {}, overrides)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config: ")
    return message


def test_defaults_load_and_match_default_yaml() -> None:
    config = load_config(None, {})
    document = default_document()
    assert isinstance(document, dict)
    common = document["Common"]
    assert config.common.flush_out_l4_interval == common["FlushOutL4Interval"] == 15
    assert config.common.flush_out_l7_interval == common["FlushOutL7Interval"] == 60
    assert config.common.flush_meta_interval == 30
    assert config.common.flush_netlink_interval == 10
    assert config.common.sampling == 100
    assert config.common.protocol_process is True
    assert config.common.drop_unix_socket is True
    assert config.common.drop_local_connections is True
    assert config.common.drop_unknown_socket is True
    assert config.common.include_protocols == ("HTTP", "REDIS", "MYSQL", "PGSQL", "DNS")
    assert config.common.tags == {}
    assert config.common.include_k8s_labels == {}
    assert config.common.include_cmd_regex is None
    assert config.common.exclude_namespace_name_regex is None
    assert config.ebpf.enabled is True
    assert config.ebpf.pid == ()
    assert config.netflow.enabled is True
    assert config.netflow.series_expiry == 300
    assert config.netflow.max_flows == 65536
    assert config.netflow.rtt_sample_interval == 1.0
    assert config.telemetry.max_series_per_instrument == 20000
    assert config.telemetry.records == ""
    assert config.web == WebConfig(":10039", "/metrics")
    assert (config.web.host, config.web.port) == ("", 10039)


def test_every_field_has_exactly_one_default() -> None:
    document = default_document()
    assert isinstance(document, dict)
    assert list(document) == list(SECTIONS)
    for section, (attribute, section_class) in SECTIONS.items():
        keys = [f.metadata["key"] for f in dataclasses.fields(section_class)]
        assert [name for name, _ in _flatten(section, document[section])] == keys, section
        assert attribute in {f.name for f in dataclasses.fields(Config)}


def test_every_key_is_documented() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    for section, (_, section_class) in SECTIONS.items():
        for f in dataclasses.fields(section_class):
            assert f"`{section}.{f.metadata['key']}`" in docs


def test_yaml_file_overrides_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
Common:
  FlushOutL4Interval: 5
  Sampling: 12.5
  DropUnixSocket: 0          # iLogtail writes switches as numbers
  IncludeProtocols: [http, dns, HTTP]
  Tags: {cluster: prod}
  IncludeK8sLabels: {app: "^(nginx|envoy)$"}
  IncludeCmdRegex: "^mockclient$"
EBPF:
  Pid: {pid: "123"}
Netflow:
Telemetry:
  Records: stdout
""",
    )
    config = load_config(path, {})
    assert config.common.flush_out_l4_interval == 5.0
    assert config.common.flush_out_l7_interval == 60.0  # untouched keys keep their default
    assert config.common.sampling == 12.5
    assert config.common.drop_unix_socket is False
    assert config.common.include_protocols == ("HTTP", "DNS")
    assert config.common.tags == {"cluster": "prod"}
    assert config.common.include_k8s_labels["app"].fullmatch("envoy")
    assert config.common.include_cmd_regex == re.compile("^mockclient$")
    assert config.ebpf.pid == (123,)
    assert config.telemetry.records == "stdout"


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing\n"), {}) == load_config(None, {})


@pytest.mark.parametrize(("given", "expected"), [("7", (7,)), ("[1, 2, 1]", (1, 2)), ("{a: 3}", (3,))])
def test_pid_forms(given: str, expected: tuple[int, ...]) -> None:
    assert load_config(None, {}, [f"EBPF.Pid={given}"]).ebpf.pid == expected


def test_environment_beats_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "Common:\n  FlushOutL4Interval: 5\nTelemetry:\n  Records: /tmp/r.json\n")
    environ = {
        "NETOBS_COMMON_FLUSHOUTL4INTERVAL": "7",
        "netobs_ignored": "x",
        "NETOBS_TELEMETRY_RECORDS": "stdout",
        "NETOBS_common_tags": "{team: net}",
        "NETOBS_NETFLOW_MAX_FLOWS": "1024",  # underscores inside the key are ignored
        "NETOBS_CONFIG_FILE": "/not/a/config/key",  # names that name no section are not ours
        "NETOBS_COMMON_INCLUDECMDREGEX": "[a-z]+",  # string keys take the text verbatim
    }
    config = load_config(path, environ)
    assert config.common.flush_out_l4_interval == 7.0
    assert config.telemetry.records == "stdout"
    assert config.common.tags == {"team": "net"}
    assert config.netflow.max_flows == 1024
    assert config.common.include_cmd_regex == re.compile("[a-z]+")


def test_flags_beat_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "Common:\n  FlushOutL4Interval: 5\n")
    environ = {"NETOBS_COMMON_FLUSHOUTL4INTERVAL": "7"}
    overrides = ["Common.FlushOutL4Interval=9", "common.sampling=50", "Common.Sampling=25"]
    config = load_config(path, environ, overrides)
    assert config.common.flush_out_l4_interval == 9.0
    assert config.common.sampling == 25.0  # the last flag wins
    assert load_config(None, {}, ["Telemetry.Records="]).telemetry.records == ""


def test_protocols_as_comma_separated_text() -> None:
    config = load_config(None, {"NETOBS_COMMON_INCLUDEPROTOCOLS": "http, Memcached"})
    assert config.common.include_protocols == ("HTTP", "MEMCACHED")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Common:\n  FlushOutL4Interval: abc\n",
            "config: Common.FlushOutL4Interval: expected a positive number of seconds, got 'abc'",
        ),
        (
            "Common:\n  FlushOutL7Interval: 0\n",
            "config: Common.FlushOutL7Interval: expected a positive number of seconds, got 0",
        ),
        (
            'Common:\n  FlushMetaInterval: "30"\n',
            "config: Common.FlushMetaInterval: expected a positive number of seconds,"
            " got '30'; write numbers without quotes",
        ),
        ("Common:\n  Sampling: 150\n", "config: Common.Sampling: expected a number from 0 to 100, got 150"),
        (
            "Common:\n  DropUnixSocket: 2\n",
            "config: Common.DropUnixSocket: expected true or false (or 1 or 0), got 2",
        ),
        (
            "Common:\n  ProtocolProcess: 'yes'\n",
            "config: Common.ProtocolProcess: expected true or false (or 1 or 0), got 'yes'",
        ),
        (
            "Common:\n  IncludeCmdRegex: 'abc('\n",
            "config: Common.IncludeCmdRegex: invalid regular expression:"
            " missing ), unterminated subpattern at position 3",
        ),
        (
            "Common:\n  IncludeK8sLabels: {app: '('}\n",
            "config: Common.IncludeK8sLabels: invalid regular expression:"
            " missing ), unterminated subpattern at position 0 (for 'app')",
        ),
        (
            "Common:\n  Tags: [a, b]\n",
            "config: Common.Tags: expected a map of string to string, got ['a', 'b']",
        ),
        (
            "Common:\n  Tags: {version: 1}\n",
            "config: Common.Tags: expected a map of string to string, got the entry 'version': 1",
        ),
        (
            "Common:\n  IncludeProtocols: [HTTP, FTP]\n",
            "config: Common.IncludeProtocols: unknown protocol 'FTP'"
            " (expected some of HTTP, Redis, MySQL, PgSQL, DNS, Memcached)",
        ),
        (
            "EBPF:\n  Pid: [1, -5]\n",
            "config: EBPF.Pid: a pid must be a whole number from 1 to 4194304, got -5",
        ),
        (
            "EBPF:\n  Pid: abc\n",
            "config: EBPF.Pid: expected a pid, a list of pids or a map whose values are pids, got 'abc'",
        ),
        (
            "Netflow:\n  MaxFlows: 1.5\n",
            "config: Netflow.MaxFlows: expected a whole number from 1 to 4294967295, got 1.5",
        ),
        ("Telemetry:\n  Records: 1\n", "config: Telemetry.Records: expected a string, got 1"),
        (
            "Common:\n  FlushOutL4Intervall: 5\n",
            "config: Common.FlushOutL4Intervall: unknown key"
            " (did you mean FlushOutL4Interval, FlushOutL7Interval or FlushMetaInterval?)",
        ),
        (
            "Netflow:\n  Bogus: 1\n",
            "config: Netflow.Bogus: unknown key"
            " (known keys in Netflow: Enabled, SeriesExpiry, MaxFlows, RttSampleInterval, Aggregation,"
            " RttHistogram, RttBuckets)",
        ),
        (
            "Comon:\n  Sampling: 1\n",
            "config: Comon: unknown section (known sections: Common, EBPF, Netflow, Dns, L7, Bash, Containers, "
            "Kubernetes, Attributes, Telemetry)",
        ),
        ("Common: 5\n", "config: Common: expected a map of keys, got 5"),
        (
            "Common:\n  Sampling: 1\n  sampling: 2\n",
            "config: Common.Sampling: given twice in {path}",
        ),
        (
            "- Common\n",
            "config: {path}: expected a map of sections (Common, EBPF, Netflow, Dns, L7, Bash, Containers, "
            "Kubernetes, Attributes, Telemetry), got ['Common']",
        ),
        (
            "Common:\n  Sampling: [1\n",
            "config: {path}: not valid YAML: expected ',' or ']', but got '<stream end>'"
            " (while parsing a flow sequence) at line 3, column 1",
        ),
    ],
)
def test_file_mistakes_give_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == expected.format(path=path)


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "x.yaml")
    assert error_of(path) == f"config: {path}: cannot read: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert error_of(str(tmp_path)) == f"config: {tmp_path}: cannot read: Is a directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(b"Common:\n  Tags: {a: \xff}\n")
    assert error_of(str(path)) == f"config: {path}: not valid YAML: not UTF-8 text"


def test_tab_indentation_names_the_line(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "Common:\n\tSampling: 1\n"))
    assert "not valid YAML" in message
    assert "at line 2" in message


def test_environment_mistakes_name_the_variable() -> None:
    assert error_of(environ={"NETOBS_COMMON_FLUSHOUTL4INTERVAL": "abc"}) == (
        "config: Common.FlushOutL4Interval (from NETOBS_COMMON_FLUSHOUTL4INTERVAL):"
        " expected a positive number of seconds, got 'abc'"
    )
    assert error_of(environ={"NETOBS_COMMON_BOGUS": "1"}) == (
        "config: Common.BOGUS (from NETOBS_COMMON_BOGUS): unknown key (known keys in Common: "
        + ", ".join(f.metadata["key"] for f in dataclasses.fields(SECTIONS["Common"][1]))
        + ")"
    )
    message = error_of(environ={"NETOBS_COMMON_TAGS": "{a: [}"})
    assert message.startswith("config: Common.Tags (from NETOBS_COMMON_TAGS): not valid YAML: ")


def test_flag_mistakes_name_the_flag() -> None:
    assert error_of(overrides=("Common.Sampling=150",)) == (
        "config: Common.Sampling (from --config.set): expected a number from 0 to 100, got 150"
    )
    assert error_of(overrides=("Sampling=5",)) == (
        "config: --config.set 'Sampling=5': expected Section.Key=value, e.g. Common.Sampling=50"
    )
    assert error_of(overrides=("Web.Port=5",)) == (
        "config: Web (from --config.set): unknown section "
        "(known sections: Common, EBPF, Netflow, Dns, L7, Bash, Containers, Kubernetes, Attributes, Telemetry)"
    )


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [(":10039", "", 10039), ("localhost:80", "localhost", 80), ("[::1]:9000", "::1", 9000)],
)
def test_listen_addresses(address: str, host: str, port: int) -> None:
    web = WebConfig(listen_address=address)
    assert (web.host, web.port) == (host, port)


@pytest.mark.parametrize("address", ["10039", ":0", ":65536", "::1:80", "[nothost]:80", "a b:80", "host:"])
def test_bad_listen_address(address: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WebConfig(listen_address=address)
    assert str(caught.value) == (
        "config: --web.listen-address: expected host:port, [ipv6]:port or :port"
        f" with a port from 1 to 65535, got {address!r}"
    )


def test_bad_telemetry_path() -> None:
    with pytest.raises(ConfigError) as caught:
        WebConfig(telemetry_path="metrics")
    assert (
        str(caught.value) == "config: --web.telemetry-path: expected a path starting with '/', got 'metrics'"
    )


def test_a_line_break_in_a_name_is_shown_escaped_on_one_line() -> None:
    """Found by tests/fuzz/py_config.py: the name a user typed came out as typed, over two lines."""
    with pytest.raises(ConfigError) as err:
        load_config(None, {}, ["l\n  Flush.key=v"])
    assert str(err.value) == ("config: l\\n  Flush (from --config.set): unknown section (known sections: "
                              "Common, EBPF, Netflow, Dns, L7, Bash, Containers, Kubernetes, Attributes, Telemetry)")


def test_a_subsection_is_spelled_with_dots_everywhere(tmp_path: Path) -> None:
    """L7.Tls.Enabled: nested in YAML, dotted in --config.set, underscored in a variable."""
    path = write(tmp_path, "L7:\n  Tls:\n    Enabled: false\n    RescanInterval: 9\n")
    config = load_config(path, {"NETOBS_L7_TLS_LIBRARIES": "OpenSSL"}, ["L7.Tls.RescanInterval=3"])
    assert (config.l7.tls_enabled, config.l7.tls_libraries, config.l7.tls_rescan_interval) == (
        False, frozenset({"openssl"}), 3.0)


@pytest.mark.parametrize(("text", "message"), [
    ("L7:\n  Tls: true\n", "config: L7.Tls: expected a map of keys, got true"),
    ("L7:\n  Tls:\n    Enable: true\n", "config: L7.Tls.Enable: unknown key (did you mean Tls.Enabled?)"),
    ("L7:\n  Tls:\n    Libraries: [gnutls]\n",
     "config: L7.Tls.Libraries: unknown library 'gnutls' (expected some of openssl, go)"),
])
def test_a_subsection_mistake_names_the_whole_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text), {})
    assert str(error.value) == message


def test_kubernetes_peers_keys(tmp_path: Path) -> None:
    config = load_config(None, {})
    assert (config.kubernetes.peers_enabled, config.kubernetes.peers_namespaces,
            config.kubernetes.peers_resync_interval) == (False, (), 3600.0)
    config = load_config(write(tmp_path, "Kubernetes:\n  Peers:\n    Enabled: true\n    Namespaces: [shop]\n"),
                         {"NETOBS_KUBERNETES_PEERS_RESYNCINTERVAL": "0"})
    assert (config.kubernetes.peers_enabled, config.kubernetes.peers_namespaces,
            config.kubernetes.peers_resync_interval) == (True, ("shop",), 0.0)
    flags = ["Kubernetes.Peers.Namespaces=shop, payments,shop"]
    assert load_config(None, {}, flags).kubernetes.peers_namespaces == ("shop", "payments")
    assert error_of(None, {}, ("Kubernetes.Peers.Namespaces=[Shop]",)) == (
        "config: Kubernetes.Peers.Namespaces (from --config.set): expected a list of namespace names "
        "(lower-case letters, digits and '-', at most 63), got 'Shop'")
    assert error_of(None, {"NETOBS_KUBERNETES_PEERS_RESYNCINTERVAL": "5"}) == (
        "config: Kubernetes.Peers.ResyncInterval (from NETOBS_KUBERNETES_PEERS_RESYNCINTERVAL): "
        "expected 0 (never) or a number of seconds from 60, got 5")
