"""Validation of the composed configuration: JSON Schemas per group, then the cross-key rules a
schema cannot express (the target is a declared column, the metric suits the task, every
hyperparameter passes scikit-learn's own constraints, ...).

Every problem is collected and reported at once, each naming the file that set the key, the key
path, the bad value and what was expected, so one round of edits fixes them all.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.config import resolver_issues
from pipeline.errors import Issue, UnsafeTargetError
from pipeline.settings import BASELINE_STRATEGIES, metric_direction, metrics_for
from pipeline.values import canonical_category

Locate = Callable[[str], str]

SCHEMA_FILES = (
    "config",
    "task",
    "model",
    "dataset",
    "split",
    "preprocessing",
    "monitor",
    "simulate",
    "deploy",
    "maintain",
    "compute",
)


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema `pipeline/schemas/<name>.schema.json` (one of SCHEMA_FILES)."""
    return _schemas()[name]


@functools.cache
def _schemas() -> dict[str, dict[str, Any]]:
    folder = resources.files("pipeline") / "schemas"
    out = {}
    for name in SCHEMA_FILES:
        out[name] = json.loads((folder / f"{name}.schema.json").read_text(encoding="utf-8"))
    return out


def schema_defaults(group: str, *path: str) -> dict[str, Any]:
    """`{key: default}` for the properties of the object at `path` in a group's JSON Schema
    that declare a `default`. A key a declaration may leave out (a dataset column's `role`, a
    CSV option, a simulated effect's column selector) takes its value from its schema, the one
    place it is decided: the typed views read it from here and never restate it; every other
    setting is required, with its value in conf/."""
    node: Any = _schemas()[group]
    for part in path:
        node = node[part]
    return {key: spec["default"] for key, spec in node["properties"].items() if "default" in spec}


@functools.cache
def whole_pattern(pattern: str) -> re.Pattern[str]:
    """A schema `pattern` compiled with JSON Schema's meaning (ECMA-262): `$` is the end of
    the string. Python's `$` also matches before a trailing newline, so `^[a-z]+$` accepted
    "abc\\n" as a dataset name; every unescaped `$` outside a character class becomes `\\Z`."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            out.append("\\Z")
            continue
        out.append(char)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not whole_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def _validator(name: str = "config") -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    # names become paths (data/feedback/<dataset>/, deploy/<target>.json): patterns must
    # match the whole value, newline included. jsonschema picks a validator class by each
    # schema's "$schema" when it follows a $ref, which would drop the override: the schemas
    # are registered as draft 2020-12 resources without it, so every one uses this class.
    schemas = {
        name: {k: v for k, v in schema.items() if k != "$schema"}
        for name, schema in _schemas().items()
    }
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], DRAFT202012.create_resource(schema)) for schema in schemas.values()
    )
    strict = extend(Draft202012Validator, {"pattern": _pattern})
    return strict(schemas[name], registry=registry)


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "(root)"


def schema_issues(data: Mapping[str, Any], locate: Locate, skip: set[str]) -> list[Issue]:
    """One Issue per violation of the config schema, with messages phrased as "expected ..."."""
    return document_issues("config", data, locate, skip=skip)


def document_issues(
    name: str, data: Any, locate: Locate, *, skip: Iterable[str] = ()
) -> list[Issue]:
    """Every violation of schema `name` (SCHEMA_FILES) by `data`, in a stable order, each
    rendered by `render_schema_error`; keys under a `skip` prefix are left out."""
    skip = set(skip)
    issues: list[Issue] = []
    for error in sorted(_validator(name).iter_errors(data), key=lambda e: list(map(str, e.path))):
        key = _key(error.absolute_path)
        if any(key == s or key.startswith(s + ".") for s in skip):
            continue
        issues.extend(render_schema_error(error, key, locate))
    return issues


def render_schema_error(error: Any, key: str, locate: Locate) -> list[Issue]:
    """The one rendering of a JSON Schema error (a `jsonschema.ValidationError` at key path
    `key`) as Issues: the file that set the key (`locate(key)`), the key path, what was expected
    ("expected one of: ...", "expected a number >= 0", "unknown key; expected one of: ...",
    "required key is missing") and the bad value."""
    kind, inst, schema = error.validator, error.instance, error.schema
    if "propertyNames" in error.relative_schema_path:
        return [Issue(locate(key), _join(key, str(inst)), f"key not allowed here: {error.message}")]
    if kind == "additionalProperties" and isinstance(inst, Mapping):
        allowed = set(schema.get("properties", {}))
        patterns = schema.get("patternProperties", {})
        unknown = [
            k for k in inst if k not in allowed and not any(re.search(p, str(k)) for p in patterns)
        ]
        expected = ", ".join(sorted(allowed)) or "no other keys"
        return [
            Issue(locate(_join(key, k)), _join(key, k), f"unknown key; expected one of: {expected}")
            for k in unknown
        ]
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return [Issue(locate(key), _join(key, missing), "required key is missing")]
    if kind in ("oneOf", "anyOf") and error.context:
        from jsonschema.exceptions import best_match

        # A branch of the value's own type explains best: {relative: -1} is "expected >= 0",
        # not "expected a number". When no branch has its type, say which forms are allowed.
        relevant = [e for e in error.context if e.validator != "type"]
        if not relevant and "x-expected" in schema:
            return [Issue(locate(key), key, f"expected {schema['x-expected']}", inst)]
        best = best_match(relevant or error.context)
        return render_schema_error(best, _key(best.absolute_path), locate) or [
            Issue(locate(key), key, "matches none of the allowed forms", inst)
        ]
    messages = {
        "enum": lambda: "expected one of: " + ", ".join(map(repr, schema["enum"])),
        "const": lambda: f"expected {schema['const']!r}",
        "type": lambda: f"expected a value of type {schema['type']}",
        "minimum": lambda: f"expected a number >= {schema['minimum']}",
        "maximum": lambda: f"expected a number <= {schema['maximum']}",
        "exclusiveMinimum": lambda: f"expected a number > {schema['exclusiveMinimum']}",
        "exclusiveMaximum": lambda: f"expected a number < {schema['exclusiveMaximum']}",
        "pattern": lambda: f"expected a string matching {schema['pattern']}",
        "minProperties": lambda: f"expected at least {schema['minProperties']} entries",
        "minItems": lambda: f"expected at least {schema['minItems']} items",
        "maxItems": lambda: f"expected at most {schema['maxItems']} items",
        "uniqueItems": lambda: "expected unique items",
        "not": lambda: "this value is not allowed here",
    }
    text = messages.get(kind, lambda: error.message)()
    return [Issue(locate(key), key, text, inst)]


def _join(prefix: str, key: str) -> str:
    return key if prefix in ("", "(root)") else f"{prefix}.{key}"


def validate_params(
    data: Mapping[str, Any],
    locate: Locate,
    *,
    root: Path,
    missing: Iterable[str] = (),
    hyperparameters: bool = True,
) -> list[Issue]:
    """Every problem with a composed config, in a stable order. Empty means valid.

    `hyperparameters=False` skips only scikit-learn's parameter constraints (which import the
    estimators, about a second): stages that never build an estimator still check everything
    else, `_target_` allow-list included.
    """
    issues = [Issue(locate(key), key, "required value is not set (still ???)") for key in missing]
    # an interpolation that survived into params.yaml (`dvc exp run -S` with an escaped one)
    issues += resolver_issues(data, locate)
    skip = set(missing)
    issues += schema_issues(data, locate, skip)
    bad_sections = {i.key.split(".")[0] for i in issues}
    if not bad_sections & {"task", "selection"}:
        issues += _selection_issues(data, locate)
    if not bad_sections & {"task", "deploy"}:
        issues += _deploy_issues(data, locate)
    if not bad_sections & {"selection", "deploy"}:
        issues += _amount_issues(data, locate)
    if "dataset" not in bad_sections:
        issues += _dataset_issues(data["dataset"], data.get("task"), locate, root)
        if "split" not in bad_sections:
            issues += _split_issues(data["split"], data["dataset"], locate)
    if not bad_sections & {"candidates", "task"}:
        issues += _candidate_issues(data["candidates"], data["task"], locate, hyperparameters)
    if not bad_sections & {"monitor", "task", "deploy"}:
        issues += _monitor_issues(data, locate)
    if not bad_sections & {"simulate", "dataset"}:
        issues += _simulate_issues(data["simulate"], data["dataset"], locate)
    if not bad_sections & {"maintain", "deploy", "task"}:
        issues += _maintain_issues(data, locate)
    return issues


def _maintain_issues(data: Mapping[str, Any], locate: Locate) -> list[Issue]:
    issues = []
    target = data["maintain"]["target"]
    if target not in data["deploy"]["targets"]:
        issues.append(
            Issue(
                locate("maintain.target"),
                "maintain.target",
                "must be one of the deployment targets: " + ", ".join(data["deploy"]["targets"]),
                target,
            )
        )
    metric = data["maintain"]["policies"]["rollback"]["metric"]
    if metric not in metrics_for(data["task"]):
        key = "maintain.policies.rollback.metric"
        issues.append(
            Issue(
                locate(key),
                key,
                f"not a {data['task']} metric; expected one of: "
                + ", ".join(metrics_for(data["task"])),
                metric,
            )
        )
    return issues


def _selection_issues(data: Mapping[str, Any], locate: Locate) -> list[Issue]:
    task, sel = data["task"], data["selection"]
    allowed = metrics_for(task)
    issues = []
    if sel["metric"] not in allowed:
        issues.append(
            Issue(
                locate("selection.metric"),
                "selection.metric",
                f"not a {task} metric; expected one of: {', '.join(allowed)}",
                sel["metric"],
            )
        )
    elif sel["direction"] != metric_direction(sel["metric"]):
        issues.append(
            Issue(
                locate("selection.direction"),
                "selection.direction",
                f"{sel['metric']} is {metric_direction(sel['metric'])}d; expected "
                f"{metric_direction(sel['metric'])!r}",
                sel["direction"],
            )
        )
    for section in ("floors", "baseline.beat"):
        issues += _metric_keys(f"selection.{section}", _at(sel, section), task, locate)
    strategy = sel["baseline"]["strategy"]
    if strategy not in BASELINE_STRATEGIES[task]:
        issues.append(
            Issue(
                locate("selection.baseline.strategy"),
                "selection.baseline.strategy",
                f"not a {task} baseline; expected one of: " + ", ".join(BASELINE_STRATEGIES[task]),
                strategy,
            )
        )
    return issues


def _at(data: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = (data or {}).get(part)  # type: ignore[assignment]
    return data


def _metric_keys(
    base: str, section: Mapping[str, Any] | None, task: str, locate: Locate
) -> list[Issue]:
    """Every key of a metric-keyed section (floors, margins) names a metric of the task."""
    allowed = metrics_for(task)
    return [
        Issue(
            locate(f"{base}.{metric}"),
            f"{base}.{metric}",
            f"not a {task} metric; expected one of: " + ", ".join(allowed),
        )
        for metric in section or {}
        if metric not in allowed
    ]


def _amount_issues(data: Mapping[str, Any], locate: Locate) -> list[Issue]:
    """An amount ({absolute: x} / {relative: x}) sets exactly one kind. Hydra merges mappings,
    so a dataset file writing {absolute: 0.5} over the task's {relative: 0.01} gets both."""
    found: list[tuple[str, Any]] = [("selection.tolerance", data["selection"]["tolerance"])]
    for metric, amount in (data["selection"]["baseline"].get("beat") or {}).items():
        found.append((f"selection.baseline.beat.{metric}", amount))
    for name, target in data["deploy"]["targets"].items():
        base = f"deploy.targets.{name}.gates"
        found.append((f"{base}.compare.margin", target["gates"]["compare"]["margin"]))
        for metric, amount in (target["gates"].get("baseline") or {}).items():
            found.append((f"{base}.baseline.{metric}", amount))
    rollback = data.get("maintain", {}).get("policies", {}).get("rollback") or {}
    if "margin" in rollback:
        found.append(("maintain.policies.rollback.margin", rollback["margin"]))
    issues = []
    for key, amount in found:
        if isinstance(amount, Mapping) and sum(v is not None for v in amount.values()) != 1:
            issues.append(
                Issue(
                    locate(key),
                    key,
                    "set exactly one of absolute / relative (a file that overrides another's "
                    "amount merges into it: write a plain number for an absolute amount, or set "
                    "the other key to null)",
                    dict(amount),
                )
            )
    return issues


def _deploy_issues(data: Mapping[str, Any], locate: Locate) -> list[Issue]:
    """The gates judge metrics of the task: floors, baseline margins and the compared metric
    (the defaults interpolate the selection rule's, which is checked above; an override may
    name another)."""
    task, issues = data["task"], []
    for name, target in data["deploy"]["targets"].items():
        gates, base = target["gates"], f"deploy.targets.{name}.gates"
        issues += _metric_keys(f"{base}.floors", gates.get("floors"), task, locate)
        issues += _metric_keys(f"{base}.baseline", gates.get("baseline"), task, locate)
        metric = gates["compare"]["metric"]
        if metric not in metrics_for(task):
            key = f"{base}.compare.metric"
            issues.append(
                Issue(
                    locate(key),
                    key,
                    f"not a {task} metric; expected one of: " + ", ".join(metrics_for(task)),
                    metric,
                )
            )
        if "strategy" in target:
            issues += _strategy_issues(target["strategy"], name, data, locate)
    issues += _environment_issues(data["deploy"]["targets"], locate)
    return issues


_QUANTITY = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_QUANTITY.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})


def quantity(text: str) -> float:
    """The value of a Kubernetes CPU or memory quantity the schema admitted (500m, 1.5, 512Mi)."""
    number = text.rstrip("kKMGTim")
    suffix = text[len(number) :]
    return float(number) * _QUANTITY.get(suffix, 1.0)


def _environment_issues(targets: Mapping[str, Any], locate: Locate) -> list[Issue]:
    """What the schema cannot say about kubernetes and systemd targets: no two render into the
    same folder, a request is within its limit, autoscaling's minimum is within its maximum."""
    from pipeline.paths import environment_dir

    issues: list[Issue] = []
    folders: dict[str, str] = {}
    for name, target in targets.items():
        kind = target.get("kind")
        if kind not in ("kubernetes", "systemd") or kind not in target:
            continue
        base = f"deploy.targets.{name}.{kind}"
        folder = target[kind]["path"] or environment_dir(kind, name).as_posix()
        for other, used in folders.items():
            if folder == used or folder.startswith(used + "/") or used.startswith(folder + "/"):
                issues.append(
                    Issue(
                        locate(f"{base}.path"),
                        f"{base}.path",
                        f"{folder} overlaps {used}, where target {other} renders; every "
                        "target needs a folder of its own",
                        target[kind]["path"],
                    )
                )
        folders[name] = folder
        if kind != "kubernetes":
            continue
        spec = target[kind]
        for resource in ("cpu", "memory"):
            request = spec["resources"]["requests"][resource]
            limit = spec["resources"]["limits"][resource]
            if quantity(request) > quantity(limit):
                key = f"{base}.resources.requests.{resource}"
                issues.append(Issue(locate(key), key, f"more than its limit ({limit})", request))
        scaling = spec.get("autoscaling")
        if scaling and scaling["min_replicas"] > scaling["max_replicas"]:
            key = f"{base}.autoscaling.min_replicas"
            message = f"more than max_replicas ({scaling['max_replicas']})"
            issues.append(Issue(locate(key), key, message, scaling["min_replicas"]))
    return issues


def _strategy_issues(
    strategy: Mapping[str, Any], name: str, data: Mapping[str, Any], locate: Locate
) -> list[Issue]:
    """What the strategy's schema cannot say: canary weights rise step by step, and the routing
    key is a field a record carries (a declared column other than the target)."""
    base, issues = f"deploy.targets.{name}.strategy", []
    if strategy["kind"] == "canary":
        weights = [step["weight"] for step in strategy["steps"]]
        for i in range(1, len(weights)):
            if weights[i] <= weights[i - 1]:
                key = f"{base}.steps.{i}.weight"
                issues.append(
                    Issue(
                        locate(key),
                        key,
                        f"canary weights must rise step by step; step {i - 1} already has "
                        f"{weights[i - 1]}",
                        weights[i],
                    )
                )
    key_column = strategy["key"]
    columns = data.get("dataset", {}).get("columns") or {}
    target = data.get("dataset", {}).get("target")
    if key_column is not None and (key_column not in columns or key_column == target):
        fields = sorted(c for c in columns if c != target)
        issues.append(
            Issue(
                locate(f"{base}.key"),
                f"{base}.key",
                "not a field the records carry; expected a declared column other than the "
                "target (" + ", ".join(fields) + "), or null to route by request id",
                key_column,
            )
        )
    return issues


def _dataset_issues(
    ds: Mapping[str, Any], task: str | None, locate: Locate, root: Path
) -> list[Issue]:
    issues: list[Issue] = []
    cols: Mapping[str, Any] = ds["columns"]

    def add(key: str, message: str, value: Any = None) -> None:
        full = f"dataset.{key}"
        issues.append(Issue(locate(full), full, message, value))

    if ds["source"]["kind"] == "file" and not (root / ds["source"]["path"]).is_file():
        add(
            "source.path",
            "file does not exist (relative to the project root); add it with "
            "`dvc add` or fix the path",
            ds["source"]["path"],
        )
    target = ds["target"]
    if target not in cols:
        add("target", "must be one of the declared columns", target)
    else:
        ttype = cols[target]["type"]
        allowed = {"category", "bool"} if task == "classification" else {"float", "int"}
        if task in ("classification", "regression") and ttype not in allowed:
            why = (
                " (class labels are compared as text, so 1, 1.0 and '1' are one class; "
                "declare a numeric label `type: category`)"
                if task == "classification" and ttype in ("int", "float")
                else ""
            )
            add(
                f"columns.{target}.type",
                f"a {task} target must be of type " + " or ".join(sorted(allowed)) + why,
                ttype,
            )
        if _declared(cols[target])["role"] != "feature":
            add(f"columns.{target}.role", "the target cannot have a role", cols[target]["role"])
        if _declared(cols[target])["personal"]:
            add(
                f"columns.{target}.personal",
                "the target cannot be marked personal: predictions and labels are what the "
                "prediction log and monitoring compare, so they are never redacted",
                True,
            )
    key = ds.get("key")
    if key is not None and key not in cols:
        add("key", "must be one of the declared columns (or null to hash whole rows)", key)
    elif key is not None and _declared(cols[key])["nullable"]:
        add(f"columns.{key}.nullable", "the key column cannot be nullable", True)
    if not any(_declared(c)["role"] == "feature" for n, c in cols.items() if n != target):
        add("columns", "expected at least one feature column besides the target")
    for name, col in cols.items():
        issues += _column_issues(name, col, locate)
    return issues


def _declared(col: Mapping[str, Any]) -> dict[str, Any]:
    """A column declaration with the keys it left out at their schema defaults."""
    return {**schema_defaults("dataset", "$defs", "column"), **col}


def _column_issues(name: str, col: Mapping[str, Any], locate: Locate) -> list[Issue]:
    issues = []
    base = f"dataset.columns.{name}"
    ctype = col["type"]
    if col.get("categories") is not None and ctype not in ("category", "bool"):
        issues.append(
            Issue(
                locate(base),
                f"{base}.categories",
                f"only category and bool columns have categories, not {ctype}",
            )
        )
    if ctype == "category" and col.get("categories") is not None:
        canon = [canonical_category(c) for c in col["categories"]]
        if len(set(canon)) != len(canon):
            issues.append(
                Issue(
                    locate(base),
                    f"{base}.categories",
                    "categories must be distinct once written as text",
                    canon,
                )
            )
    low, high = col.get("min"), col.get("max")
    for bound in ("min", "max"):
        value = col.get(bound)
        if value is None:
            continue
        if ctype in ("float", "int") and isinstance(value, str):
            issues.append(Issue(locate(base), f"{base}.{bound}", "expected a number", value))
        elif ctype == "datetime" and not _is_date(value):
            issues.append(Issue(locate(base), f"{base}.{bound}", "expected an ISO date", value))
        elif ctype in ("category", "bool"):
            issues.append(
                Issue(locate(base), f"{base}.{bound}", f"{ctype} columns have no range", value)
            )
    if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
        issues.append(Issue(locate(base), f"{base}.min", f"must not exceed max ({high})", low))
    return issues


def _is_date(value: Any) -> bool:
    from datetime import datetime

    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def _split_issues(split: Mapping[str, Any], ds: Mapping[str, Any], locate: Locate) -> list[Issue]:
    issues = []
    cols = ds["columns"]
    if split["method"] != "time" and split.get("test_size", 0) + split.get("pool_size", 0) >= 1:
        issues.append(
            Issue(
                locate("split.test_size"),
                "split.test_size",
                "test_size + pool_size must leave rows to train on (sum < 1)",
                split.get("test_size", 0) + split.get("pool_size", 0),
            )
        )
    target = cols.get(ds.get("target"), {})
    if split["method"] == "stratified" and target.get("type") == "float":
        issues.append(
            Issue(
                locate("split.method"),
                "split.method",
                "stratified splits need a categorical target",
                "stratified",
            )
        )
    for key, want in (("group_column", None), ("time_column", "datetime")):
        col = split.get(key)
        if col is None:
            continue
        if col not in cols:
            issues.append(
                Issue(
                    locate(f"split.{key}"),
                    f"split.{key}",
                    "must be one of the dataset's declared columns",
                    col,
                )
            )
        elif want and cols[col]["type"] != want:
            issues.append(
                Issue(
                    locate(f"split.{key}"),
                    f"split.{key}",
                    f"must be a {want} column",
                    cols[col]["type"],
                )
            )
    if split["method"] == "time":
        frm, pool = split.get("test_from"), split.get("pool_from")
        for key, value in (("test_from", frm), ("pool_from", pool)):
            if value is not None and not _is_date(value):
                issues.append(
                    Issue(
                        locate(f"split.{key}"),
                        f"split.{key}",
                        "expected an ISO date such as 2024-01-31",
                        value,
                    )
                )
        if _is_date(frm) and _is_date(pool) and str(frm) > str(pool):
            issues.append(
                Issue(
                    locate("split.test_from"),
                    "split.test_from",
                    f"must not be after pool_from ({pool})",
                    frm,
                )
            )
    return issues


# Metrics a production window can be scored on: windows hold served labels, not scores.
LABEL_METRICS = {
    "classification": ("accuracy", "balanced_accuracy", "f1_macro"),
    "regression": ("rmse", "mae", "r2"),
}


def _monitor_issues(data: Mapping[str, Any], locate: Locate) -> list[Issue]:
    """The monitored target exists, performance metrics suit the task and need labels only,
    and the prediction-drift method suits the task's prediction (categorical or numeric)."""
    mon, task = data["monitor"], data["task"]
    issues = []
    if mon["target"] not in data["deploy"]["targets"]:
        issues.append(
            Issue(
                locate("monitor.target"),
                "monitor.target",
                "not a deployment target; expected one of: " + ", ".join(data["deploy"]["targets"]),
                mon["target"],
            )
        )
    allowed = LABEL_METRICS[task]
    for section in ("floors", "max_drop_by_metric"):
        for metric in mon["performance"].get(section) or {}:
            if metric in allowed:
                continue
            key = f"monitor.performance.{section}.{metric}"
            why = (
                "needs predicted scores, which production windows do not hold"
                if metric in metrics_for(task)
                else f"not a {task} metric"
            )
            issues.append(Issue(locate(key), key, f"{why}; expected one of: {', '.join(allowed)}"))
    kind = "categorical" if task == "classification" else "numeric"
    methods = schema("monitor")["$defs"][f"{kind}_method"]["enum"]
    if mon["prediction"]["method"] not in methods:
        issues.append(
            Issue(
                locate("monitor.prediction.method"),
                "monitor.prediction.method",
                f"{task} predictions are {kind}; expected one of: {', '.join(methods)}",
                mon["prediction"]["method"],
            )
        )
    return issues


def _simulate_issues(sim: Mapping[str, Any], ds: Mapping[str, Any], locate: Locate) -> list[Issue]:
    """Scenario columns are declared features (numeric ones for a shift); the start is a date."""
    issues = []
    if not _is_date(sim["start"]):
        issues.append(
            Issue(
                locate("simulate.start"),
                "simulate.start",
                "expected an ISO timestamp such as 2025-01-06T00:00:00+00:00",
                sim["start"],
            )
        )
    cols = ds["columns"]
    features = [
        n for n, c in cols.items() if n != ds["target"] and _declared(c)["role"] == "feature"
    ]
    for name, scenario in sim["scenarios"].items():
        for effect, spec in (scenario or {}).items():
            chosen = spec.get("columns") if isinstance(spec, Mapping) else None
            if not isinstance(chosen, list):
                continue
            key = f"simulate.scenarios.{name}.{effect}.columns"
            for col in chosen:
                if col not in features:
                    issues.append(Issue(locate(key), key, "not a declared feature column", col))
                elif effect == "shift" and cols[col]["type"] not in ("float", "int"):
                    issues.append(
                        Issue(
                            locate(key), key, "a shift needs a numeric (float or int) column", col
                        )
                    )
    return issues


def _candidate_issues(
    cands: Mapping[str, Any], task: str, locate: Locate, check_params: bool
) -> list[Issue]:
    from pipeline.factory import check_hyperparameters, hyperparameters, target_task

    issues: list[Issue] = []
    for name, spec in cands.items():
        base = f"candidates.{name}"
        target = spec["_target_"]
        try:
            served = target_task(target)
        except UnsafeTargetError as exc:
            issues.append(
                Issue(locate(f"{base}._target_"), f"{base}._target_", f"{exc}; {exc.hint}", target)
            )
            continue
        if served != task:
            issues.append(
                Issue(
                    locate(f"{base}._target_"),
                    f"{base}._target_",
                    f"is a {served} estimator but the task is {task}",
                    target,
                )
            )
            continue
        if not check_params:
            continue
        for param, problem in check_hyperparameters(target, hyperparameters(spec)).items():
            key = f"{base}.{param}"
            issues.append(Issue(locate(key), key, problem, spec.get(param)))
        issues += _search_issues(base, target, spec.get("_search_") or {}, locate)
    return issues


def _search_issues(
    base: str, target: str, search: Mapping[str, Any], locate: Locate
) -> list[Issue]:
    from pipeline.factory import check_hyperparameters

    issues: list[Issue] = []
    method = search.get("method", "none")
    space = search.get("space") or {}
    if method != "none" and not space:
        key = f"{base}._search_.space"
        issues.append(Issue(locate(key), key, f"a {method} search needs a non-empty space"))
    for param, values in space.items():
        key = f"{base}._search_.space.{param}"
        if isinstance(values, Mapping):
            if method in ("grid", "halving_grid"):
                issues.append(
                    Issue(
                        locate(key),
                        key,
                        f"a {method} search needs a list of values, not a distribution",
                    )
                )
                continue
            if values["low"] >= values["high"]:
                issues.append(Issue(locate(key), f"{key}.low", "must be below high", values["low"]))
                continue
            if values["distribution"] == "loguniform" and values["low"] <= 0:
                issues.append(
                    Issue(locate(key), f"{key}.low", "loguniform needs low > 0", values["low"])
                )
                continue
            candidates = [values["low"], values["high"]]
            if values["distribution"] == "randint":
                candidates = [int(v) for v in candidates]
        else:
            candidates = list(values)
        for value in candidates:
            problems = check_hyperparameters(target, {param: value})
            if problems:
                issues.append(Issue(locate(key), key, problems[param], value))
                break
    return issues
