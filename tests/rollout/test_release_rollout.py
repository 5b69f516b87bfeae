"""A rollout in a real project: `mlops release` on a canary target starts it against the
stable release (same proposal, bundle copy, `dvc add` and journal as a release), the gate then
knows the candidate, and `mlops rollout` steps it by hand, promotes or aborts it: each a change
of deploy/local.json; an abort rejects the candidate through the pins file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import dvc, mlops
from tests.deploy.conftest import fabricate_release, record, report, tree_digests


def _canary(project: Path) -> None:
    conf = project / "conf/deploy/local.yaml"
    text = conf.read_text()
    assert "  kind: direct " in text
    conf.write_text(text.replace("  kind: direct ", "  kind: canary ", 1))
    mlops("compose", cwd=project)


@pytest.mark.integration
@pytest.mark.slow
def test_release_starts_a_canary_that_rollout_steps_promotes_or_aborts(project: Path) -> None:
    stable = fabricate_release(project)
    _canary(project)
    dvc("repro", cwd=project)
    proposal = report(project, "local")["proposal"]
    assert proposal["parent"] == stable
    out = mlops("release", "--target", "local", cwd=project).stdout
    assert f"local: canary rollout started against {stable}" in out
    started = record(project, "local")
    assert started["release"] == stable
    assert started["rollout"]["candidate"]["release"] == proposal["release"]
    assert (started["rollout"]["step"], started["rollout"]["weight"]) == (0, 0.1)
    assert (project / f"bundles/{proposal['bundle']['id']}.dvc").is_file()

    # the gate knows the running candidate: nothing new to propose, and release is a no-op
    dvc("repro", cwd=project)
    gate = report(project, "local")
    assert gate["decision"] == "already_released"
    assert "candidate of the running canary rollout" in gate["reasons"][0]
    assert "already released" in mlops("release", "--target", "local", cwd=project).stdout

    # by hand: advance needs the analysis (no log yet: refused, nothing changes), or --force
    before = tree_digests(project, "deploy", "conf", "reports")
    refused = mlops("rollout", "advance", "--target", "local", cwd=project, check=False)
    assert refused.returncode == 2 and "no prediction log to analyse" in refused.stderr
    assert tree_digests(project, "deploy", "conf", "reports") == before
    out = mlops("rollout", "advance", "--target", "local", "--force", cwd=project).stdout
    assert "advanced the rollout of" in out and "step 2 (weight 0.5)" in out
    at_last = record(project, "local")
    assert at_last["rollout"]["decisions"][-1]["by"] == "hand"
    refused = mlops("rollout", "advance", "--target", "local", "--force", cwd=project, check=False)
    assert refused.returncode == 2 and "at its last step" in refused.stderr

    # abort: the stable serves everything, the candidate is rejected for good
    out = mlops("rollout", "abort", "--target", "local", "--reason", "looks bad", cwd=project)
    assert "aborted the rollout" in out.stdout
    aborted = record(project, "local")
    assert aborted["release"] == stable and aborted["rollout"]["status"] == "aborted"
    assert aborted["rollout"]["reason"] == "looks bad"
    assert proposal["release"] in (project / "conf/deploy/pins/generated.yaml").read_text()
    mlops("compose", "--check", cwd=project)
    refused = mlops("rollout", "abort", "--target", "local", cwd=project, check=False)
    assert refused.returncode == 2 and "was aborted" in refused.stderr

    # promote (from the step before the abort): the candidate's own record, as a direct release
    (project / "deploy/local.json").write_text(json.dumps(at_last))
    out = mlops("rollout", "promote", "--target", "local", "--force", cwd=project).stdout
    assert f"promoted {proposal['release']} (replaces {stable})" in out
    assert record(project, "local") == at_last["rollout"]["candidate"]
