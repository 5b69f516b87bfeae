"""A new dataset on top of a release: the change of inputs or task is an explicit, reviewable
event. The gate records that the incumbent is not comparable and why, applies the absolute
gates and the smoke test, the proposal and the PR report say so, and `mlops release` writes
the record (issue 9, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import dvc, mlops, sh
from tests.deploy.conftest import TARGETS, commit, record, report

pytestmark = pytest.mark.integration


def _switch(project: Path, dataset: str) -> None:
    """Select the dataset as the README says (a reviewable edit of conf/config.yaml) and run
    the whole graph: monitoring explains what it cannot judge instead of stopping it."""
    mlops("select", f"dataset={dataset}", cwd=project)
    dvc("repro", cwd=project)


@pytest.mark.slow  # two datasets trained in turn; the default suite starts a new line in
# test_own_data_end_to_end.py (a new dataset) and test_graph.py (an incumbent of another task)
def test_new_dataset_and_new_task_start_new_lines_of_releases(project: Path) -> None:
    demo = report(project, "local")["proposal"]["release"]
    mlops("release", cwd=project)
    commit(project, "release the demo")
    steps = (
        # a classification dataset with other columns, target and classes
        (
            "churn_example",
            "classification",
            [
                "target: churned, was target",
                "classes: [no, yes], was [benign, malignant]",
                "inputs added: has_partner, monthly_charges, plan, region, signup_date and 2 more",
                "inputs removed: area_error, compactness_error, concave_points_error, "
                "concavity_error, fractal_dimension_error and 25 more",
            ],
            "balanced_accuracy",
        ),
        # a regression dataset: another task
        ("diabetes", "regression", ["task: regression, was classification"], "rmse"),
    )
    incumbent = demo
    for dataset, task, expected, floor_metric in steps:
        base = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()
        _switch(project, dataset)
        for target in TARGETS:
            rep = report(project, target)
            assert rep["decision"] == "propose", rep["reasons"]
            compare = rep["gates"]["compare"]
            assert compare["comparable"] is False
            assert compare["incumbent_release"] == incumbent
            assert compare["differences"][: len(expected)] == expected
            assert compare["skipped"].startswith(f"not comparable with {incumbent}: {expected[0]}")
            assert rep["proposal"]["new_line"]["replaces"] == incumbent
            assert rep["proposal"]["parent"] == incumbent
            # the absolute gates still ran: the baseline floor and the smoke test
            checks = rep["gates"]["floors"]["checks"]
            assert [c["metric"] for c in checks if c["source"] == "baseline"] == [floor_metric]
            assert all(c["passed"] for c in checks) and rep["gates"]["smoke"]["passed"]
            assert "dvc pull" not in json.dumps(rep)  # nothing to fetch: another question
        gate = mlops("gate", "--check", cwd=project).stdout
        assert f"  - starts a new line of releases: not comparable with {incumbent} (" in gate
        pr = mlops("report", "--pr", "--base", base, cwd=project).stdout
        assert f"**`local` starts a new line of releases:** the incumbent {incumbent}" in pr
        assert f"- {expected[0]}" in pr
        out = mlops("release", cwd=project).stdout
        proposal = report(project, "local")["proposal"]["release"]
        assert f"local: released {proposal} (bundle {proposal[6:]}, parent {incumbent}; " in out
        assert f"starts a new line of releases: not comparable with {incumbent} (" in out
        for target in TARGETS:
            released = record(project, target)
            assert released["release"] == proposal and released["parent"] == incumbent
            assert released["new_line"]["differences"][: len(expected)] == expected
            assert released["model"]["task"] == task and released["model"]["inputs"]
        commit(project, f"release {dataset}")
        incumbent = proposal
