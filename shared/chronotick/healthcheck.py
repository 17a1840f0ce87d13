"""Container health probe: exit 0 when the service on this host answers ready, 1 otherwise.

Images run it as their ``HEALTHCHECK`` (``python -m chronotick.healthcheck``), so a container is
healthy only once its weights are loaded and a warm-up forecast succeeded, the same rule as
``/health/ready``. The standard library only: slim images carry no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/health/ready"


def probe(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (fixed local URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(0 if probe(os.environ.get("CHRONOTICK_HEALTHCHECK_URL", DEFAULT_URL)) else 1)
