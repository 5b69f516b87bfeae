"""Your own production data, end to end, in a reproduced project: a CSV of later traffic scored
with `mlops predict`, imported with `mlops logs import`, tracked with the printed `dvc add`,
monitored by `dvc repro monitor`; `mlops predict`'s output judged as it is by
`mlops monitor --input`; a stray file under data/production/ stops the stage, named."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import digests, dvc, mlops

pytestmark = pytest.mark.integration


def later_traffic(project: Path, path: Path) -> pd.DataFrame:
    """The production pool as a team's export: an event time, the outcome, a request id."""
    pool = pd.read_parquet(project / "data/prepared/pool.parquet")
    frame = pool.drop(columns=["target"]).copy()
    frame.insert(0, "req", [f"{i:04d}" for i in range(len(frame))])
    start = pd.Timestamp("2026-05-01T08:00:00Z")
    frame["event_time"] = [(start + pd.Timedelta(minutes=i)).isoformat() for i in range(len(pool))]
    frame["actual"] = pool["target"].to_numpy()
    frame.loc[::3, "actual"] = None  # labels arrive for two rows in three
    frame.to_csv(path, index=False)
    return frame


@pytest.mark.slow  # test_own_data_end_to_end.py imports and monitors a file by default
def test_imported_csv_traffic_is_monitored(project: Path, tmp_path: Path) -> None:
    traffic = later_traffic(project, tmp_path / "traffic.csv")
    scored = tmp_path / "scored.parquet"
    mlops(
        "predict",
        "--bundle",
        "models/bundle",
        "--input",
        str(tmp_path / "traffic.csv"),
        "--output",
        str(scored),
        cwd=project,
    )
    args = ("--time-column", "event_time", "--label-column", "actual", "--id-column", "req")
    out = mlops("logs", "import", str(scored), *args, cwd=project).stdout
    (wrote,) = re.findall(r"^wrote (data/production/\S+\.parquet): (\d+) row\(s\)", out, re.M)
    assert int(wrote[1]) == len(traffic)
    labelled = int(traffic["actual"].notna().sum())
    assert f"{labelled} labelled" in out
    (add,) = [line.strip() for line in out.splitlines() if line.strip().startswith("dvc add ")]
    month = str(Path(wrote[0]).parent)  # the window's month folder, one DVC output
    assert add == f"dvc add {month}" and month == "data/production/2026-05"

    # importing the same file again writes nothing
    before = digests(project, ("data/**/*",))
    again = mlops("logs", "import", str(scored), *args, cwd=project).stdout
    assert "already imported (nothing written)" in again and "dvc add" not in again
    assert digests(project, ("data/**/*",)) == before

    dvc(*shlex.split(add)[1:], cwd=project)
    assert (project / f"{month}.dvc").is_file()
    dvc("repro", "monitor", cwd=project)
    report = json.loads((project / "reports/monitor/report.json").read_text())
    production = [w for w in report["windows"] if w["source"] == "production"]
    assert sum(w["rows"] for w in production) == len(traffic)
    assert sum(w["labelled"] for w in production) == labelled
    assert production[0]["start"].startswith("2026-05-01T08:00:00")


def test_predict_output_is_monitored_as_it_is(project: Path, tmp_path: Path) -> None:
    test = pd.read_parquet(project / "data/prepared/test.parquet")
    test.to_csv(tmp_path / "test.csv", index=False)
    scored = tmp_path / "scored.parquet"
    mlops(
        "predict",
        "--bundle",
        "models/bundle",
        "--input",
        str(tmp_path / "test.csv"),
        "--output",
        str(scored),
        cwd=project,
    )
    proc = mlops("monitor", "--input", str(scored), cwd=project)
    assert "labels read from the target column 'target'" in proc.stdout
    assert "no time column; rows kept in file order" in proc.stdout
    report = json.loads((project / "reports/monitor-manual/report.json").read_text())
    assert sum(w["rows"] for w in report["windows"]) == len(test)
    assert sum(w["labelled"] for w in report["windows"]) == len(test)
    # stored windows need a time: the import says how to give one
    refused = mlops("logs", "import", str(scored), cwd=project, check=False)
    assert refused.returncode == 2 and "no time column" in refused.stderr
    assert "--time" in refused.stderr and "Traceback" not in refused.stderr
    dated = mlops("logs", "import", str(scored), "--time", "2026-05-02", cwd=project).stdout
    wrote_dated = r"^wrote data/production/2026-05/20260502T000000-[0-9a-f]{12}\.parquet"
    assert re.search(wrote_dated, dated, re.M)


def test_a_stray_csv_in_production_stops_the_monitor_stage(project: Path, tmp_path: Path) -> None:
    later_traffic(project, project / "data/production/traffic.csv")
    proc = dvc("repro", "monitor", cwd=project, check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "not production windows: traffic.csv" in output
    assert "mlops logs import data/production/traffic.csv" in output
    # an unscored file is refused with the command that scores it
    out = mlops(
        "logs",
        "import",
        "data/production/traffic.csv",
        "--time-column",
        "event_time",
        "--label-column",
        "actual",
        "--id-column",
        "req",
        cwd=project,
        check=False,
    )
    assert out.returncode == 2 and "no prediction column" in out.stderr
    assert "mlops predict --input data/production/traffic.csv" in out.stderr
    assert not list((project / "data/production").glob("*.parquet"))
