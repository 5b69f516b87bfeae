"""`mlops schema infer PATH`: a starting conf/dataset/ file for a user's CSV or Parquet file.

Inference is a set of guesses, and each one is written with its reason as a comment, so the
user knows what to review:

* column types, nullability, observed ranges and category lists;
* ids: unique values named like an id, any unique text, consecutive row numbers, and
  near-unique text such as names (311 distinct values in 406 rows is not a category);
* dates (ISO strings, datetime columns) and years (whole numbers named like a year within a
  plausible range: kept as numbers, never categories, never the target);
* numbers written with a placeholder for missing ('?', 'n/a'): declared as numbers, with the
  placeholder added to the CSV's na_values;
* the target: every column that could be one is ranked (name, position, type, cardinality,
  nulls) and the ranking is printed; ids, dates, years, constants and free text never are.
  `--target COLUMN` overrides the ranking. The task follows the chosen target's type.

The declaration this prints composes and validates as it is (tests hold it to that).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from pipeline import values as vals
from pipeline.errors import DataError
from pipeline.paths import EXTERNAL_DIR
from pipeline.tables import read_table

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 50  # more distinct text values than this is an open set (no closed list)
MAX_INT_CATEGORIES = 10  # whole numbers with at most this many values are categories
MAX_CLASSES = 20  # a target with more classes than this ranks lower
NEAR_UNIQUE = 0.5  # share of distinct values above which text is names, not categories
MIN_ID_ROWS = 20  # fewer rows cannot tell an id from a coincidence
DATE_SHARE = 0.95  # share of values that must parse as ISO dates
NUMBER_SHARE = 0.95  # share of text values that must parse as numbers to be a number column
YEARS = (1800, 2100)
SHOWN_CANDIDATES = 5

ID_WORDS = ("id", "uuid", "guid", "key", "identifier")
NAME_WORDS = ("name", "title", "email", "phone", "address", "url", "description", "comment")
YEAR_WORDS = ("year", "yr")
TARGET_NAMES = (
    "target",
    "label",
    "class",
    "y",
    "outcome",
    "churn",
    "churned",
    "price",
    "response",
    "survived",
    "diagnosis",
    "species",
)
TARGET_WORDS = ("target", "label", "class", "outcome", "churn", "churned", "price", "response")


def words(name: str) -> list[str]:
    """`SalePrice` -> [sale, price]; `customer_id` -> [customer, id]; `model year` -> ..."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


# -------------------------------------------------------------------------------------- columns
@dataclass
class ColumnGuess:
    """One column's declaration and why: `kind` drives the target ranking."""

    name: str
    spec: dict[str, Any]
    note: str
    kind: str  # id | text | datetime | year | number | category | bool | constant | empty
    distinct: int
    nulls: int
    position: int
    unique: bool = False  # every value present and distinct: can be the key
    na_tokens: list[str] = field(default_factory=list)


def infer_column(series: pd.Series, position: int, *, target: bool = False) -> ColumnGuess:
    """Type, range, categories and role of one column, with the reason as a note. As the
    `target` (chosen with --target) it gets no role: an id-like column is declared by its
    values, a year as a number."""
    import pandas as pd

    name = str(series.name)
    named = words(name)
    n = len(series)
    values = series.dropna()
    nulls = n - len(values)
    guess = ColumnGuess(name, {}, "", "", int(values.nunique()), nulls, position)
    guess.unique = not target and nulls == 0 and guess.distinct == n and n >= MIN_ID_ROWS
    if len(values) == 0:
        guess.spec, guess.kind = {"type": "category", "role": "ignore"}, "empty"
        guess.note = "no values at all: ignored"
    elif pd.api.types.is_bool_dtype(series):
        guess.spec, guess.kind = {"type": "bool"}, "bool"
        guess.note = "true/false values"
    elif pd.api.types.is_numeric_dtype(series):
        _numeric(guess, values, [] if target else named)
    elif pd.api.types.is_datetime64_any_dtype(series):
        _dates(guess, values)
    else:
        _text(guess, values, [] if target else named, target=target)
    if guess.distinct == 1 and guess.kind not in ("empty", "id"):
        only = _plain(values.iloc[0])
        guess.spec = {"type": guess.spec["type"], "role": "ignore"}
        guess.kind = "constant"
        guess.note = f"the same value ({only!r}) in every row: ignored (it carries no information)"
    guess.spec["nullable"] = guess.nulls > 0
    if guess.nulls:
        guess.note += f"; {guess.nulls} missing value(s) seen"
    return guess


def _numeric(guess: ColumnGuess, values: pd.Series, named: list[str]) -> None:
    numbers = values.to_numpy(dtype=float)
    integral = bool((np.mod(numbers, 1) == 0).all())
    low, high = _num(numbers.min()), _num(numbers.max())
    id_named = any(w in ID_WORDS for w in named)
    if integral and guess.unique and (id_named or high - low + 1 == len(numbers)):
        why = "named like an id" if id_named else f"consecutive whole numbers {low}-{high}"
        guess.spec, guess.kind = {"type": "int", "role": "id"}, "id"
        guess.note = f"every value distinct, {why}: an id, dropped before modelling"
    elif integral and any(w in YEAR_WORDS for w in named) and _years(low, high):
        guess.spec, guess.kind = {"type": "int", "min": low, "max": high}, "year"
        two = " two-digit" if high < 100 else ""
        guess.note = (
            f"looks like{two} years ({low}-{high}): kept as a whole number, not a category, so a "
            "later year is not an unseen value; raise max for future data"
        )
    elif integral and guess.distinct <= MAX_INT_CATEGORIES:
        cats = sorted(int(v) for v in np.unique(numbers))
        guess.spec, guess.kind = {"type": "category", "categories": cats}, "category"
        guess.note = (
            f"{guess.distinct} distinct whole numbers: declared as categories (declare "
            "type: int with min/max if they are counts or amounts)"
        )
    else:
        kind = "int" if integral else "float"
        guess.spec, guess.kind = {"type": kind, "min": low, "max": high}, "number"
        guess.note = "range observed in the file: widen it to what is plausible"


def _years(low: float, high: float) -> bool:
    return (YEARS[0] <= low and high <= YEARS[1]) or (low >= 0 and high <= 99)


def _dates(guess: ColumnGuess, parsed: pd.Series) -> None:
    first, last = str(parsed.min().date()), str(parsed.max().date())
    guess.spec, guess.kind = {"type": "datetime", "min": first, "max": last}, "datetime"
    guess.note = (
        f"dates ({first} to {last}): expanded into year/month/weekday; widen the range to "
        "what is plausible"
    )


def _text(guess: ColumnGuess, values: pd.Series, named: list[str], *, target: bool) -> None:
    import pandas as pd

    text = values.astype("string")
    # What a value means is `pipeline.values`' rule: a column is declared a date or a bool only
    # when training would read its values as such.
    moments, not_dates = vals.parse_column("datetime", values)
    if (~not_dates).mean() >= DATE_SHARE:
        _dates(guess, pd.Series(vals.model_column("datetime", moments[~not_dates])))
        return
    _, not_bools = vals.parse_column("bool", values)
    spelled = ~text.str.fullmatch(r"[01]").fillna(False).to_numpy(dtype=bool)
    if not not_bools.any() and spelled.any():
        seen = ", ".join(sorted(set(values.astype(str))))
        guess.spec, guess.kind = {"type": "bool"}, "bool"
        guess.note = f"true/false values ({seen}): declared bool"
        return
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().mean() >= NUMBER_SHARE:
        tokens = sorted(set(text[numbers.isna()].str.strip()))
        guess.na_tokens = tokens
        guess.nulls += int(numbers.isna().sum())
        present = numbers.dropna()
        guess.distinct = int(present.nunique())
        guess.unique = False
        _numeric(guess, present, named)
        guess.note += f"; {', '.join(repr(t) for t in tokens)} read as missing (csv na_values)"
        return
    _categories(guess, values, named, target=target)


def _categories(guess: ColumnGuess, values: pd.Series, named: list[str], *, target: bool) -> None:
    """Text that is neither dates nor numbers: an id, names or free text, or categories."""
    n = len(values) + guess.nulls
    share = guess.distinct / len(values)
    id_named = any(w in ID_WORDS for w in named)
    if not target and (guess.unique or (id_named and guess.distinct == n >= MIN_ID_ROWS)):
        guess.spec, guess.kind = {"type": "category", "role": "id"}, "id"
        guess.note = "every value distinct: an id, dropped before modelling"
    elif not target and guess.distinct > MAX_CATEGORIES and share >= NEAR_UNIQUE:
        what = "names or free text" if any(w in NAME_WORDS for w in named) else "free text"
        guess.spec, guess.kind = {"type": "category", "role": "id"}, "text"
        guess.note = (
            f"{guess.distinct} distinct values in {n} rows ({share:.0%}): {what}, not "
            "categories; declared an id (dropped before modelling)"
        )
    elif guess.distinct > MAX_CATEGORIES:
        guess.spec, guess.kind = {"type": "category"}, "category"
        guess.note = f"{guess.distinct} distinct values: an open set of categories"
    else:
        cats = sorted(str(v) for v in values.unique())
        guess.spec, guess.kind = {"type": "category", "categories": cats}, "category"
        guess.note = (
            f"{guess.distinct} categories seen: a closed list (an unseen value is a data "
            "error; categories: null accepts any)"
        )


def _num(value: Any) -> float | int:
    value = value.item() if isinstance(value, np.generic) else value
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------------------- target
@dataclass
class Candidate:
    """A column that could be the target, its score and the reasons for it."""

    name: str
    score: float
    reasons: list[str]


NEVER = {
    "id": "an id",
    "text": "names or free text",
    "datetime": "dates",
    "year": "a year",
    "constant": "a single value",
    "empty": "no values",
}


def rank_targets(guesses: Sequence[ColumnGuess]) -> tuple[list[Candidate], dict[str, str]]:
    """Columns that could be the target, best first, and why the others cannot be."""
    ranked: list[Candidate] = []
    never: dict[str, str] = {}
    last = len(guesses) - 1
    for g in guesses:
        if g.kind in NEVER:
            never[g.name] = NEVER[g.kind]
            continue
        if g.kind == "category" and "categories" not in g.spec:
            never[g.name] = f"{g.distinct} distinct text values"
            continue
        score, reasons = 0.0, []
        named = words(g.name)
        if g.name.lower() in TARGET_NAMES:
            score += 5
            reasons.append("named like a target")
        elif any(w in TARGET_WORDS for w in named):
            score += 3
            reasons.append("its name suggests a target")
        if g.position == last:
            score += 2
            reasons.append("last column")
        elif g.position == 0:
            score += 1
            reasons.append("first column")
        score, reasons = _by_type(g, score, reasons)
        if g.nulls:
            share = g.nulls / (g.nulls + max(g.distinct, 1))
            score -= 2 if share > 0.3 else 0.5
            reasons.append(f"{g.nulls} missing (those rows would be dropped)")
        ranked.append(Candidate(g.name, round(score, 2), reasons))
    ranked.sort(key=lambda c: (-c.score, -_position(guesses, c.name)))
    return ranked, never


def _by_type(g: ColumnGuess, score: float, reasons: list[str]) -> tuple[float, list[str]]:
    if g.kind == "bool":
        return score + 1, [*reasons, "true/false (classification)"]
    if g.kind == "category":
        classes = len(g.spec["categories"])
        if classes <= MAX_CLASSES:
            return score + 1, [*reasons, f"{classes} classes (classification)"]
        return score, [*reasons, f"{classes} classes"]
    if g.spec["type"] == "float":
        return score + 1, [*reasons, "continuous numbers (regression)"]
    return score + 0.5, [*reasons, f"{g.distinct} distinct whole numbers (regression)"]


def _position(guesses: Sequence[ColumnGuess], name: str) -> int:
    return next(g.position for g in guesses if g.name == name)


def task_of(g: ColumnGuess) -> tuple[str, str]:
    """The task a target implies, and why."""
    if g.kind == "bool":
        return "classification", f"the target {g.name} is true/false"
    if g.spec["type"] == "category":
        cats = g.spec.get("categories")
        if cats and all(isinstance(c, int) for c in cats):
            return "classification", (
                f"the target {g.name} has {len(cats)} distinct whole numbers: classes (for "
                "regression declare it type: int and override /task: regression)"
            )
        return "classification", f"the target {g.name} holds categories"
    return "regression", f"the target {g.name} holds numbers ({g.spec['type']})"


def as_target(frame: pd.DataFrame, g: ColumnGuess) -> ColumnGuess:
    """A column chosen with --target, declared as a target: by its values, with no role."""
    if g.kind in ("datetime", "empty", "constant"):
        raise DataError(
            f"column {g.name!r} cannot be the target: it holds {NEVER[g.kind]}",
            hint="choose another column with --target",
        )
    if g.kind not in NEVER:
        return g
    chosen = infer_column(frame[g.name], g.position, target=True)
    chosen.note = f"chosen with --target although it looked like {NEVER[g.kind]}; {chosen.note}"
    return chosen


# ------------------------------------------------------------------------------------ inference
@dataclass
class Inference:
    """Everything `mlops schema infer` guessed about a file, with the reasons."""

    rows: int
    columns: list[ColumnGuess]
    ranking: list[Candidate]
    never: dict[str, str]
    target: str
    target_reason: str
    task: str
    task_reason: str
    key: str | None
    key_reason: str
    na_values: list[str]

    def dataset(self, name: str, source: Mapping[str, Any]) -> dict[str, Any]:
        """The `dataset:` declaration as data."""
        src = dict(source)
        if self.na_values and src.get("format") == "csv":
            src["csv"] = {"na_values": list(self.na_values)}
        return {
            "name": name,
            "description": f"Declared from {source.get('path', 'a file')}; review every column.",
            "source": src,
            "target": self.target,
            "key": self.key,
            "missing_target": "drop",
            "extra_columns": "refuse",
            "columns": {g.name: g.spec for g in self.columns},
        }


def infer(frame: pd.DataFrame, target: str | None = None) -> Inference:
    """Guess a declaration for `frame`; `target` (a column name) overrides the ranking."""
    guesses = [infer_column(frame[col], i) for i, col in enumerate(frame.columns)]
    ranking, never = rank_targets(guesses)
    by_name = {g.name: g for g in guesses}
    if target is not None:
        if target not in by_name:
            raise DataError(
                f"--target {target!r} is not a column of the file; columns: " + ", ".join(by_name),
                hint="pass one of the columns above (names are case-sensitive)",
            )
        place = next((i for i, c in enumerate(ranking) if c.name == target), None)
        ranked = f"ranked {place + 1} of {len(ranking)}" if place is not None else "not ranked"
        target_reason = f"chosen with --target ({ranked})"
    elif ranking:
        target = ranking[0].name
        target_reason = (
            f"guessed: the first of {len(ranking)} ranked candidates (above); "
            "--target COLUMN picks another"
        )
    else:
        raise DataError(
            "no column can be the target: " + ", ".join(f"{k} ({v})" for k, v in never.items()),
            hint="name the target with --target COLUMN",
        )
    chosen = as_target(frame, by_name[target])
    guesses[chosen.position] = chosen
    task, task_reason = task_of(chosen)
    keys = [g for g in guesses if g.unique and g.spec.get("role") == "id"]
    if keys:
        key, key_reason = keys[0].name, "every value present and distinct: rows split by its hash"
    else:
        key, key_reason = None, "no unique id column: rows are hashed whole for stable splits"
    for g in guesses:
        if g.spec.get("role") == "id" and g.name != key and g.kind == "text":
            g.note += "; not the key: values repeat"
    na_values = sorted({t for g in guesses for t in g.na_tokens})
    return Inference(
        len(frame),
        guesses,
        ranking,
        never,
        target,
        target_reason,
        task,
        task_reason,
        key,
        key_reason,
        na_values,
    )


# ------------------------------------------------------------------------------------ rendering
def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def dataset_name(path: Path) -> str:
    """A valid dataset name (lower_snake_case, starting with a letter) from a file name."""
    name = re.sub(r"[^0-9a-z]+", "_", path.stem.lower()).strip("_") or "dataset"
    return name if re.match(r"^[a-z]", name) else f"data_{name}"


def render_dataset_yaml(path: Path, name: str | None = None, target: str | None = None) -> str:
    """The conf/dataset/<name>.yaml text for the file at `path`, every guess commented."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("csv", "parquet"):
        raise DataError(
            f"{path}: expected a .csv or .parquet file",
            hint="convert the data to CSV or Parquet (the format follows the extension)",
        )
    frame = read_table(path, fmt)
    if len(frame.columns) < 2:
        raise DataError(
            f"{path}: {len(frame.columns)} column(s) read; a dataset needs a target and a feature",
            hint="a CSV must be comma-separated with a header row (set dataset.source.csv.sep "
            "in the declaration for another separator)",
        )
    name = name or dataset_name(path)
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise DataError(
            f"--name {name!r}: expected lower_snake_case starting with a letter",
            hint="e.g. --name my_data",
        )
    inferred = infer(frame, target)
    shown = path.as_posix()
    ds = inferred.dataset(name, {"kind": "file", "path": shown, "format": fmt})
    lines = [
        "# @package _global_",
        f"# Inferred by `mlops schema infer {shown}` from {inferred.rows} rows: a starting point.",
        "# Review every column: widen observed ranges to what is plausible, close or open the",
        "# category lists, and check the guessed target, task and key. Then select it with",
        f"# `mlops select dataset={name}` (it rewrites conf/config.yaml's dataset line).",
    ]
    if not shown.startswith(f"{EXTERNAL_DIR.as_posix()}/"):
        lines.append(
            "# NOTE: move the file under data/external/ (and `dvc add` it): the ingest "
            "stage reads only there."
        )
    lines += _ranking_comment(inferred, shown)
    lines += [
        "defaults:",
        f"  - override /task: {inferred.task}   # {inferred.task_reason}",
        "",
        "dataset:",
        f"  name: {name}",
        f"  description: {_flow(ds['description'])}",
        "  source:",
        "    kind: file",
        f"    path: {_flow(shown)}",
        f"    format: {fmt}",
    ]
    if "csv" in ds["source"]:
        tokens = ", ".join(repr(t) for t in inferred.na_values)
        lines.append(
            f"    csv: {_flow(ds['source']['csv'])}   # guessed: {tokens} marks missing numbers"
        )
    lines += [
        f"  target: {_flow(ds['target'])}   # {inferred.target_reason}",
        f"  key: {_flow(ds['key'])}   # {inferred.key_reason}",
        "  missing_target: drop        # drop rows without a target (counted) | refuse",
        "  extra_columns: refuse       # undeclared columns in the data: refuse | drop",
        "  columns:",
    ]
    for g in inferred.columns:
        lines.append(f"    {_flow(g.name)}: {_flow(g.spec)}   # {g.note}")
    return "\n".join(lines) + "\n"


def _ranking_comment(inferred: Inference, shown: str) -> list[str]:
    lines = [
        "#",
        f"# Target candidates, best first (pick another: `mlops schema infer {shown} "
        "--target COLUMN`):",
    ]
    for i, cand in enumerate(inferred.ranking[:SHOWN_CANDIDATES], start=1):
        lines.append(f"#   {i}. {cand.name} (score {cand.score:g}): {'; '.join(cand.reasons)}")
    if len(inferred.ranking) > SHOWN_CANDIDATES:
        lines.append(f"#   ... and {len(inferred.ranking) - SHOWN_CANDIDATES} more")
    if inferred.never:
        never = ", ".join(f"{k} ({v})" for k, v in inferred.never.items())
        lines.append(f"# Never a target: {never}.")
    return [*lines, "#"]
