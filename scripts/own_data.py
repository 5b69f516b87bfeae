"""Three generated "real" tables this project was not designed around, for the end-to-end test
of README "Your own data" and for `bench/bench_own_data.py`.

* `weather`: a 5-class label (one class rare enough to be absent from a split) with nullable
  categorical columns, a yes/No/null bool, an id-like code and a date; hard to predict (any
  model scores well under the old 0.85 balanced-accuracy floor).
* `houses`: a regression target with missing values, a name-like column (near-unique text), a
  year and a sale date; prices in the hundreds of thousands (units matter for tolerances).
* `footfall`: a daily series per store, split by time, with a later year given as a file.
  Promotions began on 2023-07-01: the training years never hold one (a feature constant in the
  train split), the test quarter and the later year do, so retraining on the later year's labels
  learns what the first model could not (and the deploy gate's comparison on the test quarter
  shows it, rather than a coin flip between two equally good models).

Each generator is seeded and returns a pandas frame as a user's CSV would hold it (text with
its own spellings, empty cells for missing values).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FIRST_NAMES = [
    "Ava", "Ben", "Chloe", "Dan", "Ella", "Finn", "Grace", "Hugo", "Isla", "Jack", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sam", "Tess",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Jones", "Brown", "Taylor", "Wilson", "Evans", "Thomas", "Roberts", "Walker",
    "Wright", "Green", "Hall", "Wood", "Clarke", "Hughes", "Baker",
]  # fmt: skip


def _nulls(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(object)
    out[rng.random(len(values)) < share] = None
    return out


def weather(n: int = 1200, seed: int = 1, start: str = "2022-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stations = np.array(["north", "south", "east", "west", "harbour", "hill", "airport", "park"])
    station = rng.choice(stations, n)
    cloud = rng.choice(np.array(["clear", "partly", "overcast"]), n, p=[0.35, 0.35, 0.3])
    humidity = rng.uniform(20, 100, n).round(1)
    temperature = (rng.normal(14, 8, n) - (cloud == "overcast") * 3).round(1)
    wind = rng.gamma(2.0, 8.0, n).round().astype(int)
    rained = rng.random(n) < 0.3
    day = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 730, n), unit="D")
    # a noisy 5-class label (plus a rare "hail"): learnable, far from perfect
    score = humidity / 25 + (cloud == "overcast") * 1.5 + rained * 1.0 + rng.normal(0, 1.2, n)
    label = np.select(
        [score > 5.2, score > 4.4, score > 3.4, wind > 30],
        ["storm", "rain", "cloudy", "windy"],
        default="sunny",
    ).astype(object)
    label[rng.random(n) < 0.004] = "hail"
    return pd.DataFrame(
        {
            "obs_id": [f"W{seed:02d}-{i:05d}" for i in range(n)],
            "station": _nulls(rng, station, 0.06),
            "cloud_cover": _nulls(rng, cloud, 0.12),
            "temperature": _nulls(rng, temperature, 0.05),
            "humidity": humidity,
            "wind_kmh": _nulls(rng, wind, 0.08),
            "rain_yesterday": _nulls(rng, np.where(rained, "Yes", "No"), 0.1),
            "observed_on": [d.date().isoformat() for d in day],
            "weather": label,
        }
    )


def houses(n: int = 420, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = [
        f"{rng.choice(FIRST_NAMES)} {rng.choice(list('KMR'))}. {rng.choice(LAST_NAMES)}"
        for _ in range(n)
    ]
    hood = rng.choice(np.array(["old town", "riverside", "docks", "uptown", "suburb"]), n)
    rooms = rng.integers(1, 8, n)
    area = (rooms * 22 + rng.normal(0, 12, n)).clip(18).round(1)
    year = rng.integers(1900, 2021, n)
    sold = pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D")
    premium = {"old town": 1.25, "riverside": 1.4, "docks": 0.9, "uptown": 1.6, "suburb": 1.0}
    price = (
        area * 3100 * np.array([premium[h] for h in hood])
        + (year - 1900) * 400
        + rng.normal(0, 25_000, n)
    ).round(-2)
    price_out = price.astype(object)
    price_out[rng.random(n) < 0.07] = None  # missing targets: dropped and counted
    return pd.DataFrame(
        {
            "listing": names,
            "neighbourhood": _nulls(rng, hood, 0.08),
            "rooms": rooms,
            "area_m2": _nulls(rng, area, 0.05),
            "year_built": year,
            "sold_on": [d.date().isoformat() for d in sold],
            "price": price_out,
        }
    )


def footfall(
    first: str = "2021-01-01",
    last: str = "2023-12-31",
    seed: int = 3,
    promotions_from: str = "2023-07-01",
) -> pd.DataFrame:
    """Daily visitors per store; `footfall("2024-01-01", "2024-12-31", seed=4)` is the later
    year monitored from a file. From `promotions_from` on, 15% of store days run a promotion
    (+35% visitors); before it none does."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(first, last, freq="D")
    stores = np.array(["central", "mall", "station"])
    rows = len(days) * len(stores)
    day = np.repeat(days, len(stores))
    store = np.tile(stores, len(days))
    promo = (rng.random(rows) < 0.15) & (np.asarray(day) >= np.datetime64(promotions_from))
    holiday = np.isin(np.asarray(day.day_of_week), [5, 6]) | (rng.random(rows) < 0.03)
    season = np.sin((np.asarray(day.day_of_year) - 100) / 365 * 2 * np.pi)
    temp = 12 + 10 * season + rng.normal(0, 3, rows)
    base = {"central": 900, "mall": 1400, "station": 600}
    visitors = (
        np.array([base[s] for s in store]) * (1 + 0.35 * promo) * (1 + 0.25 * holiday)
        + 8 * temp
        + rng.normal(0, 60, rows)
    ).round()
    return pd.DataFrame(
        {
            "day": [d.date().isoformat() for d in day],
            "store": store,
            "promo": np.where(promo, "true", "false"),
            "holiday": np.where(holiday, "1", "0"),
            "temp_c": _nulls(rng, temp.round(1), 0.03),
            "visitors": visitors,
        }
    )
