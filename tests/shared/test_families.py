"""The model families are declared once (shared/chronotick/families.toml); what cannot read that
file (the compose and stack files, the Prometheus and gateway examples) and what reads it another way
(the scripts, through scripts/envs.sh) must agree with it, so that a family added in one place and
missed in another fails here.

The YAML files are read as text: the core environment has no YAML parser, and each check looks for a
shape those files keep (a service is a two-space key of ``services:``; a model service merges
``*backend``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chronotick.families import families

ROOT = Path(__file__).resolve().parents[2]
FLEET_FILES = ("docker-compose.yml", "deploy/swarm/stack.yml")


def service_blocks(compose_text: str) -> dict[str, str]:
    """Each service of a compose file's top-level ``services:`` by name, as the text of its block."""
    section = re.search(r"^services:\n(.*?)(?=^\S|\Z)", compose_text, re.S | re.M)
    assert section is not None
    parts = re.split(r"^  ([A-Za-z0-9_-]+):[ \t]*\n", section.group(1), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def gateway_backend_urls(gateway_block: str) -> dict[str, str]:
    folded = re.search(r"CHRONOTICK_GATEWAY_SERVICES: >-\n((?:\s{8,}.*\n)+)", gateway_block)
    assert folded is not None
    return json.loads(" ".join(line.strip() for line in folded.group(1).splitlines()))


def in_container_urls() -> dict[str, str]:
    return {name: f"http://{name}:8000" for name in families()}


@pytest.mark.parametrize("path", FLEET_FILES)
def test_the_fleet_files_run_exactly_the_declared_families(path: str) -> None:
    blocks = service_blocks((ROOT / path).read_text())
    model_services = [name for name, block in blocks.items() if "<<: *backend\n" in block]
    assert model_services == list(families())
    for name, declared in families().items():
        assert f"image: {declared.image}\n" in blocks[name], (path, name)
    assert gateway_backend_urls(blocks["gateway"]) == in_container_urls()


def test_compose_builds_each_family_from_the_one_dockerfile_and_starts_the_gateway_after_it() -> None:
    blocks = service_blocks((ROOT / "docker-compose.yml").read_text())
    for name in families():
        build = f"build: {{context: ., dockerfile: services/Dockerfile, args: {{<<: *build-args, FAMILY: {name}}}}}"
        assert build in blocks[name], name
        assert re.search(rf"^      {re.escape(name)}: {{condition: service_healthy}}$", blocks["gateway"], re.M), name


def test_prometheus_scrapes_every_declared_family() -> None:
    targets = re.search(
        r"job_name: chronotick-backends\n.*?targets: (\[.*?\])", (ROOT / "monitoring/prometheus.yml").read_text(), re.S
    )
    assert targets is not None
    assert json.loads(targets.group(1)) == [f"{name}:8000" for name in families()]


def test_the_gateway_example_names_every_declared_family() -> None:
    text = (ROOT / "gateway/chronotick.example.yaml").read_text()
    section = re.search(r"^services:\n((?:  .*\n)+)", text, re.M)
    assert section is not None
    assert dict(line.strip().split(": ", 1) for line in section.group(1).splitlines()) == in_container_urls()


def scripts_say(commands: str) -> list[str]:
    done = subprocess.run(
        ["bash", "-c", f"source scripts/envs.sh; {commands}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "CHRONOTICK_PYTHON": sys.executable},
    )
    return done.stdout.splitlines()


def test_the_scripts_see_the_declared_families() -> None:
    declared = families().values()
    assert scripts_say("family_table") == [f"{f.name} {f.environment} {f.port} {f.package}" for f in declared]
    assert scripts_say("all_envs") == [
        " ".join(["core", *(f.environment for f in declared), "gateway", "integration", "lint"])
    ]
    assert scripts_say("for e in $(family_environments); do env_dir $e; done") == [
        str(ROOT / "services" / f.name) for f in declared
    ]


def test_every_declared_family_has_its_folder_package_tests_and_a_port_of_its_own() -> None:
    for name, declared in families().items():
        service = ROOT / "services" / name
        assert (service / declared.package / "main.py").is_file(), name
        assert (service / "requirements.lock").is_file(), name
        assert (service / "models").is_dir(), name
        assert (ROOT / "tests" / "services" / name).is_dir(), name
    ports = [declared.port for declared in families().values()]
    assert len(set(ports)) == len(ports) and 8000 not in ports  # 8000 is the gateway's
