"""Release ids and records, and the commands outside the graph: release (atomic), rollback
(atomic), gate --check and status, run in-process on copies of the reproduced template."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from pipeline import cli
from pipeline.deploy import release as release_mod
from pipeline.deploy.status import render_status
from pipeline.errors import ArtifactError, ConfigError, GateError
from pipeline.release_record import next_release_id, parse_release_id, read_record
from tests.deploy.conftest import record, report, tree_digests

ID = "3f9a1c2b5e6d7f80"


# ----------------------------------------------------------------------------- release ids
@pytest.mark.parametrize(
    ("parent", "expected"),
    [
        (None, f"r0001-{ID}"),
        ("r0001-0000000000000000", f"r0002-{ID}"),
        ("r0999-0000000000000000", f"r1000-{ID}"),
        ("r9999-0000000000000000", f"r10000-{ID}"),
    ],
)
def test_next_release_id(parent: str | None, expected: str) -> None:
    assert next_release_id(parent, ID) == expected
    assert parse_release_id(expected)[1] == ID


@pytest.mark.parametrize(
    "bad",
    [
        "r001-3f9a1c2b5e6d7f80",
        "r0001-3F9A1C2B5E6D7F80",
        "0001-x",
        "",
        "r0001-3f9a1c2b5e6d7f80\n",  # a `$` anchor matched before a trailing newline
        " r0001-3f9a1c2b5e6d7f80",
    ],
)
def test_malformed_release_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a release id"):
        parse_release_id(bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"target": "batch", "release": null}', 'expected an object with "target": "local"'),
        ('{"target": "local", "release": "r1-x"}', "not a release id"),
        (
            '{"target": "local", "release": "r0001-3f9a1c2b5e6d7f80", '
            '"bundle": {"id": "0000000000000000", "sha256": "x"}}',
            "do not match release",
        ),
        ("{not json", "not valid JSON"),
        ('{"target": "local", "release": "r0001-3f9a1c2b5e6d7f80\\n"}', "not a release id"),
        (
            '{"target": "local", "release": "r0001-3f9a1c2b5e6d7f80", "bundle": '
            '{"id": "3f9a1c2b5e6d7f80", "sha256": "3f9a1c2b5e6d7f80' + "0" * 48 + '", '
            '"path": "models/bundle"}}',
            r"bundle\.path is 'models/bundle', expected 'bundles/3f9a1c2b5e6d7f80'",
        ),
    ],
)
def test_broken_release_records_are_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "local.json"
    path.write_text(content)
    with pytest.raises(ArtifactError, match=message):
        read_record(path, "local")


# --------------------------------------------------------------------------- in a project
@pytest.fixture
def root(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(project)
    return project


def _failing_after_add(args: Sequence[str], cwd: Path) -> None:
    """`dvc add` succeeds (pointer and .gitignore written), then the release fails."""
    release_mod.run_dvc(args, cwd)
    raise ArtifactError("simulated failure after dvc add")


@pytest.mark.integration
@pytest.mark.parametrize("fail", ["after dvc add", "at the second release record"])
def test_failed_release_leaves_every_file_byte_identical(
    root: Path, monkeypatch: pytest.MonkeyPatch, fail: str
) -> None:
    before = tree_digests(root, "deploy", "bundles", "conf", "reports", "models")
    dvc = release_mod.run_dvc
    if fail == "after dvc add":
        dvc = _failing_after_add
    else:
        written: list[Path] = []

        def write_once(path: Path, text: str) -> None:
            if written:
                raise OSError("simulated disk full")
            written.append(path)
            real_write(path, text)

        real_write = release_mod.atomic_write_text
        monkeypatch.setattr(release_mod, "atomic_write_text", write_once)
    with pytest.raises((ArtifactError, OSError), match="simulated"):
        release_mod.release(root, dvc=dvc)
    assert tree_digests(root, "deploy", "bundles", "conf", "reports", "models") == before
    assert sorted(p.name for p in (root / "bundles").iterdir()) == [".gitkeep"]


@pytest.mark.integration
def test_stale_report_is_refused(root: Path) -> None:
    cli.main(["compose", "deploy.targets.batch.gates.compare.margin=0.02"])
    before = tree_digests(root, "deploy", "bundles")
    with pytest.raises(ArtifactError, match=r"reports/deploy/batch.json is stale: .*settings"):
        release_mod.release(root, ["batch"])
    assert tree_digests(root, "deploy", "bundles") == before


@pytest.mark.integration
def test_gate_check_exit_codes(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gate", "--check"]) == 0
    assert "local: propose r0001-" in capsys.readouterr().out
    blocked = report(root, "batch") | {
        "decision": "blocked",
        "proposal": None,
        "reasons": ["floor: test roc_auc 0.5 is under the floor 0.9", "smoke: boom"],
    }
    (root / "reports/deploy/batch.json").write_text(json.dumps(blocked))
    assert cli.main(["gate", "--check"]) == 1
    out = capsys.readouterr().out
    assert "batch: blocked\n  - floor: test roc_auc 0.5" in out and "  - smoke: boom" in out
    assert cli.main(["gate", "--check", "--target", "local"]) == 0
    assert cli.main(["gate"]) == 0  # without --check it only reports
    (root / "reports/deploy/local.json").unlink()
    assert cli.main(["gate", "--check"]) == 2
    assert "reports/deploy/local.json does not exist" in capsys.readouterr().err
    assert cli.main(["gate", "--check", "--target", "nope"]) == 2


@pytest.mark.integration
def test_failed_rollback_leaves_conf_and_params_byte_identical(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def snapshot() -> dict[str, str]:
        return tree_digests(root, "conf") | {"params.yaml": (root / "params.yaml").read_text()}

    before = snapshot()
    with pytest.raises(GateError, match="nothing has been released to local"):
        release_mod.rollback(root, "local")
    release_mod.release(root)
    released = snapshot()
    with pytest.raises(GateError, match="has no parent release"):
        release_mod.rollback(root, "local")
    with pytest.raises(GateError, match="never released here"):
        release_mod.rollback(root, "local", to="r0000-0123456789abcdef")
    assert snapshot() == released
    # ids are matched whole: a trailing newline is not the same id
    rolled = cli.main(["rollback", "--target", "local", "--to", "r0000-0123456789abcdef\n"])
    assert rolled == 2 and snapshot() == released
    with pytest.raises(GateError, match=r"'r0000-0123456789abcdef\\n' is not a release id"):
        release_mod.rollback(root, "local", to="r0000-0123456789abcdef\n")

    from pipeline import config

    def refuse(*args: object, **kwargs: object) -> None:
        (root / "params.yaml").write_text("half-written")  # even a partial write is undone
        raise ConfigError("simulated refusal")

    monkeypatch.setattr(config, "write", refuse)
    pointer = root / "bundles" / "0123456789abcdef.dvc"
    pointer.write_text("outs: []\n")
    with pytest.raises(ConfigError, match="simulated refusal"):
        release_mod.rollback(root, "local", to="r0000-0123456789abcdef")
    pointer.unlink()
    assert snapshot() == released == before
    assert not (root / "conf/deploy/pins").exists() or not any(
        (root / "conf/deploy/pins").iterdir()
    )


# ---------------------------------------------------------------------------------- status
def _client(answer: dict | None) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/version"
        if answer is None:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=answer)

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.integration
def test_status_compares_declared_and_live_releases(root: Path) -> None:
    text = render_status(root, client=_client({"release": None, "bundle": None}), stages=None)
    assert "config:   params.yaml is up to date" in text
    assert "local (service): declared (none)" in text and "— in sync" in text
    assert "gate: propose r0001-" in text
    assert len(text.splitlines()) <= 20

    release_mod.release(root)
    rec = record(root, "local")
    live = {"release": rec["release"], "bundle": {"id": rec["bundle"]["id"], "sha256": "0" * 64}}
    text = render_status(root, client=_client(live), stages=None)
    assert f"live: {rec['release']} at 127.0.0.1:8000 — OUT OF SYNC" in text  # other bytes
    live["bundle"]["sha256"] = rec["bundle"]["sha256"]
    assert "— in sync" in render_status(root, client=_client(live), stages=None)
    down = render_status(root, client=_client(None), stages=lambda _: "up to date")
    assert "live: unreachable at 127.0.0.1:8000" in down and "stages:   up to date" in down


@pytest.mark.integration
def test_status_refuses_a_broken_release_record(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated deploy/<target>.json is an error (exit 2), not "declared (none)"."""
    text = (root / "deploy/local.json").read_text()
    (root / "deploy/local.json").write_text(text[: len(text) // 2])
    with pytest.raises(ArtifactError, match=r"deploy/local\.json: not valid JSON"):
        render_status(root, client=_client(None), stages=None)
    assert cli.main(["status"]) == 2
    err = capsys.readouterr().err
    assert "deploy/local.json: not valid JSON" in err and "Traceback" not in err
