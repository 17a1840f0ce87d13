"""Micro-batching: requests that arrive together share one model call.

A model forward pass on a batch of 32 costs little more than on one, so under concurrent load the
service gathers requests for a short window (a few ms) and runs them as one batch. One worker
thread runs the models: on a CPU box, two model calls at once would only fight over the cores,
and while a batch runs the next one fills up by itself.

Requests are merged only when they share a model and a grouping key (horizon, covariate names and
``skip_spread_backtests``), so every series sees exactly the computation it would see alone.

The window is only waited for while other requests are known to be on their way (received but
still being parsed): a lone client never pays it, a crowd of clients fills the batch.

A request may say how long its caller waits (``contract.TIMEOUT_HEADER``); one still queued
after that is dropped (``Expired``) instead of run: under overload, answers nobody reads would
only delay the answers of callers still waiting.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chronotick.kit.adapter import BatchForecast, ModelBatch
from chronotick.kit.series import PreparedRequest, merge_batches, slice_forecast

RunModel = Callable[[str, ModelBatch], BatchForecast]


@dataclass(frozen=True)
class BatchResult:
    forecast: BatchForecast
    batch_series: int
    queue_s: float
    inference_s: float


class Arrival:
    """A request announced on entry, before its body is parsed; closed once queued or failed."""

    def __init__(self, batcher: MicroBatcher) -> None:
        self._batcher = batcher
        self._open = True
        batcher._arrivals += 1

    def close(self) -> None:
        if self._open:
            self._open = False
            self._batcher._arrivals -= 1


class Expired(Exception):
    """The request's caller had stopped waiting before its batch could run."""


@dataclass
class _Job:
    model: str
    prepared: PreparedRequest
    enqueued_at: float
    future: asyncio.Future[BatchResult] = field(repr=False)
    expires_at: float | None = None  # event-loop time after which nobody waits for the answer

    @property
    def size(self) -> int:
        return len(self.prepared.batch)

    @property
    def key(self) -> tuple[object, ...]:
        return (self.model, *self.prepared.grouping_key)


class MicroBatcher:
    """Queue in, batched model calls on one worker thread, results out to each waiting request."""

    def __init__(
        self,
        run_model: RunModel,
        *,
        enabled: bool,
        window_s: float,
        max_batch_series: int,
        on_batch: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self._run_model = run_model
        self._enabled = enabled
        self._window_s = window_s
        self._max_batch_series = max_batch_series
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._worker: asyncio.Task[None] | None = None
        self._arrivals = 0

    def announce(self) -> Arrival:
        """Say a request is on its way, so a forming batch waits for it (within the window)."""
        return Arrival(self)

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(
        self,
        model: str,
        prepared: PreparedRequest,
        arrival: Arrival | None = None,
        *,
        expires_at: float | None = None,
    ) -> BatchResult:
        """The request's share of a batch's forecast; ``Expired`` when ``expires_at`` (event-loop
        time) passed while it was queued."""
        loop = asyncio.get_running_loop()
        job = _Job(model, prepared, loop.time(), loop.create_future(), expires_at)
        await self._queue.put(job)
        if arrival is not None:
            arrival.close()
        return await job.future

    async def _gather(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        if not self._enabled:
            return jobs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._window_s
        size = jobs[0].size
        while size < self._max_batch_series:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0 or self._arrivals == 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                job = self._queue.get_nowait()
            jobs.append(job)
            size += job.size
        return jobs

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            groups: dict[tuple[object, ...], list[_Job]] = defaultdict(list)
            for job in jobs:
                groups[job.key].append(job)
            for group in groups.values():
                await self._run_group(loop, group)

    async def _run_group(self, loop: asyncio.AbstractEventLoop, group: list[_Job]) -> None:
        now = loop.time()
        for job in group:
            if job.expires_at is not None and job.expires_at <= now and not job.future.done():
                job.future.set_exception(
                    Expired(
                        f"the caller's time limit passed {1000 * (now - job.expires_at):.0f} "
                        f"ms ago, after {1000 * (now - job.enqueued_at):.0f} ms in the queue"
                    )
                )
        live = [job for job in group if not job.future.done()]  # a client may have gone away
        if not live:
            return
        batch = merge_batches([job.prepared.batch for job in live])
        model = live[0].model
        started = loop.time()
        try:
            forecast = await loop.run_in_executor(self._executor, self._run_model, model, batch)
        except Exception as error:  # the model's failure is each waiting request's failure
            for job in live:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        inference_s = loop.time() - started
        if self._on_batch is not None:
            self._on_batch(model, len(batch), inference_s)
        start = 0
        for job in live:
            stop = start + job.size
            if not job.future.done():
                job.future.set_result(
                    BatchResult(
                        forecast=slice_forecast(forecast, start, stop),
                        batch_series=len(batch),
                        queue_s=started - job.enqueued_at,
                        inference_s=inference_s,
                    )
                )
            start = stop
