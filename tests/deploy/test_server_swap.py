"""The service follows deploy/<target>.json: hot swaps under load without a failed request,
refuses tampered bundles (keeps serving the old one), follows rollbacks."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from pipeline.io import write_json
from tests.deploy.serving import (
    Built,
    Running,
    constant_bundle,
    good_record,
    make_bundle,
    metric,
    parse_metrics,
    project,
    release,
    running,
    wait_for,
)


def serving(srv: Running, built: Built | None) -> bool:
    with srv.client() as client:
        version = client.get("/version").json()
    return version["release"] == (None if built is None else built.release)


def test_hot_swap_under_concurrent_requests(tmp_path: Path) -> None:
    root = project(tmp_path)
    bundles = {"no": constant_bundle(root, "no", 1), "yes": constant_bundle(root, "yes", 2)}
    answer = {b.release: label for label, b in bundles.items()}
    release(root, bundles["no"])
    outcomes: Counter[tuple[int, str | None]] = Counter()
    wrong: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def hammer() -> None:
        with srv.client() as client:
            while not stop.is_set():
                response = client.post("/predict", json=[good_record(), good_record()])
                body = response.json() if response.status_code == 200 else {}
                rel = body.get("release")
                with lock:
                    outcomes[(response.status_code, rel)] += 1
                    if rel is not None and any(
                        p["prediction"] != answer[rel] for p in body["predictions"]
                    ):
                        wrong.append(response.text)

    with running(root, poll_seconds=0.05) as srv:
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            for label in ["yes", "no"] * 3:
                release(root, bundles[label])
                wait_for(lambda label=label: serving(srv, bundles[label]), timeout=15)
                seen = sum(outcomes.values())
                wait_for(lambda seen=seen: sum(outcomes.values()) > seen + 20, timeout=15)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        with srv.client() as client:
            samples = parse_metrics(client.get("/metrics").text)
    statuses = {status for status, _ in outcomes}
    assert statuses == {200}, outcomes
    assert wrong == []  # every response names the release whose model scored it
    assert {rel for _, rel in outcomes} == set(answer)
    assert sum(outcomes.values()) > 150
    assert metric(samples, "mlops_release_swaps_total") >= 7  # initial load + 6 swaps
    assert metric(samples, "mlops_release_load_failures_total") == 0
    # micro-batching: 8 concurrent clients share model calls
    calls = metric(samples, "mlops_batch_records_count")
    assert metric(samples, "mlops_batch_requests_sum") / calls > 1.0


def test_tampered_bundle_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    root = project(tmp_path)
    good = make_bundle(root)
    tampered = make_bundle(root, sequence=2)
    signature = tampered.path / "signature.json"
    signature.write_text(signature.read_text().replace("One input record", "One input rec0rd"))
    intact = make_bundle(root, sequence=3)
    release(root, good)
    with running(root, poll_seconds=0.05) as srv, srv.client() as client:
        release(root, tampered)
        health = wait_for(lambda: (h := client.get("/health").json())["error"] and h)
        assert health["status"] == "degraded" and not health["in_sync"]
        assert "tampered" in health["error"] and tampered.release in health["error"]
        assert health["release"] == good.release and health["desired_release"] == tampered.release
        assert client.post("/predict", json=good_record()).json()["release"] == good.release

        # a deploy file whose digest does not match an intact bundle is refused too
        record = intact.deploy_record()
        record["bundle"]["sha256"] = intact.id + "0" * 48  # same id, another digest
        write_json(root / "deploy/local.json", record)
        wait_for(lambda: "does not match" in (client.get("/health").json()["error"] or ""))
        assert client.get("/version").json()["release"] == good.release
        samples = parse_metrics(client.get("/metrics").text)
        assert metric(samples, "mlops_release_load_failures_total") == 2
        assert metric(samples, "mlops_release_in_sync") == 0
        assert metric(samples, "mlops_release_info", release=good.release) == 1

        release(root, intact)  # a good release clears the error
        wait_for(lambda: serving(srv, intact))
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["error"] is None and health["in_sync"]


def test_broken_deploy_file_keeps_the_model(tmp_path: Path) -> None:
    root = project(tmp_path)
    good = make_bundle(root)
    release(root, good)
    with running(root, poll_seconds=0.05) as srv, srv.client() as client:
        (root / "deploy/local.json").write_text("{not json")
        wait_for(lambda: "not valid JSON" in (client.get("/health").json()["error"] or ""))
        assert client.post("/predict", json=good_record()).status_code == 200
        elsewhere = good.deploy_record()
        elsewhere["bundle"]["path"] = "models/bundle"  # anywhere but bundles/<id>: refused
        write_json(root / "deploy/local.json", elsewhere | {"release": "r0009-" + good.id})
        wait_for(
            lambda: (
                "bundle.path is 'models/bundle', expected 'bundles/"
                in (client.get("/health").json()["error"] or "")
            )
        )
        missing = good.deploy_record()
        unknown = "f" * 16
        missing["bundle"] = {"id": unknown, "sha256": unknown * 4, "path": f"bundles/{unknown}"}
        write_json(root / "deploy/local.json", missing | {"release": "r0009-" + unknown})
        wait_for(lambda: "does not exist" in (client.get("/health").json()["error"] or ""))
        assert client.get("/version").json()["release"] == good.release


def test_follows_rollback_and_revert_to_no_release(tmp_path: Path) -> None:
    root = project(tmp_path)
    first, second = make_bundle(root), make_bundle(root, sequence=2)
    release(root, first)
    with running(root, poll_seconds=0.05) as srv, srv.client() as client:
        assert serving(srv, first)
        release(root, second)
        wait_for(lambda: serving(srv, second))
        release(root, first)  # rollback / git revert
        wait_for(lambda: serving(srv, first))
        assert client.post("/predict", json=good_record()).json()["release"] == first.release
        release(root, None)  # reverting the first release: nothing declared, nothing served
        wait_for(lambda: serving(srv, None))
        assert client.post("/predict", json=good_record()).status_code == 503
        assert client.get("/health").json()["status"] == "no release"
        release(root, second)
        wait_for(lambda: serving(srv, second))
