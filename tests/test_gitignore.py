"""Every DVC-cached stage output is git-ignored before any stage runs.

DVC writes a stage output's .gitignore entry only when `dvc repro` succeeds, so a failed run
used to leave data and models for `git add -A` to commit. The root .gitignore names them up
front; these tests hold it to dvc.yaml (for every dataset and task the conf/ tree offers) and
check a real failed run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import copy_project, dvc, mlops, sh, use_fast_settings


def _ignored(project: Path, path: str) -> bool:
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=project, check=False
    )
    assert proc.returncode in (0, 1), f"git check-ignore failed for {path}"
    return proc.returncode == 0


def _outputs(project: Path) -> list[tuple[str, bool]]:
    """(path, cached) of every stage output, with dvc.yaml's templates resolved from params."""
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return sorted(
            (str(Path(out.fs_path).relative_to(project)), bool(out.use_cache))
            for stage in repo.index.stages
            for out in stage.outs
        )


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("gitignore") / "p")


@pytest.mark.parametrize("overrides", [[], ["dataset=diabetes"], ["dataset=churn_example"]])
def test_every_cached_output_is_ignored_and_every_report_tracked(
    fresh: Path, overrides: list[str]
) -> None:
    """Each dataset names its own raw file and each task its own candidates."""
    from pipeline import config

    config.write(fresh, overrides)
    outputs = _outputs(fresh)
    project = fresh
    assert any(cached for _, cached in outputs) and any(not cached for _, cached in outputs)
    # an output path and, for directory outputs, the files DVC writes inside it
    exposed = [
        p
        for p, cached in outputs
        if cached and not (_ignored(project, p) and _ignored(project, f"{p}/inner.bin"))
    ]
    hidden = [p for p, cached in outputs if not cached and _ignored(project, p)]
    assert exposed == [], "cached stage outputs missing from the root .gitignore"
    assert hidden == [], "cache: false outputs (reports) must stay tracked"


@pytest.mark.slow  # a failing repro; the rule is checked by default above
@pytest.mark.integration
def test_a_failed_repro_exposes_no_data_or_model_to_git(tmp_path: Path) -> None:
    """The graph fails late (evaluate: no candidate meets an impossible floor) after ingest,
    prepare, reference and every train stage wrote their outputs: `git add -A` stages none of
    them."""
    project = copy_project(tmp_path / "p")
    use_fast_settings(project)
    floor = "selection.floors.balanced_accuracy=0.9999"
    mlops("compose", "dataset=churn_example", floor, cwd=project)
    failed = dvc("repro", cwd=project, check=False)
    assert failed.returncode != 0
    assert "failed to reproduce 'evaluate'" in failed.stderr, failed.stderr
    assert list((project / "models/candidates").glob("*/model.skops")), "train did not run"
    sh(["git", "add", "-A"], project)
    staged = sh(["git", "diff", "--cached", "--name-only"], project).stdout.split()
    exposed = [p for p in staged if p not in ("params.yaml", "dvc.lock")]
    assert all(p.startswith("reports/") for p in exposed), staged
    assert "reports/validate.json" in staged  # the check above can see what git stages


@pytest.mark.integration
def test_a_successful_repro_writes_no_gitignore_of_its_own(template: Path) -> None:
    """The reproduced template was committed with `git add -A` after `dvc repro` ran every
    stage: DVC found its outputs ignored already, so it wrote no per-directory .gitignore, and
    no output went into git."""
    tracked = sh(["git", "ls-files", "data", "models"], template).stdout.split()
    assert [p for p in tracked if not p.startswith("data/external/")] == [
        "data/feedback/.gitkeep",
        "data/production/.gitkeep",
    ]
    assert (template / "models/champion").is_dir()  # the template did run the graph


def test_no_path_the_bots_commit_is_ignored_as_a_whole() -> None:
    """open_pr.sh passes its paths to `git add`, which refuses an ignored pathspec outright and
    adds nothing: models/ (all DVC outputs) in that list failed every bot pull request."""
    from tests.conftest import ROOT

    script = (ROOT / ".github/scripts/open_pr.sh").read_text(encoding="utf-8")
    loop = next(line for line in script.splitlines() if line.startswith("for path in "))
    paths = loop.removeprefix("for path in ").removesuffix("; do").split()
    assert "dvc.lock" in paths and "reports" in paths  # the line parsed as expected
    assert [p for p in paths if _ignored(ROOT, p)] == []
