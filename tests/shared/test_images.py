"""The images' Dockerfiles: the model images keep the torch layer they share identical and agree with
the locks, and every image runs its server the one way the fleet runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL_SERVICES = ("chronos", "ttm", "toto", "timemoe")
TORCH_STAGES = re.compile(r"^# -- torch:.*?(?=^# -- this service's environment)", re.S | re.M)


def dockerfile(service: str) -> str:
    return (ROOT / "services" / service / "Dockerfile").read_text()


def test_the_torch_stages_are_the_same_in_every_model_dockerfile() -> None:
    # Docker's build cache shares layers only between identical instructions: one changed word
    # would store torch once per image again.
    stages = {service: TORCH_STAGES.search(dockerfile(service)) for service in MODEL_SERVICES}
    assert all(stages.values()), [s for s, m in stages.items() if m is None]
    assert len({m.group(0) for m in stages.values() if m}) == 1


@pytest.mark.parametrize("service", MODEL_SERVICES)
def test_the_service_runs_on_the_shared_torch_and_pins_the_same_one(service: str) -> None:
    stages = re.findall(r"^FROM (\S+)", dockerfile(service), re.M)
    assert stages[-2:] == ["torch", "torch"], stages   # build and final stage both on it
    shared_pin = next(line for line in (ROOT / "shared/docker/torch.txt").read_text().splitlines()
                      if line.startswith("torch=="))
    lock = (ROOT / "services" / service / "requirements.lock").read_text().splitlines()
    assert shared_pin in lock, f"{service}'s lock pins another torch than shared/docker/torch.txt"


@pytest.mark.parametrize("service", ("gateway", *MODEL_SERVICES))
def test_every_image_serves_with_the_fleets_server_settings(service: str) -> None:
    # uvicorn's own command line would close kept-alive connections after 5 s, as soon as clients
    # give up on them: a paused container then drops the requests its clients sent meanwhile.
    path = ROOT / ("gateway" if service == "gateway" else f"services/{service}") / "Dockerfile"
    command = json.loads(re.findall(r"^CMD (\[.*\])$", path.read_text(), re.M)[-1])
    assert command == ["python", "-m", "chronotick.serve", f"chronotick_{service}.main:app",
                       "--host", "0.0.0.0", "--port", "8000"]
