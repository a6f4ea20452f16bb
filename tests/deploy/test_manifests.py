"""deploy/k8s and docker-compose.yml: parsed, schema-checked, and held to what the app needs.

kubernetes-validate checks every resource against the Kubernetes schemas offline; kubectl's
client-side dry run maps each kind through an API server's discovery: a fake one here
(tests/fakes/kube_apiserver.py), and the configured cluster where one answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.metrics import QueueCollector
from common.nats_server import nats_server_binary
from common.service import Worker
from common.settings import load_settings
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.support import REPO

K8S = REPO / "deploy" / "k8s"
COMPOSE = REPO / "docker-compose.yml"
WORKERS = ("aggregator", "mailer", "scheduler", "sync")


SECRET_TEMPLATE = K8S / "templates" / "secret.example.yaml"


def load_all() -> list[dict[str, Any]]:
    """What `kubectl apply -f deploy/k8s/` applies (not templates/)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def secret_template() -> dict[str, Any]:
    secret = yaml.safe_load(SECRET_TEMPLATE.read_text())
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "manireports-secrets"
    return secret


def find(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in load_all() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_every_manifest_parses_and_the_set_is_complete():
    found = {(d["kind"], d["metadata"]["name"]) for d in load_all()}
    expected = {
        ("ConfigMap", "manireports-config"),
        ("Deployment", "manireports-web"),
        ("Service", "manireports-web"),
        ("Deployment", "manireports-beat"),
        ("Service", "manireports-beat"),
        ("PodDisruptionBudget", "manireports-beat"),
        ("Ingress", "manireports"),
        *{("Deployment", f"manireports-{w}") for w in WORKERS},
        *{("PodDisruptionBudget", f"manireports-{w}") for w in ("web", *WORKERS)},
        ("Job", "manireports-migrate"),
        ("HorizontalPodAutoscaler", "manireports-mailer"),
        ("ConfigMap", "nats-config"),
        ("Service", "nats"),
        ("Service", "nats-headless"),
        ("StatefulSet", "nats"),
        ("PodDisruptionBudget", "nats"),
    }
    assert found == expected


def test_no_manifest_names_a_namespace():
    docs = [*load_all(), secret_template()]
    assert [d["metadata"]["name"] for d in docs if "namespace" in d["metadata"]] == []


def test_applying_the_directory_never_overwrites_the_secret_with_placeholders():
    assert [d for d in load_all() if d["kind"] == "Secret"] == []
    assert all("CHANGE_ME" in v for v in secret_template()["stringData"].values())


def test_every_resource_passes_the_kubernetes_schema_strictly():
    validate = pytest.importorskip("kubernetes_validate")
    for doc in [*load_all(), secret_template()]:
        validate.validate(doc, "1.30.0", strict=True)


def test_the_schema_check_catches_a_misspelt_field():
    validate = pytest.importorskip("kubernetes_validate")
    broken = find("Deployment", "manireports-mailer")
    container(broken)["readinesProbe"] = container(broken).pop("readinessProbe")
    with pytest.raises(validate.ValidationError):
        validate.validate(broken, "1.30.0", strict=True)


def test_deployments_roll_without_losing_capacity_and_declare_resources():
    for name in ("web", "beat", *WORKERS):
        deployment = find("Deployment", f"manireports-{name}")
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, name
        resources = container(deployment)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name
        sources = {next(iter(s.values()))["name"] for s in container(deployment)["envFrom"]}
        assert sources == {"manireports-config", "manireports-secrets"}, name
    assert find("Deployment", "manireports-scheduler")["spec"]["replicas"] == 2


def test_web_is_ready_on_healthz_and_workers_on_their_health_subject():
    web = container(find("Deployment", "manireports-web"))
    assert web["command"] == ["manireports", "web"]
    assert web["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "livenessProbe" in web
    for name in WORKERS:
        worker = container(find("Deployment", f"manireports-{name}"))
        assert worker["command"] == ["manireports", "worker", name]
        ready = worker["readinessProbe"]["exec"]["command"]
        alive = worker["livenessProbe"]["exec"]["command"]
        assert ready == ["python", "-m", "cli.worker_health", name]
        assert alive == [*ready, "--liveness"]


def test_the_ingress_sends_beats_to_the_lean_endpoint_and_the_rest_to_web():
    settings = load_settings({**find("ConfigMap", "manireports-config")["data"],
                              **secret_template()["stringData"]})  # fmt: skip
    beat = container(find("Deployment", "manireports-beat"))
    assert beat["command"] == ["manireports", "beat"]
    assert beat["ports"][0]["containerPort"] == settings.beat_port
    assert settings.beat_host == "0.0.0.0"
    assert beat["readinessProbe"]["httpGet"]["path"] == "/healthz"
    web = container(find("Deployment", "manireports-web"))
    assert web["ports"][0]["containerPort"] == settings.web_port
    (rule,) = find("Ingress", "manireports")["spec"]["rules"]
    routes = {(p["path"], p["pathType"]): p["backend"]["service"]["name"]
              for p in rule["http"]["paths"]}  # fmt: skip
    assert routes == {("/tracking/beat", "Exact"): "manireports-beat",
                      ("/", "Prefix"): "manireports-web"}  # fmt: skip
    for name in ("beat", "web"):
        service = find("Service", f"manireports-{name}")["spec"]
        assert service["selector"] == find("Deployment", f"manireports-{name}")["spec"][
            "selector"]["matchLabels"]  # fmt: skip


def test_workers_get_longer_than_their_shutdown_grace_before_sigkill():
    for name in WORKERS:
        spec = find("Deployment", f"manireports-{name}")["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] >= Worker.shutdown_grace_s + 15, name


def test_nats_is_a_three_node_jetstream_cluster_and_streams_keep_three_copies():
    nats = find("StatefulSet", "nats")["spec"]
    assert nats["replicas"] == 3
    assert nats["serviceName"] == "nats-headless"
    assert find("Service", "nats-headless")["spec"]["clusterIP"] == "None"
    (claim,) = nats["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in nats["template"]["spec"]["containers"][0][
        "volumeMounts"]}  # fmt: skip
    assert mounts[claim["metadata"]["name"]] == "/data"
    conf = find("ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "store_dir: /data/jetstream" in conf
    for i in range(3):
        assert f"nats://nats-{i}.nats-headless:6222" in conf
    settings = find("ConfigMap", "manireports-config")["data"]
    assert int(settings["NATS_REPLICAS"]) == nats["replicas"]
    assert find("PodDisruptionBudget", "nats")["spec"]["maxUnavailable"] == 1


def test_the_nats_configuration_is_accepted_by_nats_server(tmp_path: Path):
    conf = tmp_path / "nats.conf"
    conf.write_text(find("ConfigMap", "nats-config")["data"]["nats.conf"])
    env = {**os.environ, "POD_NAME": "nats-0"}
    checked = subprocess.run([nats_server_binary(), "-c", str(conf), "-t"], env=env,
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "is valid" in checked.stdout + checked.stderr


def test_the_settings_and_secret_template_load_as_the_app_reads_them():
    values = {
        **find("ConfigMap", "manireports-config")["data"],
        **secret_template()["stringData"],
    }
    settings = load_settings(values)
    assert settings.nats_replicas == 3
    assert settings.metrics_port == 9100 and settings.metrics_host == "0.0.0.0"
    for name in WORKERS:
        worker = find("Deployment", f"manireports-{name}")
        ports = {p["name"]: p["containerPort"] for p in container(worker)["ports"]}
        assert ports["metrics"] == settings.metrics_port
        annotations = worker["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(settings.metrics_port)


def test_mailers_scale_on_the_mail_queue_depth_the_workers_export():
    hpa = find("HorizontalPodAutoscaler", "manireports-mailer")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "manireports-mailer"
    }  # fmt: skip
    (metric,) = hpa["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {"stream": "MAIL"}
    exported = [f.name for f in QueueCollector(lambda: []).collect()]
    assert metric["external"]["metric"]["name"] in exported
    assert hpa["minReplicas"] >= 2


def test_the_migrate_job_runs_db_upgrade_once_without_retries():
    job = find("Job", "manireports-migrate")["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["command"] == ["manireports", "db", "upgrade"]


def kubectl(*args: str, server: str | None = None, cache: Path | None = None):  # type: ignore[no-untyped-def]
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    options = ["--server", server] if server else []
    options += ["--cache-dir", str(cache)] if cache else []
    return subprocess.run(["kubectl", *options, *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApiServer]:
    server = FakeKubeApiServer().start()
    yield server
    server.stop()


def test_kubectl_maps_and_dry_runs_every_manifest_in_any_namespace(kube_api, tmp_path: Path):
    """Against a server's discovery documents (tests/fakes/kube_apiserver.py); the schemas are
    checked above, so kubectl's own download of them is off."""
    done = kubectl("apply", "--dry-run=client", "--validate=false", "-n", "mr-test", "-f",
                   str(K8S), server=kube_api.url, cache=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    created = {line.split(" ")[0] for line in done.stdout.splitlines()}
    assert len(created) == len(load_all())
    assert {"statefulset.apps/nats", "deployment.apps/manireports-mailer",
            "horizontalpodautoscaler.autoscaling/manireports-mailer",
            "job.batch/manireports-migrate"} <= created  # fmt: skip
    assert all(line.endswith("created (dry run)") for line in done.stdout.splitlines())
    objects = [r for r in kube_api.requests if "/namespaces/" in r]
    assert objects and all("/namespaces/mr-test" in r for r in objects)


def test_kubectl_refuses_a_kind_the_cluster_does_not_serve(kube_api, tmp_path: Path):
    bad = tmp_path / "manifests"
    bad.mkdir()
    pdb = find("PodDisruptionBudget", "manireports-mailer")
    pdb["apiVersion"] = "policy/v1beta1"  # removed in Kubernetes 1.25
    (bad / "pdb.yaml").write_text(yaml.safe_dump(pdb))
    done = kubectl("apply", "--dry-run=client", "--validate=false", "-f", str(bad),
                   server=kube_api.url, cache=tmp_path / "cache")  # fmt: skip
    assert done.returncode != 0
    assert 'no matches for kind "PodDisruptionBudget" in version "policy/v1beta1"' in done.stderr


def test_kubectl_dry_run_on_the_configured_cluster():
    """With a cluster in kubectl's configuration, its own discovery and schemas."""
    done = kubectl("apply", "--dry-run=client", "-f", str(K8S))
    unreachable = ("connection refused", "couldn't get current server API group list",
                   "failed to download openapi", "no such host", "i/o timeout")  # fmt: skip
    if done.returncode != 0 and any(u in done.stderr for u in unreachable):
        pytest.skip(f"no cluster answers kubectl: {done.stderr.splitlines()[-1][:120]}")
    assert done.returncode == 0, done.stderr
    assert "statefulset.apps/nats created (dry run)" in done.stdout


# -- docker-compose.yml ----------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_gives_workers_time_to_finish_and_checks_their_health():
    services = compose()["services"]
    for name in WORKERS:
        service = services[name]
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace >= Worker.shutdown_grace_s + 15, name
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "cli.worker_health",
                                                  name]  # fmt: skip
    assert services["migrate"]["command"] == ["manireports", "db", "upgrade"]
    assert services["scheduler"]["deploy"]["replicas"] == 2


def test_docker_compose_config_accepts_the_file(tmp_path: Path):
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker has no compose plugin")
    env = {**os.environ, "SECRET_KEY": "k" * 40, "DB_PASSWORD": "pw",
           "MOODLE_DATABASE_URL": "mysql+pymysql://reader:pw@moodle/moodle"}  # fmt: skip
    done = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    missing = {k: v for k, v in env.items() if k != "SECRET_KEY"}
    refused = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
                             env=missing, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr
