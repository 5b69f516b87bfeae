"""`mlops report --pr`: the pull-request comment, on a known before/after pair in a temporary
git repository (base committed on main, head in the working tree)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import cli, pr_report
from tests.conftest import sh

INCUMBENT = "r0001-1111111111111111"
PROPOSED = "r0002-2222222222222222"


def gate(decision: str, **compare: Any) -> dict[str, Any]:
    """A reports/deploy/<target>.json in the gate's format (pipeline/deploy/gate.py)."""
    evidence = {
        "incumbent_release": INCUMBENT,
        "mode": "non_inferiority",
        "margin": 0.01,
        "metric": "roc_auc",
        "champion": 0.991,
        "incumbent": 0.972,
        "estimate": 0.019,
        "low": 0.0041,
        "high": 0.0352,
        "confidence": 0.95,
        "resamples": 2000,
        "used": 2000,
        "skipped": 0,
        "seed": 42,
        "resampling": "stratified",
        "passed": True,
        "rule": "non-inferiority: interval low +0.0041 must be at least -0.01",
        **compare,
    }
    floors = {
        "metrics_on": "test split",
        "checks": [
            {"metric": "balanced_accuracy", "value": 0.9646, "floor": 0.85, "passed": True},
            {"metric": "log_loss", "value": 0.1258, "ceiling": 0.5, "passed": True},
        ],
    }
    doc: dict[str, Any] = {
        "target": "local",
        "decision": decision,
        "current": {"release": INCUMBENT},
        "gates": {"compare": evidence, "floors": floors},
        "proposal": None,
        "reasons": [],
    }
    if decision == "propose":
        doc["proposal"] = {"release": PROPOSED, "parent": INCUMBENT}
    return doc


def monitor(status: str, violations: list[dict[str, str]]) -> dict[str, Any]:
    """A reports/monitor/report.json in the monitor's format (pipeline/monitor/report.py)."""
    newest = {
        "id": "20250106T050000-c81d55fc51bc",
        "source": "production",
        "rows": 100,
        "labelled": 81,
        "status": status,
        "scenario": None,
        "violations": violations,
    }
    by_status = {"ok": 3, "breach": 0, "insufficient_data": 1, "not_judged": 0}
    if status == "breach":
        by_status = {"ok": 3, "breach": 1, "insufficient_data": 0, "not_judged": 0}
    return {
        "format": "gitops-mlops/monitor-report",
        "version": 2,
        "monitored": {
            "target": "local",
            "release": "r0003-2222222222222222",
            "label": "release r0003-2222222222222222 (bundle 2222222222222222, target local)",
            "bundle": {"id": "2222222222222222"},
        },
        "judged": True,
        "skipped": None,
        "summary": {
            "windows": 4,
            "by_status": by_status,
            "newest": newest["id"],
            "newest_status": status,
        },
        "newest": newest,
        "windows": [],
        "simulated": {
            "summary": {
                "windows": 4,
                "by_status": {"ok": 1, "breach": 3, "insufficient_data": 0, "not_judged": 0},
            },
            "newest": None,
            "windows": [],
        },
    }


BASE: dict[str, Any] = {
    "conf/config.yaml": "defaults: []\n",
    "params.yaml": {
        "candidates": {"random_forest": {"n_estimators": 100, "max_depth": 6}},
        "deploy": {"targets": {"local": {"kind": "service"}, "batch": {"kind": "batch"}}},
    },
    "dvc.lock": {
        "schema": "2.0",
        "stages": {
            "train@random_forest": {"cmd": "train", "outs": [{"md5": "a"}]},
            "evaluate": {"cmd": "evaluate", "outs": [{"md5": "b"}]},
            "package": {"cmd": "package", "outs": [{"md5": "c"}]},
        },
    },
    "reports/develop/metrics.json": {"test": {"roc_auc": 0.972, "accuracy": 0.951}},
    "reports/develop/selection.json": {
        "champion": "random_forest",
        "reason": "random_forest has the best roc_auc (0.9720 on cv)",
    },
    "reports/deploy/local.json": gate("already_released", incumbent_release=None),
    "reports/deploy/batch.json": gate("already_released"),
    "reports/monitor/report.json": monitor("ok", []),
    "reports/monitor/metrics.json": {"windows": 4, "breaching_windows": 0, "newest": {}},
}


def write(root: Path, files: dict[str, Any]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        elif name.endswith((".yaml", ".lock")):
            path.write_text(yaml.safe_dump(content, sort_keys=False))
        else:
            path.write_text(json.dumps(content, indent=2))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The base state committed on main; the working tree is the head. No network: a
    connection attempt fails the test."""
    root = tmp_path / "repo"
    root.mkdir()
    write(root, BASE)
    sh(["git", "init", "-q", "-b", "main"], root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "base"], root)
    monkeypatch.chdir(root)

    def offline(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("mlops report must not use the network")

    monkeypatch.setattr(socket.socket, "connect", offline)
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.main(["report", "--pr", *args]) == 0
    return capsys.readouterr().out


def section(text: str, title: str) -> str:
    """The body of one `### title` section."""
    return text.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]


def test_the_impact_of_a_change(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = BASE["params.yaml"] | {
        "candidates": {"random_forest": {"n_estimators": 300, "max_depth": 6}}
    }
    lock = json.loads(json.dumps(BASE["dvc.lock"]))
    lock["stages"]["train@random_forest"]["outs"] = [{"md5": "a2"}]
    lock["stages"]["evaluate"]["outs"] = [{"md5": "b2"}]
    blocked = gate(
        "blocked",
        estimate=-0.021,
        low=-0.0403,
        high=-0.0018,
        passed=False,
        rule="non-inferiority: interval low -0.0403 must be at least -0.01",
    )
    blocked["reasons"] = [
        "compare: roc_auc improvement over the incumbent -0.0210, 95% interval "
        "[-0.0403, -0.0018]; fails non-inferiority",
        "floor: test balanced_accuracy 0.8012 is under the floor 0.85",
    ]
    breach = [
        {
            "check": "performance_floor",
            "subject": "balanced_accuracy",
            "message": "balanced_accuracy 0.6833 on 81 labelled rows is under the floor 0.85",
        },
        {"check": "dataset_drift", "subject": "dataset", "message": "6 of 30 columns drifted"},
    ]
    write(
        repo,
        {
            "params.yaml": params,
            "dvc.lock": lock,
            "reports/develop/metrics.json": {"test": {"roc_auc": 0.991, "accuracy": 0.951}},
            "reports/deploy/local.json": gate("propose"),
            "reports/deploy/batch.json": blocked,
            "reports/monitor/report.json": monitor("breach", breach),
            "reports/monitor/metrics.json": {"windows": 5, "breaching_windows": 1, "newest": {}},
            "reports/maintain/decision.json": {
                "action": "retrain",
                "reason": "the newest window breaks a performance check",
                "policies": [
                    {"policy": "performance", "fired": True, "reason": "balanced_accuracy floor"},
                    {"policy": "drift", "fired": False, "reason": "1 of 3 windows | drifted"},
                ],
            },
        },
    )
    text = run(capsys)
    assert text.startswith(pr_report.MARKER + "\n")
    titles = [line[4:] for line in text.splitlines() if line.startswith("### ")]
    assert titles == [
        "Champion",
        "Params",
        "Stages",
        "Metrics",
        "Deployment gates",
        "Monitoring",
        "Maintenance",
    ]

    assert section(text, "Params").count("\n| `") == 1
    assert "| `candidates.random_forest.n_estimators` | 100 | 300 |" in text
    assert "`evaluate`, `train@random_forest`" in section(text, "Stages")
    assert "`package`" not in section(text, "Stages")
    metrics = section(text, "Metrics")
    assert "| `reports/develop/metrics.json` | `test.roc_auc` | 0.972 | 0.991 | +0.019 |" in metrics
    assert "| `reports/monitor/metrics.json` | `breaching_windows` | 0 | 1 | +1 |" in metrics
    assert "accuracy`" not in metrics.replace("roc_auc", "")  # unchanged metrics are not listed

    gates = section(text, "Deployment gates")
    local, batch = (next(r for r in gates.splitlines() if r.startswith(f"| `{t}`")) for t in
                    ("local", "batch"))  # fmt: skip
    assert "✅ propose (base: already_released)" in local
    assert f"{PROPOSED} (parent {INCUMBENT})" in local
    assert f"roc_auc +0.0190, 95% CI [+0.0041, +0.0352] vs {INCUMBENT}: passed" in local
    assert "✅ balanced_accuracy 0.9646 ≥ 0.85" in local and "✅ log_loss 0.1258 ≤ 0.5" in local
    assert "⛔ **blocked** (base: already_released)" in batch
    assert "roc_auc -0.0210, 95% CI [-0.0403, -0.0018]" in batch and ": FAILED" in batch
    assert "**`batch` is blocked:**\n- compare: roc_auc improvement" in gates
    assert "- floor: test balanced_accuracy 0.8012 is under the floor 0.85" in gates

    mon = section(text, "Monitoring")
    assert "**BREACH** (base: ok): newest production window `20250106T050000-c81d55fc51bc`" in mon
    assert "100 rows, 81 labelled" in mon
    assert (
        "Judged against release r0003-2222222222222222 (bundle 2222222222222222, target local)."
        in mon
    )
    assert "Production windows: 4 — 3 ok, 1 breach, 0 insufficient data, 0 not judged." in mon
    assert "Simulated scenarios (never counted): 4 window(s), 3 breach, 1 ok." in mon
    assert "Violations in the newest window (2):" in mon
    assert "- `performance_floor` (balanced_accuracy): balanced_accuracy 0.6833" in mon

    maint = section(text, "Maintenance")
    assert "**retrain**: the newest window breaks a performance check" in maint
    assert "| `performance` | **yes** | balanced_accuracy floor |" in maint
    assert "| `drift` | no | 1 of 3 windows \\| drifted |" in maint  # a | cannot break the table


def test_no_change(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = run(capsys, "--base", "main")
    assert text.startswith(pr_report.MARKER)
    assert "No params changed." in text
    assert "No stage re-ran: outputs are unchanged." in text
    assert "No metric changed." in text
    assert "➖ already released" in text and "(base:" not in text
    assert "**OK**: newest production window" in text and "Violations" not in text
    assert "### Maintenance" not in text  # no decision.json: no section


def test_skipped_monitoring_says_why_and_simulated_windows_stay_apart(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = monitor("ok", [])
    doc.update(
        judged=False,
        newest=None,
        skipped={
            "reason": "release r0003-2222222222222222 (bundle 2222222222222222, target local) "
            "has another input signature or task than the project declares",
            "differences": ["task: regression, was classification"],
            "hint": "release it",
        },
    )
    write(repo, {"reports/monitor/report.json": doc})
    mon = section(run(capsys), "Monitoring")
    assert "**Monitoring skipped**, no window judged: release r0003-2222222222222222" in mon
    assert "- task: regression, was classification" in mon
    assert "Simulated scenarios (never counted): 4 window(s), 3 breach, 1 ok." in mon
    assert mon.rstrip().endswith("No production windows yet.")


def test_missing_reports_are_said_not_guessed(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("reports/deploy/batch.json", "reports/monitor/report.json"):
        (repo / name).unlink()
    text = run(capsys)
    assert "| `batch` | no report | — | — | — |" in text
    assert "No monitoring report (the `monitor` stage has not run)." in text


def test_base_defaults_to_origin_main_then_main(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """origin/main wins when it exists (CI), else main (a local clone)."""
    from pipeline.cli_report import resolve_base

    assert resolve_base(repo, None) == "main"
    sh(["git", "update-ref", "refs/remotes/origin/main", "HEAD"], repo)
    assert resolve_base(repo, None) == "origin/main"
    assert cli.main(["report", "--pr", "--base", "no-such-branch"]) == 2
    err = capsys.readouterr().err
    assert "no base revision: no-such-branch is not a commit" in err
    assert "hint: fetch the base branch" in err


def test_the_project_may_live_in_a_subdirectory(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """git paths are read relative to the project root, not the repository's."""
    outer = tmp_path / "outer"
    (outer / "ml").mkdir(parents=True)
    write(outer / "ml", BASE)
    sh(["git", "init", "-q", "-b", "main"], outer)
    sh(["git", "add", "-A"], outer)
    sh(["git", "commit", "-q", "-m", "base"], outer)
    monkeypatch.chdir(outer / "ml")
    text = run(capsys)
    assert "No params changed." in text and "No metric changed." in text


def test_a_new_line_of_releases_is_said_plainly(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A change of task or inputs: no comparison, and the comment says why, with the baseline
    floors and a relative margin shown in the metric's units."""
    differences = [
        "task: regression, was classification",
        "inputs added: age, bmi, bp, s1, s2 and 5 more",
    ]
    new_line = gate("propose")
    new_line["gates"]["compare"] = {
        "skipped": f"not comparable with {INCUMBENT}: {'; '.join(differences)}; a new line of "
        "releases: only the absolute gates and the smoke test apply",
        "comparable": False,
        "incumbent_release": INCUMBENT,
        "differences": differences,
    }
    new_line["gates"]["floors"]["checks"] = [
        {
            "metric": "rmse",
            "value": 53.2,
            "ceiling": 70.1525,
            "source": "baseline",
            "baseline": 77.9472,
            "margin": {"declared": {"relative": 0.1}, "reference": 77.9472, "resolved": 7.79},
            "passed": True,
        }
    ]
    new_line["proposal"]["new_line"] = {"replaces": INCUMBENT, "differences": differences}
    relative = gate(
        "propose",
        margin={"declared": {"relative": 0.01}, "reference": 0.972, "resolved": 0.00972},
    )
    write(
        repo,
        {"reports/deploy/local.json": new_line, "reports/deploy/batch.json": relative},
    )
    gates = section(run(capsys), "Deployment gates")
    local = next(r for r in gates.splitlines() if r.startswith("| `local`"))
    assert f"skipped: not comparable with {INCUMBENT}: task: regression, was classification" in (
        local
    )
    assert "✅ rmse 53.2000 ≤ 70.15 (baseline 77.95)" in local
    assert (
        f"**`local` starts a new line of releases:** the incumbent {INCUMBENT} is not "
        "comparable, so there is no comparison with it; only the absolute gates (floors) and "
        "the smoke test applied. Why:\n- task: regression, was classification\n- inputs added"
    ) in gates
    batch = next(r for r in gates.splitlines() if r.startswith("| `batch`"))
    assert "(non_inferiority, margin 0.00972 (relative 0.01))" in batch
    assert "`batch` starts" not in gates


# ------------------------------------------------- issue 15: comments that never mislead
def test_a_failed_check_replaces_the_impact_with_its_cause(
    repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A push that fails `compose --check` used to leave the previous push's comment as if
    current: with --problem the comment says what failed and shows no stale numbers."""
    problem = tmp_path / "problem.txt"
    problem.write_text("error: params.yaml is stale: conf/ composes differently\n--- a\n+++ b\n")
    text = run(capsys, "--base", "main", "--problem", str(problem))
    assert text.startswith(pr_report.MARKER)
    assert "### ⛔ Not reproduced" in text
    assert "**error: params.yaml is stale: conf/ composes differently**" in text
    assert "earlier results no longer apply" in text
    for stale in ("### Params", "### Metrics", "### Deployment gates", "### Monitoring"):
        assert stale not in text
    assert cli.main(["report", "--pr", "--problem", str(tmp_path / "missing.txt")]) == 2
    assert "--problem" in capsys.readouterr().err


def test_a_release_made_by_this_pr_shows_the_interval_that_let_it_through(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a retrain or maintenance pull request the gate ran, the champion was released, and
    the gate re-ran to find it `already_released` (no gates of its own): the row used to say
    "already released" with no interval. The release record keeps the evidence."""
    evidence = gate("propose")["gates"]
    released = {
        "target": "local",
        "release": PROPOSED,
        "parent": INCUMBENT,
        "bundle": {
            "id": "2222222222222222",
            "sha256": "2222222222222222" + "0" * 48,
            "path": "bundles/2222222222222222",
        },
        "gates": evidence,
    }
    write(
        repo,
        {
            "deploy/local.json": released,
            "reports/deploy/local.json": {
                **gate("already_released"),
                "current": {"release": PROPOSED},
                "gates": {},
            },
        },
    )
    text = run(capsys, "--base", "main")
    row = next(line for line in text.splitlines() if line.startswith("| `local` |"))
    assert "➖ already released (released by this PR)" in row
    assert "roc_auc +0.0190, 95% CI [+0.0041, +0.0352] vs r0001-1111111111111111: passed" in row
    assert "✅ balanced_accuracy 0.9646 ≥ 0.85" in row


def test_the_maintenance_section_shows_the_decision_that_caused_the_change(
    repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`mlops maintain --apply` re-runs the stage, whose new decision says the cause was
    suppressed by the cooldown: the pull request must describe the cause."""
    write(
        repo,
        {
            "reports/maintain/decision.json": {
                "action": "none",
                "reason": "retrain suppressed by the cooldown until 2026-05-08",
                "policies": [],
            }
        },
    )
    cause = tmp_path / "decision.json"
    cause.write_text(
        json.dumps(
            {
                "action": "retrain",
                "decision_id": "0123456789abcdef",
                "reason": "dataset drift in the last 3 judged window(s) in a row (policy: 3)",
                "policies": [{"policy": "drift", "fired": True, "reason": "drift x3"}],
            }
        )
    )
    text = run(capsys, "--base", "main", "--decision", str(cause))
    maintenance = section(text, "Maintenance")
    assert "**retrain** (decision `0123456789abcdef`): dataset drift" in maintenance
    assert "cooldown" not in maintenance
    cause.write_text("[]")
    assert cli.main(["report", "--pr", "--decision", str(cause)]) == 2
    assert "not a maintenance decision" in capsys.readouterr().err


def test_a_note_comes_first(repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Not reproduced: deploy@local, monitor.\nThey need bundles/x.\n")
    text = run(capsys, "--base", "main", "--note", str(note))
    head = text.split("### ", 1)[0]
    assert "> ⚠️ Not reproduced: deploy@local, monitor.\n> They need bundles/x." in head
