"""The deployment files: Kubernetes manifests against the offline Kubernetes schemas, the
compose file against the Compose Specification schema, and both against the service's
settings. No docker engine or cluster is needed."""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from insightray.serving.settings import ServeSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
SETTINGS_VARIABLES = {f"INSIGHTRAY_{f.name.upper()}" for f in dataclasses.fields(ServeSettings)}
MANIFESTS = sorted(KUBERNETES.rglob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every manifest by (file name, kind, name)."""
    return {
        (path.name, doc["kind"], doc["metadata"]["name"]): doc
        for path in MANIFESTS
        for doc in documents(path)
    }


def deployments() -> list[dict[str, Any]]:
    return [doc for (_, kind, _), doc in resources().items() if kind == "Deployment"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_rejects_a_broken_deployment() -> None:
    broken = copy.deepcopy(deployments()[0])
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(deployments()[0])
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # typo: "resources"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_manifests_fit_together() -> None:
    found = resources()
    names = {(kind, name) for _, kind, name in found}
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Secret"):
        assert any(k == kind for k, _ in names), f"no {kind} manifest"
    assert ("PersistentVolumeClaim", "insightray-data") in names
    service = next(doc for (_, kind, _), doc in found.items() if kind == "Service")
    hpa = next(doc for (_, kind, _), doc in found.items() if kind == "HorizontalPodAutoscaler")
    for deployment in deployments():
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"].items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels
        assert service["spec"]["selector"].items() <= labels
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in container["ports"]
        refs = [next(iter(source.values()))["name"] for source in container["envFrom"]]
        assert ("ConfigMap", refs[0]) in names and ("Secret", refs[1]) in names
        volumes = pod["spec"]["volumes"]
        claims = [
            v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
        ]
        assert claims == ["insightray-data"]
        data_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/data")
        assert data_mount["name"] in {v["name"] for v in pod["spec"]["volumes"]}
    containers = [d["spec"]["template"]["spec"]["containers"][0] for d in deployments()]
    gpu = [c for c in containers if "nvidia.com/gpu" in c["resources"]["limits"]]
    assert len(gpu) == 1 and gpu[0]["image"].endswith(":cuda")


def test_configuration_names_real_settings() -> None:
    for (_, kind, _), doc in resources().items():
        if kind in ("ConfigMap", "Secret"):
            keys = set(doc.get("data", {})) | set(doc.get("stringData", {}))
            assert keys <= SETTINGS_VARIABLES, f"{kind}: unknown {keys - SETTINGS_VARIABLES}"
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        keys = {k for k in service.get("environment", {}) if k.startswith("INSIGHTRAY_")}
        assert keys <= SETTINGS_VARIABLES, f"compose {name}: unknown {keys - SETTINGS_VARIABLES}"


def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema as vendored by check-jsonschema (offline)."""
    try:
        folder = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        pytest.fail("check-jsonschema is missing: pip install -e '.[dev]'")
    schema: dict[str, Any] = json.loads((folder / "compose-spec.json").read_text())
    return schema


def test_compose_file_matches_the_compose_spec() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    broken = copy.deepcopy(compose)
    broken["services"]["app"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["app"]["restartt"] = "always"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_references_resolve() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"app", "postgres", "redis", "orthanc"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "$")):
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: undeclared secret {secret}"
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
    for name in ("app", "postgres", "redis"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    url = services["app"]["environment"]["INSIGHTRAY_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert services["app"]["environment"]["INSIGHTRAY_REDIS_URL"] == "redis://redis:6379/0"


def test_compose_variables_are_documented_and_no_secret_is_committed() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = (DEPLOY / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert used <= documented, f"not in deploy/.env.example: {used - documented}"
    assert re.search(r"^POSTGRES_PASSWORD=$", example, flags=re.MULTILINE), "ship no password"
    compose = yaml.safe_load(text)
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${")


def test_dockerfile_is_multi_stage_non_root_and_offline() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, flags=re.MULTILINE)
    assert stages == ["build", "runtime"]
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, flags=re.MULTILINE)
    assert "cuda)" in text and "cpu)" in text
    assert re.search(r"^USER 10001:10001$", text, flags=re.MULTILINE)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert re.search(r"^EXPOSE 8000$", text, flags=re.MULTILINE)
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in text
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    ignore = [
        line
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignore[:5] == ["*", "!pyproject.toml", "!constraints.txt", "!README.md", "!insightray/"]


def test_operator_guide_names_every_setting() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(v for v in SETTINGS_VARIABLES if f"`{v}`" not in guide)
    assert not missing, f"docs/operations.md does not describe {missing}"


def _exposed_metrics() -> str:
    """What the service's /metrics renders once every kind of series has a value."""
    from insightray.monitoring.window import WindowFigures
    from insightray.serving.hosting.metrics import FeedbackFigures, ServiceMetrics

    metrics = ServiceMetrics()
    metrics.observe_ood("m", "1", 2.0, True)
    metrics.observe_request("POST", "/v1/studies/{study_id}/analyze", 200, 0.2)
    metrics.observe_prediction("cxr", "m", "1", 0.1)
    metrics.observe_cache("m", "1", hit=False)
    metrics.batch_size.labels("m", "1").observe(1)
    metrics.queue_depth.labels("m", "1").set(0)
    metrics.watch_feedback(lambda: [FeedbackFigures("m", "1", {"box": (4, 1)}, 0.25, True, 1)])
    window = WindowFigures(60, 0.5, 0.3, True, True, {"mean": 0.7}, 0.004, 60)
    metrics.watch_drift(lambda: [("m", "1", window)])
    return metrics.render().decode()


def _series_names(expressions: str) -> set[str]:
    return set(re.findall(r"\binsightray_[a-z0-9_]+", expressions))


def test_alert_rules_use_the_services_ood_drift_and_feedback_series() -> None:
    rules_file = ROOT / "deploy" / "prometheus" / "insightray-alerts.yml"
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    expressions = " ".join(rule["expr"] for group in groups for rule in group["rules"])
    exposed = _exposed_metrics()
    names = _series_names(expressions)
    assert {
        "insightray_ood_images_total", "insightray_ood_score_bucket",
        "insightray_retraining_triggers_total", "insightray_retraining_needed",
        "insightray_drift_detected", "insightray_drift_psi_max",
        "insightray_drift_embedding_p_value", "insightray_drift_ood_rate",
    } <= names  # fmt: skip
    missing = sorted(name for name in names if f"\n{name}{{" not in exposed)
    assert not missing, f"the alert rules name series /metrics does not expose: {missing}"
    assert 'insightray_feedback_precision{model="m",version="1"} 0.25' in exposed
    assert 'insightray_drift_psi{feature="mean",model="m",version="1"} 0.7' in exposed


def test_grafana_dashboard_queries_exposed_series_through_a_datasource_variable() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "insightray-monitoring.json").read_text())
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    expressions = []
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["targets"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}" and target["refId"]
            expressions.append(target["expr"])
    expressions += [item["definition"] for item in variables.values() if "definition" in item]
    names = _series_names(" ".join(expressions))
    exposed = _exposed_metrics()
    missing = sorted(name for name in names if f"\n{name}{{" not in exposed)
    assert not missing, f"the dashboard queries series /metrics does not expose: {missing}"
    titles = " ".join(panel["title"].lower() for panel in panels)
    for topic in ("out-of-distribution", "population stability", "mmd", "score", "agreement",
                  "retraining", "latency"):  # fmt: skip
        assert topic in titles
