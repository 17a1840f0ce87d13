"""How every ChronoTick server runs: uvicorn with the fleet's connection settings, in one place.

``python -m chronotick.serve chronotick_gateway.main:app --host 0.0.0.0`` is the command of every
image, of ``scripts/fleet`` and of the tests that start a service in its own process. The family
images name their app in ``CHRONOTICK_APP`` instead (one Dockerfile builds them all, and an
exec-form command substitutes no variables; a shell between dumb-init and the server would not do).

Why not uvicorn's defaults: uvicorn closes a kept-alive connection after 5 s without a request, and
httpx (the agent's, the gateway's own pool to its backends, most clients) reuses one for 5 s. A
process that stalls longer than that (``docker pause``, SIGSTOP, a VM or cgroup freeze, a long
swap-in) wakes with its keep-alive timers due and the requests its clients sent meanwhile unread in
the socket: it closed those connections, and the clients got "Server disconnected without sending a
response" for requests the server never saw. With the server holding idle connections far longer
than any client does, the client always gives up on a connection first, and a stall shorter than
``KEEP_ALIVE_S`` costs its requests time, never an error.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

# Well above httpx's 5 s keepalive_expiry (and that of other common clients), as load balancers do
# (nginx 75 s): the side that closes an idle connection must be the one that would reuse it.
KEEP_ALIVE_S = 75
DEFAULT_PORT = 8000
APP_VARIABLE = "CHRONOTICK_APP"


def serve(app: str | Callable[..., Any], *, host: str, port: int, log_level: str = "info") -> None:
    """Serve ``app`` (an ASGI app or its ``module:attribute``) until SIGINT/SIGTERM. No access log:
    a line per forecast buries the log; the metrics count requests."""
    uvicorn.run(app, host=host, port=port, timeout_keep_alive=KEEP_ALIVE_S, access_log=False, log_level=log_level)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chronotick.serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "app",
        nargs="?",
        default=os.environ.get(APP_VARIABLE),
        help=f"the ASGI app, as module:attribute (default: ${APP_VARIABLE})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.app:
        parser.error(f"name the app, or set {APP_VARIABLE}")
    serve(args.app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
