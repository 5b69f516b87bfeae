"""Sketch mode: certified rank error, statistic errors within their stated bounds, streaming.

The declared guarantee is the sketch's rank error eps (normalised; a-priori at most
(log2(n/k) + 4)/k, certified per run). From it (pipeline/monitor/bounds.py):
KS D within eps_ref + eps_cur; W1/norm within (eps_ref*span_ref + eps_cur*span_cur)/norm, where
span = hi - lo is the range outside the exactly kept tails; energy distance within
sqrt(2)*sum(eps*sqrt(span)); Jensen-Shannon within sum(sqrt(ln2*(bins-1)*eps)); PSI and KL within
their gradient bound over the box of bin shares (None when a share may be zero). Small k forces
many compactions so the bounds are exercised, on heavy-tailed and discrete data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.monitor import stats as st
from pipeline.monitor.drift import MethodChoice, SketchSettings, compute_drift
from pipeline.monitor.sketch import compute_drift_parquet
from pipeline.profile.quantile import QuantileSketch, rank_error_bound
from pipeline.profile.reference import build_reference
from tests.monitor.conf import drift_settings, override


def _max_cdf_error(sample: st.Sample, data: np.ndarray) -> float:
    """max over x of |n*F_sketch(x) - n*F(x)|, at every data point (both sides of each jump)."""
    data = np.sort(data)
    points = np.unique(data)
    worst = 0.0
    for side in ("right", "left"):
        truth = np.searchsorted(data, points, side=side)
        estimate = sample.count_below(points, side)
        worst = max(worst, float(np.abs(estimate - truth).max()))
    return worst


@pytest.mark.parametrize("dist", ["pareto", "cauchy", "discrete", "normal"])
def test_certified_rank_error_covers_the_real_error(dist: str) -> None:
    rng = np.random.default_rng(11)
    data = {
        "pareto": rng.pareto(1.1, 200_000),
        "cauchy": rng.standard_cauchy(200_000),
        "discrete": rng.poisson(3, 200_000).astype(float),
        "normal": rng.normal(size=200_000),
    }[dist]
    sketch = QuantileSketch(k=256, tail=32)
    for chunk in np.array_split(data, 37):
        sketch.update(chunk)
    sample = sketch.to_sample()
    assert sample.n == data.size == int(sample.weights.sum())
    assert sketch.rank_error > 0
    assert _max_cdf_error(sample, data) <= sketch.rank_error
    assert sketch.normalized_error <= rank_error_bound(data.size, 256)
    assert sample.minimum == data.min() and sample.maximum == data.max()
    outside = np.sort(data)[(np.sort(data) < sample.lo) | (np.sort(data) >= sample.hi)]
    points = np.unique(outside)
    np.testing.assert_array_equal(
        sample.count_below(points, "right"), np.searchsorted(np.sort(data), points, side="right")
    )


def test_merged_sketches_keep_a_certified_error_and_stay_small() -> None:
    rng = np.random.default_rng(12)
    parts = [rng.lognormal(i % 3, 1, 60_000) for i in range(6)]
    merged = QuantileSketch(k=512, tail=16)
    for part in parts:
        piece = QuantileSketch(k=512, tail=16)
        piece.update(part)
        merged.merge(piece)
    data = np.concatenate(parts)
    assert merged.n == data.size
    assert _max_cdf_error(merged.to_sample(), data) <= merged.rank_error
    assert merged.retained() <= 512 * 12 + 2 * 16


def test_small_inputs_stay_exact() -> None:
    sketch = QuantileSketch(k=1024, tail=8)
    data = np.random.default_rng(13).normal(size=900)
    sketch.update(data)
    sample = sketch.to_sample()
    assert sample.exact
    np.testing.assert_array_equal(sample.expanded(), np.sort(data))


def _frames(dist: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_ref, n_cur = 60_000, 80_000
    if dist == "pareto":
        ref, cur = rng.pareto(1.5, n_ref), rng.pareto(1.3, n_cur) * 1.1
    elif dist == "cauchy":
        ref, cur = rng.standard_cauchy(n_ref), rng.standard_cauchy(n_cur) * 1.2 + 0.1
    elif dist == "discrete":  # 20-40 distinct values: binned by sturges, sketched
        ref, cur = rng.poisson(12, n_ref).astype(float), rng.poisson(13, n_cur).astype(float)
    else:
        ref, cur = rng.normal(0, 1, n_ref), rng.normal(0.05, 1, n_cur)
    return pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})


SKETCH = SketchSettings(k=512, tail=64, batch_rows=10_000, distinct_limit=20)


@pytest.mark.parametrize("ref_mode", ["exact", "sketch"])
@pytest.mark.parametrize("dist", ["pareto", "cauchy", "discrete", "normal"])
@pytest.mark.parametrize("method", ["ks", "wasserstein", "ed", "jensenshannon", "psi", "kl_div"])
def test_sketch_statistics_stay_within_their_bounds(method: str, dist: str, ref_mode: str) -> None:
    ref, cur = _frames(dist)
    reference = build_reference(ref, {"x": "numeric"}, mode=ref_mode, sketch_k=2048, sketch_tail=64)
    exact_ref = build_reference(ref, {"x": "numeric"})
    choice = MethodChoice(method, None)
    exact = compute_drift(exact_ref, cur, drift_settings(numeric=choice)).columns[0]
    sketched = compute_drift(
        reference, cur, drift_settings(numeric=choice, mode="sketch", sketch=SKETCH)
    ).columns[0]
    assert sketched.method == exact.method == method
    if sketched.error_bound is None:  # PSI / KL with a possibly empty bin: no bound claimed
        assert method in ("psi", "kl_div")
        return
    assert sketched.error_bound >= 0
    assert abs(sketched.statistic - exact.statistic) <= sketched.error_bound


def test_ks_statistic_error_is_within_the_summed_rank_errors() -> None:
    ref, cur = _frames("cauchy")
    r = st.Sample(np.sort(ref["x"].to_numpy()))
    c_sketch = QuantileSketch(k=256, tail=16)
    c_sketch.update(cur["x"].to_numpy())
    approx = st.ks_statistic(st.merge(r, c_sketch.to_sample()))
    exact = st.ks_statistic(st.merge(r, st.Sample(np.sort(cur["x"].to_numpy()))))
    assert abs(approx - exact) <= c_sketch.normalized_error


def test_counts_are_exact_in_sketch_mode() -> None:
    """Categorical and low-cardinality numeric columns give exactly the exact-mode numbers."""
    rng = np.random.default_rng(14)
    ref = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 5000), "k": rng.integers(0, 6, 5000)})
    cur = pd.DataFrame({"c": rng.choice(["a", "b", "d"], 7000), "k": rng.integers(0, 8, 7000)})
    reference = build_reference(ref, {"c": "categorical", "k": "numeric"})
    for method in ("auto", "psi", "ks", "wasserstein"):
        over = {"k": override(method=None if method == "auto" else method)}
        exact = compute_drift(reference, cur, drift_settings(columns=over))
        sketched = compute_drift(
            reference, cur, drift_settings(columns=over, mode="sketch", sketch=SKETCH)
        )
        for e, s in zip(exact.columns, sketched.columns, strict=True):
            assert (s.method, s.drifted) == (e.method, e.drifted)
            assert s.statistic == pytest.approx(e.statistic, rel=1e-12, abs=1e-15)
            assert s.error_bound == 0.0


def test_parquet_stream_equals_the_in_memory_sketch(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=20_000),
            "i": rng.integers(0, 100, 20_000),
            "c": rng.choice(["a", "b"], 20_000),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.1, 1, 45_000),
            "i": rng.integers(0, 110, 45_000),
            "c": rng.choice(["a", "b", None], 45_000),
        }
    )
    cur.loc[::7, "x"] = np.nan
    path = tmp_path / "current.parquet"
    cur.to_parquet(path, row_group_size=9_000)
    reference = build_reference(
        ref, {"x": "numeric", "i": "numeric", "c": "categorical"}, mode="sketch", sketch_k=4096
    )
    settings = drift_settings(mode="sketch", sketch=SKETCH)
    streamed = compute_drift_parquet(reference, path, settings, batch_rows=SKETCH.batch_rows)
    assert streamed.to_dict() == compute_drift(reference, cur, settings).to_dict()
    assert streamed.by_column["x"].current_null_share == pytest.approx(cur["x"].isna().mean())
    exact_ref = build_reference(ref, {"x": "numeric", "i": "numeric", "c": "categorical"})
    assert (
        compute_drift_parquet(exact_ref, path, drift_settings()).to_dict()
        == compute_drift(exact_ref, cur, drift_settings()).to_dict()
    )


def test_methods_that_need_every_value_are_refused_in_sketch_mode() -> None:
    ref, cur = _frames("normal")
    reference = build_reference(ref, {"x": "numeric"})
    settings = drift_settings(mode="sketch", columns={"x": override(method="anderson")})
    with pytest.raises(ConfigError, match="sketch mode supports"):
        compute_drift(reference, cur, settings)
    sketch_ref = build_reference(ref, {"x": "numeric"}, mode="sketch")
    with pytest.raises(ConfigError, match="sketch mode"):
        compute_drift(sketch_ref, cur, drift_settings())
