"""Helpers shared by the benchmarks: a throw-away copy of the project in a temporary git repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ITEMS = (
    "conf",
    "pipeline",
    "dvc.yaml",
    "params.yaml",
    "requirements",
    "pyproject.toml",
    ".dvcignore",
    "data/external",
    "scripts",
    "monitor",  # monitor/archive: a dependency of the `monitor` stage
)


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out["DVC_NO_ANALYTICS"] = "1"
    return out


def copy_project(dest: Path, source: Path = ROOT) -> Path:
    """A fresh git repository at `dest` holding the project of `source` (by default this
    checkout; another one to compare its code in the same run)."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__"}
        if Path(directory).name == "local":
            skip |= {n for n in names if n.endswith(".yaml")}
        return skip

    dest.mkdir(parents=True)
    for item in ITEMS:
        src = source / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / item)
    # As committed: nothing released, no production windows or feedback yet.
    for folder in ("deploy", "bundles", "data/production", "data/feedback"):
        (dest / folder).mkdir(parents=True, exist_ok=True)
        (dest / folder / ".gitkeep").touch()
    for record in sorted((source / "deploy").glob("*.json")):
        (dest / "deploy" / record.name).write_text(
            f'{{\n  "release": null,\n  "target": "{record.stem}"\n}}\n'
        )
    (dest / "maintain").mkdir()
    (dest / "maintain" / "ledger.json").write_text('{\n  "entries": []\n}\n')
    shutil.copytree(
        source / ".dvc", dest / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "*.lock")
    )
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(
        [
            "git",
            "-c",
            "user.name=bench",
            "-c",
            "user.email=b@example.com",
            "commit",
            "-qm",
            "bench",
        ],
        dest,
    )
    return dest


def run(args: Sequence[str], cwd: Path) -> float:
    """Run a command to completion; returns its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(
        list(args),
        cwd=cwd,
        env=env(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
