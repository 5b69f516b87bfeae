"""Where maintenance reads and writes (the contract with dvc.yaml and the apply command)."""

from __future__ import annotations

from pathlib import Path

HISTORY = Path("reports/monitor/history.csv")  # monitor's per-window history (input)
MONITOR_REPORT = Path("reports/monitor/report.json")  # why windows were not judged (input)
LEDGER = Path("maintain/ledger.json")  # applied decisions (committed; input of the stage)
DECISION = Path("reports/maintain/decision.json")  # the stage's output
