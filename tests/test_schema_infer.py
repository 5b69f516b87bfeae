"""`mlops schema infer`: guesses with reasons on messy generated files, and declarations that
compose, validate and accept the very file they were inferred from."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import choices, cli
from pipeline.data_checks import check_data
from pipeline.errors import DataError
from pipeline.schema_infer import infer, render_dataset_yaml, words
from pipeline.settings import DatasetSpec
from scripts.make_churn_example import make
from tests.conftest import copy_project


def autos(n: int = 406, seed: int = 0) -> pd.DataFrame:
    """Shaped like the UCI auto-mpg file: the target (mpg) first with missing values, a
    two-digit `model year`, horsepower with '?' for missing, and a `car name` column with 311
    distinct values in 406 rows."""
    rng = np.random.default_rng(seed)
    cylinders = rng.choice([4, 6, 8], n, p=[0.5, 0.25, 0.25])
    weight = np.round(1500 + 400 * cylinders + rng.normal(0, 300, n)).astype(int)
    horsepower = np.round(40 + 15 * cylinders + rng.normal(0, 10, n))
    year = rng.integers(70, 83, n)
    mpg = np.round(62 - weight / 100 + (year - 70) * 0.8 + rng.normal(0, 2, n), 1)
    makes = [f"{m} {k}" for m in ("ford", "chevy", "dodge", "toyota", "vw") for k in range(70)]
    distinct = makes[:311]
    names = np.array(distinct + list(rng.choice(distinct, n - 311)), dtype=object)
    rng.shuffle(names)
    frame = pd.DataFrame(
        {
            "mpg": mpg,
            "cylinders": cylinders,
            "displacement": np.round(cylinders * 40 + rng.normal(0, 15, n), 1),
            "horsepower": horsepower.astype(object),
            "weight": weight,
            "acceleration": np.round(rng.normal(15, 2.5, n), 1),
            "model year": year,
            "origin": rng.choice([1, 2, 3], n),
            "car name": names,
        }
    )
    frame.loc[rng.choice(n, 8, replace=False), "mpg"] = np.nan
    frame.loc[rng.choice(n, 6, replace=False), "horsepower"] = "?"
    return frame


def homes(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """A numeric target named `price`, not last; string ids; ISO dates; a calendar year;
    agents' names (near-unique); a constant and an empty column."""
    rng = np.random.default_rng(seed)
    rooms = rng.integers(1, 7, n)
    area = np.round(rooms * 25 + rng.normal(0, 10, n), 1)
    agents = [f"Agent {chr(65 + i % 26)}{i}" for i in range(260)]
    return pd.DataFrame(
        {
            "listing": [f"H{i:05d}" for i in rng.permutation(n)],
            "listed_on": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D"),
            "price": np.round(area * 3000 + rng.normal(0, 20000, n), 2),
            "city": rng.choice(["north", "south", "east"], n),
            "rooms": rooms,
            "area": area,
            "built_year": rng.integers(1950, 2021, n),
            "agent_name": list(agents) + list(rng.choice(agents, n - len(agents))),
            "country": ["NL"] * n,
            "notes": [None] * n,
            "renovated": rng.random(n) < 0.3,
        }
    ).astype({"listed_on": str})


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def test_words_split_names_the_way_people_write_them() -> None:
    assert words("SalePrice") == ["sale", "price"]
    assert words("customer_id") == ["customer", "id"]
    assert words("model year") == ["model", "year"]
    assert words("HTTPStatus2xx") == ["httpstatus2xx"]


def test_a_messy_file_gets_the_right_target_ids_years_and_missing_markers(tmp_path: Path) -> None:
    inferred = infer(_read(autos(), tmp_path))
    cols = {g.name: g for g in inferred.columns}
    assert inferred.target == "mpg" and inferred.task == "regression"
    assert inferred.ranking[0].name == "mpg"
    assert "first column" in inferred.ranking[0].reasons
    name = cols["car name"]
    assert name.spec == {"type": "category", "role": "id", "nullable": False}
    assert "311 distinct values in 406 rows (77%): names or free text" in name.note
    assert "not the key: values repeat" in name.note
    year = cols["model year"]
    assert year.spec == {"type": "int", "min": 70, "max": 82, "nullable": False}
    assert "looks like two-digit years (70-82)" in year.note
    assert inferred.never == {"model year": "a year", "car name": "names or free text"}
    assert cols["horsepower"].spec["type"] == "int" and cols["horsepower"].spec["nullable"]
    assert inferred.na_values == ["?"] and "'?' read as missing" in cols["horsepower"].note
    assert cols["origin"].spec["categories"] == [1, 2, 3]
    assert inferred.key is None and "hashed whole" in inferred.key_reason


def test_a_named_target_wins_wherever_it_is_and_ids_dates_constants_are_recognised(
    tmp_path: Path,
) -> None:
    inferred = infer(_read(homes(), tmp_path))
    cols = {g.name: g for g in inferred.columns}
    assert inferred.target == "price" and inferred.task == "regression"
    assert "named like a target" in inferred.ranking[0].reasons
    assert inferred.key == "listing" and cols["listing"].spec["role"] == "id"
    dates = homes()["listed_on"]
    assert cols["listed_on"].spec == {
        "type": "datetime",
        "min": dates.min(),
        "max": dates.max(),
        "nullable": False,
    }
    assert cols["built_year"].kind == "year" and "looks like years (" in cols["built_year"].note
    assert cols["agent_name"].spec["role"] == "id"
    assert cols["country"].spec == {"type": "category", "role": "ignore", "nullable": False}
    assert cols["notes"].spec["role"] == "ignore" and cols["notes"].kind == "empty"
    assert cols["renovated"].spec["type"] == "bool"
    assert set(inferred.never) == {
        "listing",
        "listed_on",
        "built_year",
        "agent_name",
        "country",
        "notes",
    }


def _read(frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """The frame as a user's CSV file reads back (numbers with '?' become text, ...)."""
    return pd.read_csv(write_csv(frame, tmp_path / "data.csv"))


@pytest.mark.parametrize(
    ("target", "task", "expected"),
    [
        ("origin", "classification", "3 distinct whole numbers: classes"),
        ("weight", "regression", "holds numbers (int)"),
        ("car name", "classification", "holds categories"),
    ],
)
def test_target_option_overrides_the_ranking(
    tmp_path: Path, target: str, task: str, expected: str
) -> None:
    inferred = infer(_read(autos(), tmp_path), target=target)
    assert inferred.target == target and inferred.task == task
    assert expected in inferred.task_reason
    assert "chosen with --target" in inferred.target_reason
    chosen = next(g for g in inferred.columns if g.name == target)
    assert "role" not in chosen.spec
    if target == "car name":
        assert chosen.spec == {"type": "category", "nullable": False}  # an open set of classes
        assert "chosen with --target although it looked like names or free text" in chosen.note


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("MPG", "--target 'MPG' is not a column of the file; columns: mpg, cylinders"),
        ("model_year", "columns: mpg, cylinders, displacement, horsepower"),
    ],
)
def test_an_unknown_target_names_the_columns(tmp_path: Path, target: str, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        infer(_read(autos(), tmp_path), target=target)


def test_a_date_cannot_be_the_target(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'listed_on' cannot be the target: it holds dates"):
        infer(_read(homes(), tmp_path), target="listed_on")


def test_no_candidate_asks_for_a_target(tmp_path: Path) -> None:
    frame = homes()[["listing", "listed_on", "agent_name"]]
    with pytest.raises(DataError, match="no column can be the target") as info:
        infer(_read(frame, tmp_path))
    assert "--target COLUMN" in (info.value.hint or "")


def _guessed_lines(text: str) -> list[str]:
    """The lines holding a guess: the task, target and key, and every column."""
    lines = text.splitlines()
    start = lines.index("  columns:")
    picked = [ln for ln in lines if re.match(r"  (- override /task|target|key):", ln)]
    return picked + lines[start + 1 :]


@pytest.mark.parametrize(
    "frame", [autos, homes, lambda: make(n=300)], ids=["autos", "homes", "churn"]
)
def test_every_guess_carries_a_comment(tmp_path: Path, frame: object) -> None:
    path = write_csv(frame(), tmp_path / "data/external/x.csv")  # type: ignore[operator]
    text = render_dataset_yaml(path)
    guessed = _guessed_lines(text)
    assert len(guessed) >= 3 + 5
    assert all(re.search(r"\S   # \S", line) for line in guessed), "\n".join(
        ln for ln in guessed if "   # " not in ln
    )
    assert "# Target candidates, best first" in text and "--target COLUMN" in text
    assert "`mlops select dataset=x`" in text


def test_churn_example_keeps_its_guesses() -> None:
    inferred = infer(make(n=300).astype({"signup_date": str}))
    cols = {g.name: g.spec for g in inferred.columns}
    assert inferred.target == "churned" and inferred.key == "customer_id"
    assert cols["customer_id"]["role"] == "id"
    assert cols["signup_date"]["type"] == "datetime"
    assert cols["plan"] == {
        "type": "category",
        "categories": ["basic", "premium", "standard"],
        "nullable": False,
    }
    assert cols["region"]["nullable"] is True
    assert cols["monthly_charges"]["type"] == "float"
    assert cols["has_partner"]["type"] == "bool"


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("infer") / "p")


@pytest.mark.parametrize(
    ("name", "frame", "target"),
    [
        ("autos", autos, None),
        ("autos_by_origin", autos, "origin"),
        ("homes", homes, None),
        ("churn", lambda: make(n=400), None),
    ],
)
def test_the_declaration_composes_validates_and_accepts_its_own_file(
    clean: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    frame: object,
    target: str | None,
) -> None:
    """The README's steps: file under data/external/, `mlops schema infer > conf/dataset/`,
    `mlops select dataset=<name>`; then `mlops compose --check` passes and ingest's reading of
    the file breaks none of the declarations."""
    from pipeline.develop.ingest import materialise

    project = tmp_path / "p"
    shutil.copytree(clean, project, symlinks=True)
    monkeypatch.chdir(project)
    write_csv(frame(), project / f"data/external/{name}.csv")  # type: ignore[operator]
    argv = [
        "schema",
        "infer",
        f"data/external/{name}.csv",
        *(["--target", target] if target else []),
    ]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    (project / f"conf/dataset/{name}.yaml").write_text(text)
    composed, _ = choices.select(project, [f"dataset={name}"])
    assert cli.main(["compose", "--check"]) == 0
    spec = DatasetSpec.from_params(composed.data["dataset"])
    report = check_data(materialise(spec), spec)
    assert report.ok, [v.render() for v in report.violations]
    assert composed.data["task"] == yaml.safe_load(text)["defaults"][0]["override /task"]


def test_bool_spellings_are_bools_and_zero_one_text_stays_categories(tmp_path: Path) -> None:
    """Yes/No (with nulls) is what training reads as a bool (`pipeline.values`), so it is
    declared bool: a client then may send yes, Yes, true or 1. Bare 0/1 stay categories."""
    frame = pd.DataFrame(
        {
            "rain_yesterday": (["Yes", "No", None] * 40),
            "flag01": (["1", "0", "1"] * 40),
            "label": (["a", "b", "c"] * 40),
        }
    )
    cols = {g.name: g for g in infer(_read(frame, tmp_path)).columns}
    assert cols["rain_yesterday"].spec == {"type": "bool", "nullable": True}
    assert "true/false values (No, Yes)" in cols["rain_yesterday"].note
    assert cols["flag01"].spec["type"] == "category"
