"""Every `mlops` command given bad input: exit status 2, one message with a hint, no traceback,
and nothing changed.

The cases run `pipeline.cli.main` in-process (capsys), from outside any project, in a project
that has not been reproduced, and in a reproduced one; `test_every_command_is_walked` keeps the
lists complete as commands are added.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline import cli
from tests.conftest import copy_project, digests, env

Case = tuple[list[str], str]

# from a directory that is not inside a project
OUTSIDE: list[Case] = [
    (argv, "no conf/config.yaml in")
    for argv in (
        ["compose"],
        ["compose", "--check"],
        ["select", "dataset=my_data"],
        ["summary"],
        ["release"],
        ["rollback", "--target", "local"],
        ["unpin", "--target", "local"],
        ["gate"],
        ["predict", "--input", "x.csv", "--output", "y.csv"],
        ["status"],
        ["serve"],
        ["logs", "snapshot"],
        ["monitor", "--check"],
        ["sync", "--target", "local"],
        ["verify"],
        ["report", "--pr"],
        ["maintain"],
        ["maintain", "--apply"],
        ["windows", "seal"],
        ["windows", "migrate"],
        ["windows", "retain"],
    )
]

# rejected by the argument parser, before any command runs
USAGE: list[Case] = [
    (["serve", "--port", "99999"], "--port: expected a port number, 0-65535"),
    (["serve", "--port", "http"], "--port: expected a port number, 0-65535"),
    (["serve", "--poll-seconds", "0"], "--poll-seconds: expected a number > 0"),
    (["logs", "snapshot", "--window-rows", "0"], "--window-rows: expected a whole number >= 1"),
    (["logs", "snapshot", "--label-wait-minutes", "-5"], "expected a number of minutes"),
    (["predict", "--input", "a.csv", "--output", "b.csv", "--chunk-rows", "many"], "whole number"),
    (["sync", "--target", "local", "--interval", "nan"], "expected a number of seconds"),
    (["monitor", "--check", "--input", "x.csv"], "--input: not allowed with argument --check"),
    (["maintain", "--check", "--apply"], "--apply: not allowed with argument --check"),
    (["compose", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["schema"], "the following arguments are required"),
    (["image", "record", "--target", "local"], "the following arguments are required: --digest"),
]

# in a project that was composed but never reproduced
UNREPRODUCED: list[Case] = [
    (["maintain"], "reports/maintain/decision.json does not exist"),
    (["maintain", "--apply"], "reports/maintain/decision.json does not exist"),
    (["summary"], "reports/develop/selection.json is missing"),
    (["monitor", "--check"], "reports/monitor/report.json does not exist"),
    (["monitor"], "reports/monitor/report.json does not exist"),
    (["predict", "--input", "x.csv", "--output", "y.csv", "--bundle", "models/bundle"], "bundle"),
    (["rollback", "--target", "local"], "nothing has been released to local"),
    (["rollout", "abort", "--target", "local"], "no rollout is running on local"),
    (["render", "--target", "local"], "deploy.targets.local is a service target: it has no"),
    (
        ["image", "record", "--target", "local", "--digest", "sha256:" + "0" * 64],
        "deploy.targets.local is a service target: a service target has no image",
    ),
    (["install-units", "--target", "batch", "--dir", "."], "not a systemd target"),
]

# in a reproduced project
REPRODUCED: list[Case] = [
    (
        ["predict", "--input", "/missing.csv", "--output", "out.csv", "--bundle", "models/bundle"],
        "/missing.csv: the file to score does not exist",
    ),
    (
        ["predict", "--input", "notes.txt", "--output", "out.csv", "--bundle", "models/bundle"],
        "notes.txt: unsupported file type '.txt'",
    ),
    (
        [
            "predict",
            "--input",
            "data/prepared/test.parquet",
            "--output",
            "/proc/scored.csv",
            "--bundle",
            "models/bundle",
        ],
        "/proc/scored.csv: cannot write the scored file",
    ),
    (
        ["predict", "--target", "nope", "--input", "a.csv", "--output", "b.csv"],
        "no deployment target 'nope'",
    ),
    (["rollback", "--target", "local"], "nothing has been released to local"),
    (["unpin", "--target", "nope"], "no deployment target 'nope'"),
    (["release", "--target", "nope"], "no deployment target 'nope'"),
    (["gate", "--target", "nope"], "no deployment target 'nope'"),
    (["monitor", "--check", "--report", "/missing.json"], "/missing.json does not exist"),
    (["monitor", "--input", "/missing.parquet"], "/missing.parquet: data file does not exist"),
    (["serve", "--target", "nope"], "no deployment target 'nope'"),
    (["logs", "snapshot", "--target", "nope"], "no deployment target 'nope'"),
    (["sync", "--target", "nope", "--no-fetch"], "no deployment target 'nope'"),
    (["verify", "--target", "nope"], "no deployment target 'nope'"),
    (["report", "--pr", "--base", "no-such-rev"], "no base revision: no-such-rev"),
    (["schema", "infer", "/missing.csv"], "/missing.csv: data file does not exist"),
    (["schema", "infer", "notes.txt"], "notes.txt: expected a .csv or .parquet file"),
    (["select", "dataset=nope"], "no option 'nope': expected one of breast_cancer"),
    (["select", "train.cv=3"], "train.cv: not a config group chosen"),
    (["compose", "dataset=nope"], "Could not find 'dataset/nope'"),
    (["compose", "train.cv=0"], "train.cv"),
    (["sweep", "nope"], "no sweep 'nope': conf/experiment/nope.yaml does not exist"),
]

# commands that take no input a user could get wrong
NO_INPUT = {"targets"}


def _command(argv: list[str]) -> str:
    return argv[0] if argv[0] != "logs" else "logs"


def test_every_command_is_walked() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = set(sub.choices)  # type: ignore[arg-type]
    walked = {_command(argv) for argv, _ in OUTSIDE + USAGE + UNREPRODUCED + REPRODUCED}
    assert commands - NO_INPUT - walked == set(), "add a bad-input case for each new command"


def _assert_user_error(capsys: pytest.CaptureFixture[str], code: int, expected: str) -> str:
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\n{out}\n{err}"
    assert "Traceback" not in out + err, err
    assert expected in err, err
    lines = err.splitlines()
    assert sum(line.startswith("error:") for line in lines) == 1, err
    assert any(line.startswith("hint: ") and len(line) > 10 for line in lines), err
    return err


@pytest.mark.parametrize(("argv", "expected"), OUTSIDE, ids=[" ".join(c[0]) for c in OUTSIDE])
def test_outside_a_project(
    argv: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    _assert_user_error(capsys, cli.main(argv), expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "expected"), USAGE, ids=[" ".join(c[0]) for c in USAGE])
def test_bad_arguments(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _assert_user_error(capsys, cli.main(argv), expected)
    assert "--help` lists the arguments" in err


@pytest.fixture(scope="module")
def unreproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("cli-errors") / "p")


@pytest.mark.parametrize(
    ("argv", "expected"), UNREPRODUCED, ids=[" ".join(c[0]) for c in UNREPRODUCED]
)
def test_in_a_project_not_reproduced(
    argv: list[str],
    expected: str,
    unreproduced: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(unreproduced)
    before = digests(unreproduced)
    _assert_user_error(capsys, cli.main(argv), expected)
    assert digests(unreproduced) == before


@pytest.fixture(scope="module")
def reproduced(template_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("cli-errors-reproduced") / "p"
    shutil.copytree(template_project, dest, symlinks=True, ignore=shutil.ignore_patterns(".ready"))
    (dest / "notes.txt").write_text("not data\n")
    return dest


@pytest.mark.integration
@pytest.mark.parametrize(("argv", "expected"), REPRODUCED, ids=[" ".join(c[0]) for c in REPRODUCED])
def test_in_a_reproduced_project(
    argv: list[str],
    expected: str,
    reproduced: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(reproduced)
    before = digests(reproduced)
    _assert_user_error(capsys, cli.main(argv), expected)
    assert digests(reproduced) == before


MALFORMED = [
    ("conf/split/hash.yaml", "  broken: [1\n", "conf/split/hash.yaml: line"),
    ("conf/config.yaml", "\tproject: x\n", "conf/config.yaml: line"),
    ("conf/split/hash.yaml", "method: hash\n", "found duplicate key method"),
]


@pytest.mark.parametrize("check", [False, True], ids=["compose", "compose --check"])
@pytest.mark.parametrize(("file", "appended", "expected"), MALFORMED)
def test_malformed_conf_yaml_names_file_and_line(
    unreproduced: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    file: str,
    appended: str,
    expected: str,
    check: bool,
) -> None:
    project = tmp_path / "p"
    shutil.copytree(unreproduced, project, symlinks=True)
    path = project / file
    path.write_text(path.read_text() + appended)
    monkeypatch.chdir(project)
    before = digests(project)
    err = _assert_user_error(
        capsys, cli.main(["compose", *(["--check"] if check else [])]), expected
    )
    assert "not valid YAML" in err
    assert digests(project) == before


def test_serve_refuses_an_address_in_use(
    unreproduced: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    monkeypatch.chdir(unreproduced)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code = cli.main(["serve", "--host", "127.0.0.1", "--port", port])
    _assert_user_error(capsys, code, f"cannot listen on 127.0.0.1:{port}")


@pytest.mark.integration
def test_maintain_apply_reports_a_failed_repro_and_restores_files(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A retrain whose `dvc repro` fails (a feedback file that breaks the schema stops
    `prepare`): one message with the stage's error, and the ledger, dvc.lock, params and conf
    exactly as before, so the decision can be applied again once the data is fixed."""
    decision_path = project / "reports/maintain/decision.json"
    decision = json.loads(decision_path.read_text())
    decision.update(action="retrain", decision_id="d-test", reason="test", feedback_windows=[])
    decision_path.write_text(json.dumps(decision))
    feedback = project / "data/feedback/breast_cancer"
    feedback.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"not_a_column": [1.0]}).to_parquet(feedback / "broken.parquet")
    monkeypatch.setenv("PATH", env()["PATH"])
    monkeypatch.chdir(project)
    watched = ("maintain/*", "dvc.lock", "params.yaml", "conf/**/*", "data/feedback/**/*")
    before = digests(project, watched)
    err = _assert_user_error(
        capsys,
        cli.main(["maintain", "--apply"]),
        "`dvc repro` failed, so the retrain was not applied",
    )
    assert "feedback rows break the declared schema" in err  # the failing stage's own words
    assert "failed to reproduce 'prepare'" in err
    assert digests(project, watched) == before
