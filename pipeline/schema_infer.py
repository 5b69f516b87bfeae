"""`mlops schema infer PATH`: a starting conf/dataset/ file for a user's CSV or Parquet file.

The inference itself lives in `pipeline.data.infer_schema`; this module renders it as a YAML file
with a comment on every column whose declaration was a guess, so the user knows what to review.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.data import infer_schema, read_table
from pipeline.errors import DataError


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def render_dataset_yaml(path: Path, name: str | None = None) -> str:
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("csv", "parquet"):
        raise DataError(f"{path}: expected a .csv or .parquet file")
    frame = read_table(path, fmt)
    name = name or re.sub(r"[^0-9a-z]+", "_", path.stem.lower()).strip("_") or "dataset"
    if not re.match(r"^[a-z]", name):
        name = f"data_{name}"
    shown = path.as_posix()
    source = {"kind": "file", "path": shown, "format": fmt}
    inferred = infer_schema(frame, name, source)
    ds, notes = inferred["dataset"], inferred["_notes"]
    lines = [
        "# @package _global_",
        f"# Inferred by `mlops schema infer {shown}` from {len(frame)} rows: a starting point.",
        "# Review every column: widen observed ranges to what is plausible, close or open the",
        "# category lists, and check the guessed target, task and key. Then select it with",
        f"# `mlops compose dataset={name}` (or in conf/config.yaml's defaults list).",
    ]
    if not shown.startswith("data/external/"):
        lines.append(
            "# NOTE: move the file under data/external/ (and `dvc add` it): the ingest "
            "stage reads only there."
        )
    lines += [
        "defaults:",
        f"  - override /task: {inferred['task']}   # guessed from the target's type",
        "",
        "dataset:",
        f"  name: {name}",
        f"  description: {_flow(ds['description'])}",
        "  source:",
        "    kind: file",
        f"    path: {_flow(shown)}",
        f"    format: {fmt}",
        f"  target: {_flow(ds['target'])}   # guessed: the column to predict",
        f"  key: {_flow(ds['key'])}   # unique row id for stable splits (null: hash whole rows)",
        "  missing_target: drop        # drop rows without a target (counted) | refuse",
        "  extra_columns: refuse       # undeclared columns in the data: refuse | drop",
        "  columns:",
    ]
    for col, spec in ds["columns"].items():
        note = notes.get(col)
        lines.append(f"    {_flow(col)}: {_flow(spec)}" + (f"   # {note}" if note else ""))
    return "\n".join(lines) + "\n"
