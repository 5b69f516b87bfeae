"""Kept monitoring results (pipeline.monitor.kept): after every kind of input change, the
reports from kept results are byte-identical to a full recomputation, and only what changed is
read and assessed again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.monitor.assess import Context, build_context
from pipeline.monitor.engine import monitor
from pipeline.monitor.kept import KINDS, KeptStore
from pipeline.monitor.monitored_bundle import read_bundle
from pipeline.monitor.windowing import collect, survey
from pipeline.params import MonitorSettings
from pipeline.windows import list_windows, write_window
from tests.monitor import fakes

OUTPUTS = ("report.json", "report.html", "history.csv", "metrics.json")


def _run(ctx: Context, production: Path, out: Path, store: KeptStore) -> dict[str, bytes]:
    traffic = survey({"production": production}, ctx.settings.windows, kept=store)
    monitor(traffic, ctx, out, kept=store)
    store.prune()
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def _same_as_full(
    ctx: Context, production: Path, tmp: Path, kept: Path, code: str = "v1"
) -> KeptStore:
    """Run with the kept folder and without (a forced full recomputation); assert the four
    outputs are byte-identical; return the kept run's store (its hits and misses)."""
    store = KeptStore(kept, code=code)
    incremental = _run(ctx, production, tmp / "incremental", store)
    full = _run(ctx, production, tmp / "full", KeptStore(None))
    for name in OUTPUTS:
        assert incremental[name] == full[name], name
    return store


def _context(tmp: Path, name: str = "bundle", seed: int = 1, **monitor: Any) -> Context:
    import numpy as np

    rng = np.random.default_rng(seed)
    fakes.write_bundle(tmp / name, rng.choice(fakes.CLASSES, 300, p=[0.7, 0.3]).tolist())
    settings = MonitorSettings.from_params(fakes.params(**monitor))
    bundle = read_bundle(tmp / name, source="champion", location="models/bundle")
    return build_context(settings, bundle.reference(), bundle)


def _count_parquet_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every source `pd.read_parquet` parses from now on (the list fills as the test runs)."""
    import pandas as pd

    parsed: list[object] = []
    read_parquet = pd.read_parquet

    def counting(source: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(source)
        return read_parquet(source, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", counting)
    return parsed


def _day(day: int) -> str:
    return f"2025-03-{day:02d}T00:00:00+00:00"


@pytest.mark.slow  # about 45 monitoring runs each; the quick test below runs in the suite
@pytest.mark.parametrize(
    "windows",
    [
        {"by": "rows", "rows": 100, "min_rows": 50},  # one file, one window
        {"by": "rows", "rows": 150, "min_rows": 50},  # windows across files
        {"by": "time", "span": "6h", "min_rows": 20},  # buckets of a file
    ],
    ids=["rows-per-file", "rows-across-files", "time"],
)
def test_kept_reports_equal_a_full_recomputation_after_every_change(
    tmp_path: Path, windows: dict
) -> None:
    production, kept = tmp_path / "production", tmp_path / "kept"
    production.mkdir()
    for day in (1, 2, 3):
        write_window(fakes.traffic(100, seed=day, start=_day(day)), production)
    ctx = _context(tmp_path, windows=windows)

    first = _same_as_full(ctx, production, tmp_path, kept)
    assert first.misses > 0 and first.hits == 0
    again = _same_as_full(ctx, production, tmp_path, kept)
    assert again.misses == 0  # nothing read, nothing assessed

    # a new window: one file summarised, one cluster pooled, its window(s) assessed
    write_window(fakes.traffic(100, seed=4, start=_day(4), shift=2.0), production)
    new = _same_as_full(ctx, production, tmp_path, kept)
    assert 0 < new.misses <= 4 and new.hits >= 6

    # a late file between two others, overlapping nothing: only windows after it move
    write_window(fakes.traffic(40, seed=9, start="2025-03-02T12:00:00+00:00"), production)
    _same_as_full(ctx, production, tmp_path, kept)

    # an overlapping snapshot repeating rows: pooled with the file it overlaps
    write_window(fakes.traffic(100, seed=1, start=_day(1)).iloc[:30], production)
    _same_as_full(ctx, production, tmp_path, kept)

    # changed thresholds: every kept statistic judged again, nothing read nor recomputed
    for thresholds in (
        {"drift": {"drift_share": 0.1}},
        {"drift": {"numeric": {"method": "auto", "threshold": 0.3}}},
        {"drift": {"columns": {"x": {"threshold": 0.5, "null_share_max_increase": 0.0}}}},
        {"null_share": {"max_increase": 0.0}},
        {"prediction": {"method": "auto", "threshold": 0.5}},
    ):
        changed = _context(tmp_path, windows=windows, **thresholds)
        store = _same_as_full(changed, production, tmp_path, kept)
        assert store.misses == 0, thresholds
    # a changed method or setting, a new release: files and clusters reused, windows measured
    psi = {"numeric": {"method": "psi", "threshold": None}}
    for changed in (
        _context(tmp_path, windows=windows, drift=psi),
        _context(tmp_path, windows=windows, drift={"numeric_low_cardinality": 2}),
        _context(tmp_path, "other", seed=7, windows=windows),  # a new release's bundle
    ):
        store = _same_as_full(changed, production, tmp_path, kept)
        assert store.hits > 0 and store.misses > 0
    _same_as_full(ctx, production, tmp_path, kept)

    # an edited window (same name, other rows) and a removed one
    files = [w.path for w in list_windows(production)]  # loose: write_window's layout
    edited = fakes.traffic(100, seed=11, start=_day(3))
    edited.to_parquet(files[-2])
    files[0].unlink()
    _same_as_full(ctx, production, tmp_path, kept)

    # a code version bump: nothing kept is used, everything recomputed, same reports
    bumped = _same_as_full(ctx, production, tmp_path, kept, code="v2")
    assert bumped.hits == 0
    # pruned to this run's entries: the v1 entries are gone
    entries = {
        (path.parent.name, path.name.removesuffix(".jsonl"), line.split("\t")[0])
        for path in kept.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    }
    assert entries == bumped.used


@pytest.mark.parametrize("detail", [100, 1], ids=["all-detailed", "one-detailed"])
def test_kept_reports_equal_a_full_recomputation_quick(tmp_path: Path, detail: int) -> None:
    """The suite's share of the test above: a new window, a threshold, an edited window; with
    every window shown in detail, and with only the newest (the others read as summaries)."""
    production, kept = tmp_path / "production", tmp_path / "kept"
    production.mkdir()
    for day in (1, 2, 3):
        write_window(fakes.traffic(100, seed=day, start=_day(day)), production)
    windows = {"by": "rows", "rows": 150, "min_rows": 50}
    report = {"detail_windows": detail, "history_buckets": 2}
    ctx = _context(tmp_path, windows=windows, report=report)
    _same_as_full(ctx, production, tmp_path, kept)
    new = write_window(fakes.traffic(100, seed=4, start=_day(4), shift=2.0), production)
    assert _same_as_full(ctx, production, tmp_path, kept).hits > 0
    changed = _context(tmp_path, windows=windows, report=report, drift={"drift_share": 0.1})
    assert _same_as_full(changed, production, tmp_path, kept).misses == 0
    fakes.traffic(100, seed=5, start=_day(4)).to_parquet(new.path)
    assert _same_as_full(ctx, production, tmp_path, kept).misses > 0


def test_only_the_windows_shown_in_detail_are_decoded_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run decodes every window's summary and the full result only of the windows the
    reports show in detail; the others stay kept unread, and are pruned with their window."""
    production, kept = tmp_path / "production", tmp_path / "kept"
    production.mkdir()
    for day in (1, 2, 3, 4):
        write_window(fakes.traffic(100, seed=day, start=_day(day)), production)
    report = {"detail_windows": 1, "history_buckets": 2}
    ctx = _context(tmp_path, windows={"by": "rows", "rows": 100, "min_rows": 50}, report=report)
    _same_as_full(ctx, production, tmp_path, kept)

    asked: list[str] = []
    get = KeptStore.get

    def spy(self: KeptStore, kind: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(kind)
        return get(self, kind, *args, **kwargs)

    monkeypatch.setattr(KeptStore, "get", spy)
    store = _same_as_full(ctx, production, tmp_path, kept)
    assert store.misses == 0
    assert asked.count("summaries") == 4 * 2  # both runs: the kept one and the full one
    assert asked.count("results") == 1 + 4  # the newest; the full run asks for every one
    monkeypatch.undo()

    def entries(kind: str) -> int:
        return sum(len(p.read_text().splitlines()) for p in (kept / kind).glob("*.jsonl"))

    assert entries("results") == entries("summaries") == 4  # kept, though not read
    list_windows(production)[0].path.unlink()
    _same_as_full(ctx, production, tmp_path, kept)
    assert entries("results") == entries("summaries") == 3  # pruned with their window


def test_a_kept_window_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    production, kept = tmp_path / "production", tmp_path / "kept"
    production.mkdir()
    for day in (1, 2):
        write_window(fakes.traffic(100, seed=day, start=_day(day)), production)
    ctx = _context(tmp_path, windows={"by": "rows", "rows": 100, "min_rows": 50})
    _run(ctx, production, tmp_path / "out", KeptStore(kept, code="v1"))

    parsed = _count_parquet_reads(monkeypatch)
    write_window(fakes.traffic(100, seed=3, start=_day(3)), production)
    store = KeptStore(kept, code="v1")
    _run(ctx, production, tmp_path / "out", store)
    assert len(parsed) == 1  # the new file only, once (it is also the newest window)
    assert store.misses == 4  # its file's summary, its cluster's, its result and its summary


def test_collect_is_unchanged_by_a_kept_store(tmp_path: Path) -> None:
    production = tmp_path / "production"
    production.mkdir()
    for day in (1, 2):
        write_window(fakes.traffic(120, seed=day, start=_day(day)), production)
    spec = _context(tmp_path, windows={"by": "rows", "rows": 100, "min_rows": 10}).settings
    store = KeptStore(tmp_path / "kept", code="v1")
    plain = collect({"production": production}, spec.windows)
    for _ in range(2):
        kept = collect({"production": production}, spec.windows, kept=store)
        assert [(w.id, w.files, len(w.frame)) for w in kept] == [
            (w.id, w.files, len(w.frame)) for w in plain
        ]


def test_a_torn_kept_entry_is_computed_again(tmp_path: Path) -> None:
    """Packs are not fsynced: an entry a power cut left empty or torn reads as missing, and
    the other entries of its pack are still used."""
    store = KeptStore(tmp_path / "kept", code="v1")
    store.put("files", "abc", {"rows": 1})
    store.put("files", "other", {"rows": 2})
    store.save()
    (path,) = (tmp_path / "kept").rglob("*.jsonl")
    whole = path.read_text()
    name = store._name("files", "abc")
    line = next(x for x in whole.splitlines() if x.startswith(name))
    for torn in (f"{name}\t", f"{name}\t{{not json", f"{name}\t[1]", name[:30]):
        path.write_text(whole.replace(line, torn))
        again = KeptStore(tmp_path / "kept", code="v1")
        assert again.get("files", "abc") is None and again.misses == 1
        assert again.get("files", "other") == {"rows": 2}
        again.put("files", "abc", {"rows": 1})
        again.save()
        assert KeptStore(tmp_path / "kept", code="v1").get("files", "abc") == {"rows": 1}
    path.write_text(whole[: len(whole) // 2])  # cut short
    again = KeptStore(tmp_path / "kept", code="v1")
    assert again.get("files", "abc") is None or again.get("files", "other") is None


def test_the_kept_folder_holds_a_pack_per_kind_and_month(tmp_path: Path) -> None:
    """DVC walks every file of the folder on each `dvc status`: the store keeps a pack per kind
    and closed month and per kind and day of the current month, not files per window; a closed
    month's packs are not rewritten by a new window, and when the month closes its day packs
    move into the month pack, nothing computed again."""
    production, kept = tmp_path / "production", tmp_path / "kept"
    for month, day in ((3, 1), (3, 2), (4, 5), (4, 6), (4, 7)):  # two months of windows
        start = f"2025-{month:02d}-{day:02d}T00:00:00+00:00"
        write_window(fakes.traffic(120, seed=day, start=start), production)
    ctx = _context(tmp_path, windows={"by": "rows", "rows": 100, "min_rows": 50})
    _same_as_full(ctx, production, tmp_path, kept)

    def packs() -> list[str]:
        return sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file())

    names = sorted({p.split("/")[1] for p in packs()})
    assert names == ["2025-03.jsonl", "2025-04-05.jsonl", "2025-04-06.jsonl", "2025-04-07.jsonl"]
    loose = [kind for kind in KINDS if kind != "packs"]  # write_window's windows are loose
    closed = [kept / kind / "2025-03.jsonl" for kind in loose]
    stamps = [p.stat().st_mtime_ns for p in closed]
    write_window(fakes.traffic(120, seed=8, start="2025-04-08T00:00:00+00:00"), production)
    store = _same_as_full(ctx, production, tmp_path, kept)
    assert store.misses > 0
    assert [p.stat().st_mtime_ns for p in closed] == stamps  # a closed month: untouched
    write_window(fakes.traffic(120, seed=9, start="2025-05-01T00:00:00+00:00"), production)
    store = _same_as_full(ctx, production, tmp_path, kept)  # April closes
    names = sorted({p.split("/")[1] for p in packs()})
    assert names == ["2025-03.jsonl", "2025-04.jsonl", "2025-05-01.jsonl"]
    # April moved (4 windows), not recomputed; computed: the new file's summary, its cluster's,
    # and its windows' results and summaries
    assert store.misses <= 6 and store.hits >= 12
    assert _same_as_full(ctx, production, tmp_path, kept).misses == 0


def test_reports_are_bounded_whatever_the_history(tmp_path: Path) -> None:
    """report.json and report.html detail the latest windows and summarise the rest in a
    bounded number of buckets: their size does not grow with the history; history.csv keeps
    one row per window."""
    import json

    production = tmp_path / "production"
    production.mkdir()
    ctx = _context(
        tmp_path,
        windows={"by": "rows", "rows": 20, "min_rows": 1000},  # insufficient data: no tests
        report={"detail_windows": 2, "history_buckets": 3},
    )
    sizes = {}
    for count in (6, 12):
        for index in range(count):
            start = f"2025-03-{1 + index // 24:02d}T{index % 24:02d}:00:00+00:00"  # hourly
            write_window(fakes.traffic(20, seed=index, start=start), production)
        out = tmp_path / f"out{count}"
        _run(ctx, production, out, KeptStore(None))
        document = json.loads((out / "report.json").read_text())
        assert [w["id"] for w in document["windows"]] == [
            w.id for w in list_windows(production)[-2:]
        ]
        history = document["history"]
        assert history["windows"] == count and history["detailed"] == 2
        assert len(history["buckets"]) <= 3
        assert sum(b["windows"] for b in history["buckets"]) == history["windows"]
        html = (out / "report.html").read_text()
        assert "id='buckets'" in html and html.count("<tr") <= 2 + 1 + 3 + 1 + 20
        assert len((out / "history.csv").read_text().splitlines()) == history["windows"] + 1
        sizes[count] = (len((out / "report.json").read_bytes()), len(html))
    assert abs(sizes[12][0] - sizes[6][0]) < 300 and abs(sizes[12][1] - sizes[6][1]) < 300


def test_maintenance_reads_only_the_windows_the_live_release_labelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollback policy's rows (labelled, scored by the live release) come from the windows
    whose kept file summaries say they hold some: the others are never parsed, and the rows
    are those of every window filtered, in the same order."""
    import pandas as pd

    production, kept = tmp_path / "production", tmp_path / "kept"
    production.mkdir()
    spec = _context(tmp_path, windows={"by": "rows", "rows": 100, "min_rows": 50}).settings
    for day in range(1, 9):
        release = "r0001-aaaa" if day < 6 else "r0002-bbbb"
        written = write_window(
            fakes.traffic(100, seed=day, start=_day(day), release=release), production
        )
        if day == 8:
            written.path.unlink()  # the newest: not labelled yet
            write_window(
                fakes.traffic(100, seed=day, start=_day(day), release=release, labelled=0.0),
                production,
            )
    writer = KeptStore(kept, code="v1")
    survey({"production": production}, spec.windows, kept=writer)
    writer.save()

    parsed = _count_parquet_reads(monkeypatch)
    store = KeptStore(kept, code="v1", read_only=True)
    live = survey({"production": production}, spec.windows, kept=store).labelled_by("r0002-bbbb")
    assert [w.frame["__release__"].unique().tolist() for w in live] == [["r0002-bbbb"]] * 2
    assert len(parsed) == 2 and store.misses == 0  # days 6 and 7 only
    every = collect({"production": production}, spec.windows)
    expected = pd.concat([w.frame for w in every], ignore_index=True)
    expected = expected[expected["__release__"] == "r0002-bbbb"]
    expected = expected[expected["__label__"].notna()].reset_index(drop=True)
    got = pd.concat([w.frame for w in live], ignore_index=True)
    got = got[got["__label__"].notna()].reset_index(drop=True)
    # the same rows in the same order; a column's dtype may differ where the full concat mixed
    # in windows without labels (object) and this one does not (strings): the same values
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_a_sealed_pack_is_summarised_once_and_its_members_never_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed month's or day's pack is read and digested whole and its members' summaries
    decoded as one entry; when the month closes and its days are packed again, the members'
    own summaries (kept unread meanwhile) spare parsing them."""
    from pipeline import windows

    production, kept = tmp_path / "production", tmp_path / "kept"
    for month, day in ((3, 1), (3, 2), (4, 5), (4, 6), (4, 7)):
        write_window(fakes.traffic(120, seed=day, start=f"2025-{month:02d}-{day:02d}"), production)
    windows.apply_seal(windows.plan_seal(production), track=False)
    assert {p.suffix for p in production.rglob("*") if p.is_file()} == {".zip", ".parquet"}
    ctx = _context(tmp_path, windows={"by": "rows", "rows": 100, "min_rows": 50})
    _same_as_full(ctx, production, tmp_path, kept)

    members: list[str] = []
    read_member = windows.read_member

    def spy(pack: Path, member: str) -> bytes:
        members.append(member)
        return read_member(pack, member)

    monkeypatch.setattr(windows, "read_member", spy)
    store = KeptStore(kept, code="v1")
    _run(ctx, production, tmp_path / "again", store)
    assert members == [] and store.misses == 0  # the packs digested whole, no member read

    write_window(fakes.traffic(120, seed=9, start="2025-05-01"), production)
    windows.apply_seal(windows.plan_seal(production), track=False)  # April closes
    parsed = _count_parquet_reads(monkeypatch)
    store = KeptStore(kept, code="v1")
    _run(ctx, production, tmp_path / "closed", store)
    assert len(parsed) == 1  # the new window only (also the newest): April's were not parsed
    assert _same_as_full(ctx, production, tmp_path, kept).misses == 0
