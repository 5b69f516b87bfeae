"""`mlops sweep NAME`: a committed grid of overrides, queued as DVC experiments.

A sweep is a file in `conf/experiment/` that declares its grid where Hydra itself declares a
sweep, `hydra.sweeper.params` (one key per swept setting, its values in Hydra's override
grammar: `100,400`, `range(2,10,2)`, `choice(null,balanced)`). Hydra drops the `hydra` node
from every composition, so `mlops compose +experiment=NAME` composes to the same params.yaml as
without it unless the file also sets values (which then apply to every point).

Running the grid is DVC's job, not ours: one `dvc exp run --queue --name NAME
-S +experiment=NAME -S KEY=V1,V2 ...`, which DVC expands into one queued experiment per point
(named NAME-1, NAME-2, ...); `dvc queue start -j N` (or `dvc exp run --run-all -j N`) runs them,
`dvc exp show` compares them. This module adds only what DVC does not: the grid is read from a
reviewed file, and every point is composed and validated with the project's own rules *before*
anything is queued (`dvc exp run -S` composes without them; the stages would refuse a bad point
only once it runs), so a bad grid queues nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import vcs
from pipeline.config import CONF_DIR, compose, read_yaml, relpath
from pipeline.errors import ConfigError, Issue, ToolError

GROUP = "experiment"
GRID_KEY = "hydra.sweeper.params"


@dataclass(frozen=True)
class Sweep:
    """A sweep file read: its name, where it is, and its grid expanded into points."""

    name: str
    path: Path
    grid: dict[str, str]  # override key -> Hydra sweep value, as declared
    points: list[list[str]]  # one `key=value` override list per point, DVC's order

    def point_name(self, number: int, prefix: str | None = None) -> str:
        """The name DVC gives point `number` (from 1): NAME-<number>, or NAME for a grid of
        one point (DVC numbers only a sweep)."""
        base = prefix or self.name
        return base if len(self.points) == 1 else f"{base}-{number}"

    def overrides(self) -> list[str]:
        """`dvc exp run -S` arguments: the sweep file itself, then the grid (DVC expands it)."""
        return [f"+{GROUP}={self.name}", *(f"{k}={v}" for k, v in self.grid.items())]


def sweep_file(root: Path, name: str) -> Path:
    path = root / CONF_DIR / GROUP / f"{name}.yaml"
    if not path.is_file():
        known = sorted(
            p.stem for p in (root / CONF_DIR / GROUP).glob("*.yaml") if _declares_grid(read_yaml(p))
        )
        raise ConfigError(
            f"no sweep '{name}': {relpath(path, root)} does not exist",
            hint="sweeps in conf/experiment/: "
            + (", ".join(known) or "none")
            + f" (a sweep declares its grid under {GRID_KEY})",
        )
    return path


def _declares_grid(data: Any) -> bool:
    hydra = data.get("hydra") if isinstance(data, dict) else None
    sweeper = hydra.get("sweeper") if isinstance(hydra, dict) else None
    return isinstance(sweeper, dict) and "params" in sweeper


def _value(value: Any) -> str | None:
    """A grid value as Hydra's override text (YAML may have read `null` or a number)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def read_sweep(root: Path, name: str) -> Sweep:
    """Read conf/experiment/NAME.yaml's grid and expand it into its points, as DVC will."""
    path = sweep_file(root, name)
    source = relpath(path, root)
    data = read_yaml(path)
    if not _declares_grid(data):
        raise ConfigError(
            [Issue(source, GRID_KEY, "not set: this experiment file declares no sweep grid")],
            hint=f"declare the grid under {GRID_KEY}, one key per swept setting, e.g. "
            "`candidates.random_forest.n_estimators: 100,400`; an experiment without a grid is "
            f"composed with `mlops compose +{GROUP}={name}`",
        )
    declared = data["hydra"]["sweeper"]["params"]
    if not isinstance(declared, dict) or not declared:
        raise ConfigError(
            [Issue(source, GRID_KEY, "must map each swept key to its values", declared)],
            hint="e.g. `candidates.random_forest.n_estimators: 100,400`",
        )
    grid: dict[str, str] = {}
    issues = []
    for key, value in declared.items():
        text = _value(value)
        if text is None:
            issues.append(
                Issue(
                    source,
                    f"{GRID_KEY}.{key}",
                    "values are one string in Hydra's sweep syntax (`a,b`, `range(1,4)`, "
                    "`choice(a,b)`), not a YAML list or mapping",
                    value,
                )
            )
        else:
            grid[str(key)] = text
    if issues:
        raise ConfigError(issues, hint="write the values as `a,b` (quote it if YAML would not)")
    return Sweep(name, path, grid, _expand(source, grid))


def _expand(source: str, grid: dict[str, str]) -> list[list[str]]:
    """Every point of the grid, with Hydra's parser and its basic sweeper's rule (DVC's too:
    `dvc.utils.hydra.get_hydra_sweeps`): a discrete sweep is its values, anything else is one
    value; intervals and globs are refused, as DVC refuses them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    axes = []
    for key, value in grid.items():
        where = f"{GRID_KEY}.{key}"
        try:
            (override,) = parser.parse_overrides([f"{key}={value}"])
        except HydraException as exc:
            message = " ".join(str(exc).split())
            raise ConfigError(
                [Issue(source, where, f"not a Hydra override: {message}", value)],
                hint="see Hydra's override grammar: `a,b`, `range(1,4)`, `choice(a,b)`",
            ) from exc
        element = override.get_key_element()
        if not override.is_sweep_override():
            axes.append([f"{element}={override.get_value_element_as_str()}"])
        elif override.value_type == ValueType.GLOB_CHOICE_SWEEP or not (
            override.is_discrete_sweep()
        ):
            raise ConfigError(
                [Issue(source, where, "a glob or interval sweep has no finite grid", value)],
                hint="list the values (`a,b`), or use `range(start,stop,step)`",
            )
        else:
            axes.append([f"{element}={v}" for v in override.sweep_string_iterator()])
    return [list(point) for point in itertools.product(*axes)]


def check_points(root: Path, sweep: Sweep) -> None:
    """Compose and validate every point as `mlops compose` would, collecting every problem:
    a grid with one bad point queues nothing."""
    from pipeline.validation import validate_params

    issues = []
    for number, point in enumerate(sweep.points, 1):
        overrides = [f"+{GROUP}={sweep.name}", *point]
        try:
            composed = compose(root, overrides)
        except ConfigError as exc:
            found = exc.issues or [Issue(relpath(sweep.path, root), "(point)", str(exc))]
        else:
            found = validate_params(
                composed.data, composed.locate, root=root, missing=composed.missing
            )
        label = f"{sweep.point_name(number)} ({' '.join(point)})"
        issues += [Issue(label, i.key, f"{i.source}: {i.message}", i.value) for i in found]
    if issues:
        raise ConfigError(
            issues,
            title=f"sweep '{sweep.name}' refused: {len(issues)} problem(s); nothing was queued",
            hint=f"fix the grid in {relpath(sweep.path, root)} (or the conf/ file named)",
        )


def queue(root: Path, sweep: Sweep, *, name: str | None = None) -> str:
    """One `dvc exp run --queue` for the whole grid (DVC expands it and names the points
    NAME-1, NAME-2, ...); returns what DVC printed. DVC refuses a name that an experiment of
    the same commit already has, at the first point, so a refused sweep queues nothing."""
    prefix = name or sweep.name
    args = ["exp", "run", "--queue", "--name", prefix]
    for override in sweep.overrides():
        args += ["-S", override]
    try:
        return vcs.dvc(root, *args).stdout
    except ToolError as exc:
        raise ToolError(
            f"DVC did not queue sweep '{sweep.name}': {exc}",
            hint=f"an experiment of this commit named {sweep.point_name(1, prefix)} exists "
            f"already? give the points other names (`--name PREFIX`) or remove the old ones "
            "(`dvc exp remove ...`); `dvc queue status` lists what is queued",
        ) from exc
