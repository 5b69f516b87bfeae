"""The deploy graph run for real: `dvc repro` (package, deploy@<target>), `mlops release`,
`mlops rollback`, `git revert`, in temporary git repositories."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pipeline.bundle_format import PREDICTIONS, verify, write_manifest
from tests.conftest import dvc, mlops, sh
from tests.deploy.conftest import (
    STUMP,
    TARGETS,
    commit,
    fabricate_release,
    gate,
    ran_ours,
    record,
    report,
    run_stage,
    tree_digests,
)

pytestmark = pytest.mark.integration


def test_template_proposes_its_champion(template: Path) -> None:
    bundle_digest, meta = verify(template / "models/bundle")
    assert "versions" in meta and "config" in meta and "created" not in json.dumps(meta)
    for target in TARGETS:
        rep = report(template, target)
        assert rep["decision"] == "propose", rep["reasons"]
        assert rep["proposal"]["release"] == f"r0001-{bundle_digest[:16]}"
        assert rep["proposal"]["parent"] is None
        assert rep["gates"]["compare"]["skipped"].startswith("no incumbent")
        assert rep["gates"]["smoke"]["passed"] and rep["gates"]["smoke"]["rows"] == 50
        assert rep["gates"]["smoke"]["environment"]["OMP_NUM_THREADS"] == "1"


def test_package_is_content_addressed_and_byte_reproducible(project: Path) -> None:
    bundle = project / "models/bundle"
    assert (bundle / "model.skops").read_bytes() == (
        project / "models/champion/model.skops"
    ).read_bytes()
    before = tree_digests(project, "models/bundle")
    shutil.rmtree(bundle)  # as DVC does before running the stage
    run_stage(project, "pipeline.deploy.package")
    assert tree_digests(project, "models/bundle") == before
    digest, meta = verify(bundle)
    assert meta["config"]["keys"] == ["task", "dataset", "split", "preprocessing"]
    # the monitoring reference travels in the bundle, digested with the rest: format 2
    assert meta["format"] == 2
    assert {"reference/reference.json", "reference/values.npy"} <= set(meta["files"])
    reference = json.loads((bundle / "reference/reference.json").read_text())
    assert reference["rows"] == meta["data"]["train_rows"] and reference["mode"] == "exact"
    assert report(project, "local")["proposal"]["bundle"]["sha256"] == digest


@pytest.mark.long(25)  # seconds on CI: handed out early
def test_release_then_repro_reruns_only_deploy_and_git_revert_undoes_it(project: Path) -> None:
    before = tree_digests(project, "deploy")
    proposal = report(project, "local")["proposal"]
    bundle_id = proposal["bundle"]["id"]
    assert mlops("gate", "--check", cwd=project).returncode == 0
    out = mlops("release", cwd=project).stdout
    assert f"local: released {proposal['release']}" in out
    for target in TARGETS:
        rec = record(project, target)
        assert rec["release"] == proposal["release"] and rec["parent"] is None
        assert rec["bundle"] == {
            "id": bundle_id,
            "sha256": proposal["bundle"]["sha256"],
            "path": f"bundles/{bundle_id}",
        }
        assert rec["gates"]["smoke"]["passed"]
    assert (project / f"bundles/{bundle_id}.dvc").is_file()
    assert f"/{bundle_id}" in (project / "bundles/.gitignore").read_text()
    verify(project / "bundles" / bundle_id, proposal["bundle"]["sha256"])
    commit(project, "release")
    release_commit = sh(["git", "rev-parse", "HEAD"], project).stdout.strip()

    assert ran_ours(dvc("repro", cwd=project).stdout) == ["deploy@batch", "deploy@local"]
    for target in TARGETS:
        assert report(project, target)["decision"] == "already_released"
    assert dvc("status", cwd=project).stdout.strip() == "Data and pipelines are up to date."
    commit(project, "repro after release")

    sh(["git", "revert", "--no-edit", release_commit], project)
    assert tree_digests(project, "deploy") == before
    assert ran_ours(dvc("repro", cwd=project).stdout) == ["deploy@batch", "deploy@local"]
    assert report(project, "local")["decision"] == "propose"
    assert report(project, "local")["proposal"]["release"] == proposal["release"]


@pytest.mark.slow  # three repros; test_trained_history_* cover it with real training (slow too),
# the default suite keeps release (above), a refused rollback (test_release.py) and the compare gate
def test_better_challenger_is_released_then_rolled_back(project: Path) -> None:
    weak = fabricate_release(project, "local")
    ran_now = ran_ours(dvc("repro", cwd=project).stdout)
    assert "deploy@local" in ran_now and "package" not in ran_now
    rep = report(project, "local")
    assert rep["decision"] == "propose", rep["reasons"]
    champion = rep["proposal"]["bundle"]["id"]
    assert rep["proposal"]["release"] == f"r0002-{champion}"
    assert rep["proposal"]["parent"] == weak
    compare = rep["gates"]["compare"]
    assert compare["incumbent_release"] == weak and compare["passed"]
    assert compare["metric"] == "roc_auc" and compare["resamples"] == 2000
    assert -0.01 <= compare["low"] < compare["estimate"] < compare["high"]
    assert compare["estimate"] == pytest.approx(compare["champion"] - compare["incumbent"])
    mlops("release", "--target", "local", cwd=project)
    released = record(project, "local")
    assert released["release"] == f"r0002-{champion}" and released["parent"] == weak
    assert released["gates"]["compare"]["low"] == compare["low"]
    commit(project, "release r0002")

    # rollback: pin the parent, reject the current release, recompose
    out = mlops("rollback", "--target", "local", cwd=project).stdout
    assert f"pinned to {weak}; rejected r0002-{champion}" in out
    mlops("compose", "--check", cwd=project)
    params = (project / "params.yaml").read_text()
    assert f"pin: {weak}" in params and f"- r0002-{champion}" in params
    assert "deploy@local" in ran_ours(dvc("repro", cwd=project).stdout)
    rep = report(project, "local")
    assert rep["decision"] == "propose", rep["reasons"]
    assert rep["proposal"]["source"] == "pin" and rep["proposal"]["pinned"] == weak
    assert rep["gates"]["compare"]["skipped"].startswith("pinned release")
    assert rep["gates"]["smoke"]["passed"]  # never skipped
    assert rep["gates"]["floors"]["metrics_on"] == "current test split (rescored)"
    mlops("release", "--target", "local", cwd=project)
    rolled = record(project, "local")
    assert rolled["release"] == f"r0003-{weak[6:]}"
    assert rolled["parent"] == f"r0002-{champion}" and rolled["pinned"] == weak
    assert ran_ours(dvc("repro", cwd=project).stdout) == ["deploy@local"]
    assert report(project, "local")["decision"] == "already_released"

    # a failed rollback changes nothing: the rejected release cannot be pinned back
    conf = tree_digests(project, "conf")
    params_bytes = (project / "params.yaml").read_bytes()
    bad = mlops(
        "rollback", "--target", "local", "--to", f"r0002-{champion}", cwd=project, check=False
    )
    assert bad.returncode == 2 and "names a rejected bundle" in bad.stderr
    assert tree_digests(project, "conf") == conf
    assert (project / "params.yaml").read_bytes() == params_bytes


@pytest.mark.slow  # a retrain; test_gate_rules.py holds the compare rule by default
def test_worse_challenger_is_blocked_and_changes_nothing(project: Path) -> None:
    mlops("release", cwd=project)
    commit(project, "release the champion")
    before = tree_digests(project, "deploy", "bundles")
    mlops("compose", *STUMP, cwd=project)
    log = ran_ours(dvc("repro", cwd=project).stdout)
    assert {"train", "evaluate", "package", "deploy@local", "deploy@batch"} == set(log)
    for target in TARGETS:
        rep = report(project, target)
        assert rep["decision"] == "blocked" and rep["proposal"] is None
        compare = rep["gates"]["compare"]
        assert not compare["passed"] and compare["low"] < compare["high"] < 0
        (reason,) = rep["reasons"]
        assert reason.startswith("compare: roc_auc improvement over the incumbent -0.")
        assert "95% interval [-0." in reason
        # the default margin is 1% of the incumbent's score: about 0.0099 for a ROC AUC of 0.99
        assert re.search(
            r"must be at least -0\.009\d+: margin 0\.009\d+ \(1% of the incumbent 0\.99\d+\)",
            reason,
        ), reason
        assert compare["margin"]["declared"] == {"relative": 0.01}
        assert compare["margin"]["resolved"] == pytest.approx(0.01 * compare["incumbent"])
        assert rep["gates"]["smoke"]["passed"]  # every gate runs, so the report is complete
    check = mlops("gate", "--check", cwd=project, check=False)
    assert check.returncode == 1
    assert "local: blocked" in check.stdout and "  - compare: roc_auc" in check.stdout
    out = mlops("release", cwd=project).stdout
    assert "local: blocked, nothing released" in out
    assert tree_digests(project, "deploy", "bundles") == before


@pytest.mark.slow
def test_trained_history_better_challenger_released(history: Path) -> None:
    """Through the graph with real training: a stump released first, the champion over it."""
    stump = record(history, "local")["parent"]
    assert stump is not None and stump.startswith("r0001-")
    for target in TARGETS:
        proposal = json.loads((history / f"proposal-{target}.json").read_text())
        assert proposal["decision"] == "propose"
        compare = proposal["gates"]["compare"]
        assert compare["incumbent_release"] == stump and compare["passed"]
        assert compare["mode"] == "non_inferiority" and compare["resampling"] == "stratified"
        assert 0 < compare["low"] < compare["estimate"] < compare["high"]
        rec = record(history, target)
        assert rec["release"].startswith("r0002-") and rec["parent"] == stump
        assert rec["release"] == proposal["proposal"]["release"]
    for release in (stump, record(history, "local")["release"]):
        assert (history / f"bundles/{release[6:]}.dvc").is_file()


@pytest.mark.slow
def test_trained_history_rollback_round_trip(history_copy: Path) -> None:
    project = history_copy
    dvc("repro", cwd=project)  # the steady state after a release: nothing left to propose
    assert {report(project, t)["decision"] for t in TARGETS} == {"already_released"}
    current = record(project, "local")
    stump = current["parent"]
    out = mlops("rollback", "--target", "local", cwd=project).stdout
    assert f"pinned to {stump}" in out
    pins = (project / "conf/deploy/pins/generated.yaml").read_text()
    assert pins.startswith("# @package _global_\n# GENERATED")
    assert f"pin: {stump}" in pins and f"- {current['release']}" in pins
    mlops("compose", "--check", cwd=project)  # params.yaml was recomposed
    assert ran_ours(dvc("repro", cwd=project).stdout) == ["deploy@local"]
    rep = report(project, "local")
    assert rep["decision"] == "propose", rep["reasons"]
    assert rep["proposal"]["source"] == "pin" and rep["proposal"]["pinned"] == stump
    assert rep["gates"]["compare"]["skipped"].startswith("pinned release")
    assert rep["gates"]["smoke"]["passed"]
    assert rep["gates"]["floors"]["metrics_on"] == "current test split (rescored)"

    batch_before = tree_digests(project, "deploy")["deploy/batch.json"]
    mlops("release", "--target", "local", cwd=project)
    rec = record(project, "local")
    assert rec["release"] == f"r0003-{stump[6:]}"
    assert rec["parent"] == current["release"] and rec["pinned"] == stump
    assert tree_digests(project, "deploy")["deploy/batch.json"] == batch_before
    assert ran_ours(dvc("repro", cwd=project).stdout) == ["deploy@local"]
    assert report(project, "local")["decision"] == "already_released"

    # a failed rollback changes nothing: the rejected release cannot be pinned
    conf = tree_digests(project, "conf")
    params = (project / "params.yaml").read_bytes()
    bad = mlops(
        "rollback", "--target", "local", "--to", current["release"], cwd=project, check=False
    )
    assert bad.returncode == 2 and "names a rejected bundle" in bad.stderr
    assert (
        tree_digests(project, "conf") == conf and (project / "params.yaml").read_bytes() == params
    )

    # unpinned, the rejected list stays: the champion (r0002's bundle) would be blocked
    mlops("unpin", "--target", "local", cwd=project)
    mlops("compose", "--check", cwd=project)
    pins = (project / "conf/deploy/pins/generated.yaml").read_text()
    assert "pin: null" in pins and f"- {current['release']}" in pins


def test_rejected_bundle_is_blocked(project: Path) -> None:
    champion = report(project, "local")["proposal"]["bundle"]["id"]
    mlops("compose", f"deploy.targets.local.rejected=[r0007-{champion}]", cwd=project)
    rep = gate(project)
    assert rep["decision"] == "blocked" and rep["proposal"] is None
    assert rep["reasons"] == [
        f"rejected: bundle {champion} was rejected as release r0007-{champion} "
        "(deploy.targets.*.rejected)"
    ]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param("predictions bytes", marks=pytest.mark.slow),  # as "model bytes"
        "model bytes",
        "consistent but wrong",
        pytest.param("newer scikit-learn", marks=pytest.mark.slow),
    ],
)
def test_smoke_failure_means_no_proposal(project: Path, tamper: str) -> None:
    bundle = project / "models/bundle"
    for name in ("model.skops", PREDICTIONS, "bundle.json"):
        (bundle / name).chmod(0o644)  # DVC links outputs read-only from its cache
    if tamper == "predictions bytes":
        (bundle / PREDICTIONS).write_bytes((bundle / PREDICTIONS).read_bytes() + b"\0")
    elif tamper == "model bytes":
        data = bytearray((bundle / "model.skops").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (bundle / "model.skops").write_bytes(bytes(data))
    else:  # the manifest rewritten so that every digest checks out
        meta = json.loads((bundle / "bundle.json").read_text())
        meta.pop("files")
        meta.pop("format")
        if tamper == "newer scikit-learn":
            meta["versions"]["scikit-learn"] = "99.0"
        else:  # labels flipped
            import pandas as pd

            frame = pd.read_parquet(bundle / PREDICTIONS)
            flip = {"benign": "malignant", "malignant": "benign"}
            frame.loc[frame.index[::7], "prediction"] = frame["prediction"][::7].map(flip)
            frame.to_parquet(bundle / PREDICTIONS, index=False)
        write_manifest(bundle, meta)
    rep = gate(project)
    assert rep["decision"] == "blocked" and rep["proposal"] is None
    text = " ".join(rep["reasons"])
    if tamper == "consistent but wrong":
        assert rep["gates"]["smoke"]["passed"] is False
        assert "smoke: " in text and "label(s) differ from the offline predictions" in text
    elif tamper == "newer scikit-learn":
        assert "smoke: bundle was written by scikit-learn 99.0, newer than the installed" in text
    else:
        assert "sha256 mismatch" in text


@pytest.mark.slow  # one setting passed through
def test_serving_threads_reach_the_smoke_test_and_only_their_gate(project: Path) -> None:
    mlops(
        "compose",
        "deploy.targets.local.serve.threads=3",
        "deploy.targets.local.serve.port=8123",  # a setting no gate reads
        cwd=project,
    )
    status = json.loads(dvc("status", "--json", cwd=project).stdout)
    assert status == {
        "deploy@local": [
            {"changed deps": {"params.yaml": {"deploy.targets.local.gates": "modified"}}}
        ]
    }
    rep = gate(project)
    assert rep["decision"] == "propose"
    assert rep["gates"]["smoke"]["threads"] == 3
    assert rep["gates"]["smoke"]["environment"]["OPENBLAS_NUM_THREADS"] == "3"


def test_incumbent_missing_from_the_workspace_blocks(project: Path) -> None:
    """A release whose bundle was never fetched (`dvc pull`) cannot be compared: blocked, with
    the command that fixes it (the stage depends on bundles/, so fetching re-runs it)."""
    missing = "0123456789abcdef"
    (project / "deploy/local.json").write_text(
        json.dumps(
            {
                "target": "local",
                "release": f"r0001-{missing}",
                "parent": None,
                "bundle": {"id": missing, "sha256": missing * 4, "path": f"bundles/{missing}"},
            }
        )
    )
    rep = gate(project)
    assert rep["decision"] == "blocked" and rep["current"]["release"] == f"r0001-{missing}"
    assert f"dvc pull bundles/{missing}.dvc" in " ".join(rep["reasons"])


def test_incumbent_of_another_task_starts_a_new_line_even_unfetched(project: Path) -> None:
    """The release record says the incumbent is a regressor: not comparable, whether or not its
    bundle was fetched, so no `dvc pull` hint; only the absolute gates and the smoke test."""
    missing = "0123456789abcdef"
    (project / "deploy/local.json").write_text(
        json.dumps(
            {
                "target": "local",
                "release": f"r0001-{missing}",
                "parent": None,
                "bundle": {"id": missing, "sha256": missing * 4, "path": f"bundles/{missing}"},
                "model": {"name": "ridge", "task": "regression", "classes": None},
            }
        )
    )
    rep = gate(project)
    assert rep["decision"] == "propose", rep["reasons"]
    compare = rep["gates"]["compare"]
    assert compare["comparable"] is False and compare["incumbent_release"] == f"r0001-{missing}"
    assert compare["differences"] == ["task: classification, was regression"]
    assert compare["skipped"].startswith(f"not comparable with r0001-{missing}: task: ")
    assert rep["proposal"]["new_line"] == {
        "replaces": f"r0001-{missing}",
        "differences": ["task: classification, was regression"],
    }
    assert rep["gates"]["smoke"]["passed"] and rep["gates"]["floors"]["checks"]
    assert "dvc pull" not in json.dumps(rep)
