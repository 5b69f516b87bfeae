"""Adaptive micro-batching: concurrent requests are scored together in one model call.

A scikit-learn pipeline costs about the same for one row as for sixty-four (the per-call
overhead of validation, column selection and pandas dominates), so under concurrency the service
scores many requests per call instead of one call per request.

One model thread does all model work, off the event loop, with its OpenMP/BLAS threads limited to
`serve.threads` (threadpoolctl: several Python threads each driving an OpenMP pool oversubscribe
the cores; measured elsewhere, that lost 3.6x). The event loop validates a request, queues its
rows and awaits a future; the model thread takes everything queued (up to `max_batch` records),
builds one frame, predicts, and resolves the futures with one call back into the loop.

Adaptive: when the model thread is idle, a request is scored at once (no added latency at
concurrency 1). It waits up to `max_wait_s` for more only when other requests have already
entered /predict and are about to queue (`outstanding` counts requests from the moment their
body is parsed until a batch takes them), so waiting is only ever done for requests known to
come. Under load most batching is free anyway: requests queue while the previous call runs.
Requests are never split across calls, so a request larger than `max_batch` is scored alone.

During a rollout a job may carry its request ids (canary routing hashes them before
scoring), a tag naming the rollout step and arm it belongs to, and a shadow model: after the
batch's futures are handed back to the event loop, `after_resolve` runs in the model thread
(the shadow scoring: responses never wait for it, and the next batch waits only as long as it
takes, which bounds its work without a queue). A group whose model call fails is reported to
`on_failed` (the log records the failure for the rollout analysis) and its requests fail.

Timestamps are taken in the model thread, once per batch, clamped never to go backwards; entries
are queued to the prediction log in that order, which makes the log sorted by time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.deploy.service.releases import Served

LOG = logging.getLogger("mlops.serve")
ID_BYTES = 16  # request ids: 32 hex characters
LIMITED_MODELS = 4  # models whose thread limits are known to be applied (stable, candidate, ...)


@dataclass
class Job:
    """One request's rows on their way through the model thread."""

    served: Served  # validated against this release, so scored by it too
    rows: list[list[Any]]
    flags: list[list[str]]
    proba: bool
    future: asyncio.Future[RequestScores]
    result: RequestScores | None = None
    error: BaseException | None = None
    # per row: the declared pass-through fields the record carried (ids, ...), logged only
    passthrough: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str] | None = None  # given when routing needed them first (canary)
    tag: dict[str, Any] | None = None  # the rollout step and arm this job belongs to
    shadow: Served | None = None  # also scored by this model, after the response (shadow)
    entries: list[dict[str, Any]] | None = None  # log entries held back for the shadow's


@dataclass
class RequestScores:
    """One request's share of a scored batch: what /predict answers and the prediction log
    records for it."""

    release: str | None
    bundle: str
    time: str  # ISO 8601, UTC
    request_ids: list[str]
    predictions: list[Any]  # class labels (text) or values
    proba: list[dict[str, float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    model_ms: float = 0.0  # the model call that scored it (its whole group), milliseconds


OnScored = Callable[[Served, Sequence[Job], str], None]
OnFailed = Callable[[Served, Sequence[Job], BaseException, str], None]


class MicroBatcher:
    def __init__(
        self,
        *,
        max_batch: int,
        max_wait_s: float,
        threads: int,
        on_scored: OnScored | None = None,
        observe_batch: Callable[[int, int, float], None] | None = None,
        on_failed: OnFailed | None = None,
        after_resolve: Callable[[Sequence[Job]], None] | None = None,
    ) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.threads = threads
        self.on_scored = on_scored  # model thread: log entries, metrics, request index
        self.observe_batch = observe_batch  # (records, requests, seconds) per model call
        self.on_failed = on_failed  # model thread: a group's model call raised
        self.after_resolve = after_resolve  # model thread, after the responses: shadow work
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._outstanding = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_time = 0.0
        self._limited: set[int] = set()  # id(model) whose thread limits were applied

    # ------------------------------------------------------------------------ event-loop side
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="mlops-model", daemon=True)
        self._thread.start()

    def arriving(self) -> None:
        """A request is about to queue: worth waiting for if a batch is being collected."""
        with self._cond:
            self._outstanding += 1

    def left(self) -> None:
        """An `arriving` request will not queue after all (bad input)."""
        with self._cond:
            self._outstanding -= 1
            self._cond.notify()

    def submit(
        self,
        served: Served,
        rows: list[list[Any]],
        flags: list[list[str]],
        proba: bool,
        passthrough: list[dict[str, Any]] | None = None,
        *,
        request_ids: list[str] | None = None,
        tag: dict[str, Any] | None = None,
        shadow: Served | None = None,
    ) -> asyncio.Future[RequestScores]:
        """Queue an `arriving` request's rows; the future resolves to its `RequestScores`."""
        assert self._loop is not None, "start() the batcher first"
        future: asyncio.Future[RequestScores] = self._loop.create_future()
        with self._cond:
            if self._stopping:
                self._outstanding -= 1
                raise RuntimeError("the service is shutting down")
            job = Job(
                served,
                rows,
                flags,
                proba,
                future,
                passthrough=passthrough or [],
                request_ids=request_ids,
                tag=tag,
                shadow=shadow,
            )
            self._pending.append(job)
            self._cond.notify()
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Score everything queued, then stop the model thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # --------------------------------------------------------------------------- model thread
    def _take(self, batch: list[Job], records: int) -> int:
        """Move queued jobs into `batch` while they fit (always at least one)."""
        while self._pending:
            n = len(self._pending[0].rows)
            if batch and records + n > self.max_batch:
                break
            batch.append(self._pending.popleft())
            records += n
        return records

    def _collect(self) -> list[Job] | None:
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            if not self._pending:
                return None  # stopping, nothing left
            batch: list[Job] = []
            records = self._take(batch, 0)
            if self.max_wait_s > 0 and records < self.max_batch:
                deadline = time.monotonic() + self.max_wait_s
                # Others have parsed their body and are validating: they queue within
                # microseconds, so a short wait buys a larger batch.
                while records < self.max_batch and not self._pending and self._arriving(batch):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                    records = self._take(batch, records)
            self._outstanding -= len(batch)
            return batch

    def _arriving(self, batch: list[Job]) -> bool:
        """Requests counted by `arriving` that have not queued yet (call with the lock held)."""
        return self._outstanding - len(batch) - len(self._pending) > 0

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            try:
                self._score(batch)
            except Exception as exc:  # answer the requests, keep serving
                LOG.exception("model thread: scoring failed")
                for job in batch:
                    if job.result is None and job.error is None:
                        job.error = exc
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(_resolve, batch)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return
            if self.after_resolve is not None:
                try:
                    self.after_resolve(batch)
                except Exception:  # shadow work never stops the model thread
                    LOG.exception("model thread: work after the responses failed")

    def _now(self) -> str:
        now = max(time.time(), self._last_time)
        self._last_time = now
        return datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")[:-6] + "Z"

    def _score(self, batch: list[Job]) -> None:
        groups: dict[int, list[Job]] = {}
        for job in batch:  # normally one group; two while a swap is in flight
            groups.setdefault(id(job.served), []).append(job)
        for jobs in groups.values():
            served = jobs[0].served
            started = time.perf_counter()
            try:
                self._score_group(served, jobs)
            except Exception as exc:  # a model error fails its requests only
                LOG.exception("release %s: model call failed", served.release)
                for job in jobs:
                    job.error = exc
                if self.on_failed is not None:
                    self.on_failed(served, jobs, exc, self._now())
                continue
            if self.observe_batch is not None:
                records = sum(len(j.rows) for j in jobs)
                self.observe_batch(records, len(jobs), time.perf_counter() - started)

    def limit(self, model: Any) -> None:
        """Apply the thread limits for `model` in the model thread (OpenMP limits are per
        thread, and a new bundle may have loaded new libraries)."""
        if id(model) not in self._limited:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=self.threads)
            if len(self._limited) >= LIMITED_MODELS:  # ids of unloaded models may be reused
                self._limited.clear()
            # kept for every model served: a rollout alternates two models, and re-applying
            # the limits (threadpoolctl inspects every loaded library) cost a millisecond
            self._limited.add(id(model))

    def _score_group(self, served: Served, jobs: list[Job]) -> None:
        model = served.bundle.model
        self.limit(model)
        rows = [row for job in jobs for row in job.rows]
        started = time.perf_counter()
        predictions, proba = score(served, rows, any(job.proba for job in jobs))
        model_ms = (time.perf_counter() - started) * 1000.0
        stamp = self._now()
        ids = new_request_ids(len(rows))
        start = 0
        classes = served.classes or ()
        for job in jobs:
            n = len(job.rows)
            end = start + n
            job.result = RequestScores(
                served.release,
                served.bundle_id,
                stamp,
                job.request_ids if job.request_ids is not None else ids[start:end],
                predictions[start:end],
                None
                if proba is None or not job.proba
                else [dict(zip(classes, p, strict=True)) for p in proba[start:end].tolist()],
                model_ms=model_ms,
            )
            start = end
        if self.on_scored is not None:
            self.on_scored(served, jobs, stamp)


def score(served: Served, rows: list[list[Any]], want_proba: bool) -> tuple[list[Any], Any]:
    """One model call on checked rows: (predictions as labels or values, probabilities or
    None). The one scoring path of the service, for the served and the shadow model alike."""
    model = served.bundle.model
    frame = served.bundle.signature.frame(rows)
    if served.classifier and want_proba:
        from pipeline.deploy.scoring import predict

        pred, proba = predict(model, frame, "classification")
        return pred.tolist(), proba
    raw = model.predict(frame)
    return (raw.astype(str).tolist() if served.classifier else raw.astype(float).tolist()), None


def new_request_ids(n: int) -> list[str]:
    """`n` random request ids (32 hex characters each)."""
    ids = os.urandom(ID_BYTES * n).hex()
    width = 2 * ID_BYTES
    return [ids[i * width : (i + 1) * width] for i in range(n)]


def _resolve(batch: Sequence[Job]) -> None:
    """Runs on the event loop: hand each request its result (or its error)."""
    for job in batch:
        if job.future.done():  # the request was cancelled (client gone)
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        elif job.result is not None:
            job.future.set_result(job.result)
        else:
            job.future.set_exception(RuntimeError("request was not scored"))
