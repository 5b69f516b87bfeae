"""POST /predict, /health, /version, /metrics and the OpenAPI document of a real uvicorn server
on 127.0.0.1 (one server per settings, shared by the tests of this module)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.serving import (
    AUTH,
    TOKEN,
    Built,
    Running,
    good_record,
    make_bundle,
    metric,
    parse_metrics,
    project,
    regression_bundle,
    release,
    running,
    tls,
)

MAX_BODY = 8192
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def flagging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Built]]:
    root = project(tmp_path_factory.mktemp("flag"))
    built = make_bundle(root)
    release(root, built)
    with running(root, limits__max_body_bytes=MAX_BODY, limits__max_records=50) as srv:
        yield srv, built


@pytest.fixture(scope="module")
def rejecting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = project(tmp_path_factory.mktemp("reject"))
    release(root, make_bundle(root))
    with running(root, unseen_policy="reject") as srv:
        yield srv


def test_one_record_and_a_list(flagging: tuple[Running, Built]) -> None:
    srv, built = flagging
    with srv.client() as client:
        one = client.post("/predict", json=good_record())
        many = client.post("/predict", json=[good_record(), good_record(plan="premium")] * 3)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["release"] == built.release and body["bundle"] == built.id
    assert one.headers["x-mlops-release"] == built.release
    [pred] = body["predictions"]
    assert pred["prediction"] in ("no", "yes") and pred["flags"] == [] and "proba" not in pred
    assert len(pred["request_id"]) == 32
    preds = many.json()["predictions"]
    assert len(preds) == 6 and len({p["request_id"] for p in preds} | {pred["request_id"]}) == 7


def test_proba_for_classifiers(flagging: tuple[Running, Built]) -> None:
    srv, _ = flagging
    with srv.client() as client:
        response = client.post("/predict", params={"proba": "true"}, json=[good_record()] * 2)
        plain = client.post("/predict", params={"proba": "false"}, json=good_record())
        bad = client.post("/predict", params={"proba": "maybe"}, json=good_record())
    for pred in response.json()["predictions"]:
        assert set(pred["proba"]) == {"no", "yes"}
        assert sum(pred["proba"].values()) == pytest.approx(1.0)
        assert pred["prediction"] == max(pred["proba"], key=pred["proba"].get)
    assert "proba" not in plain.json()["predictions"][0]
    assert bad.status_code == 422 and "proba" in bad.json()["detail"]


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        (good_record(monthly_charges="sixty"), "monthly_charges", "expected a number, got str"),
        (good_record(monthly_charges=True), "monthly_charges", "expected a number, got bool"),
        (good_record(tenure_months=3.5), "tenure_months", "expected a whole number"),
        (good_record(plan=...), "plan", "required field is missing"),
        (good_record(colour="red"), "colour", "unknown field"),
        (good_record(plan=None), "plan", "null is not allowed"),
        (good_record(monthly_charges=-1), "monthly_charges", "below the declared minimum 0"),
        (good_record(monthly_charges=501), "monthly_charges", "above the declared maximum 500"),
        (good_record(plan="gold"), "plan", "not a declared category"),
        (good_record(signup_date="yesterday"), "signup_date", "ISO date"),
        (good_record(signup_date="2014-12-31"), "signup_date", "before the declared minimum"),
        (good_record(signup_date="2031-01-02"), "signup_date", "after the declared maximum"),
        (good_record(customer_id={"a": 1}), "customer_id", "pass-through field"),
        (good_record(has_partner=[True]), "has_partner", "expected true or false"),
        (good_record(has_partner="maybe"), "has_partner", "expected true or false"),
        (good_record(plan=["basic"]), "plan", "expected a category"),
        (good_record(monthly_charges=1e999), "monthly_charges", "finite"),
    ],
)
def test_invalid_records_get_field_errors(
    flagging: tuple[Running, Built], record: dict[str, Any], field: str, message: str
) -> None:
    srv, _ = flagging
    # 1e999 is valid JSON that overflows to infinity (json.dumps writes it as Infinity)
    body = json.dumps([good_record(), record]).replace("Infinity", "1e999")
    with srv.client() as client:
        response = client.post("/predict", content=body, headers=JSON)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, field)]
    assert message in errors[0]["message"]


def test_declared_id_columns_are_accepted_and_not_scored(flagging: tuple[Running, Built]) -> None:
    """An id column (role: id) is part of a record in a file, so a client may send it too: it
    is accepted and logged (to join labels on), never scored; undeclared fields still fail."""
    srv, _ = flagging
    with srv.client() as client:
        plain = client.post("/predict", params={"proba": "true"}, json=good_record())
        with_id = client.post(
            "/predict", params={"proba": "true"}, json=good_record(customer_id=1234)
        )
    assert with_id.status_code == 200, with_id.text
    [a], [b] = plain.json()["predictions"], with_id.json()["predictions"]
    assert (a["prediction"], a["proba"]) == (b["prediction"], b["proba"])


def test_nulls_allowed_where_declared(flagging: tuple[Running, Built]) -> None:
    srv, _ = flagging
    with srv.client() as client:
        response = client.post("/predict", json=good_record(region=None, support_calls=None))
    assert response.status_code == 200, response.text


UNSEEN = [
    (good_record(region="west"), "unseen_category:region"),  # declared, never in training
    (good_record(monthly_charges=499.0), "out_of_range:monthly_charges"),
    # inside the declared 2015-2030, after every date training saw
    (good_record(signup_date="2030-06-01T12:00:00+02:00"), "out_of_range:signup_date"),
]


@pytest.mark.parametrize(("record", "flag"), UNSEEN)
def test_unseen_values_flagged_by_default(
    flagging: tuple[Running, Built], record: dict[str, Any], flag: str
) -> None:
    srv, _ = flagging
    with srv.client() as client:
        response = client.post("/predict", json=record)
    assert response.status_code == 200
    assert response.json()["predictions"][0]["flags"] == [flag]


@pytest.mark.parametrize(("record", "flag"), UNSEEN)
def test_unseen_values_rejected_under_reject_policy(
    rejecting: Running, record: dict[str, Any], flag: str
) -> None:
    with rejecting.client() as client:
        response = client.post("/predict", json=record)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == flag.split(":")[1] and "policy: reject" in error["message"]


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"[]", 422, "empty list"),
        (b'"a string"', 422, "got a string"),
        (b"42", 422, "got a number"),
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b'{"monthly_charges": NaN}', 400, "NaN is not valid JSON"),
        (b'{"monthly_charges": -Infinity}', 400, "Infinity is not valid JSON"),
        (b"\xff\xfe\x00garbage", 400, "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "exceeds the limit"),
        (b"[" * 3000 + b"]" * 3000, 400, "nested too deeply"),
        (b'{"tenure_months": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
        (json.dumps([good_record()] * 51).encode(), 413, "exceed the limit of 50"),
    ],
)
def test_bad_bodies_get_clear_errors(
    flagging: tuple[Running, Built], content: bytes, status: int, message: str
) -> None:
    srv, _ = flagging
    with srv.client() as client:
        response = client.post(
            "/predict", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, response.text
        assert message in response.json()["detail"]
        assert client.get("/health").json()["status"] == "ok"


def test_oversized_bodies_refused_before_reading_them(flagging: tuple[Running, Built]) -> None:
    srv, _ = flagging
    big = json.dumps([good_record()] * 200).encode()
    assert len(big) > MAX_BODY

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    with srv.client() as client:
        declared = client.post("/predict", content=big, headers=JSON)
        chunked = client.post("/predict", content=chunks(), headers=JSON)
        small_chunked = client.post(
            "/predict", content=iter([json.dumps(good_record()).encode()]), headers=JSON
        )
    assert declared.status_code == 413 and "exceeds the limit" in declared.json()["detail"]
    assert chunked.status_code == 413 and "exceeds the limit" in chunked.json()["detail"]
    assert small_chunked.status_code == 200


def test_fuzzed_bodies_never_break_the_service(flagging: tuple[Running, Built]) -> None:
    srv, _ = flagging
    rng = random.Random(1234)
    values: list[Any] = [None, True, -1, 0, 10**30, 1e308, -1e-308, "", "x" * 50, [], {}, [1]]
    bodies: list[bytes] = [
        bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(40)
    ]
    for _ in range(60):
        record = good_record()
        for key in rng.sample(sorted(record), 3):
            record[key] = rng.choice(values)
        bodies.append(
            json.dumps(rng.choice([record, [record], [record, 1], {"x": record}])).encode()
        )
    statuses = []
    with srv.client() as client:
        for body in bodies:
            statuses.append(client.post("/predict", content=body, headers=JSON).status_code)
        assert client.post("/predict", json=good_record()).status_code == 200
    assert set(statuses) <= {200, 400, 413, 422}
    assert statuses.count(400) >= 30  # random bytes are (almost) never JSON


def test_version_and_health(flagging: tuple[Running, Built]) -> None:
    srv, built = flagging
    with srv.client() as client:
        version = client.get("/version").json()
        health = client.get("/health").json()
    assert version == {
        "release": built.release,
        "bundle": {"id": built.id, "sha256": built.digest},
        "target": "local",
    }
    assert health["status"] == "ok" and health["model_loaded"] and health["in_sync"]
    assert health["release"] == built.release and health["error"] is None


def test_metrics_move(flagging: tuple[Running, Built]) -> None:
    srv, built = flagging
    with srv.client() as client:
        before = parse_metrics(client.get("/metrics").text)
        client.post("/predict", json=[good_record(region="west"), good_record()])
        client.post("/predict", json={"plan": "gold"})
        after = parse_metrics(client.get("/metrics").text)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("mlops_http_requests_total", endpoint="predict", status="200") == 1
    assert delta("mlops_http_requests_total", endpoint="predict", status="422") == 1
    assert delta("mlops_http_request_duration_seconds_count", endpoint="predict") == 2
    assert delta("mlops_predicted_class_total", release=built.release) == 2
    assert delta("mlops_input_flags_total", kind="unseen_category", field="region") == 1
    assert delta("mlops_request_records_count") == 1
    assert delta("mlops_request_records_sum") == 2
    assert delta("mlops_batch_records_sum") == 2
    assert metric(after, "mlops_release_info", release=built.release, bundle=built.id) == 1
    assert metric(after, "mlops_model_loaded") == 1
    assert metric(after, "mlops_release_in_sync") == 1


def test_openapi_documents_the_served_signature(flagging: tuple[Running, Built]) -> None:
    srv, built = flagging
    with srv.client() as client:
        doc = client.get("/openapi.json").json()
        page = client.get("/docs")
    assert page.status_code == 404  # serve.docs: false (the page would run CDN scripts)
    record = doc["components"]["schemas"]["Record"]
    assert set(record["properties"]) == {*good_record(), "customer_id"}  # + the id column
    assert record["additionalProperties"] is False and "plan" in record["required"]
    assert built.release in record["description"]
    predict = doc["paths"]["/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"
    }
    assert {"200", "400", "413", "422", "503"} <= set(predict["responses"])
    assert "Prediction" in doc["components"]["schemas"]
    assert "request_id" in doc["components"]["schemas"]["FeedbackItem"]["properties"]


def test_no_release_yet(tmp_path: Path) -> None:
    root = project(tmp_path)
    with running(root) as srv, srv.client() as client:
        health = client.get("/health").json()
        predict = client.post("/predict", json=good_record())
        version = client.get("/version").json()
    assert health["status"] == "no release" and not health["model_loaded"]
    assert predict.status_code == 503 and "no release" in predict.json()["detail"]
    assert version == {"release": None, "bundle": None, "target": "local"}


def test_predict_can_require_the_token(tmp_path: Path) -> None:
    root = project(tmp_path)
    release(root, make_bundle(root))
    with running(root, auth__predict_requires_token=True) as srv, srv.client() as client:
        anonymous = client.post("/predict", json=good_record())
        wrong = client.post(
            "/predict", json=good_record(), headers={"Authorization": "Bearer nope"}
        )
        allowed = client.post(
            "/predict", json=good_record(), headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert allowed.status_code == 200


def test_predict_requiring_a_token_refuses_to_start_without_one(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError

    root = project(tmp_path)
    with (
        pytest.raises(ConfigError, match="requires a token for /predict"),
        running(root, token=None, auth__predict_requires_token=True),
    ):
        pass


def test_connection_errors_are_not_possible_after_413(flagging: tuple[Running, Built]) -> None:
    """A refused upload still gets its answer, and the next request works."""
    srv, _ = flagging
    with httpx.Client(base_url=srv.url, timeout=10, verify=tls()) as client:
        for _ in range(3):
            big = b"x" * (4 * MAX_BODY)
            assert client.post("/predict", content=big, headers=JSON).status_code == 413
            assert client.post("/predict", json=good_record()).status_code == 200


def test_a_regression_model_serves_numbers_and_takes_numeric_feedback(tmp_path: Path) -> None:
    from pipeline.deploy.bundle import load_bundle

    root = project(tmp_path)
    built = regression_bundle(root)
    release(root, built)
    record = good_record(monthly_charges=...)  # the target: not a feature of this model
    records = [record, record | {"tenure_months": 40}]
    with running(root) as srv, srv.client() as client:
        response = client.post("/predict", json=[record, good_record(plan="premium")])
        assert response.status_code == 422  # monthly_charges is the target here, not a field
        response = client.post("/predict?proba=true", json=records)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["release"] == built.release
        assert all("proba" not in p for p in body["predictions"])  # no classes, no proba
        served = [p["prediction"] for p in body["predictions"]]
        bundle = load_bundle(built.path)
        expected = bundle.model.predict(bundle.signature.validate(records).frame)
        assert served == [float(v) for v in expected] and len(set(served)) == 2
        ids = [p["request_id"] for p in body["predictions"]]
        ok = client.post("/feedback", json=[{"request_id": ids[0], "label": 71.25}], headers=AUTH)
        assert ok.status_code == 200 and ok.json() == {"accepted": 1}
        bad = client.post("/feedback", json=[{"request_id": ids[1], "label": "high"}], headers=AUTH)
        assert bad.status_code == 422 and "finite number" in bad.text
