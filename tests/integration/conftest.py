"""The fleet in live containers, once per session, under a project name of its own.

``scripts/test`` provisions Docker and builds the images first (scripts/docker-provision,
scripts/compose build); here the fleet is started on a free port, and removed at the end, with its
networks and volumes, whatever happened in between.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from support.containers import ComposeFleet, running_fleet


@pytest.fixture(scope="session")
def fleet() -> Iterator[ComposeFleet]:
    # With an API key, as a deployment reachable by others would run it (schemathesis probes it).
    with running_fleet("chronotick-it", api_key=secrets.token_urlsafe(16)) as live:
        yield live
