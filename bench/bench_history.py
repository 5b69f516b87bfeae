"""Cost against history: the default project with N production windows of about 100 rows.

For each N (`--sizes`, default 10 100 1000 10000) the same scratch project (reproduced once)
grows to N windows, sealed and tracked as `mlops windows seal --apply` leaves them (one DVC output
a month; closed days and months packed, pipeline/windows.py), then measures, `--repeat` times
each (median):

* add one window (the newest hour), `dvc add` its month, `dvc repro`: the scheduled run's cost;
* `dvc repro -s -f monitor` and `dvc repro -s -f maintain`: each stage forced on its own;
* a no-op `dvc repro` and `dvc status`: what every pull request and every CI job pays.

Goals (issue 16): add-one-window at most 1.5x from N=10 to N=10,000; no-op `dvc repro` and
`dvc status` within 0.3 s of their N=10 figure. Windows are rows of the production pool scored
by the champion (the `simulate` stage's clean scenario), resampled with a fixed seed into
hourly windows of `--rows` rows, and written straight into their sealed layout (packs and the
newest day loose) with one `dvc add` for all months: building 10,000 windows takes a minute,
not the hours of 10,000 `mlops logs import` calls. `--layout loose` keeps every window loose in
its month (no packs) to show what packing buys.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _project import BIN, ROOT, copy_project, median, run

sys.path.insert(0, str(ROOT))

from pipeline.windows import (
    LABEL,
    REQUEST_ID,
    TIME,
    container_of,
    encode_window,
    list_windows,
    partition_of,
    write_pack,
)

KEYS = ("add", "monitor", "maintain", "noop", "status")
LABELS = {
    "add": "add one window + repro",
    "monitor": "monitor forced",
    "maintain": "maintain forced",
    "noop": "no-op repro",
    "status": "status",
}
START = pd.Timestamp("2025-01-01T00:00:00Z")
PROD = Path("data/production")


def pool(project: Path) -> pd.DataFrame:
    """Scored rows of the production pool: the simulator's clean scenario, as monitoring sees
    production traffic (features, prediction, label)."""
    simulated = project / "data/simulated"
    clean = {
        wid
        for wid, about in json.loads((simulated / "scenarios.json").read_text())["windows"].items()
        if about["scenario"] == "clean"
    }
    frames = [w.read() for w in list_windows(simulated, also=("scenarios.json",)) if w.id in clean]
    rows = pd.concat(frames, ignore_index=True)
    return rows.drop(columns=[c for c in rows.columns if c == REQUEST_ID])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system of the command's processes): on a shared machine
    the CPU time is the steadier figure."""
    before = children_cpu()
    wall = run(args, cwd)
    return wall, children_cpu() - before


def make_window(rows: pd.DataFrame, hour: int, size: int) -> tuple[str, bytes]:
    rng = np.random.default_rng(hour)
    frame = rows.iloc[rng.integers(0, len(rows), size)].reset_index(drop=True)
    frame[TIME] = START + pd.Timedelta(hours=hour) + pd.to_timedelta(np.arange(size), unit="s")
    frame[REQUEST_ID] = [f"h{hour}-{i}" for i in range(size)]
    frame[LABEL] = frame[LABEL].astype(object)
    return encode_window(frame)


def grow(project: Path, rows: pd.DataFrame, start: int, stop: int, size: int, layout: str):
    """Write windows `start..stop-1` (hours) and lay the whole folder out sealed (or loose);
    returns the number of DVC-visible files."""
    prod = project / PROD
    existing = {w.id: w for w in list_windows(prod)}
    data = {wid: w.data() for wid, w in existing.items()}
    for hour in range(start, stop):
        wid, blob = make_window(rows, hour, size)
        data[wid] = blob
    newest = max(data)
    containers: dict[tuple[str, str | None], list[str]] = {}
    for wid in data:
        where = container_of(wid, newest) if layout == "sealed" else None
        containers.setdefault((partition_of(wid), where), []).append(wid)
    for folder in prod.iterdir():  # rewrite every month from scratch
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink()
    files = 0
    for (month, pack), ids in containers.items():
        folder = prod / month
        folder.mkdir(exist_ok=True)
        if pack is None:
            for wid in ids:
                (folder / f"{wid}.parquet").write_bytes(data[wid])
            files += len(ids)
        else:
            write_pack(folder / pack, {f"{wid}.parquet": data[wid] for wid in ids})
            files += 1
    months = sorted(str(p.relative_to(project)) for p in prod.iterdir() if p.is_dir())
    run([str(BIN / "dvc"), "add", "--quiet", *months], project)
    return files


def add_one(project: Path, rows: pd.DataFrame, hour: int, size: int) -> tuple[float, float]:
    wid, blob = make_window(rows, hour, size)
    path = project / PROD / partition_of(wid) / f"{wid}.parquet"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(blob)
    add = timed(
        [str(BIN / "dvc"), "add", "--quiet", str(path.parent.relative_to(project))], project
    )
    repro = timed([str(BIN / "dvc"), "repro"], project)
    return add[0] + repro[0], add[1] + repro[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100, help="rows per window (default 100)")
    parser.add_argument("--layout", choices=["sealed", "loose"], default="sealed")
    args = parser.parse_args()
    dvc = str(BIN / "dvc")
    results: dict[int, dict[str, float]] = {}
    cpu_results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "p")
        print("reproducing the default project once ...", flush=True)
        run([str(BIN / "mlops"), "compose"], project)
        run([dvc, "repro"], project)
        rows = pool(project)
        hours = 0
        for n in sorted(args.sizes):
            started = time.perf_counter()
            files = grow(project, rows, hours, n, args.rows, args.layout)
            hours = n
            run([dvc, "repro"], project)  # monitor and maintain catch up with the history
            run(["git", "add", "-A"], project)
            run(
                ["git", "-c", "user.name=b", "-c", "user.email=b@e", "commit", "-qm", f"{n}"],
                project,
            )
            built = time.perf_counter() - started
            walls: dict[str, list[float]] = {k: [] for k in KEYS}
            cpus: dict[str, list[float]] = {k: [] for k in KEYS}
            for _ in range(args.repeat):  # interleaved
                for key, cmd in (
                    ("noop", [dvc, "repro"]),
                    ("status", [dvc, "status"]),
                    ("monitor", [dvc, "repro", "-s", "-f", "monitor"]),
                    ("maintain", [dvc, "repro", "-s", "-f", "maintain"]),
                ):
                    wall, cpu = timed(cmd, project)
                    walls[key].append(wall)
                    cpus[key].append(cpu)
                wall, cpu = add_one(project, rows, hours, args.rows)
                walls["add"].append(wall)
                cpus["add"].append(cpu)
                hours += 1
            results[n] = {k: median(v) for k, v in walls.items()}
            cpu_results[n] = {k: median(v) for k, v in cpus.items()}
            r, c = results[n], cpu_results[n]
            print(
                f"N={n:>6} ({files} files DVC sees, built in {built:.0f} s), wall (cpu) s: "
                + " | ".join(f"{LABELS[k]} {r[k]:.2f} ({c[k]:.2f})" for k in KEYS),
                flush=True,
            )
    lo, hi = min(results), max(results)
    if lo != hi:
        print(f"N={hi} vs N={lo} ({args.layout}, median of {args.repeat}), wall (cpu):")
        for key in KEYS:
            a, b, ca, cb = (
                results[lo][key],
                results[hi][key],
                cpu_results[lo][key],
                cpu_results[hi][key],
            )
            goal = {"add": " (goal <= 1.5x)", "noop": " (goal within 0.3 s)"}.get(key, "")
            goal = " (goal within 0.3 s)" if key == "status" else goal
            print(
                f"  {LABELS[key]}: {b / a:.2f}x, {b - a:+.2f} s ({cb / ca:.2f}x, {cb - ca:+.2f} s)"
                + goal
            )


if __name__ == "__main__":
    main()
