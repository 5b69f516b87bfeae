"""`mlops summary`: the few lines `make run` ends with: champion, test metrics, artifact paths."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import ArtifactError


def render_summary(root: Path) -> str:
    selection_path = root / "reports/develop/selection.json"
    champion_path = root / "models/champion/champion.json"
    try:
        selection = json.loads(selection_path.read_text(encoding="utf-8"))
        champion = json.loads(champion_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"{exc.filename} is missing", hint="run `make run` (or `dvc repro`)"
        ) from exc
    rule = selection["rule"]
    lines = [
        f"champion: {champion['name']} ({champion['estimator']}), task {champion['task']}",
        f"  why: {selection['reason']}",
        "  test metrics: "
        + ", ".join(f"{k} {v:.4f}" for k, v in champion["metrics"]["test"].items()),
        f"  candidates ({rule['metric']} on {rule['scored_on']}): "
        + ", ".join(
            f"{n} {c['scores'][rule['scored_on']].get(rule['metric'], float('nan')):.4f}"
            + ("" if c["eligible"] else " (ineligible)")
            for n, c in selection["candidates"].items()
        ),
        "artifacts:",
        "  models/champion/model.skops        the champion (skops; sha256 in champion.json)",
        "  reports/develop/selection.json     every candidate's scores and the reason",
        "  reports/develop/model_card.md      model card",
        "  reports/develop/metrics.json       `dvc metrics show` / `dvc metrics diff`",
        "  reports/develop/plots/             `dvc plots show`",
    ]
    return "\n".join(lines)
