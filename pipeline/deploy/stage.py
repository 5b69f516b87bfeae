"""Stage `deploy@<target>`: `python -m pipeline.deploy.stage TARGET` judges the candidate for
one target by the gates of `pipeline.deploy.gate` and writes `reports/deploy/TARGET.json`.

The gates (and what the report holds) are documented and owned by `pipeline.deploy.gate`; this
module is only the stage's entry point, named by the rule every DVC stage follows (stage S of
phase P runs `pipeline.P.S`; a stage named after its phase runs `pipeline.P.stage`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import load_config
from pipeline.deploy.gate import BLOCKED, decide
from pipeline.errors import MlopsError
from pipeline.io import write_json
from pipeline.paths import report_path
from pipeline.stage import log, run


def main(argv: Sequence[str]) -> None:
    if len(argv) != 1:
        raise MlopsError("usage: python -m pipeline.deploy.stage TARGET")
    target = argv[0]
    spec = load_config(hyperparameters=False).deploy.target(target)
    report = decide(target, spec)
    write_json(report_path(target), report)
    detail = "; ".join(report["reasons"]) if report["decision"] == BLOCKED else ""
    proposal = report.get("proposal") or {}
    log(
        f"deploy@{target}: {report['decision']}"
        + (f" {proposal['release']}" if proposal else "")
        + (f" — {detail}" if detail else "")
    )


if __name__ == "__main__":
    run(main)
