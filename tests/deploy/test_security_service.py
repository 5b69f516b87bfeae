"""Hostile requests against a real service (issue 10): invalid Unicode, browser-style
cross-site posts, anonymous traffic against the feedback limit, weak secrets, the docs page, and
the prediction log's privacy (file modes, retention by age, redaction of personal columns).
Last, a property-based fuzz test of the whole service (a longer run is marked slow)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from pipeline.deploy.service.predlog import JsonLinesLog, iter_entries, log_paths
from pipeline.deploy.service.secrets import resolve_token
from pipeline.deploy.service.server import build
from pipeline.errors import ConfigError
from pipeline.params import AuthSettings
from tests.deploy.serving import (
    AUTH,
    good_record,
    make_bundle,
    project,
    release,
    running,
    settings,
    wait_for,
)

JSON = {"content-type": "application/json"}
GOOD = json.dumps(good_record())


def logged(root: Path, stem: str = "predictions") -> list[dict[str, Any]]:
    log_dir = root / "logs/local"
    return [e for path in log_paths(log_dir, stem) for e in iter_entries(path)]


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = project(tmp_path)
    release(root, make_bundle(root))
    return root


def _with(field: str, raw_value: bytes) -> bytes:
    """A good record whose `field` is the raw JSON text `raw_value` (escapes kept as written)."""
    record = good_record()
    record.pop(field, None)
    return json.dumps(record)[:-1].encode() + f', "{field}": '.encode() + raw_value + b"}"


HOSTILE = {
    "lone surrogate as a pass-through value": _with("customer_id", rb'"\ud800"'),
    "lone surrogate as a category value": _with("region", rb'"\udfff"'),
    "high surrogate at the end": _with("plan", rb'"basic\ud83d"'),
    "lone surrogate as a field name": _with("\\ud800", b"1"),
    "nested": b"[" + GOOD.encode() + b', {"a": ["\\udc00"]}]',
    "the surrogate's own UTF-8 bytes": _with("customer_id", b'"\xed\xa0\x80"'),
}


def test_invalid_unicode_is_refused_and_every_later_request_is_logged(served: Path) -> None:
    """Issue 10, finding 2: a lone surrogate was answered 200 and then killed the log writer
    (or, as a field name, gave a 500); later requests were never logged and /health said ok."""
    n = 20
    with running(served) as srv, srv.client() as client:
        for name, body in HOSTILE.items():
            hostile = client.post("/predict", content=body, headers=JSON)
            assert hostile.status_code == 400, (name, hostile.text)
            detail = hostile.json()["detail"]
            assert "invalid Unicode" in detail or "not valid UTF-8" in detail, name
        ids = [
            client.post("/predict", json=good_record()).json()["predictions"][0]["request_id"]
            for _ in range(n)
        ]
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
    assert [e["request_id"] for e in logged(served)] == ids  # all N, after a graceful stop


def test_surrogate_error_names_where_it_is(served: Path) -> None:
    with running(served) as srv, srv.client() as client:
        response = client.post("/predict", content=_with("\\ud800", b"1"), headers=JSON)
        nested = client.post(
            "/predict", content=b'[{"a": 1}, {"b": ["x", "\\udc00"]}]', headers=JSON
        )
    assert "\\ud800" in response.json()["detail"] and "field name" in response.json()["detail"]
    assert "[1].b[1]" in nested.json()["detail"]


def test_feedback_with_invalid_unicode_is_refused(served: Path) -> None:
    with running(served) as srv, srv.client() as client:
        response = client.post(
            "/feedback",
            content=b'{"request_id": "\\ud800", "label": "no"}',
            headers={**AUTH, **JSON},
        )
        assert response.status_code == 400
        assert client.get("/health").json()["status"] == "ok"


# ---------------------------------------------------------------------- the log writer itself
def test_writer_escapes_what_it_cannot_encode_and_keeps_writing(tmp_path: Path) -> None:
    """Defence in depth: whatever reaches the writer is written; one entry never stops it."""
    log = JsonLinesLog(tmp_path, "predictions", rotate_bytes=1 << 20, keep=3)
    log.start()
    log.extend(
        [
            {"request_id": "a", "inputs": {"x": "\ud800"}},
            {"request_id": "b", "inputs": {"\udfff": 1.0}},
            {"request_id": "c", "inputs": {"x": object()}},
        ]
    )
    log.append({"request_id": "d", "inputs": {"x": "ok"}})
    log.close()
    lines = (tmp_path / "predictions.jsonl").read_bytes().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["request_id"] for e in entries] == ["a", "b", "c", "d"]
    assert entries[0]["inputs"] == {"x": "\ud800"}  # kept, escaped: b'"\\ud800"'
    assert b"\\ud800" in lines[0] and b"\\udfff" in lines[1]
    assert "could not be encoded" in entries[2]["error"]
    assert log.problem() is None and log.backlog == 0


class Failing:
    """Stands in for a log's `_write_bytes` while `failing` is set."""

    def __init__(self, log: JsonLinesLog, exc: BaseException) -> None:
        self.log, self.exc, self.failing, self.calls = log, exc, True, 0
        self.real = log._write_bytes

    def __call__(self, data: bytes) -> None:
        self.calls += 1
        if self.failing:
            raise self.exc
        self.real(data)


@pytest.mark.parametrize(
    "exc",
    [OSError(28, "No space left on device"), RuntimeError("a bug in the writer")],
    ids=["disk-full", "bug"],
)
def test_a_failing_writer_makes_health_unhealthy_then_recovers(
    served: Path, exc: BaseException
) -> None:
    with running(served) as srv, srv.client() as client:
        log = srv.service.predlog
        failing = Failing(log, exc)
        log._write_bytes = failing  # type: ignore[method-assign]
        ids = [
            client.post("/predict", json=good_record()).json()["predictions"][0]["request_id"]
            for _ in range(5)
        ]
        wait_for(lambda: failing.calls >= 2)  # retried
        health = client.get("/health")
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "unhealthy"
        assert str(exc) in health.json()["log_error"] and health.json()["log_backlog"] > 0
        failing.failing = False
        wait_for(lambda: client.get("/health").status_code == 200, timeout=15)
        assert client.get("/health").json()["log_error"] is None
        ids += [
            client.post("/predict", json=good_record()).json()["predictions"][0]["request_id"]
            for _ in range(5)
        ]
    assert [e["request_id"] for e in logged(served)] == ids
    assert log.errors >= 2


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_writer_thread_is_restarted_and_loses_nothing(tmp_path: Path) -> None:
    log = JsonLinesLog(tmp_path, "predictions", rotate_bytes=1 << 20, keep=3)

    def die() -> bool:
        del log._step  # type: ignore[attr-defined]  # the restarted thread works normally
        raise SystemExit  # not an Exception: nothing in the writer may catch it

    log._step = die  # type: ignore[method-assign]
    log.start()
    log.append({"request_id": "a"})
    wait_for(lambda: not log.running)
    assert "not running" in (log.problem() or "")
    log.append({"request_id": "b"})
    log.ensure_running()
    log.close()
    assert [e["request_id"] for e in iter_entries(tmp_path / "predictions.jsonl")] == ["a", "b"]


# ------------------------------------------------------------------------- cross-site posts
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
        "application/json; charset=latin-1",
        "application/jsonx",
    ],
)
def test_only_json_posts_are_read(served: Path, content_type: str | None) -> None:
    """A browser sends these cross-site without a CORS preflight (no type at all: a Blob)."""
    headers = {} if content_type is None else {"content-type": content_type}
    with running(served) as srv, srv.client() as client:
        predict = client.post("/predict", content=GOOD, headers=headers)
        feedback = client.post(
            "/feedback",
            content=json.dumps({"request_id": "x", "label": "no"}),
            headers={**headers, **AUTH},
        )
        fine = [
            client.post("/predict", content=GOOD, headers={"content-type": t}).status_code
            for t in ("application/json", "Application/JSON; charset=UTF-8", "application/x+json")
        ]
    for response in (predict, feedback):
        assert response.status_code == 415, response.text
        assert "application/json" in response.json()["detail"]
    assert fine == [200, 200, 200]
    assert len(logged(served)) == 3 and logged(served, "feedback") == []


# ----------------------------------------------------------------------- feedback rate limit
def test_anonymous_traffic_cannot_lock_out_the_token_holder(served: Path) -> None:
    item = {"request_id": "x", "label": "no"}
    with running(served, limits__feedback_per_minute=3) as srv, srv.client() as client:
        rid = client.post("/predict", json=good_record()).json()["predictions"][0]["request_id"]
        item["request_id"] = rid
        anonymous = [client.post("/feedback", json=item).status_code for _ in range(5)]
        wrong = client.post("/feedback", json=item, headers={"Authorization": "Bearer nope"})
        holder = [client.post("/feedback", json=item, headers=AUTH).status_code for _ in range(4)]
    assert anonymous == [401, 401, 401, 429, 429]  # guessing stays slow
    assert wrong.status_code == 429 and "failed authentications" in wrong.json()["detail"]
    assert holder == [200, 200, 200, 429]  # its own limit, untouched by the anonymous ones


def test_predict_token_failures_are_limited_too(served: Path) -> None:
    with (
        running(served, auth__predict_requires_token=True, limits__feedback_per_minute=2) as srv,
        srv.client() as client,
    ):
        statuses = [client.post("/predict", json=good_record()).status_code for _ in range(3)]
        holder = client.post("/predict", json=good_record(), headers=AUTH)
    assert statuses == [401, 401, 429] and holder.status_code == 200


# -------------------------------------------------------------------------------- secrets
def test_weak_or_exposed_secrets_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "token"
    secret.write_text("a-long-enough-token-0123\n")
    auth = AuthSettings("MY_TOKEN", secret, False)

    def refused(environ: dict[str, str], auth: AuthSettings = auth) -> str:
        with pytest.raises(ConfigError) as info:
            resolve_token(auth, environ)
        return info.value.render()

    secret.chmod(0o644)
    message = refused({})
    assert "every user" in message and "chmod 600" in message and str(secret) in message
    secret.chmod(0o640)
    with caplog.at_level("WARNING", logger="mlops.serve"):
        assert resolve_token(auth, {}) == "a-long-enough-token-0123"
    assert "readable by its group" in caplog.text
    secret.chmod(0o600)
    assert resolve_token(auth, {}) == "a-long-enough-token-0123"
    assert "has 1 character(s); at least 16" in refused({"MY_TOKEN": "x"})
    assert "$MY_TOKEN" in refused({"MY_TOKEN": "x"})
    secret.write_text("short\n")
    assert "at least 16" in refused({})
    secret.write_text("\n")
    assert "is empty" in refused({})
    missing = AuthSettings("MY_TOKEN", tmp_path / "missing", False)
    assert "cannot be read" in refused({}, missing)


def test_the_service_refuses_to_start_with_a_short_token(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_SERVICE_TOKEN", "x")
    with pytest.raises(ConfigError, match="at least 16"):
        build(settings(served), served)


# ----------------------------------------------------------------------------------- docs
def test_docs_are_off_by_default_and_pinned_when_on(served: Path) -> None:
    with running(served) as srv, srv.client() as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").status_code == 200
    with running(served, docs=True) as srv, srv.client() as client:
        page = client.get("/docs")
        assert client.get("/redoc").status_code == 404
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert scripts and all("swagger-ui-dist@5.35.0/" in url for url in scripts)
    assert page.text.count('integrity="sha384-') == 2
    assert "favicon" not in page.text and "tiangolo" not in page.text


# ----------------------------------------------------------------- the log's privacy: modes
def test_log_files_are_private(served: Path) -> None:
    log_dir = served / "logs/local"
    log_dir.mkdir(parents=True)
    old = log_dir / "predictions.00000001.jsonl"  # left by an older version, world-readable
    old.write_text('{"request_id":"a","time":"2999-01-01T00:00:00.000000Z"}\n')
    old.chmod(0o644)
    with running(served, log__rotate_bytes=4096) as srv, srv.client() as client:
        rid = client.post("/predict", json=[good_record()] * 30).json()["predictions"][0]
        item = {"request_id": rid["request_id"], "label": "no"}
        assert client.post("/feedback", json=item, headers=AUTH).status_code == 200
    files = sorted(log_dir.iterdir())
    assert len(files) >= 4 and {p.name for p in files} >= {"predictions.jsonl", "feedback.jsonl"}
    assert {p.name: p.stat().st_mode & 0o777 for p in files} == {p.name: 0o600 for p in files}
    fresh = served / "logs/fresh"
    with running(served, log__dir="logs/fresh"):
        pass
    assert fresh.stat().st_mode & 0o777 == 0o700


# ------------------------------------------------------------- the log's privacy: retention
DAY = 86_400.0
NOW = 2_000_000_000.0  # 2033-05-18


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lines(*entries: tuple[str, float]) -> str:
    return "".join(
        json.dumps({"request_id": r, "time": _iso(t)}, separators=(",", ":")) + "\n"
        for r, t in entries
    )


def test_retention_by_age_deletes_old_files_at_start_rotation_and_while_running(
    tmp_path: Path,
) -> None:
    from pipeline.deploy.service.predlog import RequestIndex, rotated_paths

    (tmp_path / "predictions.00000001.jsonl").write_text(
        _lines(("old1", NOW - 40 * DAY), ("old2", NOW - 31 * DAY))
    )
    (tmp_path / "predictions.00000002.jsonl").write_text(
        _lines(("mixed", NOW - 35 * DAY), ("recent", NOW - 29 * DAY))
    )
    (tmp_path / "predictions.jsonl").write_text(_lines(("current", NOW - 2 * DAY)))
    now = [NOW]
    index = RequestIndex()
    index.load(tmp_path, "predictions")
    log = JsonLinesLog(
        tmp_path,
        "predictions",
        rotate_bytes=1 << 20,
        keep=50,
        index=index,
        max_age_days=30,
        clock=lambda: now[0],
    )
    log.start()
    try:
        names = [p.name for p in rotated_paths(tmp_path, "predictions")]
        # file 1's newest entry is 31 days old: gone; file 2 keeps its 29-day-old entry;
        # the current file's first entry is 2 days old: rotated (a file spans a day at most)
        assert names == ["predictions.00000002.jsonl", "predictions.00000003.jsonl"]
        assert "old2" not in index and "mixed" in index and "current" in index
        log.append({"request_id": "new", "time": _iso(NOW)})
        now[0] = NOW + 1.5 * DAY + 1  # file 2's newest entry passes 30 days
        wait_for(lambda: log.backlog == 0)
        wait_for(lambda: not (tmp_path / "predictions.00000002.jsonl").exists(), timeout=5)
        assert "recent" not in index and "new" in index
    finally:
        log.close()
    kept = [e["request_id"] for p in log_paths(tmp_path, "predictions") for e in iter_entries(p)]
    assert kept == ["current", "new"]


# ------------------------------------------------------------- the log's privacy: redaction
PERSONAL = ("customer_id", "region")


def _personal_traffic(srv: Any) -> list[str]:
    records = [
        good_record(customer_id=4711, region="north"),
        good_record(customer_id=4711.0, region="north"),
        good_record(customer_id="4712", region=None),
        good_record(region="south"),
    ]
    with srv.client() as client:
        response = client.post("/predict", json=records)
        assert response.status_code == 200, response.text
        return [p["request_id"] for p in response.json()["predictions"]]


def test_personal_columns_are_dropped_before_logging(served: Path) -> None:
    with running(served, personal=PERSONAL) as srv:
        ids = _personal_traffic(srv)
    entries = logged(served)
    assert [e["request_id"] for e in entries] == ids
    assert all("region" not in e["inputs"] and "passthrough" not in e for e in entries)
    raw = b"".join(p.read_bytes() for p in (served / "logs/local").iterdir())
    assert b"4711" not in raw and b"north" not in raw and b"south" not in raw


def test_personal_columns_are_hashed_with_a_secret_key(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.deploy.service.snapshot import snapshot

    monkeypatch.setenv("MLOPS_LOG_HASH_KEY", "k" * 32)
    with running(served, personal=PERSONAL, log__redact__method="hash") as srv:
        _personal_traffic(srv)
    entries = logged(served)
    ids = [e.get("passthrough", {}).get("customer_id") for e in entries]
    regions = [e["inputs"]["region"] for e in entries]
    assert ids[0] == ids[1] and re.fullmatch("[0-9a-f]{32}", ids[0])  # 4711 == 4711.0
    assert ids[2] != ids[0] and ids[3] is None
    assert regions[0] == regions[1] != regions[3] and regions[2] is None  # null stays null
    assert entries[0]["inputs"]["plan"] == "standard"  # other columns untouched
    raw = b"".join(p.read_bytes() for p in (served / "logs/local").iterdir())
    assert b"4711" not in raw and b"north" not in raw
    window = snapshot(served / "logs/local", served / "data/production", rows=4).written[0]
    frame = window.read()  # windows hold the digests
    assert sorted(frame["region"].dropna()) == sorted(r for r in regions if r is not None)

    monkeypatch.setenv("MLOPS_LOG_HASH_KEY", "another-key-0123456789")
    with running(served, personal=PERSONAL, log__redact__method="hash") as srv:
        _personal_traffic(srv)
    assert logged(served)[4]["inputs"]["region"] != regions[0]  # keyed: the key decides


def test_hash_redaction_without_a_key_refuses_to_start(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_LOG_HASH_KEY", raising=False)
    conf = settings(served, personal=PERSONAL, log__redact__method="hash")
    with pytest.raises(ConfigError, match="no key is set") as info:
        build(conf, served)
    assert "customer_id, region" in info.value.render()
    assert "MLOPS_LOG_HASH_KEY" in info.value.render()
    # without personal columns no key is needed
    build(settings(served, log__redact__method="hash"), served)


# ----------------------------------------------------------------------------- fuzzing
# Property-based requests against a real server on 127.0.0.1: arbitrary JSON, Unicode (lone
# surrogates included, escaped or as raw bytes), field names, content types, query strings and
# tokens. Asserted for every request: no 5xx, only the documented statuses, a JSON answer;
# every 2xx prediction and feedback item is in the logs after a graceful stop; /health says ok
# (and 200) all along, and the writers really are writing.
SURROGATE = st.characters(categories=["Cs"])
TEXT = st.one_of(
    st.text(st.one_of(st.characters(), SURROGATE), max_size=12),
    st.sampled_from(
        [
            *("", "\ud800", "\udfff", "a\ud83d", "\ud83d\ude00", "\x00", "\u202e", "NaN"),
            *("1e999", "north", "west", "premium", "true", "__proto__", "customer_id"),
        ]
    ),
)
FIELDS = st.one_of(st.sampled_from([*sorted(good_record()), "customer_id"]), TEXT)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(FIELDS, inner, max_size=4)
    ),
    max_leaves=10,
)
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 6
    + ["application/json; charset=utf-8", "text/plain", "application/x+json", None]
)
STATUSES = {200, 400, 401, 413, 415, 422, 429}


@st.composite
def records(draw: st.DrawFn) -> Any:
    """A good record, often left good, else with fields replaced, removed or added (arbitrary
    names and values)."""
    record: dict[str, Any] = good_record()
    if draw(st.integers(0, 2)) == 0:
        return record
    for name in draw(st.lists(st.sampled_from(sorted(record)), max_size=2, unique=True)):
        if draw(st.booleans()):
            record[name] = draw(JSON_VALUES)
        else:
            del record[name]
    record.update(draw(st.dictionaries(FIELDS, JSON_VALUES, max_size=2)))
    return record


@st.composite
def fuzz_requests(draw: st.DrawFn) -> dict[str, Any]:
    endpoint = draw(st.sampled_from(["/predict", "/predict", "/feedback"]))
    if endpoint == "/predict":
        payload = draw(
            st.one_of(records(), st.lists(records(), min_size=1, max_size=4), JSON_VALUES)
        )
    else:
        item = st.fixed_dictionaries(
            {
                "request_id": st.one_of(st.just("known"), TEXT),
                "label": st.one_of(st.sampled_from(["yes", "no"]), JSON_VALUES),
            }
        ) | st.dictionaries(FIELDS, JSON_VALUES, max_size=3)
        payload = draw(st.one_of(item, st.lists(item, min_size=1, max_size=3)))
    body_kind = draw(st.sampled_from(["escaped", "escaped", "escaped", "utf8", "bytes"]))
    if body_kind == "bytes":
        body = draw(st.binary(max_size=64))
    else:
        text = json.dumps(payload, ensure_ascii=body_kind == "escaped")
        body = text.encode("utf-8", "surrogatepass")  # a raw surrogate stays invalid UTF-8
    return {
        "endpoint": endpoint,
        "payload": payload,
        "body": body,
        "content_type": draw(CONTENT_TYPES),
        "proba": draw(st.one_of(st.none(), st.sampled_from(["true", "0", "\u00e9", "x"]))),
        "auth": draw(st.sampled_from(["token", "token", "token", "none", "wrong"])),
    }


def _fuzz(root: Path, examples: int, derandomize: bool) -> dict[str, int]:
    """Run `examples` fuzzed requests; returns counts by outcome (for the report)."""
    predicted: list[str] = []
    labelled: list[str] = []
    counts: dict[str, int] = {"cases": 0}
    with running(root, limits__feedback_per_minute=10**6) as srv, srv.client() as client:
        known = client.post("/predict", json=good_record()).json()["predictions"][0]
        predicted.append(known["request_id"])

        @hyp_settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=derandomize,
            suppress_health_check=list(HealthCheck),
        )
        @given(fuzz_requests())
        def one(request: dict[str, Any]) -> None:
            counts["cases"] += 1
            body = request["body"].replace(b'"known"', json.dumps(known["request_id"]).encode())
            headers = {}
            if request["content_type"] is not None:
                headers["content-type"] = request["content_type"]
            if request["auth"] == "token":
                headers.update(AUTH)
            elif request["auth"] == "wrong":
                headers["authorization"] = "Bearer wrong"
            params = {} if request["proba"] is None else {"proba": request["proba"]}
            response = client.post(
                request["endpoint"], content=body, headers=headers, params=params
            )
            status = response.status_code
            key = f"{request['endpoint']} {status}"
            counts[key] = counts.get(key, 0) + 1
            assert status in STATUSES, (status, response.text, body)
            answer = response.json()  # always JSON, never an HTML error page
            if status == 200 and request["endpoint"] == "/predict":
                predicted.extend(p["request_id"] for p in answer["predictions"])
            elif status == 200:
                items = json.loads(body)
                items = items if isinstance(items, list) else [items]
                labelled.extend(item["request_id"] for item in items)
                assert answer == {"accepted": len(items)}
            if counts["cases"] % 50 == 0:
                health = client.get("/health")
                assert health.status_code == 200 and health.json()["status"] == "ok", health.text

        one()
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["log_error"] is None
        assert srv.service.predlog.errors == 0 and srv.service.feedlog.errors == 0
    assert sorted(e["request_id"] for e in logged(root)) == sorted(predicted)
    assert sorted(e["request_id"] for e in logged(root, "feedback")) == sorted(labelled)
    counts["predictions logged"] = len(predicted)
    counts["labels logged"] = len(labelled)
    return counts


def test_fuzzed_requests_never_break_the_service_or_its_log(served: Path) -> None:
    counts = _fuzz(served, examples=300, derandomize=True)
    print(f"\nfuzz: {counts}")
    assert counts["cases"] == 300
    # the generated requests reach every outcome, not only the early refusals
    for outcome in ("/predict 200", "/predict 400", "/predict 422", "/predict 415"):
        assert counts.get(outcome, 0) >= 5, outcome
    assert counts.get("/feedback 200", 0) >= 1


@pytest.mark.slow
def test_fuzzed_requests_long_run(served: Path) -> None:
    counts = _fuzz(served, examples=5000, derandomize=False)
    print(f"\nfuzz (long): {counts}")
    assert counts["cases"] == 5000
