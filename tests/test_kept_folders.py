"""pipeline/kept.py (what `train` and `monitor` keep between runs) and the `train` stage's key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import kept
from pipeline.develop import train
from tests.conftest import ROOT

A, B = "a" * 64, "b" * 64


def test_a_folder_is_kept_whole_and_found_by_its_key(tmp_path: Path) -> None:
    store = kept.KeptFolders(tmp_path / "kept")
    assert store.get(A, ["x"]) is None and store.used == set()
    folder = store.put(A, {"x": b"1", "y": b"2"})
    assert folder == tmp_path / "kept" / A
    assert (folder / "x").read_bytes() == b"1" and (folder / "y").read_bytes() == b"2"
    again = kept.KeptFolders(tmp_path / "kept")
    assert again.get(A, ["x", "y"]) == folder and again.used == {A}
    assert again.get(A, ["x", "z"]) is None  # a file missing: not whole, not used
    assert again.get(B, ["x"]) is None and again.used == {A}
    with pytest.raises(ValueError, match="a kept folder's key is a sha256 hex digest"):
        again.get("../escape", ["x"])


def test_prune_removes_what_the_run_did_not_use(tmp_path: Path) -> None:
    directory = tmp_path / "kept"
    first = kept.KeptFolders(directory)
    first.put(A, {"x": b"1"})
    first.put(B, {"x": b"2"})
    (directory / "stray.txt").write_text("left by hand")
    (directory / f".{A}.abc123.tmp").mkdir()  # a killed writer's temporary folder
    second = kept.KeptFolders(directory)
    assert second.get(B, ["x"]) is not None
    assert second.prune() == 3
    assert sorted(p.name for p in directory.iterdir()) == [B]


def test_put_replaces_an_entry_and_sweeps_a_killed_writers_temporary(tmp_path: Path) -> None:
    directory = tmp_path / "kept"
    store = kept.KeptFolders(directory)
    store.put(A, {"x": b"old", "extra": b"gone"})
    (directory / f".{A}.killed.tmp").mkdir()
    store.put(A, {"x": b"new"})
    assert sorted(p.name for p in directory.iterdir()) == [A]
    assert sorted(p.name for p in (directory / A).iterdir()) == ["x"]
    assert (directory / A / "x").read_bytes() == b"new"


def test_a_writer_killed_mid_put_leaves_no_entry(tmp_path: Path) -> None:
    """SIGKILL after the files are written, before the rename: no folder under the key (only
    a hidden temporary, which the next `put` or `prune` removes)."""
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from pipeline import kept\n"
        "real = os.fsync\n"
        "def fsync(fd):\n"
        "    real(fd)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.fsync = fsync\n"
        f"kept.KeptFolders(Path(sys.argv[1])).put('{A}', {{'x': b'1'}})\n"
    )
    directory = tmp_path / "kept"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, str(directory)], env=env, check=False)
    assert proc.returncode == -9
    assert kept.KeptFolders(directory).get(A, ["x"]) is None
    (left,) = directory.iterdir()
    assert left.name.startswith(f".{A}.") and left.name.endswith(".tmp")
    assert kept.KeptFolders(directory).prune() == 1 and not any(directory.iterdir())


def test_code_version_follows_the_code_and_the_tag(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("x = 1\n")
    first = kept.code_version("store/1", ["m.py"], tmp_path)
    assert kept.code_version("store/2", ["m.py"], tmp_path) != first
    (tmp_path / "m.py").write_text("x = 2\n")
    assert kept.code_version("store/1", ["m.py"], tmp_path) != first


def train_stage() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]


def test_the_train_key_covers_what_the_stage_declares() -> None:
    """What the train stage's kept fits are keyed by is what dvc.yaml says it depends on: its
    params (every candidate, and the shared settings), and the code it is computed by."""
    stage = train_stage()
    assert stage["params"] == ["candidates", *train.SHARED_PARAMS]
    code = sorted(d.removeprefix("pipeline/") for d in stage["deps"] if d.endswith(".py"))
    assert code == sorted(train.CODE)
    assert {"data/prepared/train.parquet", "requirements/run.lock"} <= set(stage["deps"])
    (persisted,) = [o for o in stage["outs"] if isinstance(o, dict)]
    assert persisted == {"models/kept": {"persist": True}}


def test_a_candidates_key_changes_with_its_own_inputs_only() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    context = {"code": "c", "params": {}, "train_sha256": "t", "lock_sha256": None, "versions": {}}
    keys = {name: train.fit_key(name, params, context) for name in params["candidates"]}
    assert len(set(keys.values())) == len(keys)
    params["candidates"]["random_forest"]["n_estimators"] = 7
    changed = {name: train.fit_key(name, params, context) for name in params["candidates"]}
    assert [n for n in keys if keys[n] != changed[n]] == ["random_forest"]
    for field in ("code", "train_sha256", "lock_sha256"):
        other = {**context, field: "other"}
        assert all(train.fit_key(n, params, other) != changed[n] for n in keys)
    assert train._lookup(params, "selection.metric") == params["selection"]["metric"]
    assert train._lookup(params, "dataset.columns") == params["dataset"]["columns"]
