"""Container health probe: exit 0 when the service on this host answers ready, 1 otherwise.

Images run it as their ``HEALTHCHECK`` (``python -m chronotick.healthcheck``), so a container is
healthy only once its weights are loaded and a warm-up forecast succeeded, the same rule as
``/health/ready``. The standard library only: slim images carry no curl.

``--wait SECONDS`` asks again every 0.1 s until the service is ready or the time is up: one
``docker exec ... --wait 180`` watches a restarting service closely, where a ``docker exec`` per
look costs about 0.17 s of CPU (the docker CLI, runc and a Python start), which a host under
load takes from the very services being watched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/health/ready"
WAIT_POLL_S = 0.1


def probe(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (fixed local URL)
            status: int = response.status
            return status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(url: str, wait_s: float, poll_s: float = WAIT_POLL_S) -> bool:
    """Whether ``url`` answers ready within ``wait_s`` seconds, asking every ``poll_s``."""
    give_up_at = time.monotonic() + wait_s
    while True:
        if probe(url, timeout_s=max(0.1, min(2.0, give_up_at - time.monotonic()))):
            return True
        if time.monotonic() + poll_s > give_up_at:
            return False
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chronotick.healthcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="ask again until ready, for at most this long (default: ask once)",
    )
    args = parser.parse_args(argv)
    url = os.environ.get("CHRONOTICK_HEALTHCHECK_URL", DEFAULT_URL)
    ready = wait_ready(url, args.wait) if args.wait > 0 else probe(url)
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
