"""`mlops sweep NAME`: a committed grid (conf/experiment/NAME.yaml, hydra.sweeper.params)
validated point by point, then queued as DVC experiments; run with DVC's queue and compared
with `dvc exp show`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline import sweep
from pipeline.config import compose, load_params
from pipeline.errors import ConfigError
from tests.conftest import BIN, ROOT, digests, dvc, env, mlops, sh

TWO_POINTS = """\
# @package _global_
hydra:
  sweeper:
    params:
      candidates.random_forest.n_estimators: {values}
"""


def _write(project: Path, name: str, text: str) -> None:
    (project / "conf/experiment" / f"{name}.yaml").write_text(text)


def _queued_refs(project: Path) -> str:
    return sh(["git", "for-each-ref", "refs/exps"], project).stdout


def test_the_committed_sweep_expands_as_dvc_expands_it() -> None:
    """What `mlops sweep` validates is exactly what DVC queues: the same points, in order."""
    from dvc.utils.hydra import get_hydra_sweeps

    declared = sweep.read_sweep(ROOT, "forest_grid")
    assert len(declared.points) == 4
    queued = get_hydra_sweeps({"params.yaml": declared.overrides()})
    assert [q["params.yaml"][1:] for q in queued] == declared.points
    assert all(q["params.yaml"][0] == "+experiment=forest_grid" for q in queued)
    # the sweep file composes to what conf/ composes to: the grid is Hydra's, dropped
    assert compose(ROOT, ["+experiment=forest_grid"]).text == compose(ROOT).text


def test_list_validates_and_lists_every_point(fresh_project: Path) -> None:
    out = mlops("sweep", "forest_grid", "--list", cwd=fresh_project).stdout
    assert "sweep forest_grid: 4 point(s), each validated" in out
    assert (
        "forest_grid-4: candidates.random_forest.n_estimators=400 "
        "candidates.random_forest.class_weight=balanced"
    ) in out
    assert "nothing queued (--list)" in out
    assert _queued_refs(fresh_project) == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            TWO_POINTS.format(values="10,-3"),
            "two-2 (candidates.random_forest.n_estimators=-3): candidates.random_forest."
            "n_estimators: override 'candidates.random_forest.n_estimators=-3': The "
            "'n_estimators' parameter of RandomForestClassifier must be an int in the range "
            "[1, inf). Got -3 instead. (got -3)",
        ),
        (
            TWO_POINTS.format(values="[10, 20]"),
            "conf/experiment/two.yaml: hydra.sweeper.params.candidates.random_forest."
            "n_estimators: values are one string in Hydra's sweep syntax",
        ),
        (
            TWO_POINTS.format(values="'glob(*)'"),
            "a glob or interval sweep has no finite grid",
        ),
        (
            TWO_POINTS.format(values="'10,'"),
            "hydra.sweeper.params.candidates.random_forest.n_estimators: not a Hydra override",
        ),
        (
            "# @package _global_\ntrain:\n  cv: 3\n",
            "conf/experiment/two.yaml: hydra.sweeper.params: not set: this experiment file "
            "declares no sweep grid",
        ),
    ],
    ids=["invalid-point", "yaml-list", "glob", "bad-grammar", "no-grid"],
)
def test_a_bad_sweep_is_refused_and_queues_nothing(
    fresh_project: Path, text: str, message: str
) -> None:
    _write(fresh_project, "two", text)
    before = digests(fresh_project)
    proc = mlops("sweep", "two", cwd=fresh_project, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert digests(fresh_project) == before
    assert _queued_refs(fresh_project) == ""


def test_an_unknown_sweep_names_the_sweeps_there_are(fresh_project: Path) -> None:
    proc = mlops("sweep", "nope", cwd=fresh_project, check=False)
    assert proc.returncode == 2
    assert "error: no sweep 'nope': conf/experiment/nope.yaml does not exist" in proc.stderr
    # fast.yaml is an experiment but declares no grid: not listed
    assert "hint: sweeps in conf/experiment/: forest_grid (" in proc.stderr


def test_the_stages_revalidate_a_swept_key(tmp_path: Path) -> None:
    """`dvc exp run -S` composes without the project's checks; a point that bypassed
    `mlops sweep` is still refused by every stage reading it (load_params)."""
    composed = compose(ROOT, ["candidates.random_forest.n_estimators=-3"])
    params = tmp_path / "params.yaml"
    params.write_text(composed.text)
    with pytest.raises(ConfigError, match=r"n_estimators.*must be an int in the range \[1, inf\)"):
        load_params(ROOT, path=params)


def _experiments(shown: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json`: every experiment's name -> its data (params, metrics)."""
    out = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            for rev in experiment["revs"]:
                out[rev["name"]] = rev["data"]
    return out


@pytest.mark.slow  # two experiments through DVC's queue: a minute or more on 2 cores
@pytest.mark.integration
@pytest.mark.timeout(900)
def test_a_two_point_sweep_runs_as_queued_experiments(project: Path) -> None:
    """The template (random_forest.n_estimators=30 from the fast settings), swept over 30 and
    40: `mlops sweep` queues two experiments and changes nothing in the workspace, DVC's queue
    runs them, `dvc exp show` shows both points with their params and metrics."""
    _write(project, "two", TWO_POINTS.format(values="30,40"))
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", "a two-point sweep"], project)
    before = digests(project)

    out = mlops("sweep", "two", cwd=project).stdout
    assert "Queued experiment 'two-1' for future execution." in out
    assert "Queued experiment 'two-2' for future execution." in out
    assert digests(project) == before
    assert sh(["git", "status", "--porcelain"], project).stdout == ""

    run = subprocess.run(
        [str(BIN / "dvc"), "exp", "run", "--run-all", "--jobs", "1"],
        cwd=project,
        env=env(),
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    shown = json.loads(dvc("exp", "show", "--json", cwd=project).stdout)
    experiments = _experiments(shown)
    assert set(experiments) >= {"two-1", "two-2"}, sorted(experiments)
    for name, trees in (("two-1", 30), ("two-2", 40)):
        data = experiments[name]
        params = data["params"]["params.yaml"]["data"]
        assert params["candidates"]["random_forest"]["n_estimators"] == trees
        metrics = data["metrics"]["reports/develop/metrics.json"]["data"]
        assert 0.5 < metrics["test"]["roc_auc"] <= 1, metrics
    assert digests(project) == before

    # the same sweep again on the same commit: DVC refuses the names, nothing is queued
    again = mlops("sweep", "two", cwd=project, check=False)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "error: DVC did not queue sweep 'two':" in again.stderr
    assert "conflicts with existing experiment 'two-1'" in again.stderr
    assert "hint: an experiment of this commit named two-1 exists already?" in again.stderr
    tasks = dvc("queue", "status", cwd=project).stdout
    assert "Queued" not in tasks and tasks.count(" Success") == 2, tasks  # the two that ran
