"""README "Your own data", end to end, on tables this project was not designed around, starting
from a project whose demo model is released (as after `make run`), with documented commands
only: add the file, infer its declaration, review it as the README says, select it, reproduce,
release, serve a row with nulls, score a later file, bring it in as production traffic,
monitor, decide, apply the retrain, gate and release the retrained model.

The default suite runs the nullable-categorical multiclass table up to its release, served and
scored; the slow test runs the whole flow, maintenance included, on all three tables one after
the other in one project (each a new line of releases on top of the previous one): a regression
with missing targets, a name column and a year, and a daily series split by time, monitored on
a later year given as a file. In that series promotions begin with the test quarter, so the
retrain on the later year's labels must beat the first model on the test split by a margin the
gate can see (a retrain of an unchanged series is only about as good as its incumbent, and the
gate rightly refuses to call a coin flip).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from scripts import own_data
from tests.conftest import BIN, copy_built, dvc, env, mlops, sh
from tests.deploy import conftest as deploy_fixtures
from tests.deploy.serving import free_port, http_get, http_post

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    target: str
    table: Callable[[], pd.DataFrame]  # the file the user adds
    later: Callable[[], pd.DataFrame]  # labelled traffic of a later period, scored later
    time_column: str  # the later file's time column, for `mlops logs import`
    ranges: dict[str, tuple[Any, Any]]  # README step 3: widened to what is plausible
    split: dict[str, str] = field(default_factory=dict)  # a time split, declared in the file
    served: dict[str, Any] = field(default_factory=dict)  # a request with nulls


WEATHER = Case(
    "weather",
    "classification",
    "weather",
    own_data.weather,
    lambda: own_data.weather(700, seed=5, start="2024-01-01"),
    "observed_on",
    {
        "temperature": (-40, 55),
        "humidity": (0, 100),
        "wind_kmh": (0, 250),
        "observed_on": ("2000-01-01", "2035-12-31"),
    },
    served={
        "obs_id": "W-new-1",  # a declared id: accepted and logged, not scored
        "station": None,
        "cloud_cover": None,
        "temperature": None,
        "humidity": 81.5,
        "wind_kmh": None,
        "rain_yesterday": None,
        "observed_on": "2024-02-01",
    },
)
HOUSES = Case(
    "houses",
    "regression",
    "price",
    own_data.houses,
    lambda: own_data.houses(600, seed=6).assign(sold_on="2024-06-01"),
    "sold_on",
    {
        "area_m2": (5, 2000),
        "year_built": (1700, 2030),
        "sold_on": ("2000-01-01", "2035-12-31"),
        "price": (1000, 10_000_000),
    },
    served={
        "neighbourhood": None,
        "rooms": 3,
        "area_m2": None,
        "year_built": 1990,
        "sold_on": "2024-05-01",
    },
)
FOOTFALL = Case(
    "footfall",
    "regression",
    "visitors",
    own_data.footfall,
    lambda: own_data.footfall("2024-01-01", "2024-12-31", seed=4),
    "day",
    {"temp_c": (-40, 50), "visitors": (0, 100_000), "day": ("2015-01-01", "2035-12-31")},
    split={"time_column": "day", "test_from": "2023-07-01", "pool_from": "2023-10-01"},
    served={"day": "2024-03-01", "store": "mall", "promo": "yes", "holiday": 0, "temp_c": None},
)


def review(declaration: str, case: Case) -> str:
    """README step 3, as a person does it: widen the observed ranges to what is plausible
    (values outside the declared range are data errors) and, for a time-ordered table, declare
    the time split in the same file."""
    for column, (low, high) in case.ranges.items():
        pattern = re.compile(rf"^(    {column}: \{{.*?)min: [^,]+, max: [^,]+,", re.M)
        declaration, found = pattern.subn(
            rf"\g<1>min: {_yaml(low)}, max: {_yaml(high)},", declaration
        )
        assert found == 1, f"{column} has no observed range in:\n{declaration}"
    if case.split:
        split = "\n".join(f"  {k}: {_yaml(v)}" for k, v in case.split.items())
        declaration = declaration.replace(
            "defaults:\n", "defaults:\n  - override /split: time\n", 1
        ).replace("\ndataset:\n", f"\nsplit:\n{split}\n\ndataset:\n", 1)
    return declaration


def _yaml(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else str(value)


def released(project: Path, target: str = "local") -> str | None:
    return json.loads((project / f"deploy/{target}.json").read_text())["release"]


def commit(project: Path, message: str) -> None:
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-qm", message], project)


def serve_one(project: Path, record: dict[str, Any]) -> dict[str, Any]:
    """`mlops serve --target local` on 127.0.0.1 and an ephemeral port; one prediction."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "mlops"), "serve", "--target", "local", "--port", str(port)],
        cwd=project,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if http_get(f"{url}/health", timeout=1).json()["status"] == "ok":
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                proc.stdout.read() if proc.stdout else "the service did not start"
            )
            time.sleep(0.2)
        response = http_post(f"{url}/predict", params={"proba": "true"}, json=record, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def own_data_flow(project: Path, case: Case, tmp_path: Path) -> None:
    """The README's steps for `case`, asserting what each step promises."""
    first, scored = release_own_data(project, case, tmp_path)
    maintain_own_data(project, case, first, scored)


def release_own_data(project: Path, case: Case, tmp_path: Path) -> tuple[str, Path]:
    """README steps 1-4 for `case`, then release it, serve a row with nulls and score a later
    file in batch: the release and the scored file."""
    before = released(project)
    assert before is not None  # a release of another dataset is live
    # 1-2. add the file, infer a declaration
    case.table().to_csv(project / f"data/external/{case.name}.csv", index=False)
    dvc("add", f"data/external/{case.name}.csv", cwd=project)
    declaration = mlops("schema", "infer", f"data/external/{case.name}.csv", cwd=project).stdout
    assert f"target: {case.target}   # guessed" in declaration
    assert f"override /task: {case.task}" in declaration
    # 3. review it, 4. select it
    (project / f"conf/dataset/{case.name}.yaml").write_text(review(declaration, case))
    mlops("select", f"dataset={case.name}", cwd=project)
    dvc("repro", cwd=project)
    gate = json.loads((project / "reports/deploy/local.json").read_text())
    assert gate["decision"] == "propose", gate["reasons"]
    assert gate["gates"]["compare"]["comparable"] is False  # a new line, said so
    assert gate["gates"]["smoke"]["passed"]
    mlops("release", cwd=project)
    dvc("repro", cwd=project)
    first = released(project)
    assert first not in (None, before)
    commit(project, f"{case.name}: select, reproduce, release")

    # serve a row with nulls
    answer = serve_one(project, case.served)
    assert answer["release"] == first and len(answer["predictions"]) == 1

    # score a later file in batch
    later, rows = tmp_path / f"{case.name}-later.csv", case.later()
    rows.to_csv(later, index=False)
    scored = tmp_path / f"{case.name}-scored.parquet"
    mlops(
        "predict", "--target", "batch", "--input", str(later), "--output", str(scored), cwd=project
    )
    assert first is not None and len(pd.read_parquet(scored)) == len(rows)
    return first, scored


def maintain_own_data(project: Path, case: Case, first: str, scored: Path) -> None:
    """Bring the scored later file in as production traffic, monitor, decide, apply the
    retrain, gate and release the retrained model."""
    imported = mlops(
        "logs", "import", str(scored), "--time-column", case.time_column, "--release", str(first),
        cwd=project,
    ).stdout  # fmt: skip
    (months,) = re.findall(r"^  dvc add (data/production/\d{4}-\d{2}.*)$", imported, re.M)
    dvc("add", *months.split(), cwd=project)  # each month folder with new windows
    commit(project, f"{case.name}: production traffic of a later period")
    dvc("repro", cwd=project)
    report = json.loads((project / "reports/monitor/report.json").read_text())
    assert first in json.dumps(report["monitored"])  # names what it judged
    statuses = {w["status"] for w in report["windows"] if not w["other_line"]}
    assert statuses & {"ok", "breach"}, statuses  # this line's traffic was judged

    # decide, apply, gate and release the retrained model
    decision = mlops("maintain", cwd=project).stdout
    assert decision.startswith("retrain"), decision
    applied = mlops("maintain", "--apply", cwd=project).stdout
    assert f"data/feedback/{case.name}/" in applied, applied
    gate = json.loads((project / "reports/deploy/local.json").read_text())
    assert gate["decision"] == "propose", gate["reasons"]
    assert gate["gates"]["compare"]["comparable"] is True
    assert gate["gates"]["compare"]["passed"]
    mlops("release", cwd=project)
    assert released(project) not in (None, first)
    commit(project, f"{case.name}: retrained on its production labels, released")
    mlops("compose", "--check", cwd=project)


history = deploy_fixtures.history  # the session's release history, built once for all workers


@pytest.fixture
def released_demo(history: Path, tmp_path: Path) -> Path:
    """A project whose demo model is released and committed (as after `make run`): a copy of the
    session's shared release history, whose HEAD releases the template's champion."""
    return copy_built(history, tmp_path / "project")


@pytest.mark.long(60)  # seconds on CI: handed out early
def test_nullable_categories_from_a_csv_to_a_release_that_serves_and_scores(
    released_demo: Path, tmp_path: Path
) -> None:
    """The default suite's share: from the file to a new line's release, served with nulls and
    scored in batch. Its maintenance (import, monitor, retrain, gate, release: two more
    reproductions, one of them training) runs in the slow test below, which starts with this
    same table."""
    release_own_data(released_demo, WEATHER, tmp_path)


@pytest.mark.slow
def test_three_tables_one_after_another(released_demo: Path, tmp_path: Path) -> None:
    for case in (WEATHER, HOUSES, FOOTFALL):
        own_data_flow(released_demo, case, tmp_path)
