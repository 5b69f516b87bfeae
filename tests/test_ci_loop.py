"""The CI loop, simulated: the `run:` steps of retrain.yml, in order, on a clone of a reproduced
project with a local DVC remote and a local "GitHub" (a bare repository and a stand-in `gh`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, dvc, env, mlops, sh

pytestmark = pytest.mark.integration


def steps(workflow: str) -> list[dict]:
    doc = yaml.safe_load((ROOT / ".github/workflows" / workflow).read_text())
    (job,) = doc["jobs"].values()
    return [s for s in job["steps"] if "run" in s]


def run_workflow(project: Path, tools: Path, remote: Path) -> str:
    """Every `run:` step with the env a runner would give it; returns what they printed."""
    outputs = project.parent / "github_output"
    outputs.write_text("")
    printed = []
    values = {
        "secrets.DVC_REMOTE_URL": str(remote),
        "secrets.DVC_REMOTE_CONFIG": "",
        "secrets.RETRAIN_TOKEN || github.token": "token",
        "github.repository": "acme/model",
        "github.run_id": "7",
    }
    for step in steps("retrain.yml"):
        if step["run"].strip() == "make install":  # the venv exists: .venv links to it
            continue
        condition = step.get("if", "")
        if "remote == 'yes'" in condition and "remote=yes" not in outputs.read_text():
            continue
        extra = {k: values[v.strip("${} ")] for k, v in step.get("env", {}).items()}
        environ = dict(
            env(), **extra, GITHUB_OUTPUT=str(outputs), PATH=f"{tools}{os.pathsep}{env()['PATH']}"
        )
        proc = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", step["run"]],
            cwd=project,
            env=environ,
            text=True,
            capture_output=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"step {step.get('name')!r}:\n{proc.stdout}\n{proc.stderr}"
        printed.append(proc.stdout + proc.stderr)
    return "\n".join(printed)


def ran(log: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", log, flags=re.M)


@pytest.fixture
def github(project: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(tools dir with a stand-in `gh`, local DVC remote, bare origin) for `project`."""
    tools = tmp_path / "tools"
    tools.mkdir()
    gh = tools / "gh"
    gh.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "gh.log"}\n')
    gh.chmod(0o755)
    (project / ".venv").symlink_to(Path(sys.prefix))
    (project / ".gitignore").write_text((project / ".gitignore").read_text() + "/.venv\n")
    shutil.copytree(ROOT / ".github", project / ".github")
    remote, origin = tmp_path / "dvc-remote", tmp_path / "origin.git"
    sh(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    # open_pr.sh pushes to github.com: send that URL to the local bare repository
    sh(
        [
            "git",
            "config",
            f"url.{origin}.insteadOf",
            "https://x-access-token:token@github.com/acme/model.git",
        ],
        project,
    )
    dvc("remote", "add", "-d", "ci", str(remote), cwd=project)
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", "ci setup"], project)
    dvc("push", "--quiet", cwd=project)
    return tools, remote, origin


def test_retrain_workflow_on_new_data(
    project: Path, github: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    tools, remote, origin = github
    # new labelled data lands on main: a feedback file, tracked by DVC
    pool = pd.read_parquet(project / "data/prepared/pool.parquet")
    new = project / "data/feedback/breast_cancer/new-labels.parquet"
    new.parent.mkdir(parents=True, exist_ok=True)
    pool.head(60).to_parquet(new, index=False)
    dvc("add", "--quiet", "data/feedback/breast_cancer/new-labels.parquet", cwd=project)
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", "new labelled data"], project)
    before = json.loads((project / "deploy/local.json").read_text())["release"]

    log = run_workflow(project, tools, remote)
    stages = ran(log)
    assert "ingest" not in stages and "validate" not in stages  # not data-dependent
    assert {"prepare", "evaluate", "package", "deploy@local"} <= set(stages)
    record = json.loads((project / "deploy/local.json").read_text())
    assert before is None and record["release"].startswith("r0001-")
    assert (tmp_path / "gh.log").read_text().startswith("pr create --head retrain/7")
    branch = sh(["git", "ls-remote", str(origin), "retrain/7"], project).stdout
    assert branch.strip(), "the retrain branch was pushed"
    pushed = dvc("status", "--cloud", cwd=project).stdout
    assert "new:" not in pushed and "deleted:" not in pushed  # everything is in the remote

    # a second run on the result changes nothing
    sh(["git", "checkout", "-q", "retrain/7"], project)
    again = run_workflow(project, tools, remote)
    assert ran(again) == []
    assert "nothing changed: no pull request" in again
    assert json.loads((project / "deploy/local.json").read_text()) == record


def test_config_only_change_reruns_only_monitor_and_maintain(project: Path) -> None:
    conf = project / "conf/maintain/default.yaml"
    conf.write_text(conf.read_text().replace("cooldown_days: 7", "cooldown_days: 2"))
    mlops("compose", cwd=project)
    assert ran(dvc("repro", cwd=project).stdout) == ["maintain"]
    conf = project / "conf/monitor/default.yaml"
    conf.write_text(conf.read_text().replace("  drift_share: 0.5 ", "  drift_share: 0.9 ", 1))
    mlops("compose", cwd=project)
    assert ran(dvc("repro", cwd=project).stdout) == ["monitor", "maintain"]
