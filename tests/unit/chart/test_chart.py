"""The Helm chart (charts/codejury), rendered by Helm's own Go SDK and checked object by
object: lint, every profile renders and validates (core objects with kubernetes-validate,
custom resources against their CRDs), bad values are refused naming the value, and the
properties a cluster would otherwise find the hard way."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("helm_python", reason="the chart tests need the deploy extra")

from codejury.bus.topics import all_topics
from codejury.core.errors import ConfigurationError
from codejury.core.settings import env_names, load_settings
from codejury.deploy.chart import (
    CHART_DIR,
    PROFILES_DIR,
    Rendered,
    load_values,
    render,
    validate,
)
from codejury.deploy.errors import ChartValuesError

SCHEMAS = Path(__file__).resolve().parents[4] / "shared" / "k8s-schemas"
BAD_VALUES = Path(__file__).parent / "bad_values"
PROFILES = ["default", *sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))]
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def _render(profile: str) -> Rendered:
    """A fresh copy of the profile's rendering (rendered once per session)."""
    return copy.deepcopy(_rendered(profile))


@functools.cache
def _rendered(profile: str) -> Rendered:
    if profile == "default":
        return render({})
    return render(load_values([PROFILES_DIR / f"{profile}.yaml"]))


def _pod_specs(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    specs = [
        (f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
        for o in rendered.objects
        if o["kind"] in POD_OWNERS
    ]
    specs += [
        (f"InferenceService/{o['metadata']['name']}", o["spec"]["predictor"])
        for o in rendered.of_kind("InferenceService")
    ]
    return specs


def _containers(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    found = [
        (f"{where}/{c['name']}", c)
        for where, spec in _pod_specs(rendered)
        for c in spec.get("containers", [])
    ]
    found += [
        (f"ServingRuntime/{o['metadata']['name']}/{c['name']}", c)
        for o in rendered.of_kind("ServingRuntime")
        for c in o["spec"]["containers"]
    ]
    return found


def test_the_profiles_cover_what_users_deploy() -> None:
    assert set(PROFILES) >= {
        "default",
        "strimzi",
        "kserve-serverless",
        "kserve-raw",
        "gpu",
        "vllm",
        "keda",
        "local",
        "monitoring",
        "tls",
    }


def test_tls_mounts_the_secret_sets_the_settings_and_probes_plain_text_ports() -> None:
    rendered = _render("tls")
    grpc_stages = [
        o
        for o in rendered.of_kind("Deployment")
        if o["metadata"]["labels"]["app.kubernetes.io/component"]
        in {"solve", "generation", "execution", "reranking"}
    ]
    assert len(grpc_stages) == 4
    for deployment in grpc_stages:
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["probe"] == ports["grpc"] + 10000
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == ports["probe"]
        env = {e["name"]: e["value"] for e in container["env"]}
        settings = load_settings({})
        # every name is a real setting, and the values parse as CodeJury reads them
        assert set(env) <= set(env_names(secrets=False))
        assert env["CODEJURY_TLS__PROBE_PORT"] == str(ports["probe"])
        assert env["CODEJURY_TLS__CLIENT_AUTH"] == "true"
        mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert env["CODEJURY_TLS__CERT_FILE"].startswith(mounted["tls"] + "/")
        (secret,) = [v["secret"] for v in pod["volumes"] if v["name"] == "tls"]
        assert secret["secretName"] == "codejury-tls"
        assert settings.tls.probe_port is None  # nothing set by default
    # off by default: no probe port, probes on the gRPC port itself
    for deployment in _render("default").of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert all(p["name"] != "probe" for p in container.get("ports", []))


def _settings_data(rendered: Rendered) -> dict[str, str]:
    (config,) = [
        o for o in rendered.of_kind("ConfigMap") if o["metadata"]["name"].endswith("-settings")
    ]
    data: dict[str, str] = config["data"]
    return data


@pytest.mark.parametrize("profile", ["default", "tls", "local"])
def test_the_front_door_watches_each_stage_s_health_where_it_is_served(profile: str) -> None:
    """pipeline.stage_health names every stage's Service and a port it serves health on:
    the gRPC port, the plain-text probe port with TLS (in plain text, so no certificate
    has to name the Services), loopback on the host network."""
    rendered = _render(profile)
    data = _settings_data(rendered)
    settings = load_settings(
        {"pipeline": {"stage_health": data["CODEJURY_PIPELINE__STAGE_HEALTH"]}}
    )
    targets = settings.pipeline.stage_health_targets
    assert set(targets) == {"generation", "execution", "reranking"}
    tls = profile == "tls"
    assert data.get("CODEJURY_PIPELINE__STAGE_HEALTH_PLAINTEXT") == ("true" if tls else None)
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    deployments = {d["metadata"]["name"]: d for d in rendered.of_kind("Deployment")}
    for stage, address in targets.items():
        host, port = address.rsplit(":", 1)
        name = f"codejury-{stage}"
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        served = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert int(port) == served["probe" if tls else "grpc"], stage
        if profile == "local":
            assert host == "127.0.0.1"  # host network: no Services (podman kube play)
            continue
        assert host == f"{name}.codejury.svc"
        ports = {p["port"]: p["targetPort"] for p in services[name]["spec"]["ports"]}
        assert ports[int(port)] == ("probe" if tls else "grpc"), stage
    if tls:  # the front door's own Service does not carry its probe port
        solve_ports = services["codejury-solve"]["spec"]["ports"]
        assert [p["name"] for p in solve_ports] == ["grpc"]


def test_monitoring_serves_metrics_from_every_service_pod_and_a_pod_monitor_scrapes_them() -> None:
    rendered = _render("monitoring")
    (config,) = [o for o in rendered.of_kind("ConfigMap") if "CODEJURY_RUN_DIR" in o["data"]]
    port = int(config["data"]["CODEJURY_METRICS__PORT"])
    assert config["data"]["CODEJURY_METRICS__HOST"] == "0.0.0.0"  # the scraper is outside
    serving = {
        o["metadata"]["labels"]["app.kubernetes.io/component"]
        for o in rendered.of_kind("Deployment")
        if any(
            p.get("name") == "metrics" and p["containerPort"] == port
            for c in o["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        )
    }
    assert serving >= {"solve", "generation", "execution", "reranking", "worker", "operator"}
    (monitor,) = rendered.of_kind("PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    for deployment in rendered.of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] in serving:
            assert selector.items() <= labels.items()
    (dashboard,) = [
        o for o in rendered.of_kind("ConfigMap") if "codejury.json" in o.get("data", {})
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["codejury.json"])["uid"] == "codejury-overview"
    # off by default: no port, no monitor, no setting (and so no endpoint in any process)
    default = _render("default")
    assert not default.of_kind("PodMonitor")
    assert all(
        p.get("name") != "metrics" for _, c in _containers(default) for p in c.get("ports", [])
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_the_chart_lints_clean(profile: str) -> None:
    import helm_python

    values = {} if profile == "default" else load_values([PROFILES_DIR / f"{profile}.yaml"])
    report = helm_python.lint(CHART_DIR, values, strict=True)
    assert report["errors"] == []
    # severity 3 is an error, 2 a warning (strict lint fails on both)
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("profile", PROFILES)
def test_every_rendered_object_validates(profile: str) -> None:
    if not SCHEMAS.is_dir():
        pytest.skip(f"the upstream CRDs are not at {SCHEMAS}: custom resources cannot be checked")
    rendered = _render(profile)
    assert validate(rendered.objects, crd_folders=[SCHEMAS]) == []


def test_validation_catches_a_wrong_field_in_core_and_custom_objects() -> None:
    """The check above can fail: a misspelt field is found in each kind of object."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"the upstream CRDs are not at {SCHEMAS}")
    rendered = _render("strimzi")
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    topic = rendered.of_kind("KafkaTopic")[0]
    topic["spec"]["partitions"] = "three"
    isvc = rendered.of_kind("InferenceService")[0]
    isvc["spec"]["predictor"]["minReplicas"] = "one"
    problems = validate([deployment, topic, isvc], crd_folders=[SCHEMAS])
    assert len(problems) == 3, problems
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert "no schema" in validate([unknown], crd_folders=[SCHEMAS])[0]


@pytest.mark.parametrize("bad", sorted(BAD_VALUES.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_values_are_refused_at_render_time_naming_the_value(bad: Path) -> None:
    expected = bad.read_text().splitlines()[0].split("expect:")[1].strip()
    with pytest.raises(ChartValuesError) as refused:
        render(load_values([bad]))
    assert expected in str(refused.value)


def test_there_are_at_least_ten_bad_values_files() -> None:
    assert len(list(BAD_VALUES.glob("*.yaml"))) >= 10


@pytest.mark.parametrize("profile", PROFILES)
def test_every_container_has_probes_and_resources(profile: str) -> None:
    for where, container in _containers(_render(profile)):
        if not where.startswith("Job/"):  # a Job runs to completion: nothing to probe
            assert container.get("readinessProbe"), f"{where}: no readiness probe"
            assert container.get("livenessProbe"), f"{where}: no liveness probe"
        resources = container.get("resources") or {}
        assert resources.get("requests") and resources.get("limits"), f"{where}: resources"
        assert {"cpu", "memory"} <= set(resources["limits"]), f"{where}: limits"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_pod_turns_service_links_off(profile: str) -> None:
    for where, spec in _pod_specs(_render(profile)):
        assert spec.get("enableServiceLinks") is False, where


def test_service_links_would_crash_every_pod() -> None:
    """Why the setting above matters: the variables Kubernetes injects for the chart's own
    Services (release "codejury") are refused by the settings loader."""
    rendered = _render("default")
    injected = {
        f"{s['metadata']['name'].upper().replace('-', '_')}_SERVICE_HOST": "10.0.0.1"
        for s in rendered.of_kind("Service")
    }
    assert any(name.startswith("CODEJURY_") for name in injected)
    with pytest.MonkeyPatch.context() as env:
        for name, value in injected.items():
            env.setenv(name, value)
        with pytest.raises(ConfigurationError, match="unknown setting"):
            load_settings()


@pytest.mark.parametrize("profile", PROFILES)
def test_the_settings_configmap_loads(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What every pod gets in its environment is a valid settings set."""
    (configmap,) = [
        o
        for o in _render(profile).of_kind("ConfigMap")
        if o["metadata"]["name"].endswith("-settings")
    ]
    for name, value in configmap["data"].items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.generation.grpc_host == "0.0.0.0"
    assert settings.celery.broker_url is not None
    assert settings.celery.broker_url.get_secret_value().startswith("redis://")


def test_the_schema_knows_every_setting_and_only_those() -> None:
    """Secrets (the Solve tokens) are not among them: `settings:` lands in a ConfigMap, so
    they go in the Secret named by existingSecret."""
    import json

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    enum = schema["properties"]["settings"]["propertyNames"]["enum"]
    assert enum == env_names(secrets=False), (
        "charts/codejury/values.schema.json settings.propertyNames: regenerate the enum "
        "from codejury.core.settings.env_names(secrets=False)"
    )
    assert "CODEJURY_PIPELINE__AUTH_TOKENS" in set(env_names()) - set(enum)


def test_only_the_sandbox_worker_runs_privileged_by_default() -> None:
    privileged = [
        where
        for where, c in _containers(_render("default"))
        if (c.get("securityContext") or {}).get("privileged")
        or (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False
    ]
    assert privileged == ["Deployment/codejury-worker/worker"]


def test_the_worker_can_drop_privileged_for_a_runtime_class() -> None:
    rendered = render({"worker": {"privileged": False, "runtimeClassName": "gvisor"}})
    (worker,) = [
        o for o in rendered.of_kind("Deployment") if o["metadata"]["name"].endswith("-worker")
    ]
    spec = worker["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "gvisor"
    context = spec["containers"][0]["securityContext"]
    assert "privileged" not in context
    assert context["allowPrivilegeEscalation"] is False


def test_every_topic_the_code_uses_has_a_kafka_topic_and_a_dlq() -> None:
    topics = {o["spec"]["topicName"]: o for o in _render("strimzi").of_kind("KafkaTopic")}
    assert set(topics) == set(all_topics())
    for name, topic in topics.items():
        retention = topic["spec"]["config"]["retention.ms"]
        assert retention == (2592000000 if name.endswith(".dlq") else 604800000), name


@pytest.mark.parametrize("profile", PROFILES)
def test_secrets_are_referenced_never_inlined(profile: str) -> None:
    rendered = _render(profile)
    assert rendered.of_kind("Secret") == []
    secretish = re.compile(r"(^|_)(KEY|PASSWORD|TOKEN|SECRET)$")
    for where, container in _containers(rendered):
        for env in container.get("env") or []:
            if secretish.search(env["name"]):
                assert "valueFrom" in env and "value" not in env, f"{where}: {env['name']}"
    for configmap in rendered.of_kind("ConfigMap"):
        for name, value in configmap["data"].items():
            assert not secretish.search(name), name
            assert "@" not in value, f"{name}: credentials in a URL belong in existingSecret"


def test_the_vllm_profile_takes_the_key_from_a_secret() -> None:
    rendered = _render("vllm")
    (generation,) = [
        c
        for where, c in _containers(rendered)
        if where.startswith("Deployment/codejury-generation")
    ]
    (key,) = [e for e in generation["env"] if e["name"] == "CODEJURY_GENERATION__OPENAI_API_KEY"]
    assert key["valueFrom"]["secretKeyRef"] == {"name": "vllm-api-key", "key": "token"}
    assert "nvidia.com/gpu" not in generation["resources"]["limits"]


def test_the_gpu_profile_asks_for_a_gpu_on_a_gpu_node() -> None:
    rendered = _render("gpu")
    (deployment,) = [
        o for o in rendered.of_kind("Deployment") if o["metadata"]["name"] == "codejury-generation"
    ]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"


@pytest.mark.parametrize(
    ("profile", "mode"), [("kserve-serverless", "Serverless"), ("kserve-raw", "Standard")]
)
def test_the_operator_drives_the_mode_the_inference_service_runs_in(
    profile: str, mode: str
) -> None:
    rendered = _render(profile)
    (isvc,) = rendered.of_kind("InferenceService")
    (operator,) = [
        o for o in rendered.of_kind("Deployment") if o["metadata"]["name"].endswith("-operator")
    ]
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--kserve-mode={mode}" in args
    assert f"--inference-service={isvc['metadata']['name']}" in args
    claim = next(a for a in args if a.startswith("--run-dir-claim=")).split("=", 1)[1]
    # the training Jobs get the same settings as every pod (the Celery broker above all)
    (settings,) = [
        c for c in rendered.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-settings")
    ]
    assert f"--settings-configmap={settings['metadata']['name']}" in args
    # The operator's storage URIs (OperatorSettings.storage_uri) and the chart's agree.
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == (
        f"pvc://{claim}/reranking/registry/versions/v0/model"
    )


def test_the_chart_installs_the_operators_crd() -> None:
    chart_crd = (CHART_DIR / "crds" / "selftrainingrun.yaml").read_text()
    operator_crd = (
        CHART_DIR.parents[1] / "operators" / "crds" / "selftrainingrun.yaml"
    ).read_text()
    # one file: operators/crds/ links to the chart's (Helm cannot read outside the chart)
    assert chart_crd == operator_crd, "operators/crds/selftrainingrun.yaml must link to it"


def test_the_dashboard_queries_only_metrics_codejury_serves() -> None:
    """A renamed metric would leave a panel empty without an error anywhere: every name a
    query uses is one core.metrics defines (histograms by their _bucket series)."""
    from codejury.core import metrics
    from prometheus_client import Counter, Histogram
    from prometheus_client import metrics as prom

    dashboard = json.loads((CHART_DIR / "files/dashboards/codejury.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    served = set()
    for value in vars(metrics).values():
        if isinstance(value, prom.MetricWrapperBase):
            name = value._name
            if isinstance(value, Counter):
                served.add(f"{name}_total")
            elif isinstance(value, Histogram):
                served |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
            else:
                served.add(name)
    # the series' names: what is left once label matchers and groupings are taken out
    bare = [re.sub(r"\{[^}]*\}|by \([^)]*\)", "", e) for e in exprs]
    used = {m for e in bare for m in re.findall(r"\b(?:codejury|grpc)_[a-z_]+\b", e)}
    assert used and used <= served, used - served
    panels = {p["title"] for p in dashboard["panels"]}
    assert any("Canary" in t for t in panels) and any("latency" in t for t in panels)
