"""Two-sample drift statistics, computed exactly the way Evidently 0.7 computes them.

Each function takes the two samples in the form we keep them in (never a pandas Series; both
forms live in :mod:`pipeline.profile.sample`, as the reference stores them):

* numeric columns as a :class:`Sample`: sorted finite values, optionally with integer weights
  (a quantile sketch) and a certified rank-error bound;
* categorical columns (and low-cardinality numeric ones, which Evidently bins by value) as
  :class:`Frequencies`: distinct keys with their counts.

Why not just call scipy on the raw columns, as Evidently does? The reference is sorted once at
package time, so the costly parts (sorting, merging) shrink to one sort of the current column and a
merge; and the same code then also works on weighted sketches. Where scipy is fast enough on small
inputs (count vectors, small samples) we call it, so the numbers are scipy's own.

Evidently's procedure, replicated here (evidently 0.7.23, ``legacy/calculations/stattests``):

* nulls and +-inf are dropped before any test (``get_one_column_drift``);
* ``get_binned_data``: numeric columns whose *reference* has more than 20 distinct values are
  binned with numpy's "sturges" edges computed on reference and current *together*; otherwise each
  distinct value of either side is its own bin. PSI and KL then replace empty bins by
  ``min(nonzero)/1e6`` when that minimum is <= 0.0001, else by 0.0001 (Jensen-Shannon does not);
* Wasserstein is normed by ``max(std(reference), 0.001)``;
* Hellinger on numeric columns bins the *distinct values* (not the data) with sturges edges and
  compares densities.

Expected floating-point warnings are silenced here with ``np.errstate`` (thread-safe); scipy's own
``warnings`` are silenced by :func:`quiet_scipy_warnings`, which callers wrap around a whole run.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.spatial import distance as spd

from pipeline.profile.sample import (
    BINNED_MIN_DISTINCT,
    FloatArray,
    Frequencies,
    Sample,
)

KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp 'auto' mode is exact up to this sample size
TVD_ITERATIONS = 1000  # Evidently's permutation count for TVD
TVD_SEED = 0  # Evidently seeds numpy's legacy global generator with 0 for every TVD test


@contextlib.contextmanager
def quiet_scipy_warnings() -> Iterator[None]:
    """Silence the scipy warnings a drift run expects (capped p-values, tiny samples).

    ``warnings.catch_warnings`` is process-global, so wrap it around a whole run (including its
    worker threads) from one thread, never around single calls made in parallel.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"p-value (capped|floored)", category=UserWarning)
        warnings.filterwarnings(
            "ignore", message=r"ks_2samp: Exact calculation", category=RuntimeWarning
        )
        warnings.filterwarnings(
            "ignore", message=r".*catastrophic cancellation", category=RuntimeWarning
        )
        warnings.filterwarnings("ignore", message=r"One or more sample arguments is too small")
        warnings.filterwarnings("ignore", message=r"(invalid value|divide by zero) encountered")
        warnings.filterwarnings("ignore", message=r"Precision loss occurred")
        yield


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def align(ref: Frequencies, cur: Frequencies) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both count vectors over the union of keys (zero where a side lacks a key), keys sorted."""
    keys = np.union1d(ref.keys, cur.keys)
    r = np.zeros(keys.size, np.int64)
    c = np.zeros(keys.size, np.int64)
    r[np.searchsorted(keys, ref.keys)] = ref.counts
    c[np.searchsorted(keys, cur.keys)] = cur.counts
    return keys, r, c


def sample_frequencies(sample: Sample) -> Frequencies | None:
    """The distinct values of a numeric sample as Frequencies, when they are known."""
    known = sample.distinct()
    if known is None:
        return None
    return Frequencies(keys=known[0], counts=known[1])


# --------------------------------------------------------------------------------------------
# Merging two numeric samples: the basis of KS, Wasserstein and energy distance
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Merged:
    """Both samples merged in value order, with each side's cumulative weight at every point."""

    values: FloatArray
    cum_ref: np.ndarray
    cum_cur: np.ndarray
    n_ref: int
    n_cur: int

    def group_ends(self) -> np.ndarray:
        """Indices of the last element of each run of equal values (where CDFs are read)."""
        v = self.values
        return np.append(np.flatnonzero(v[1:] != v[:-1]), v.size - 1)

    def cdf_gap(self) -> FloatArray:
        """F_ref - F_cur at every merged point, computed as scipy computes it."""
        return self.cum_ref / self.n_ref - self.cum_cur / self.n_cur


def merge(ref: Sample, cur: Sample) -> Merged:
    """Merge two sorted (weighted) samples; ties may come in any order (only run ends are read)."""
    z = np.concatenate((ref.values, cur.values))
    order = np.argsort(z)
    from_ref = order < ref.values.size
    if ref.weights is None and cur.weights is None:
        cum_ref = np.cumsum(from_ref, dtype=np.int64)
        cum_cur = np.arange(1, z.size + 1, dtype=np.int64) - cum_ref
    else:
        w = np.concatenate((_weights(ref), _weights(cur)))[order]
        cum_ref = np.cumsum(np.where(from_ref, w, 0))
        cum_cur = np.cumsum(np.where(from_ref, 0, w))
    return Merged(z[order], cum_ref, cum_cur, ref.n, cur.n)


def _weights(sample: Sample) -> np.ndarray:
    if sample.weights is None:
        return np.ones(sample.values.size, np.int64)
    return sample.weights


# --------------------------------------------------------------------------------------------
# Numeric statistics
# --------------------------------------------------------------------------------------------


def ks_statistic(merged: Merged) -> float:
    """The two-sided KS statistic D, bit-identical to scipy's ``ks_2samp`` (same formula)."""
    gap = merged.cdf_gap()[merged.group_ends()]
    max_s = float(gap.max())
    min_s = float(np.clip(-gap.min(), 0, 1))
    return min_s if min_s > max_s else max_s


def ks_pvalue_from_statistic(d: float, n_ref: int, n_cur: int) -> float:
    """scipy's asymptotic two-sided p-value (what ``ks_2samp`` uses beyond 10,000 rows)."""
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(sps.kstwo.sf(d, np.round(en)), 0, 1))


def ks_pvalue(ref: Sample, cur: Sample) -> float:
    """Evidently's "ks": ``scipy.stats.ks_2samp(ref, cur).pvalue`` (method 'auto')."""
    if max(ref.n, cur.n) <= KS_EXACT_MAX_N and ref.exact and cur.exact:
        return float(sps.ks_2samp(ref.expanded(), cur.expanded()).pvalue)
    return ks_pvalue_from_statistic(ks_statistic(merge(ref, cur)), ref.n, cur.n)


def wasserstein(ref: Sample, cur: Sample) -> float:
    """``scipy.stats.wasserstein_distance(ref, cur)``: the area between the two CDFs."""
    if ref.weights is None and cur.weights is None:
        return _wasserstein_quantiles(ref.values, cur.values)
    m = merge(ref, cur)
    with np.errstate(invalid="ignore"):
        return float(np.dot(np.abs(m.cdf_gap()[:-1]), np.diff(m.values)))


def _wasserstein_quantiles(r: FloatArray, c: FloatArray) -> float:
    """W1 as the area between the quantile functions: no merge sort of the values needed.

    On the probability axis, both quantile functions are step functions with steps at i/n1 and
    j/n2; scaled by n1*n2 these are integers, so merging them is an integer sort of two arithmetic
    sequences, and each interval's value indices follow by integer division.
    """
    n1, n2 = r.size, c.size
    if n1 == n2:
        return float(np.mean(np.abs(r - c)))
    steps = np.concatenate(
        (np.arange(1, n1 + 1, dtype=np.int64) * n2, np.arange(1, n2 + 1, dtype=np.int64) * n1)
    )
    steps.sort()
    widths = np.diff(steps, prepend=0)
    ir = (steps + (n2 - 1)) // n2 - 1
    ic = (steps + (n1 - 1)) // n1 - 1
    return float(np.dot(widths, np.abs(r[ir] - c[ic])) / (n1 * n2))


def wasserstein_norm(ref: Sample, cur: Sample, ref_std: float) -> float:
    """Evidently's "wasserstein": W1 divided by ``max(std(reference), 0.001)``."""
    return wasserstein(ref, cur) / max(float(ref_std), 0.001)


def energy_distance(ref: Sample, cur: Sample) -> float:
    """``scipy.stats.energy_distance``: sqrt(2) times the L2 distance between the two CDFs."""
    m = merge(ref, cur)
    gap = m.cdf_gap()[:-1]
    return float(np.sqrt(2) * np.sqrt(np.dot(gap * gap, np.diff(m.values))))


def anderson_pvalue(ref: Sample, cur: Sample) -> float:
    """``scipy.stats.anderson_ksamp([ref, cur])`` p-value (interpolated, within [0.001, 0.25])."""
    return float(sps.anderson_ksamp([ref.expanded(), cur.expanded()], variant="midrank").pvalue)


def mann_whitney_pvalue(ref: Sample, cur: Sample) -> float:
    """``scipy.stats.mannwhitneyu(ref, cur, alternative="less")``: Evidently's one-sided choice."""
    return float(sps.mannwhitneyu(ref.expanded(), cur.expanded(), alternative="less").pvalue)


def t_test_pvalue(ref: Sample, cur: Sample) -> float:
    """``scipy.stats.ttest_ind(ref, cur)`` (pooled variance) p-value; NaN for two constants."""
    return float(sps.ttest_ind(ref.expanded(), cur.expanded()).pvalue)


def cramer_von_mises_pvalue(ref: Sample, cur: Sample) -> float:
    """The two-sample Cramér-von Mises p-value (exact up to 20 rows per side, else asymptotic).

    Evidently ships a copy of an old scipy version of this test. Its asymptotic branch equals
    ``scipy.stats.cramervonmises_2samp``; its exact branch (both sides <= 20 rows) keeps the
    frequency table in ``np.min_scalar_type`` of a float, which under numpy 2 either raises a
    casting error or loses precision (p-values off by up to ~5e-4). We use scipy's exact integer
    computation there on purpose.
    """
    return float(sps.cramervonmises_2samp(ref.expanded(), cur.expanded()).pvalue)


# --------------------------------------------------------------------------------------------
# Binning (Evidently's get_binned_data) and the divergences built on it
# --------------------------------------------------------------------------------------------


def sturges_edges(lo: float, hi: float, size: int, integer: bool) -> FloatArray:
    """``np.histogram_bin_edges(data, "sturges")`` from the data's min, max, size and dtype."""
    first, last = float(lo), float(hi)
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = np.float64(hi - lo) / (np.log2(size) + 1.0)
    if width:
        if integer and width < 1:
            width = np.float64(1)
        n_bins = int(np.ceil(np.float64(last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True, dtype=np.float64)


def histogram_counts(sample: Sample, edges: FloatArray) -> np.ndarray:
    """``np.histogram(sample, edges)[0]``: bins closed on the left, the last one on both sides."""
    cum = np.concatenate(
        (sample.count_below(edges[:-1], "left"), sample.count_below(edges[-1:], "right"))
    )
    return np.diff(cum)


def numeric_binned(ref: Sample, cur: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin *counts* of both numeric samples, binned as ``get_binned_data`` bins them."""
    if not value_binned(ref):
        lo, hi = min(ref.minimum, cur.minimum), max(ref.maximum, cur.maximum)
        edges = sturges_edges(lo, hi, ref.n + cur.n, ref.integer and cur.integer)
        return histogram_counts(ref, edges), histogram_counts(cur, edges)
    rf, cf = sample_frequencies(ref), sample_frequencies(cur)
    if rf is None or cf is None:
        raise ValueError("the distinct values of a low-cardinality column are not known")
    _, r, c = align(rf, cf)
    return r, c


def value_binned(ref: Sample) -> bool:
    """Whether Evidently bins this numeric column by value (few distinct reference values)."""
    return _distinct_count(ref) <= BINNED_MIN_DISTINCT


def _distinct_count(sample: Sample) -> int:
    if sample.distinct_count is not None:
        return sample.distinct_count
    known = sample.distinct()
    if known is None:
        return BINNED_MIN_DISTINCT + 1  # a sketch forgets its values only beyond that
    return int(known[0].size)


def fill_zeros(percents: FloatArray) -> FloatArray:
    """Evidently's replacement of empty bins, so logarithms stay finite (PSI, KL)."""
    out = percents.copy()
    smallest = out[out != 0].min()
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index over bins, empty bins filled as Evidently fills them."""
    r = fill_zeros(ref_counts / ref_counts.sum())
    c = fill_zeros(cur_counts / cur_counts.sum())
    return float(np.sum((r - c) * np.log(r / c)))


def kl_divergence(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """``scipy.stats.entropy(ref, cur)`` of the zero-filled bin shares (renormalised by scipy)."""
    r = fill_zeros(ref_counts / ref_counts.sum())
    c = fill_zeros(cur_counts / cur_counts.sum())
    return float(sps.entropy(r, c))


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """``scipy.spatial.distance.jensenshannon`` of the bin shares (natural log, no zero filling)."""
    return float(spd.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()))


def hellinger_categorical(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Hellinger distance of two category distributions, clipped as Evidently clips it."""
    affinity = float(
        np.sum(np.sqrt((ref_counts / ref_counts.sum()) * (cur_counts / cur_counts.sum())))
    )
    return math.sqrt(1 - float(np.clip(affinity, 0, 1)))


def hellinger_numeric(ref: Sample, cur: Sample, union_distinct: FloatArray) -> float:
    """Evidently's numeric Hellinger: sturges edges over the *distinct values*, on densities."""
    edges = sturges_edges(
        union_distinct[0], union_distinct[-1], union_distinct.size, ref.integer and cur.integer
    )
    widths = np.diff(edges)
    h1 = _density(histogram_counts(ref, edges), widths)
    h2 = _density(histogram_counts(cur, edges), widths)
    bin_width = (edges.max() - edges.min()) / (edges.size - 1)
    affinity = float(np.sum(np.sqrt(h1 * h2) * bin_width))
    return math.sqrt(1 - float(np.clip(affinity, 0, 1)))


def _density(counts: np.ndarray, widths: FloatArray) -> FloatArray:
    return counts / widths / counts.sum()


def union_distinct_values(ref: Sample, cur: Sample) -> FloatArray | None:
    """Sorted distinct values present on either side, or None if a sketch does not know them."""
    rd, cd = ref.distinct(), cur.distinct()
    if rd is None or cd is None:
        return None
    return np.union1d(rd[0], cd[0])


# --------------------------------------------------------------------------------------------
# Tests on counts: chi-square, Z, TVD
# --------------------------------------------------------------------------------------------


def chisquare_pvalue(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """``scipy.stats.chisquare(cur, ref * n_cur/n_ref)``; a key new in current gives p = 0."""
    k_norm = cur_counts.sum() / ref_counts.sum()
    f_exp = ref_counts * k_norm
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(sps.chisquare(cur_counts, f_exp).pvalue)


def z_pvalue(keys: np.ndarray, ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Evidently's two-proportion Z-test on the share of rows that differ from the smallest key."""
    if (
        np.count_nonzero(ref_counts) == 1
        and np.count_nonzero(cur_counts) == 1
        and (int(np.argmax(ref_counts)) == int(np.argmax(cur_counts)))
    ):
        return 1.0
    first = int(np.argsort(sort_keys(keys))[0])
    n1, n2 = int(ref_counts.sum()), int(cur_counts.sum())
    p1 = float(n1 - int(ref_counts[first])) / n1
    p2 = float(n2 - int(cur_counts[first])) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - sps.norm.cdf(np.abs(z))))


def sort_keys(keys: np.ndarray) -> np.ndarray:
    """Keys ordered as Python's ``sorted`` orders the raw values: numbers numerically."""
    if keys.dtype.kind in "fiu":
        return keys
    try:
        return np.asarray([float(k) for k in keys])
    except ValueError:
        return keys


def tvd(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Total variation distance of two category distributions, in Evidently's float arithmetic."""
    return float(
        0.5 * np.sum(np.abs(ref_counts / ref_counts.sum() - cur_counts / cur_counts.sum()))
    )


def tvd_pvalue(ref_codes: np.ndarray, cur_codes: np.ndarray, n_keys: int) -> float:
    """Evidently's TVD permutation test: share of 1,000 relabelings at least as far apart.

    Evidently calls ``np.random.seed(0)`` then ``np.random.choice(rows, n_ref, replace=False)``
    1,000 times; that draws ``permutation(len(rows))[:n_ref]`` from the legacy generator, which a
    private ``RandomState(0)`` reproduces without touching numpy's global state. The distances are
    compared in the same float arithmetic as Evidently's (keys in sorted order), because ties
    between relabelings are common and their rounding decides them.
    """
    rows = np.concatenate((ref_codes, cur_codes))
    n = ref_codes.size
    total = np.bincount(rows, minlength=n_keys)
    observed = tvd(
        np.bincount(ref_codes, minlength=n_keys), total - np.bincount(ref_codes, minlength=n_keys)
    )
    generator = np.random.RandomState(TVD_SEED)
    hits = 0
    for _ in range(TVD_ITERATIONS):
        chosen = np.bincount(rows[generator.permutation(rows.size)[:n]], minlength=n_keys)
        if observed <= tvd(chosen, total - chosen):
            hits += 1
    return hits / TVD_ITERATIONS
