"""The simulator's scenarios, as pure functions: draws, column picks, each effect, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.monitor.simulate import (
    Scenario,
    SimulateSettings,
    draw,
    generator,
    label_noise,
    simulate_scenario,
)
from pipeline.profile.reference import monitored_columns
from pipeline.settings import DatasetSpec
from pipeline.windows import LABEL, PREDICTION, RELEASE, TIME

DATASET = DatasetSpec.from_params(
    {
        "name": "toy",
        "source": {"kind": "file", "path": "x"},
        "target": "y",
        "key": "id",
        "missing_target": "drop",
        "extra_columns": "refuse",
        "columns": {
            "id": {"type": "int", "role": "id"},
            "amount": {"type": "float", "min": 0, "max": 1000},
            "calls": {"type": "int", "min": 0, "max": 10},  # 3 distinct values: categorical mix
            "plan": {"type": "category", "categories": ["basic", "pro"]},
            "since": {"type": "datetime"},
            "y": {"type": "category", "categories": ["no", "yes"]},
        },
    }
)
NUMERIC_ONLY = DatasetSpec.from_params(
    {
        "name": "toy2",
        "source": {"kind": "file", "path": "x"},
        "target": "y",
        "key": None,
        "missing_target": "drop",
        "extra_columns": "refuse",
        "columns": {
            "a": {"type": "float"},
            "b": {"type": "float"},
            "y": {"type": "float"},
        },
    }
)


def pool(n: int = 113) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": rng.gamma(2, 50, n),
            "calls": rng.choice([0.0, 1.0, 2.0], n, p=[0.6, 0.3, 0.1]),
            "plan": rng.choice(np.array(["basic", "pro"], dtype=object), n, p=[0.8, 0.2]),
            "since": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
            "y": rng.choice(np.array(["no", "yes"], dtype=object), n),
            "a": rng.normal(0, 1, n),
            "b": rng.normal(5, 2, n),
        }
    )


def settings(**scenarios: dict) -> SimulateSettings:
    return SimulateSettings.from_params(
        {
            "seed": 42,
            "start": "2025-01-06T00:00:00+00:00",
            "spacing_seconds": 60,
            "rows": 100,
            "labelled": 0.8,
            "low_cardinality": 5,
            "scenarios": scenarios,
        }
    )


def run(scenario: Scenario, sim: SimulateSettings, dataset: DatasetSpec = DATASET, offset: int = 0):
    return simulate_scenario(
        scenario,
        sim,
        dataset,
        pool(),
        offset,
        lambda frame: np.where(frame["amount"] > 100, "yes", "no").astype(object),
        "0123456789abcdef",
        ["no", "yes"],
    )


def test_draws_use_every_pool_row_before_repeating() -> None:
    rng = generator(1, "x")
    rows = draw(rng, 250, 100)
    assert len(set(rows[:100].tolist())) == 100 and len(set(rows[100:200].tolist())) == 100
    assert len(set(draw(generator(1, "x"), 80, 100).tolist())) == 80


def test_a_clean_window_is_the_pool_scored_timed_and_labelled() -> None:
    sim = settings(clean={})
    out = run(sim.scenarios[0], sim, offset=10)
    frame = out.frame
    assert out.record == {
        "scenario": "clean",
        "injected": {},
        "notes": [],
        "rows": 100,
        "labelled": int(frame[LABEL].notna().sum()),
    }
    assert 65 <= out.record["labelled"] <= 95  # labelled: 0.8
    assert list(frame[PREDICTION].unique()) != [] and set(frame[RELEASE]) == {"0123456789abcdef"}
    assert frame[TIME].iloc[0] == pd.Timestamp("2025-01-06T00:10:00+00:00")  # start + 10 x 60 s
    assert frame[TIME].diff().dropna().eq(pd.Timedelta(seconds=60)).all()
    assert "id" not in frame.columns  # id columns are not model inputs


def test_same_settings_same_window_and_scenarios_are_independent() -> None:
    sim = settings(clean={}, noisy={"label_noise": {"share": 0.3}})
    again = settings(other={"rows": 7}, clean={}, noisy={"label_noise": {"share": 0.3}})
    a = run(sim.scenarios[0], sim).frame
    b = run(again.scenarios[1], again).frame
    pd.testing.assert_frame_equal(a, b)  # a scenario's rows depend on the seed and its name only


def test_shift_moves_the_chosen_numeric_columns_within_their_range() -> None:
    sim = settings(shifted={"shift": {"columns": "numeric", "fraction": 1.0, "by_std": 1.0}})
    out = run(sim.scenarios[0], sim)
    assert out.record["injected"]["shift"]["columns"] == ["amount", "calls"]
    clean = run(settings(shifted={}).scenarios[0], settings(shifted={})).frame
    std = float(np.std(pool()["amount"]))
    assert (out.frame["amount"] - clean["amount"]).mean() == pytest.approx(std, rel=1e-9)
    assert out.frame["calls"].between(0, 10).all() and (out.frame["calls"] % 1 == 0).all()


def test_category_mix_covers_low_cardinality_numeric_columns() -> None:
    sim = settings(mix={"category_mix": {"columns": "categorical", "share": 0.7}})
    out = run(sim.scenarios[0], sim)
    assert out.record["injected"]["category_mix"]["columns"] == ["calls", "plan"]
    assert (out.frame["plan"] == "pro").mean() > 0.6  # the pool's rarest plan
    assert (out.frame["calls"] == 2.0).mean() > 0.6  # the rarest number of calls


def test_an_effect_without_columns_is_skipped_with_a_note() -> None:
    sim = settings(mix={"category_mix": {"columns": "categorical", "share": 0.7}})
    out = run(sim.scenarios[0], sim, dataset=NUMERIC_ONLY)
    assert out.frame is None  # every effect skipped: no window
    assert out.record["notes"] == ["category_mix skipped: no column to act on (categorical)"]


def test_missing_nulls_the_declared_share_of_one_column() -> None:
    sim = settings(gone={"missing": {"columns": ["plan"], "null_share": 0.5}})
    out = run(sim.scenarios[0], sim)
    assert out.record["injected"]["missing"] == {"columns": ["plan"], "null_share": 0.5}
    assert 0.35 < out.frame["plan"].isna().mean() < 0.65
    assert out.frame["amount"].notna().all()


def test_label_noise_flips_about_the_declared_share() -> None:
    labels = np.array(["no", "yes"] * 500, dtype=object)
    noisy = label_noise(labels, 0.3, ["no", "yes"], generator(0, "n"))
    assert 0.25 < (noisy != labels).mean() < 0.35
    values = np.arange(1000, dtype=float).astype(object)
    shuffled = label_noise(values, 0.3, None, generator(0, "n"))
    assert sorted(shuffled.tolist()) == sorted(values.tolist())  # regression: values permuted
    assert 0.2 < (shuffled != values).mean() < 0.35


def test_monitored_columns_leave_out_ids_dates_and_the_target() -> None:
    assert monitored_columns(DATASET) == {
        "amount": "numeric",
        "calls": "numeric",
        "plan": "categorical",
    }
