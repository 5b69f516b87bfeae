"""The two forms a column's values take in drift statistics (and in the reference that stores them).

* numeric columns as a :class:`Sample`: sorted finite values, optionally with integer weights
  (a quantile sketch) and a certified rank-error bound;
* categorical columns (and low-cardinality numeric ones) as :class:`Frequencies`: distinct keys
  with their counts.

A foundation: the drift reference (`pipeline.profile.reference`, written into every bundle by
`package`) is made of these, and the statistics in `pipeline.monitor.stats` consume them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

BINNED_MIN_DISTINCT = 20  # Evidently bins numeric data when the reference has more distinct values

FloatArray = np.ndarray


@dataclass(frozen=True)
class Sample:
    """A numeric sample: sorted finite values, optionally weighted (a quantile sketch).

    For a sketch, ``rank_error`` bounds ``|n·F̂(x) - n·F(x)|`` for every x, and the estimate is
    exact below ``lo`` and from ``hi`` on (the sketch keeps its extreme values exactly).
    ``distinct`` holds the exact distinct values and counts when they are known (always for exact
    data, computed lazily; for a sketch only while the column has few distinct values).
    """

    values: FloatArray
    weights: np.ndarray | None = None
    integer: bool = False
    rank_error: float = 0.0
    lo: float = -math.inf
    hi: float = math.inf
    known_distinct: tuple[FloatArray, np.ndarray] | None = None
    distinct_count: int | None = None
    _cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n(self) -> int:
        """Total weight: the number of non-null values the sample stands for."""
        if self.weights is None:
            return int(self.values.size)
        cached = self._cache.get("n")
        if cached is None:
            cached = int(self.weights.sum())
            self._cache["n"] = cached
        return int(cached)  # type: ignore[call-overload]

    @property
    def exact(self) -> bool:
        return self.rank_error == 0

    @property
    def minimum(self) -> float:
        return float(self.values[0])

    @property
    def maximum(self) -> float:
        return float(self.values[-1])

    def distinct(self) -> tuple[FloatArray, np.ndarray] | None:
        """Distinct values and their counts, or None when a sketch no longer knows them."""
        if self.known_distinct is not None:
            return self.known_distinct
        if not self.exact:
            return None
        cached = self._cache.get("distinct")
        if cached is None:
            cached = run_lengths(self.values, self.weights)
            self._cache["distinct"] = cached
        return cached  # type: ignore[return-value]

    def expanded(self) -> FloatArray:
        """Every value repeated by its weight (only sensible for exact, small samples)."""
        if self.weights is None:
            return self.values
        return np.repeat(self.values, self.weights)

    def count_below(self, edges: FloatArray, side: str) -> np.ndarray:
        """Number of values < edge (side='left') or <= edge (side='right'), per edge."""
        idx = np.searchsorted(self.values, edges, side=side)  # type: ignore[call-overload]
        if self.weights is None:
            return idx.astype(np.int64)
        cum = self._cache.get("cumw")
        if cum is None:
            cum = np.concatenate(([0], np.cumsum(self.weights)))
            self._cache["cumw"] = cum
        return cum[idx]  # type: ignore[index]


def run_lengths(sorted_values: FloatArray, weights: np.ndarray | None = None) -> tuple:
    """Distinct values of a sorted array and how often each occurs (weights summed)."""
    if sorted_values.size == 0:
        return sorted_values[:0].copy(), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    if weights is None:
        counts = np.diff(np.append(starts, sorted_values.size))
    else:
        counts = np.add.reduceat(weights, starts)
    return np.asarray(sorted_values[starts], dtype=np.float64), counts.astype(np.int64)


@dataclass(frozen=True)
class Frequencies:
    """Counts of distinct keys (category labels, or the values of a low-cardinality column).

    ``codes`` optionally holds the row-order sample as indices into ``keys`` (the permutation test
    of TVD needs the rows, not just the counts).
    """

    keys: np.ndarray
    counts: np.ndarray
    codes: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.counts.sum())
