"""The undo journal of the commands outside the graph (`pipeline.journal`): a change to several
paths is whole or undone, on an exception and after a kill -9 (its retry rolls it back)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import journal
from pipeline.errors import MlopsError
from pipeline.journal import JOURNAL_DIR, pending, recover, transaction
from tests.conftest import ROOT, env


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/a.json").write_text("old a\n")
    (tmp_path / "deploy/b.json").write_text("old b\n")
    return tmp_path


def change_everything(root: Path, txn: journal.Journal) -> None:
    """Change two files, create one, and create a directory (a bundle), all journaled."""
    for name in ("a", "b"):
        txn.file(f"deploy/{name}.json").write_text(f"new {name}\n")
    txn.file("deploy/c.json").write_text("new c\n")
    txn.file("bundles/x").mkdir(parents=True)
    (root / "bundles/x/model").write_text("model")


def state(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".mlops" not in p.parts
    }


def test_a_committed_transaction_keeps_its_changes_and_drops_the_journal(root: Path) -> None:
    with transaction(root, "mlops test") as txn:
        change_everything(root, txn)
        assert pending(root) is not None  # on disk while it runs
    assert state(root)["deploy/a.json"] == "new a\n"
    assert (root / "bundles/x/model").exists()
    assert pending(root) is None and not (root / JOURNAL_DIR).exists()


def test_a_failure_restores_every_path(root: Path) -> None:
    before = state(root)
    (root / "deploy/.a.json.abc12345.tmp").write_text("a killed writer's temporary")
    with pytest.raises(RuntimeError, match="boom"), transaction(root, "mlops test") as txn:
        change_everything(root, txn)
        raise RuntimeError("boom")
    assert state(root) == before
    assert not (root / "bundles/x").exists() and not (root / JOURNAL_DIR).exists()


def test_a_joined_transaction_is_part_of_the_outer_one(root: Path) -> None:
    before = state(root)
    with pytest.raises(RuntimeError), transaction(root, "outer") as outer:
        outer.file("deploy/a.json").write_text("changed\n")
        with transaction(root, "inner") as inner:
            assert inner is outer
            inner.file("deploy/b.json").write_text("changed\n")
        raise RuntimeError("after the inner one finished")
    assert state(root) == before


KILLED = """
import os, signal, sys
from pathlib import Path
from pipeline.journal import transaction

root = Path(sys.argv[1])
with transaction(root, "mlops test") as txn:
    txn.file("deploy/a.json").write_text("new a\\n")
    txn.file("bundles/x").mkdir(parents=True)
    (root / "bundles/.y.abcd1234.tmp").mkdir()  # a copy in progress, beside its target
    txn.file("bundles/y")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_transaction_is_reported_then_rolled_back_by_the_next(root: Path) -> None:
    before = state(root)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, str(root)],
        env=dict(env(), PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = pending(root)
    assert left is not None and left.command == "mlops test"
    assert left.paths == ["deploy/a.json", "bundles/x", "bundles/y"]
    assert left.changed == ["deploy/a.json", "bundles/x"]  # bundles/y: not yet
    assert "an interrupted `mlops test` left its changes half-done" in left.describe()
    with transaction(root, "mlops retry") as txn:  # rolls the killed one back first
        assert state(root) == before and not (root / "bundles/x").exists()
        assert not list((root / "bundles").iterdir())  # the partial copy is swept too
        txn.file("deploy/b.json").write_text("retried\n")
    assert state(root) == {**before, "deploy/b.json": "retried\n"}
    assert recover(root) is None


def test_a_journal_dropped_half_way_is_finished(root: Path) -> None:
    (root / JOURNAL_DIR).mkdir(parents=True)
    (root / JOURNAL_DIR / "0.bak").write_text("a saved copy whose index is already gone")
    assert pending(root) is None
    assert recover(root) is None and not (root / JOURNAL_DIR).exists()


def test_one_command_at_a_time(root: Path) -> None:
    (root / ".mlops").mkdir()
    with (root / ".mlops/lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("`mlops release` (pid 1)")
        held.flush()
        refused = pytest.raises(MlopsError, match=r"`mlops release` \(pid 1\) is changing")
        with refused, transaction(root, "mlops select"):
            pass
    with transaction(root, "mlops select"):  # released: it runs
        pass


def test_paths_outside_the_root_are_refused(root: Path) -> None:
    with pytest.raises(ValueError, match="not inside"), transaction(root, "t") as txn:
        txn.file("../elsewhere")
    with pytest.raises(ValueError, match="existing directory"), transaction(root, "t") as txn:
        txn.file("deploy")
    assert sorted(os.listdir(root / "deploy")) == ["a.json", "b.json"]


def test_verify_names_the_targets_a_killed_release_left_at_different_releases(
    tmp_path: Path,
) -> None:
    """Issue 10: a release killed between two targets' records left `local` at its new
    release and `batch` at its old one, and `mlops verify` passed."""
    from pipeline.deploy.sync import verify_releases

    (tmp_path / "deploy").mkdir()
    for target in ("local", "batch"):
        (tmp_path / f"deploy/{target}.json").write_text(
            json.dumps({"target": target, "release": None})
        )
    with pytest.raises(KeyboardInterrupt), transaction(tmp_path, "mlops release") as txn:
        for target in ("local", "batch"):
            txn.file(f"deploy/{target}.json")
        (tmp_path / "deploy/local.json").write_text("moved")
        left = pending(tmp_path)
        assert left is not None and left.changed == ["deploy/local.json"]
        (tmp_path / "deploy/local.json").write_text(
            json.dumps({"target": "local", "release": None, "note": "moved"})
        )
        checked = verify_releases(tmp_path, ["local", "batch"], pull=False)
        raise KeyboardInterrupt  # (a kill leaves the journal; here it is rolled back)
    for one in checked:
        assert any("mlops release` left its changes half-done" in p for p in one.problems)
        assert (
            "mixed state: targets released together are at different releases: "
            "local (no release) moved, batch (no release) not yet" in one.problems
        ), one.problems
