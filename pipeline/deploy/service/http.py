"""HTTP plumbing of the service: bounded body reading, strict JSON, error responses, bearer
tokens, a per-client rate limit (and its Retry-After) and boolean query parameters.

Bodies are read incrementally and refused (413) as soon as they pass `max_body_bytes`, whether or
not the client declared a Content-Length (a chunked body has none), so a client can never make
the service buffer more than the limit. JSON is parsed strictly: NaN and Infinity are not JSON
and are refused, like invalid UTF-8, numbers too long to convert and nesting too deep to parse;
none of these can crash the service.

Text must be valid Unicode. JSON's `\\u` escapes (four hex digits) can spell an unpaired
UTF-16 surrogate (`"\\ud800"`), which Python's `json` accepts and turns into a `str` that cannot
be encoded as UTF-8: answered 200, it later killed the prediction log's writer (and, as a field
name, broke the error response). Such a body is refused here, at parse time, with 400 and the
place of the bad string; nothing downstream ever sees one. Only POSTs declaring JSON
(`require_json`) are read at all, so a browser cannot send one cross-site without a CORS
preflight.
"""

from __future__ import annotations

import hmac
import json
import math
import re
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
    """A JSON response without FastAPI's encoder pass (the hot path builds plain data). Text
    that is not valid Unicode (never accepted by `parse_json`, but an error message may quote
    a header or a path) is sent escaped instead of failing the response."""
    content = json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError:
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")
    return Response(data, status, headers, media_type="application/json")


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (`application/json` or `application/<x>+json`,
    in UTF-8). A browser sends `text/plain`, form encodings or no type at all cross-site
    without asking the server first (no CORS preflight); a JSON type forces that preflight,
    which this service never grants, so a web page cannot post to it in a visitor's name."""
    header = request.headers.get("content-type")
    media, _, params = (header or "").partition(";")
    media = media.strip().lower()
    kind, _, subtype = media.partition("/")
    charset = next(
        (
            value.strip().strip('"').lower()
            for name, _, value in (p.partition("=") for p in params.split(";"))
            if name.strip().lower() == "charset"
        ),
        None,
    )
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        raise HTTPError(
            415,
            f"Content-Type {_escaped(header) if header else '(none)'} is not accepted: send "
            "JSON with `Content-Type: application/json`",
            None,
            {"Accept-Post": "application/json"},
        )
    if charset is not None and charset not in ("utf-8", "utf8"):
        raise HTTPError(
            415,
            f"charset {_escaped(charset)} is not accepted: send JSON in UTF-8 with "
            "`Content-Type: application/json`",
            None,
            {"Accept-Post": "application/json"},
        )


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


# A `\uD800`-`\uDFFF` escape, which may (as half of a pair) or may not (alone) be valid; the
# parsed value is searched only when the text has one. A preceding odd run of backslashes is
# not excluded: a false alarm costs one walk of the parsed value, never a refusal.
_SURROGATE_ESCAPE = re.compile(r"\\[uU][dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BOM = "\ufeff"


def parse_json(body: bytes) -> Any:
    """Strict JSON in UTF-8 holding only valid Unicode, or 400 with the reason."""
    if not body.strip():
        raise HTTPError(400, "request body is empty; expected JSON")
    try:
        text = body.decode("utf-8")  # strict: also refuses the UTF-8 bytes of a surrogate
    except UnicodeDecodeError as exc:
        raise HTTPError(
            400, f"request body is not valid UTF-8 (byte {exc.start}): JSON must be UTF-8"
        ) from None
    text = text.removeprefix(_BOM)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise HTTPError(400, "request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, int too long
        raise HTTPError(400, f"request body is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        where = invalid_unicode(value)
        if where is not None:
            raise HTTPError(
                400,
                f"request body holds invalid Unicode: {where} (an unpaired UTF-16 "
                "surrogate escape); send text as valid Unicode",
            )
    return value


def invalid_unicode(value: Any, path: str = "") -> str | None:
    """Where the first string holding an unpaired surrogate is (`[1].b[0]`, or `the field name
    '\\ud800' at [0]`), or None when every string (keys included) is valid Unicode."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return f"the string {_escaped(item)} at {at or 'the top level'}"
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if _SURROGATE.search(key):
                    return f"the field name {_escaped(key)} at {at or 'the top level'}"
                stack.append((child, f"{at}.{key}" if at else key))
        elif isinstance(item, list):
            stack.extend((child, f"{at}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def _escaped(text: str, limit: int = 40) -> str:
    """Text safe to put in a response or a log line: non-ASCII as escapes, shortened."""
    shown = json.dumps(text[:limit], ensure_ascii=True)
    return shown if len(text) <= limit else shown[:-1] + '..."'


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


# Spellings of a boolean query parameter (`?proba=true`); anything else is refused (422).
FLAG_TRUE, FLAG_FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def query_flag(value: str | None, name: str) -> bool:
    """A boolean query parameter (absent: false), or 422 naming it."""
    if value is None:
        return False
    text = value.strip().lower()
    if text in FLAG_TRUE:
        return True
    if text in FLAG_FALSE:
        return False
    raise HTTPError(
        422,
        f"query parameter {name}={value!r}: expected true or false",
        [{"index": None, "field": name, "message": "expected true or false"}],
    )


def client_host(request: Request) -> str:
    """The client's address: what rate limits count by ("unknown" when the server has none)."""
    return request.client.host if request.client else "unknown"


def retry_after(wait: float) -> str:
    """A Retry-After header value: whole seconds, at least 1, never earlier than `wait`."""
    return str(max(1, round(wait + 0.5)))


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, for error messages ("got a string")."""
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
