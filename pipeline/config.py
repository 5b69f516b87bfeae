"""Compose `conf/` into `params.yaml`, check it is current, and load it back, validated.

`params.yaml` must be byte-identical to what DVC's own Hydra integration writes for `dvc exp run
-S ...` (`dvc.utils.hydra.compose_and_dump`): Hydra's compose API, `OmegaConf.resolve`, then
`OmegaConf.to_yaml`. We never use `@hydra.main` (it makes `dvc exp run -S` overrides vanish).

`--check` mode only composes and compares, so it imports Hydra but no pandas or scikit-learn:
it guards every `dvc repro`, locally and in CI, and must stay fast.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError, Issue, StaleParamsError
from pipeline.io import atomic_write_text

if TYPE_CHECKING:
    from pipeline.params import Params

CONF_DIR = "conf"
CONFIG_NAME = "config"
PARAMS_FILE = "params.yaml"


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest directory upwards holding `conf/config.yaml`."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONF_DIR / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise ConfigError(
        f"no {CONF_DIR}/{CONFIG_NAME}.yaml in {here} or any parent directory",
        hint="run mlops from inside the project (the directory holding conf/ and dvc.yaml)",
    )


@dataclass
class Composition:
    """The result of composing conf/ with overrides: the YAML text and the plain data."""

    root: Path
    overrides: list[str]
    text: str
    data: dict[str, Any]
    missing: list[str] = field(default_factory=list)  # keys still `???`

    def locate(self, key: str) -> str:
        """Which file (or command-line override) set `key`: used to point errors at their source."""
        return Provenance.of(self).locate(key)


def _hydra_error_types() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return (HydraException, OmegaConfBaseException, ValueError)


# Successful compositions of this process, by `_conf_digest`: a Hydra composition costs about a
# second, and one command (or test session) composes the same conf/ again and again.
_COMPOSED: dict[str, tuple[str, dict[str, Any], list[str]]] = {}
_COMPOSED_MAX = 32


def compose(root: Path, overrides: Sequence[str] = ()) -> Composition:
    """Compose exactly as DVC does for `dvc exp run -S`; errors become a located ConfigError.

    The result is a pure function of conf/'s files, the overrides and Hydra's version (resolvers
    that read anything else are refused), so an equal digest of those reuses an earlier
    composition of this process; a failed composition is never remembered."""
    import copy

    try:
        key = _conf_digest(root, overrides)
    except OSError:  # an unreadable file: let Hydra report it
        key = None
    if key is not None and key in _COMPOSED:
        text, data, missing = _COMPOSED[key]
        return Composition(root, list(overrides), text, copy.deepcopy(data), list(missing))
    composed = _compose(root, overrides)
    if key is not None:
        if len(_COMPOSED) >= _COMPOSED_MAX:
            _COMPOSED.pop(next(iter(_COMPOSED)))
        _COMPOSED[key] = (composed.text, copy.deepcopy(composed.data), list(composed.missing))
    return composed


def _compose(root: Path, overrides: Sequence[str]) -> Composition:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(root / CONF_DIR), version_base=None):
            cfg = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))
        _refuse_resolvers(root, overrides, OmegaConf.to_container(cfg, resolve=False))
        missing = sorted(OmegaConf.missing_keys(cfg))
        OmegaConf.resolve(cfg)
        text = OmegaConf.to_yaml(cfg)
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except _yaml_error_types() as exc:
        raise ConfigError(
            [yaml_issue(exc, root)],
            title="conf/ does not compose: a file is not valid YAML",
            hint="fix the file at the line shown (YAML is indentation-sensitive; quote values "
            "holding ': ' or '#'); params.yaml was not changed",
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Issue(_undecodable(root), "(file)", f"not UTF-8 text: {exc.reason}")],
            title="conf/ does not compose",
            hint="save the file as UTF-8; params.yaml was not changed",
        ) from exc
    except _hydra_error_types() as exc:
        raise ConfigError(
            [Issue(f"{CONF_DIR}/", "composition", _first_line(exc))],
            title="conf/ does not compose",
            hint="check the defaults lists and overrides (`mlops compose --help`)",
        ) from exc
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(data, dict)
    return Composition(root, list(overrides), text, {str(k): v for k, v in data.items()}, missing)


# Resolvers whose value depends on conf/ alone. Every other one (`oc.env`, Hydra's `now` and
# `hydra:`, a custom resolver) would put a machine's state, or a secret, into params.yaml.
PURE_RESOLVERS = frozenset(
    {"oc.select", "oc.dict.keys", "oc.dict.values", "oc.create", "oc.decode", "oc.deprecated"}
)
ENV_RESOLVERS = frozenset({"oc.env", "env"})
_RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
SECRETS_HINT = (
    "secrets never live in conf/ or in an override: whatever conf/ composes to is committed "
    "(params.yaml, dvc.lock, model cards, DVC's run cache, experiment refs). The service reads "
    "its secrets at run time from the environment variable or file named in conf/ "
    "(deploy.targets.<target>.serve.auth.token_env, e.g. MLOPS_SERVICE_TOKEN, or token_file; "
    "serve.log.redact.key_env / key_file for the log hash key)"
)


def resolver_issues(data: Any, locate: Callable[[str], str]) -> list[Issue]:
    """Every string in `data` (values and keys, at any depth) that calls a resolver other than
    the pure ones: config cannot read the environment, the clock or run code. Used on conf/
    before resolution (`compose`) and on params.yaml (`load_params`), where an interpolation
    can survive as text (an escaped `\\${...}` in a `dvc exp run -S` override)."""
    issues = []
    for key, text in _strings(data):
        for name in dict.fromkeys(_RESOLVER_CALL.findall(text)):
            if name in PURE_RESOLVERS:
                continue
            if name in ENV_RESOLVERS or "env" in name.split("."):
                message = (
                    f"reads the environment (`{name}`): secrets and machine settings never "
                    "go into config; the service reads them from the environment at run time"
                )
            else:
                message = (
                    f"calls the resolver `{name}`: a value must come from conf/ alone (allowed: "
                    "plain ${a.b} references and " + ", ".join(sorted(PURE_RESOLVERS)) + ")"
                )
            issues.append(Issue(locate(key), key, message, text))
    return issues


def _strings(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, string) for every string value and key in `data`."""
    if isinstance(data, str):
        yield prefix or "(root)", data
    elif isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(key, str):
                yield path, key
            yield from _strings(value, path)
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            yield from _strings(value, f"{prefix}[{i}]")


def _refuse_resolvers(root: Path, overrides: Sequence[str], raw: Any) -> None:
    """Refuse conf/ (or an override) calling an impure resolver, before anything resolves it:
    a resolved secret could no longer be told from any other string."""
    if not resolver_issues(raw, str):  # the usual case: no need to locate anything
        return
    provenance = Provenance(_defaults_sources(root, list(overrides)), list(overrides))
    issues = resolver_issues(raw, provenance.locate)
    if issues:
        raise ConfigError(
            issues,
            title="conf/ refused: config cannot read the environment or run code",
            hint=SECRETS_HINT + "; params.yaml was not changed",
        )


def _yaml_error_types() -> tuple[type[BaseException], ...]:
    import yaml

    return (yaml.YAMLError,)


def yaml_issue(exc: BaseException, root: Path | None = None) -> Issue:
    """A YAML syntax error as an Issue naming the file, the line and column, and the problem
    (PyYAML's marks are 0-based; editors count from 1)."""
    mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or _first_line(exc)
    context = getattr(exc, "context", None)
    name = getattr(mark, "name", None) or getattr(context_mark, "name", None) or "(YAML)"
    source = relpath(Path(name), root) if root is not None and name != "(YAML)" else name
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
    message = f"not valid YAML: {problem}"
    if context and context_mark is not None:
        message += f" ({context} at line {context_mark.line + 1})"
    return Issue(source, where, message)


def _undecodable(root: Path) -> str:
    """The first conf/ file that is not UTF-8 (Hydra's decode error does not name it)."""
    for path in sorted((root / CONF_DIR).rglob("*.yaml")):
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            return relpath(path, root)
    return f"{CONF_DIR}/"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(exc).__name__


CHECK_CACHE = Path(".dvc/tmp/mlops-compose-check")


def _conf_digest(root: Path, overrides: Sequence[str]) -> str:
    """A digest of everything a composition depends on: conf/'s files (names and bytes), the
    overrides and the Hydra version."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256(f"hydra-core {version('hydra-core')}\0".encode())
    digest.update("\0".join(overrides).encode() + b"\0\0")
    for path in sorted((root / CONF_DIR).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _inputs_digest(root: Path, overrides: Sequence[str]) -> str:
    """`_conf_digest` and params.yaml: equal digests mean an earlier successful check still
    holds."""
    import hashlib

    params = root / PARAMS_FILE
    digest = hashlib.sha256(_conf_digest(root, overrides).encode())
    digest.update(b"\0params\0" + (params.read_bytes() if params.exists() else b""))
    return digest.hexdigest()


def check(root: Path, overrides: Sequence[str] = ()) -> None:
    """Raise StaleParamsError with a unified diff when params.yaml is not what conf/ composes to.

    A successful check is remembered (in DVC's git-ignored tmp directory) by a digest of its
    inputs, so the check that guards every no-op `dvc repro` costs a file hash, not a Hydra
    composition, until something under conf/ or params.yaml changes.
    """
    cache = root / CHECK_CACHE
    key = _inputs_digest(root, overrides)
    if cache.is_file() and cache.read_text(encoding="utf-8") == key:
        return
    composed = compose(root, overrides)
    path = root / PARAMS_FILE
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == composed.text:
        if cache.parent.is_dir():
            atomic_write_text(cache, key)
        return
    diff = "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            composed.text.splitlines(keepends=True),
            fromfile=f"{PARAMS_FILE} (committed)",
            tofile=f"{PARAMS_FILE} (composed from {CONF_DIR}/)",
        )
    )
    from pipeline.choices import explain_stale

    why = explain_stale(root, current, composed.text, overrides) if current else None
    raise StaleParamsError(
        f"{PARAMS_FILE} is out of step with {CONF_DIR}/:\n{diff.rstrip()}"
        + (f"\n{why}" if why else ""),
        hint=(
            "run one of the commands above, then commit conf/config.yaml and params.yaml"
            if why
            else "run `mlops compose` (and commit params.yaml) so `dvc repro` runs what conf/ "
            "declares; a `dvc exp run` in the workspace leaves params.yaml modified: "
            "`git checkout params.yaml` restores it (`dvc exp run --temp` never touches it)"
        ),
    )


def write(root: Path, overrides: Sequence[str] = ()) -> tuple[Composition, bool]:
    """Compose, validate everything (including estimator hyperparameters), write atomically.

    Returns the composition and whether params.yaml changed. A refused composition writes nothing.
    """
    from pipeline.validation import validate_params

    composed = compose(root, overrides)
    issues = validate_params(composed.data, composed.locate, root=root, missing=composed.missing)
    if issues:
        raise ConfigError(issues, hint="fix the files named above; params.yaml was not changed")
    path = root / PARAMS_FILE
    if path.exists() and path.read_text(encoding="utf-8") == composed.text:
        return composed, False
    atomic_write_text(path, composed.text)
    return composed, True


def load_params(
    root: Path | None = None,
    *,
    path: Path | None = None,
    hyperparameters: bool = True,
) -> dict[str, Any]:
    """Read params.yaml and re-validate it: `dvc exp run -S` composes without our checks.

    Stages that never build an estimator pass `hyperparameters=False` to skip importing
    scikit-learn's estimators for their parameter constraints (see validate_params); the one
    stage that builds them (`train`) checks every candidate's, once, each problem naming its
    `candidates.<name>.<key>`."""
    from pipeline.validation import validate_params

    base = root or Path.cwd()
    params_path = path or base / PARAMS_FILE
    data = read_yaml(params_path)
    if not isinstance(data, dict):
        raise ConfigError(
            [Issue(params_path.name, "(root)", "expected a mapping of config groups", data)]
        )
    missing = [key for key, value in _walk(data) if value == "???"]
    issues = validate_params(
        data,
        lambda _key: params_path.name,
        root=base,
        missing=missing,
        hyperparameters=hyperparameters,
    )
    if issues:
        raise ConfigError(
            issues,
            title=f"{params_path.name} refused: {len(issues)} problem(s)",
            hint="params.yaml is generated: fix conf/ and run `mlops compose`, or fix the "
            "`dvc exp run -S` override"
            + (f"; {SECRETS_HINT}" if resolver_issues(data, str) else ""),
        )
    return data


def load_config(
    root: Path | None = None,
    *,
    path: Path | None = None,
    hyperparameters: bool = True,
) -> Params:
    """params.yaml, re-validated (as `load_params`), as one frozen typed tree built once
    (`pipeline.params`): what stages, commands and the service read their settings from.
    `load_params` stays for what needs the mapping itself (writing or digesting it)."""
    from pipeline.params import build

    data = load_params(root, path=path, hyperparameters=hyperparameters)
    return build(data, root or Path.cwd())


def read_yaml(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path} does not exist", hint="run `mlops compose` to generate it from conf/"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            [yaml_issue(exc)], hint=f"fix {path.name} at the line shown (or regenerate it)"
        ) from exc


def _walk(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key paths of every leaf (and every mapping) in `data`."""
    out: dict[str, Any] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out[path] = value
            out.update(flatten(value, path))
    return out


class Provenance:
    """Maps a key path of the composed config to the conf file (or override) that set it.

    Hydra merges configs in defaults-list order; the last config that sets a key wins, and
    command-line overrides win over all. We replay that order over the raw files, which is only
    needed when reporting errors, so it costs nothing on the happy path.
    """

    def __init__(self, sources: list[tuple[str, set[str]]], overrides: list[str]) -> None:
        self.sources = sources
        self.overrides = overrides

    @classmethod
    def of(cls, composed: Composition) -> Provenance:
        cached = getattr(composed, "_provenance", None)
        if cached is None:
            cached = cls(_defaults_sources(composed.root, composed.overrides), composed.overrides)
            composed._provenance = cached  # type: ignore[attr-defined]
        return cached

    def locate(self, key: str) -> str:
        for override in reversed(self.overrides):
            name = override.split("=", 1)[0].lstrip("+~")
            if "@" not in name and (key == name or key.startswith(name + ".")):
                return f"override '{override}'"
        for source, keys in reversed(self.sources):
            if key in keys:
                return source
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        return self.locate(parent) if parent else f"{CONF_DIR}/{CONFIG_NAME}.yaml"


def _defaults_sources(root: Path, overrides: list[str]) -> list[tuple[str, set[str]]]:
    """(file, key paths it sets) for every config in the defaults list, in merge order."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(root / CONF_DIR), version_base=None):
            loader = GlobalHydra.instance().config_loader()
            defaults = loader.compute_defaults_list(CONFIG_NAME, list(overrides), RunMode.RUN)
    except _hydra_error_types():
        return []
    finally:
        GlobalHydra.instance().clear()
    sources: list[tuple[str, set[str]]] = []
    for item in defaults.defaults:
        if item.config_path is None or item.config_path.startswith("hydra/"):
            continue
        rel = f"{CONF_DIR}/{item.config_path}.yaml"
        raw = _read_raw(root / rel)
        raw.pop("defaults", None)
        package = item.package or ""
        scoped: Any = raw
        for part in reversed(package.split(".") if package else []):
            scoped = {part: scoped}
        sources.append((rel, set(flatten(scoped))))
    return sources


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        data = read_yaml(path)
    except ConfigError:
        return {}
    return data if isinstance(data, dict) else {}


def relpath(path: Path, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)
