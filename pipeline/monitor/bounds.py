"""Certified error bounds for statistics computed from quantile sketches.

A sketch with rank error e (in rows) over n values estimates the CDF within eps = e/n everywhere,
exactly outside [lo, hi) (the exact tails). From that one guarantee:

* KS statistic D: each CDF is off by at most its eps, so D is off by at most eps_ref + eps_cur;
  the p-value is monotone in D, so its error is the p-value change over that interval.
* Wasserstein (W1 = integral of |F - G|): off by at most the integral of the CDF errors,
  eps * (hi - lo) per side, divided by the same norm as the statistic.
* Energy distance (sqrt(2) times the L2 norm of F - G): by the triangle inequality, off by at most
  sqrt(2) * eps * sqrt(hi - lo) per side.
* Binned shares (sturges bins; the outer edges are the exact min and max): each share is off by at
  most 2*eps, and their total variation by at most (bins - 1) * eps. Jensen-Shannon distance is a
  metric with JSD <= ln(2) * TV (Lin 1991), so it is off by at most sqrt(ln2 * TV) per side. PSI
  and KL are bounded through their gradients over the box of possible shares, which only works
  while no share can be zero (Evidently's zero filling makes them jump there): otherwise None.

Counts of categories and of low-cardinality values are kept exactly, so their bound is 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.monitor.stats import ks_pvalue_from_statistic
from pipeline.profile.sample import Sample


def relative_error(sample: Sample) -> float:
    """The sample's certified CDF error as a share of its rows (0 for exact data)."""
    return sample.rank_error / sample.n if sample.n else 0.0


def _span(sample: Sample) -> float:
    return 0.0 if sample.exact else sample.hi - sample.lo


def ks_pvalue_bound(d: float, p: float, ref: Sample, cur: Sample) -> float:
    """Largest change of the asymptotic p-value when D moves by the sketches' CDF errors."""
    e = relative_error(ref) + relative_error(cur)
    if e == 0:
        return 0.0
    low = ks_pvalue_from_statistic(min(1.0, d + e), ref.n, cur.n)
    high = ks_pvalue_from_statistic(max(0.0, d - e), ref.n, cur.n)
    return max(abs(p - low), abs(high - p))


def wasserstein_bound(ref: Sample, cur: Sample, norm: float) -> float:
    """Bound on the error of W1 / norm."""
    return (relative_error(ref) * _span(ref) + relative_error(cur) * _span(cur)) / norm


def energy_bound(ref: Sample, cur: Sample) -> float:
    """Bound on the error of the energy distance."""
    return math.sqrt(2) * sum(relative_error(s) * math.sqrt(_span(s)) for s in (ref, cur))


def jensen_shannon_bound(n_bins: int, ref: Sample, cur: Sample) -> float:
    """Bound on the error of the Jensen-Shannon distance over sturges bins."""
    total = 0.0
    for s in (ref, cur):
        tv = min(1.0, (n_bins - 1) * relative_error(s))
        total += math.sqrt(math.log(2) * tv)
    return total


@dataclass(frozen=True)
class _Box:
    """The box of possible bin shares on each side: [r_lo, r_hi] and [c_lo, c_hi], from shares
    each off by at most dr (reference) and dc (current)."""

    r_lo: np.ndarray
    r_hi: np.ndarray
    c_lo: np.ndarray
    c_hi: np.ndarray
    dr: float
    dc: float

    def log_gap(self) -> np.ndarray:
        """sup |ln(r / c)| over the box, per bin."""
        return np.maximum(
            np.abs(np.log(self.r_hi / self.c_lo)), np.abs(np.log(self.r_lo / self.c_hi))
        )


def _box(ref_counts: np.ndarray, cur_counts: np.ndarray, ref: Sample, cur: Sample) -> _Box | None:
    """The box of possible bin shares on each side, or None if a share could be zero."""
    r = ref_counts / ref_counts.sum()
    c = cur_counts / cur_counts.sum()
    dr, dc = 2 * relative_error(ref), 2 * relative_error(cur)
    r_lo, r_hi, c_lo, c_hi = r - dr, r + dr, c - dc, c + dc
    if (r_lo <= 0).any() or (c_lo <= 0).any():
        return None
    return _Box(r_lo, r_hi, c_lo, c_hi, dr, dc)


def psi_bound(
    ref_counts: np.ndarray, cur_counts: np.ndarray, ref: Sample, cur: Sample
) -> float | None:
    """Bound on the PSI error: |d/dr| = |ln(r/c) + 1 - c/r|, |d/dc| = |-ln(r/c) + 1 - r/c|."""
    return _over_box(ref_counts, cur_counts, ref, cur, _psi_gradients)


def kl_bound(
    ref_counts: np.ndarray, cur_counts: np.ndarray, ref: Sample, cur: Sample
) -> float | None:
    """Bound on the KL error: |d/dr| = |ln(r/c) + 1|, |d/dc| = r/c."""
    return _over_box(ref_counts, cur_counts, ref, cur, _kl_gradients)


def _psi_gradients(b: _Box) -> tuple[np.ndarray, np.ndarray]:
    gap = b.log_gap()
    return (
        gap + np.maximum(b.c_hi / b.r_lo - 1, 1 - b.c_lo / b.r_hi),
        gap + np.maximum(b.r_hi / b.c_lo - 1, 1 - b.r_lo / b.c_hi),
    )


def _kl_gradients(b: _Box) -> tuple[np.ndarray, np.ndarray]:
    return b.log_gap() + 1, b.r_hi / b.c_lo


def _over_box(
    ref_counts: np.ndarray,
    cur_counts: np.ndarray,
    ref: Sample,
    cur: Sample,
    gradients: Callable[[_Box], tuple[np.ndarray, np.ndarray]],
) -> float | None:
    """Sum over bins of sup|gradient| over the box of shares times the share errors; None when
    a share could be zero."""
    b = _box(ref_counts, cur_counts, ref, cur)
    if b is None:
        return None
    d_r, d_c = gradients(b)
    return float(np.sum(d_r * b.dr + d_c * b.dc))
