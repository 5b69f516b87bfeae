"""Reading and writing data files: CSV or Parquet in, reproducible Parquet out.

Reading does no casting (checking types is `pipeline.data_checks`' job), so every stage and
command sees a file exactly as it is and the checks can report what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def read_table(
    path: Path,
    fmt: str | None = None,
    csv: Mapping[str, Any] | None = None,
    *,
    text_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a CSV or Parquet file as it is (no casting: checking types is `check_data`'s job),
    except that `text_columns` of a CSV stay text, so "01234" is not read as 1234."""
    import pandas as pd

    fmt = fmt or path.suffix.lstrip(".").lower()
    if not path.is_file():
        raise DataError(
            f"{path}: data file does not exist",
            hint="check the path; a DVC-tracked file may need `dvc pull` (or `dvc repro`)",
        )
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        if fmt == "csv":
            from pipeline.validation import schema_defaults

            opts = {**schema_defaults("dataset", "$defs", "csv"), **(csv or {})}
            return pd.read_csv(
                path,
                sep=opts["sep"],
                decimal=opts["decimal"],
                encoding=opts["encoding"],
                na_values=opts["na_values"],
                keep_default_na=True,
                dtype=dict.fromkeys(text_columns, "string") or None,
            )
    except Exception as exc:
        raise DataError(
            f"{path}: cannot be read as {fmt}: {exc}",
            hint="check the file and dataset.source.format",
        ) from exc
    raise DataError(
        f"{path}: unsupported format {fmt!r}; expected csv or parquet",
        hint="name a .csv or .parquet file (or fix dataset.source.format)",
    )


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Parquet written atomically and reproducibly (no index, fixed row-group size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io import atomic_open

    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_open(path, "wb") as fh:
        pq.write_table(table, fh, row_group_size=1 << 17, compression="zstd")


def parquet_parts(folder: Path) -> list[Path]:
    """The files of a Parquet dataset folder, in the order they are one table: every
    `*.parquet` file directly in it, by name, skipping names that start with "." or "_"
    (temporary and marker files, as pyarrow's datasets do). Empty when there are none; the
    caller says why that is wrong for it. The one rule for batch scoring and sketch drift."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix == ".parquet" and p.is_file() and not p.name.startswith((".", "_"))
    )
