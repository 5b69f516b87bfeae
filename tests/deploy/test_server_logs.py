"""The prediction log (rotation, nothing lost on graceful shutdown, crash leftovers) and
`mlops logs snapshot` (windows, feedback join, idempotence), plus `mlops serve` end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pipeline.deploy.service.predlog import (
    JsonLinesLog,
    RequestIndex,
    iter_entries,
    log_paths,
    rotated_paths,
)
from pipeline.deploy.service.snapshot import snapshot
from pipeline.windows import FLAGS, LABEL, PREDICTION, RELEASE, REQUEST_ID, TIME, list_windows
from tests.conftest import BIN, env
from tests.deploy.serving import (
    AUTH,
    ROOT,
    TOKEN,
    Built,
    free_port,
    good_record,
    http_get,
    make_bundle,
    project,
    release,
    running,
    tls,
    wait_for,
)

FEATURES = sorted(good_record())


def entries(log_dir: Path, stem: str = "predictions") -> list[dict[str, Any]]:
    return [e for path in log_paths(log_dir, stem) for e in iter_entries(path)]


def test_rotation_keeps_every_record_in_order(tmp_path: Path) -> None:
    root = project(tmp_path)
    release(root, make_bundle(root))
    with running(root, log__rotate_bytes=4096, log__keep=1000) as srv, srv.client() as client:
        ids = []
        for i in range(60):
            batch = [good_record(monthly_charges=float(i))] * (1 + i % 3)
            ids += [
                p["request_id"] for p in client.post("/predict", json=batch).json()["predictions"]
            ]
    log_dir = root / "logs/local"
    rotated = rotated_paths(log_dir, "predictions")
    assert len(rotated) >= 5
    assert [p.name for p in rotated] == [
        f"predictions.{i:08d}.jsonl" for i in range(1, len(rotated) + 1)
    ]
    assert all(p.stat().st_size >= 4096 for p in rotated)
    logged = entries(log_dir)
    assert [e["request_id"] for e in logged] == ids  # graceful shutdown lost nothing
    times = [e["time"] for e in logged]
    assert times == sorted(times)
    first = logged[0]
    assert set(first) == {
        "request_id",
        "time",
        "release",
        "bundle",
        "inputs",
        "prediction",
        "flags",
    }
    assert first["inputs"]["monthly_charges"] == 0.0 and first["inputs"]["has_partner"] == "false"


def test_rotation_deletes_beyond_keep(tmp_path: Path) -> None:
    root = project(tmp_path)
    release(root, make_bundle(root))
    with running(root, log__rotate_bytes=4096, log__keep=2) as srv, srv.client() as client:
        for _ in range(40):
            client.post("/predict", json=[good_record()] * 3)
        service = srv.service
        wait_for(lambda: service.predlog.backlog == 0)
        rotated = rotated_paths(root / "logs/local", "predictions")
        assert len(rotated) == 2 and rotated[-1].name > "predictions.00000003.jsonl"
        # the request-id index forgets deleted files' ids: memory bounded by `keep`
        assert set(service.index.files) <= {p.name for p in rotated} | {"predictions.jsonl"}


def test_writer_cuts_a_crash_fragment_and_appends_on_its_own_line(tmp_path: Path) -> None:
    current = tmp_path / "predictions.jsonl"
    current.write_text('{"request_id":"a","time":"t1"}\n{"request_id":"b","ti')
    index = RequestIndex()
    assert index.load(tmp_path, "predictions") == 1  # the fragment is not a record
    log = JsonLinesLog(tmp_path, "predictions", rotate_bytes=1 << 20, keep=3, index=index)
    log.start()
    log.append({"request_id": "c", "time": "t2"})
    log.close()
    assert current.read_text() == (
        '{"request_id":"a","time":"t1"}\n{"request_id":"c","time":"t2"}\n'
    )
    assert "c" in index and "a" in index and "b" not in index


def test_reader_ignores_an_incomplete_last_line(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text('{"request_id":"a"}\nnot json\n{"request_id":"b"}\n{"request_id":"c"')
    assert [e["request_id"] for e in iter_entries(path)] == ["a", "b"]


def test_nan_inputs_are_logged_as_null(tmp_path: Path) -> None:
    log = JsonLinesLog(tmp_path, "predictions", rotate_bytes=1 << 20, keep=3)
    log.start()
    log.extend([{"request_id": "a", "inputs": {"x": float("nan"), "y": 1.0}}])
    log.close()
    assert json.loads((tmp_path / "predictions.jsonl").read_text())["inputs"] == {
        "x": None,
        "y": 1.0,
    }


def test_ids_sent_with_a_request_are_logged_and_become_window_columns(tmp_path: Path) -> None:
    root = project(tmp_path)
    release(root, make_bundle(root))
    with running(root) as srv, srv.client() as client:
        for i in range(4):
            record = good_record(customer_id=500 + i) if i % 2 else good_record()
            assert client.post("/predict", json=record).status_code == 200
    text = (root / "logs/local/predictions.jsonl").read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    assert [e.get("passthrough") for e in entries] == [
        None,
        {"customer_id": 501},
        None,
        {"customer_id": 503},
    ]
    assert all("customer_id" not in e["inputs"] for e in entries)
    result = snapshot(root / "logs/local", root / "data/production", rows=4)
    frame = pd.read_parquet(result.written[0].path)
    assert frame["customer_id"].tolist()[1::2] == [501.0, 503.0]
    assert frame["customer_id"].isna().tolist()[::2] == [True, True]


def scored(root: Path, built: Built, n: int, label_every: int = 3) -> dict[str, str]:
    """n single-record predictions, feedback for every `label_every`-th (one corrected)."""
    labels: dict[str, str] = {}
    with running(root) as srv, srv.client() as client:
        for i in range(n):
            record = good_record(monthly_charges=20.0 + i, region="west" if i % 5 == 0 else "north")
            response = client.post("/predict", json=record)
            rid = response.json()["predictions"][0]["request_id"]
            if i % label_every == 0:
                labels[rid] = "yes"
        items = [{"request_id": rid, "label": "no"} for rid in labels]
        assert client.post("/feedback", json=items, headers=AUTH).status_code == 200
        first = next(iter(labels))
        labels[first] = "yes"  # corrected later: the latest label wins
        client.post("/feedback", json={"request_id": first, "label": "yes"}, headers=AUTH)
    return {rid: ("yes" if rid == first else "no") for rid in labels}


def test_snapshot_windows_are_complete_joined_and_idempotent(tmp_path: Path) -> None:
    root = project(tmp_path)
    built = make_bundle(root)
    release(root, built)
    labels = scored(root, built, 25)
    log_dir, out = root / "logs/local", root / "data/production"

    first = snapshot(log_dir, out, rows=10)
    assert len(first.written) == 2 and first.held == 5
    # window ids start with the second of their first record: order them by time
    frames = sorted((w.read() for w in list_windows(out)), key=lambda f: f[TIME].min())
    assert [len(f) for f in frames] == [10, 10]
    frame = pd.concat(frames, ignore_index=True)
    assert list(frame.columns) == [*FEATURES, REQUEST_ID, TIME, RELEASE, PREDICTION, LABEL, FLAGS]
    logged = entries(log_dir)[:20]
    assert list(frame[REQUEST_ID]) == [e["request_id"] for e in logged]
    assert list(frame["monthly_charges"]) == [20.0 + i for i in range(20)]
    assert frame["monthly_charges"].dtype == "float64"
    assert pd.api.types.is_string_dtype(frame["plan"])
    assert str(frame[TIME].dtype) == "datetime64[ns, UTC]"
    assert set(frame[RELEASE]) == {built.release}
    joined = {
        r: lab for r, lab in zip(frame[REQUEST_ID], frame[LABEL], strict=True) if pd.notna(lab)
    }
    assert joined == {r: lab for r, lab in labels.items() if r in set(frame[REQUEST_ID])}
    assert first.labelled == len(joined) and "yes" in joined.values()
    assert set(frame[FLAGS].dropna()) == {"unseen_category:region"}
    assert frame[FLAGS].notna().sum() == 4  # i = 0, 5, 10, 15

    again = snapshot(log_dir, out, rows=10)
    assert again.written == [] and again.held == 5  # nothing new
    assert len(list_windows(out)) == 2

    flushed = snapshot(log_dir, out, rows=10, flush=True)
    assert len(flushed.written) == 1 and flushed.held == 0
    assert snapshot(log_dir, out, rows=10, flush=True).written == []
    assert sum(len(w.read()) for w in list_windows(out)) == 25


def test_snapshot_while_the_service_writes(tmp_path: Path) -> None:
    root = project(tmp_path)
    release(root, make_bundle(root))
    log_dir, out = root / "logs/local", root / "data/production"
    with (
        running(root, log__rotate_bytes=4096) as srv,
        srv.client() as client,
    ):
        for _round in range(3):
            for _ in range(15):
                client.post("/predict", json=[good_record()] * 2)
            # the writer thread flushes a moment after the response: wait for it, or a
            # second snapshot finds the entries the first one had not seen yet
            wait_for(lambda: srv.service.predlog.backlog == 0)
            snapshot(log_dir, out, rows=7)
            assert snapshot(log_dir, out, rows=7).written == []
    snapshot(log_dir, out, rows=7, flush=True)
    ids = [rid for w in list_windows(out) for rid in w.read()[REQUEST_ID]]
    assert len(ids) == len(set(ids)) == 90  # every record once, none twice
    assert sorted(ids) == sorted(e["request_id"] for e in entries(log_dir))


def test_snapshot_rotated_only_and_minutes(tmp_path: Path) -> None:
    log_dir, out = tmp_path / "logs", tmp_path / "windows"
    log_dir.mkdir()

    def line(i: int, minute: int) -> str:
        return json.dumps(
            {
                "request_id": f"{i:032x}",
                "time": f"2025-01-01T10:{minute:02d}:00.000000Z",
                "release": "r0001-0123456789abcdef",
                "inputs": {"x": float(i)},
                "prediction": 1.5 * i,
                "flags": [],
            }
        )

    (log_dir / "predictions.00000001.jsonl").write_text(
        "".join(line(i, i) + "\n" for i in range(0, 12))
    )
    (log_dir / "predictions.jsonl").write_text("".join(line(i, i) + "\n" for i in range(12, 25)))
    rotated = snapshot(log_dir, out, minutes=5, include_current=False)
    # minutes 0-4 and 5-9 are complete (the log reaches minute 12), 10-11 wait
    assert [len(w.read()) for w in rotated.written] == [5, 5]
    assert rotated.held == 2
    window = rotated.written[0].read()
    assert window[PREDICTION].dtype == "float64" and window[LABEL].isna().all()
    rest = snapshot(log_dir, out, minutes=5)
    assert [len(w.read()) for w in rest.written] == [5, 5]  # 10-14, 15-19; 20-24 waits
    assert rest.held == 5
    assert snapshot(log_dir, out, minutes=5, label_wait_minutes=30).written == []


@pytest.fixture
def cli_project(tmp_path: Path) -> Path:
    """A project the `mlops` command accepts: the real conf/ and params.yaml, a release."""
    root = project(tmp_path)
    shutil.copytree(ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("*.yaml.local"))
    for local in (root / "conf/local").glob("*.yaml"):
        local.unlink()
    shutil.copy2(ROOT / "params.yaml", root / "params.yaml")
    release(root, make_bundle(root))
    return root


@pytest.mark.long(15)  # seconds on CI: handed out early
def test_mlops_serve_and_snapshot_end_to_end(cli_project: Path) -> None:
    port = free_port()
    environ = env() | {"MLOPS_SERVICE_TOKEN": TOKEN}
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "mlops"), "serve", "--target", "local", "--port", str(port)],
        cwd=cli_project,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return http_get(f"{url}/health", timeout=1).json()["status"] == "ok"
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return False

        wait_for(up, timeout=60, interval=0.1)
        startup = time.monotonic() - started
        with httpx.Client(base_url=url, timeout=10, verify=tls()) as client:
            ids = [
                client.post("/predict", json=good_record()).json()["predictions"][0]["request_id"]
                for _ in range(3)
            ]
            feedback = client.post(
                "/feedback", json={"request_id": ids[1], "label": "no"}, headers=AUTH
            )
            assert feedback.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    # uvicorn re-raises the signal after a graceful shutdown, so managers see how it ended
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert startup < 30
    assert "serving r0001-" in output
    logged = entries(cli_project / "logs/local")
    assert [e["request_id"] for e in logged] == ids  # SIGTERM drained the log

    result = subprocess.run(
        [str(BIN / "mlops"), "logs", "snapshot", "--window-rows", "2"],
        cwd=cli_project,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("wrote data/production/") == 1
    assert "1 record(s) wait" in result.stdout and "dvc add data/production" in result.stdout
    [window] = list_windows(cli_project / "data/production")
    assert [None if pd.isna(v) else v for v in window.read()[LABEL]] == [None, "no"]
    # the window lands in its month's folder, tracked as one DVC output (pipeline.windows)
    month = window.path.parent.name
    assert window.path == cli_project / "data/production" / month / window.path.name
    assert f"  dvc add data/production/{month}\n" in result.stdout
    assert f"  git add data/production/{month}.dvc data/production/.gitignore\n" in result.stdout

    bad = subprocess.run(
        [str(BIN / "mlops"), "serve", "--target", "batch"],
        cwd=cli_project,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "not a service" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert os.environ.get("MLOPS_SERVICE_TOKEN") != TOKEN  # the secret stayed in the child
