"""The fleet as users run it: containers from docker-compose, talked to through the published port."""

from __future__ import annotations

import http.client
import json
import subprocess
import time

import httpx
import numpy as np

from chronotick.contract import FleetModels, FusedPredictResponse
from support.containers import MODEL_SERVICES, ComposeFleet
from support.fleet_calls import clock_body

EVERY_MODEL = {"chronos-bolt", "chronos-2", "timesfm-2.5", "ttm", "ttm-exog", "toto", "timemoe"}


def test_a_fused_forecast_comes_from_every_backend(fleet: ComposeFleet) -> None:
    response = fleet.predict(clock_body(1, deadline_s=20.0))
    assert response.status_code == 200, response.text
    answer = FusedPredictResponse.model_validate(response.json())

    answered = {b.name for b in answer.backends if b.status == "ok" and b.service is not None}
    assert answered == EVERY_MODEL, [(b.name, b.status, b.reason) for b in answer.backends]
    assert {b.service for b in answer.backends if b.service} == set(MODEL_SERVICES)
    assert not answer.degraded, answer.reasons
    fused = answer.forecasts[0]
    assert len(fused.mean_us) == 10
    assert np.all(np.diff(np.asarray(fused.quantiles_us), axis=0) >= 0)  # levels ordered at every step
    weights = np.array([b.weights[0] for b in answer.backends if b.weights is not None])
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-6)


def test_models_lists_every_service_with_its_library_versions(fleet: ComposeFleet) -> None:
    models = FleetModels.model_validate(httpx.get(f"{fleet.url}/models", timeout=5.0).json())
    by_name = {service.name: service for service in models.services}
    assert set(by_name) == set(MODEL_SERVICES)
    assert all(s.ready and s.breaker == "closed" and s.info is not None for s in models.services)
    # Each image carries its own pinned environment: Time-MoE's transformers differs from TTM's.
    transformers = {name: s.info.versions.get("transformers") for name, s in by_name.items()}
    assert transformers["timemoe"] == "4.40.1"
    assert transformers["ttm"] not in (None, "4.40.1")


def test_containers_run_as_a_non_root_user(fleet: ComposeFleet) -> None:
    for service in (*MODEL_SERVICES, "gateway"):
        uid = subprocess.run(
            ["docker", "exec", fleet.container(service), "id", "-u"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert uid not in ("", "0"), f"{service} runs as uid {uid!r}"


def test_every_container_has_an_init_process_as_pid_1(fleet: ComposeFleet) -> None:
    for service in (*MODEL_SERVICES, "gateway"):
        pid1 = subprocess.run(
            ["docker", "exec", fleet.container(service), "cat", "/proc/1/cmdline"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")
        assert pid1[0].endswith("dumb-init"), f"{service}: PID 1 is {pid1}"  # the image's ENTRYPOINT
        assert pid1[2:5] == ["python", "-m", "chronotick.serve"], pid1  # the fleet's server settings


def test_the_gateway_keeps_an_idle_connection_longer_than_its_clients_do(fleet: ComposeFleet) -> None:
    # httpx keeps an idle connection 5 s; a server that closes its side at 5 s too races the client's
    # next request (and drops the requests sent while it was paused for longer).
    host, port = fleet.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for pause_s in (0.0, 6.5):
            time.sleep(pause_s)
            connection.request("GET", "/health/live")
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("connection") != "close"
            response.read()
            if pause_s == 0.0:
                first_socket = connection.sock
        assert connection.sock is first_socket  # the same connection, still open after 6.5 s idle
    finally:
        connection.close()


def test_the_model_images_share_one_torch_layer(fleet: ComposeFleet) -> None:
    # Stored once on a host, not four times: what lets the fleet build on a CI disk of ~13 GiB.
    layers = {}
    for service in MODEL_SERVICES:
        image = subprocess.run(
            ["docker", "inspect", "--format", "{{.Image}}", fleet.container(service)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        layers[service] = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", image],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    shared = [layer for layer in layers["chronos"] if all(layer in of_service for of_service in layers.values())]
    assert len(shared) >= 2, layers  # the base image and the torch layer
    for service in MODEL_SERVICES:
        torch_path = subprocess.run(
            ["docker", "exec", fleet.container(service), "python", "-c", "import torch; print(torch.__file__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert torch_path.startswith("/opt/torch/"), f"{service} loads torch from {torch_path!r}"


def answers_as_a_service(url: str) -> bool:
    """Whether a ChronoTick service's /health/live answers at ``url``."""
    try:
        response = httpx.get(url, timeout=2.0)
        return response.status_code == 200 and response.json() == {"status": "live"}
    except (httpx.HTTPError, ValueError):
        return False


def test_predict_needs_the_api_key(fleet: ComposeFleet) -> None:
    response = httpx.post(f"{fleet.url}/predict", json=clock_body(2), timeout=30.0)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_backends_cannot_be_reached_from_the_host(fleet: ComposeFleet) -> None:
    for service in MODEL_SERVICES:
        settings = fleet.inspect(service)["NetworkSettings"]
        assert not any(settings["Ports"].values()), f"{service} publishes {settings['Ports']}"
        addresses = [network["IPAddress"] for network in settings["Networks"].values() if network["IPAddress"]]
        assert addresses, f"{service} has no address"
        for address in addresses:
            # (A bare TCP connect proves nothing here: an egress proxy may accept any connection.)
            assert not answers_as_a_service(f"http://{address}:8000/health/live"), (
                f"{service} answers the host at {address}:8000"
            )
    # ... while the gateway is published on loopback.
    assert httpx.get(f"{fleet.url}/health/live", timeout=5.0).status_code == 200
