"""The drift methods: what a method sees of a column pair, and the registry of methods as
Evidently 0.7 registers them (name, column types, default threshold, direction), with what
sketch mode can do with each. Used by `pipeline.monitor.drift` (evaluation) and
`pipeline.monitor.drift_checks` (settings checks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.monitor import bounds
from pipeline.monitor import stats as st
from pipeline.profile.reference import (
    ColumnKind,
)

Direction = Literal[">=", ">", "<", "<="]
NUMERIC: ColumnKind = "numeric"
CATEGORICAL: ColumnKind = "categorical"

# --------------------------------------------------------------------------------------------
# What a method sees
# --------------------------------------------------------------------------------------------


@dataclass
class ColumnPair:
    """Reference and current data of one column, in the form the methods compute on."""

    name: str
    kind: ColumnKind
    ref: st.Sample | st.Frequencies
    cur: st.Sample | st.Frequencies
    ref_std: float = 0.0
    cur_codes: Callable[[np.ndarray], np.ndarray] | None = None  # row-order codes (TVD)

    def samples(self) -> tuple[st.Sample, st.Sample]:
        assert isinstance(self.ref, st.Sample) and isinstance(self.cur, st.Sample)
        return self.ref, self.cur

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keys and both count vectors over the union of keys (values, for a numeric column)."""
        ref, cur = self.ref, self.cur
        if isinstance(ref, st.Sample) and isinstance(cur, st.Sample):
            ref_f, cur_f = st.sample_frequencies(ref), st.sample_frequencies(cur)
            if ref_f is None or cur_f is None:
                raise _NeedsExactDataError("per-value counts")
            ref, cur = ref_f, cur_f
        assert isinstance(ref, st.Frequencies) and isinstance(cur, st.Frequencies)
        return st.align(ref, cur)

    def is_exact(self) -> bool:
        return all(not isinstance(s, st.Sample) or s.exact for s in (self.ref, self.cur))


class _NeedsExactDataError(Exception):
    """A method needs data that a sketch does not keep (raised inside a column computation)."""


@dataclass(frozen=True)
class Score:
    statistic: float
    error_bound: float | None = None  # certified, in sketch mode; None when it cannot be bounded


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """A drift method as Evidently registers it, plus what sketch mode can do with it."""

    name: str
    kind: Literal["distance", "p_value"]
    default_threshold: float
    direction: Direction
    column_types: frozenset[str]  # the types a user may choose it for (Evidently's allowed types)
    sketch: bool  # works on sketched high-cardinality numeric data (with an error bound)
    compute: Callable[[ColumnPair], Score]
    description: str

    def drifted(self, statistic: float, threshold: float) -> bool:
        """Evidently's verdict for this method; NaN never drifts (every comparison is False)."""
        return {
            ">=": statistic >= threshold,
            ">": statistic > threshold,
            "<": statistic < threshold,
            "<=": statistic <= threshold,
        }[self.direction]


def _exact_only(pair: ColumnPair, what: str) -> None:
    if not pair.is_exact():
        raise _NeedsExactDataError(what)


def _ks(pair: ColumnPair) -> Score:
    ref, cur = pair.samples()
    if pair.is_exact():
        return Score(st.ks_pvalue(ref, cur), 0.0)
    d = st.ks_statistic(st.merge(ref, cur))
    p = st.ks_pvalue_from_statistic(d, ref.n, cur.n)
    return Score(p, bounds.ks_pvalue_bound(d, p, ref, cur))


def _wasserstein(pair: ColumnPair) -> Score:
    ref, cur = pair.samples()
    norm = max(float(pair.ref_std), 0.001)
    return Score(st.wasserstein(ref, cur) / norm, bounds.wasserstein_bound(ref, cur, norm))


def _energy(pair: ColumnPair) -> Score:
    ref, cur = pair.samples()
    return Score(st.energy_distance(ref, cur), bounds.energy_bound(ref, cur))


def _full_data(func: Callable[[st.Sample, st.Sample], float], what: str) -> Callable:
    def compute(pair: ColumnPair) -> Score:
        _exact_only(pair, what)
        return Score(func(*pair.samples()), 0.0)

    return compute


def _binned(pair: ColumnPair) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's get_binned_data, as counts (shares are taken by each statistic)."""
    if pair.kind == NUMERIC:
        ref, cur = pair.samples()
        try:
            return st.numeric_binned(ref, cur)
        except ValueError as exc:
            raise _NeedsExactDataError("per-value counts") from exc
    _, r, c = pair.counts()
    return r, c


def _binned_score(stat: Callable, bound: Callable | None) -> Callable[[ColumnPair], Score]:
    def compute(pair: ColumnPair) -> Score:
        r, c = _binned(pair)
        value = stat(r, c)
        if pair.is_exact() or pair.kind == CATEGORICAL or st.value_binned(pair.samples()[0]):
            return Score(value, 0.0)  # exact counts: no sketch error
        ref, cur = pair.samples()
        return Score(value, None if bound is None else bound(r, c, ref, cur))

    return compute


def _js_bound(r: np.ndarray, c: np.ndarray, ref: st.Sample, cur: st.Sample) -> float:
    return bounds.jensen_shannon_bound(r.size, ref, cur)


def _hellinger(pair: ColumnPair) -> Score:
    if pair.kind == CATEGORICAL:
        _, r, c = pair.counts()
        return Score(st.hellinger_categorical(r, c), 0.0)
    ref, cur = pair.samples()
    union = st.union_distinct_values(ref, cur)
    if union is None:
        raise _NeedsExactDataError("the distinct values of both sides")
    return Score(st.hellinger_numeric(ref, cur, union), 0.0)


def _chisquare(pair: ColumnPair) -> Score:
    _, r, c = pair.counts()
    return Score(st.chisquare_pvalue(r, c), 0.0)


def _z(pair: ColumnPair) -> Score:
    keys, r, c = pair.counts()
    return Score(st.z_pvalue(keys, r, c), 0.0)


def _tvd(pair: ColumnPair) -> Score:
    keys, r, _ = pair.counts()
    if pair.cur_codes is None:
        raise _NeedsExactDataError("the current rows in order")
    ref_codes = np.repeat(np.arange(keys.size), r)  # reference rows in category order
    return Score(st.tvd_pvalue(ref_codes, pair.cur_codes(keys), keys.size), 0.0)


_BOTH = frozenset({NUMERIC, CATEGORICAL})
_NUM = frozenset({NUMERIC})
_CAT = frozenset({CATEGORICAL})

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ks", "p_value", 0.05, "<=", _NUM, True, _ks, "Kolmogorov-Smirnov p-value"),
        Method(
            "wasserstein",
            "distance",
            0.1,
            ">=",
            _NUM,
            True,
            _wasserstein,
            "Wasserstein distance normed by max(reference std, 0.001)",
        ),
        Method("ed", "distance", 0.1, ">", _NUM, True, _energy, "energy distance"),
        Method(
            "anderson",
            "p_value",
            0.1,
            "<",
            _NUM,
            False,
            _full_data(st.anderson_pvalue, "the full data"),
            "Anderson-Darling k-sample p-value",
        ),
        Method(
            "cramer_von_mises",
            "p_value",
            0.1,
            "<=",
            _NUM,
            False,
            _full_data(st.cramer_von_mises_pvalue, "the full data"),
            "Cramér-von Mises p-value",
        ),
        Method(
            "mannw",
            "p_value",
            0.05,
            "<",
            _NUM,
            False,
            _full_data(st.mann_whitney_pvalue, "the full data"),
            "Mann-Whitney U p-value (alternative 'less', as in Evidently)",
        ),
        Method(
            "t_test",
            "p_value",
            0.05,
            "<",
            _NUM,
            False,
            _full_data(st.t_test_pvalue, "the full data"),
            "two-sample t-test p-value",
        ),
        Method(
            "jensenshannon",
            "distance",
            0.1,
            ">=",
            _BOTH,
            True,
            _binned_score(st.jensen_shannon, _js_bound),
            "Jensen-Shannon distance",
        ),
        Method(
            "psi",
            "distance",
            0.1,
            ">=",
            _BOTH,
            True,
            _binned_score(st.psi, bounds.psi_bound),
            "population stability index",
        ),
        Method(
            "kl_div",
            "distance",
            0.1,
            ">=",
            _BOTH,
            True,
            _binned_score(st.kl_divergence, bounds.kl_bound),
            "Kullback-Leibler divergence",
        ),
        Method("hellinger", "distance", 0.1, ">=", _BOTH, False, _hellinger, "Hellinger distance"),
        Method("chisquare", "p_value", 0.05, "<", _CAT, True, _chisquare, "chi-square p-value"),
        Method("z", "p_value", 0.05, "<", _CAT, True, _z, "two-proportion Z-test p-value"),
        Method(
            "TVD",
            "p_value",
            0.1,
            "<",
            _CAT,
            False,
            _tvd,
            "total variation distance, permutation-test p-value",
        ),
    )
}
ALIASES = {"energy_distance": "ed", "tvd": "TVD", "cvm": "cramer_von_mises"}


def get_method(name: str) -> Method:
    """The registered method for a name or alias; KeyError for an unknown one."""
    return METHODS[ALIASES.get(name, name)]


def method_names() -> list[str]:
    """Every name a config may use: methods, aliases, and "auto"."""
    return ["auto", *METHODS, *ALIASES]
