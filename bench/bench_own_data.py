"""A user's own 10k-row CSV, from `dvc add` to its first release and its first monitoring
report, command by command (README "Your own data"), against a plain script doing the same
scikit-learn work in the same run: read the CSV, split it, cross-validate and fit every
candidate, score the test split and a later file.

The commands do more than the script (validation, a content-addressed bundle, the gates with
the smoke test in a fresh process, the simulator, monitoring with its HTML report), so the
ratio is the price of everything a release carries; the per-command table shows where it goes.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _project import BIN, ROOT, copy_project, env, run

sys.path.insert(0, str(ROOT))
from scripts import own_data

PLAIN = """
import sys
from pathlib import Path
import yaml
from pipeline import metrics
from pipeline.coercion import coerce
from pipeline.splits import assign_splits
from pipeline.tables import read_table
from pipeline.develop.folds import make_cv
from pipeline.develop.train import fit_candidate
from pipeline.settings import (DatasetSpec, PreprocessingSpec, SelectionSpec, SplitSpec,
    TrainSpec, candidates)
params = yaml.safe_load(open(sys.argv[1]))
dataset = DatasetSpec.from_params(params["dataset"])
split, train_spec = SplitSpec.from_params(params["split"]), TrainSpec.from_params(params)
prep = PreprocessingSpec.from_params(params["preprocessing"])
rule = SelectionSpec.from_params(params["selection"])
text = [c.name for c in dataset.columns if c.type == "category"]
frame = coerce(read_table(Path(sys.argv[2]), "csv", text_columns=text), dataset)
labels = assign_splits(frame, dataset, split)
features = [c.name for c in dataset.features]
train, test = frame[labels == "train"], frame[labels == "test"]
later = coerce(read_table(Path(sys.argv[3]), "csv", text_columns=text), dataset)
for cand in candidates(params):
    model = fit_candidate(cand, train[features], train[dataset.target], dataset=dataset, prep=prep,
        task=params["task"], primary=rule.metric, cv=make_cv(params["task"], split, train_spec),
        train=train_spec).model
    metrics.compute(params["task"], test[dataset.target], model.predict(test[features]),
        model.predict_proba(test[features]), list(model.classes_))
    model.predict_proba(later[features])
"""

RANGES = {"temperature": (-40, 55), "humidity": (0, 100), "wind_kmh": (0, 250)}


def review(declaration: str) -> str:
    """README step 3: widen observed ranges (and the date range) to what is plausible."""
    for column, (low, high) in RANGES.items():
        declaration = re.sub(
            rf"^(    {column}: \{{.*?)min: [^,]+, max: [^,]+,",
            rf"\g<1>min: {low}, max: {high},",
            declaration,
            flags=re.M,
        )
    return re.sub(
        r"(observed_on: \{type: datetime, )min: [^,]+, max: [^,]+,",
        r"\g<1>min: '2000-01-01', max: '2035-12-31',",
        declaration,
    )


def timed(label: str, args: list[str], cwd: Path, table: list[tuple[str, float]]) -> str:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env(), text=True, capture_output=True, check=False)
    table.append((label, time.perf_counter() - start))
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--fast", action="store_true", help="the fast experiment settings")
    args = parser.parse_args()
    mlops, dvc = str(BIN / "mlops"), str(BIN / "dvc")
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "p")
        if args.fast:
            fast = (project / "conf/experiment/fast.yaml").read_text()
            (project / "conf/local/default.yaml").write_text(fast)
        run([mlops, "compose"], project)
        csv = project / "data/external/weather.csv"
        own_data.weather(args.rows, seed=11).to_csv(csv, index=False)
        later = Path(tmp) / "later.csv"
        own_data.weather(args.rows // 5, seed=12, start="2024-01-01").to_csv(later, index=False)
        steps: list[tuple[str, float]] = []
        timed("dvc add data/external/weather.csv", [dvc, "add", str(csv)], project, steps)
        declaration = timed(
            "mlops schema infer",
            [mlops, "schema", "infer", "data/external/weather.csv"],
            project,
            steps,
        )
        (project / "conf/dataset/weather.yaml").write_text(review(declaration))
        timed("mlops select dataset=weather", [mlops, "select", "dataset=weather"], project, steps)
        timed("dvc repro (develop, deploy, monitor)", [dvc, "repro"], project, steps)
        timed("mlops release", [mlops, "release"], project, steps)
        timed("dvc repro (records the release)", [dvc, "repro"], project, steps)
        scored = Path(tmp) / "scored.parquet"
        timed(
            f"mlops predict ({args.rows // 5} later rows)",
            [mlops, "predict", "--target", "batch", "--input", str(later), "--output", str(scored)],
            project,
            steps,
        )
        imported = timed(
            "mlops logs import",
            [mlops, "logs", "import", str(scored), "--time-column", "observed_on"],
            project,
            steps,
        )
        windows = re.findall(r"^  dvc add (\S+)$", imported, re.M)
        timed("dvc add <windows>", [dvc, "add", *windows], project, steps)
        timed("dvc repro (first monitoring report)", [dvc, "repro"], project, steps)
        report = (project / "reports/monitor/report.json").read_text()
        assert '"windows"' in report
        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "python"), "-c", PLAIN, str(project / "params.yaml"), str(csv), str(later)],
            cwd=ROOT,
            env=env(),
            check=True,
        )
        plain = time.perf_counter() - start
    total = sum(t for _, t in steps)
    which = "fast experiment" if args.fast else "default config"
    print(f"{args.rows} rows x 9 columns (weather: nullable categories, a bool, a date), {which}")
    for label, seconds in steps:
        print(f"  {label:<42} {seconds:7.2f} s")
    print(f"  {'total: dvc add -> release -> monitoring report':<42} {total:7.2f} s")
    print(f"plain script, same scikit-learn work (no checks, gates, bundle, report): {plain:.2f} s")
    print(f"ratio commands / plain script: {total / plain:.2f}x")


if __name__ == "__main__":
    main()
