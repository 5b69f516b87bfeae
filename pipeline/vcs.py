"""Running git and dvc: the one place that finds them and turns a failure into one error.

`dvc` is taken from the project's venv (next to this interpreter) when it is there, else from
PATH, so a command run as `.venv/bin/mlops` uses the DVC the project locked even when another is
first on PATH; git the same way (a venv rarely has one). A missing tool, a non-zero exit (with
`check`) and a timeout are all a `ToolError` (a user error: the CLI prints it and exits 2)
naming the command, where it ran and the end of what it printed. Callers that expect a failure
(`git show` of a file a commit may not have, `dvc status` for a status line) pass `check=False`
and read the exit code; callers add their own context by catching `ToolError`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import ToolError

DETAIL_CHARS = 600  # of the tool's output, in an error message: its verdict is at the end


def find(name: str) -> str | None:
    """The tool installed next to this interpreter (the project's venv), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def executable(name: str) -> str:
    found = find(name)
    if found is None:
        raise ToolError(f"`{name}` is not installed", hint="install the project (`make install`)")
    return found


def run(
    tool: str,
    root: Path,
    args: Sequence[str],
    *,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """`tool args` in `root`. stderr is always captured (a failure's message comes from it);
    stdout too unless `capture` is false (`dvc repro` shows its progress as it runs)."""
    shown = " ".join([tool, *args])
    try:
        proc = subprocess.run(
            [executable(tool), *args],
            cwd=root,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"`{shown}` did not finish within {timeout:g} s in {root}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()
        if len(detail) > DETAIL_CHARS:
            detail = "..." + detail[-DETAIL_CHARS:]
        raise ToolError(f"`{shown}` failed in {root} (exit {proc.returncode}): {detail}")
    return proc


def git(
    root: Path, *args: str, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return run("git", root, args, check=check, timeout=timeout)


def git_ok(root: Path, *args: str) -> bool:
    """Whether `git args` succeeds (a question: `cat-file -e`, `merge-base --is-ancestor`)."""
    return git(root, *args, check=False).returncode == 0


def dvc(
    root: Path,
    *args: str,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    return run("dvc", root, args, check=check, capture=capture, timeout=timeout)
