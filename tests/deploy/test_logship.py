"""`mlops logs ship` / `mlops logs fetch` (pipeline/deploy/logship.py): prediction logs from the
serving machine to CI through any location a DVC remote can be, idempotently, with errors that
name the real cause (finding 4 of issue 15: nothing shipped the logs, and `dvc get-url` of an
https directory wrote the web server's index page as a log file)."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import cli
from pipeline.deploy import logship
from pipeline.errors import MlopsError


def entry(i: int) -> str:
    return (
        json.dumps(
            {
                "request_id": f"r{i:04d}",
                "time": f"2026-05-01T08:{i:02d}:00Z",
                "release": None,
                "inputs": {"x": i},
                "prediction": 1,
            }
        )
        + "\n"
    )


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, Path]:
    """(project root with a .dvc/config, the service's log directory) with a rotated file, a
    current file ending in a partial line, and feedback."""
    root = tmp_path / "project"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc/config").write_text("")
    logs = root / "logs/local"
    logs.mkdir(parents=True)
    (logs / "predictions.00000001.jsonl").write_text("".join(entry(i) for i in range(5)))
    (logs / "predictions.jsonl").write_text(entry(5) + entry(6) + '{"request_id": "r00')
    (logs / "feedback.jsonl").write_text('{"request_id": "r0001", "label": 1}\n')
    return root, logs


def test_ship_then_fetch_gives_ci_what_the_service_logged(
    served: tuple[Path, Path], tmp_path: Path
) -> None:
    root, logs = served
    loc = logship.location(root, url=str(tmp_path / "shipped"))
    first = logship.ship(logs, loc, "local")
    assert sorted(first.uploaded) == [
        "feedback.current.jsonl",
        "predictions.00000001.jsonl",
        "predictions.current.jsonl",
    ]
    again = logship.ship(logs, loc, "local")
    assert again.uploaded == [], "shipping twice uploads nothing"
    manifest = json.loads((tmp_path / "shipped/manifest.json").read_text())
    assert manifest["target"] == "local" and len(manifest["files"]) == 3

    ci = tmp_path / "ci/logs/local"
    written = logship.fetch(loc, ci, "local")
    assert sorted(written) == ["feedback.jsonl", "predictions.00000001.jsonl", "predictions.jsonl"]
    assert (ci / "predictions.00000001.jsonl").read_bytes() == (
        logs / "predictions.00000001.jsonl"
    ).read_bytes()
    # only complete lines of the current file: the partial one is not final yet
    assert (ci / "predictions.jsonl").read_text() == entry(5) + entry(6)
    assert logship.fetch(loc, ci, "local") == [], "fetching twice writes nothing"

    # the service appends and rotates: the next ship adds, the manifest follows
    (logs / "predictions.jsonl").rename(logs / "predictions.00000002.jsonl")
    (logs / "predictions.jsonl").write_text(entry(7))
    assert sorted(logship.ship(logs, loc, "local").uploaded) == [
        "predictions.00000002.jsonl",
        "predictions.current.jsonl",
    ]
    assert sorted(logship.fetch(loc, ci, "local")) == [
        "predictions.00000002.jsonl",
        "predictions.jsonl",
    ]


def test_a_rotated_file_is_never_overwritten(served: tuple[Path, Path], tmp_path: Path) -> None:
    root, logs = served
    loc = logship.location(root, url=str(tmp_path / "shipped"))
    logship.ship(logs, loc, "local")
    (logs / "predictions.00000001.jsonl").write_text(entry(9))  # another service's file
    with pytest.raises(MlopsError, match="exists with other content") as caught:
        logship.ship(logs, loc, "local")
    assert "give every service its own" in caught.value.render()


def test_fetch_names_the_real_cause(served: tuple[Path, Path], tmp_path: Path) -> None:
    root, logs = served
    empty = logship.location(root, url=str(tmp_path / "nothing-here"))
    with pytest.raises(MlopsError, match=r"no manifest\.json: no prediction log was shipped there"):
        logship.fetch(empty, tmp_path / "ci", "local")
    loc = logship.location(root, url=str(tmp_path / "shipped"))
    logship.ship(logs, loc, "local")
    with pytest.raises(MlopsError, match="holds the logs of target 'local', not 'batch'"):
        logship.fetch(loc, tmp_path / "ci", "batch")
    (tmp_path / "shipped/predictions.00000001.jsonl").write_text("tampered\n")
    with pytest.raises(MlopsError, match="its sha256 is not the one the manifest records"):
        logship.fetch(loc, tmp_path / "ci", "local")


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static web server on loopback serving tmp_path/www (directory listings on)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", www
    finally:
        server.shutdown()
        server.server_close()


def test_an_https_directory_works_when_shipped_and_is_named_when_not(
    served: tuple[Path, Path], web: tuple[str, Path], tmp_path: Path
) -> None:
    """A web server's directory index is not a log: the error says nothing was shipped there
    (before, `dvc get-url` saved the index page and the next step blamed the service)."""
    root, logs = served
    url, www = web
    (www / "logs").mkdir()
    (www / "logs/predictions.00000001.jsonl").write_text(entry(1))  # copied by hand, no manifest
    with pytest.raises(MlopsError) as caught:
        logship.fetch(logship.location(root, url=f"{url}/logs"), tmp_path / "ci", "local")
    assert "no prediction log was shipped there" in caught.value.render()
    assert "index page is not one" in caught.value.render()
    # shipped to the directory the web server publishes: fetched over http
    logship.ship(logs, logship.location(root, url=str(www / "shipped")), "local")
    got = logship.fetch(logship.location(root, url=f"{url}/shipped"), tmp_path / "ci", "local")
    assert "predictions.00000001.jsonl" in got


def test_the_commands_parse() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["logs", "ship", "--url", "s3://bucket/logs/local"])
    assert args.url == "s3://bucket/logs/local" and args.target is None
    args = parser.parse_args(["logs", "fetch", "--remote", "logs", "--target", "local"])
    assert (args.remote, args.target) == ("logs", "local")
    with pytest.raises(SystemExit):
        parser.parse_args(["logs", "fetch"])  # a location is required
