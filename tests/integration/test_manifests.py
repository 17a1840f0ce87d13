"""The deployment files, checked offline: the Kubernetes manifests (deploy/k8s) against the Kubernetes
schemas bundled with kubernetes-validate (they are validated here, not run: this kind of host has no
cluster), and the Swarm stack (deploy/swarm) against the compose file it mirrors."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from support.containers import MODEL_SERVICES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


@pytest.mark.parametrize("doc", manifests(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_is_valid_for_kubernetes(doc: dict[str, Any]) -> None:
    # strict: a misspelt or misplaced field fails, as the API server would refuse it.
    kubernetes_validate.validate(doc, latest_version(), strict=True)


def test_the_manifests_wire_the_fleet_together() -> None:
    deployments, services = by_kind("Deployment"), by_kind("Service")
    assert set(deployments) == {"gateway", *MODEL_SERVICES}
    assert set(by_kind("StatefulSet")) == {"redis"} and "redis" in services
    # Every model service is headless, so its name resolves to every pod and the gateways spread over them.
    assert all(services[name]["spec"]["clusterIP"] == "None" for name in MODEL_SERVICES)
    gateway_env = {
        e["name"]: e.get("value") for e in deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    backends = json.loads(gateway_env["CHRONOTICK_GATEWAY_SERVICES"])
    assert backends == {name: f"http://{name}:8000" for name in MODEL_SERVICES}
    assert gateway_env["CHRONOTICK_GATEWAY_CLOCK_STORE_URL"] == "redis://redis:6379/0"
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == f"chronotick/{name}"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["resources"]["requests"]["cpu"]  # the autoscaler's utilisation needs a request
    autoscaled = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind("HorizontalPodAutoscaler").values()}
    assert autoscaled == set(deployments)
    images = {i["name"] for i in yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]}
    assert images == {f"chronotick/{name}" for name in (*deployments, "redis")}


def test_the_stack_runs_the_compose_files_images_with_the_same_wiring() -> None:
    stack = yaml.safe_load((ROOT / "deploy/swarm/stack.yml").read_text())["services"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    served = {name for name, service in compose.items() if "profiles" not in service}
    assert set(stack) == served | {"frontdoor"}
    assert all(stack[name]["image"] == compose[name]["image"] for name in served)
    assert compose["frontdoor"]["image"] == stack["frontdoor"]["image"]
    # Without IPVS (this kind of host) only DNS round-robin works: every service must say so.
    assert all(service["deploy"]["endpoint_mode"] == "dnsrr" for service in stack.values())
    for key in ("CHRONOTICK_GATEWAY_SERVICES", "CHRONOTICK_GATEWAY_CLOCK_STORE_URL"):
        assert stack["gateway"]["environment"][key] == compose["gateway"]["environment"][key]


def test_the_manifests_run_each_image_as_its_own_user() -> None:
    """runAsUser (and Redis's volume group) are the ids the images' users really have."""
    pods = {**by_kind("Deployment"), **by_kind("StatefulSet")}
    for name, workload in pods.items():
        context = workload["spec"]["template"]["spec"]["securityContext"]
        ids = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "id", f"chronotick/{name}:local"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        uid, gid = (int(re.search(rf"{key}=(\d+)", ids).group(1)) for key in ("uid", "gid"))  # type: ignore[union-attr]
        assert context["runAsUser"] == uid, (name, ids)
        assert context.get("runAsGroup", gid) == gid and context.get("fsGroup", gid) == gid, (name, ids)
