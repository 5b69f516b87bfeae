"""Release ids, release records (`deploy/<target>.json`) and a target's gate settings.

A target's settings (`TargetSpec`) are typed in the params tree (`pipeline.params`), which
every stage reads; they are re-exported here for the deploy layer.

The record's format (ids, parsing, the checks every reader applies) is owned by the foundation
module `pipeline.release_record`, so that monitoring and maintenance read a release exactly as
deploy does; it is re-exported here for the deploy layer.

A release id is `r<sequence>-<bundle id>`, e.g. `r0003-3f9a1c2b5e6d7f80`: the sequence is the
parent release's plus one (at least four digits, so ids sort and read well in review), and the
bundle id makes it unique across branches that release in parallel.

`deploy/<target>.json` is the desired state of one target, written only by `mlops release` (and
restored by `git revert`); the graph reads it as a dependency and never writes it:

    {
      "target": "local",
      "release": "r0002-3f9a1c2b5e6d7f80",        # null before the first release
      "parent": "r0001-0c1d2e3f4a5b6c7d",          # the release this one replaced, or null
      "pinned": null,                              # the release a rollback pinned, if any
      "bundle": {"id": "3f9a1c2b5e6d7f80", "sha256": "<manifest sha256>",
                 "path": "bundles/3f9a1c2b5e6d7f80"},
      "model": {"name": ..., "estimator": ..., "task": ..., "classes": [...],
                "target": ..., "inputs": {name: type}},   # what the model answers
      "metrics": {"test": {...}},                  # as recorded when the gate passed
      "gates": {...},                              # the evidence from reports/deploy/<target>.json
      "new_line": {"replaces": ..., "differences": [...]}   # only when the incumbent was not
    }                                              #   comparable (pipeline/comparability.py)

No time stamps: the git commit that changes the file is the release's time and author.
"""

from __future__ import annotations

from pipeline.params import TargetSpec, target_params
from pipeline.release_record import (
    RELEASE_ID,
    ReleaseRecord,
    check_record,
    next_release_id,
    parse_record,
    parse_release_id,
    read_record,
    release_id,
)

__all__ = [
    "RELEASE_ID",
    "ReleaseRecord",
    "TargetSpec",
    "check_record",
    "next_release_id",
    "parse_record",
    "parse_release_id",
    "read_record",
    "release_id",
    "target_params",
]
