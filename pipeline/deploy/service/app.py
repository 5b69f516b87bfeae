"""The FastAPI application of `mlops serve`.

Endpoints (shapes in the OpenAPI document at /openapi.json, browsable at /docs when declared):

* `POST /predict[?proba=true]`: one record (an object) or a list of records. 200 with
  `{"release", "bundle", "predictions": [{"request_id", "prediction", "flags", "proba"?}]}`;
  400 not JSON (or not valid Unicode), 401 token (when required), 413 too large / too many
  records, 415 not declared as `application/json`, 422 invalid records
  (`{"detail", "errors": [{"index", "field", "message"}]}`), 503 no release / log behind.
* `POST /feedback` (bearer token): `{"request_id", "label"}` or a list; 200 `{"accepted": n}`;
  401 token, 422 unknown request ids / bad labels (nothing is accepted then), 429 rate limit
  (authenticated requests per client; failed authentications per client, counted apart),
  503 when no token is configured (feedback is then closed, never open).
* `GET /health`: liveness, whether a model is loaded, whether it is the declared release, and
  whether the prediction and feedback logs are being written (503 `unhealthy` when not: a
  service whose predictions go unrecorded must not look healthy).
* `GET /version`: `{"release", "bundle": {"id", "sha256"} | null, "target"}`.
* `GET /metrics`: Prometheus text.
* `GET /openapi.json` always; `GET /docs` (Swagger UI) only with `serve.docs: true`, because the
  page runs scripts from a CDN: a pinned version whose subresource hashes the browser checks.

The hot path avoids FastAPI's per-request machinery where it costs and gives nothing: bodies are
read and parsed by `http.py` (bounded, strict), records are checked by the bundle's compiled
signature (not by pydantic, whose errors would not carry our `{index, field, message}` shape),
and responses are serialised once. The OpenAPI document still shows real schemas (`openapi.py`):
the record schema is the served bundle's own signature, regenerated when the release changes.

During a rollout (`deploy/<target>.json` declares one; see `releases.py`) the stable release
and the candidate are both loaded. Canary: each record is routed by a hash of its declared key
field (else of its request id, drawn before scoring for that), so one caller sees one model;
the response names the release of every prediction. Shadow: the stable release answers, and the
candidate scores the same rows in the model thread after the responses are handed back, its
prediction logged beside the stable one (`shadow`), never returned. Every log entry of a rollout
names its step and arm (`rollout`) and the model time (`model_ms`); a failed candidate call is
logged as an entry with `error` (no inputs: snapshots skip it), which the rollout analysis
counts.

Here: the request handling (`Service`) and the routes (`create_app`). Beside it: the documented
shapes and the /docs page (`openapi.py`), the /feedback checks (`feedback.py`), request counting
(`middleware.py`), HTTP plumbing (`http.py`) and the model thread (`batching.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from pipeline.bundle_format import PREDICTION as OFFLINE_PREDICTION
from pipeline.deploy.service.feedback import check_feedback
from pipeline.deploy.service.http import (
    HTTPError,
    RateLimiter,
    check_bearer,
    client_host,
    json_kind,
    json_response,
    parse_json,
    query_flag,
    read_body,
    require_json,
    retry_after,
)
from pipeline.deploy.service.metrics import CONTENT_TYPE, ServiceMetrics
from pipeline.deploy.service.microbatch import (
    Job,
    MicroBatcher,
    RequestScores,
    new_request_ids,
    score,
)
from pipeline.deploy.service.middleware import MetricsMiddleware
from pipeline.deploy.service.openapi import (
    FEEDBACK_REQUEST,
    PREDICT_REQUEST,
    FeedbackResponse,
    HealthResponse,
    PredictResponse,
    VersionResponse,
    docs_page,
    document,
    json_body,
    problems,
)
from pipeline.deploy.service.predlog import FEEDBACK, PREDICTIONS, JsonLinesLog, RequestIndex
from pipeline.deploy.service.redact import Redactor
from pipeline.deploy.service.releases import (
    ReleaseSlot,
    ReleaseWatcher,
    Routing,
    Served,
    deploy_file,
    load_served,
)
from pipeline.errors import ConfigError
from pipeline.params import ServeSettings

LOG = logging.getLogger("mlops.serve")
MAX_BACKLOG = 200_000  # prediction log entries not yet written before /predict answers 503
OFFLOAD_RECORDS = 64  # larger requests are checked in a worker thread, not on the event loop
OFFLOAD_BYTES = 64 * 1024  # larger bodies are parsed in a worker thread


# --------------------------------------------------------------------------------- service
class Service:
    """Everything one app owns: the served release, the model thread, the logs, metrics."""

    def __init__(
        self,
        settings: ServeSettings,
        root: Path,
        *,
        token: str | None,
        poll_seconds: float = 1.0,
        loader: Callable[..., Served] = load_served,
        redactor: Redactor | None = None,
        only_release: str | None = None,
    ) -> None:
        if settings.auth.predict_requires_token and token is None:
            raise ConfigError(
                f"target {settings.target!r} requires a token for /predict, but none is set",
                hint=f"export {settings.auth.token_env}=<token> (or set auth.token_file); "
                "secrets never go in conf/",
            )
        self.settings = settings
        self.root = root
        self.token = token
        # personal columns are redacted before an entry is queued (refused here without a key)
        self.redactor = redactor or Redactor.from_settings(settings.redact)
        self.metrics = ServiceMetrics(settings.target)
        self.slot = ReleaseSlot(settings.target)
        self.slot.on_change.append(self._on_release)
        self.watcher = ReleaseWatcher(
            deploy_file(root, settings.target),
            root,
            self.slot,
            threads=settings.threads,
            poll_seconds=poll_seconds,
            on_failure=lambda _msg: self.metrics.load_failures.inc(),
            loader=loader,
            only=only_release,
        )
        self.index = RequestIndex()
        self.predlog = JsonLinesLog(
            settings.log_dir,
            PREDICTIONS,
            rotate_bytes=settings.rotate_bytes,
            keep=settings.keep,
            index=self.index,
            max_age_days=settings.max_age_days,
        )
        self.feedlog = JsonLinesLog(
            settings.log_dir,
            FEEDBACK,
            rotate_bytes=settings.rotate_bytes,
            keep=settings.keep,
            max_age_days=settings.max_age_days,
        )
        self.batcher = MicroBatcher(
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_s,
            threads=settings.threads,
            on_scored=self._on_scored,
            observe_batch=self._observe_batch,
            on_failed=self._on_failed,
            after_resolve=self._after_resolve,
        )
        self.limiter = RateLimiter(settings.feedback_per_minute)  # authenticated feedback
        self.auth_failures = RateLimiter(settings.feedback_per_minute)  # failed tokens
        self.started = time.monotonic()
        self._last_served: Served | None = None
        self.openapi_key: object = object()

    async def start(self) -> None:
        known = await asyncio.to_thread(self.index.load, self.settings.log_dir, PREDICTIONS)
        self.predlog.start()
        self.feedlog.start()
        self.batcher.start(asyncio.get_running_loop())
        await asyncio.to_thread(self.watcher.check)
        self.watcher.start()
        LOG.info(
            "target %s: serving %s; %d request ids in the prediction log",
            self.settings.target,
            self.slot.current.release if self.slot.current else "no release",
            known,
        )

    async def stop(self) -> None:
        """Graceful: stop following, score what is queued, write every log entry."""
        await asyncio.to_thread(self.watcher.stop)
        await asyncio.to_thread(self.batcher.close)
        await asyncio.to_thread(self.predlog.close)
        await asyncio.to_thread(self.feedlog.close)

    # -------------------------------------------------------------------------- callbacks
    def _on_release(self, slot: ReleaseSlot) -> None:
        served = slot.current
        self.metrics.in_sync.set(1 if slot.in_sync else 0)
        if served is self._last_served:
            return
        self._last_served = served
        self.metrics.swaps.inc()
        self.metrics.set_release(
            None if served is None else served.release,
            None if served is None else served.bundle_id,
            served is not None,
        )
        if served is not None and not served.classifier:
            try:
                reference = served.bundle.predictions()[OFFLINE_PREDICTION].to_numpy(dtype=float)
            except (OSError, KeyError, ValueError):
                reference = []
            self.metrics.set_value_buckets(reference)

    def _on_scored(self, served: Served, jobs: Sequence[Job], stamp: str) -> None:
        """Model thread, before any response is sent: log entries, request ids, metrics."""
        names = served.bundle.signature.names
        redact = self.redactor.apply if self.redactor else None
        entries: list[dict[str, Any]] = []
        predictions: list[Any] = []
        for job in jobs:
            result = job.result
            assert result is not None
            first = len(entries)
            for i, row in enumerate(job.rows):
                inputs = dict(zip(names, row, strict=True))
                entry = {
                    "request_id": result.request_ids[i],  # first key: RequestIndex.load
                    "time": stamp,
                    "release": served.release,
                    "bundle": served.bundle_id,
                    "inputs": inputs if redact is None else redact(inputs),
                    "prediction": result.predictions[i],
                    "flags": job.flags[i],
                }
                if result.proba is not None:
                    entry["proba"] = result.proba[i]
                if job.passthrough and job.passthrough[i]:
                    extra = job.passthrough[i] if redact is None else redact(job.passthrough[i])
                    if extra:
                        entry["passthrough"] = extra
                if job.tag is not None:
                    entry["rollout"] = job.tag
                    entry["model_ms"] = round(result.model_ms, 3)
                entries.append(entry)
            predictions.extend(result.predictions)
            self.index.add_pending(result.request_ids)
            self.metrics.observe_flags(job.flags)
            if job.shadow is not None:  # logged once the shadow has scored them too
                job.entries = entries[first:]
                del entries[first:]
        if entries:
            self.predlog.extend(entries)
        self.metrics.observe_predictions(served.release or "", predictions, served.classifier)

    def _on_failed(
        self, served: Served, jobs: Sequence[Job], exc: BaseException, stamp: str
    ) -> None:
        """Model thread: a rollout's failed model call is logged per record (the analysis counts
        errors); the entry has no inputs, so snapshots and the feedback index pass it by."""
        entries = []
        for job in jobs:
            if job.tag is None:
                continue
            ids = job.request_ids or new_request_ids(len(job.rows))
            for rid in ids:
                entries.append(
                    {
                        "time": stamp,  # first key: not a prediction (RequestIndex.load)
                        "request_id": rid,
                        "release": served.release,
                        "bundle": served.bundle_id,
                        "rollout": job.tag,
                        "error": f"{type(exc).__name__}: {exc}"[:500],
                    }
                )
        if entries:
            self.predlog.extend(entries)

    def _after_resolve(self, jobs: Sequence[Job]) -> None:
        """Model thread, after the responses: the shadow model scores the rows its jobs held
        back, and their entries are logged with its prediction (or its error) beside."""
        held = [job for job in jobs if job.shadow is not None and job.entries is not None]
        if not held:
            return
        groups: dict[int, list[Job]] = {}
        for job in held:
            groups.setdefault(id(job.shadow), []).append(job)
        for group in groups.values():
            shadow = group[0].shadow
            assert shadow is not None
            rows = [row for job in group for row in job.rows]
            self.batcher.limit(shadow.bundle.model)
            started = time.perf_counter()
            try:
                predictions, proba = score(shadow, rows, want_proba=False)
                failed = None
            except Exception as exc:  # noqa: BLE001 - the shadow never affects serving
                predictions, proba, failed = [], None, f"{type(exc).__name__}: {exc}"[:500]
            model_ms = round((time.perf_counter() - started) * 1000.0, 3)
            entries = [entry for job in group for entry in job.entries or ()]
            for i, entry in enumerate(entries):
                shadow_entry: dict[str, Any] = {"release": shadow.release}
                if failed is None:
                    shadow_entry.update(prediction=predictions[i], model_ms=model_ms)
                else:
                    shadow_entry["error"] = failed
                entry["shadow"] = shadow_entry
            for job in group:
                job.entries = None
            self.predlog.extend(entries)
            del proba

    def _observe_batch(self, records: int, requests: int, seconds: float) -> None:
        self.metrics.batch_records.observe(records)
        self.metrics.batch_requests.observe(requests)
        self.metrics.model_seconds.observe(seconds)

    # --------------------------------------------------------------------------- handlers
    async def predict(self, request: Request) -> Response:
        # read once: this request is validated and scored by this pair
        served, routing = self.slot.state
        if served is None:
            raise HTTPError(
                503, f"no release: deploy/{self.settings.target}.json declares none that loads"
            )
        if self.settings.auth.predict_requires_token:
            self._authenticate(request, client_host(request))
        proba = query_flag(request.query_params.get("proba"), "proba")
        self.predlog.ensure_running()
        if self.predlog.backlog > MAX_BACKLOG:
            raise HTTPError(
                503, "the prediction log is behind (disk?); retry later", None, {"Retry-After": "5"}
            )
        require_json(request)
        body = await read_body(request, self.settings.max_body_bytes)
        payload = (
            await asyncio.to_thread(parse_json, body)
            if len(body) > OFFLOAD_BYTES
            else (parse_json(body))
        )
        records = self._records(payload)
        if routing is not None:
            return await self._predict_rollout(served, routing, records, proba)
        self.batcher.arriving()
        submitted = False
        try:
            checked = await self._checked(served, records)
            try:
                future = self.batcher.submit(
                    served, checked.rows, checked.flags, proba, checked.passthrough
                )
            except RuntimeError as exc:
                submitted = True  # submit already released its count
                raise HTTPError(503, str(exc)) from None
            submitted = True
        finally:
            if not submitted:
                self.batcher.left()
        self.metrics.request_records.observe(len(records))
        result: RequestScores = await future
        return json_response(
            {
                "release": result.release,
                "bundle": result.bundle,
                "predictions": _predictions(result, checked.flags),
            },
            headers={"X-Mlops-Release": result.release or ""},
        )

    async def _predict_rollout(
        self, served: Served, routing: Routing, records: list[Any], proba: bool
    ) -> Response:
        """/predict during a rollout: validated by the stable release's signature, then scored
        by the stable (shadow: and by the candidate, after the response) or, canary, each record
        by the release its routing hash picks."""
        checked = await self._checked(served, records)
        n = len(records)
        candidate = routing.candidate
        same_inputs = candidate.bundle.signature.names == served.bundle.signature.names
        if not routing.canary or not same_inputs:
            plan = [(served, list(range(n)), routing.tag("stable"))]
            shadow = candidate if not routing.canary and same_inputs else None
            ids: list[str] | None = None
        else:
            ids = new_request_ids(n)
            key = routing.key
            to_candidate = [
                routing.to_candidate(_route_value(records[i], key, ids[i])) for i in range(n)
            ]
            plan = [
                (served, [i for i in range(n) if not to_candidate[i]], routing.tag("stable")),
                (candidate, [i for i in range(n) if to_candidate[i]], routing.tag("candidate")),
            ]
            plan = [p for p in plan if p[1]]
            shadow = None
        futures = []
        for model, index, tag in plan:
            self.batcher.arriving()
            try:
                futures.append(
                    self.batcher.submit(
                        model,
                        [checked.rows[i] for i in index],
                        [checked.flags[i] for i in index],
                        proba,
                        [checked.passthrough[i] for i in index] if checked.passthrough else None,
                        request_ids=None if ids is None else [ids[i] for i in index],
                        tag=tag,
                        shadow=shadow,
                    )
                )
            except RuntimeError as exc:
                raise HTTPError(503, str(exc)) from None
        self.metrics.request_records.observe(n)
        results: list[RequestScores] = list(await asyncio.gather(*futures))
        items: list[dict[str, Any] | None] = [None] * n
        for (_model, index, _tag), result in zip(plan, results, strict=True):
            flags = [checked.flags[i] for i in index]
            for i, item in zip(index, _predictions(result, flags), strict=True):
                if routing.canary:
                    item["release"] = result.release
                items[i] = item
        first = results[0] if len(results) == 1 else None
        release = served.release if first is None else first.release
        bundle = served.bundle_id if first is None else first.bundle
        return json_response(
            {"release": release, "bundle": bundle, "predictions": items},
            headers={"X-Mlops-Release": release or ""},
        )

    async def _checked(self, served: Served, records: list[Any]) -> Any:
        """Records checked by `served`'s signature (422 with every error)."""
        sig = served.bundle.signature
        reject = self.settings.reject_unseen
        if len(records) > OFFLOAD_RECORDS:
            checked = await asyncio.to_thread(sig.check, records, reject_unseen=reject)
        else:
            checked = sig.check(records, reject_unseen=reject)
        if checked.errors:
            raise HTTPError(
                422,
                f"{len({e['index'] for e in checked.errors})} of {len(records)} record(s) "
                "do not match the model's input signature",
                checked.errors,
            )
        return checked

    def _records(self, payload: Any) -> list[Any]:
        if isinstance(payload, dict):
            return [payload]
        if not isinstance(payload, list):
            raise HTTPError(
                422,
                f"expected a record (JSON object) or a list of records, got {json_kind(payload)}",
                [{"index": None, "field": None, "message": "expected an object or a list"}],
            )
        if not payload:
            raise HTTPError(
                422,
                "empty list: send at least one record",
                [{"index": None, "field": None, "message": "empty list"}],
            )
        if len(payload) > self.settings.max_records:
            raise HTTPError(
                413,
                f"{len(payload)} records exceed the limit of {self.settings.max_records} "
                "per request; split the request (or score files with `mlops predict`)",
            )
        return payload

    async def feedback(self, request: Request) -> Response:
        if self.token is None:
            raise HTTPError(
                503,
                "feedback is not configured: the service has no bearer token (set "
                f"${self.settings.auth.token_env} or auth.token_file and restart)",
            )
        client = client_host(request)
        self._authenticate(request, client)
        wait = self.limiter.allow(client)  # authenticated requests only: see _authenticate
        if wait is not None:
            raise HTTPError(
                429,
                f"rate limit of {self.settings.feedback_per_minute} feedback requests per "
                "minute exceeded",
                None,
                {"Retry-After": retry_after(wait)},
            )
        served = self.slot.current
        if served is None:
            raise HTTPError(503, "no release is served: labels cannot be checked")
        require_json(request)
        body = await read_body(request, self.settings.max_body_bytes)
        items = self._records(parse_json(body))
        labels, errors = check_feedback(items, served, self.index)
        if errors:
            raise HTTPError(
                422,
                f"{len({e['index'] for e in errors})} feedback item(s) refused; none was accepted",
                errors,
            )
        stamp = _utc_now()
        for request_id, label in labels:
            self.feedlog.append({"request_id": request_id, "label": label, "time": stamp})
        self.metrics.feedback_labels.inc(len(labels))
        return json_response({"accepted": len(labels)})

    def _authenticate(self, request: Request, client: str) -> None:
        """The bearer token is checked first, and only failed attempts count against the
        client's failure bucket (429 once it is empty, so guessing stays slow). The token
        holder's requests never touch that bucket: anonymous traffic, even from the same
        address (a proxy, a NAT), cannot lock them out. Authenticated feedback has its own
        limit (`limiter`)."""
        assert self.token is not None
        try:
            check_bearer(request, self.token)
        except HTTPError:
            wait = self.auth_failures.allow(client)
            if wait is not None:
                raise HTTPError(
                    429,
                    "too many failed authentications from this client "
                    f"(limit {self.settings.feedback_per_minute} per minute)",
                    None,
                    {"Retry-After": retry_after(wait), "WWW-Authenticate": "Bearer"},
                ) from None
            raise

    def health(self) -> dict[str, Any]:
        served, slot = self.slot.current, self.slot
        desired = slot.desired
        for log in (self.predlog, self.feedlog):
            log.ensure_running()
        log_error = self.predlog.problem() or self.feedlog.problem()
        if log_error is not None:
            status = "unhealthy"
        elif slot.error is not None or (served is not None and not slot.in_sync):
            status = "degraded"
        elif served is None:
            status = "no release"
        else:
            status = "ok"
        routing = slot.rollout
        answer: dict[str, Any] = {
            "status": status,
            "model_loaded": served is not None,
            "release": None if served is None else served.release,
            "bundle": None if served is None else served.bundle_id,
            "desired_release": None if desired is None else desired.release,
            "in_sync": slot.in_sync,
            "error": slot.error,
            "uptime_seconds": round(time.monotonic() - self.started, 3),
            "log_backlog": self.predlog.backlog,
            "log_error": log_error,
        }
        if routing is not None:
            answer["rollout"] = routing.summary()
        return answer


def _route_value(record: Any, key: str | None, request_id: str) -> Any:
    """What canary routing hashes for one record: its declared key field, else (no key
    declared, or the record has none) its request id."""
    if key is None or not isinstance(record, dict) or record.get(key) is None:
        return request_id
    return record[key]


def _predictions(result: RequestScores, flags: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    out = []
    for i, rid in enumerate(result.request_ids):
        item: dict[str, Any] = {
            "request_id": rid,
            "prediction": result.predictions[i],
            "flags": flags[i],
        }
        if result.proba is not None:
            item["proba"] = result.proba[i]
        out.append(item)
    return out


def _utc_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


# ------------------------------------------------------------------------------------- app
def create_app(service: Service) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    target = service.settings.target
    app = FastAPI(
        title=f"gitops-mlops: {target}",
        description=f"Serves the release declared in deploy/{target}.json "
        "(hot-swapped when the file changes).",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # see `docs_page`: only when declared, and pinned
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)

    @app.exception_handler(HTTPError)
    async def _problem(_request: Request, exc: HTTPError) -> Response:
        return exc.response()

    @app.post(
        "/predict",
        response_model=None,
        summary="Score one record or a list of records",
        responses={
            200: {"model": PredictResponse, "description": "One prediction per record"},
            **problems(400, 401, 413, 415, 422, 503),
        },
        openapi_extra={
            "parameters": [
                {
                    "name": "proba",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "boolean", "default": False},
                    "description": "Also return class probabilities (classifiers)",
                }
            ],
            "requestBody": json_body(PREDICT_REQUEST),
        },
    )
    async def predict(request: Request) -> Response:
        return await service.predict(request)

    @app.post(
        "/feedback",
        response_model=None,
        summary="Ground truth for earlier predictions (bearer token)",
        responses={
            200: {"model": FeedbackResponse, "description": "All items accepted"},
            **problems(400, 401, 413, 415, 422, 429, 503),
        },
        openapi_extra={
            "requestBody": json_body(FEEDBACK_REQUEST),
            "security": [{"bearer": []}],
        },
    )
    async def feedback(request: Request) -> Response:
        return await service.feedback(request)

    @app.get(
        "/health",
        response_model=HealthResponse,
        summary="Liveness, the served model and the logs",
        responses={503: {"model": HealthResponse, "description": "A log cannot be written"}},
    )
    async def health() -> Response:
        body = service.health()
        return json_response(body, 503 if body["status"] == "unhealthy" else 200)

    @app.get("/version", response_model=VersionResponse, summary="The served release")
    async def version() -> Response:
        return json_response(service.slot.version())

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        service.metrics.log_backlog.set(service.predlog.backlog)
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        served = service.slot.current
        key = None if served is None else served.digest
        if app.openapi_schema is not None and service.openapi_key == key:
            return app.openapi_schema
        schema = document(app, served, service.settings.max_records)
        app.openapi_schema, service.openapi_key = schema, key
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    if service.settings.docs:

        @app.get("/docs", include_in_schema=False)
        async def docs() -> Response:
            return docs_page(app.title)

    return app
