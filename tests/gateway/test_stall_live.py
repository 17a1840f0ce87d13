"""A gateway that stalls (``docker pause``, SIGSTOP, a frozen VM) for longer than its clients keep a
connection idle loses none of the requests sent to it meanwhile: once it runs again it answers them.

The gateway runs as its image runs it (``python -m chronotick.serve``). With uvicorn's default 5 s
keep-alive, each of these connections was closed unanswered when the process woke: its keep-alive
timer was due before the request waiting in the socket was read, and the clients saw "Server
disconnected without sending a response" (a load drill that paused the gateway's container for 5 s
failed this way on the CI machine).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
from test_gateway_live import body

from chronotick.serve import KEEP_ALIVE_S
from support.servers import serve_in_process, server_process

CLIENTS = 8
STALL_S = 6.5  # longer than httpx's and uvicorn's default 5 s keep-alive


def test_requests_sent_to_a_stalled_gateway_are_answered_once_it_runs_again() -> None:
    assert STALL_S < KEEP_ALIVE_S
    with serve_in_process("chronotick_gateway.main:app", env={"CHRONOTICK_GATEWAY_SERVICES": "{}"}) as url:
        gateway = server_process(url)
        clients = [httpx.Client(base_url=url, timeout=60.0, trust_env=False) for _ in range(CLIENTS)]
        try:
            # One answer each first, so that every client holds a kept-alive connection to reuse.
            assert [c.post("/predict", json=body()).status_code for c in clients] == [200] * CLIENTS
            gateway.suspend()
            with ThreadPoolExecutor(CLIENTS) as pool:
                pending = [pool.submit(c.post, "/predict", json=body()) for c in clients]
                time.sleep(STALL_S)
                assert not any(p.done() for p in pending), "answered while stopped: the stall was not real"
                gateway.resume()
                statuses = [p.result().status_code for p in pending]  # a connection error raises here
        finally:
            if gateway.status() == psutil.STATUS_STOPPED:
                gateway.resume()
            for client in clients:
                client.close()
    assert statuses == [200] * CLIENTS
