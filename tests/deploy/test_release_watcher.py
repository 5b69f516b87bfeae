"""The release watcher reads `deploy/<target>.json` while `mlops sync` rewrites it in place
(`git merge --ff-only` truncates and rewrites): a record caught mid-write must not be reported
as broken, while one that stays broken still is."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.deploy.service.releases import Desired, ReleaseSlot, ReleaseWatcher

SHA = "ab" * 32
RELEASE = f"r0001-{SHA[:16]}"


def record() -> bytes:
    bundle = {"id": SHA[:16], "sha256": SHA, "path": f"bundles/{SHA[:16]}"}
    return json.dumps({"target": "local", "release": RELEASE, "bundle": bundle}).encode()


def watcher(root: Path) -> tuple[ReleaseWatcher, list[Desired]]:
    loaded: list[Desired] = []

    class Loaded:
        release = RELEASE
        digest = SHA
        bundle_id = SHA[:16]

    def loader(desired: Desired, threads: int) -> Any:
        loaded.append(desired)
        return Loaded()

    path = root / "deploy" / "local.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    slot = ReleaseSlot("local")
    return ReleaseWatcher(path, root, slot, threads=1, loader=loader), loaded


def check_while_written(watch: ReleaseWatcher, after: float = 0.12) -> bool:
    """One poll while another thread writes the whole record `after` seconds from now."""

    def finish() -> None:
        time.sleep(after)
        watch.path.write_bytes(record())

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        return watch.check()
    finally:
        writer.join()


def test_a_record_caught_mid_rewrite_is_read_whole(tmp_path: Path) -> None:
    watch, loaded = watcher(tmp_path)
    watch.path.write_bytes(b"")  # git has created the file and not yet written it
    changed = check_while_written(watch)
    assert watch.slot.error is None
    assert changed and [d.release for d in loaded] == [RELEASE]


def test_a_record_missing_for_a_moment_is_waited_for(tmp_path: Path) -> None:
    watch, loaded = watcher(tmp_path)  # git has removed the file and not yet created it
    check_while_written(watch)
    assert watch.slot.error is None and [d.release for d in loaded] == [RELEASE]


def test_a_record_that_stays_broken_is_reported(tmp_path: Path) -> None:
    watch, loaded = watcher(tmp_path)
    watch.path.write_bytes(b'{"target": "local", "release": ')
    assert not watch.check()
    assert watch.slot.error is not None and "not valid JSON" in watch.slot.error
    assert "keeping the current model" in watch.slot.error and loaded == []
    watch.path.unlink()
    watch.check()
    assert "cannot read the deploy file" in str(watch.slot.error)
