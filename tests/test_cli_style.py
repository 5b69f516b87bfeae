"""One CLI style (issue 11, item 4): every `mlops` command is registered the same way
(`pipeline.cli_args.command`), finds the project root the same way (once, in `cli.main`: from a
subdirectory too, and outside a project a message naming what it looked for and where, exit 2),
has help on every option, and spells `--target` and `--check` with one meaning each.

The whole parser is walked, so a command added later is held to the same rules; every case
runs `cli.main` in-process.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.cli_args import command
from pipeline.monitor.report import FORMAT, VERSION
from tests.conftest import copy_project, digests

Leaf = tuple[tuple[str, ...], argparse.ArgumentParser]


def subcommands(parser: argparse.ArgumentParser) -> Any:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every parser of the tree (the top one, command groups, commands), with its words."""
    yield path, parser
    sub = subcommands(parser)
    for name, child in (sub.choices if sub else {}).items():
        yield from walk(child, (*path, name))


def leaves() -> list[Leaf]:
    """The runnable commands: `compose`, `logs ship`, `schema infer`, ..."""
    return [(path, p) for path, p in walk(cli.build_parser()) if path and not subcommands(p)]


def missing_help(parser: argparse.ArgumentParser) -> list[str]:
    """'<command words> <option>' for every option, positional and subcommand without help."""
    missing = []
    for path, p in walk(parser):
        where = " ".join(("mlops", *path))
        for action in p._actions:
            name = "/".join(action.option_strings) or action.dest
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{where} {name}")
            if isinstance(action, argparse._SubParsersAction):  # a command's line in --help
                listed = {choice.dest: choice.help for choice in action._choices_actions}
                for name in action.choices:
                    if not (listed.get(name) or "").strip():
                        missing.append(f"{where} {name}")
    return missing


def minimal_argv(path: tuple[str, ...], parser: argparse.ArgumentParser) -> list[str]:
    """The words that get a command past the parser: its required options and positionals."""
    argv = list(path)
    chosen = [g._group_actions[0] for g in parser._mutually_exclusive_groups if g.required]
    for action in parser._actions:
        if action.option_strings and (action.required or action in chosen):
            argv += [action.option_strings[0]] + (["x"] if action.nargs != 0 else [])
        elif not action.option_strings and action.nargs not in ("*", "?"):
            argv.append("x")
    return argv


def test_every_option_and_command_has_help() -> None:
    assert missing_help(cli.build_parser()) == []


def test_the_help_walk_finds_what_is_missing() -> None:
    parser = cli.Parser(prog="mlops")
    sub = parser.add_subparsers(dest="command", help="commands")
    p = sub.add_parser("bare")  # listed without a line of help
    p.add_argument("--quiet", action="store_true")
    p.add_argument("path", help="  ")
    sub.add_parser("helped", help="listed")
    assert missing_help(parser) == ["mlops bare", "mlops bare --quiet", "mlops bare path"]


def test_a_command_without_a_docstring_cannot_be_registered() -> None:
    def _undocumented(args: argparse.Namespace) -> int:
        return 0

    sub = cli.Parser(prog="mlops").add_subparsers()
    with pytest.raises(TypeError, match="_undocumented: a command's handler needs a docstring"):
        command(sub, "undocumented", _undocumented)


def test_the_docstring_is_the_help() -> None:
    def _documented(args: argparse.Namespace) -> int:
        """do one thing
        well

        The long story.

            an example, kept as written
        """
        return 0

    sub = cli.Parser(prog="mlops").add_subparsers()
    p = command(sub, "documented", _documented)
    assert sub._choices_actions[0].help == "do one thing well"
    assert p.description is not None and p.description.startswith("The long story.")
    text = p.format_help()
    assert "The long story.\n\n    an example, kept as written\n" in text


def test_every_command_is_registered_the_one_way() -> None:
    """With a handler, and saying whether it needs a project; only two need none."""
    free = set()
    for path, parser in leaves():
        assert callable(parser.get_default("handler")), path
        assert parser.get_default("needs_root") in (True, False), path
        if not parser.get_default("needs_root"):
            free.add(path)
    assert free == {("targets",), ("schema", "infer")}


PROJECT_COMMANDS = [leaf for leaf in leaves() if leaf[1].get_default("needs_root")]
IDS = [" ".join(path) for path, _ in PROJECT_COMMANDS]


@pytest.mark.parametrize(("path", "parser"), PROJECT_COMMANDS, ids=IDS)
def test_outside_a_project_every_command_says_what_it_looked_for_and_where(
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = cli.main(minimal_argv(path, parser))
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\n{out}\n{err}"
    assert err.startswith(f"error: no conf/config.yaml in {tmp_path.resolve()} or any parent"), err
    assert "\nhint: run mlops from inside the project" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_every_command_finds_the_root_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handlers are replaced by a recorder: what each would be given as `args.root`."""
    root = tmp_path / "project"
    (root / "conf").mkdir(parents=True)
    (root / "conf/config.yaml").write_text("defaults: []\n")
    (root / "data/external").mkdir(parents=True)
    given: dict[tuple[str, ...], Any] = {}
    real = cli.build_parser

    def recording_parser() -> argparse.ArgumentParser:
        parser = real()
        for path, p in walk(parser):
            if p.get_default("handler"):

                def record(args: argparse.Namespace, path: tuple[str, ...] = path) -> int:
                    given[path] = getattr(args, "root", None)
                    return 0

                p.set_defaults(handler=record)
        return parser

    monkeypatch.setattr(cli, "build_parser", recording_parser)
    monkeypatch.chdir(root / "data/external")
    for path, parser in leaves():
        assert cli.main(minimal_argv(path, parser)) == 0, path
    expected = {path: root if p.get_default("needs_root") else None for path, p in leaves()}
    assert given == expected


# --target: (action, default) per command; "once" commands refuse a repeat
TARGETS = {
    ("release",): ("many", None),
    ("gate",): ("many", None),
    ("verify",): ("many", None),
    ("sync",): ("once", "required"),
    ("rollback",): ("once", "required"),
    ("unpin",): ("once", "required"),
    ("predict",): ("once", "batch"),
    ("serve",): ("once", "local"),
    ("logs", "snapshot"): ("once", "monitored"),
    ("logs", "ship"): ("once", "monitored"),
    ("logs", "fetch"): ("once", "monitored"),
    ("rollout", "analyze"): ("once", "required"),
    ("rollout", "advance"): ("once", "required"),
    ("rollout", "promote"): ("once", "required"),
    ("rollout", "abort"): ("once", "required"),
    ("render",): ("many", None),
    ("image", "record"): ("once", "required"),
    ("install-units",): ("once", "required"),
}


def test_one_target_convention() -> None:
    found = {}
    for path, parser in leaves():
        target = next((a for a in parser._actions if "--target" in a.option_strings), None)
        if target is None or target.metavar == "COLUMN":  # schema infer: the dataset's column
            continue
        assert target.metavar == "TARGET", path
        assert target.help and "deployment target" in target.help, path
        if isinstance(target, argparse._AppendAction):
            assert "repeat for several" in target.help, path
            found[path] = ("many", target.default)
        else:
            default = "required" if target.required else target.default or "monitored"
            assert default != "monitored" or "monitor.target" in target.help, path
            found[path] = ("once", default)
    assert found == TARGETS


def test_a_one_target_command_refuses_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--target", "local", "--target", "batch"]) == 2
    err = capsys.readouterr().err
    assert "argument --target: given more than once: this command acts on one target" in err
    assert "hint: `mlops serve --help` lists the arguments" in err


def test_check_has_one_meaning() -> None:
    checks = {}
    for path, parser in leaves():
        for action in parser._actions:
            if "--check" in action.option_strings:
                checks[path] = action.help
    assert set(checks) == {
        ("compose",),
        ("gate",),
        ("monitor",),
        ("sync",),
        ("maintain",),
        ("rollout", "analyze"),
        ("render",),
    }
    for path, text in checks.items():
        assert text and text.startswith("change nothing; exit 1 when "), (path, text)
    assert not any("--dry-run" in a.option_strings for _, p in leaves() for a in p._actions)


def test_top_level_help_states_the_conventions(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("conf/config.yaml", "--target", "--check", "exit status: 0"):
        assert word in out


# ----------------------------------------------------------- `mlops monitor [--check]`
def report(newest_status: str | None) -> dict[str, Any]:
    """A monitor report: what `mlops monitor` reads of it."""
    counts = {"ok": 0, "breach": 0, "insufficient_data": 0, "not_judged": 0}
    newest = None
    if newest_status:
        counts[newest_status] = 1
        newest = {
            "source": "production",
            "id": "w1",
            "status": newest_status,
            "rows": 100,
            "labelled": 50,
            "violations": [{"check": "dataset_drift", "message": "3 of 5 columns drifted"}]
            if newest_status == "breach"
            else [],
        }
    return {
        "format": FORMAT,
        "version": VERSION,
        "skipped": None,
        "monitored": {"label": "release r0001-abc"},
        "newest": newest,
        "summary": {"windows": int(newest is not None), "by_status": counts},
        "simulated": {"windows": []},
    }


@pytest.fixture
def monitored(tmp_path: Path) -> Path:
    """A project (as far as finding its root goes) whose committed report is in breach."""
    root = tmp_path / "project"
    (root / "conf").mkdir(parents=True)
    (root / "conf/config.yaml").write_text("defaults: []\n")
    (root / "reports/monitor").mkdir(parents=True)
    (root / "reports/monitor/report.json").write_text(json.dumps(report("breach")))
    (root / "sub").mkdir()
    return root


def test_monitor_shows_the_verdict_and_check_makes_it_the_exit_status(
    monitored: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(monitored / "sub")  # the default report is found from the root
    assert cli.main(["monitor"]) == 0
    shown = capsys.readouterr().out
    assert "newest production window w1: BREACH, 100 rows, 50 labelled" in shown
    assert "production: 1 window(s): 0 ok, 1 breach, 0 insufficient data; from " in shown
    assert cli.main(["monitor", "--check"]) == 1
    assert capsys.readouterr().out == shown
    assert cli.main(["monitor", "--fail-on-breach"]) == 1


def test_monitor_check_passes_on_a_healthy_or_empty_report(
    monitored: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(monitored)
    path = monitored / "reports/monitor/report.json"
    path.write_text(json.dumps(report("ok")))
    assert cli.main(["monitor", "--check"]) == 0
    path.write_text(json.dumps(report(None)))
    assert cli.main(["monitor", "--check"]) == 0
    assert "no production windows yet: nothing judged" in capsys.readouterr().out


def test_a_typed_path_is_relative_to_the_current_directory(
    monitored: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (monitored / "sub/copy.json").write_text(json.dumps(report("ok")))
    monkeypatch.chdir(monitored / "sub")
    assert cli.main(["monitor", "--check", "--report", "copy.json"]) == 0
    assert "from copy.json" in capsys.readouterr().out
    assert cli.main(["monitor", "--check", "--report", "reports/monitor/report.json"]) == 2
    assert "error: reports/monitor/report.json does not exist" in capsys.readouterr().err


# ------------------------------------------------ user errors of the nested commands
@pytest.fixture(scope="module")
def unreproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("cli-style") / "p")


NESTED: list[tuple[list[str], str]] = [
    (["logs", "ship", "--url", "shipped"], "logs/local: no prediction log directory"),
    (["logs", "ship", "--target", "nope", "--url", "x"], "no deployment target 'nope'"),
    (["logs", "fetch", "--url", "/nothing/here"], "/nothing/here: no manifest.json"),
    (["logs", "import", "/missing.csv"], "/missing.csv: data file does not exist"),
    (["logs", "snapshot"], "logs/local: no prediction log directory"),
    (["schema", "infer", "/missing.csv"], "/missing.csv: data file does not exist"),
    (["rollout", "analyze", "--target", "local"], "no rollout is running on local"),
    (["rollout", "advance", "--target", "local"], "no rollout is running on local"),
    (["rollout", "promote", "--target", "nope"], "no deployment target 'nope'"),
    (["rollout", "advance", "--target", "batch"], "target 'batch' is of kind 'batch'"),
    (["rollout", "abort", "--target", "local"], "no rollout is running on local"),
    (
        ["image", "record", "--target", "local", "--digest", "sha256:" + "0" * 64],
        "deploy.targets.local is a service target: a service target has no image",
    ),
    (["windows", "retain"], "monitor.retention.keep_raw_days is null"),
    (["windows", "seal", "--out", "nowhere"], "conf/nowhere: no such window folder"),
    (["windows", "migrate", "--apply", "--out", "."], "file(s) that are not production windows"),
]


@pytest.mark.parametrize(("argv", "expected"), NESTED, ids=[" ".join(a) for a, _ in NESTED])
def test_nested_commands_report_user_errors_with_exit_2(
    argv: list[str],
    expected: str,
    unreproduced: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(unreproduced / "conf")  # from a subdirectory, like any command
    before = digests(unreproduced)
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}\n{out}\n{err}"
    assert expected in err and "Traceback" not in err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1, err
    assert "\nhint: " in err
    assert digests(unreproduced) == before


def test_every_nested_command_has_a_user_error_case() -> None:
    nested = {path for path, _ in leaves() if len(path) > 1}
    assert nested == {tuple(argv[:2]) for argv, _ in NESTED}


def test_compose_check_works_from_a_subdirectory(
    unreproduced: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(unreproduced / "conf/model")
    assert cli.main(["compose", "--check"]) == 0
    assert capsys.readouterr().out == "params.yaml is up to date with conf/\n"
