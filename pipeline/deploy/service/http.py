"""HTTP plumbing of the service: bounded body reading, strict JSON, error responses, bearer
tokens and a per-client rate limit.

Bodies are read incrementally and refused (413) as soon as they pass `max_body_bytes`, whether or
not the client declared a Content-Length (a chunked body has none), so a client can never make
the service buffer more than the limit. JSON is parsed strictly: NaN and Infinity are not JSON
and are refused, like invalid UTF-8, numbers too long to convert and nesting too deep to parse;
none of these can crash the service.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

MAX_ERRORS = 100  # per response: a 1000-record request with every field wrong stays readable


class HTTPError(Exception):
    """An error response: status, a sentence for people, per-field errors for programs."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors[:MAX_ERRORS]
            if len(self.errors) > MAX_ERRORS:
                body["errors_total"] = len(self.errors)
        return json_response(body, self.status, self.headers)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response without FastAPI's encoder pass (the hot path builds plain data)."""
    content = json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return Response(content.encode("utf-8"), status, headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 once it passes `limit` bytes (before reading the rest)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise HTTPError(400, "Content-Length is not a number") from None
        if length > limit:
            raise HTTPError(413, f"request body of {length} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def parse_json(body: bytes) -> Any:
    """Strict JSON, or 400 with the reason."""
    if not body.strip():
        raise HTTPError(400, "request body is empty; expected JSON")
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise HTTPError(400, "request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int too long
        raise HTTPError(400, f"request body is not valid JSON: {exc}") from None


def check_bearer(request: Request, token: str) -> None:
    """401 unless the request carries `Authorization: Bearer <token>` (constant-time compare)."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    challenge = {"WWW-Authenticate": "Bearer"}
    if scheme.lower() != "bearer" or not given.strip():
        raise HTTPError(
            401, "missing bearer token (Authorization: Bearer <token>)", None, challenge
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPError(401, "invalid bearer token", None, challenge)


class RateLimiter:
    """A token bucket per client: `per_minute` requests, refilled continuously, bursts up to
    `per_minute`. Idle clients are forgotten so the table stays small."""

    MAX_CLIENTS = 10_000

    def __init__(self, per_minute: int, clock: Any = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def allow(self, client: str) -> float | None:
        """None when allowed, else the seconds until the next request is."""
        now = self.clock()
        tokens, at = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > self.MAX_CLIENTS:
            self._forget_idle(now)
        return None

    def _forget_idle(self, now: float) -> None:
        full = self.capacity / self.rate  # seconds after which any bucket is full again
        self._buckets = {c: v for c, v in self._buckets.items() if now - v[1] < full}


def finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
