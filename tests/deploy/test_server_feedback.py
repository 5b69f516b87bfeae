"""POST /feedback: bearer token, closed when no token is configured, rate limit, unknown ids
and labels refused, accepted labels in the feedback log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.deploy.service.http import RateLimiter
from tests.deploy.serving import (
    AUTH,
    TOKEN,
    Running,
    good_record,
    make_bundle,
    project,
    release,
    running,
    wait_for,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = project(tmp_path_factory.mktemp("feedback"))
    release(root, make_bundle(root))
    with running(root, limits__max_records=20) as srv:
        yield srv


def predict_ids(srv: Running, n: int) -> list[str]:
    with srv.client() as client:
        response = client.post("/predict", json=[good_record()] * n)
    return [p["request_id"] for p in response.json()["predictions"]]


def feedback_lines(srv: Running) -> list[dict[str, Any]]:
    path = srv.root / "logs/local/feedback.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_labels_are_accepted_and_logged(server: Running) -> None:
    ids = predict_ids(server, 3)
    before = len(feedback_lines(server))
    with server.client() as client:
        one = client.post("/feedback", json={"request_id": ids[0], "label": "yes"}, headers=AUTH)
        many = client.post(
            "/feedback",
            json=[{"request_id": ids[1], "label": "no"}, {"request_id": ids[2], "label": "yes"}],
            headers=AUTH,
        )
    assert one.status_code == 200 and one.json() == {"accepted": 1}
    assert many.json() == {"accepted": 2}
    lines = wait_for(lambda: (ls := feedback_lines(server)) and len(ls) == before + 3 and ls)
    assert [(e["request_id"], e["label"]) for e in lines[-3:]] == [
        (ids[0], "yes"),
        (ids[1], "no"),
        (ids[2], "yes"),
    ]
    assert all(e["time"].endswith("Z") for e in lines[-3:])


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing bearer token"),
        ({"Authorization": "Bearer wrong"}, "invalid bearer token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid bearer token"),
    ],
)
def test_token_required(server: Running, headers: dict[str, str], message: str) -> None:
    [rid] = predict_ids(server, 1)
    with server.client() as client:
        response = client.post(
            "/feedback", json={"request_id": rid, "label": "yes"}, headers=headers
        )
    assert response.status_code == 401
    assert message in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        ({"request_id": "0" * 32, "label": "yes"}, "request_id", "unknown request id"),
        ({"label": "yes"}, "request_id", "required"),
        ({"request_id": None, "label": "yes"}, "request_id", "required"),
        ("ID", None, "expected an object"),
        ({"request_id": "known"}, "label", "required"),
        ({"request_id": "known", "label": "maybe"}, "label", "not a class of the model"),
        ({"request_id": "known", "label": 1.5}, "label", "expected a class label"),
        ({"request_id": "known", "label": "yes", "note": 1}, "note", "unknown field"),
    ],
)
def test_bad_items_refuse_the_whole_request(
    server: Running, item: Any, field: str | None, message: str
) -> None:
    good, known = predict_ids(server, 2)
    if isinstance(item, dict) and item.get("request_id") == "known":
        item = {**item, "request_id": known}
    before = len(feedback_lines(server))
    with server.client() as client:
        response = client.post(
            "/feedback", json=[{"request_id": good, "label": "no"}, item], headers=AUTH
        )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, field)]
    assert message in errors[0]["message"]
    assert len(feedback_lines(server)) == before  # nothing accepted


def test_empty_and_oversized_feedback(server: Running) -> None:
    with server.client() as client:
        empty = client.post("/feedback", json=[], headers=AUTH)
        many = client.post(
            "/feedback", json=[{"request_id": "x", "label": "no"}] * 21, headers=AUTH
        )
        not_json = client.post(
            "/feedback", content=b"{", headers={**AUTH, "content-type": "application/json"}
        )
    assert empty.status_code == 422 and "empty list" in empty.json()["detail"]
    assert many.status_code == 413
    assert not_json.status_code == 400


def test_no_token_configured_closes_feedback(tmp_path: Path) -> None:
    root = project(tmp_path)
    release(root, make_bundle(root))
    with running(root, token=None) as srv, srv.client() as client:
        response = client.post("/feedback", json={"request_id": "x", "label": "yes"}, headers=AUTH)
        predict = client.post("/predict", json=good_record())
    assert response.status_code == 503
    assert "not configured" in response.json()["detail"]
    assert "MLOPS_SERVICE_TOKEN" in response.json()["detail"]
    assert predict.status_code == 200  # predictions do not need the token by default


def test_rate_limited_per_client(tmp_path: Path) -> None:
    root = project(tmp_path)
    release(root, make_bundle(root))
    with running(root, limits__feedback_per_minute=3) as srv:
        [rid] = predict_ids(srv, 1)
        with srv.client() as client:
            statuses = [
                client.post(
                    "/feedback", json={"request_id": rid, "label": "no"}, headers=AUTH
                ).status_code
                for _ in range(4)
            ]
            anonymous = [
                client.post("/feedback", json={"request_id": rid, "label": "no"}).status_code
                for _ in range(4)
            ]
    assert statuses == [200, 200, 200, 429]
    # failed authentications have their own bucket (see test_security_service)
    assert anonymous == [401, 401, 401, 429]


def test_token_bucket_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one per second, bursts of 60
    assert all(limiter.allow("a") is None for _ in range(60))
    assert limiter.allow("a") == pytest.approx(1.0)
    assert limiter.allow("b") is None  # per client
    now[0] = 2.0
    assert limiter.allow("a") is None and limiter.allow("a") is None
    assert limiter.allow("a") is not None


def test_token_from_env_or_file(tmp_path: Path) -> None:
    from pipeline.deploy.service.secrets import resolve_token
    from pipeline.params import AuthSettings

    secret = tmp_path / "token"
    secret.write_text("from-file-0123456789\n")
    secret.chmod(0o600)
    auth = AuthSettings("MY_TOKEN", secret, False)
    assert resolve_token(auth, {"MY_TOKEN": "from-env-0123456789"}) == "from-env-0123456789"
    assert resolve_token(auth, {}) == "from-file-0123456789"
    assert resolve_token(AuthSettings("MY_TOKEN", None, False), {"MY_TOKEN": "  "}) is None
