"""`dvc exp run --temp`, the README's way to try a change: it never touches the workspace, even
when the experiment fails (a workspace `dvc exp run` leaves params.yaml as the experiment
composed it, which DVC does by design)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import digests, dvc, sh

pytestmark = pytest.mark.integration

EVERYTHING = (
    "conf/**/*",
    "params.yaml",
    "dvc.lock",
    "data/**/*",
    "models/**/*",
    "reports/**/*",
    "deploy/*",
)


@pytest.mark.long(10)  # seconds on CI: handed out early
def test_a_failed_temp_experiment_leaves_the_workspace_byte_identical(project: Path) -> None:
    before = digests(project, EVERYTHING)
    proc = dvc(
        "exp",
        "run",
        "--temp",
        "-S",
        "++selection.floors.balanced_accuracy=0.9999",
        cwd=project,
        check=False,
    )
    assert proc.returncode != 0
    assert "no candidate meets the floors" in proc.stdout + proc.stderr
    assert digests(project, EVERYTHING) == before
    assert sh(["git", "status", "--porcelain"], project).stdout == ""


def test_a_hostile_dataset_name_in_a_workspace_experiment_deletes_nothing(project: Path) -> None:
    """DVC deletes a stage's outputs before running it, resolving templated paths from the
    experiment's params: with `data/raw/${dataset.name}.parquet` as ingest's out, this name
    deleted a committed production window before any of our checks ran. The out is one fixed
    path now, and every stage's params check refuses the name."""
    window = project / "data/production/w-0001.parquet"
    window.write_bytes(b"a committed production window")
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", "a window"], project)
    proc = dvc("exp", "run", "-S", "dataset.name=../production/w-0001", cwd=project, check=False)
    assert proc.returncode != 0
    assert "dataset.name" in proc.stdout + proc.stderr
    assert window.read_bytes() == b"a committed production window"
