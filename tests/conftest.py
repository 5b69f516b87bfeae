"""Shared fixtures: the real conf/ composed once, and a real DVC project reproduced once.

Integration tests run the real `dvc repro` in a temporary git repository. Reproducing from
scratch costs several seconds of interpreter start-up per stage, so one session builds a
template project (fast experiment) and every test copies it; with pytest-xdist the first
worker builds it under a file lock and the others reuse it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pipeline.io import dumps_json

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What a project copy needs: the tracked sources, not the developer's outputs or caches.
PROJECT_ITEMS = (
    "conf",
    "pipeline",
    "dvc.yaml",
    "params.yaml",
    "requirements",
    "pyproject.toml",
    ".dvcignore",
    ".gitignore",
    "data/external",
    "scripts",
)


def env() -> dict[str, str]:
    """The environment for subprocesses: this interpreter's venv first on PATH, no analytics."""
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out["DVC_NO_ANALYTICS"] = "1"
    out["PYTHONHASHSEED"] = "0"
    out.setdefault("GIT_AUTHOR_NAME", "test")
    out.setdefault("GIT_AUTHOR_EMAIL", "test@example.com")
    out.setdefault("GIT_COMMITTER_NAME", "test")
    out.setdefault("GIT_COMMITTER_EMAIL", "test@example.com")
    return out


def sh(
    args: Sequence[str],
    cwd: Path,
    *,
    check: bool = True,
    timeout: float = 600,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; on an unexpected failure show everything it printed."""
    proc = subprocess.run(
        list(args),
        cwd=cwd,
        env=env(),
        text=True,
        capture_output=True,
        timeout=timeout,
        input=input,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n"
            f"{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def mlops(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh([str(BIN / "mlops"), *args], cwd, check=check)


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh([str(BIN / "dvc"), *args], cwd, check=check)


def _ignore(directory: str, names: list[str]) -> set[str]:
    """Skip caches, and a developer's machine-local overrides (conf/local/*.yaml)."""
    skipped = {n for n in names if n == "__pycache__"}
    if Path(directory).name == "local" and Path(directory).parent.name == "conf":
        skipped |= {n for n in names if n.endswith(".yaml")}
    if Path(directory).name == "pins" and Path(directory).parent.name == "deploy":
        skipped |= {n for n in names if n.endswith(".yaml")}  # rollback pins name local releases
    return skipped


def _no_releases(dest: Path) -> None:
    """Every target starts with nothing released (the developer's releases and bundles stay
    in their checkout): deploy/<target>.json says `"release": null`, bundles/ is empty."""
    (dest / "deploy").mkdir(exist_ok=True)
    for record in sorted((ROOT / "deploy").glob("*.json")):
        (dest / "deploy" / record.name).write_text(
            dumps_json({"target": record.stem, "release": None})
        )
    (dest / "bundles").mkdir(exist_ok=True)
    (dest / "bundles" / ".gitkeep").touch()


def _no_production_windows(dest: Path) -> None:
    """data/production/ and data/feedback/ as committed: empty but for .gitkeep (the
    developer's snapshots and feedback stay in their checkout), so monitoring sees only the
    simulated windows and training only the dataset until a test adds some."""
    for folder in ("production", "feedback"):
        (dest / "data" / folder).mkdir(parents=True, exist_ok=True)
        (dest / "data" / folder / ".gitkeep").touch()
    (dest / "maintain").mkdir(exist_ok=True)
    (dest / "maintain" / "ledger.json").write_text(dumps_json({"entries": []}))


def use_fast_settings(project: Path) -> None:
    """Make the fast experiment this copy's machine-local default, so a plain `mlops compose`
    (and `dvc exp run`'s own composition) keep the fast settings."""
    fast = (project / "conf/experiment/fast.yaml").read_text()
    (project / "conf/local/default.yaml").write_text(fast)


def copy_project(dest: Path) -> Path:
    """A fresh project: sources copied, `git init`, DVC initialised as committed."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in PROJECT_ITEMS:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=_ignore)
        elif src.exists():
            shutil.copy2(src, dest / item)
    _no_releases(dest)
    _no_production_windows(dest)
    shutil.copytree(
        ROOT / ".dvc",
        dest / ".dvc",
        ignore=shutil.ignore_patterns("cache", "tmp", "*.lock", "updater*"),
    )
    sh(["git", "init", "-q", "-b", "main"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-q", "-m", "project"], dest)
    return dest


def digests(
    root: Path,
    patterns: Sequence[str] = (
        "conf/**/*",
        "params.yaml",
        "data/**/*",
        "models/**/*",
        "reports/**/*",
        "dvc.lock",
    ),
) -> dict[str, str]:
    """sha256 of every file matching `patterns`: to prove a failed command changed nothing."""
    out = {}
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def template_project(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A project reproduced once with the fast experiment (shared by xdist workers)."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    target = shared / "template-project"
    with (shared / "template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".ready").exists():
            if target.exists():
                shutil.rmtree(target)
            copy_project(target)
            use_fast_settings(target)
            mlops("compose", cwd=target)
            dvc("repro", cwd=target)
            sh(["git", "add", "-A"], target)
            sh(["git", "commit", "-q", "-m", "reproduced"], target)
            (target / ".ready").touch()
    return target


@pytest.fixture
def project(template_project: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the reproduced template (git history and DVC cache included)."""
    dest = tmp_path / "project"
    shutil.copytree(template_project, dest, symlinks=True, ignore=shutil.ignore_patterns(".ready"))
    yield dest


@pytest.fixture
def fresh_project(tmp_path: Path) -> Path:
    """Sources only: nothing reproduced yet."""
    return copy_project(tmp_path / "fresh")
