"""The service during a rollout (a real uvicorn server on 127.0.0.1, real bundles): canary
routing shares and stickiness, shadow scoring that never changes a response, every log entry
naming its release, the watcher following each step, and a kill -9 mid-rollout that resumes
from deploy/local.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.deploy.service.predlog import iter_lines
from pipeline.deploy.service.releases import route_point
from pipeline.io import write_json
from pipeline.release_record import check_record as _check
from pipeline.release_record import rollout_started, rollout_stepped
from tests.conftest import BIN, env
from tests.deploy.serving import (
    AUTH,
    TOKEN,
    Built,
    constant_bundle,
    free_port,
    good_record,
    http_get,
    project,
    running,
    tls,
    wait_for,
)

STEPS = [{"weight": 0.3, "hold": {"requests": 100}}, {"weight": 0.6, "hold": {"requests": 100}}]


def _rollout(
    root: Path,
    stable: Built,
    candidate: Built,
    strategy: str = "canary",
    key: str | None = "customer_id",
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    cand = candidate.deploy_record() | {"parent": stable.release}
    steps = steps or (STEPS if strategy == "canary" else [{"weight": 0, "hold": {"requests": 9}}])
    data = rollout_started(stable.deploy_record(), cand, strategy=strategy, key=key, steps=steps)
    write_json(root / "deploy/local.json", data)
    return data


def _entries(root: Path) -> list[dict[str, Any]]:
    """Every complete entry so far: the service may be writing the last line as we read (the
    rule every reader of the log follows, `predlog.iter_lines`)."""
    out = []
    for path in sorted((root / "logs/local").glob("predictions*.jsonl")):
        out += [json.loads(line) for line in iter_lines(path)]
    return out


def _pair(root: Path) -> tuple[Built, Built]:
    return constant_bundle(root, "no", 1), constant_bundle(root, "yes", 2)


def test_canary_routing_shares_and_stickiness(tmp_path: Path) -> None:
    root = project(tmp_path)
    stable, candidate = _pair(root)
    _rollout(root, stable, candidate)
    customers = list(range(1000, 1400))
    expected = {c: route_point(c) < 0.3 for c in customers}  # the declared hash, recomputed
    with running(root) as srv, srv.client() as client:
        wait_for(lambda: srv.service.slot.rollout is not None)
        assert client.get("/version").json()["rollout"]["weight"] == 0.3
        served: dict[int, set[str]] = {c: set() for c in customers}
        for repeat in range(2):  # every caller twice, in other batches: one model each
            order = customers if repeat == 0 else customers[::-1]
            for i in range(0, len(order), 20):
                batch = [good_record(customer_id=c) for c in order[i : i + 20]]
                body = client.post("/predict", json=batch).json()
                for c, item in zip(order[i : i + 20], body["predictions"], strict=True):
                    served[c].add(item["release"])
                    # the response names the release that scored each record, and it did
                    assert item["prediction"] == (
                        "yes" if item["release"] == candidate.release else "no"
                    )
        assert all(len(releases) == 1 for releases in served.values())  # sticky
        to_candidate = {c for c, r in served.items() if r == {candidate.release}}
        assert to_candidate == {c for c, yes in expected.items() if yes}
        share = len(to_candidate) / len(customers)
        assert abs(share - 0.3) < 0.06, share  # the declared tolerance over 400 callers
        wait_for(lambda: len(_entries(root)) == 2 * len(customers))
    entries = _entries(root)
    for entry in entries:
        arm = "candidate" if entry["release"] == candidate.release else "stable"
        assert entry["rollout"] == {"candidate": candidate.release, "step": 0, "arm": arm}
        assert entry["model_ms"] >= 0 and "shadow" not in entry


def test_canary_without_a_key_routes_by_request_id(tmp_path: Path) -> None:
    root = project(tmp_path)
    stable, candidate = _pair(root)
    _rollout(root, stable, candidate, key=None)
    with running(root) as srv, srv.client() as client:
        wait_for(lambda: srv.service.slot.rollout is not None)
        for _ in range(10):
            client.post("/predict", json=[good_record() for _ in range(20)])
        wait_for(lambda: len(_entries(root)) == 200)
    entries = _entries(root)
    for entry in entries:  # verifiable from the log alone
        routed = route_point(entry["request_id"]) < 0.3
        assert entry["release"] == (candidate.release if routed else stable.release)
    assert 0.15 < sum(e["release"] == candidate.release for e in entries) / 200 < 0.45


def test_shadow_never_changes_a_response_and_logs_both_predictions(tmp_path: Path) -> None:
    root = project(tmp_path)
    stable, candidate = _pair(root)
    records = [good_record(customer_id=i) for i in range(30)]
    with running(root) as srv, srv.client() as client:
        write_json(root / "deploy/local.json", stable.deploy_record())
        wait_for(lambda: srv.service.slot.current is not None)
        direct = client.post("/predict?proba=true", json=records)
        _rollout(root, stable, candidate, "shadow")
        wait_for(lambda: srv.service.slot.rollout is not None)
        shadowed = client.post("/predict?proba=true", json=records)
        wait_for(lambda: len([e for e in _entries(root) if "shadow" in e]) == 30)
        # a candidate that fails on a slice of inputs changes nothing either
        model = srv.service.slot.rollout.candidate.bundle.model
        model.predict = _failing(model.predict)
        failing = client.post("/predict?proba=true", json=records)
        wait_for(lambda: len([e for e in _entries(root) if "shadow" in e]) == 60)

    def without_ids(response: httpx.Response) -> Any:
        body = response.json()
        for item in body["predictions"]:
            item.pop("request_id")
        return body

    assert shadowed.status_code == failing.status_code == 200
    assert without_ids(shadowed) == without_ids(direct) == without_ids(failing)
    assert shadowed.headers["X-Mlops-Release"] == stable.release
    logged = [e for e in _entries(root) if "shadow" in e]
    assert {e["prediction"] for e in logged} == {"no"}  # what the stable release answered
    scored, failed = logged[:30], logged[30:]
    assert {e["shadow"]["prediction"] for e in scored} == {"yes"}  # the candidate, beside it
    assert all(e["shadow"]["release"] == candidate.release for e in logged)
    assert all("error" in e["shadow"] and "prediction" not in e["shadow"] for e in failed)
    assert all(e["release"] == stable.release and e["rollout"]["arm"] == "stable" for e in logged)


def _failing(predict: Any) -> Any:
    def fails(frame: Any) -> Any:
        if (frame["region"] == "north").any():
            raise ValueError("candidate breaks on region=north")
        return predict(frame)

    return fails


def test_the_watcher_follows_each_step_without_reloading(tmp_path: Path) -> None:
    root = project(tmp_path)
    stable, candidate = _pair(root)
    data = _rollout(root, stable, candidate)
    with running(root) as srv, srv.client() as client:
        wait_for(lambda: srv.service.slot.rollout is not None)
        loaded = srv.service.slot.rollout.candidate
        record = _check(data, "deploy/local.json", "local")
        write_json(root / "deploy/local.json", rollout_stepped(record, "hand", None))
        wait_for(lambda: srv.service.slot.rollout.weight == 0.6)
        assert srv.service.slot.rollout.candidate is loaded  # a step reloads nothing
        assert client.get("/health").json()["in_sync"]
        write_json(root / "deploy/local.json", data["rollout"]["candidate"])  # promoted
        wait_for(lambda: srv.service.slot.rollout is None)
        assert srv.service.slot.current is loaded  # the candidate, now the release
        version = client.get("/version").json()
        assert version["release"] == candidate.release and "rollout" not in version
        body = client.post("/predict", json=good_record()).json()
        assert body["release"] == candidate.release and "release" not in body["predictions"][0]


def test_a_candidate_that_does_not_load_leaves_the_stable_serving(tmp_path: Path) -> None:
    root = project(tmp_path)
    stable, candidate = _pair(root)
    _rollout(root, stable, candidate)
    (candidate.path / "model.skops").write_bytes(b"not a model")
    with running(root) as srv, srv.client() as client:
        wait_for(lambda: srv.service.slot.current is not None)
        health = client.get("/health").json()
        assert health["status"] == "degraded" and not health["in_sync"]
        assert "rollout candidate" in health["error"] and "serves every request" in health["error"]
        body = client.post("/predict", json=[good_record(customer_id=i) for i in range(50)])
        assert {p["prediction"] for p in body.json()["predictions"]} == {"no"}


# ------------------------------------------------------------------------ kill -9, restart
def _serve(root: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "mlops"), "serve", "--target", "local", "--port", str(port)],
        cwd=root,
        env=env() | {"MLOPS_SERVICE_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _up(url: str) -> Any:
    try:
        return http_get(f"{url}/version", timeout=1).json().get("rollout")
    except (httpx.TransportError, ValueError):
        return None


@pytest.mark.slow
def test_kill_9_mid_rollout_resumes_the_same_step_from_the_record(tmp_path: Path) -> None:
    import shutil

    from tests.deploy.serving import ROOT

    root = project(tmp_path)
    shutil.copytree(ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    shutil.copy2(ROOT / "params.yaml", root / "params.yaml")
    stable, candidate = _pair(root)
    data = _rollout(root, stable, candidate)
    record = _check(data, "deploy/local.json", "local")
    write_json(root / "deploy/local.json", rollout_stepped(record, "hand", None))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ids: list[str] = []
    proc = _serve(root, port)
    try:
        assert wait_for(lambda: _up(url), timeout=60)["step"] == 1
        with httpx.Client(base_url=url, timeout=10, verify=tls()) as client:
            for i in range(0, 200, 20):
                body = client.post(
                    "/predict", json=[good_record(customer_id=c) for c in range(i, i + 20)]
                ).json()
                ids += [p["request_id"] for p in body["predictions"]]
        wait_for(lambda: len(_entries(root)) == len(ids))  # written (not a graceful drain)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc = _serve(root, port)
        resumed = wait_for(lambda: _up(url), timeout=60)
        assert (resumed["step"], resumed["weight"], resumed["candidate"]) == (
            1,
            0.6,
            candidate.release,
        )
        with httpx.Client(base_url=url, timeout=10, verify=tls()) as client:
            # what was logged before the kill is still known: feedback for it is accepted
            accepted = client.post(
                "/feedback", json={"request_id": ids[0], "label": "no"}, headers=AUTH
            )
            assert accepted.status_code == 200
            again = client.post(
                "/predict", json=[good_record(customer_id=c) for c in range(20)]
            ).json()
            ids += [p["request_id"] for p in again["predictions"]]
        wait_for(lambda: len(_entries(root)) == len(ids))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    entries = _entries(root)
    logged = [e["request_id"] for e in entries]
    assert sorted(logged) == sorted(ids) and len(set(logged)) == len(ids)  # none lost or doubled
    assert {e["rollout"]["step"] for e in entries} == {1}
    # the same callers reach the same models after the restart (entries hold the inputs only,
    # so compare the releases each side served the first 20 callers with)
    before = sorted(e["release"] for e in entries if e["request_id"] in ids[:20])
    after = sorted(e["release"] for e in entries if e["request_id"] in ids[-20:])
    assert before == after


def test_a_batch_mixing_shadowed_and_plain_jobs_holds_back_only_the_shadowed(
    tmp_path: Path,
) -> None:
    """During a swap one batch can hold jobs with and without a shadow: each shadow prediction
    must land beside its own record (a shared buffer once shifted them onto other requests)."""
    from pipeline.deploy.service.microbatch import Job, RequestScores, new_request_ids

    root = project(tmp_path)
    stable, candidate = _pair(root)
    _rollout(root, stable, candidate, "shadow")
    stamp = "2026-01-01T00:00:00.000000Z"
    with running(root) as srv:
        wait_for(lambda: srv.service.slot.rollout is not None)
        service = srv.service
        served, routing = service.slot.state
        checked = served.bundle.signature.check([good_record(), good_record()])

        def job(shadow: Any) -> Job:
            made = Job(served, checked.rows, checked.flags, False, None, shadow=shadow)
            made.tag = routing.tag("stable")
            made.result = RequestScores(
                served.release, served.bundle_id, stamp, new_request_ids(2), ["no", "no"]
            )
            return made

        plain, shadowed = job(None), job(routing.candidate)
        service._on_scored(served, [plain, shadowed], stamp)
        assert shadowed.entries is not None
        assert [e["request_id"] for e in shadowed.entries] == shadowed.result.request_ids
        service._after_resolve([plain, shadowed])
        wait_for(lambda: len(_entries(root)) == 4)
    logged = {e["request_id"]: e for e in _entries(root)}
    assert all("shadow" not in logged[r] for r in plain.result.request_ids)
    assert all(logged[r]["shadow"]["prediction"] == "yes" for r in shadowed.result.request_ids)
