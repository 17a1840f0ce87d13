"""The container health probe against a real HTTP server that turns ready after a while."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chronotick import healthcheck


class TurnsReady:
    """/health/ready answers 503 until ``ready_at`` (monotonic), 200 from then on."""

    def __init__(self) -> None:
        self.ready_at = float("inf")
        self.asked = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                outer.asked += 1
                self.send_response(200 if time.monotonic() >= outer.ready_at else 503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health/ready"


@pytest.fixture
def service() -> Iterator[TurnsReady]:
    served = TurnsReady()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_asked_once_it_says_what_the_service_says_now(service: TurnsReady) -> None:
    assert not healthcheck.probe(service.url)
    service.ready_at = time.monotonic()
    assert healthcheck.probe(service.url)


def test_waiting_it_answers_soon_after_the_service_turns_ready(service: TurnsReady) -> None:
    service.ready_at = time.monotonic() + 0.5
    started = time.monotonic()
    assert healthcheck.wait_ready(service.url, wait_s=5.0)
    waited = time.monotonic() - started
    assert 0.5 <= waited < 0.5 + 10 * healthcheck.WAIT_POLL_S, waited
    assert service.asked >= 3  # it asked again, not once after a long sleep


def test_waiting_it_gives_up_when_the_time_is_up(service: TurnsReady) -> None:
    started = time.monotonic()
    assert not healthcheck.wait_ready(service.url, wait_s=0.4)
    assert 0.3 <= time.monotonic() - started < 2.0


def test_the_exit_status_follows_the_url_in_the_environment(
    service: TurnsReady, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOTICK_HEALTHCHECK_URL", service.url)
    assert healthcheck.main([]) == 1
    assert healthcheck.main(["--wait", "0.3"]) == 1
    service.ready_at = time.monotonic() + 0.2
    assert healthcheck.main(["--wait", "5"]) == 0


def test_nothing_listening_is_not_ready() -> None:
    assert not healthcheck.wait_ready("http://127.0.0.1:9/health/ready", wait_s=0.25)
