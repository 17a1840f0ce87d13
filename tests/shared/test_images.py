"""The images' Dockerfiles: the model images keep the torch layer they share free of anything
family-specific and agree with the locks, and every image runs its server the one way the fleet runs
them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chronotick.families import families

ROOT = Path(__file__).resolve().parents[2]
FAMILY_DOCKERFILE = ROOT / "services" / "Dockerfile"
TORCH_STAGES = re.compile(r"^# -- torch:.*?(?=^# -- this family's environment)", re.S | re.M)
SERVER_OPTIONS = ["--host", "0.0.0.0", "--port", "8000"]


def test_the_shared_torch_stages_do_not_depend_on_the_family() -> None:
    # Docker's build cache shares layers only between identical instructions: a FAMILY in these
    # stages would store torch once per image again.
    stages = TORCH_STAGES.search(FAMILY_DOCKERFILE.read_text())
    assert stages is not None
    assert "FAMILY" not in re.sub(r"^#.*$", "", stages.group(0), flags=re.M)


def test_every_family_is_built_on_the_shared_torch() -> None:
    stages = re.findall(r"^FROM (\S+)", FAMILY_DOCKERFILE.read_text(), re.M)
    assert stages[-2:] == ["torch", "torch"], stages  # build and final stage both on it


@pytest.mark.parametrize("family", families())
def test_the_family_lock_pins_the_shared_torch(family: str) -> None:
    shared_pin = next(
        line for line in (ROOT / "shared/docker/torch.txt").read_text().splitlines() if line.startswith("torch==")
    )
    lock = (ROOT / "services" / family / "requirements.lock").read_text().splitlines()
    assert shared_pin in lock, f"{family}'s lock pins another torch than shared/docker/torch.txt"


def test_no_family_keeps_a_dockerfile_of_its_own() -> None:
    assert sorted(ROOT.glob("services/*/Dockerfile")) == []


# uvicorn's own command line would close kept-alive connections after 5 s, as soon as clients give
# up on them: a paused container then drops the requests its clients sent meanwhile.
def test_the_gateway_image_serves_with_the_fleets_server_settings() -> None:
    command = json.loads(re.findall(r"^CMD (\[.*\])$", (ROOT / "gateway/Dockerfile").read_text(), re.M)[-1])
    assert command == ["python", "-m", "chronotick.serve", "chronotick_gateway.main:app", *SERVER_OPTIONS]


@pytest.mark.parametrize("family", families())
def test_every_family_image_serves_its_package_with_the_fleets_server_settings(family: str) -> None:
    # The image names its app in CHRONOTICK_APP (from FAMILY), which chronotick.serve reads.
    text = FAMILY_DOCKERFILE.read_text()
    app = re.findall(r"CHRONOTICK_APP=(\S+)", text)[-1].replace("${FAMILY}", family)
    assert app == f"{families()[family].package}.main:app"
    command = json.loads(re.findall(r"^CMD (\[.*\])$", text, re.M)[-1])
    assert command == ["python", "-m", "chronotick.serve", *SERVER_OPTIONS]
