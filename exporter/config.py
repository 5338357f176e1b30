"""The configuration: embedded defaults, then the user's YAML file, then NETOBS_* variables, then flags.

Key names are iLogtail's (Section.Key); attributes are their snake_case spelling. Every default lives in
exporter/default.yaml. Every mistake raises ConfigError whose message is one line naming the full key.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import yaml

from exporter import config_schema as check
from exporter.config_schema import ConfigError, Invalid, show

__all__ = [
    "DEFAULT_LISTEN_ADDRESS",
    "DEFAULT_TELEMETRY_PATH",
    "AttributesConfig",
    "BashConfig",
    "CommonConfig",
    "Config",
    "ConfigError",
    "ContainersConfig",
    "EbpfConfig",
    "KubernetesConfig",
    "L7Config",
    "NetflowConfig",
    "TelemetryConfig",
    "WebConfig",
    "load_config",
]

ENV_PREFIX = "NETOBS_"
DEFAULT_LISTEN_ADDRESS = ":10039"
DEFAULT_TELEMETRY_PATH = "/metrics"


Regex: TypeAlias = re.Pattern[str] | None  # None: the key is "" and filters nothing
RegexMap: TypeAlias = dict[str, re.Pattern[str]]


def _key(name: str, checker: check.Check) -> dict[str, Any]:
    """Field metadata: the YAML key and its check."""
    return {"key": name, "check": checker}


@dataclass(frozen=True)
class CommonConfig:
    flush_out_l4_interval: float = field(metadata=_key("FlushOutL4Interval", check.seconds))
    flush_out_l7_interval: float = field(metadata=_key("FlushOutL7Interval", check.seconds))
    flush_meta_interval: float = field(metadata=_key("FlushMetaInterval", check.seconds))
    flush_netlink_interval: float = field(metadata=_key("FlushNetlinkInterval", check.seconds))
    sampling: float = field(metadata=_key("Sampling", check.percent))
    protocol_process: bool = field(metadata=_key("ProtocolProcess", check.boolean))
    drop_unix_socket: bool = field(metadata=_key("DropUnixSocket", check.boolean))
    drop_local_connections: bool = field(metadata=_key("DropLocalConnections", check.boolean))
    drop_unknown_socket: bool = field(metadata=_key("DropUnknownSocket", check.boolean))
    include_protocols: tuple[str, ...] = field(metadata=_key("IncludeProtocols", check.protocols))
    tags: dict[str, str] = field(metadata=_key("Tags", check.str_map))
    include_container_labels: dict[str, str] = field(metadata=_key("IncludeContainerLabels", check.str_map))
    exclude_container_labels: dict[str, str] = field(metadata=_key("ExcludeContainerLabels", check.str_map))
    include_k8s_labels: RegexMap = field(metadata=_key("IncludeK8sLabels", check.regex_map))
    exclude_k8s_labels: RegexMap = field(metadata=_key("ExcludeK8sLabels", check.regex_map))
    include_envs: RegexMap = field(metadata=_key("IncludeEnvs", check.regex_map))
    exclude_envs: RegexMap = field(metadata=_key("ExcludeEnvs", check.regex_map))
    include_cmd_regex: Regex = field(metadata=_key("IncludeCmdRegex", check.regex))
    exclude_cmd_regex: Regex = field(metadata=_key("ExcludeCmdRegex", check.regex))
    include_container_name_regex: Regex = field(metadata=_key("IncludeContainerNameRegex", check.regex))
    exclude_container_name_regex: Regex = field(metadata=_key("ExcludeContainerNameRegex", check.regex))
    include_pod_name_regex: Regex = field(metadata=_key("IncludePodNameRegex", check.regex))
    exclude_pod_name_regex: Regex = field(metadata=_key("ExcludePodNameRegex", check.regex))
    include_namespace_name_regex: Regex = field(metadata=_key("IncludeNamespaceNameRegex", check.regex))
    exclude_namespace_name_regex: Regex = field(metadata=_key("ExcludeNamespaceNameRegex", check.regex))


@dataclass(frozen=True)
class EbpfConfig:
    enabled: bool = field(metadata=_key("Enabled", check.boolean))
    pid: tuple[int, ...] = field(metadata=_key("Pid", check.pids))


@dataclass(frozen=True)
class NetflowConfig:
    enabled: bool = field(metadata=_key("Enabled", check.boolean))
    series_expiry: float = field(metadata=_key("SeriesExpiry", check.seconds))
    max_flows: int = field(metadata=_key("MaxFlows", check.count))
    rtt_sample_interval: float = field(metadata=_key("RttSampleInterval", check.seconds))
    aggregation: str = field(metadata=_key("Aggregation", check.netflow_level))
    rtt_histogram: str = field(metadata=_key("RttHistogram", check.rtt_histogram_level))
    rtt_buckets: tuple[float, ...] = field(metadata=_key("RttBuckets", check.rtt_buckets))


@dataclass(frozen=True)
class DnsConfig:
    enabled: bool = field(metadata=_key("Enabled", check.boolean))
    ports: tuple[int, ...] = field(metadata=_key("Ports", check.dns_ports))
    timeout: float = field(metadata=_key("Timeout", check.seconds))
    max_names_per_process: int = field(metadata=_key("MaxNamesPerProcess", check.count))
    max_pending: int = field(metadata=_key("MaxPending", check.count))
    max_series: int = field(metadata=_key("MaxSeries", check.count))
    series_expiry: float = field(metadata=_key("SeriesExpiry", check.seconds))
    domain_cache_size: int = field(metadata=_key("DomainCacheSize", check.count))
    domain_ttl_min: float = field(metadata=_key("DomainTtlMin", check.seconds))
    domain_ttl_max: float = field(metadata=_key("DomainTtlMax", check.seconds))


@dataclass(frozen=True)
class L7Config:
    capture_bytes: int = field(metadata=_key("CaptureBytes", check.capture_bytes))
    max_connections: int = field(metadata=_key("MaxConnections", check.count))
    max_series: int = field(metadata=_key("MaxSeries", check.count))
    max_statements: int = field(metadata=_key("MaxStatements", check.count))
    max_routes_per_process: int = field(metadata=_key("MaxRoutesPerProcess", check.count))
    series_expiry: float = field(metadata=_key("SeriesExpiry", check.seconds))
    tls_enabled: bool = field(metadata=_key("Tls.Enabled", check.boolean))
    tls_libraries: frozenset[str] = field(metadata=_key("Tls.Libraries", check.tls_libraries))
    tls_rescan_interval: float = field(metadata=_key("Tls.RescanInterval", check.seconds))


@dataclass(frozen=True)
class BashConfig:
    enabled: bool = field(metadata=_key("Enabled", check.boolean))
    containers: bool = field(metadata=_key("Containers", check.boolean))
    max_command_length: int = field(metadata=_key("MaxCommandLength", check.count))
    queue_size: int = field(metadata=_key("QueueSize", check.count))
    redact: tuple[re.Pattern[str], ...] = field(metadata=_key("Redact", check.regex_list))


@dataclass(frozen=True)
class ContainersConfig:
    docker_socket: str = field(metadata=_key("DockerSocket", check.text))


@dataclass(frozen=True)
class KubernetesConfig:
    enabled: bool = field(metadata=_key("Enabled", check.boolean))
    kubeconfig: str = field(metadata=_key("Kubeconfig", check.text))
    node_name: str = field(metadata=_key("NodeName", check.text))
    pod_labels: tuple[str, ...] = field(metadata=_key("PodLabels", check.str_list))
    peers_enabled: bool = field(metadata=_key("Peers.Enabled", check.boolean))
    peers_namespaces: tuple[str, ...] = field(metadata=_key("Peers.Namespaces", check.namespaces))
    peers_resync_interval: float = field(metadata=_key("Peers.ResyncInterval", check.resync_interval))


@dataclass(frozen=True)
class AttributesConfig:
    process: frozenset[str] = field(metadata=_key("Process", check.attribute_names))
    instruments: dict[str, frozenset[str]] = field(metadata=_key("Instruments", check.attribute_sets))


@dataclass(frozen=True)
class TelemetryConfig:
    max_series_per_instrument: int = field(metadata=_key("MaxSeriesPerInstrument", check.count))
    records: str = field(metadata=_key("Records", check.text))
    otlp_endpoint: str = field(metadata=_key("OtlpEndpoint", check.text))
    otlp_protocol: str = field(metadata=_key("OtlpProtocol", check.otlp_protocol))


@dataclass(frozen=True)
class WebConfig:
    """The /metrics endpoint, set by the --web.* flags; host "" means every interface."""

    listen_address: str = DEFAULT_LISTEN_ADDRESS
    telemetry_path: str = DEFAULT_TELEMETRY_PATH
    config_file: str = ""  # --web.config.file: TLS, basic auth, headers (exporter/telemetry/web_config.py)

    def __post_init__(self) -> None:
        flags = (
            ("--web.listen-address", check.listen_address, self.listen_address),
            ("--web.telemetry-path", check.url_path, self.telemetry_path),
        )
        for flag, checker, value in flags:
            try:
                checker(value)
            except Invalid as err:
                raise ConfigError(f"config: {flag}: {err}") from None
        if self.config_file:
            from exporter.telemetry.web_config import load

            load(self.config_file)  # a mistake is a ConfigError now, before anything starts

    @property
    def host(self) -> str:
        return check.listen_address(self.listen_address)[0]

    @property
    def port(self) -> int:
        return check.listen_address(self.listen_address)[1]


@dataclass(frozen=True)
class Config:
    common: CommonConfig
    ebpf: EbpfConfig
    netflow: NetflowConfig
    dns: DnsConfig
    l7: L7Config
    bash: BashConfig
    containers: ContainersConfig
    kubernetes: KubernetesConfig
    attributes: AttributesConfig
    telemetry: TelemetryConfig
    web: WebConfig = field(default_factory=WebConfig)


# YAML section name -> (attribute of Config, section class)
SECTIONS: dict[str, tuple[str, type[Any]]] = {
    "Common": ("common", CommonConfig),
    "EBPF": ("ebpf", EbpfConfig),
    "Netflow": ("netflow", NetflowConfig),
    "Dns": ("dns", DnsConfig),
    "L7": ("l7", L7Config),
    "Bash": ("bash", BashConfig),
    "Containers": ("containers", ContainersConfig),
    "Kubernetes": ("kubernetes", KubernetesConfig),
    "Attributes": ("attributes", AttributesConfig),
    "Telemetry": ("telemetry", TelemetryConfig),
}


def _fields(section: str) -> dict[str, dataclasses.Field[Any]]:
    """YAML key -> dataclass field, for one section."""
    return {f.metadata["key"]: f for f in dataclasses.fields(SECTIONS[section][1])}


class Setting(NamedTuple):
    section: str  # canonical names, as in default.yaml
    key: str
    value: object
    origin: str | None  # None for YAML files, else the variable name or "--config.set"


def _where(name: str, origin: str | None) -> str:
    return name if origin is None else f"{name} (from {origin})"


def _normalize(name: str) -> str:
    """Names match ignoring case, underscores and the dots of subsections: NETOBS_COMMON_FLUSH_OUT_L4_INTERVAL
    and NETOBS_L7_TLS_ENABLED (L7.Tls.Enabled) work too."""
    return name.replace("_", "").replace(".", "").casefold()


def _find_section(name: str) -> str | None:
    return next((s for s in SECTIONS if _normalize(s) == _normalize(name)), None)


def _resolve_section(name: str, origin: str | None) -> str:
    section = _find_section(name)
    if section is None:
        raise ConfigError(
            f"config: {_where(name, origin)}: unknown section (known sections: {', '.join(SECTIONS)})"
        )
    return section


def _or_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _resolve_key(section: str, name: str, origin: str | None) -> str:
    by_normal = {_normalize(key): key for key in _fields(section)}
    if _normalize(name) in by_normal:
        return by_normal[_normalize(name)]
    close = [by_normal[c] for c in difflib.get_close_matches(_normalize(name), by_normal, n=3, cutoff=0.6)]
    if close:
        hint = f"did you mean {_or_list(close)}?"
    else:
        hint = f"known keys in {section}: {', '.join(by_normal.values())}"
    raise ConfigError(f"config: {_where(f'{section}.{name}', origin)}: unknown key ({hint})")


def _settings_from_document(document: object, where: str) -> list[Setting]:
    """The settings of one parsed YAML document: {Section: {Key: value}}."""
    if document is None:
        return []
    if not isinstance(document, dict):
        sections = ", ".join(SECTIONS)
        raise ConfigError(f"config: {where}: expected a map of sections ({sections}), got {show(document)}")
    settings: dict[tuple[str, str], Setting] = {}
    for section_name, body in document.items():
        section = _resolve_section(str(section_name), None)
        if body is None:  # a section whose keys are all commented out
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"config: {section}: expected a map of keys, got {show(body)}")
        for key_name, value in _flatten(section, body):
            key = _resolve_key(section, key_name, None)
            if (section, key) in settings:
                raise ConfigError(f"config: {section}.{key}: given twice in {where}")
            settings[section, key] = Setting(section, key, value, None)
    return list(settings.values())


def _flatten(section: str, body: dict[Any, Any]) -> Iterable[tuple[str, object]]:
    """A section's keys, a subsection's (L7: {Tls: {Enabled: ...}}) spelled Tls.Enabled."""
    subsections = {_normalize(key.partition(".")[0]) for key in _fields(section) if "." in key}
    for name, value in body.items():
        if _normalize(str(name)) not in subsections:
            yield str(name), value
        elif not isinstance(value, dict):
            raise ConfigError(f"config: {section}.{name}: expected a map of keys, got {show(value)}")
        else:
            yield from ((f"{name}.{key}", v) for key, v in value.items())


def _read_yaml_file(path: str) -> object:
    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"config: {path}: cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config: {path}: not valid YAML: not UTF-8 text") from None
    try:
        return yaml.safe_load(source)
    except yaml.YAMLError as err:
        raise ConfigError(f"config: {path}: not valid YAML: {check.yaml_reason(err)}") from None


def _parse_value(source: str, section: str, key: str, origin: str) -> object:
    """A value from a variable or flag, parsed as YAML; string keys keep text YAML would change."""
    is_text = _fields(section)[key].metadata["check"] in (check.text, check.regex)
    try:
        value = yaml.safe_load(source)
    except yaml.YAMLError as err:
        if is_text:
            return source
        where = _where(f"{section}.{key}", origin)
        raise ConfigError(f"config: {where}: not valid YAML: {check.yaml_reason(err)}") from None
    return source if is_text and not isinstance(value, str) else value


def _settings_from_environ(environ: Mapping[str, str]) -> list[Setting]:
    """NETOBS_<SECTION>_<KEY> variables; names that name no section (NETOBS_CONFIG_FILE) are not ours."""
    settings = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        section_name, _, key_name = name[len(ENV_PREFIX) :].partition("_")
        section = _find_section(section_name)
        if section is None:
            continue
        key = _resolve_key(section, key_name, name)
        settings.append(Setting(section, key, _parse_value(environ[name], section, key, name), name))
    return settings


def _settings_from_flags(overrides: Iterable[str]) -> list[Setting]:
    """--config.set Section.Key=value flags."""
    origin = "--config.set"
    settings = []
    for item in overrides:
        name, equals, source = item.partition("=")
        section_name, dot, key_name = name.strip().partition(".")
        if not equals or not dot:
            example = "e.g. Common.Sampling=50"
            raise ConfigError(f"config: {origin} {item!r}: expected Section.Key=value, {example}")
        section = _resolve_section(section_name, origin)
        key = _resolve_key(section, key_name, origin)
        settings.append(Setting(section, key, _parse_value(source, section, key, origin), origin))
    return settings


def _build(settings: Iterable[Setting]) -> Config:
    """Checks the last setting of every key and builds the typed sections."""
    merged = {(s.section, s.key): s for s in settings}
    sections: dict[str, Any] = {}
    for section, (attribute, section_class) in SECTIONS.items():
        values: dict[str, Any] = {}
        for key, spec in _fields(section).items():
            setting = merged.get((section, key))
            if setting is None:
                raise ConfigError(f"config: {section}.{key}: missing from exporter/default.yaml")
            try:
                values[spec.name] = spec.metadata["check"](setting.value)
            except Invalid as err:
                raise ConfigError(f"config: {_where(f'{section}.{key}', setting.origin)}: {err}") from None
        sections[attribute] = section_class(**values)
    return Config(**sections)


def default_document() -> object:
    """exporter/default.yaml, parsed."""
    return yaml.safe_load(resources.files("exporter").joinpath("default.yaml").read_text(encoding="utf-8"))


def load_config(path: str | None, environ: Mapping[str, str], overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file at `path` (if any), then NETOBS_* variables, then --config.set items."""
    settings = _settings_from_document(default_document(), "exporter/default.yaml")
    if path:
        settings += _settings_from_document(_read_yaml_file(path), path)
    settings += _settings_from_environ(environ)
    settings += _settings_from_flags(overrides)
    return _build(settings)
