"""The helper scripts the workflows call (.github/scripts/), each in a small repository with a
bare origin, a local DVC remote and the recording fake `gh` (tests/fake_gh.py): fast enough for
the default suite. tests/test_ci_loop.py runs them inside whole workflows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.actions import FAKE_GH
from tests.conftest import BIN, ROOT, build_once, copy_built

SCRIPTS = ROOT / ".github/scripts"
SECRET = "s3cr3t-VALUE-never-printed"


def run(
    script: str, cwd: Path, *args: str, env: dict[str, str] | None = None, path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": f"{path}{os.pathsep}" * bool(path) + f"{BIN}{os.pathsep}/usr/bin:/bin",
        "HOME": str(cwd.parent),
        "DVC_NO_ANALYTICS": "1",
        "GITHUB_OUTPUT": str(cwd.parent / "github_output"),
        "GITHUB_STEP_SUMMARY": str(cwd.parent / "summary.md"),
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
        **(env or {}),
    }
    return subprocess.run(
        [str(SCRIPTS / script), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "dev",
            "GIT_AUTHOR_EMAIL": "d@e",
            "GIT_COMMITTER_NAME": "dev",
            "GIT_COMMITTER_EMAIL": "d@e",
        },
    )
    return proc.stdout


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dvc"), *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def _init_repo(root: Path) -> None:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    assert dvc(root, "init", "-q").returncode == 0
    (root / ".venv").symlink_to(Path(sys.prefix))
    (root / ".git/info/exclude").write_text("/.venv\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")


@pytest.fixture(scope="session")
def initialised_repo(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """`git init` + `dvc init`, once per session (DVC's start-up is most of a test here)."""
    return build_once("ci-scripts-repo", _init_repo, tmp_path_factory, worker_id)


@pytest.fixture
def repo(initialised_repo: Path, tmp_path: Path) -> Path:
    """A git + DVC repository with the project's venv linked as `.venv` (the scripts call
    `.venv/bin/dvc`, as after `make install`): a copy of `initialised_repo`."""
    root = copy_built(initialised_repo, tmp_path / "repo")
    (tmp_path / "github_output").write_text("")
    return root


def outputs(repo: Path) -> str:
    return (repo.parent / "github_output").read_text()


# ------------------------------------------------------------------- dvc_remote.sh
def test_the_documented_remote_config_configures_a_remote_dvc_can_read(repo: Path) -> None:
    """Finding 2: the README's `[remote "storage"]` format used to be appended after DVC's own
    section: "Duplicate section name", while the script said "configured"."""
    config = f'[remote "storage"]\n    # credentials\n    jobs = 4\n\n    password = {SECRET}\n'
    proc = run(
        "dvc_remote.sh",
        repo,
        env={"DVC_REMOTE_URL": "ssh://example.com/data", "DVC_REMOTE_CONFIG": config},
        path=_fake_make(repo),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "remote=yes" in outputs(repo)
    listed = dvc(repo, "remote", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^storage\s+ssh://example.com/data", listed.stdout, flags=re.M)
    local = repo / ".dvc/config.local"
    assert "jobs = 4" in local.read_text() and SECRET in local.read_text()
    assert local.stat().st_mode & 0o077 == 0, "credentials readable by the owner only"
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (f'[remote "other"]\npassword = {SECRET}\n', 'line 1: the section [remote "other"]'),
        (f"jobs = 4\n{SECRET}\n", "line 2 is not 'option = value'"),
        (f"[core]\nremote = {SECRET}\n", "line 1: a section header other than"),
        (f"access_key_id = {SECRET}\n", "line 1: DVC refuses the option 'access_key_id'"),
    ],
    ids=["another-remote", "not-an-option", "another-section", "option-of-another-type"],
)
def test_a_malformed_remote_config_fails_loudly(repo: Path, config: str, message: str) -> None:
    proc = run(
        "dvc_remote.sh",
        repo,
        env={"DVC_REMOTE_URL": str(repo.parent / "remote"), "DVC_REMOTE_CONFIG": config},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("::error::DVC remote 'storage': DVC_REMOTE_CONFIG " + message)
    assert SECRET not in proc.stdout + proc.stderr, "never print the secret"
    assert "remote=yes" not in outputs(repo)


def _fake_make(repo: Path) -> Path:
    bin_dir = repo.parent / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    make = bin_dir / "make"
    make.write_text(f'#!/bin/sh\necho "$@" >> {repo.parent / "make.log"}\n')
    make.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("url", "plugin"),
    [
        ("s3://bucket/dvc", "s3"),
        ("gs://bucket/dvc", "gs"),
        ("azure://container/dvc", "azure"),
        ("ssh://host.example.com/srv/dvc", "ssh"),
        ("https://dvc.example.com/store", None),
        ("/srv/dvc-store", None),
    ],
)
def test_the_remote_types_plugin_is_installed(repo: Path, url: str, plugin: str | None) -> None:
    """Finding 3: only local and http remotes could work (no dvc-s3/gs/azure/ssh installed)."""
    proc = run("dvc_remote.sh", repo, env={"DVC_REMOTE_URL": url}, path=_fake_make(repo))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = repo.parent / "make.log"
    calls = log.read_text().splitlines() if log.exists() else []
    assert calls == ([f"--no-print-directory install-remote-{plugin}"] if plugin else [])


def test_a_remote_type_without_a_plugin_is_refused(repo: Path) -> None:
    proc = run("dvc_remote.sh", repo, env={"DVC_REMOTE_URL": "webdav://host/dvc"})
    assert proc.returncode == 1
    assert "::error::DVC remote 'storage': the URL's type 'webdav://' has no plugin" in proc.stdout


@pytest.mark.parametrize("plugin", ["s3", "gs", "azure", "ssh"])
def test_every_documented_remote_type_is_installable(plugin: str) -> None:
    """Each plugin has a lock of its own, resolved against run.lock: installing it never moves
    a pin that training depends on (run.lock is a dependency of every training stage)."""
    lock = ROOT / f"requirements/remote-{plugin}.lock"
    assert lock.is_file(), f"{lock.name}: `make lock` writes it"

    def pins(path: Path) -> dict[str, str]:
        text = path.read_text()
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, flags=re.M))

    run_pins, own = pins(ROOT / "requirements/run.lock"), pins(lock)
    assert f"dvc-{plugin}" in own
    moved = {k: (v, own[k]) for k, v in run_pins.items() if k in own and own[k] != v}
    assert moved == {}, f"{lock.name} moves pins of run.lock: {moved}"
    assert "--constraint=requirements/run.lock" in lock.read_text()
    dry = subprocess.run(
        ["make", "-n", "-W", "requirements/run.lock", f"install-remote-{plugin}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"pip install --quiet -r requirements/remote-{plugin}.lock" in dry.stdout


# ----------------------------------------------------------------------- open_pr.sh
@pytest.fixture
def hosted(repo: Path) -> tuple[Path, Path, dict[str, str]]:
    """`repo` with a bare origin behind github.com's URL, and a fake `gh` on PATH."""
    base = repo.parent
    origin = base / "origin.git"
    git(base, "init", "-q", "--bare", "-b", "main", str(origin))
    git(repo, "push", "-q", str(origin), "main")
    (base / ".gitconfig").write_text(
        f'[url "{origin}"]\n\tinsteadOf = https://x-access-token:tok@github.com/acme/model.git\n'
    )
    tools = base / "tools"
    tools.mkdir()
    (tools / "gh").write_text(
        f'#!/bin/sh\nexec {sys.executable} {FAKE_GH} {base / "gh.json"} "$@"\n'
    )
    (tools / "gh").chmod(0o755)
    env = {"GH_TOKEN": "tok", "GH_REPO": "acme/model", "PATH": f"{tools}:{BIN}:/usr/bin:/bin"}
    return origin, base / "gh.json", env


def test_a_rerun_updates_the_open_pull_request_instead_of_opening_another(
    repo: Path, hosted: tuple[Path, Path, dict[str, str]]
) -> None:
    """Finding 5: a second retrain or monitor run while its pull request was open opened an
    identical second one; re-running the same run id failed at `git push`."""
    origin, state, env = hosted
    body = repo.parent / "body.md"
    (repo / "params.yaml").write_text("a: 1\n")
    body.write_text("run 1")
    first = run("open_pr.sh", repo, "bot/retrain", "Retrain", str(body), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    # the next run starts from main again, finds more to change
    git(repo, "checkout", "-q", "main")
    (repo / "params.yaml").write_text("a: 2\n")
    body.write_text("run 2")
    second = run("open_pr.sh", repo, "bot/retrain", "Retrain", str(body), env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "updated pull request #1" in second.stdout
    # a re-run of the same job, from a fresh checkout of main
    again = repo.parent / "again"
    git(repo.parent, "clone", "-q", str(origin), str(again))
    (again / ".venv").symlink_to(Path(sys.prefix))
    (again / "params.yaml").write_text("a: 2\n")
    third = run("open_pr.sh", again, "bot/retrain", "Retrain", str(body), env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    gh = json.loads(state.read_text())
    assert [(p["number"], p["headRefName"], p["body"]) for p in gh["prs"]] == [
        (1, "bot/retrain", "run 2")
    ]
    assert git(repo, "show", "refs/heads/bot/retrain:params.yaml").strip() == "a: 2"
    pushed = git(origin, "show", "bot/retrain:params.yaml")
    assert pushed.strip() == "a: 2", "the branch on GitHub holds the newest run"


def test_nothing_changed_opens_nothing(repo: Path, hosted: tuple[Path, Path, dict[str, str]]):
    _, state, env = hosted
    proc = run("open_pr.sh", repo, "bot/retrain", "Retrain", "/dev/null", env=env)
    assert proc.returncode == 0 and "nothing changed: no pull request" in proc.stdout
    assert not state.exists() or json.loads(state.read_text())["prs"] == []


def test_a_step_declared_to_commit_is_pushed_to_the_default_branch_without_a_pull_request(
    repo: Path, hosted: tuple[Path, Path, dict[str, str]]
) -> None:
    """rollout.yml for a target with `propose: commit`: the pipeline's paths are committed and
    pushed onto main (never forced), and no pull request is opened; nothing changed, nothing
    pushed."""
    origin, state, env = hosted
    (repo / "deploy").mkdir(exist_ok=True)
    (repo / "deploy/local.json").write_text('{"step": 1}\n')
    (repo / "notes.txt").write_text("not the pipeline's\n")
    pushed = run("open_pr.sh", repo, "--commit-to", "main", "Rollout: local: advance", env=env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "committed to main: Rollout: local: advance" in pushed.stdout
    assert git(origin, "show", "main:deploy/local.json").strip() == '{"step": 1}'
    assert git(origin, "log", "-1", "--format=%s", "main").strip() == "Rollout: local: advance"
    assert "notes.txt" not in git(origin, "ls-tree", "-r", "--name-only", "main")
    assert not state.exists() or json.loads(state.read_text())["prs"] == []
    again = run("open_pr.sh", repo, "--commit-to", "main", "Rollout: again", env=env)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    # main moved meanwhile (a person merged something): the push is refused, never forced
    other = repo.parent / "other"
    git(repo.parent, "clone", "-q", str(origin), str(other))
    (other / "MOVED.md").write_text("moved\n")
    git(other, "add", "MOVED.md")
    git(other, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "moved")
    git(other, "push", "-q", "origin", "main")
    (repo / "deploy/local.json").write_text('{"step": 2}\n')
    refused = run("open_pr.sh", repo, "--commit-to", "main", "Rollout: local: promote", env=env)
    assert refused.returncode != 0
    assert git(origin, "show", "main:MOVED.md").strip() == "moved"
    assert git(origin, "show", "main:deploy/local.json").strip() == '{"step": 1}'


# --------------------------------------------------------------------- open_issue.sh
def test_a_closed_alert_issue_is_not_raised_again(
    repo: Path, hosted: tuple[Path, Path, dict[str, str]]
) -> None:
    """Finding 6: a person closed the alert's issue; the next scheduled run re-created it."""
    _, state, env = hosted
    body = repo.parent / "alert.md"
    body.write_text("drift")
    title = "Monitoring alert (0123456789abcdef)"
    assert run("open_issue.sh", repo, title, str(body), env=env).returncode == 0
    gh = json.loads(state.read_text())
    gh["issues"][0]["state"] = "CLOSED"
    state.write_text(json.dumps(gh))
    again = run("open_issue.sh", repo, title, str(body), env=env)
    assert again.returncode == 0, again.stderr
    assert "already reports this" in again.stdout
    assert len(json.loads(state.read_text())["issues"]) == 1
    other = run("open_issue.sh", repo, "Monitoring alert (fedcba9876543210)", str(body), env=env)
    assert other.returncode == 0 and len(json.loads(state.read_text())["issues"]) == 2


# ---------------------------------------------------------------- upsert_pr_comment.sh
def test_the_comment_upsert_only_takes_the_bots_own_comment(
    repo: Path, hosted: tuple[Path, Path, dict[str, str]]
) -> None:
    """Finding (issue 10): the first comment holding the marker was edited, whoever wrote it."""
    _, state, env = hosted
    marker = "<!-- gitops-mlops:pr-report -->"
    someone = {"id": 7, "issue": 3, "body": f"{marker}\nmine", "user": {"login": "mallory"}}
    state.write_text(
        json.dumps({"calls": [], "prs": [], "issues": [], "comments": [someone], "next": 1})
    )
    body = repo.parent / "impact.md"
    body.write_text(f"{marker}\nrun 1")
    first = run("upsert_pr_comment.sh", repo, "3", str(body), env=env)
    assert first.returncode == 0 and "created a comment" in first.stdout, first.stderr
    body.write_text(f"{marker}\nrun 2")
    second = run("upsert_pr_comment.sh", repo, "3", str(body), env=env)
    assert second.returncode == 0 and "updated comment" in second.stdout, second.stderr
    comments = json.loads(state.read_text())["comments"]
    assert comments[0] == someone  # untouched
    assert [(c["user"]["login"], c["body"]) for c in comments[1:]] == [
        ("github-actions[bot]", f"{marker}\nrun 2")
    ]
    # a bot with another login (a GitHub App) names it
    app = {**env, "PR_COMMENT_LOGIN": "acme-mlops[bot]", "FAKE_GH_LOGIN": "acme-mlops[bot]"}
    third = run("upsert_pr_comment.sh", repo, "3", str(body), env=app)
    assert third.returncode == 0 and "created a comment" in third.stdout, third.stderr


# ------------------------------------------------------------------ publish_bundles.sh
def _bundle(repo: Path, name: str, content: str) -> None:
    folder = repo / "bundles" / name
    folder.mkdir(parents=True)
    (folder / "model.skops").write_text(content)
    assert dvc(repo, "add", "-q", f"bundles/{name}").returncode == 0


@pytest.mark.slow  # pushes every release to a serving remote
def test_every_released_bundle_is_published_or_the_step_fails(repo: Path) -> None:
    """Finding 8: `dvc push` of what the runner had cached left older releases (the rollback
    targets) off the serving remote, with a warning and exit 0."""
    remote, serving = repo.parent / "remote", repo.parent / "serving"
    assert dvc(repo, "remote", "add", "-d", "storage", str(remote)).returncode == 0
    assert dvc(repo, "remote", "add", "serving", str(serving)).returncode == 0
    _bundle(repo, "aaaa", "old release")
    _bundle(repo, "bbbb", "new release")
    assert dvc(repo, "push", "-q").returncode == 0
    shutil.rmtree(repo / ".dvc/cache")  # a runner whose cache holds neither
    shutil.rmtree(repo / "bundles/aaaa")
    proc = run("publish_bundles.sh", repo, "serving")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "published 2 released bundle(s) to the 'serving' remote" in proc.stdout
    status = dvc(repo, "status", "--cloud", "--remote", "serving")
    assert "in sync" in status.stdout, status.stdout
    # a bundle the storage remote lost: named, and the step fails
    _bundle(repo, "cccc", "never pushed")
    shutil.rmtree(repo / ".dvc/cache")
    shutil.rmtree(repo / "bundles/cccc")
    failed = run("publish_bundles.sh", repo, "serving")
    assert failed.returncode == 1
    assert "::error::cannot fetch every released bundle" in failed.stdout
    assert "bundles/cccc" in failed.stdout


# ------------------------------------------------------------------------ run_step.sh
def test_a_failed_step_is_annotated_and_summarised(repo: Path) -> None:
    """Finding 11: retrain, monitor and deploy wrote empty summaries and no annotations."""
    script = "echo working; echo 'ERROR: failed to reproduce stage train' >&2; exit 3"
    proc = run("run_step.sh", repo, "dvc repro", "bash", "-c", script)
    assert proc.returncode == 3
    assert "::error::dvc repro failed (exit 3): ERROR: failed to reproduce stage train" in (
        proc.stdout
    )
    summary = (repo.parent / "summary.md").read_text()
    assert "**dvc repro failed** (exit 3): `ERROR: failed to reproduce stage train`" in summary
    ok = run("run_step.sh", repo, "true", "true")
    assert ok.returncode == 0 and "::error::" not in ok.stdout


# ---------------------------------------------- the harness itself, and fast workflow runs
def test_expressions_follow_github_rules() -> None:
    from tests.actions import ExpressionError, condition, evaluate

    context = {
        "steps": {"remote": {"outputs": {"remote": "yes"}, "outcome": "success"}},
        "env": {"SAME_REPO": "true"},
        "secrets": {"A": ""},
        "github": {"token": "t", "event_name": "pull_request"},
    }
    assert evaluate("${{ steps.remote.outputs.remote == 'YES' }}", context) is True
    assert evaluate("${{ secrets.A || github.token }}", context) == "t"
    assert evaluate("${{ steps.remote.outputs.remote == 'yes' && '--pull' || '' }}", context) == (
        "--pull"
    )
    assert evaluate("${{ steps.nothing.outputs.remote != 'yes' }}", context) is True
    assert evaluate("key-${{ github.event_name }}", context) == "key-pull_request"
    assert condition("env.SAME_REPO == 'true'", context, failed=False)
    assert not condition("env.SAME_REPO == 'true'", context, failed=True)  # success() implied
    assert condition("${{ !cancelled() && env.SAME_REPO == 'true' }}", context, failed=True)
    assert condition("failure()", context, failed=True)
    with pytest.raises(ExpressionError, match="unknown context 'secret'"):
        evaluate("${{ secret.A }}", context)
    with pytest.raises(ExpressionError, match="not simulated"):
        evaluate("${{ nosuch(1) }}", context)


@pytest.fixture
def hosted_project(tmp_path: Path) -> Any:
    """A `GitHub` whose main holds only the workflows, their scripts and a DVC setup: enough
    for the steps before any `dvc repro`."""
    from tests.actions import GitHub

    dev = tmp_path / "dev"
    dev.mkdir()
    git(dev, "init", "-q", "-b", "main")
    shutil.copytree(ROOT / ".github", dev / ".github")
    shutil.copy2(ROOT / "Makefile", dev / "Makefile")
    assert dvc(dev, "init", "-q").returncode == 0
    git(dev, "add", "-A")
    git(dev, "commit", "-qm", "workflows")
    github = GitHub(tmp_path / "github")
    git(dev, "push", "-q", str(github.origin), "main")
    return github


def test_a_malformed_remote_config_stops_the_run_at_once(hosted_project: Any) -> None:
    """Finding 2, as a workflow: the step fails, annotated; nothing after it runs."""
    from tests.actions import Event

    github = hosted_project
    github.secrets["DVC_REMOTE_URL"] = str(github.remote)
    github.secrets["DVC_REMOTE_CONFIG"] = f'[remote "other"]\npassword = {SECRET}\n'
    run = github.run("retrain.yml", Event("push", run_id=3)).expect("failure")
    assert run.step("remote").outcome == "failure"
    (error,) = run.errors()
    assert "DVC_REMOTE_CONFIG line 1" in error and SECRET not in run.log
    assert all(s.outcome == "skipped" for s in run.steps[run.steps.index(run.step("remote")) + 1 :])
    assert github.gh["calls"] == []


@pytest.mark.parametrize("workflow", ["retrain.yml", "monitor.yml", "deploy.yml"])
def test_a_bot_without_its_remote_fails_loudly(hosted_project: Any, workflow: str) -> None:
    """Finding 11: monitor had no guard for a missing remote (windows committed without
    their data); every bot now fails with an annotation."""
    from tests.actions import Event

    run = hosted_project.run(workflow, Event("schedule" if "monitor" in workflow else "push"))
    run.expect("failure")
    (error,) = run.errors()
    assert error.startswith("no DVC remote: set the DVC_REMOTE_URL secret")
    assert hosted_project.gh["calls"] == []
