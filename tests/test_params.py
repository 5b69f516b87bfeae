"""The typed params tree (`config.load_config`, `pipeline.params`): one frozen tree, built once
after validation, typed for every section, with every value from conf/ (no default in Python)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from collections.abc import Mapping
from pathlib import Path

import pytest

from pipeline import config, validation
from pipeline.errors import ConfigError
from pipeline.params import (
    ComputeSpec,
    DeploySpec,
    MaintainSpec,
    MonitorSettings,
    Params,
    ProjectSpec,
    SimulateSettings,
    build,
)
from pipeline.settings import (
    CandidateSpec,
    DatasetSpec,
    PreprocessingSpec,
    SelectionSpec,
    SplitSpec,
    TrainSpec,
)
from pipeline.validation import schema_defaults
from tests.conftest import ROOT

SECTIONS = {
    "project": ProjectSpec,
    "train": TrainSpec,
    "dataset": DatasetSpec,
    "split": SplitSpec,
    "preprocessing": PreprocessingSpec,
    "selection": SelectionSpec,
    "deploy": DeploySpec,
    "monitor": MonitorSettings,
    "simulate": SimulateSettings,
    "maintain": MaintainSpec,
    "compute": ComputeSpec,
}


@pytest.fixture(scope="module")
def params() -> Params:
    return config.load_config(ROOT, hyperparameters=False)


def test_every_section_is_typed(params: Params) -> None:
    for name, kind in SECTIONS.items():
        assert isinstance(getattr(params, name), kind), name
    assert params.task == "classification" and params.root == ROOT
    assert all(isinstance(c, CandidateSpec) for c in params.candidates.values())
    assert list(params.candidates) == list(params.data["candidates"])  # the declared order
    local, batch = params.deploy.targets["local"], params.deploy.targets["batch"]
    assert local.serve is not None and local.batch is None and local.serve.log_dir.is_absolute()
    assert batch.batch is not None and batch.serve is None
    assert params.monitor.windows.rows == params.data["monitor"]["windows"]["rows"]
    assert params.maintain.target == params.data["maintain"]["target"]
    fields = {f.name for f in dataclasses.fields(Params)}
    assert fields == {*SECTIONS, "data", "root", "task", "candidates"}  # nothing left untyped


def test_the_tree_is_frozen(params: Params) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.task = "regression"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.monitor.windows.rows = 7  # type: ignore[misc]
    with pytest.raises(TypeError):
        params.candidates["extra"] = params.candidates["random_forest"]  # type: ignore[index]
    with pytest.raises(TypeError):
        params.deploy.targets["extra"] = params.deploy.targets["local"]  # type: ignore[index]
    with pytest.raises(TypeError):
        params.data["task"] = "regression"  # type: ignore[index]


def test_params_are_read_and_validated_once_per_load(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"read": 0, "validate": 0}
    read, validate = config.read_yaml, validation.validate_params

    def counted_read(path: Path) -> object:
        calls["read"] += 1
        return read(path)

    def counted_validate(*args: object, **kwargs: object) -> list:
        calls["validate"] += 1
        return validate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(config, "read_yaml", counted_read)
    monkeypatch.setattr(validation, "validate_params", counted_validate)
    loaded = config.load_config(ROOT, hyperparameters=False)
    assert calls == {"read": 1, "validate": 1}
    assert loaded.dataset is loaded.dataset  # a section is built once, not per access


def test_stages_and_commands_read_the_tree_and_never_rebuild_a_section() -> None:
    """`from_params` builds a section once, for the tree; `load_params` (the mapping) is for
    config.py itself. Anything else reading params goes through `load_config`."""
    allowed = {"pipeline/params.py", "pipeline/settings.py", "pipeline/config.py"}
    found = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.from_params\(|\bload_params\(", line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []


def _section_types() -> set[type]:
    """Every dataclass reachable from `Params` through its (resolved) field types."""
    seen: set[type] = set()

    def visit(kind: object) -> None:
        for arg in typing.get_args(kind):
            visit(arg)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind) and kind not in seen:
            seen.add(kind)
            for hint in typing.get_type_hints(kind).values():
                visit(hint)

    visit(Params)
    return seen


def test_no_section_type_hides_a_default() -> None:
    """Every value comes from conf/ (or the schema's documented `default` for a key a
    declaration may leave out): no field of any section type has a default of its own."""
    types = _section_types()
    assert {DatasetSpec, MonitorSettings, SplitSpec, SimulateSettings} <= types
    assert len(types) >= 25
    for kind in types:
        for field in dataclasses.fields(kind):  # type: ignore[arg-type]
            assert field.default is dataclasses.MISSING, f"{kind.__name__}.{field.name}"
            assert field.default_factory is dataclasses.MISSING, f"{kind.__name__}.{field.name}"
        with pytest.raises(TypeError):
            kind()  # nothing to fall back on


@pytest.mark.parametrize(
    "path",
    [
        ("dataset", ()),
        ("dataset", ("$defs", "column")),
        ("dataset", ("$defs", "csv")),
        ("simulate", ("$defs", "selector")),
        ("monitor", ("$defs", "column")),
    ],
)
def test_a_key_a_declaration_may_leave_out_has_its_default_in_the_schema(
    path: tuple[str, tuple[str, ...]],
) -> None:
    group, where = path
    node = validation._schemas()[group]
    for part in where:
        node = node[part]
    optional = set(node["properties"]) - set(node.get("required", ()))
    assert optional and optional <= set(schema_defaults(group, *where))


def test_a_column_declared_with_its_type_only_takes_the_schema_defaults() -> None:
    spec = DatasetSpec.from_params(
        {
            "name": "toy",
            "source": {"kind": "sklearn", "loader": "iris"},
            "target": "y",
            "missing_target": "drop",
            "extra_columns": "refuse",
            "columns": {"x": {"type": "float"}, "y": {"type": "category"}},
        }
    )
    defaults = schema_defaults("dataset", "$defs", "column")
    x = spec.column("x")
    assert (x.role, x.nullable, x.personal, x.min, x.description) == (
        defaults["role"],
        defaults["nullable"],
        defaults["personal"],
        defaults["min"],
        defaults["description"],
    )
    assert spec.key is None and spec.column("y").role == "target"


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        (
            ["candidates.logistic_regression._search_.method=random"],
            "candidates.logistic_regression._search_.n_iter",
        ),
        (
            ["candidates.random_forest._search_.method=halving_random"],
            "candidates.random_forest._search_.factor",
        ),
        (["~preprocessing.numeric.fill_value"], "preprocessing.numeric.fill_value"),
        (["~monitor.drift.sketch.k"], "monitor.drift.sketch.k"),
    ],
)
def test_a_setting_left_out_is_refused_at_compose_not_defaulted(
    overrides: list[str], missing: str
) -> None:
    """Regression: a random search without n_iter silently sampled 10 settings, a halving
    search used factor 3, a preprocessing or sketch key fell back to a value in Python."""
    composed = config.compose(ROOT, overrides)
    issues = validation.validate_params(
        composed.data, composed.locate, root=ROOT, hyperparameters=False
    )
    assert [(i.key, i.message) for i in issues] == [(missing, "required key is missing")]


def test_target_lookups_name_what_is_declared(params: Params) -> None:
    with pytest.raises(ConfigError, match=r"no deployment target 'nope'; declared: local, batch"):
        params.deploy.target("nope")
    with pytest.raises(ConfigError, match=r"target 'batch' is of kind 'batch', not a service"):
        params.deploy.service("batch")
    with pytest.raises(ConfigError, match=r"deploy.targets.local is a service target, not a batch"):
        params.deploy.batch("local")
    assert params.deploy.service("local") is params.deploy.targets["local"].serve


def test_the_tree_of_a_stage_without_estimators_imports_none() -> None:
    """`hyperparameters=False` keeps scikit-learn's estimators out of the stages that never
    build one: building the tree must not bring them back."""
    code = (
        "import sys; from pipeline import config; "
        "config.load_config(hyperparameters=False); "
        "print(sorted(m for m in sys.modules if m.startswith(('sklearn.ensemble', "
        "'sklearn.linear_model'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_build_reads_what_load_params_validated(params: Params) -> None:
    again = build(config.load_params(ROOT, hyperparameters=False), ROOT)
    assert again == params  # the same validated mapping gives the same tree
    assert isinstance(again.data, Mapping)
