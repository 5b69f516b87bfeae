"""Stage `ingest`: materialise the declared dataset as `data/raw/dataset.parquet`.

Bundled scikit-learn datasets are written out (so every dataset the graph reads is a file DVC
tracks); a user's CSV or Parquet file under `data/external/` is read as it is, with declared
category columns kept as text (so "01234" stays "01234"), and written as Parquet. No checking
happens here: that is `validate`'s job, and it reports every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import load_config
from pipeline.errors import DataError
from pipeline.paths import raw_path
from pipeline.settings import DatasetSpec
from pipeline.stage import log, run
from pipeline.tables import read_table, write_parquet

if TYPE_CHECKING:
    import pandas as pd


# Class labels by name, so predictions, reports and the API read as words, not codes.
_LABELS = {
    "breast_cancer": ["malignant", "benign"],
}


def snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def load_bundled(loader: str) -> pd.DataFrame:
    """One of scikit-learn's bundled datasets as a frame with snake_case columns and a `target`."""
    from sklearn import datasets

    kwargs: dict[str, Any] = {"as_frame": True}
    if loader == "diabetes":
        kwargs["scaled"] = False  # original units: ages in years, sex as 1/2, ...
    bunch = getattr(datasets, f"load_{loader}")(**kwargs)
    frame = bunch.frame.rename(columns=snake)
    names = _LABELS.get(loader) or list(getattr(bunch, "target_names", []))
    if len(names) and loader != "diabetes":
        frame["target"] = [names[int(i)] for i in frame["target"]]
    if loader == "diabetes":
        frame["sex"] = frame["sex"].astype(int)
    return frame


def _dvc_cache_dirs(root: Path) -> list[Path]:
    """The DVC cache directories a tracked file may link into: `.dvc/cache`, and a `dir` set
    in the [cache] section of `.dvc/config` or `.dvc/config.local` (a shared cache)."""
    dirs = [root / ".dvc" / "cache"]
    for name in ("config", "config.local"):
        path = root / ".dvc" / name
        section = ""
        for line in path.read_text("utf-8").splitlines() if path.is_file() else []:
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]").strip()
            elif section == "cache" and line.partition("=")[0].strip() == "dir":
                value = Path(line.partition("=")[2].strip())
                dirs.append(value if value.is_absolute() else root / ".dvc" / value)
    return dirs


def external_file(path: Path, root: Path) -> Path:
    """`path` (a dataset.source.path, under data/external/) if what it names stays inside the
    repository: a symlink to anywhere else (another user's home, /etc, a mounted secret) is
    refused, so a dataset is only ever data the repository tracks. A link into the DVC cache
    (`dvc checkout` with symlink links, a shared cache) is what DVC itself writes: allowed."""
    resolved = (root / path).resolve()
    allowed = [root.resolve(), *(d.resolve() for d in _dvc_cache_dirs(root))]
    if not any(resolved.is_relative_to(base) for base in allowed):
        raise DataError(
            f"{path}: resolves to {resolved}, outside the repository; refusing to read it",
            hint="copy the file into data/external/ and `dvc add` it instead of linking to it",
        )
    return path


def materialise(spec: DatasetSpec, root: Path | None = None) -> pd.DataFrame:
    source = spec.source
    if source["kind"] == "sklearn":
        return load_bundled(source["loader"])
    text_columns = [c.name for c in spec.columns if c.type == "category"]
    base = root or Path()  # the project root; the stage runs in it
    path = base / external_file(Path(source["path"]), base)
    return read_table(path, source["format"], source.get("csv"), text_columns=text_columns)


def main(argv: Sequence[str]) -> None:
    spec = load_config(hyperparameters=False).dataset
    frame = materialise(spec)
    out = raw_path()
    write_parquet(frame, out)
    log(f"ingest: {len(frame)} rows x {frame.shape[1]} columns -> {out}")


if __name__ == "__main__":
    run(main)
