"""Evidently 0.7's per-column drift procedure, written out plainly with pandas, numpy and scipy.

This is the oracle of the exactness tests: the same calls Evidently makes, on raw pd.Series, with
none of our machinery (no pre-sorting, merging or sketches). It mirrors
``evidently/legacy/calculations/stattests/*.py`` and ``data_drift.get_one_column_drift``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

# The stattests Evidently allows per column type (its registry), all checked against this oracle.
NUMERIC_METHODS = [
    "ks",
    "wasserstein",
    "ed",
    "anderson",
    "cramer_von_mises",
    "mannw",
    "t_test",
    "jensenshannon",
    "psi",
    "kl_div",
    "hellinger",
]
CATEGORICAL_METHODS = ["chisquare", "z", "jensenshannon", "psi", "kl_div", "hellinger", "TVD"]


def clean(series: pd.Series) -> pd.Series:
    """get_one_column_drift: +-inf become NaN, then every null is dropped."""
    return series.replace([-np.inf, np.inf], np.nan).dropna()


def default_method(ref: pd.Series, cur: pd.Series, numeric: bool) -> str:
    """registry._get_default_stattest."""
    n_values = pd.concat([ref, cur]).nunique()
    if ref.shape[0] <= 1000:
        if numeric and n_values > 5:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if numeric and n_values > 5:
        return "wasserstein"
    return "jensenshannon"


def _keys(ref: pd.Series, cur: pd.Series) -> list:
    return list(set(ref.dropna().unique()) | set(cur.dropna().unique()))


def binned(ref: pd.Series, cur: pd.Series, numeric: bool, fill: bool):
    """utils.get_binned_data."""
    if numeric and ref.nunique() > 20:
        bins = np.histogram_bin_edges(np.asarray(pd.concat([ref, cur]).values), bins="sturges")
        r = np.histogram(ref, bins)[0] / len(ref)
        c = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = _keys(ref, cur)
        rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
        cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
        r = np.array([rd[k] / len(ref) for k in keys])
        c = np.array([cd[k] / len(cur) for k in keys])
    if fill:
        for p in (r, c):
            m = min(p[p != 0])
            np.place(p, p == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return r, c


def score(method: str, ref: pd.Series, cur: pd.Series, numeric: bool) -> float:
    """The drift score Evidently reports for ``method`` on cleaned series."""
    return float(_SCORES[method](ref, cur, numeric))


def _z(ref: pd.Series, cur: pd.Series) -> float:
    if ref.nunique() == 1 and cur.nunique() == 1 and ref.unique()[0] == cur.unique()[0]:
        return 1.0
    key = sorted(_keys(ref, cur))[0]
    r = ref.apply(lambda x: 0 if x == key else 1)
    c = cur.apply(lambda x: 0 if x == key else 1)
    n1, n2 = len(r), len(c)
    p1, p2 = float(sum(r)) / n1, float(sum(c)) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return 2 * (1 - stats.norm.cdf(np.abs(z)))


def _chisquare(ref: pd.Series, cur: pd.Series) -> float:
    keys = _keys(ref, cur)
    rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
    cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
    k = cur.shape[0] / ref.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return stats.chisquare([cd[key] for key in keys], [rd[key] * k for key in keys])[1]


def _hellinger(ref: pd.Series, cur: pd.Series, numeric: bool) -> float:
    keys = _keys(ref, cur)
    if not numeric:
        rp = (ref.value_counts() / len(ref)).to_dict()
        cp = (cur.value_counts() / len(cur)).to_dict()
        h = sum(np.sqrt(float(rp.get(k, 0)) * float(cp.get(k, 0))) for k in keys)
    else:
        bins = np.histogram_bin_edges(keys, bins="sturges")
        h1 = np.histogram(ref.to_numpy(), bins=bins, density=True)[0]
        h2 = np.histogram(cur.to_numpy(), bins=bins, density=True)[0]
        width = (max(bins) - min(bins)) / (len(bins) - 1)
        h = sum(np.sqrt(float(a) * float(b)) * width for a, b in zip(h1, h2, strict=True))
    return float(np.sqrt(1 - np.clip(h, 0, 1)))


def _tvd_stat(ref: pd.Series, cur: pd.Series) -> float:
    keys = sorted(_keys(ref, cur))
    rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
    cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
    r, c = np.array([rd[k] for k in keys]), np.array([cd[k] for k in keys])
    return 0.5 * np.sum(np.abs(r / r.sum() - c / c.sum()))


def _tvd(ref: pd.Series, cur: pd.Series) -> float:
    """tvd_stattest with utils.permutation_test; a private RandomState(0) = np.random.seed(0)."""
    observed = _tvd_stat(ref, cur)
    generator = np.random.RandomState(0)
    combined = ref.tolist() + cur.tolist()
    hits = 0
    for _ in range(1000):
        new_ref = generator.choice(combined, len(ref), replace=False).tolist()
        new_cur = list((Counter(combined) - Counter(new_ref)).elements())
        hits += observed <= abs(_tvd_stat(pd.Series(new_ref), pd.Series(new_cur)))
    return hits / 1000


def _jensenshannon(r, c, numeric):
    return distance.jensenshannon(*binned(r, c, numeric, False))


def _psi(r, c, numeric):
    rp, cp = binned(r, c, numeric, True)
    return np.sum((rp - cp) * np.log(rp / cp))


def _kl(r, c, numeric):
    return stats.entropy(*binned(r, c, numeric, True))


_SCORES = {
    "ks": lambda r, c, _: stats.ks_2samp(r, c)[1],
    "wasserstein": lambda r, c, _: stats.wasserstein_distance(r, c) / max(float(np.std(r)), 0.001),
    "ed": lambda r, c, _: stats.energy_distance(r, c),
    "anderson": lambda r, c, _: (
        stats.anderson_ksamp([r.values, c.values], variant="midrank").pvalue
    ),
    "cramer_von_mises": lambda r, c, _: (
        stats.cramervonmises_2samp(r.to_numpy(), c.to_numpy()).pvalue
    ),
    "mannw": lambda r, c, _: stats.mannwhitneyu(x=r, y=c, alternative="less")[1],
    "t_test": lambda r, c, _: stats.ttest_ind(r, c)[1],
    "jensenshannon": _jensenshannon,
    "psi": _psi,
    "kl_div": _kl,
    "hellinger": _hellinger,
    "chisquare": lambda r, c, _: _chisquare(r, c),
    "z": lambda r, c, _: _z(r, c),
    "TVD": lambda r, c, _: _tvd(r, c),
}

# Evidently's comparison per method: statistic OP threshold means drift
DIRECTIONS = {
    "ks": "<=",
    "cramer_von_mises": "<=",
    "ed": ">",
    "anderson": "<",
    "mannw": "<",
    "t_test": "<",
    "chisquare": "<",
    "z": "<",
    "TVD": "<",
    "wasserstein": ">=",
    "jensenshannon": ">=",
    "psi": ">=",
    "kl_div": ">=",
    "hellinger": ">=",
}
DEFAULT_THRESHOLDS = {
    "ks": 0.05,
    "cramer_von_mises": 0.1,
    "ed": 0.1,
    "anderson": 0.1,
    "mannw": 0.05,
    "t_test": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "TVD": 0.1,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
    "kl_div": 0.1,
    "hellinger": 0.1,
}
