#!/usr/bin/env python3
"""Fail when `dvc repro` would recompute a stage only because its recorded outputs are not in
the DVC remote (nor in the runner's cache): a stage whose deps and params did not change, and
none of whose upstream stages will re-run, but whose outputs are missing after `dvc pull`.

Recomputing it here would not reproduce it: a model trained on this runner's CPU can differ in
its last bits (BLAS kernels), so an unchanged model would become a new bundle, a spurious
release in the bot's pull request and a dvc.lock that conflicts with the branch that recorded
it. The outputs belong in the remote: `dvc push` where they were produced. Prints the stages
and their missing outputs as an `::error::` annotation and exits 1; exits 0 when none.
Run after `dvc pull --allow-missing`, with the project's interpreter.
"""

from __future__ import annotations

import sys

import networkx as nx
from dvc.repo import Repo

MISSING = {"deleted", "not in cache"}


def main() -> int:
    repo = Repo(".")
    status = repo.status()
    by_name = {stage.addressing: stage for stage in repo.index.stages}
    missing_only, changing = {}, set()
    for name, entries in status.items():
        stage = by_name.get(name)
        if stage is None:
            continue
        outs: dict[str, str] = {}
        other = False
        for entry in entries:
            if isinstance(entry, dict) and set(entry) == {"changed outs"}:
                outs.update(entry["changed outs"])
            else:
                other = True
        if other or not outs or not set(outs.values()) <= MISSING:
            changing.add(stage)
        else:
            missing_only[stage] = sorted(outs)
    graph = repo.index.graph  # edges point from a stage to the stages it depends on
    stranded = {
        stage.addressing: outs
        for stage, outs in missing_only.items()
        if not (nx.descendants(graph, stage) & changing)
    }
    if not stranded:
        print("every output recorded in dvc.lock for an unchanged stage is here")
        return 0
    shown = "; ".join(f"{name}: {', '.join(outs)}" for name, outs in sorted(stranded.items()))
    print(
        "::error::outputs recorded in dvc.lock are missing from the DVC remote, so `dvc repro` "
        f"would recompute unchanged stages on this runner ({shown}): a model retrained on "
        "another CPU can differ in its bytes and become a spurious new release. Run `dvc push` "
        "where they were produced, then re-run this workflow."
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
