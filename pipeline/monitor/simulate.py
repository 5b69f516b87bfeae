"""Stage `simulate`: production windows with declared drift scenarios, from the production pool.

The default data for `make run`, so monitoring has traffic to judge before any service runs.
Each scenario of `conf/simulate/` becomes one window file in `data/simulated/`:

1. rows are drawn from `data/prepared/pool.parquet` with a seeded Generator (one per scenario,
   seeded by the project seed and the scenario's name, so adding a scenario leaves the others'
   rows unchanged). Draws run through the pool in random order and start over once it is used
   up: sampling with replacement to the declared size, but a window no larger than the pool
   holds distinct rows. (Repeating rows of a small pool makes drift tests overconfident: with
   breast_cancer's 113-row pool a 300-row window of repeats flags about 40% of the columns of
   an unchanged distribution, a 100-row window none to two. Hence 100 rows by default.)
2. the scenario's effects change the inputs: `shift` (add `by_std` pool standard deviations to
   numeric columns), `category_mix` (move a `share` of rows to each column's rarest category;
   categorical columns and numeric ones with at most `low_cardinality` distinct values),
   `missing` (null a `null_share` of a column's rows). An effect without a column to act on is
   skipped with a note, and a scenario whose every effect was skipped writes no window;
3. the champion's bundle (`models/bundle/`, verified against its `bundle.json`) scores the rows,
   so `__prediction__` is what the service would have answered; `__release__` is its id;
4. `__label__` is the pool's target, after `label_noise` (a `share` of rows get another class,
   or, for regression, another noised row's value) and with only a `labelled` share of labels
   arrived (the rest null);
5. `__time__` is `start` + row number x `spacing_seconds`, windows following each other.

`data/simulated/scenarios.json` records what each window file injects, so reports can show
"injected" next to "found".
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import DataError
from pipeline.params import Scenario, Selector  # the settings, typed in the tree
from pipeline.params import SimulateSettings as SimulateSettings
from pipeline.settings import ColumnSpec, DatasetSpec
from pipeline.windows import LABEL, PREDICTION, RELEASE, REQUEST_ID, TIME

if TYPE_CHECKING:
    import pandas as pd


# ------------------------------------------------------------------------------- pure simulation
def generator(seed: int, name: str) -> np.random.Generator:
    """A scenario's own Generator: depends on the seed and its name only."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def draw(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """`n` row positions out of `size`: random order, every row once before any repeats."""
    if size == 0:
        raise DataError("the production pool is empty: nothing to simulate from")
    rounds = -(-n // size)
    return np.concatenate([rng.permutation(size) for _ in range(rounds)])[:n]


def candidates(kind: str, dataset: DatasetSpec, pool: pd.DataFrame, low_cardinality: int) -> list:
    """Feature columns of a kind, in declared order."""
    feats = list(dataset.features)
    if kind == "numeric":
        return [c.name for c in feats if c.is_numeric]
    if kind == "categorical":
        return [
            c.name
            for c in feats
            if c.is_categorical
            or (c.is_numeric and pool[c.name].nunique(dropna=True) <= low_cardinality)
        ]
    return [c.name for c in feats]


def pick(
    selector: Selector, dataset: DatasetSpec, pool: pd.DataFrame, low: int, rng: np.random.Generator
) -> list[str]:
    """The columns an effect acts on (declared order), chosen with the scenario's Generator."""
    if isinstance(selector.columns, str):
        names = candidates(selector.columns, dataset, pool, low)
    else:
        names = list(selector.columns)
    if not names:
        return []
    k = selector.count if selector.count is not None else round(selector.fraction * len(names))
    k = max(1, min(len(names), k))
    chosen = set(rng.choice(len(names), size=k, replace=False).tolist())
    return [n for i, n in enumerate(names) if i in chosen]


def shift(
    frame: pd.DataFrame, cols: list[str], by_std: float, pool: pd.DataFrame, dataset: DatasetSpec
) -> list[str]:
    """Add `by_std` pool standard deviations to each column, kept within its declared range."""
    done = []
    for name in cols:
        spec = dataset.column(name)
        if not spec.is_numeric:
            continue
        std = float(np.nanstd(pool[name].to_numpy(dtype=float)))
        values = frame[name].to_numpy(dtype=float) + by_std * std
        frame[name] = _in_range(values, spec)
        done.append(name)
    return done


def _in_range(values: np.ndarray, spec: ColumnSpec) -> np.ndarray:
    if spec.type == "int":
        values = np.round(values)
    low = spec.min if isinstance(spec.min, int | float) else -np.inf
    high = spec.max if isinstance(spec.max, int | float) else np.inf
    return np.clip(values, low, high)


def category_mix(
    frame: pd.DataFrame,
    cols: list[str],
    share: float,
    pool: pd.DataFrame,
    rng: np.random.Generator,
) -> tuple[list[str], list[str]]:
    """Move a `share` of rows to each column's rarest category in the pool."""
    done, notes = [], []
    for name in cols:
        counts = pool[name].dropna().value_counts()
        if len(counts) < 2:
            notes.append(f"category_mix: {name} has a single value in the pool; left as is")
            continue
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], str(kv[0])))
        rarest = ranked[0][0]
        hit = rng.random(len(frame)) < share
        frame[name] = frame[name].mask(hit, rarest)
        done.append(name)
    return done, notes


def missing(
    frame: pd.DataFrame, cols: list[str], null_share: float, rng: np.random.Generator
) -> list[str]:
    """Null a `null_share` of each column's rows."""
    for name in cols:
        hit = rng.random(len(frame)) < null_share
        frame[name] = frame[name].mask(hit)
    return cols


def label_noise(
    labels: np.ndarray, share: float, classes: Sequence[str] | None, rng: np.random.Generator
) -> np.ndarray:
    """Another class for a `share` of rows (classification), or the selected rows' values
    shuffled among themselves (regression)."""
    out = labels.copy()
    hit = np.flatnonzero(rng.random(len(labels)) < share)
    if classes is not None:
        for i in hit:
            others = [c for c in classes if c != out[i]]
            out[i] = others[int(rng.integers(len(others)))]
    else:
        out[hit] = out[hit[rng.permutation(len(hit))]]
    return out


@dataclass
class Simulated:
    frame: pd.DataFrame | None  # None when every effect was skipped
    record: dict[str, Any]


def simulate_scenario(
    scenario: Scenario,
    settings: SimulateSettings,
    dataset: DatasetSpec,
    pool: pd.DataFrame,
    offset: int,
    predict: Any,
    release: str,
    classes: Sequence[str] | None,
) -> Simulated:
    """One scenario's window (a pure function of its inputs; `predict` scores a frame)."""
    import pandas as pd

    rng = generator(settings.seed, scenario.name)
    rows = draw(rng, scenario.rows, len(pool))
    features = [c.name for c in dataset.features]
    frame = pool.iloc[rows][features].reset_index(drop=True)
    labels = pool.iloc[rows][dataset.target].to_numpy(dtype=object).copy()
    injected: dict[str, Any] = {}
    notes: list[str] = []
    low = settings.low_cardinality
    for effect, spec in scenario.effects.items():
        if effect == "label_noise":
            labels = label_noise(labels, float(spec["share"]), classes, rng)
            injected[effect] = {"share": float(spec["share"])}
            continue
        cols = pick(scenario.selectors[effect], dataset, pool, low, rng)
        if effect == "shift":
            done = shift(frame, cols, float(spec["by_std"]), pool, dataset)
            detail: dict[str, Any] = {"by_std": float(spec["by_std"])}
        elif effect == "category_mix":
            done, more = category_mix(frame, cols, float(spec["share"]), pool, rng)
            notes += more
            detail = {"share": float(spec["share"])}
        else:
            done = missing(frame, cols, float(spec["null_share"]), rng)
            detail = {"null_share": float(spec["null_share"])}
        if done:
            injected[effect] = {"columns": done, **detail}
        else:
            shown = spec.get("columns", scenario.selectors[effect].columns)
            notes.append(f"{effect} skipped: no column to act on ({shown})")
    record: dict[str, Any] = {"scenario": scenario.name, "injected": injected, "notes": notes}
    if scenario.effects and not injected:
        return Simulated(None, record)
    labelled = rng.random(len(frame)) < settings.labelled
    start = pd.Timestamp(settings.start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    step = pd.Timedelta(seconds=settings.spacing_seconds)
    out = frame.copy()
    out[PREDICTION] = predict(frame)
    out[LABEL] = pd.Series(np.where(labelled, labels, None), dtype=object)
    out[TIME] = [start + step * (offset + i) for i in range(len(frame))]
    out[REQUEST_ID] = [f"{scenario.name}-{i:06d}" for i in range(len(frame))]
    out[RELEASE] = release
    record.update(rows=len(out), labelled=int(labelled.sum()))
    return Simulated(out, record)


# ------------------------------------------------------------------------------------------ stage
def main(argv: Sequence[str]) -> None:
    import pandas as pd

    from pipeline.config import load_config
    from pipeline.io import write_json
    from pipeline.monitor.monitored_bundle import read_bundle
    from pipeline.paths import CHAMPION_BUNDLE, SCENARIOS_FILE, SIMULATED_DIR, split_path
    from pipeline.stage import log
    from pipeline.windows import write_window

    params = load_config(hyperparameters=False)
    settings, dataset = params.simulate, params.dataset
    pool_split = split_path("pool")
    if not pool_split.is_file():
        raise DataError(f"{pool_split} does not exist", hint="run `dvc repro prepare`")
    pool = pd.read_parquet(pool_split)
    bundle = read_bundle(CHAMPION_BUNDLE, source="champion")
    model = bundle.load_model()
    task = bundle.task

    def predict(frame: pd.DataFrame) -> np.ndarray:
        pred = np.asarray(model.predict(frame[bundle.features]))
        return pred.astype(str).astype(object) if task == "classification" else pred.astype(float)

    SIMULATED_DIR.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"release": bundle.id, "windows": {}, "skipped": {}}
    offset = 0
    for scenario in settings.scenarios:
        sim = simulate_scenario(
            scenario, settings, dataset, pool, offset, predict, bundle.id, bundle.classes
        )
        if sim.frame is None:
            manifest["skipped"][scenario.name] = sim.record["notes"]
            log(f"simulate: {scenario.name} skipped: {'; '.join(sim.record['notes'])}")
            continue
        window = write_window(sim.frame, SIMULATED_DIR)
        manifest["windows"][window.id] = sim.record
        offset += len(sim.frame)
        shown = ", ".join(f"{k} {v.get('columns', v)}" for k, v in sim.record["injected"].items())
        log(f"simulate: {scenario.name} -> {window.path.name} ({shown or 'clean'})")
    write_json(SIMULATED_DIR / SCENARIOS_FILE, manifest)


if __name__ == "__main__":
    from pipeline.stage import run

    run(main)
