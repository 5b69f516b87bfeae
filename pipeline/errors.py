"""The error hierarchy of gitops-mlops.

Every error a user can cause derives from :class:`MlopsError`; the CLI prints its message (and
hint) without a traceback and exits with status 2. Anything else is a bug and keeps its traceback.

::

    MlopsError                      user-facing, exit code 2
    ├── ConfigError                 conf/ or params.yaml is malformed or refused (all issues)
    │   └── UnsafeTargetError       a `_target_` outside the allow-list
    ├── DataError                   a data file is missing, unreadable or breaks its schema
    ├── ArtifactError               a model or bundle is missing, tampered with or untrusted
    ├── StaleParamsError            params.yaml differs from what conf/ composes to
    ├── GateError                   a deployment gate blocked a release (for `mlops gate --check`)
    ├── ToolError                   git or dvc is missing, failed or timed out (`pipeline.vcs`)
    └── ServiceError                the prediction service is unreachable or answered unexpectedly
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem found in a config or data file, located precisely enough to fix it."""

    source: str  # file the value came from (conf/model/x.yaml, params.yaml, a data file)
    key: str  # dotted key path, column name or field
    message: str  # what is wrong and what was expected
    value: object = None  # the offending value, shown with repr()

    def render(self) -> str:
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{self.source}: {self.key}: {self.message}{shown}"


class MlopsError(Exception):
    """Base of every error a user can fix; carries a hint for the fix: the one given where it is
    raised, else its class's `default_hint`, so every user error ends with a "hint:" line."""

    exit_code = 2
    default_hint: str | None = (
        "`mlops --help` lists the commands, `mlops COMMAND --help` their options"
    )

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint if hint is not None else self.default_hint

    def render(self) -> str:
        text = str(self)
        return f"{text}\nhint: {self.hint}" if self.hint else text


class ConfigError(MlopsError):
    """A malformed or refused configuration; holds every issue found, not just the first."""

    default_hint = "fix the conf/ file named above, then run `mlops compose`"

    def __init__(
        self, issues: Sequence[Issue] | str, *, hint: str | None = None, title: str | None = None
    ) -> None:
        self.issues: list[Issue] = [] if isinstance(issues, str) else list(issues)
        if isinstance(issues, str):
            message = issues
        else:
            head = title or f"configuration refused: {len(self.issues)} problem(s)"
            message = "\n".join([head, *(f"  - {i.render()}" for i in self.issues)])
        super().__init__(message, hint=hint)


class UnsafeTargetError(ConfigError):
    """A `_target_` that is not on the allow-list: config must never run arbitrary code."""


class DataError(MlopsError):
    """A data file that is missing, unreadable, or violates the declared dataset schema."""

    default_hint = "check the data file named above and its declaration in conf/dataset/"


class ArtifactError(MlopsError):
    """A model file or bundle that is missing, fails its digest, or holds untrusted types."""

    default_hint = "rebuild it with `dvc repro`, or fetch it with `dvc pull`"


class StaleParamsError(MlopsError):
    """params.yaml is not what conf/ composes to, so `dvc repro` would run an undeclared config."""


class GateError(MlopsError):
    """A deployment gate blocked the champion."""

    default_hint = "`mlops gate` shows each target's gate report (reports/deploy/<target>.json)"


class ToolError(MlopsError):
    """git or dvc is not installed, exited non-zero or did not finish (`pipeline.vcs` runs
    them); the message names the command and ends with what it printed."""

    default_hint = "fix what git/dvc reports above, then run the command again"


class ComputeError(MlopsError):
    """The Dask cluster lost work it could not re-run (a worker died holding data that has no
    recipe, or a task ran out of retries); nothing was written. Not the user's input, so exit 1:
    re-running is the remedy."""

    exit_code = 1
    default_hint = (
        "re-run the command or stage; if workers keep dying, give them more memory "
        "(compute.local_cluster.memory_limit, or your cluster's)"
    )


class ServiceError(MlopsError):
    """The prediction service could not be reached or gave an unexpected answer."""

    default_hint = "is the service running? `mlops status` shows each target's live release"
