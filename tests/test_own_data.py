"""README "Your own data", step by step, on a messy file: `dvc add`, `mlops schema infer`,
`mlops select`, commit, then what `make run` runs. Nothing is left for git but the reviewable
files, and `mlops compose --check` keeps passing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import copy_project, dvc, mlops, sh, use_fast_settings
from tests.test_schema_infer import autos, write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a whole graph: ~2 minutes


def test_the_documented_steps_then_make_run(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "p")
    use_fast_settings(project)
    mlops("compose", cwd=project)
    write_csv(autos(), project / "data/external/autos.csv")
    dvc("add", "data/external/autos.csv", cwd=project)
    inferred = mlops("schema", "infer", "data/external/autos.csv", cwd=project).stdout
    (project / "conf/dataset/autos.yaml").write_text(inferred)
    selected = mlops("select", "dataset=autos", cwd=project).stdout
    assert "conf/config.yaml: dataset: breast_cancer -> autos" in selected
    sh(["git", "add", "-A"], project)
    staged = set(sh(["git", "diff", "--cached", "--name-only"], project).stdout.split())
    assert staged == {
        "conf/config.yaml",
        "conf/dataset/autos.yaml",
        "params.yaml",
        "data/external/autos.csv.dvc",
        "data/external/.gitignore",
    }
    sh(["git", "commit", "-qm", "autos"], project)

    # make run
    mlops("compose", "--check", cwd=project)
    dvc("repro", cwd=project)
    mlops("release", cwd=project)
    dvc("repro", cwd=project)
    summary = mlops("summary", cwd=project).stdout
    assert "task regression" in summary
    assert json.loads((project / "deploy/local.json").read_text())["release"]
    mlops("compose", "--check", cwd=project)
    status = sh(["git", "status", "--porcelain", "--untracked-files=all"], project).stdout
    changed = {line[3:] for line in status.splitlines()}
    assert all(
        p == "dvc.lock" or p.startswith(("reports/", "deploy/", "bundles/")) for p in changed
    ), changed
