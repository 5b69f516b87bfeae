"""The layout of production windows (pipeline/windows.py) with real git and DVC: a window lands in
its month's partition, tracked as one DVC output; sealing packs closed days and months without
changing a window; two branches adding windows merge through DVC's merge driver; the earlier
layout (one .dvc file per window) migrates; removals are tracked; foreign files and killed
writers are refused or swept."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.errors import DataError
from pipeline.windows import (
    Window,
    apply_migration,
    apply_seal,
    find_window,
    list_windows,
    plan_migration,
    plan_seal,
    remove_windows,
    sweep_partial_windows,
    unfetched,
    write_window,
)
from tests.conftest import ROOT, dvc, mlops, sh, tree_digest
from tests.monitor.fakes import traffic

STAGE = """\
stages:
  monitor:
    cmd: python count.py
    deps:
      - count.py
      - data/production
    outs:
      - count.txt:
          cache: false
"""
COUNT = """\
from pipeline.windows import list_windows
from pathlib import Path
Path("count.txt").write_text(str(len(list_windows(Path("data/production")))))
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo with DVC, the project's .gitattributes and merge driver, and one stage that
    depends on data/production (as `monitor` does)."""
    root = tmp_path / "repo"
    (root / "data/production").mkdir(parents=True)
    (root / "data/production/.gitkeep").touch()
    (root / "dvc.yaml").write_text(STAGE)
    (root / "count.py").write_text(COUNT)
    (root / "conf").mkdir()
    (root / "conf/config.yaml").write_text("# mlops finds the project root by it\n")
    shutil.copy2(ROOT / ".gitattributes", root / ".gitattributes")
    sh(["git", "init", "-q", "-b", "main"], root)
    dvc("init", "-q", cwd=root)
    sh([str(ROOT / "scripts/git_merge_drivers.sh"), str(Path(sys.executable).parent / "dvc")], root)
    commit(root, "init")
    return root


def commit(root: Path, message: str) -> None:
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", message], root)


def prod(root: Path) -> Path:
    return root / "data/production"


def window(root: Path, start: str, seed: int = 1) -> Window:
    return write_window(traffic(20, seed=seed, start=start), prod(root))


@pytest.mark.slow
def test_a_new_window_lands_in_its_month_and_dvc_sees_it(repo: Path) -> None:
    first = window(repo, "2026-05-01T08:00:00+00:00")
    assert first.path == prod(repo) / "2026-05" / f"{first.id}.parquet"
    assert write_window(first.read(), prod(repo)) == first  # the same traffic: the same file
    dvc("add", "data/production/2026-05", cwd=repo)
    dvc("repro", cwd=repo)
    commit(repo, "first window")
    assert (repo / "count.txt").read_text() == "1"
    assert "up to date" in dvc("status", cwd=repo).stdout

    second = window(repo, "2026-05-03T08:00:00+00:00", seed=2)
    assert "modified" in dvc("status", cwd=repo).stdout  # the partition and the stage's dep
    dvc("add", "data/production/2026-05", cwd=repo)
    assert "Running stage 'monitor'" in dvc("repro", cwd=repo).stdout
    assert (repo / "count.txt").read_text() == "2"
    assert [w.id for w in list_windows(prod(repo))] == sorted([first.id, second.id])
    assert sorted(p.name for p in prod(repo).iterdir()) == [
        ".gitignore",
        ".gitkeep",
        "2026-05",
        "2026-05.dvc",
    ]


def test_seal_packs_closed_days_and_months_and_keeps_every_window(repo: Path) -> None:
    written = [
        window(repo, "2026-04-10T08:00:00+00:00", seed=1),
        window(repo, "2026-04-20T08:00:00+00:00", seed=2),
        window(repo, "2026-05-01T08:00:00+00:00", seed=3),
        window(repo, "2026-05-01T12:00:00+00:00", seed=4),
        window(repo, "2026-05-02T08:00:00+00:00", seed=5),  # the newest day: stays loose
    ]
    data = {w.id: w.data() for w in written}
    before = tree_digest(repo)
    plan = plan_seal(prod(repo))
    assert tree_digest(repo) == before  # planning writes nothing
    apply_seal(plan)
    assert sorted(p.name for p in (prod(repo) / "2026-04").iterdir()) == ["202604.zip"]
    assert sorted(p.name for p in (prod(repo) / "2026-05").iterdir()) == [
        "20260501.zip",
        f"{written[4].id}.parquet",
    ]
    after = list_windows(prod(repo))
    assert {w.id: w.data() for w in after} == data  # byte for byte, ids unchanged
    frame = after[0].read()  # read from its pack
    assert len(frame) == 20
    assert find_window(prod(repo), written[0].id) == after[0]
    assert write_window(frame, prod(repo)) == after[0]  # packed: never written again
    assert (prod(repo) / "2026-04.dvc").is_file() and (prod(repo) / "2026-05.dvc").is_file()
    assert plan_seal(prod(repo)).changes == {}  # sealed: a second seal does nothing
    dvc("repro", cwd=repo)
    assert (repo / "count.txt").read_text() == "5"

    # the same windows sealed elsewhere give the same packs, byte for byte
    other = repo.parent / "other"
    for w in after:
        write_window(w.read(), other)
    apply_seal(plan_seal(other), track=False)
    for pack in ("2026-04/202604.zip", "2026-05/20260501.zip"):
        assert (other / pack).read_bytes() == (prod(repo) / pack).read_bytes()


def test_seal_cli_dry_run_writes_nothing(repo: Path) -> None:
    window(repo, "2026-04-10T08:00:00+00:00", seed=1)
    window(repo, "2026-05-02T08:00:00+00:00", seed=2)
    before = tree_digest(repo)
    out = mlops("windows", "seal", cwd=repo).stdout
    assert "data/production/2026-04: 1 window(s) as 1 pack(s) (202604.zip) and 0 loose" in out
    assert "dry run: nothing written" in out
    assert tree_digest(repo) == before
    out = mlops("windows", "seal", "--apply", cwd=repo).stdout
    assert "tracked: data/production/2026-04.dvc, data/production/2026-05.dvc" in out


@pytest.mark.slow
def test_two_branches_adding_windows_to_one_month_merge(repo: Path) -> None:
    window(repo, "2026-05-01T08:00:00+00:00", seed=1)
    dvc("add", "data/production/2026-05", cwd=repo)
    commit(repo, "base")
    sh(["git", "checkout", "-qb", "side"], repo)
    theirs = window(repo, "2026-05-02T08:00:00+00:00", seed=2)
    dvc("add", "data/production/2026-05", cwd=repo)
    commit(repo, "side adds a window")
    sh(["git", "checkout", "-q", "main"], repo)
    dvc("checkout", "-q", cwd=repo)
    ours = window(repo, "2026-05-03T08:00:00+00:00", seed=3)
    dvc("add", "data/production/2026-05", cwd=repo)
    commit(repo, "main adds a window")

    # not vacuous: without the driver, git's own merge of the two pointers conflicts
    plain = repo / ".git/info/attributes"  # overrides .gitattributes: git's text merge
    plain.write_text("*.dvc merge=text\n")
    conflict = sh(["git", "merge", "--no-edit", "side"], repo, check=False)
    assert conflict.returncode != 0 and "CONFLICT" in conflict.stdout, conflict.stdout
    sh(["git", "merge", "--abort"], repo)
    plain.unlink()

    merged = sh(["git", "merge", "--no-edit", "side"], repo, check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr  # no conflict
    dvc("checkout", cwd=repo)
    ids = [w.id for w in list_windows(prod(repo))]
    assert theirs.id in ids and ours.id in ids and len(ids) == 3
    assert "up to date" in dvc("status", "data/production/2026-05.dvc", cwd=repo).stdout


def legacy(repo: Path, *starts: str) -> list[Window]:
    """Windows as the earlier layout kept them: at the top, one `dvc add` (.dvc file) each."""
    out = []
    for i, start in enumerate(starts):
        w = window(repo, start, seed=i + 1)
        flat = prod(repo) / w.path.name
        w.path.replace(flat)
        w.path.parent.rmdir()
        out.append(Window(w.id, flat))
    dvc("add", *(str(w.path.relative_to(repo)) for w in out), cwd=repo)
    commit(repo, "windows, one pointer each")
    return out


@pytest.mark.slow
def test_migration_from_one_pointer_per_window(repo: Path) -> None:
    old = legacy(repo, "2026-04-30T08:00:00+00:00", "2026-05-01T08:00:00+00:00")
    data = {w.id: w.data() for w in old}
    assert [w.id for w in list_windows(prod(repo))] == sorted(data)  # still read as they are

    before = tree_digest(repo)
    dry = mlops("windows", "migrate", cwd=repo).stdout
    assert "would move 2 window(s) into 2 month folder(s)" in dry and "dry run" in dry
    assert tree_digest(repo) == before

    out = mlops("windows", "migrate", "--apply", cwd=repo).stdout
    assert "moved 2 window(s)" in out
    assert {w.id: w.data() for w in list_windows(prod(repo))} == data
    names = sorted(p.name for p in prod(repo).iterdir())
    assert names == [".gitignore", ".gitkeep", "2026-04", "2026-04.dvc", "2026-05", "2026-05.dvc"]
    assert (prod(repo) / ".gitignore").read_text().split() == ["/2026-04", "/2026-05"]
    commit(repo, "migrated")
    dvc("repro", cwd=repo)
    assert (repo / "count.txt").read_text() == "2"
    again = mlops("windows", "migrate", cwd=repo).stdout
    assert "nothing to migrate" in again


def test_a_failed_migration_leaves_everything_byte_identical(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy(repo, "2026-04-30T08:00:00+00:00", "2026-05-01T08:00:00+00:00")
    before = tree_digest(repo)

    def broken(folders: object) -> None:
        raise OSError("dvc add failed")

    monkeypatch.setattr("pipeline.windows.track_partitions", broken)
    with pytest.raises(OSError, match="dvc add failed"):
        apply_migration(plan_migration(prod(repo)))
    assert tree_digest(repo) == before


def test_migration_refuses_unfetched_and_changed_windows(repo: Path) -> None:
    old = legacy(repo, "2026-04-30T08:00:00+00:00", "2026-05-01T08:00:00+00:00")
    old[0].path.unlink()
    with pytest.raises(DataError, match=r"1 tracked window\(s\) not in the workspace") as caught:
        plan_migration(prod(repo))
    assert "dvc pull" in (caught.value.hint or "")
    dvc("checkout", "-q", cwd=repo)
    old[1].path.chmod(0o644)
    old[1].path.write_bytes(old[0].data())
    with pytest.raises(DataError, match=r"differ from what their \.dvc pointer recorded"):
        plan_migration(prod(repo))
    refused = mlops("windows", "migrate", "--apply", cwd=repo, check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


def test_remove_windows_rewrites_packs_and_pointers(repo: Path) -> None:
    written = [
        window(repo, "2026-04-10T08:00:00+00:00", seed=1),
        window(repo, "2026-04-20T08:00:00+00:00", seed=2),
        window(repo, "2026-05-02T08:00:00+00:00", seed=3),
    ]
    apply_seal(plan_seal(prod(repo)))
    commit(repo, "sealed")
    pointer = (prod(repo) / "2026-04.dvc").read_text()
    packed = [w for w in list_windows(prod(repo)) if w.id == written[0].id]
    assert remove_windows(packed) == [prod(repo) / "2026-04"]
    assert [w.id for w in list_windows(prod(repo))] == [written[1].id, written[2].id]
    assert (prod(repo) / "2026-04.dvc").read_text() != pointer  # a reviewable change
    assert "up to date" in dvc("status", "data/production/2026-04.dvc", cwd=repo).stdout

    # the last window of a month: the month's folder and pointer go
    rest = [w for w in list_windows(prod(repo)) if w.id == written[1].id]
    remove_windows(rest)
    assert not (prod(repo) / "2026-04").exists() and not (prod(repo) / "2026-04.dvc").exists()
    assert "/2026-04" not in (prod(repo) / ".gitignore").read_text()

    with pytest.raises(DataError, match="not a window in its partition"):
        remove_windows([repo / "count.py"])


def test_a_failed_removal_changes_nothing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    window(repo, "2026-04-10T08:00:00+00:00", seed=1)
    window(repo, "2026-04-20T08:00:00+00:00", seed=2)
    window(repo, "2026-05-02T08:00:00+00:00", seed=3)
    apply_seal(plan_seal(prod(repo)))
    commit(repo, "sealed")
    before = tree_digest(repo)

    def broken(folders: object) -> None:
        raise OSError("dvc add failed")

    monkeypatch.setattr("pipeline.windows.track_partitions", broken)
    with pytest.raises(OSError, match="dvc add failed"):
        remove_windows(list_windows(prod(repo))[:1])
    assert tree_digest(repo) == before


@pytest.mark.parametrize(
    ("place", "name", "shown"),
    [
        ("top", "traffic.csv", "traffic.csv"),
        ("partition", "notes.txt", "2026-05/notes.txt"),
        ("partition", "20260401T080000-0123456789ab.parquet", "2026-05/20260401T080000-"),
        ("partition", "20260401.zip", "2026-05/20260401.zip"),
        ("pack", "stray.csv", "2026-05/20260501.zip:stray.csv"),
    ],
)
def test_list_windows_refuses_foreign_files(tmp_path: Path, place: str, name: str, shown: str):
    w = write_window(traffic(20, start="2026-05-02T08:00:00+00:00"), tmp_path)
    if place == "top":
        (tmp_path / name).write_text("a,b\n")
    elif place == "partition":
        (w.path.parent / name).write_text("x")
    else:
        import zipfile

        with zipfile.ZipFile(w.path.parent / "20260501.zip", "w") as pack:
            pack.writestr(name, "x")
    with pytest.raises(DataError, match="1 file\\(s\\) that are not production windows: ") as e:
        list_windows(tmp_path)
    assert shown in str(e.value)
    assert "month's folder (<YYYY-MM>/)" in (e.value.hint or "")


def test_an_unpulled_partition_is_named(tmp_path: Path) -> None:
    (tmp_path / "2026-05.dvc").write_text("outs: []\n")
    assert unfetched(tmp_path) == ["2026-05/"]


KILLED = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import pipeline.io
    from pipeline.windows import write_window
    from tests.monitor.fakes import traffic

    real = pipeline.io.os.fsync
    def die(fd):
        real(fd)
        os._exit(9)  # killed after the bytes are written, before the rename
    pipeline.io.os.fsync = die
    write_window(traffic(20, start="2026-05-02T08:00:00+00:00"), Path(sys.argv[1]))
    """
)


def test_a_killed_writer_leaves_no_window_visible(tmp_path: Path) -> None:
    out = tmp_path / "production"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, str(out)], cwd=ROOT, capture_output=True, check=False
    )
    assert proc.returncode == 9, proc.stderr
    assert not list(out.rglob("*.parquet"))  # nothing under a window's name
    with pytest.raises(DataError, match="not production windows"):
        list_windows(out)  # the leftover is named, never read as a window
    sweep_partial_windows(out)  # what the next writer does first
    assert list_windows(out) == []
    assert len(list_windows(out.parent / "production")) == 0
    w = write_window(traffic(20, start="2026-05-02T08:00:00+00:00"), out)
    assert list_windows(out) == [w]


def test_monitoring_reads_packed_windows_as_it_read_them_loose(tmp_path: Path) -> None:
    """Sealing changes where windows are stored, never what monitoring sees."""
    from pipeline.monitor.windowing import collect
    from pipeline.params import WindowSpec

    spec = WindowSpec(by="rows", rows=20, span="1d", min_rows=1)
    for i, start in enumerate(["2026-04-10T08:00:00+00:00", "2026-05-01T08:00:00+00:00"]):
        write_window(traffic(20, seed=i, start=start), tmp_path)
    write_window(traffic(20, seed=9, start="2026-05-02T08:00:00+00:00"), tmp_path)
    loose = collect({"production": tmp_path}, spec)
    assert apply_seal(plan_seal(tmp_path), track=False)  # two months rewritten
    assert len(list(tmp_path.rglob("*.zip"))) == 2
    packed = collect({"production": tmp_path}, spec)
    assert [(w.id, w.files) for w in packed] == [(w.id, w.files) for w in loose]
    for a, b in zip(loose, packed, strict=True):
        assert a.frame.equals(b.frame)


def test_packed_members_read_through_the_index_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack's index is read once per version of the file (a month of windows opened the
    zip once per member before: quadratic); the member's bytes are still the window's, a
    rewritten pack is re-indexed, and a damaged member is an error naming the pack."""
    import zipfile

    from pipeline.windows import write_pack

    pack = tmp_path / "2026-04" / "202604.zip"
    pack.parent.mkdir()
    from pipeline.windows import encode_window

    windows = [
        encode_window(traffic(20, seed=h, start=f"2026-04-1{h}T08:00:00+00:00")) for h in range(5)
    ]
    members = {f"{wid}.parquet": data for wid, data in windows}
    write_pack(pack, members)
    opened: list[object] = []
    real = zipfile.ZipFile

    def counting(*args: object, **kwargs: object) -> zipfile.ZipFile:
        opened.append(args[0])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile, "ZipFile", counting)
    for name, data in members.items():
        assert Window(name[:-8], pack, name).data() == data
    assert len(opened) == 1  # the index, once: not once per member
    monkeypatch.setattr(zipfile, "ZipFile", real)
    with zipfile.ZipFile(pack) as archive:
        assert {m: archive.read(m) for m in archive.namelist()} == members
    later = [
        encode_window(traffic(30, seed=h, start=f"2026-04-2{h}T08:00:00+00:00")) for h in range(4)
    ]
    changed = {f"{wid}.parquet": data for wid, data in later}
    write_pack(pack, changed)  # replaced atomically: a new inode, re-indexed
    assert [Window(n[:-8], pack, n).data() for n in changed] == list(changed.values())
    raw = bytearray(pack.read_bytes())
    first = next(iter(changed))
    at = raw.index(changed[first])
    raw[at] ^= 0xFF
    damaged = tmp_path / "2026-04" / "202604.tmp"
    damaged.write_bytes(raw)
    damaged.replace(pack)
    with pytest.raises(DataError, match=r"202604\.zip:.*CRC mismatch"):
        Window(first[:-8], pack, first).data()


def test_a_pack_names_its_newest_members_and_the_watermark_reads_only_those(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlops logs snapshot`'s watermark reads one footer per loose window and, of a sealed
    pack, only the members its comment names as holding its newest row: the same watermark
    as reading every footer, whatever the number of packed windows."""
    from pipeline import windows as windows_module
    from pipeline.deploy.service import snapshot

    for day in range(1, 25):
        write_window(traffic(30, seed=day, start=f"2026-04-{day:02d}T08:00:00+00:00"), tmp_path)
    write_window(traffic(30, seed=99, start="2026-05-01T08:00:00+00:00"), tmp_path)
    every = snapshot.watermark(tmp_path)  # loose: every footer
    assert apply_seal(plan_seal(tmp_path), track=False)
    assert len(list(tmp_path.rglob("*.zip"))) == 1  # April in a month pack
    read: list[object] = []
    real = windows_module.newest_time

    def counting(source: object) -> object:
        read.append(source)
        return real(source)  # type: ignore[arg-type]

    monkeypatch.setattr(snapshot, "newest_time", counting)
    assert snapshot.watermark(tmp_path) == every
    assert len(read) == 2  # April's newest member and May's loose window, not 25 footers
