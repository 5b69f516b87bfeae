"""One owner per cross-stage contract (issue 11): every stage imports the owner, none copies it.

The owners: `pipeline/paths.py` (where every artifact lives, relative to the project root),
`pipeline/bundle_format.py` (a bundle's layout), `pipeline/windows.py` (the reserved column
names), `pipeline/release_record.py` (the release record, with its JSON Schema) and
`pipeline/vcs.py` (running git and dvc). The static checks read the source (AST) of every module
under pipeline/: string constants outside docstrings, so prose that merely mentions a path (a
help text, a hint) is not a definition, but `Path("data/...")`, `root / "deploy"` and
`NAME = "bundle.json"` are.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"
PATHS_OWNER = "pipeline/paths.py"
NAMES_OWNER = "pipeline/windows.py"
VCS_OWNER = "pipeline/vcs.py"

# A path relative to the project root: it starts with one of the project's artifact folders.
TOP_DIRS = ("data", "deploy", "reports", "models", "bundles", "maintain", "requirements")
PROJECT_PATH = re.compile(rf"(?:{'|'.join(TOP_DIRS)})(?:/[^\s`'\"]*)?")
# The name of an artifact's file inside its folder (a bundle's `bundle.json`, `report.html`...).
FILE_NAME = re.compile(r"[\w.-]+\.(?:json|parquet|skops|csv|html|md|lock)")
# A reserved column name (`__release__`); Python's and skops' own dunder keys are not columns.
DUNDER = re.compile(r"__[a-z][a-z0-9_]*__")
NOT_COLUMNS = {"__main__", "__loader__", "__module__", "__class__", "__id__"}


@dataclass(frozen=True)
class Literal:
    module: str  # pipeline/x.py
    line: int
    value: str  # an f-string with `{}` for each placeholder
    as_path: bool  # Path("..."), or an operand of `/`
    assigned: bool  # the whole value of a module- or class-level assignment

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.value!r}"


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, kinds) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def literals(path: Path) -> Iterator[Literal]:
    """Every string constant of a module outside docstrings, with how it is used."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    parent = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    scopes: list[ast.Module | ast.ClassDef] = [tree]
    scopes += [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    top_level = {
        id(n.value)
        for scope in scopes
        for n in scope.body
        if isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None
    }
    module = path.relative_to(ROOT).as_posix()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            value = "".join(
                str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in skip or isinstance(parent.get(id(node)), ast.JoinedStr):
                continue
            value = node.value
        else:
            continue
        up = parent.get(id(node))
        as_path = (isinstance(up, ast.BinOp) and isinstance(up.op, ast.Div)) or (
            isinstance(up, ast.Call) and getattr(up.func, "id", None) == "Path"
        )
        yield Literal(module, node.lineno, value, as_path, id(node) in top_level)


@functools.cache
def all_literals() -> tuple[Literal, ...]:
    return tuple(lit for path in sorted(PIPELINE.rglob("*.py")) for lit in literals(path))


def project_path(lit: Literal) -> bool:
    """`data/prepared/train.parquet`, f"deploy/{target}.json", Path("deploy"), root / "bundles"."""
    return bool(PROJECT_PATH.fullmatch(lit.value)) and ("/" in lit.value or lit.as_path)


def test_project_paths_are_spelled_only_in_pipeline_paths() -> None:
    """Each artifact path has one owner; a second spelling is how a reader gets left behind
    when the layout changes (it happened: `deploy/<target>.json` was spelled in four modules)."""
    found = [str(lit) for lit in all_literals() if lit.module != PATHS_OWNER and project_path(lit)]
    assert not found, "artifact paths spelled outside pipeline/paths.py:\n" + "\n".join(found)


def _dvc_yaml_paths() -> set[str]:
    """Every dep, out, metric and plot path of dvc.yaml that is an artifact (not code)."""
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    found: set[str] = set()
    for stage in doc["stages"].values():
        body = stage.get("do", stage)
        for key in ("deps", "outs", "metrics", "plots"):
            found |= {next(iter(i)) if isinstance(i, dict) else i for i in body.get(key, [])}
    found |= {next(iter(i)) if isinstance(i, dict) else i for i in doc.get("plots", [])}
    return {p for p in found if not p.startswith(("pipeline/", "${plots"))}


def test_dvc_yaml_spells_every_artifact_as_pipeline_paths_does() -> None:
    """dvc.yaml declares the deps and outs; pipeline/paths.py is where the code finds them.
    A path in one spelled differently in the other is a stage that reads or writes an
    undeclared file."""
    from pipeline import paths

    known = {v.as_posix() for v in vars(paths).values() if isinstance(v, Path)}
    known |= {paths.split_path(s).as_posix() for s in paths.SPLITS}
    known.add(paths.candidate_dir("${key}").as_posix())
    for key in ("${key}", "${monitor.target}", "${maintain.target}"):
        known |= {paths.release_path(key).as_posix(), paths.report_path(key).as_posix()}
    declared = _dvc_yaml_paths()
    assert len(declared) > 20, declared  # the scan found the graph's paths
    assert declared <= known, f"dvc.yaml paths pipeline/paths.py does not name: {declared - known}"


def test_artifact_file_names_are_defined_in_one_module() -> None:
    """A file name inside an artifact (`bundle.json`, `report.html`, `champion.json`) is part
    of its format: one module defines it, every reader imports it."""
    where: dict[str, set[str]] = defaultdict(set)
    for lit in all_literals():
        if FILE_NAME.fullmatch(lit.value) and (lit.as_path or lit.assigned):
            where[lit.value].add(lit.module)
    twice = {name: sorted(mods) for name, mods in where.items() if len(mods) > 1}
    assert not twice, f"file names defined in more than one module: {twice}"


def test_reserved_column_names_are_defined_only_in_pipeline_windows() -> None:
    found = [
        str(lit)
        for lit in all_literals()
        if lit.module != NAMES_OWNER
        and DUNDER.fullmatch(lit.value)
        and lit.value not in NOT_COLUMNS
    ]
    assert not found, "reserved column names spelled outside pipeline/windows.py:\n" + "\n".join(
        found
    )


def test_git_and_dvc_are_run_only_by_pipeline_vcs() -> None:
    """One place finds `dvc` (the venv's first, else PATH) and turns a failure into one error
    type: a list whose first item is "git" or "dvc" is a command line, and `... / "dvc"` or
    `shutil.which("dvc")` is finding it."""
    found = []
    for path in sorted(PIPELINE.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        if module == VCS_OWNER:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            first = node.elts[0] if isinstance(node, ast.List) and node.elts else None
            if isinstance(first, ast.Constant) and first.value in ("git", "dvc"):
                found.append(f"{module}:{first.lineno}: a {first.value} command line")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "which":
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and arg.value in ("git", "dvc"):
                    found.append(f"{module}:{arg.lineno}: finding {arg.value} on PATH")
        for lit in literals(path):
            if lit.value in ("git", "dvc") and lit.as_path:
                found.append(f"{lit}: finding {lit.value}")
    assert not found, "git/dvc run outside pipeline/vcs.py:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "count"),
    [
        ('x = Path("data/prepared/train.parquet")', 1),
        ('def f(root):\n    return root / "deploy" / f"{t}.json"', 1),
        ('def f(t):\n    return f"deploy/{t}.json"', 1),
        ('HINT = "run `dvc pull data/production` first"', 0),  # prose names a path
        ('HINT = "deploy/*.json is written by `mlops release`"', 0),
        ('x = params["deploy"]["targets"]', 0),  # a params key, not a path
        ('def f():\n    """Reads data/prepared/train.parquet."""', 0),
    ],
)
def test_the_path_scan_sees_definitions_not_prose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, count: int
) -> None:
    """The scan above cannot pass by seeing nothing: it finds each way a path is spelled."""
    module = tmp_path / "pipeline" / "x.py"
    module.parent.mkdir()
    module.write_text(source + "\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert sum(project_path(lit) for lit in literals(module)) == count


# ------------------------------------------------------------------------ release record
NO_TARGET = '{"release": null}'
BUNDLE_ID = "3f9a1c2b5e6d7f80"
RELEASED: dict[str, Any] = {
    "target": "local",
    "release": f"r0002-{BUNDLE_ID}",
    "parent": "r0001-0c1d2e3f4a5b6c7d",
    "pinned": None,
    "bundle": {"id": BUNDLE_ID, "sha256": BUNDLE_ID + "0" * 48, "path": f"bundles/{BUNDLE_ID}"},
    "model": {"task": "classification"},
    "metrics": {"test": {}},
    "gates": {},
}


def _project(tmp_path: Path, record: str) -> Path:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/local.json").write_text(record)
    return tmp_path


def _read_record(root: Path) -> object:
    from pipeline.release_record import read_record

    return read_record(root / "deploy/local.json", "local")


def _summary(root: Path) -> object:
    from pipeline.summary import release_lines

    return release_lines(root)


def _status(root: Path) -> object:
    from pipeline.deploy.status import target_lines

    return target_lines(root, "local", {"kind": "batch"}, None)


def _service(root: Path) -> object:
    from pipeline.deploy.service.releases import Desired

    text = (root / "deploy/local.json").read_bytes()
    return Desired.parse(text, root, "local", "deploy/local.json")


def _monitoring(root: Path) -> object:
    from pipeline.monitor.monitored_bundle import monitored_bundle

    return monitored_bundle(root, "local")


def _pr_report(root: Path) -> object:
    from pipeline.pr_report import gates_section, tree_reader

    (root / "params.yaml").write_text("deploy: {targets: {local: {}}}\n")
    (root / "reports/deploy").mkdir(parents=True)
    (root / "reports/deploy/local.json").write_text(
        '{"decision": "already_released", "current": {"release": null}}'
    )
    return gates_section(tree_reader(root), tree_reader(root))


def _sync(root: Path) -> object:
    """`mlops sync` reads the record of a fetched commit (git show): the same parser."""
    from pipeline.release_record import parse_record

    text = (root / "deploy/local.json").read_text()
    return parse_record(text, "0123456789ab:deploy/local.json", "local")


@pytest.mark.parametrize(
    "reader", [_read_record, _summary, _status, _service, _monitoring, _pr_report, _sync]
)
def test_every_reader_refuses_a_release_record_without_target(tmp_path: Path, reader: Any) -> None:
    """A record without `target` was accepted by the service and refused by the gate: every
    reader now parses it with `pipeline.release_record`, and says which file and field."""
    from pipeline.errors import ArtifactError

    root = _project(tmp_path, NO_TARGET)
    with pytest.raises(ArtifactError, match=r"deploy/local\.json.*: target: missing; expected"):
        reader(root)


@pytest.mark.parametrize("reader", [_read_record, _summary, _status, _service, _sync])
def test_every_reader_accepts_a_record_release_writes(tmp_path: Path, reader: Any) -> None:
    import json

    from pipeline.release_record import released_record

    record = released_record(
        "local",
        RELEASED["release"],
        parent=RELEASED["parent"],
        pinned=None,
        bundle_sha256=RELEASED["bundle"]["sha256"],
        model={"task": "classification"},
        metrics={"test": {}},
        gates={},
    )
    assert record == RELEASED
    reader(_project(tmp_path, json.dumps(record)))


def test_committed_release_records_follow_the_schema() -> None:
    import json

    from pipeline.release_record import schema_problems

    records = sorted((ROOT / "deploy").glob("*.json"))
    assert records
    for path in records:
        assert schema_problems(json.loads(path.read_text())) == [], path
    assert schema_problems(RELEASED) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"bundle": {**RELEASED["bundle"], "url": "s3://elsewhere"}},
            r"not a release record:\n  - bundle: Additional properties are not allowed",
        ),
        ({"model": "forest"}, r"model: 'forest' is not of type 'object'"),
        ({"parent": "r1-x"}, r"parent: 'r1-x' is not a release id"),
        ({"pinned": f"r0001-{BUNDLE_ID}\n"}, r"pinned: .* is not a release id"),
        ({"target": "batch"}, r"target: 'batch'; expected an object with \"target\": \"local\""),
        ({"new_line": {"replaces": None}}, r"new_line: 'differences' is a required property"),
    ],
)
def test_the_parser_applies_the_schema(change: dict[str, Any], message: str) -> None:
    from pipeline.errors import ArtifactError
    from pipeline.release_record import check_record

    with pytest.raises(ArtifactError, match=message):
        check_record({**RELEASED, **change}, "deploy/local.json", "local")


# ------------------------------------------------------------------------- git and dvc
def test_a_failed_git_command_is_a_tool_error_naming_it(tmp_path: Path) -> None:
    from pipeline import vcs
    from pipeline.errors import MlopsError, ToolError

    with pytest.raises(ToolError, match=r"`git rev-parse HEAD` failed in .* \(exit 128\): fatal"):
        vcs.git(tmp_path, "rev-parse", "HEAD")
    assert not vcs.git_ok(tmp_path, "rev-parse", "HEAD")
    assert vcs.git(tmp_path, "rev-parse", "HEAD", check=False).returncode == 128
    assert issubclass(ToolError, MlopsError) and ToolError.exit_code == 2  # the CLI: exit 2


def test_the_venvs_dvc_comes_first_and_a_missing_one_is_a_tool_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import vcs
    from pipeline.errors import ToolError

    (tmp_path / "dvc").write_text("")
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    assert vcs.find("dvc") == str(tmp_path / "dvc")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert vcs.find("git") is None
    with pytest.raises(ToolError, match=r"`git` is not installed"):
        vcs.git(tmp_path, "status")
