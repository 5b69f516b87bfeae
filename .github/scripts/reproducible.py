#!/usr/bin/env python3
"""Which stages this checkout can reproduce, for a pull request from a fork (no DVC remote).

A fork's pull request gets no secrets, so no DVC remote: data tracked by `.dvc` files (released
bundles, feedback, production windows, your own data) is there only when the runner's DVC
cache holds it. A stage that needs such data, or the output of a stage that does, cannot be
reproduced; every other stage can (from scratch, if need be). This prints a JSON object:
    {"unavailable": [paths], "blocked": [stages], "runnable": [stages]}
and, under GitHub Actions, `runnable=<stages separated by spaces>` and `blocked=...` to
$GITHUB_OUTPUT. Run with the project's interpreter: .venv/bin/python .github/scripts/reproducible.py
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import networkx as nx
from dvc.exceptions import CheckoutError
from dvc.repo import Repo


def main() -> int:
    repo = Repo(".")
    sources = [stage for stage in repo.index.stages if not stage.cmd and stage.is_data_source]
    targets = [stage.path for stage in sources]
    if targets:
        with contextlib.suppress(CheckoutError):  # what the runner's cache holds is there
            repo.checkout(targets=targets, allow_missing=True, force=True)
    unavailable = sorted(
        str(out) for stage in sources for out in stage.outs if not Path(out.fs_path).exists()
    )
    missing_sources = [s for s in sources if any(not Path(o.fs_path).exists() for o in s.outs)]
    graph = repo.index.graph  # edges point from a stage to the stages it depends on
    blocked_stages = set()
    for source in missing_sources:
        blocked_stages |= nx.ancestors(graph, source)
    pipeline = [s for s in repo.index.stages if s.cmd]
    blocked = sorted(s.addressing for s in pipeline if s in blocked_stages)
    runnable = sorted(s.addressing for s in pipeline if s not in blocked_stages)
    print(json.dumps({"unavailable": unavailable, "blocked": blocked, "runnable": runnable}))
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        with Path(out).open("a", encoding="utf-8") as handle:
            handle.write(f"runnable={' '.join(runnable)}\n")
            handle.write(f"blocked={' '.join(blocked)}\n")
            handle.write(f"unavailable={' '.join(unavailable)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
