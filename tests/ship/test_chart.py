"""The Helm chart, rendered offline (helm-python-sdk) with the default values and the values files
of tests/ship/values/: lint, Kubernetes schemas (strict), and what each setting must render to; also
as the archive `helm package` makes, and as the dependency of an umbrella chart."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from exporter.config import load_config

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
VALUES = Path(__file__).with_name("values")
KUBERNETES = "1.37.0"
CUSTOM_RESOURCES = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}  # Prometheus Operator CRDs: no built-in schema
Manifests = dict[str, list[dict[str, Any]]]  # kind -> objects


def values_of(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((VALUES / f"{name}.yaml").read_text())) if name != "defaults" else {}


def manifests(rendered: dict[str, str]) -> Manifests:
    out: Manifests = {}
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc:
                    out.setdefault(doc["kind"], []).append(doc)
    return out


def render_values(values: dict[str, Any], chart: Path = CHART) -> Manifests:
    return manifests(helm.Chart.load(str(chart)).render(values, name="netobs", namespace="monitoring"))


def render(name: str) -> Manifests:
    return render_values(values_of(name))


def validate(m: Manifests) -> None:
    """Every manifest against the Kubernetes schemas (strict); custom resources by their API group."""
    for kind, objects in m.items():
        for obj in objects:
            if kind in CUSTOM_RESOURCES:
                assert obj["apiVersion"] == "monitoring.coreos.com/v1"
                continue
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def pod_spec(m: Manifests) -> dict[str, Any]:
    (ds,) = m["DaemonSet"]
    return dict(ds["spec"]["template"]["spec"])


def container(m: Manifests) -> dict[str, Any]:
    (ds,) = m["DaemonSet"]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return dict(c)


def env(m: Manifests) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(m)["env"]}


def mounts(m: Manifests) -> dict[str, tuple[str, bool]]:
    return {v["mountPath"]: (v["name"], v.get("readOnly", False)) for v in container(m)["volumeMounts"]}


def exporter_config(m: Manifests, tmp_path: Path) -> Path:
    (cm,) = [c for c in m["ConfigMap"] if "config.yaml" in c["data"]]
    path = tmp_path / "config.yaml"
    path.write_text(cm["data"]["config.yaml"])
    return path


VALUE_FILES = ["defaults", *sorted(p.stem for p in VALUES.glob("*.yaml"))]


@pytest.mark.parametrize("name", VALUE_FILES)
def test_lint_is_clean(name: str, tmp_path: Path) -> None:
    report = helm.lint(str(CHART), values_of(name), strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("name", VALUE_FILES)
def test_manifests_match_the_kubernetes_schemas(name: str) -> None:
    validate(render(name))


def test_defaults(tmp_path: Path) -> None:
    m = render("defaults")
    (ds,) = m["DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert (pod["hostPID"], pod["hostNetwork"], pod["dnsPolicy"]) == (True, True, "ClusterFirstWithHostNet")
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    # No arm64 image yet: the pods stay off arm64 nodes.
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    assert "securityContext" not in pod and ds["spec"]["revisionHistoryLimit"] == 10
    c = container(m)
    security = c["securityContext"]
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    assert security["runAsUser"] == 0 and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {
        "drop": ["ALL"], "add": ["BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_ADMIN"]}
    assert mounts(m) == {
        "/etc/netobs": ("config", True), "/tmp": ("tmp", False), "/sys/kernel/tracing": ("tracefs", True),
        "/host/sys/fs/cgroup": ("cgroup", True), "/run/containerd/containerd.sock": ("runtime-socket", True),
    }
    assert "--config.file=/etc/netobs/config.yaml" in c["args"] and "--web.listen-address=:10039" in c["args"]
    assert c["ports"] == [{"name": "metrics", "containerPort": 10039, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics", "scheme": "HTTP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics", "scheme": "HTTP"}
    assert env(m)["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert "HOST_IP" not in env(m)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env(m)
    assert c["resources"]["limits"]["memory"] == "512Mi"
    # The default configuration is one the exporter accepts.
    assert load_config(str(exporter_config(m, tmp_path)), {}).common.drop_local_connections is True
    (role,) = m["ClusterRole"]
    assert {(r["apiGroups"][0], r["resources"][0], tuple(r["verbs"])) for r in role["rules"]} == {
        ("", "pods", ("get", "list", "watch")), ("apps", "replicasets", ("get",)), ("batch", "jobs", ("get",))}
    (svc,) = m["Service"]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["ports"][0]["name"] == "metrics"
    assert not {"ServiceMonitor", "PodMonitor", "PrometheusRule", "NetworkPolicy"} & set(m)


def test_dashboards_are_configmaps_for_grafanas_sidecar() -> None:
    boards = [c for c in render("defaults")["ConfigMap"] if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = {p.name: json.loads(p.read_text()) for p in (REPO / "dashboards").glob("*.json")}
    assert len(boards) == len(files) == 5
    for cm in boards:
        ((name, text),) = cm["data"].items()
        assert json.loads(text) == files[name]


def test_prometheus_operator_values() -> None:
    m = render("operator")
    (sm,) = m["ServiceMonitor"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["interval"], endpoint["path"]) == ("metrics", "15s", "/metrics")
    assert endpoint["relabelings"][0] == {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}
    assert endpoint["relabelings"][1]["replacement"] == "prod-eu"
    (rule,) = m["PrometheusRule"]
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    records = [r for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r]
    assert records and all(set(r) == {"record", "expr"} and 'job="netobs-exporter"' in r["expr"] for r in records)
    retransmits = alerts["NetobsTCPRetransmitRatioHigh"]
    assert (retransmits["for"], retransmits["labels"]) == ("3m", {"severity": "critical", "team": "network"})
    assert ") > 0.02\nand" in retransmits["expr"] and retransmits["expr"].endswith("[5m])) > 50")
    assert "NetobsDNSNXDomainRatioHigh" not in alerts
    assert all('job="netobs-exporter"' in r["expr"] for r in alerts.values())
    boards = [c for c in m["ConfigMap"] if "grafana_dashboard" in c["metadata"]["labels"]]
    assert {c["metadata"]["namespace"] for c in boards} == {"grafana"}
    assert all(c["metadata"]["annotations"] == {"grafana_folder": "Network"} for c in boards)


def test_default_rules_are_the_alerts_file() -> None:
    m = helm.Chart.load(str(CHART)).render({"prometheusRule": {"enabled": True}}, name="x", namespace="y")
    rule = yaml.safe_load(m["netobs-exporter/templates/prometheusrule.yaml"])
    assert rule["spec"] == yaml.safe_load((REPO / "alerts" / "netobs-rules.yaml").read_text())


def test_otlp_and_filters(tmp_path: Path) -> None:
    m = render("otlp-filters")
    e = env(m)
    assert e["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert (e["OTEL_EXPORTER_OTLP_PROTOCOL"], e["OTEL_METRIC_EXPORT_INTERVAL"]) == ("http/protobuf", "15000")
    assert e["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.node.name=$(NODE_NAME),k8s.cluster.name=prod-eu"
    # Bash audit and TLS off (no uprobes): no CAP_SYS_ADMIN; the extra capability is added.
    assert container(m)["securityContext"]["capabilities"]["add"] == [
        "BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "SYS_RESOURCE"]
    assert container(m)["args"][-2:] == ["--config.set", "Telemetry.MaxSeriesPerInstrument=50000"]
    assert "--log.format=json" in container(m)["args"]
    config = load_config(str(exporter_config(m, tmp_path)), {})
    # Helm merges the values given into the chart's defaults, map by map.
    file = yaml.safe_load(exporter_config(m, tmp_path).read_text())
    for section, keys in values_of("otlp-filters")["config"].items():
        assert {k: file[section][k] for k in keys} == keys
    assert config.common.include_namespace_name_regex.pattern == "^(shop|payments)$"  # type: ignore[union-attr]
    assert config.bash.enabled is False and config.netflow.series_expiry == 120
    assert config.l7.tls_enabled is False


def test_privileged_and_optional_mounts(tmp_path: Path) -> None:
    m = render("privileged")
    assert container(m)["securityContext"] == {"privileged": True}
    paths = mounts(m)
    assert {"/sys/kernel/debug", "/sys/fs/bpf", "/sys/kernel/tracing"} <= set(paths)
    assert "/host/sys/fs/cgroup" not in paths and not any(p.endswith(".sock") for p in paths)
    assert "ClusterRole" not in m and "ServiceAccount" not in m
    assert m["DaemonSet"][0]["spec"]["template"]["spec"]["serviceAccountName"] == "netobs-existing"
    # A section the chart does not know reaches the exporter's file unchanged.
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    file = yaml.safe_load(exporter_config(m, tmp_path).read_text())
    assert file == {**defaults, "Kubernetes": {**defaults["Kubernetes"], "FutureKey": "value"}}
    assert not [c for c in m["ConfigMap"] if "grafana_dashboard" in c["metadata"]["labels"]]


def test_peers_widen_the_cluster_role(tmp_path: Path) -> None:
    """config.Kubernetes.Peers.Enabled: list and watch on services and nodes too (pods are already there)."""
    m = render_values({"config": {"Kubernetes": {"Peers": {"Enabled": True, "Namespaces": ["shop"]}}}})
    validate(m)
    (role,) = m["ClusterRole"]
    assert {"apiGroups": [""], "resources": ["services", "nodes"], "verbs": ["list", "watch"]} in role["rules"]
    config = load_config(str(exporter_config(m, tmp_path)), {})
    assert config.kubernetes.peers_enabled is True and config.kubernetes.peers_namespaces == ("shop",)


@pytest.mark.parametrize("bad", [
    {"metrics": {"port": "http"}},
    {"unknownKey": 1},
    {"prometheusRule": {"alerts": {"NetobsEventsLost": {"enabled": True, "severity": "warning", "for": "soon"}}}},
    {"config": {"Common": {"Tags": {"team": 7}}}},
    {"otlp": {"protocol": "thrift"}},
    {"config": {"Kubernetes": {"Peers": {"Enabled": "yes"}}}},
    {"config": {"Kubernetes": {"Peers": {"Namespaces": ["Shop"]}}}},
    {"commonLabels": {"tier": 1}},
    {"probes": {"type": "exec"}},
    {"dnsPolicy": "None"},
    {"revisionHistoryLimit": -1},
    {"extraVolumeMounts": [{"name": "ca-bundle"}]},
    {"serviceMonitor": {"basicAuth": {"username": {"name": "netobs-scrape", "key": "username"}}}},
    {"podMonitor": {"basicAuth": {"user": "prometheus", "password": "secret"}}},
    {"networkPolicy": {"ingress": []}},
    # Refused by the templates: the node's IP is not the pod's, and two monitors scrape twice.
    {"metrics": {"listenOnHostIP": True}, "hostNetwork": False},
    {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
])
def test_the_schema_refuses_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError):
        helm.Chart.load(str(CHART)).render(bad, name="netobs", namespace="monitoring")


def test_a_secured_endpoint() -> None:
    """metrics.webConfig mounts the Secret and passes --web.config.file; the ServiceMonitor scrapes over
    HTTPS with basic auth. The probes are TCP: the exporter asks for the password on /-/healthy and
    /-/ready too, and the kubelet has none."""
    m = render("secured")
    c = container(m)
    assert "--web.config.file=/etc/netobs/web/web-config.yml" in c["args"]
    assert mounts(m)["/etc/netobs/web"] == ("web-config", True)
    (ds,) = m["DaemonSet"]
    volumes = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert volumes["web-config"]["secret"] == {"secretName": "netobs-web"}
    assert "tcpSocket" in c["readinessProbe"] and "tcpSocket" in c["livenessProbe"]
    (sm,) = m["ServiceMonitor"]
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["scheme"] == "https" and endpoint["tlsConfig"]["serverName"] == "netobs-exporter"
    assert endpoint["basicAuth"]["password"] == {"name": "netobs-scrape", "key": "password"}
    assert not any(a.startswith("--web.config.file") for a in container(render("defaults"))["args"])


def test_common_labels_are_on_every_object() -> None:
    m = render("everything")
    common = values_of("everything")["commonLabels"]
    # A ServiceMonitor's own labels win over commonLabels: Prometheus selects it by them.
    own = {"ServiceMonitor": values_of("everything")["serviceMonitor"]["labels"]}
    kinds = {"DaemonSet", "ConfigMap", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
             "ServiceMonitor", "PrometheusRule", "NetworkPolicy"}
    assert kinds <= set(m)
    for obj in (o for objects in m.values() for o in objects):
        labels = obj["metadata"]["labels"]
        assert labels.items() >= {**common, **own.get(obj["kind"], {})}.items(), obj["kind"]
        # The chart's own labels keep their values: its selectors never change.
        assert labels["app.kubernetes.io/name"] == "netobs-exporter", obj["kind"]
    (ds,) = m["DaemonSet"]
    assert ds["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "netobs-exporter", "app.kubernetes.io/instance": "netobs"}
    assert ds["spec"]["template"]["metadata"]["labels"] == {
        **ds["spec"]["selector"]["matchLabels"], **common, "tier": "node-agent"}
    (sm,) = m["ServiceMonitor"]
    assert sm["metadata"]["labels"]["team"] == "sre"
    spec = sm["spec"]
    assert (spec["jobLabel"], spec["targetLabels"], spec["sampleLimit"]) == (
        "app.kubernetes.io/part-of", ["team"], 200000)
    (svc,) = m["Service"]
    assert svc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "observability"  # what jobLabel reads


def test_pod_spec_values() -> None:
    m = render("pod-spec")
    pod = pod_spec(m)
    assert pod["securityContext"] == values_of("pod-spec")["podSecurityContext"]
    assert pod["dnsPolicy"] == "Default"
    # null removes the default arch key; the other keys merge into the chart's.
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "node-role.example.com/observed": "true"}
    assert m["DaemonSet"][0]["spec"]["revisionHistoryLimit"] == 3
    assert {"name": "ca-bundle", "configMap": {"name": "corporate-ca"}} in pod["volumes"]
    assert mounts(m)["/etc/ssl/certs/corporate"] == ("ca-bundle", True)
    # The container's securityContext is untouched by the pod's.
    assert container(m)["securityContext"] == container(render("defaults"))["securityContext"]


def test_listening_on_the_node_ip_with_a_pod_monitor() -> None:
    m = render("host-ip")
    c = container(m)
    assert "--web.listen-address=$(HOST_IP):10039" in c["args"]
    assert env(m)["HOST_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert pod_spec(m)["hostNetwork"] is True
    # TLS alone: the kubelet's HTTPS GET does not check the certificate and needs no password.
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics", "scheme": "HTTPS"}
    assert c["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert "ServiceMonitor" not in m
    (pm,) = m["PodMonitor"]
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = pm["spec"]
    assert (spec["jobLabel"], spec["podTargetLabels"], spec["sampleLimit"]) == (
        "app.kubernetes.io/name", ["app.kubernetes.io/instance"], 100000)
    assert spec["selector"]["matchLabels"] == m["DaemonSet"][0]["spec"]["selector"]["matchLabels"]
    assert spec["namespaceSelector"] == {"matchNames": ["monitoring"]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"], endpoint["interval"]) == (
        "metrics", "/metrics", "https", "20s")
    assert endpoint["tlsConfig"]["serverName"] == "netobs-exporter" and "basicAuth" not in endpoint
    assert endpoint["relabelings"][0] == {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}


def test_a_pod_monitor_with_a_password() -> None:
    """basicAuth names the Secret's keys, as the Prometheus Operator reads them; with the web config left
    to its default probe type, the probes are TCP."""
    values = values_of("host-ip")
    values["probes"] = {"type": ""}
    values["podMonitor"]["basicAuth"] = {"username": {"name": "netobs-scrape", "key": "username"},
                                         "password": {"name": "netobs-scrape", "key": "password"}}
    m = render_values(values)
    validate(m)
    (endpoint,) = m["PodMonitor"][0]["spec"]["podMetricsEndpoints"]
    assert endpoint["basicAuth"] == values["podMonitor"]["basicAuth"]
    c = container(m)
    assert c["readinessProbe"]["tcpSocket"] == c["livenessProbe"]["tcpSocket"] == {"port": "metrics"}


def test_a_network_policy_off_the_host_network() -> None:
    m = render("pod-network")
    pod = pod_spec(m)
    assert (pod["hostNetwork"], pod["hostPID"], pod["dnsPolicy"]) == (False, True, "ClusterFirst")
    (policy,) = m["NetworkPolicy"]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == m["DaemonSet"][0]["spec"]["selector"]["matchLabels"]
    assert spec["policyTypes"] == ["Ingress"]  # the exporter's own connections stay open
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": 10039, "protocol": "TCP"}]
    assert rule["from"] == values_of("pod-network")["networkPolicy"]["from"]
    # With no peers named, every source may reach the metrics port, and only it.
    (open_rule,) = render_values({"networkPolicy": {"enabled": True}})["NetworkPolicy"][0]["spec"]["ingress"]
    assert open_rule == {"ports": [{"port": 10039, "protocol": "TCP"}]}


def test_the_packaged_chart_lints_and_renders_as_the_directory(tmp_path: Path) -> None:
    archive = Path(helm.package(str(CHART), destination=str(tmp_path)))
    assert archive.name == "netobs-exporter-0.1.0.tgz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"netobs-exporter/values.schema.json", "netobs-exporter/README.md"} <= names
    boards = {f"netobs-exporter/files/dashboards/{p.name}" for p in (CHART / "files" / "dashboards").glob("*.json")}
    assert boards and boards <= names
    report = helm.lint(str(archive), strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    for name in VALUE_FILES:
        m = render_values(values_of(name), chart=archive)
        validate(m)
        assert m == render(name), name


def test_as_the_dependency_of_an_umbrella_chart(tmp_path: Path) -> None:
    """helm/helm#10392: an umbrella chart's `global` values reach every dependency's values, which a
    strict schema must let in."""
    umbrella = tmp_path / "umbrella"
    (umbrella / "templates").mkdir(parents=True)
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    (umbrella / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "observability", "version": "1.0.0",
        "dependencies": [{"name": "netobs-exporter", "version": version, "repository": f"file://{CHART}"}],
    }))
    (umbrella / "values.yaml").write_text(yaml.safe_dump({
        "global": {"imageRegistry": "registry.example.com"},
        "netobs-exporter": {"commonLabels": {"stack": "observability"}, "serviceMonitor": {"enabled": True}},
    }))
    helm.dependency_build(str(umbrella))
    assert (umbrella / "charts" / f"netobs-exporter-{version}.tgz").is_file()
    report = helm.lint(str(umbrella), {"global": {"cluster": "prod-eu"}}, strict=True, with_subcharts=True,
                       kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    m = render_values({"global": {"cluster": "prod-eu"}}, chart=umbrella)
    validate(m)
    (ds,) = m["DaemonSet"]
    assert ds["metadata"]["name"] == "netobs-netobs-exporter"
    assert ds["metadata"]["labels"]["stack"] == "observability"
    assert len(m["ServiceMonitor"]) == 1
    # The schema still holds inside the umbrella: a bad value of the dependency is refused.
    with pytest.raises(helm.HelmError):
        helm.Chart.load(str(umbrella)).render({"netobs-exporter": {"probes": {"type": "exec"}}}, name="netobs",
                                              namespace="monitoring")
