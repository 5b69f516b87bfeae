"""The config group choices in `conf/config.yaml`'s defaults list: read them, change one in place.

`mlops select dataset=my_data` is how a choice becomes part of the desired state. An ad-hoc
`mlops compose dataset=my_data` writes a params.yaml that conf/ does not declare, so the next
`mlops compose --check` (the first step of `make run` and of CI) fails, and a plain
`mlops compose` silently goes back to conf/'s choice. Selecting instead edits the one option
scalar of the defaults entry, leaving every comment and the layout of the file as they were (a
one-line diff in review), and recomposes params.yaml, so DVC's own Hydra composition
(`dvc exp run`) and `mlops compose` agree with it.

Nothing is written until the new composition is known to compose, validate and take effect; a
refused selection leaves conf/ and params.yaml byte-identical. When params.yaml is stale,
`explain_stale` finds which choices it was composed with, so `--check` can name the command that
persists them.
"""

from __future__ import annotations

import difflib
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.config import CONF_DIR, CONFIG_NAME, PARAMS_FILE, Composition, compose
from pipeline.errors import ConfigError, Issue
from pipeline.io import atomic_write_text
from pipeline.journal import Journal, transaction

CONFIG_FILE = f"{CONF_DIR}/{CONFIG_NAME}.yaml"
OPTION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # matched whole (fullmatch)
COMMENT_GAP = re.compile(r"[ \t]+(?=#)")


@dataclass(frozen=True)
class Choice:
    """One `- key: option` entry of the defaults list, located in the file's text."""

    key: str  # as Hydra overrides name it: dataset, deploy@deploy.targets.local, deploy/pins
    option: str
    optional: bool
    start: int  # character offsets of the option scalar in conf/config.yaml
    end: int

    @property
    def group(self) -> str:
        """The config group directory under conf/ (the key without its @package)."""
        return self.key.split("@", 1)[0]

    @property
    def package(self) -> str | None:
        return self.key.split("@", 1)[1] if "@" in self.key else None


def read_choices(text: str, source: str = CONFIG_FILE) -> list[Choice]:
    """The group choices of a primary config's defaults list (not `_self_`, not `override`s)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        from pipeline.config import yaml_issue

        raise ConfigError([yaml_issue(exc)], title=f"{source} is not valid YAML") from exc
    if not isinstance(node, yaml.MappingNode):
        return []
    defaults = next((v for k, v in node.value if k.value == "defaults"), None)
    if not isinstance(defaults, yaml.SequenceNode):
        return []
    out = []
    for item in defaults.value:
        if not (isinstance(item, yaml.MappingNode) and len(item.value) == 1):
            continue  # `_self_`, or a form this command does not edit
        key_node, value_node = item.value[0]
        words = str(key_node.value).split()
        if not words or "override" in words[:-1] or not isinstance(value_node, yaml.ScalarNode):
            continue
        if value_node.value in ("", "null", "~", "???"):
            continue
        out.append(
            Choice(
                key=words[-1].lstrip("/"),
                option=str(value_node.value),
                optional="optional" in words[:-1],
                start=value_node.start_mark.index,
                end=value_node.end_mark.index,
            )
        )
    return out


def options(root: Path, group: str) -> list[str]:
    """The options of a config group: the YAML files in conf/<group>/."""
    return sorted(p.stem for p in (root / CONF_DIR / group).glob("*.yaml"))


def parse(selection: str, choices: Sequence[Choice], root: Path) -> tuple[Choice, str]:
    """`group=option` -> (the defaults entry it changes, the option); every mistake refused with
    what would be accepted."""
    keys = [c.key for c in choices]
    key, sep, option = selection.partition("=")
    key = key.strip()
    option = option.strip()
    if not sep or not key or key[0] in "+~":
        raise ConfigError(
            [Issue(selection, "selection", "expected GROUP=OPTION, e.g. dataset=my_data")],
            hint=f"groups chosen in {CONFIG_FILE}: " + ", ".join(keys),
        )
    choice = next((c for c in choices if c.key == key), None)
    if choice is None:
        raise ConfigError(
            [Issue(selection, key, f"not a config group chosen in {CONFIG_FILE}'s defaults list")],
            hint=f"groups: {', '.join(keys)}. A single value (e.g. train.cv=3) is not a "
            "selection: edit it in its conf/ file, or try it with `dvc exp run --temp -S`",
        )
    available = options(root, choice.group)
    if not OPTION.fullmatch(option) or option not in available:
        raise ConfigError(
            [
                Issue(
                    selection,
                    key,
                    f"no option {option!r}: expected one of {', '.join(available)} "
                    f"(the files in {CONF_DIR}/{choice.group}/)",
                )
            ],
            hint=f"create {CONF_DIR}/{choice.group}/{option}.yaml first"
            + (
                " (`mlops schema infer data/external/<file> > conf/dataset/<name>.yaml`)"
                if choice.group == "dataset"
                else ""
            ),
        )
    return choice, option


def edit(text: str, changes: Iterable[tuple[Choice, str]]) -> str:
    """`text` with each choice's option replaced in place; a same-line comment keeps its
    column where the new option leaves room for it."""
    out = text
    for choice, option in sorted(changes, key=lambda c: c[0].start, reverse=True):
        written = option if yaml.safe_load(option) == option else f'"{option}"'
        tail = out[choice.end :]
        gap = COMMENT_GAP.match(tail)
        if gap and "\n" not in gap.group(0):
            width = len(gap.group(0)) + (choice.end - choice.start) - len(written)
            tail = " " * max(min(2, len(gap.group(0))), width) + tail[gap.end() :]
        out = out[: choice.start] + written + tail
    return out


def _effective(root: Path) -> dict[str, str]:
    """key -> the option Hydra actually uses for every choice of the primary defaults list
    (a dataset file's `override /task: ...` wins over conf/config.yaml)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(root / CONF_DIR), version_base=None):
            loader = GlobalHydra.instance().config_loader()
            result = loader.compute_defaults_list(CONFIG_NAME, [], RunMode.RUN)
    finally:
        GlobalHydra.instance().clear()
    text = (root / CONFIG_FILE).read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for choice in read_choices(text):
        for item in result.defaults:
            path = item.config_path or ""
            group, _, option = path.rpartition("/")
            if group == choice.group and (choice.package is None or item.package == choice.package):
                out[choice.key] = option
                break
    return out


def _overridden_by(root: Path, group: str) -> str:
    """The conf file whose defaults list says `override /<group>: ...`."""
    for path in sorted((root / CONF_DIR).rglob("*.yaml")):
        pattern = rf"^\s*-\s*override\s+/?{re.escape(group)}\s*:"
        if re.search(pattern, path.read_text("utf-8"), re.M):
            return path.relative_to(root).as_posix()
    return "another config file"


def select(root: Path, selections: Sequence[str]) -> tuple[Composition, list[tuple[str, str, str]]]:
    """Choose options in conf/config.yaml and recompose params.yaml, or change nothing (also
    when killed between the two writes: `pipeline.journal`).

    Returns the composition and (key, old option, new option) for every choice that changed.
    """
    with transaction(root, "mlops select") as journal:
        return _select(root, selections, journal)


def _select(
    root: Path, selections: Sequence[str], journal: Journal
) -> tuple[Composition, list[tuple[str, str, str]]]:
    from pipeline.validation import validate_params

    config_path = root / CONFIG_FILE
    text = config_path.read_text(encoding="utf-8")
    choices = read_choices(text)
    changes = [parse(s, choices, root) for s in selections]
    keys = [c.key for c, _ in changes]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(
            [Issue(CONFIG_FILE, k, "selected more than once") for k in twice],
            hint="name each group once",
        )
    new_text = edit(text, changes)
    with tempfile.TemporaryDirectory(prefix="mlops-select-") as tmp:
        trial = Path(tmp)
        shutil.copytree(root / CONF_DIR, trial / CONF_DIR)
        (trial / CONFIG_FILE).write_text(new_text, encoding="utf-8")
        composed = compose(trial)
        issues = validate_params(
            composed.data, composed.locate, root=root, missing=composed.missing
        )
        effective = _effective(trial)
        shadowed = [
            Issue(
                _overridden_by(trial, choice.group),
                choice.key,
                f"overrides the choice: {CONFIG_FILE} would say {option}, but Hydra uses "
                f"{effective.get(choice.key)}",
            )
            for choice, option in changes
            if effective.get(choice.key) != option
        ]
    if shadowed:
        raise ConfigError(
            shadowed,
            title="selection refused: it would not take effect",
            hint="change the `override /<group>` line in the file named above instead; "
            f"{CONFIG_FILE} and {PARAMS_FILE} were not changed",
        )
    if issues:
        raise ConfigError(
            issues,
            title=f"selection refused: the composition has {len(issues)} problem(s)",
            hint=f"fix the files named above; {CONFIG_FILE} and {PARAMS_FILE} were not changed",
        )
    composed = Composition(root, [], composed.text, composed.data, composed.missing)
    params_path = root / PARAMS_FILE
    old_params = params_path.read_bytes() if params_path.exists() else None
    journal.file(CONFIG_FILE)
    journal.file(PARAMS_FILE)
    if new_text != text:
        atomic_write_text(config_path, new_text)
    if old_params is None or old_params.decode("utf-8") != composed.text:
        atomic_write_text(params_path, composed.text)
    changed = [(c.key, c.option, option) for c, option in changes if c.option != option]
    return composed, changed


def unsaved(root: Path, overrides: Sequence[str]) -> list[str]:
    """The overrides of `mlops compose` that choose a group option other than conf/'s: params.yaml
    will be stale for `--check` until they are selected."""
    text = (root / CONFIG_FILE).read_text(encoding="utf-8")
    current = {c.key: c.option for c in read_choices(text)}
    out = []
    for override in overrides:
        key, sep, option = override.partition("=")
        if sep and key in current and option != current[key]:
            out.append(override)
    return out


def explain_stale(
    root: Path, params_text: str, composed_text: str, overrides: Sequence[str] = ()
) -> str | None:
    """Which group choices (or override set) params.yaml was composed with, when conf/ chooses
    otherwise: tries the other options of the groups that can explain the difference (one at a
    time, then the closest of each together).

    Runs only when `--check` already failed, and composes only for groups that write a section
    that differs (or write everywhere, `@package _global_`), dataset first. None when no
    combination of options reproduces params.yaml (a value override, a hand edit, or a
    `dvc exp run` in the workspace)."""
    try:
        choices = [c for c in read_choices((root / CONFIG_FILE).read_text("utf-8"))]
        params, current = yaml.safe_load(params_text), yaml.safe_load(composed_text)
    except (ConfigError, OSError, yaml.YAMLError):
        return None
    if not (isinstance(params, dict) and isinstance(current, dict)):
        return None
    differs = {k for k in set(params) | set(current) if params.get(k) != current.get(k)}
    target = params_text.splitlines()

    def closeness(extra: list[str]) -> float | None:
        try:
            text = compose(root, [*overrides, *extra]).text
        except ConfigError:
            return None
        if text == params_text:
            return 2.0
        return difflib.SequenceMatcher(None, target, text.splitlines(), autojunk=False).ratio()

    base = difflib.SequenceMatcher(None, target, composed_text.splitlines()).ratio()
    best: dict[str, tuple[float, str]] = {}
    for choice in reversed(choices):  # the dataset (last) is the likeliest
        if choice.optional or not _may_write(root, choice, differs):
            continue
        for option in options(root, choice.group):
            if option == choice.option:
                continue
            score = closeness([f"{choice.key}={option}"])
            if score == 2.0:
                return _persist_message([f"{choice.key}={option}"], choices)
            if score is not None and score > best.get(choice.key, (base, ""))[0]:
                best[choice.key] = (score, option)
    combined = [f"{key}={option}" for key, (_, option) in best.items()]
    if len(combined) > 1 and closeness(combined) == 2.0:
        return _persist_message(combined, choices)
    if "experiment" not in {c.group for c in choices}:
        for option in options(root, "experiment"):
            if closeness([f"+experiment={option}"]) == 2.0:
                return (
                    f"{PARAMS_FILE} was composed with +experiment={option}, an override set "
                    f"{CONFIG_FILE} does not include: `mlops compose` returns to conf/'s "
                    "composition"
                )
    return None


def _may_write(root: Path, choice: Choice, sections: set[str]) -> bool:
    """Whether the group's options can change one of `sections` (top-level keys of params)."""
    path = root / CONF_DIR / choice.group / f"{choice.option}.yaml"
    try:
        head = path.read_text("utf-8").split("\n", 1)[0]
    except OSError:
        return True
    if re.match(r"#\s*@package\s+_global_", head):
        return True
    package = choice.package or choice.group.replace("/", ".")
    return package.split(".", 1)[0] in sections


def _persist_message(selected: list[str], choices: Sequence[Choice]) -> str:
    current = {c.key: c.option for c in choices}
    pairs = ", ".join(
        f"{s.split('=', 1)[0]}={s.split('=', 1)[1]} (conf/ chooses {current[s.split('=', 1)[0]]})"
        for s in selected
    )
    return (
        f"{PARAMS_FILE} was composed with {pairs}. To keep that choice, persist it in "
        f"{CONFIG_FILE}: `mlops select {' '.join(selected)}`; to return to conf/'s choice: "
        "`mlops compose`"
    )
