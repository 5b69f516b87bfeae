"""A GitHub Actions runner for this repository's workflows, on this machine: the harness behind
tests/test_ci_loop.py.

`GitHub` stands in for the hosting side of one repository (acme/model): a bare `origin`, a fork,
local DVC remotes (the storage remote, a serving remote, a prediction-log location), secrets and
variables, and a recording fake `gh` (tests/fake_gh.py) holding pull requests, issues and
comments. `GitHub.run(workflow, event)` runs one workflow's job as a hosted runner would:

* a fresh checkout as actions/checkout makes it (push and schedule: the branch's commit, shallow;
  pull_request: the merge commit of the head into the base, with `fetch-depth: 0` all history;
  a fork's head comes from the fork), `persist-credentials: false`, a cold `.dvc/cache`;
* every step's `if:` and `${{ }}` values evaluated by the expression rules of GitHub Actions
  (`Expression`: contexts, `==` ignoring case, `&&`/`||` returning operands, status functions;
  an unknown function or context is an error, never a silent false);
* each `run:` step in the shell GitHub uses (`bash -e {0}` unless `shell:` or `defaults` say
  otherwise), under a clean environment (PATH, HOME, CI, the GITHUB_* variables,
  GITHUB_OUTPUT / GITHUB_ENV per step and one GITHUB_STEP_SUMMARY), the job's and the step's
  `env:`; a failed step fails the job unless `continue-on-error`, and later steps run only when
  their condition asks for it (`failure()`, `always()`);
* `uses:` steps: checkout as above, setup-python and cache as no-ops (a cold cache),
  upload-artifact copies its path into the run's artifacts.

What is simulated rather than run: `make install` (minutes per job on this machine). The clone's
`.venv` is a symlink to the test interpreter's environment and PYTHONPATH points at the clone,
so its own `pipeline/` is what runs, exactly as an editable install of that checkout would;
nothing else of the job is skipped. git pushes to github.com go to the bare origin through
`url.<origin>.insteadOf` in the runner's HOME.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REPO = "acme/model"
TOKEN = "ghs-job-token"  # the job's GITHUB_TOKEN
READ_ONLY = "read-only"  # a fork pull request's GITHUB_TOKEN (the fake gh refuses writes)
FAKE_GH = Path(__file__).with_name("fake_gh.py")


# ------------------------------------------------------------------------- expressions
class ExpressionError(Exception):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,*])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ExpressionError(f"cannot read {text[pos:]!r} in {text!r}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind or "")
        if kind == "num":
            out.append(("lit", float(value)))
        elif kind == "str":
            out.append(("lit", value[1:-1].replace("''", "'")))
        elif kind == "name" and value in ("true", "false", "null"):
            out.append(("lit", {"true": True, "false": False, "null": None}[value]))
        else:
            out.append((kind or "", value))
    return out


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value) if value.strip() else 0.0
        except ValueError:
            return math.nan
    return math.nan


def truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, 0.0, "")


def _equal(a: Any, b: Any) -> bool:
    """GitHub's loose equality: strings ignore case; other mixed types compare as numbers."""
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if type(a) is type(b) or (isinstance(a, int | float) and isinstance(b, int | float)):
        return bool(a == b)
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return a is b
    return _number(a) == _number(b)


def to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2)
    return str(value)


class Expression:
    """One `${{ }}` expression (or an `if:` without the braces) over a context."""

    def __init__(self, text: str, context: Mapping[str, Any], status: Mapping[str, bool]):
        self.text, self.context, self.status = text, context, status
        self.toks = _tokens(text)
        self.pos = 0

    def value(self) -> Any:
        result = self._or()
        if self.pos != len(self.toks):
            raise ExpressionError(f"unexpected {self.toks[self.pos][1]!r} in {self.text!r}")
        return result

    def _peek(self) -> tuple[str, Any] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def _eat(self, value: str) -> bool:
        tok = self._peek()
        if tok is not None and tok[0] == "op" and tok[1] == value:
            self.pos += 1
            return True
        return False

    def _or(self) -> Any:
        left = self._and()
        while self._eat("||"):
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._cmp()
        while self._eat("&&"):
            right = self._cmp()
            left = right if truthy(left) else left
        return left

    def _cmp(self) -> Any:
        left = self._unary()
        for op in ("==", "!=", "<=", ">=", "<", ">"):
            if self._eat(op):
                right = self._unary()
                if op == "==":
                    return _equal(left, right)
                if op == "!=":
                    return not _equal(left, right)
                a, b = _number(left), _number(right)
                return {"<=": a <= b, ">=": a >= b, "<": a < b, ">": a > b}[op]
        return left

    def _unary(self) -> Any:
        if self._eat("!"):
            return not truthy(self._unary())
        return self._postfix(self._primary())

    def _primary(self) -> Any:
        tok = self._peek()
        if tok is None:
            raise ExpressionError(f"unexpected end of {self.text!r}")
        self.pos += 1
        kind, value = tok
        if kind == "lit":
            return value
        if kind == "op" and value == "(":
            inner = self._or()
            if not self._eat(")"):
                raise ExpressionError(f"missing ) in {self.text!r}")
            return inner
        if kind == "name":
            if self._eat("("):
                args = []
                if not self._eat(")"):
                    args.append(self._or())
                    while self._eat(","):
                        args.append(self._or())
                    if not self._eat(")"):
                        raise ExpressionError(f"missing ) in {self.text!r}")
                return self._call(value, args)
            if value not in self.context:
                raise ExpressionError(f"unknown context {value!r} in {self.text!r}")
            return self.context[value]
        raise ExpressionError(f"unexpected {value!r} in {self.text!r}")

    def _postfix(self, value: Any) -> Any:
        while True:
            if self._eat("."):
                tok = self._peek()
                if tok is None or tok[0] != "name":
                    raise ExpressionError(f"expected a property name in {self.text!r}")
                self.pos += 1
                value = _member(value, tok[1])
            elif self._eat("["):
                key = self._or()
                if not self._eat("]"):
                    raise ExpressionError(f"missing ] in {self.text!r}")
                value = _member(value, to_string(key) if not isinstance(value, list) else key)
            else:
                return value

    def _call(self, name: str, args: list[Any]) -> Any:
        lowered = name.lower()
        if lowered in ("success", "failure", "always", "cancelled"):
            return self.status[lowered]
        if lowered == "contains":
            hay, needle = args
            if isinstance(hay, list):
                return any(_equal(item, needle) for item in hay)
            return to_string(needle).casefold() in to_string(hay).casefold()
        if lowered == "startswith":
            return to_string(args[0]).casefold().startswith(to_string(args[1]).casefold())
        if lowered == "endswith":
            return to_string(args[0]).casefold().endswith(to_string(args[1]).casefold())
        if lowered == "format":
            text = to_string(args[0])
            for i, arg in enumerate(args[1:]):
                text = text.replace("{" + str(i) + "}", to_string(arg))
            return text
        if lowered == "hashfiles":
            workspace = Path(str(_member(self.context.get("github"), "workspace")))
            found = sorted(
                path
                for pattern in args
                for path in workspace.glob(to_string(pattern))
                if path.is_file()
            )
            if not found:
                return ""
            digest = hashlib.sha256()
            for path in found:
                digest.update(hashlib.sha256(path.read_bytes()).digest())
            return digest.hexdigest()
        if lowered == "tojson":
            return json.dumps(args[0], indent=2)
        if lowered == "fromjson":
            return json.loads(to_string(args[0]))
        raise ExpressionError(f"function {name}() is not simulated (in {self.text!r})")


def _member(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).casefold() == str(key).casefold():
                return v
        return None
    if isinstance(value, list) and isinstance(key, int | float):
        return value[int(key)] if 0 <= int(key) < len(value) else None
    return None


_INTERPOLATION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def evaluate(
    text: Any, context: Mapping[str, Any], status: Mapping[str, bool] | None = None
) -> Any:
    """A workflow value: `${{ expr }}` alone gives the value, mixed text a string."""
    if not isinstance(text, str):
        return text
    status = status or {"success": True, "failure": False, "always": True, "cancelled": False}
    whole = _INTERPOLATION.fullmatch(text.strip())
    if whole:
        return Expression(whole.group(1), context, status).value()
    return _INTERPOLATION.sub(
        lambda m: to_string(Expression(m.group(1), context, status).value()), text
    )


def condition(text: Any, context: Mapping[str, Any], failed: bool) -> bool:
    """A step's `if:`: implicitly `success() && (...)` unless it calls a status function."""
    status = {"success": not failed, "failure": failed, "always": True, "cancelled": False}
    if text is None or text == "":
        return not failed
    if isinstance(text, bool):
        return text and not failed
    body = str(text).strip()
    whole = _INTERPOLATION.fullmatch(body)
    if whole:
        body = whole.group(1)
    result = truthy(Expression(body, context, status).value())
    if not re.search(r"\b(success|failure|always|cancelled)\s*\(", body):
        result = result and not failed
    return result


# ----------------------------------------------------------------------------- the run
@dataclass
class Step:
    name: str
    id: str | None
    outcome: str  # success | failure | skipped
    conclusion: str
    outputs: dict[str, str]
    log: str
    kind: str  # run | uses
    code: int | None = None


@dataclass
class Run:
    """One job's run: its steps, its conclusion, the job summary and the artifacts."""

    workflow: str
    workspace: Path
    steps: list[Step]
    conclusion: str
    summary: str
    artifacts: dict[str, Path]

    def step(self, name: str) -> Step:
        found = [s for s in self.steps if s.name == name or s.id == name]
        assert found, f"no step {name!r}: {[s.name for s in self.steps]}"
        return found[0]

    @property
    def log(self) -> str:
        return "\n".join(f"--- {s.name} [{s.outcome}]\n{s.log}" for s in self.steps)

    def ran(self) -> list[str]:
        """The DVC stages that ran, in order."""
        return re.findall(r"^Running stage '([^']+)'", self.log, flags=re.M)

    def errors(self) -> list[str]:
        """The `::error::` annotations the steps printed."""
        return re.findall(r"^::error(?: [^:]*)?::(.*)$", self.log, flags=re.M)

    def __str__(self) -> str:
        shown = [
            f"--- {s.name} [{s.outcome}]" + (f"\n{s.log[-6000:]}" if s.outcome == "failure" else "")
            for s in self.steps
        ]
        return f"{self.workflow}: {self.conclusion}\n" + "\n".join(shown)

    def expect(self, conclusion: str = "success") -> Run:
        """The run ended as `conclusion`, or the test fails showing the failed steps' logs
        (pytest.fail: an assertion message would be truncated)."""
        if self.conclusion != conclusion:
            pytest.fail(f"expected {conclusion}, got {self}", pytrace=False)
        return self

    __repr__ = __str__  # pytest shows an assertion's message object by its repr


def _parse_file_commands(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV: `key=value` lines and `key<<DELIM` heredocs."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            body = []
            i += 1
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        elif line.strip():
            raise AssertionError(f"{path.name}: unreadable line {line!r}")
        i += 1
    return out


def load_workflow(name: str, root: Path = ROOT) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((root / ".github/workflows" / name).read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def _shell(step: Mapping[str, Any], job: Mapping[str, Any], doc: Mapping[str, Any]) -> list[str]:
    shell = (
        step.get("shell")
        or ((job.get("defaults") or {}).get("run") or {}).get("shell")
        or ((doc.get("defaults") or {}).get("run") or {}).get("shell")
    )
    if shell is None:
        return ["bash", "-e"]  # GitHub's default when no shell is named: no pipefail
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
    raise AssertionError(f"shell {shell!r} is not simulated")


# --------------------------------------------------------------------------- the host
@dataclass
class Event:
    """What triggered a run: `name` (push, pull_request, schedule, workflow_dispatch)."""

    name: str
    ref: str = "main"  # the branch pushed to / the base branch of a pull request
    head: str | None = None  # a pull request's head branch
    number: int | None = None  # a pull request's number
    fork: bool = False  # the head lives in the fork (acme-fork/model)
    run_id: int = 1
    attempt: int = 1


@dataclass
class GitHub:
    """The hosting side of acme/model, on this machine (see the module docstring)."""

    base: Path
    secrets: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    interpreter_bin: Path = Path(sys.executable).parent

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.origin = self.base / "origin.git"
        self.fork = self.base / "fork.git"
        self.remote = self.base / "dvc-remote"
        self.serving = self.base / "serving-remote"
        self.gh_state = self.base / "gh.json"
        self.tools = self.base / "tools"
        self.home = self.base / "home"
        self.artifacts = self.base / "artifacts"
        self.runs = 0
        for path in (self.tools, self.home, self.artifacts):
            path.mkdir(exist_ok=True)
        gh = self.tools / "gh"
        gh.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_GH} {self.gh_state} "$@"\n')
        gh.chmod(0o755)
        for path in (self.origin, self.fork):
            if not path.exists():
                _git(["init", "-q", "--bare", "-b", "main", str(path)], self.base)
        self._gitconfig()

    def _gitconfig(self) -> None:
        """github.com URLs (with any token the runs use) lead to the bare repositories."""
        tokens = {TOKEN, READ_ONLY, *(v for k, v in self.secrets.items() if "TOKEN" in k and v)}
        lines = []
        for repo, path in ((REPO, self.origin), ("acme-fork/model", self.fork)):
            lines.append(f'[url "{path}"]')
            lines.append(f"\tinsteadOf = https://github.com/{repo}.git")
            for token in sorted(tokens):
                lines.append(f"\tinsteadOf = https://x-access-token:{token}@github.com/{repo}.git")
        (self.home / ".gitconfig").write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ state
    @property
    def gh(self) -> dict[str, Any]:
        if not self.gh_state.exists():
            return {"calls": [], "prs": [], "issues": [], "comments": [], "next": 1}
        data: dict[str, Any] = json.loads(self.gh_state.read_text())
        return data

    def set_gh(self, mutate: Callable[[dict[str, Any]], None]) -> None:
        state = self.gh
        mutate(state)
        self.gh_state.write_text(json.dumps(state, indent=1))

    def branches(self, repo: Path | None = None) -> dict[str, str]:
        out = _git(["for-each-ref", "--format=%(refname:short) %(objectname)"], repo or self.origin)
        return dict(line.split() for line in out.splitlines())

    # ---------------------------------------------------------------- checkout
    def checkout(self, event: Event, workspace: Path, fetch_depth: int = 1) -> str:
        """The working copy actions/checkout makes for `event`; returns github.sha."""
        url = f"https://github.com/{REPO}.git"
        if event.name == "pull_request":
            _git(["clone", "-q", "--no-checkout", str(self.origin), str(workspace)], self.base)
            _git(["remote", "set-url", "origin", url], workspace)
            source = self.fork if event.fork else self.origin
            _git(["fetch", "-q", str(source), f"{event.head}"], workspace)
            _git(["checkout", "-q", "--detach", f"origin/{event.ref}"], workspace)
            _git(
                [
                    "-c",
                    "user.name=GitHub",
                    "-c",
                    "user.email=noreply@github.com",
                    "merge",
                    "-q",
                    "--no-ff",
                    "--no-edit",
                    "FETCH_HEAD",
                    "-m",
                    f"Merge {event.head} into {event.ref}",
                ],
                workspace,
            )
        else:
            depth = ["--depth", str(fetch_depth)] if fetch_depth else []
            _git(
                [
                    "clone",
                    "-q",
                    *depth,
                    "--branch",
                    event.ref,
                    f"file://{self.origin}",
                    str(workspace),
                ],
                self.base,
            )
            _git(["remote", "set-url", "origin", url], workspace)
        (workspace / ".venv").symlink_to(self.interpreter_bin.parent)
        with (workspace / ".git/info/exclude").open("a") as exclude:
            exclude.write("/.venv\n")
        return _git(["rev-parse", "HEAD"], workspace).strip()

    # --------------------------------------------------------------------- run
    def run(
        self,
        workflow: str,
        event: Event,
        *,
        job: str | None = None,
        timeout: float = 3600,
        workspace: Path | None = None,
        cpu: str | None = None,
    ) -> Run:
        """Run one job of `workflow` for `event` on a fresh runner (see the module docstring).
        `cpu` makes it a runner with another CPU: OpenBLAS's kernels for that core type
        (OPENBLAS_CORETYPE, e.g. "Sandybridge"), which change a model's last bits."""
        self.runs += 1
        runner = self.base / f"runner-{self.runs}-{Path(workflow).stem}"
        runner.mkdir()
        temp = runner / "temp"
        temp.mkdir()
        doc = load_workflow(workflow, workspace or ROOT)
        jobs = doc["jobs"]
        name = job or next(iter(jobs))
        spec = jobs[name]
        checkout = next(
            (s for s in spec["steps"] if str(s.get("uses", "")).startswith("actions/checkout@")),
            None,
        )
        depth = int(((checkout or {}).get("with") or {}).get("fetch-depth", 1))
        ws = workspace or runner / "work"
        sha = (
            self.checkout(event, ws, depth)
            if workspace is None
            else _git(["rev-parse", "HEAD"], ws).strip()
        )
        # the workflow as committed in the checked-out commit is what runs
        doc = load_workflow(workflow, ws)
        spec = doc["jobs"][name]
        fork = event.name == "pull_request" and event.fork
        secrets = {} if fork else dict(self.secrets)
        secrets["GITHUB_TOKEN"] = READ_ONLY if fork else TOKEN
        github = {
            "repository": REPO,
            "repository_owner": REPO.split("/")[0],
            "run_id": str(event.run_id),
            "run_attempt": str(event.attempt),
            "event_name": event.name,
            "sha": sha,
            "ref": f"refs/pull/{event.number}/merge"
            if event.name == "pull_request"
            else f"refs/heads/{event.ref}",
            "ref_name": event.ref,
            "base_ref": event.ref if event.name == "pull_request" else "",
            "head_ref": event.head if event.name == "pull_request" else "",
            "token": secrets["GITHUB_TOKEN"],
            "workspace": str(ws),
            "server_url": "https://github.com",
            "event": self._payload(event),
        }
        context: dict[str, Any] = {
            "github": github,
            "secrets": secrets,
            "vars": {} if fork else dict(self.variables),
            "env": {},
            "steps": {},
            "runner": {"os": "Linux", "temp": str(temp)},
            "inputs": {},
            "matrix": {},
            "job": {"status": "success"},
        }
        env_chain = {}
        for source in (doc.get("env") or {}, spec.get("env") or {}):
            for key, value in source.items():
                context["env"] = dict(env_chain)
                env_chain[key] = to_string(evaluate(value, context))
        summary = runner / "step_summary.md"
        summary.touch()
        base_env = {
            "PATH": f"{self.tools}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(ws),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_RUN_ID": str(event.run_id),
            "GITHUB_RUN_ATTEMPT": str(event.attempt),
            "GITHUB_EVENT_NAME": event.name,
            "GITHUB_REF": github["ref"],
            "GITHUB_SHA": sha,
            "GITHUB_BASE_REF": github["base_ref"],
            "GITHUB_HEAD_REF": github["head_ref"],
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(temp),
            "RUNNER_OS": "Linux",
            "DVC_NO_ANALYTICS": "1",
            # simulated `make install`: the checkout's own pipeline/ is what runs
            "PYTHONPATH": str(ws),
            **({"OPENBLAS_CORETYPE": cpu} if cpu else {}),
        }
        steps: list[Step] = []
        failed = False
        artifacts: dict[str, Path] = {}
        for index, step in enumerate(spec["steps"]):
            label = step.get("name") or step.get("uses") or step.get("run", "").split("\n")[0]
            context["env"] = dict(env_chain)
            if not condition(step.get("if"), context, failed):
                record = Step(label, step.get("id"), "skipped", "skipped", {}, "", "run")
                steps.append(record)
                if record.id:
                    context["steps"][record.id] = {
                        "outputs": {},
                        "outcome": "skipped",
                        "conclusion": "skipped",
                    }
                continue
            step_env = {
                k: to_string(evaluate(v, context)) for k, v in (step.get("env") or {}).items()
            }
            if "uses" in step:
                record = self._uses(step, label, context, ws, artifacts, fork)
            else:
                outputs_file = runner / f"output-{index}"
                env_file = runner / f"env-{index}"
                outputs_file.touch()
                env_file.touch()
                script = step["run"]
                if script.strip() == "make install":
                    record = Step(
                        label,
                        step.get("id"),
                        "success",
                        "success",
                        {},
                        "simulated: .venv links to the test environment, PYTHONPATH to the "
                        "checkout",
                        "run",
                        0,
                    )
                else:
                    script_file = temp / f"step-{index}.sh"
                    script_file.write_text(script)
                    environ = {
                        **base_env,
                        **env_chain,
                        **step_env,
                        "GITHUB_OUTPUT": str(outputs_file),
                        "GITHUB_ENV": str(env_file),
                    }
                    try:
                        proc = subprocess.run(
                            [*_shell(step, spec, doc), str(script_file)],
                            cwd=ws / step.get("working-directory", "."),
                            env=environ,
                            text=True,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            timeout=timeout,
                            check=False,
                        )
                        code, printed = proc.returncode, proc.stdout
                    except subprocess.TimeoutExpired as exc:
                        out = exc.stdout or b""
                        text = out.decode() if isinstance(out, bytes) else out
                        code, printed = -1, f"{text}\n(harness: killed after {timeout:g} s)"
                    outcome = "success" if code == 0 else "failure"
                    record = Step(
                        label,
                        step.get("id"),
                        outcome,
                        outcome,
                        _parse_file_commands(outputs_file),
                        printed,
                        "run",
                        code,
                    )
                    env_chain.update(_parse_file_commands(env_file))
            if record.outcome == "failure" and step.get("continue-on-error"):
                record.conclusion = "success"
            if record.conclusion == "failure":
                failed = True
            steps.append(record)
            if record.id:
                context["steps"][record.id] = {
                    "outputs": record.outputs,
                    "outcome": record.outcome,
                    "conclusion": record.conclusion,
                }
        return Run(
            workflow,
            ws,
            steps,
            "failure" if failed else "success",
            summary.read_text(),
            artifacts,
        )

    def _payload(self, event: Event) -> dict[str, Any]:
        if event.name != "pull_request":
            return {}
        head_repo = "acme-fork/model" if event.fork else REPO
        return {
            "number": event.number,
            "pull_request": {
                "number": event.number,
                "head": {"ref": event.head, "repo": {"full_name": head_repo}},
                "base": {"ref": event.ref, "repo": {"full_name": REPO}},
            },
        }

    def _uses(
        self,
        step: Mapping[str, Any],
        label: str,
        context: Mapping[str, Any],
        ws: Path,
        artifacts: dict[str, Path],
        fork: bool,
    ) -> Step:
        action = str(step["uses"]).split("@", 1)[0]
        if action in ("actions/checkout", "actions/setup-python"):
            return Step(label, step.get("id"), "success", "success", {}, "(simulated)", "uses")
        if action == "actions/cache":
            # a cold cache: nothing restored (the honest first run on a new runner)
            return Step(
                label,
                step.get("id"),
                "success",
                "success",
                {"cache-hit": "false"},
                "(simulated: cache miss)",
                "uses",
            )
        if action == "actions/upload-artifact":
            inputs = {k: evaluate(v, context) for k, v in (step.get("with") or {}).items()}
            source = ws / str(inputs["path"])
            if not source.exists():
                level = inputs.get("if-no-files-found", "warn")
                outcome = "failure" if level == "error" else "success"
                return Step(
                    label,
                    step.get("id"),
                    outcome,
                    outcome,
                    {},
                    f"No files were found with the provided path: {inputs['path']}",
                    "uses",
                )
            dest = self.artifacts / f"{self.runs}-{inputs.get('name', 'artifact')}"
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / source.name)
            artifacts[str(inputs.get("name", "artifact"))] = dest / source.name
            return Step(label, step.get("id"), "success", "success", {}, "uploaded", "uses")
        raise AssertionError(f"action {action} is not simulated")


def _git(args: list[str], cwd: Path) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {cwd}: {proc.stderr}")
    return proc.stdout


# ------------------------------------------------------------------ a project on the host
SEEDED = (".github", "Makefile")  # what the template project lacks of a real repository


class Hub:
    """A `GitHub` seeded with a reproduced project, and a developer's checkout of it (`dev`):
    main pushed to origin, every DVC output pushed to the storage remote, the secrets set as a
    maintainer would (DVC_REMOTE_URL; the others by the test)."""

    def __init__(self, project: Path, base: Path, dvc: Path) -> None:
        self.dev = project
        self.dvc = dvc
        self.github = GitHub(base)
        for item in SEEDED:
            src = ROOT / item
            if src.is_dir():
                shutil.copytree(src, project / item, dirs_exist_ok=True)
            else:
                shutil.copy2(src, project / item)
        self.git("add", "-A")
        local = project / "conf/local/default.yaml"
        if local.exists():  # the fast settings: committed here, machine-local in a real repo
            self.git("add", "-f", "conf/local/default.yaml")
        self.git("commit", "-qm", "ci setup", check=False)
        self.git("remote", "add", "origin", str(self.github.origin))
        self.git("push", "-q", "origin", "main")
        self.dvc_cmd("remote", "add", "--local", "-d", "storage", str(self.github.remote))
        self.dvc_cmd("push", "--quiet")
        self.github.secrets["DVC_REMOTE_URL"] = str(self.github.remote)

    def git(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.dev, env=_dev_env(), capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def dvc_cmd(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            [str(self.dvc), *args],
            cwd=cwd or self.dev,
            env=_dev_env(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise AssertionError(f"dvc {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def commit_all(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)

    def sync_main(self) -> None:
        """The developer's checkout follows origin/main (after a merge on GitHub)."""
        self.git("fetch", "-q", "origin")
        self.git("checkout", "-q", "main")
        self.git("reset", "-q", "--hard", "origin/main")
        self.dvc_cmd("pull", "--quiet", "--allow-missing")

    def merge(self, branch: str) -> None:
        """Merge a pull request's branch into main on GitHub (a merge commit)."""
        scratch = self.github.base / f"merge-{branch.replace('/', '-')}"
        if scratch.exists():
            shutil.rmtree(scratch)
        self.git("clone", "-q", str(self.github.origin), str(scratch), cwd=self.github.base)
        self.git("merge", "-q", "--no-ff", "--no-edit", f"origin/{branch}", cwd=scratch)
        self.git("push", "-q", "origin", "main", cwd=scratch)

        def merged(state: dict[str, Any]) -> None:
            for pr in state["prs"]:
                if pr["headRefName"] == branch and pr["state"] == "OPEN":
                    pr["state"] = "MERGED"

        self.github.set_gh(merged)
        self.sync_main()

    def push_branch(self, branch: str, *, fork: bool = False) -> None:
        """Push the developer's `branch` to origin, or to the fork."""
        target = self.github.fork if fork else self.github.origin
        self.git("push", "-q", "--force", str(target), f"{branch}:refs/heads/{branch}")


def _dev_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GIT_AUTHOR_NAME="dev",
        GIT_AUTHOR_EMAIL="dev@example.com",
        GIT_COMMITTER_NAME="dev",
        GIT_COMMITTER_EMAIL="dev@example.com",
        DVC_NO_ANALYTICS="1",
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
