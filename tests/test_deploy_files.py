"""The deploy/ files, checked as far as this machine allows (no container runtime here).

* ``docker-compose config`` (Debian's docker-compose 1.29) must accept the compose file,
  its GPU overlay and profiles, and refuse to start without the database password;
* ``kubectl kustomize`` renders every overlay, and each rendered object validates against
  the Kubernetes schemas (``kubernetes-validate``, strict); the two custom resources
  (ServiceMonitor, CNPG Cluster) have no schema there and are checked for their fields;
* the alert rules and the dashboard only name metrics the bot exports;
* the Dockerfile's and compose file's commands are the CLI's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
OVERLAYS = ("external-db", "cloudnativepg", "gpu", "discord-shards")
KUBERNETES_VERSION = "1.30.0"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # `make test` installs docker-compose from Debian when it can; kubectl has no
        # current Debian package. README, "Skips allowed in CI", names both reasons.
        pytest.skip(f"{name} is not installed (README, Deploy)")
    return path


def _compose(*args: str, password: str | None = "secret") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    if password is not None:
        env["POSTGRES_PASSWORD"] = password
    return subprocess.run(
        [_tool("docker-compose"), "--project-directory", str(DEPLOY), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_docker_compose_accepts_the_compose_file_and_its_gpu_overlay() -> None:
    base = _compose("-f", str(DEPLOY / "compose.yaml"), "config")
    assert base.returncode == 0, base.stderr
    config = yaml.safe_load(base.stdout)
    services = config["services"]
    assert {"db", "migrate", "bot", "worker"} <= set(services)
    assert services["db"]["image"].startswith("pgvector/pgvector")
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["worker"]["command"] == ["worker"]
    assert services["bot"]["command"][:2] == ["run", "--adapters"]
    for name in ("bot", "worker", "migrate"):
        assert services[name]["read_only"] is True
        assert "secret" in services[name]["environment"]["DATABASE_URL"]
    gpu = _compose(
        "-f",
        str(DEPLOY / "compose.yaml"),
        "-f",
        str(DEPLOY / "compose.gpu.yaml"),
        "--profile",
        "llm",
        "config",
    )
    assert gpu.returncode == 0, gpu.stderr
    llm = yaml.safe_load(gpu.stdout)["services"]["llm"]
    assert "cuda" in llm["image"]
    assert llm["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


def test_compose_refuses_to_start_without_a_database_password() -> None:
    result = _compose("-f", str(DEPLOY / "compose.yaml"), "config", password=None)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def _render(overlay: str) -> list[dict]:
    result = subprocess.run(
        [_tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_renders_manifests_that_validate_against_the_kubernetes_schemas(
    overlay: str,
) -> None:
    import kubernetes_validate

    docs = _render(overlay)
    custom = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            custom.append(doc)
    assert {d["kind"] for d in custom} <= {"ServiceMonitor", "Cluster"}
    for doc in custom:  # no schema bundled for custom resources: check what we rely on
        if doc["kind"] == "ServiceMonitor":
            assert doc["spec"]["endpoints"][0]["path"] == "/metrics"
        else:
            sql = doc["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
            assert any("vector" in s for s in sql)
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    gateway = kinds[("Deployment", "librarian-gateway")]
    assert gateway["spec"]["replicas"] == 1
    assert gateway["spec"]["strategy"]["type"] == "Recreate"
    for name in ("librarian-gateway", "librarian-worker"):
        container = kinds[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    hpa = kinds[("HorizontalPodAutoscaler", "librarian-worker")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "librarian-worker"
    if overlay == "cloudnativepg":
        env = gateway["spec"]["template"]["spec"]["containers"][0]["env"]
        assert env[0]["valueFrom"]["secretKeyRef"]["name"] == "librarian-db-app"


def test_discord_shards_run_one_per_pod_with_the_pod_ordinal_as_shard_id() -> None:
    """The StatefulSet runs as many pods as shards, and pod N runs shard N only."""
    from bot.config import Settings

    docs = _render("discord-shards")
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    shards = kinds[("StatefulSet", "librarian-discord")]
    pod = shards["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    count = env["LIBRARIAN_DISCORD_SHARD_COUNT"]["value"]
    assert shards["spec"]["replicas"] == int(count)  # one pod per shard, every shard run
    index = env["LIBRARIAN_DISCORD_SHARD_IDS"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert index == "metadata.labels['apps.kubernetes.io/pod-index']"
    # What the last pod's settings become: its one shard, inside the count.
    last = Settings(discord_shard_count=count, discord_shard_ids=str(int(count) - 1))
    assert last.discord_shard_ids == [int(count) - 1]
    assert container["args"] == ["run", "--adapters", "discord"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    gateway = kinds[("Deployment", "librarian-gateway")]["spec"]["template"]["spec"]
    assert container["image"] == gateway["containers"][0]["image"]
    service = kinds[("Service", "librarian-discord")]
    assert shards["spec"]["serviceName"] == "librarian-discord"
    assert service["spec"]["clusterIP"] == "None"


def test_the_schema_check_catches_a_broken_manifest() -> None:
    import kubernetes_validate

    deployment = next(d for d in _render("external-db") if d["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def _exported_metric_names() -> set[str]:
    names = set()
    metrics = Metrics()
    # Labelled series exist once used: one failed answer, as the answerer records it.
    metrics.record_answer("console", None)
    metrics.answer_seconds.labels(stage="total").observe(1.0)
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Read at scrape time from the inference facade and the database pools.
    names |= {
        "librarian_backend_up",
        "librarian_backend_inflight",
        "librarian_db_pool_size",
        "librarian_db_pool_checked_out",
        "librarian_db_pool_overflow",
    }
    return names


def _metrics_named(text: str) -> set[str]:
    return set(re.findall(r"\blibrarian_[a-z_]+", text))


def test_alerts_and_dashboard_name_only_exported_metrics() -> None:
    exported = _exported_metric_names()
    rules = yaml.safe_load((DEPLOY / "monitoring" / "alerts.yaml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert exprs
    used = set().union(*(_metrics_named(e) for e in exprs))
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    targets = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used |= set().union(*(_metrics_named(e) for e in targets))
    assert used - exported == set()
    assert {"librarian_answers_total", "librarian_ingest_queue_depth"} <= used


def test_the_images_commands_are_the_cli_s_own() -> None:
    from typer.main import get_command

    from bot.cli import _register
    from bot.cli import app as cli

    _register()
    commands = set(get_command(cli).commands)  # type: ignore[attr-defined]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["librarian"]' in dockerfile
    assert re.search(r"^USER librarian$", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for service in compose["services"].values():
        if service.get("image", "").startswith("${LIBRARIAN_IMAGE"):
            assert service["command"][0] in commands
    for unit in (DEPLOY / "systemd").glob("*.service"):
        for line in unit.read_text().splitlines():
            if line.startswith(("ExecStart=/opt/librarian", "ExecStartPre=/opt/librarian")):
                assert line.split()[1] in commands, line
