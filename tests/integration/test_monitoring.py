"""The `monitoring` profile against the live fleet: Prometheus (Debian's, in its image) scrapes every
service, the alert rules pass promtool, every metric and label the rules and the dashboard use is in
the fleet's live /metrics, and a stopped backend's alert goes pending, fires, and resolves once the
backend is back, as read from Prometheus's HTTP API."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_clock_memory import windows

from chronotick.agent.metrics import AgentMetrics
from support.containers import ComposeFleet
from support.monitoring import ADDED_BY_PROMETHEUS, MONITORING, alert_rules, expressions

PROFILE = {"COMPOSE_PROFILES": "monitoring"}
IMAGE = "chronotick/prometheus:local"
GATEWAY_JOB, BACKENDS_JOB = "chronotick-gateway", "chronotick-backends"
STOPPED = "ttm"
# Labelled counters that only an overload or a failed call creates: the drive below need not cause them.
ONLY_ON_TROUBLE = {"chronotick_gateway_backend_overloaded_total", "chronotick_gateway_backend_failures_total"}


def api(prometheus: str, path: str, **params: str) -> object:
    response = httpx.get(f"{prometheus}/api/v1/{path}", params=params, timeout=10.0)
    response.raise_for_status()
    return response.json()["data"]


def targets_by_job(prometheus: str) -> dict[str, list[str]]:
    """job -> the health of each of its active targets."""
    health: dict[str, list[str]] = {}
    for target in api(prometheus, "targets")["activeTargets"]:
        health.setdefault(target["labels"]["job"], []).append(target["health"])
    return health


def backend_alert_states(prometheus: str) -> set[str]:
    return {
        alert["state"]
        for alert in api(prometheus, "alerts")["alerts"]
        if alert["labels"]["alertname"] == "ChronoTickBackendDown" and alert["labels"].get("service") == STOPPED
    }


@pytest.fixture(scope="module")
def prometheus(fleet: ComposeFleet) -> Iterator[str]:
    fleet.compose("up", "-d", "--no-deps", "prometheus", env=PROFILE, timeout_s=180.0)
    url = f"http://127.0.0.1:{fleet.prometheus_port}"
    try:
        fleet.wait_until(
            lambda: (
                targets_by_job(url).get(BACKENDS_JOB) == ["up"] * 4 and targets_by_job(url).get(GATEWAY_JOB) == ["up"]
            ),
            120.0,
            "every target scraped",
        )
        yield url
    finally:
        fleet.compose("rm", "--stop", "--force", "prometheus", env=PROFILE, timeout_s=120.0)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Debian's promtool from the Prometheus image, on the repository's own files."""
    return subprocess.run(
        ["docker", "run", "--rm", "-v", f"{MONITORING}:/monitoring:ro", "--entrypoint", "promtool", IMAGE, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_alert_rules_pass_promtool() -> None:
    checked = promtool("check", "rules", "/monitoring/alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(alert_rules())} rules found" in checked.stdout, checked.stdout


def test_the_scrape_configuration_passes_promtool() -> None:
    # check config reads the rule files it names from the image's own copies: both must agree.
    checked = promtool("check", "config", "/etc/prometheus/prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    image_rules = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "cat", IMAGE, "/etc/prometheus/alerts.yml"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert image_rules == (MONITORING / "alerts.yml").read_text(), "the image holds other rules: rebuild it"


def test_every_alert_waits_and_tells_the_operator_what_to_do_first() -> None:
    for rule in alert_rules():
        assert rule.get("for"), f"{rule['alert']} fires on a single evaluation"
        assert rule["labels"]["severity"] in ("page", "warn"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and "First:" in annotations["description"], rule["alert"]


def test_the_agents_metrics_the_rules_and_dashboard_use_exist() -> None:
    # The agent runs on the hosts, not in compose: its metrics are checked against the registry it serves.
    metrics = AgentMetrics()
    families = {}
    for metric in vars(metrics).values():
        if hasattr(metric, "_labelnames"):
            suffix = "_total" if metric._type == "counter" else ""  # noqa: SLF001
            families[metric._name + suffix] = set(metric._labelnames)  # noqa: SLF001
    used = [
        (e, name, labels)
        for e in expressions()
        for name, labels in e.selectors().items()
        if name.startswith("chronotick_agent_")
    ]
    assert used, "the rules and the dashboard watch no agent metric"
    for expression, name, labels in used:
        assert name in families, f"{expression.where}: no agent metric {name}"
        grouped = expression.grouped_by() - ADDED_BY_PROMETHEUS
        assert labels | grouped <= families[name], f"{expression.where}: {name} has labels {families[name]}"


def test_every_target_is_up(prometheus: str) -> None:
    assert targets_by_job(prometheus) == {GATEWAY_JOB: ["up"], BACKENDS_JOB: ["up"] * 4}


def live_series(fleet: ComposeFleet, prometheus: str) -> dict[str, set[str] | None]:
    """Every sample name in the fleet's live /metrics -> the label names its samples carry (None: a
    family the exposition declares but that has no sample yet). The gateway's from its own /metrics;
    the backends' (not reachable from the host) as Prometheus scraped them."""
    found: dict[str, set[str] | None] = {}
    exposition = httpx.get(f"{fleet.url}/metrics", timeout=10.0).text
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
        if not family.samples:
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            for suffix in suffixes:
                found.setdefault(family.name + suffix, None)
    for series in api(prometheus, "series", **{"match[]": f'{{job="{BACKENDS_JOB}"}}'}):
        labels = found.setdefault(series["__name__"], set())
        if labels is not None:
            labels.update(set(series) - {"__name__", "instance", "job"})
    found["up"] = set()
    return found


def drive_a_clock_until_its_bounds_are_scored(fleet: ComposeFleet) -> None:
    """An agent's requests, back to back, until remembered bounds have been scored (the coverage
    metrics exist only then): about 42 requests make the clock warm, 12 more score its bounds."""
    for body in windows("it-monitoring", seed=11, count=120):
        assert fleet.predict({**body, "deadline_s": 10.0}).status_code == 200
        if "chronotick_gateway_interval_outcomes_total{" in httpx.get(f"{fleet.url}/metrics", timeout=10.0).text:
            return
    raise AssertionError("no remembered bounds were scored after 120 requests")


def test_every_fleet_metric_and_label_the_rules_and_dashboard_use_is_live(fleet: ComposeFleet, prometheus: str) -> None:
    drive_a_clock_until_its_bounds_are_scored(fleet)
    time.sleep(12.0)  # one scrape of the backends after the drive
    live = live_series(fleet, prometheus)
    unsampled = set()
    for expression in expressions():
        selected = {
            name: labels for name, labels in expression.selectors().items() if not name.startswith("chronotick_agent_")
        }
        if not selected:
            continue
        carried = set(ADDED_BY_PROMETHEUS)
        for name, labels in selected.items():
            assert name in live, f"{expression.where}: {name} is not in the fleet's /metrics"
            if live[name] is None:
                unsampled.add(name)
                continue
            assert labels <= live[name] | ADDED_BY_PROMETHEUS, f"{expression.where}: {name} carries {live[name]}"
            carried |= live[name]
        if not unsampled & set(selected):
            missing = expression.grouped_by() - carried
            assert not missing, f"{expression.where}: no metric of it carries {missing}"
    assert unsampled <= ONLY_ON_TROUBLE, unsampled


def test_a_stopped_backend_fires_its_alert_and_it_resolves_once_back(fleet: ComposeFleet, prometheus: str) -> None:
    seen: list[str] = []

    def alert_in(state: str) -> bool:
        states = backend_alert_states(prometheus)
        seen.extend(sorted(states))
        return state in states

    fleet.compose("stop", STOPPED)
    try:
        fleet.wait_until(
            lambda: alert_in("pending") or alert_in("firing"), 90.0, "the backend alert pending", poll_s=1.0
        )
        # The rule waits a minute (for: 1m) before it fires; scrape and evaluation add up to 20 s.
        fleet.wait_until(lambda: alert_in("firing"), 120.0, "the backend alert firing", poll_s=1.0)
    finally:
        fleet.compose("start", STOPPED)
    assert seen[0] == "pending", seen  # it waited before firing
    fleet.wait_until(lambda: STOPPED in fleet.ready_services(), 300.0, f"{STOPPED} ready again")
    fleet.wait_until(lambda: not backend_alert_states(prometheus), 90.0, "the backend alert resolved", poll_s=1.0)
