"""Retention (`mlops windows retain`, pipeline.monitor.retention): old raw windows leave the
workspace, their verdicts move to monitor/archive/, the reports stay the same, and a failed
command changes nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.monitor.engine import load_context, monitor
from pipeline.monitor.kept import KeptStore
from pipeline.monitor.retention import apply, plan, read_archive
from pipeline.monitor.windowing import survey
from pipeline.paths import CHAMPION_BUNDLE, MONITOR_ARCHIVE, MONITOR_KEPT, PRODUCTION_DIR
from pipeline.windows import list_windows, track_partitions, write_window
from tests.monitor import fakes

OUTPUTS = ("report.json", "report.html", "history.csv", "metrics.json")


def _project(root: Path, keep_raw_days: int | None) -> SimpleNamespace:
    rng = np.random.default_rng(1)
    fakes.write_bundle(root / CHAMPION_BUNDLE, rng.choice(fakes.CLASSES, 300).tolist())
    (root / "deploy").mkdir()
    (root / "deploy/local.json").write_text(json.dumps({"release": None, "target": "local"}))
    (root / PRODUCTION_DIR).mkdir(parents=True)
    from dvc.repo import Repo

    Repo.init(str(root), no_scm=True).close()  # windows are tracked per month partition
    for day in range(1, 7):
        frame = fakes.traffic(100, seed=day, start=f"2025-03-{day:02d}T00:00:00+00:00")
        write_window(frame, root / PRODUCTION_DIR)
    track_partitions([root / PRODUCTION_DIR / "2025-03"])
    settings, dataset = fakes.typed(
        fakes.params(
            windows={"by": "rows", "rows": 100, "min_rows": 50},
            retention={"keep_raw_days": keep_raw_days},
        )
    )
    return SimpleNamespace(monitor=settings, dataset=dataset)


def _reports(root: Path, params: SimpleNamespace, out: Path) -> dict[str, bytes]:
    """The monitor stage's outputs (with its kept results, which `plan` then reuses)."""
    ctx = load_context(root, params.monitor, params.dataset)
    kept = KeptStore(root / MONITOR_KEPT)
    traffic = survey({"production": root / PRODUCTION_DIR}, ctx.settings.windows, kept=kept)
    monitor(traffic, ctx, out, kept=kept, archived=read_archive(root / MONITOR_ARCHIVE))
    kept.prune()
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".mlops" not in p.parts and ".dvc" not in p.parts  # DVC's own state
    }


def test_retired_windows_leave_the_workspace_and_stay_in_the_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    params = _project(root, keep_raw_days=2)
    monkeypatch.chdir(root)
    before = _reports(root, params, tmp_path / "before")
    tree = _tree(root)

    retired, why = plan(root, params)
    assert "2 days before the newest row" in why
    # days 1-3 ended before day 6's last row minus 2 days; day 4 ends exactly there: kept
    assert [w.id[:8] for w in retired] == ["20250301", "20250302", "20250303"]
    assert _tree(root) == tree  # planning is a dry run

    apply(root, retired)
    left = [w.id[:8] for w in list_windows(root / PRODUCTION_DIR)]
    assert left == ["20250304", "20250305", "20250306"]
    pointer = root / PRODUCTION_DIR / "2025-03.dvc"  # the month's pointer follows
    assert hashlib.sha256(pointer.read_bytes()).hexdigest() != tree[f"{PRODUCTION_DIR}/2025-03.dvc"]
    assert "nfiles: 3" in pointer.read_text()
    assert len(list((root / MONITOR_ARCHIVE).glob("*.json"))) == 3
    after = _reports(root, params, tmp_path / "after")
    for name in OUTPUTS:
        assert after[name] == before[name], name
    assert plan(root, params)[0] == []  # nothing more to retire


def test_a_failed_retention_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    params = _project(root, keep_raw_days=2)
    monkeypatch.chdir(root)
    retired, _ = plan(root, params)
    tree = _tree(root)

    import pipeline.windows

    def half_then_fail(windows):
        windows = list(windows)
        windows[0].path.unlink()
        raise OSError("disk went away")

    monkeypatch.setattr(pipeline.windows, "remove_windows", half_then_fail)
    with pytest.raises(OSError, match="disk went away"):
        apply(root, retired)
    assert _tree(root) == tree


def test_no_policy_retires_nothing(tmp_path: Path) -> None:
    root = tmp_path / "project"
    params = _project(root, keep_raw_days=None)
    retired, why = plan(root, params)
    assert retired == [] and "keep_raw_days is null" in why


def test_a_broken_archive_entry_is_named(tmp_path: Path) -> None:
    from pipeline.errors import DataError

    (tmp_path / "a.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match=r"a\.json: not an archived monitoring window") as caught:
        read_archive(tmp_path)
    assert "mlops windows retain --apply" in (caught.value.hint or "")
