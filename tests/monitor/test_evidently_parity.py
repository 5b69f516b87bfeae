"""Parity with the real Evidently 0.7.23, run in its own virtualenv (skipped when absent).

Evidently is not a dependency: bench/evidently_runner.py runs in the venv named by
$EVIDENTLY_PYTHON or .venv-bench-evidently/ (see bench/README.md), on Parquet files written here,
and every column's method, score (to 1e-9) and verdict must match ours, as must the dataset share.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.monitor.drift import compute_drift
from pipeline.profile.reference import build_reference
from tests.monitor import evidently_procedure as ev
from tests.monitor.conf import drift_settings, override

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "bench" / "evidently_runner.py"


def evidently_python() -> Path | None:
    candidate = Path(os.environ.get("EVIDENTLY_PYTHON", ROOT / ".venv-bench-evidently/bin/python"))
    return candidate if candidate.is_file() else None


pytestmark = pytest.mark.skipif(evidently_python() is None, reason="no Evidently venv")


def _frames(rng: np.random.Generator, n_ref: int, n_cur: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A column zoo: continuous, heavy-tailed, integer, low-cardinality, constant, categorical."""

    def side(n: int, shift: float) -> pd.DataFrame:
        x = rng.normal(shift, 1, n)
        x[rng.random(n) < 0.05] = np.nan
        x[rng.random(n) < 0.01] = np.inf
        return pd.DataFrame(
            {
                "normal": x,
                "cauchy": rng.standard_cauchy(n) + shift,
                "ints": rng.integers(0, 25 + int(shift * 10), n),
                "low": rng.integers(0, 4 if shift == 0 else 5, n).astype(float),
                "two": rng.integers(0, 2, n).astype(float),
                "const": np.full(n, 3.0),
                "cat": rng.choice(np.array(["a", "b", "c", "d" if shift else "a"]), n),
                "binary": rng.choice(
                    np.array(["yes", "no"]), n, p=[0.5 + shift / 4, 0.5 - shift / 4]
                ),
            }
        )

    return side(n_ref, 0.0), side(n_cur, 0.3)


NUMERIC = ["normal", "cauchy", "ints", "low", "two", "const"]
CATEGORICAL = ["cat", "binary"]


def _cases(tmp: Path) -> list[dict]:
    rng = np.random.default_rng(7)
    cases = []
    sizes = {"big": (3000, 2000), "at_1000": (1000, 800), "at_1001": (1001, 700), "tiny": (25, 22)}
    for label, (n_ref, n_cur) in sizes.items():
        ref, cur = _frames(rng, n_ref, n_cur)
        if label == "at_1000":  # the boundary counts non-null values: keep them all non-null
            ref["normal"] = rng.normal(0, 1, n_ref)
        cases.append(_case(tmp, label, ref, cur, None))
        if label in ("big", "tiny"):
            for method in ev.NUMERIC_METHODS:
                # Evidently's whole report fails on a constant column with these two tests
                skip = {"const"} if label == "tiny" or method == "anderson" else set()
                cols = [c for c in NUMERIC if c not in skip]
                cases.append(
                    _case(tmp, f"{label}-num-{method}", ref, cur, {c: method for c in cols})
                )
            for method in ev.CATEGORICAL_METHODS:
                if method == "TVD" and label == "tiny":
                    continue  # TVD depends on the reference row order: see tvd-sorted-reference
                cases.append(
                    _case(tmp, f"{label}-cat-{method}", ref, cur, {c: method for c in CATEGORICAL})
                )
    for n_ref, n_cur in ((3, 2), (12, 9)):  # tiny samples, exact small-sample p-values
        ref, cur = _frames(rng, n_ref, n_cur)
        ref, cur = ref.fillna(0.5).replace(np.inf, 2.5), cur.fillna(0.5).replace(np.inf, 2.5)
        cases.append(_case(tmp, f"micro{n_ref}", ref, cur, None))
        for method in ("ks", "wasserstein", "ed", "psi", "kl_div", "jensenshannon", "mannw"):
            cases.append(
                _case(tmp, f"micro{n_ref}-num-{method}", ref, cur, {c: method for c in NUMERIC})
            )
        for method in ("chisquare", "z", "psi", "jensenshannon", "hellinger"):
            cases.append(
                _case(tmp, f"micro{n_ref}-cat-{method}", ref, cur, {c: method for c in CATEGORICAL})
            )
    ref = pd.DataFrame({"cat": np.sort(rng.choice(["a", "b", "c"], 300)), "normal": 1.0})
    cur = pd.DataFrame({"cat": rng.choice(["a", "b", "c"], 200, p=[0.4, 0.3, 0.3]), "normal": 1.0})
    cases.append(_case(tmp, "tvd-sorted-reference", ref, cur, {"cat": "TVD"}))
    return cases


def _case(tmp: Path, name: str, ref: pd.DataFrame, cur: pd.DataFrame, methods) -> dict:
    ref_path, cur_path = tmp / f"{name}-ref.parquet", tmp / f"{name}-cur.parquet"
    ref.to_parquet(ref_path)
    cur.to_parquet(cur_path)
    numeric = [c for c in NUMERIC if c in ref and (methods is None or c in methods)]
    categorical = [c for c in CATEGORICAL if c in ref and (methods is None or c in methods)]
    return {
        "name": name,
        "reference": str(ref_path),
        "current": str(cur_path),
        "numeric": numeric,
        "categorical": categorical,
        "per_column_method": methods,
        "frames": (ref, cur),
    }


def _ours(case: dict):
    ref, cur = case["frames"]
    kinds = {c: "numeric" for c in case["numeric"]} | {
        c: "categorical" for c in case["categorical"]
    }
    reference = build_reference(ref, kinds)
    overrides = {c: override(method=m) for c, m in (case["per_column_method"] or {}).items()}
    return compute_drift(reference, cur[list(kinds)], drift_settings(columns=overrides))


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.slow
def test_every_method_matches_evidently(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    spec = tmp_path / "spec.json"
    out = tmp_path / "out.json"
    spec.write_text(
        json.dumps({"cases": [{k: v for k, v in c.items() if k != "frames"} for c in cases]})
    )
    python = evidently_python()
    subprocess.run(
        [str(python), str(RUNNER), str(spec), str(out)],
        check=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        stdout=sys.stderr,
    )
    theirs = json.loads(out.read_text())
    mismatches, compared = [], 0
    for case in cases:
        evid = theirs[case["name"]]
        if "error" in evid:
            mismatches.append((case["name"], "evidently failed", evid["error"]))
            continue
        report = _ours(case)
        for col in report.columns:
            e = evid["columns"][col.column]
            compared += 1
            same = (
                col.method == e["method"]
                and _close(col.statistic, e["score"])
                and col.drifted == e["drifted"]
            )
            if not same:
                mismatches.append(
                    (case["name"], col.column, col.method, col.statistic, col.drifted, e)
                )
        if not _close(report.share, evid["share"]):
            mismatches.append((case["name"], "share", report.share, evid["share"]))
    assert compared > 150
    assert not mismatches, "\n".join(map(str, mismatches))
