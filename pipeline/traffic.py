"""A user's file of scored traffic (CSV or Parquet) read as production-window rows.

One reading for `mlops logs import`, which stores the rows as windows under data/production/
(`import_files`), and `mlops monitor --input`, which judges them by hand (`read_traffic`):

* reserved columns (`pipeline.windows.RESERVED`) are taken as they are; the columns named by
  `--time-column`, `--prediction-column`, `--label-column` and `--id-column` become `__time__`,
  `__prediction__`, `__label__` and `__request_id__`;
* `mlops predict`'s output is read as it is: `prediction` is the prediction, `flags` the input
  flags, and the `proba_<class>` columns are dropped (a window keeps the predicted value);
* without a label column the dataset's target column, when present, holds the labels;
* declared feature columns are typed by the dataset declaration with `pipeline.values`' rules,
  as the service logs them: numbers as float64, categories and bools as canonical text, dates
  as ISO text. A CSV is read as text first, so an id like "007" is never read as 7. Declared id
  and ignore columns are dropped (the service never sees them); any other column is an error,
  or dropped with a note under `dataset.extra_columns: drop`;
* a file without a time column takes one time for all its rows (`--time`); for stored windows
  a time is required (windows are ordered and cut by it, and maintenance dates its decisions
  from it), by hand the rows keep their file order under one nominal time.

Values that cannot be read are errors naming the column and the 1-based data rows (for a CSV,
row 1 is the line after the header, as `mlops predict` counts): a number that is not one, a
time that does not parse, a label or prediction that is not of the task's type or not a
declared class, a missing or repeated request id. Declared ranges and closed category lists of
the *features* are not checked: values outside them are drift, which monitoring is there to see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import DataError
from pipeline.settings import ColumnSpec, DatasetSpec
from pipeline.windows import (
    FLAGS,
    FLAGS_COLUMN,
    LABEL,
    PREDICTION,
    PREDICTION_COLUMN,
    PROBA_PREFIX,
    RELEASE,
    REQUEST_ID,
    RESERVED,
    TIME,
)

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.windows import Window

NOMINAL_TIME = "1970-01-01T00:00:00Z"  # by hand, a file without times: its rows in file order
FORMATS = ("csv", "parquet")
SHOWN = 5  # example rows per problem


@dataclass(frozen=True)
class Columns:
    """The user's names for the reserved columns (None: the reserved or `mlops predict` name)."""

    time: str | None = None
    prediction: str | None = None
    label: str | None = None
    id: str | None = None


@dataclass
class Traffic:
    """One file's rows as window rows (features typed, reserved columns named) and notes on
    how its columns were read."""

    path: Path
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return int(self.frame[LABEL].notna().sum()) if LABEL in self.frame.columns else 0


@dataclass(frozen=True)
class Imported:
    """One imported file: the window it became and whether that window was new."""

    source: Path
    window: Window
    rows: int
    labelled: int
    new: bool
    notes: tuple[str, ...]


# --------------------------------------------------------------------------------- reading
def read_traffic(
    path: Path,
    dataset: DatasetSpec,
    task: str,
    columns: Columns = Columns(),
    *,
    time: str | None = None,
    release: str | None = None,
    require_time: bool = True,
) -> Traffic:
    """`path` as window rows (see the module docstring); DataError for anything unreadable."""
    raw = _read(path)
    if len(raw) == 0:
        raise DataError(f"{path}: the file has no data rows")
    notes: list[str] = []
    renames = _renames(path, raw, dataset, columns, notes)
    named = {reserved: given for given, reserved in renames.items()}  # reserved -> file column
    for reserved in RESERVED:
        if reserved in raw.columns and reserved not in named:
            named[reserved] = reserved
    if PREDICTION not in named:
        raise DataError(
            f"{path}: no prediction column: production windows are scored traffic",
            hint=f"score the file first (`mlops predict --input {path} --output "
            "scored.parquet`: its `prediction` column is read as it is), or name the column "
            "with --prediction-column",
        )
    _check_names(path, raw, dataset, named, notes)
    features = _features(path, raw, dataset, notes)
    _check_values(path, raw, dataset, features, named)

    from pipeline.coercion import coerce

    out = coerce(raw, _spec(dataset, features), with_target=False)
    for col in features:
        if col.type == "datetime":  # as the service logs them: ISO text
            out[col.name] = _iso_text(out[col.name])
    out[PREDICTION] = _outcome(raw[named[PREDICTION]], dataset, task)
    if LABEL in named:
        out[LABEL] = _outcome(raw[named[LABEL]], dataset, task)
    out[TIME] = _times(path, raw, named, time, require_time, notes)
    if REQUEST_ID in named:
        out[REQUEST_ID] = _request_ids(path, raw[named[REQUEST_ID]])
    out[RELEASE] = _release(path, raw, release)
    if FLAGS in named:
        out[FLAGS] = _text(raw[named[FLAGS]])
    return Traffic(path, out.reset_index(drop=True), notes)


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    from pipeline.tables import read_table

    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; expected .csv or .parquet")
    if fmt == "csv" and path.is_file():
        try:  # every cell as text; each column is then read by its declared type
            header = list(pd.read_csv(path, nrows=0, encoding="utf-8").columns)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot be read as csv: {exc}") from exc
        return read_table(path, "csv", text_columns=header)
    return read_table(path, fmt)


def _renames(
    path: Path, raw: pd.DataFrame, dataset: DatasetSpec, columns: Columns, notes: list[str]
) -> dict[str, str]:
    """file column -> reserved column, from the flags, then `mlops predict`'s names, then the
    dataset's target for labels."""
    renames: dict[str, str] = {}
    for given, reserved, flag in (
        (columns.time, TIME, "--time-column"),
        (columns.prediction, PREDICTION, "--prediction-column"),
        (columns.label, LABEL, "--label-column"),
        (columns.id, REQUEST_ID, "--id-column"),
    ):
        if given is None:
            continue
        if given not in raw.columns:
            raise DataError(
                f"{path}: no column {given!r} (named by {flag})",
                hint="the file's columns: " + ", ".join(map(str, raw.columns)),
            )
        if reserved in raw.columns and given != reserved:
            raise DataError(
                f"{path}: both {given!r} ({flag}) and {reserved} are present",
                hint=f"drop one of them, or leave out {flag}",
            )
        if given in renames:
            raise DataError(f"{path}: column {given!r} is named by two flags")
        renames[given] = reserved
    taken = set(renames.values())
    for given, reserved in ((PREDICTION_COLUMN, PREDICTION), (FLAGS_COLUMN, FLAGS)):
        usable = given in raw.columns and given not in renames and given not in _declared(dataset)
        if usable and reserved not in taken and reserved not in raw.columns:
            renames[given] = reserved
            taken.add(reserved)
    target = dataset.target
    unused_target = target in raw.columns and target not in renames
    if LABEL not in taken and LABEL not in raw.columns and unused_target:
        renames[target] = LABEL
        notes.append(f"{path.name}: labels read from the target column {target!r}")
    return renames


def _declared(dataset: DatasetSpec) -> set[str]:
    return {c.name for c in dataset.columns}


def _check_names(
    path: Path,
    raw: pd.DataFrame,
    dataset: DatasetSpec,
    named: dict[str, str],
    notes: list[str],
) -> None:
    """Every column is accounted for: declared, named, reserved or a class probability."""
    used = set(named.values())
    probas = [
        str(c)
        for c in raw.columns
        if str(c).startswith(PROBA_PREFIX) and c not in used and c not in _declared(dataset)
    ]
    if probas:
        notes.append(f"{path.name}: class probabilities not kept: {', '.join(probas)}")
    unknown = [
        str(c)
        for c in raw.columns
        if c not in used and c not in _declared(dataset) and str(c) not in probas
    ]
    if not unknown:
        return
    if dataset.extra_columns == "drop":
        notes.append(
            f"{path.name}: undeclared column(s) dropped (dataset.extra_columns: drop): "
            + ", ".join(unknown)
        )
        return
    raise DataError(
        f"{path}: column(s) {', '.join(map(repr, unknown))} are neither declared in the "
        "dataset nor named by a flag",
        hint="name them with --time-column / --prediction-column / --label-column / "
        f"--id-column, declare them in the dataset (conf/dataset/{dataset.name}.yaml, role: "
        "ignore), or set dataset.extra_columns: drop",
    )


def _features(
    path: Path, raw: pd.DataFrame, dataset: DatasetSpec, notes: list[str]
) -> list[ColumnSpec]:
    """The declared features present; a missing one that may be null becomes all-null."""
    missing = [c.name for c in dataset.features if c.name not in raw.columns and not c.nullable]
    if missing:
        raise DataError(
            f"{path}: declared feature column(s) missing: {', '.join(missing)}",
            hint="the model's inputs are: " + ", ".join(c.name for c in dataset.features),
        )
    absent = [c.name for c in dataset.features if c.name not in raw.columns]
    if absent:
        notes.append(f"{path.name}: nullable column(s) absent, taken as missing: {absent}")
        for name in absent:
            raw[name] = None
    return list(dataset.features)


def _spec(dataset: DatasetSpec, columns: Sequence[ColumnSpec]) -> DatasetSpec:
    return replace(dataset, key=None, extra_columns="drop", columns=tuple(columns))


def _relaxed(col: ColumnSpec, name: str | None = None, *, classes: bool = False) -> ColumnSpec:
    """`col`'s type only (and its declared classes when `classes`): the limits that make a
    value unreadable, not those that make it drift."""
    return ColumnSpec(
        name=name or col.name,
        type=col.type,
        role="feature",
        nullable=True,
        min=None,
        max=None,
        categories=col.categories if classes else None,
        description="",
        personal=False,
    )


def _check_values(
    path: Path,
    raw: pd.DataFrame,
    dataset: DatasetSpec,
    features: Sequence[ColumnSpec],
    named: dict[str, str],
) -> None:
    """Every unreadable value at once, each with its column and example rows (1-based)."""
    from pipeline.data_checks import check_data

    target = dataset.target_column
    columns = [_relaxed(c) for c in features]
    columns += [_relaxed(target, named[r], classes=True) for r in (PREDICTION, LABEL) if r in named]
    if target.is_numeric:  # a regressor predicts real numbers, whole-number target or not
        columns = [replace(c, type="float") if c.name == named[PREDICTION] else c for c in columns]
    report = check_data(raw[[c.name for c in columns]], _spec(dataset, columns))
    problems = [v.render() for v in report.violations]
    unscored = raw[named[PREDICTION]].isna().to_numpy()
    if unscored.any():
        problems.append(
            f"column {named[PREDICTION]!r}: no prediction ({int(unscored.sum())} row(s); "
            f"e.g. {_rows(unscored)})"
        )
    if problems:
        raise DataError(
            f"{path}: {len(problems)} problem(s) reading the file:\n"
            + "\n".join(f"  - {p}" for p in problems),
            hint=f"rows are counted from 1 (for a CSV, the line after the header); values "
            f"are read by the types declared in conf/dataset/{dataset.name}.yaml",
        )


def _rows(mask: object) -> str:
    import numpy as np

    rows = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(f"row {i + 1}" for i in rows[:SHOWN])
    return shown + (" ..." if len(rows) > SHOWN else "")


def _outcome(values: pd.Series, dataset: DatasetSpec, task: str) -> pd.Series:
    """Predictions and labels: the target's canonical text (classification) or float64."""
    from pipeline.coercion import coerce

    target = dataset.target_column
    spec = _spec(dataset, [_relaxed(target)])
    typed = coerce(values.to_frame(target.name), spec, with_target=True)[target.name]
    if task == "classification":
        return _text(typed)
    return typed.astype("float64")


def _times(
    path: Path,
    raw: pd.DataFrame,
    named: dict[str, str],
    time: str | None,
    require_time: bool,
    notes: list[str],
) -> pd.Series:
    import pandas as pd

    if TIME in named and time is not None:
        raise DataError(
            f"{path}: has a time column ({named[TIME]!r}) and --time was given",
            hint="--time is for a file without a time column",
        )
    if TIME in named:
        column = named[TIME]
        parsed = parse_times(raw[column])
        bad = parsed.isna().to_numpy()
        if bad.any():
            examples = ", ".join(
                f"row {i + 1}: {raw[column].iloc[i]!r}" for i in bad.nonzero()[0][:SHOWN]
            )
            raise DataError(
                f"{path}: column {column!r}: {int(bad.sum())} row(s) without a readable "
                f"time; e.g. {examples}",
                hint="times are ISO 8601, e.g. 2026-03-01T12:00:00Z (without an offset: UTC)",
            )
        return parsed.reset_index(drop=True)
    if time is None and require_time:
        raise DataError(
            f"{path}: no time column: production windows are ordered and cut by time",
            hint="name the column with --time-column, or give the whole file one time with "
            "--time (e.g. --time 2026-03-01T00:00:00Z)",
        )
    if time is None:
        notes.append(
            f"{path.name}: no time column; rows kept in file order (give --time-column or "
            "--time to date them)"
        )
    given = time or NOMINAL_TIME
    moment = parse_times(pd.Series([given], dtype=object)).iloc[0]
    if pd.isna(moment):
        raise DataError(
            f"--time {given!r} is not an ISO 8601 date/time",
            hint="e.g. --time 2026-03-01T00:00:00Z (without an offset: UTC)",
        )
    return pd.Series([moment] * len(raw), dtype="datetime64[ns, UTC]")


def parse_times(values: pd.Series) -> pd.Series:
    """Times as UTC timestamps by `pipeline.values`' datetime rule (naive times are UTC wall
    time, offsets converted); unreadable -> NaT."""
    import pandas as pd

    from pipeline import values as vals

    parsed, invalid = vals.parse_column("datetime", values)
    parsed[invalid] = None
    column = pd.Series(vals.model_column("datetime", parsed), index=values.index)  # an array
    return column.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")


def _request_ids(path: Path, values: pd.Series) -> pd.Series:
    from pipeline.values import canonical_category

    ids = values.map(canonical_category, na_action="ignore")
    missing = ids.isna().to_numpy()
    repeated = ids.duplicated(keep=False).to_numpy() & ~missing
    for mask, what in ((missing, "missing"), (repeated, "repeated")):
        if mask.any():
            raise DataError(
                f"{path}: column {values.name!r}: {int(mask.sum())} {what} request id(s); "
                f"e.g. {_rows(mask)}",
                hint="a request id names one scored record: unique, never empty (monitoring "
                "and maintenance count a repeated id once); leave out --id-column if the "
                "file has none",
            )
    return _text(ids)


def _release(path: Path, raw: pd.DataFrame, release: str | None) -> pd.Series:
    import pandas as pd

    if RELEASE in raw.columns:
        if release is not None:
            raise DataError(
                f"{path}: has a {RELEASE} column and --release was given",
                hint="--release is for a file without one",
            )
        return _text(raw[RELEASE])
    return pd.Series([release] * len(raw), dtype=object)


def _text(values: pd.Series) -> pd.Series:
    import pandas as pd

    cells = [None if pd.isna(v) else str(v) for v in values.tolist()]
    return pd.Series(cells, dtype=object)


def _iso_text(values: pd.Series) -> pd.Series:
    import pandas as pd

    return pd.Series([None if pd.isna(v) else v.isoformat() for v in values], dtype=object)


# ------------------------------------------------------------------------------- importing
def import_files(
    paths: Sequence[Path],
    out: Path,
    dataset: DatasetSpec,
    task: str,
    columns: Columns = Columns(),
    *,
    time: str | None = None,
    release: str | None = None,
) -> list[Imported]:
    """Each file as one window under `out` (`pipeline.windows.write_window`: named by its
    data, so importing the same rows again writes nothing). Every file is read and checked
    before any window is written: a refused import writes nothing."""
    from pipeline.windows import find_window, sweep_partial_windows, window_id, write_window

    read = [
        read_traffic(p, dataset, task, columns, time=time, release=release, require_time=True)
        for p in paths
    ]
    done = []
    sweep_partial_windows(out)  # what an import killed half-way left
    for traffic in read:
        new = find_window(out, window_id(traffic.frame)) is None
        window = write_window(traffic.frame, out)
        done.append(
            Imported(
                traffic.path,
                window,
                len(traffic.frame),
                traffic.labelled,
                new,
                tuple(traffic.notes),
            )
        )
    return done
