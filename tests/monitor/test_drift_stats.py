"""Every drift method against scipy applied exactly the way Evidently 0.7 applies it, to 1e-9.

The oracle (tests/monitor/evidently_procedure.py) calls scipy on raw pandas Series after
Evidently's own cleaning; ours goes through build_reference + compute_drift (pre-sorted reference,
merges, thread pool). Datasets cover constant columns, categories on one side only, 1-3 row
samples, NaN and inf, integer columns, heavy tails and the default-method boundaries.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.errors import ConfigError, DataError
from pipeline.monitor import stats as st
from pipeline.monitor.drift import METHODS, MethodChoice, compute_drift, get_method
from pipeline.profile.reference import build_reference
from pipeline.profile.sample import run_lengths
from tests.monitor import evidently_procedure as ev
from tests.monitor.conf import drift_settings, override

RNG_SEED = 20240601


def _numeric_sets() -> dict[str, tuple[pd.Series, pd.Series]]:
    rng = np.random.default_rng(RNG_SEED)
    with_gaps = rng.normal(0, 1, 1500)
    with_gaps[::17] = np.nan
    with_gaps[::29] = np.inf
    return {
        "normal_shift": (pd.Series(rng.normal(0, 1, 2000)), pd.Series(rng.normal(0.2, 1.1, 1500))),
        "cauchy": (pd.Series(rng.standard_cauchy(1200)), pd.Series(rng.standard_cauchy(900) + 1)),
        "integers": (pd.Series(rng.integers(0, 40, 3000)), pd.Series(rng.integers(5, 45, 2500))),
        "ties_float": (
            pd.Series(rng.normal(0, 1, 1800).round(1)),
            pd.Series(rng.normal(0.1, 1, 1700).round(1)),
        ),
        "low_card": (
            pd.Series(rng.integers(0, 4, 1500).astype(float)),
            pd.Series(rng.integers(0, 5, 1300).astype(float)),
        ),
        "nulls_and_inf": (
            pd.Series(with_gaps),
            pd.Series(np.where(rng.random(900) < 0.2, np.nan, rng.normal(0.3, 1, 900))),
        ),
        "constant": (pd.Series(np.full(1200, 3.0)), pd.Series(np.full(800, 3.0))),
        "constant_moved": (pd.Series(np.full(1200, 3.0)), pd.Series(np.full(800, 3.5))),
        # > 10,000 rows (KS leaves scipy's exact mode) and bins with shares <= 0.0001, where
        # Evidently's zero filling switches from 0.0001 to min(share)/1e6
        "large_sparse": (
            pd.Series(rng.standard_cauchy(12_000)),
            pd.Series(rng.standard_cauchy(10_500) * 1.5),
        ),
        "tiny_1_2": (pd.Series([1.5]), pd.Series([0.5, 2.0])),
        "tiny_2_3": (pd.Series([1.0, 2.0]), pd.Series([0.5, 2.0, 7.0])),
        "tiny_3_1": (pd.Series([1.0, 2.0, 2.0]), pd.Series([2.0])),
    }


def _categorical_sets() -> dict[str, tuple[pd.Series, pd.Series]]:
    rng = np.random.default_rng(RNG_SEED + 1)
    return {
        "one_side_only": (
            pd.Series(rng.choice(["a", "b", "c"], 1500)),
            pd.Series(rng.choice(["b", "c", "d"], 1100)),
        ),
        "binary": (
            pd.Series(rng.choice(["yes", "no"], 2000, p=[0.3, 0.7])),
            pd.Series(rng.choice(["yes", "no"], 1600, p=[0.35, 0.65])),
        ),
        "with_nulls": (
            pd.Series(rng.choice(["x", "y", None], 1200)),
            pd.Series(rng.choice(["x", "y", "z", None], 700)),
        ),
        "single": (pd.Series(["a"] * 50), pd.Series(["a"] * 30)),
        "rare_and_new": (
            pd.Series(["a", "b"] * 9_999 + ["rare"]),
            pd.Series(["a"] * 600 + ["b"] * 500 + ["new"] * 2),
        ),
        "tiny": (pd.Series(["a", "b"]), pd.Series(["b", "b", "c"])),
    }


NUMERIC_SETS = _numeric_sets()
CATEGORICAL_SETS = _categorical_sets()
NUMERIC_METHODS, CATEGORICAL_METHODS = ev.NUMERIC_METHODS, ev.CATEGORICAL_METHODS
TESTED_METHODS = set(NUMERIC_METHODS) | set(CATEGORICAL_METHODS)


def _run(
    ref: pd.Series,
    cur: pd.Series,
    kind: str,
    method: str | None = None,
    threshold: float | None = None,
):
    reference = build_reference(pd.DataFrame({"x": ref}), {"x": kind})
    columns = {} if method is None else {"x": override(method=method, threshold=threshold)}
    report = compute_drift(reference, pd.DataFrame({"x": cur}), drift_settings(columns=columns))
    return report, report.columns[0]


def _oracle(method: str, ref: pd.Series, cur: pd.Series, numeric: bool) -> float | None:
    """Evidently's score, or None where scipy has none (NaN or an error for this data)."""
    with st.quiet_scipy_warnings(), np.errstate(all="ignore"):
        try:
            value = ev.score(method, ev.clean(ref), ev.clean(cur), numeric)
        except ValueError:
            return None
    return value if math.isfinite(value) else None


def _assert_matches(col, expected: float | None) -> None:
    if expected is None:
        assert col.status == "undefined" and col.statistic is None and not col.drifted
        return
    assert col.status in ("ok", "drift")
    assert col.statistic == pytest.approx(expected, rel=1e-9, abs=1e-9)
    op = ev.DIRECTIONS[col.method]
    verdict = {
        ">=": expected >= col.threshold,
        ">": expected > col.threshold,
        "<": expected < col.threshold,
        "<=": expected <= col.threshold,
    }[op]
    assert col.drifted == verdict


@pytest.mark.parametrize("dataset", sorted(NUMERIC_SETS))
@pytest.mark.parametrize("method", NUMERIC_METHODS)
def test_numeric_method_matches_evidently(method: str, dataset: str) -> None:
    ref, cur = NUMERIC_SETS[dataset]
    _, col = _run(ref, cur, "numeric", method)
    assert col.method == method
    _assert_matches(col, _oracle(method, ref, cur, numeric=True))


@pytest.mark.parametrize("dataset", sorted(CATEGORICAL_SETS))
@pytest.mark.parametrize("method", [m for m in CATEGORICAL_METHODS if m != "TVD"])
def test_categorical_method_matches_evidently(method: str, dataset: str) -> None:
    ref, cur = CATEGORICAL_SETS[dataset]
    _, col = _run(ref, cur, "categorical", method)
    _assert_matches(col, _oracle(method, ref, cur, numeric=False))


@pytest.mark.parametrize("dataset", ["one_side_only", "tiny"])
def test_tvd_permutation_matches_evidently_for_category_ordered_reference(dataset: str) -> None:
    """TVD's p-value depends on the reference row order, which a reference (counts) does not keep:
    ours equals Evidently's when the reference rows come sorted by category."""
    ref, cur = CATEGORICAL_SETS[dataset]
    ref = ref.sort_values(ignore_index=True)
    _, col = _run(ref, cur, "categorical", "TVD")
    _assert_matches(col, _oracle("TVD", ref, cur, numeric=False))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_threshold_direction_at_equality(method: str) -> None:
    """With the threshold equal to the score, only the inclusive comparisons (>=, <=) drift."""
    numeric = NUMERIC in METHODS[method].column_types
    ref, cur = NUMERIC_SETS["normal_shift"] if numeric else CATEGORICAL_SETS["one_side_only"]
    kind = "numeric" if numeric else "categorical"
    _, first = _run(ref, cur, kind, method)
    _, col = _run(ref, cur, kind, method, threshold=first.statistic)
    assert col.drifted == (ev.DIRECTIONS[method] in (">=", "<="))
    assert METHODS[method].direction == ev.DIRECTIONS[method]
    assert METHODS[method].default_threshold == ev.DEFAULT_THRESHOLDS[method]


NUMERIC = "numeric"


# --------------------------------------------------------------------------------------------
# Default method selection
# --------------------------------------------------------------------------------------------


def _default_case(n_ref: int, ref_values: int, cur_values: int, numeric: bool, nulls: int = 0):
    rng = np.random.default_rng(n_ref + ref_values)
    ref = rng.integers(0, ref_values, n_ref).astype(float)
    ref[:ref_values] = np.arange(ref_values)  # every value present
    ref = np.concatenate([ref, np.full(nulls, np.nan)])
    cur = rng.integers(0, cur_values, 600).astype(float)
    if not numeric:
        return (
            pd.Series(ref).map(lambda v: None if np.isnan(v) else f"c{int(v)}"),
            pd.Series(cur).map(lambda v: f"c{int(v)}"),
        )
    return pd.Series(ref), pd.Series(cur)


@pytest.mark.parametrize(
    ("n_ref", "ref_values", "cur_values", "numeric", "nulls", "expected"),
    [
        (1000, 50, 50, True, 0, "ks"),
        (1001, 50, 50, True, 0, "wasserstein"),
        (1000, 50, 50, True, 7, "ks"),  # the boundary counts non-null reference values
        (1001, 5, 5, True, 0, "jensenshannon"),  # 5 distinct values: low cardinality
        (1001, 4, 6, True, 0, "wasserstein"),  # reference and current together: 6 values
        (1000, 5, 5, True, 0, "chisquare"),
        (1000, 2, 2, True, 0, "z"),
        (1000, 1, 2, True, 0, "z"),
        (1000, 3, 3, False, 0, "chisquare"),
        (1000, 2, 2, False, 0, "z"),
        (1001, 2, 2, False, 0, "jensenshannon"),
        (1001, 30, 30, False, 3, "jensenshannon"),
    ],
)
def test_default_method_follows_evidently(
    n_ref, ref_values, cur_values, numeric, nulls, expected
) -> None:
    ref, cur = _default_case(n_ref, ref_values, cur_values, numeric, nulls)
    assert ev.default_method(ev.clean(ref), ev.clean(cur), numeric) == expected
    _, col = _run(ref, cur, "numeric" if numeric else "categorical")
    assert col.method == expected
    _assert_matches(col, _oracle(expected, ref, cur, numeric))


def test_settings_thresholds_move_the_default_boundaries() -> None:
    ref, cur = _default_case(1001, 50, 50, True)
    reference = build_reference(pd.DataFrame({"x": ref}), {"x": "numeric"})
    settings = drift_settings(small_reference_rows=5000, numeric_low_cardinality=20)
    col = compute_drift(reference, pd.DataFrame({"x": cur}), settings).columns[0]
    assert col.method == "ks"
    wide = drift_settings(numeric_low_cardinality=20)
    ref, cur = _default_case(2000, 12, 12, True)
    reference = build_reference(pd.DataFrame({"x": ref}), {"x": "numeric"})
    assert (
        compute_drift(reference, pd.DataFrame({"x": cur}), wide).columns[0].method
        == "jensenshannon"
    )


def test_type_level_threshold_applies_to_the_auto_method() -> None:
    ref, cur = NUMERIC_SETS["normal_shift"]
    reference = build_reference(pd.DataFrame({"x": ref}), {"x": "numeric"})
    settings = drift_settings(numeric=MethodChoice("auto", 0.5))
    col = compute_drift(reference, pd.DataFrame({"x": cur}), settings).columns[0]
    assert (col.method, col.threshold, col.drifted) == ("wasserstein", 0.5, False)


# --------------------------------------------------------------------------------------------
# Statuses, null shares, the dataset verdict, JSON
# --------------------------------------------------------------------------------------------


def test_all_null_and_infinite_current_columns_get_their_own_verdict() -> None:
    ref = pd.DataFrame({"n": np.arange(2000.0), "c": ["a", "b"] * 1000, "i": np.arange(2000.0)})
    cur = pd.DataFrame({"n": [np.nan] * 10, "c": [None] * 10, "i": [np.inf, -np.inf] * 5})
    reference = build_reference(ref, {"n": "numeric", "c": "categorical", "i": "numeric"})
    report = compute_drift(reference, cur, drift_settings())
    for col in report.columns:
        assert (col.status, col.drifted, col.statistic, col.method) == (
            "all_null",
            True,
            None,
            None,
        )
        assert col.current_null_share == 1.0 and col.null_share_drifted
    assert report.drifted and report.share == 1.0
    json.dumps(report.to_dict(), allow_nan=False)


def test_empty_current_data_is_not_counted() -> None:
    reference = build_reference(pd.DataFrame({"n": np.arange(50.0)}), {"n": "numeric"})
    report = compute_drift(
        reference, pd.DataFrame({"n": pd.Series([], dtype=float)}), drift_settings()
    )
    assert report.columns[0].status == "empty"
    assert (report.share, report.total, report.drifted) == (None, 0, False)


def test_null_share_check_uses_the_declared_increase() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=2000)})
    values = rng.normal(size=2000)
    values[:400] = np.nan  # 20 % nulls; Evidently's tests never see them
    reference = build_reference(ref, {"x": "numeric"})
    col = compute_drift(reference, pd.DataFrame({"x": values}), drift_settings()).columns[0]
    assert col.null_share_increase == pytest.approx(0.2)
    assert col.null_share_drifted and not col.drifted
    relaxed = drift_settings(columns={"x": override(null_share_max_increase=0.25)})
    assert (
        not compute_drift(reference, pd.DataFrame({"x": values}), relaxed)
        .columns[0]
        .null_share_drifted
    )


def test_dataset_drifts_at_exactly_the_declared_share() -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    cur = pd.DataFrame({"a": rng.normal(3, 1, 2000), "b": rng.normal(size=2000)})
    report = compute_drift(
        build_reference(ref, {"a": "numeric", "b": "numeric"}), cur, drift_settings()
    )
    assert (report.count, report.total, report.share, report.drifted) == (1, 2, 0.5, True)
    stricter = drift_settings(drift_share=0.51)
    assert not compute_drift(
        build_reference(ref, {"a": "numeric", "b": "numeric"}), cur, stricter
    ).drifted


def test_undefined_scores_are_none_not_nan() -> None:
    ref, cur = NUMERIC_SETS["constant"]
    report, col = _run(ref, cur, "numeric", "t_test")
    assert (col.status, col.statistic, col.drifted) == ("undefined", None, False)
    assert col.note
    assert (
        json.loads(json.dumps(report.to_dict(), allow_nan=False))["columns"]["x"]["statistic"]
        is None
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_registered_method_is_tested_and_round_trips_through_json(method: str) -> None:
    assert method in TESTED_METHODS
    numeric = NUMERIC in METHODS[method].column_types
    ref, cur = NUMERIC_SETS["normal_shift"] if numeric else CATEGORICAL_SETS["binary"]
    report, col = _run(ref, cur, "numeric" if numeric else "categorical", method)
    assert col.status in ("ok", "drift") and col.method == method
    data = report.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["columns"]["x"]["statistic"] == col.statistic


def test_aliases_resolve_to_registered_methods() -> None:
    assert get_method("energy_distance").name == "ed"
    assert get_method("tvd").name == "TVD"
    with pytest.raises(KeyError):
        get_method("no_such_method")


def test_bad_inputs_are_refused_with_the_column_named() -> None:
    reference = build_reference(
        pd.DataFrame({"x": np.arange(10.0), "c": list("ab") * 5}),
        {"x": "numeric", "c": "categorical"},
    )
    with pytest.raises(DataError, match="'c'"):
        compute_drift(reference, pd.DataFrame({"x": np.arange(5.0)}), drift_settings())
    with pytest.raises(DataError, match="'x'"):
        compute_drift(reference, pd.DataFrame({"x": ["a"] * 5, "c": ["a"] * 5}), drift_settings())
    wrong = drift_settings(columns={"x": override(method="chisquare")})
    with pytest.raises(ConfigError, match=r"columns\.x\.method"):
        compute_drift(reference, pd.DataFrame({"x": np.arange(5.0), "c": ["a"] * 5}), wrong)


# --------------------------------------------------------------------------------------------
# The building blocks against numpy / scipy directly
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "integer"),
    [
        (np.random.default_rng(1).normal(size=5000), False),
        (np.array([2.0, 2.0, 2.0]), False),
        (np.array([7]), True),
        (np.repeat(np.arange(22), 200_000), True),  # width < 1 on integers: numpy clamps it to 1
        (np.random.default_rng(2).integers(-1000, 1000, 777), True),
    ],
)
def test_sturges_edges_equal_numpy(data: np.ndarray, integer: bool) -> None:
    ours = st.sturges_edges(data.min(), data.max(), data.size, integer)
    np.testing.assert_array_equal(ours, np.histogram_bin_edges(data, bins="sturges"))


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 5), (7, 3), (1000, 999), (640, 480)])
def test_wasserstein_on_quantiles_equals_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 31 + n2)
    r = np.sort(rng.normal(size=n1).round(1))
    c = np.sort(rng.normal(0.2, 1, n2).round(1))
    expected = stats.wasserstein_distance(r, c)
    assert st.wasserstein(st.Sample(r), st.Sample(c)) == pytest.approx(
        expected, rel=1e-12, abs=1e-15
    )
    weighted = st.wasserstein(st.Sample(*run_lengths(r)), st.Sample(*run_lengths(c)))
    assert weighted == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_ks_beyond_the_exact_limit_equals_scipy_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    r = np.sort(rng.normal(size=12_000).round(2))
    c = np.sort(rng.normal(0.01, 1, 11_000).round(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = stats.ks_2samp(r, c)
    assert st.ks_statistic(st.merge(st.Sample(r), st.Sample(c))) == expected.statistic
    assert st.ks_pvalue(st.Sample(r), st.Sample(c)) == expected.pvalue


def test_jensen_shannon_bound_behind_sketch_bounds_holds() -> None:
    """JSD (nats) <= ln 2 * TV (Lin 1991), which the sketch-mode bound relies on."""
    rng = np.random.default_rng(6)
    for _ in range(200):
        p, q = rng.dirichlet(np.ones(8) * 0.3), rng.dirichlet(np.ones(8) * 0.3)
        js = stats.entropy(p, (p + q) / 2) / 2 + stats.entropy(q, (p + q) / 2) / 2
        assert js <= math.log(2) * 0.5 * np.abs(p - q).sum() + 1e-12


def test_parallel_and_serial_runs_agree() -> None:
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({f"x{i}": rng.normal(i % 3, 1, 4000) for i in range(6)})
    frame["c"] = rng.choice(["a", "b", "c"], 4000)
    kinds = {c: "categorical" if c == "c" else "numeric" for c in frame}
    reference = build_reference(frame.iloc[:2500], kinds)
    current = frame.iloc[2500:]
    serial = compute_drift(reference, current, drift_settings(workers=1)).to_dict()
    assert compute_drift(reference, current, drift_settings(workers=4)).to_dict() == serial
