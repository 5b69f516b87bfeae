"""The one client of the service's GET /version (`pipeline.deploy.live`), which `mlops status`
and `mlops sync` both use: one URL rule, one timeout, one meaning of "unreachable" and of
"in sync"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pipeline.deploy import live, sync

SHA = "a" * 64
ANSWER = {"release": "r0002-abc", "bundle": {"id": "abc", "sha256": SHA}, "target": "local"}


def _client(respond: Callable[[httpx.Request], httpx.Response], seen: list[Any]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.extensions.get("timeout")))
        return respond(request)

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("host", "url"),
    [("0.0.0.0", "http://127.0.0.1:8000"), ("", "http://127.0.0.1:8000"), ("10.0.0.5", None)],
)
def test_a_bind_all_host_is_asked_on_loopback(host: str, url: str | None) -> None:
    assert live.service_url(host, 8000) == (url or f"http://{host}:8000")


def test_the_answer_is_read_from_url_slash_version_with_the_one_timeout() -> None:
    seen: list[Any] = []
    client = _client(lambda r: httpx.Response(200, json=ANSWER), seen)
    assert live.read_version("http://127.0.0.1:8000/", client=client) == ANSWER
    ((url, timeout),) = seen
    assert url == "http://127.0.0.1:8000/version"
    assert timeout == dict.fromkeys(("connect", "read", "write", "pool"), live.TIMEOUT_SECONDS)


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


def _slow(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer in time", request=request)


@pytest.mark.parametrize(
    "respond",
    [
        _refused,
        _slow,
        lambda r: httpx.Response(503, json={"detail": "starting"}),
        lambda r: httpx.Response(200, text="<html>not json</html>"),
        lambda r: httpx.Response(200, json=["not", "an", "object"]),
    ],
    ids=["refused", "timeout", "error-status", "not-json", "not-an-object"],
)
def test_unreachable_or_odd_answers_are_none_never_an_exception(
    respond: Callable[[httpx.Request], httpx.Response],
) -> None:
    assert live.read_version("http://127.0.0.1:8000", client=_client(respond, [])) is None


def test_sync_polls_through_the_same_client() -> None:
    """Without a client the module-level httpx.get is used (sync's path): nothing listens on
    port 9 of loopback, so the answer is None, within the timeout."""
    assert sync.http_live("http://127.0.0.1:9", timeout=0.5)() is None


@pytest.mark.parametrize(
    ("seen", "release", "sha", "expected"),
    [
        (ANSWER, "r0002-abc", SHA, True),
        (ANSWER, "r0002-abc", "b" * 64, False),  # the same id with other bytes
        (ANSWER, "r0001-old", SHA, False),
        ({"release": None, "bundle": None}, None, None, True),  # nothing released, nothing served
        ({"release": "r0002-abc"}, "r0002-abc", SHA, False),  # no bundle in the answer
        ({}, None, None, True),
    ],
)
def test_serves_needs_the_declared_release_and_its_bytes(
    seen: dict[str, Any], release: str | None, sha: str | None, expected: bool
) -> None:
    assert live.serves(seen, release, sha) is expected
