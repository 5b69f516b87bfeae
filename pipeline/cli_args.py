"""The conventions every `mlops` command follows, declared once so the commands cannot drift
apart: how a command is registered and finds the project root, what `--target` and `--check`
mean, which exit status means what, where a path option is read from, and the argument types
(a bad value is a usage error: exit 2 with the parser's hint, never a traceback from deep inside
a command). `CONVENTIONS` says the same to users, at the end of `mlops --help`.

Each type returns the parsed value or raises `argparse.ArgumentTypeError` with what was expected.
"""

from __future__ import annotations

import argparse
import inspect
import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.params import Params

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # checked, and the answer is no: stale, blocked, out of sync, in breach
EXIT_USER_ERROR = 2  # a problem the user can fix: one message with a hint, no traceback

CONVENTIONS = """\
conventions (every command):
  project     run mlops anywhere inside a project: its root is the nearest directory
              upwards holding conf/config.yaml
  paths       a path you type is relative to the current directory; a default names
              a place in the project
  --target    a deployment target (deploy.targets in params.yaml); given once by
              commands that act on one target, repeatable by commands that cover every
              target unless told otherwise
  --check     change nothing; exit 1 when the check fails (params.yaml stale, a gate
              blocked, a maintenance action due, out of sync, a production breach)

exit status: 0 done (a check passed), 1 a check failed, 2 a problem to fix (bad arguments,
config or files: one message and a hint)
"""

# The default of the commands that read the serving side's logs: the monitored target.
MONITORED = "the monitored one, monitor.target"

Handler = Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------- commands
class HelpFormatter(argparse.HelpFormatter):
    """Descriptions written as paragraphs: each paragraph is re-wrapped to the terminal, an
    indented line (a command to type, a table row) is kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        prose: list[str] = []

        def wrap() -> None:
            if prose:
                joined = " ".join(prose)
                out.append(
                    textwrap.fill(joined, width, initial_indent=indent, subsequent_indent=indent)
                )
                prose.clear()

        for line in text.strip("\n").splitlines():
            if line.strip() and not line.startswith(" "):
                prose.append(line.strip())
                continue
            wrap()
            out.append(indent + line if line.strip() else "")
        wrap()
        return "\n".join(out)


def command(
    subparsers: Any, name: str, handler: Handler, *, project: bool = True
) -> argparse.ArgumentParser:
    """Register one command. Its text is its handler's docstring, so a command cannot come
    without help: the first paragraph is the line `mlops --help` lists, the rest the
    description `mlops NAME --help` prints (`HelpFormatter`). `project`: the command works on a
    project, so `pipeline.cli.main` finds the root for it, the one way every command does, and
    hands it over as `args.root`."""
    text = inspect.cleandoc(handler.__doc__ or "")
    summary, _, description = text.partition("\n\n")
    if not summary:
        raise TypeError(f"{handler.__qualname__}: a command's handler needs a docstring (its help)")
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=" ".join(summary.split()),
        description=description or None,
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(handler=handler, needs_root=project)
    return parser


def command_group(subparsers: Any, name: str, *, help: str) -> Any:
    """A command that only groups others (`mlops logs ACTION`, `mlops schema ACTION`)."""
    parser = subparsers.add_parser(name, help=help)
    return parser.add_subparsers(
        dest=f"{name}_command", required=True, metavar="ACTION", help="what to do"
    )


# --------------------------------------------------------------------------------- options
class _Once(argparse.Action):
    """Store the value; a second occurrence is a usage error instead of silently winning."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        seen = f"_{self.dest}_given"
        if getattr(namespace, seen, False):
            raise argparse.ArgumentError(
                self,
                "given more than once: this command acts on one target; run it once per target",
            )
        setattr(namespace, seen, True)
        setattr(namespace, self.dest, values)


def add_target(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """`--target TARGET` of a command that acts on one deployment target: required without a
    default; `default=MONITORED` resolves later with `target_or_monitored`."""
    if default is None:
        help_text = "the deployment target (required), e.g. local"
    else:
        help_text = f"the deployment target (default: {default})"
    parser.add_argument(
        "--target",
        action=_Once,
        metavar="TARGET",
        required=default is None,
        default=None if default in (None, MONITORED) else default,
        help=help_text,
    )


def add_targets(parser: argparse.ArgumentParser, every: str = "every target") -> None:
    """`--target TARGET` of a command that covers several deployment targets: repeatable,
    each narrowing it down; none given means `every`."""
    parser.add_argument(
        "--target",
        action="append",
        metavar="TARGET",
        help=f"only this deployment target; repeat for several (default: {every})",
    )


def target_or_monitored(given: str | None, params: Params) -> str:
    """The target a log command works on: the one given, else the one monitoring watches
    (monitor.target, which conf/ declares)."""
    return given or params.monitor.target


def add_check(parser: Any, fails_when: str) -> None:
    """`--check`, one meaning everywhere: change nothing, and exit 1 when the check fails."""
    parser.add_argument(
        "--check", action="store_true", help=f"change nothing; exit 1 when {fails_when}"
    )


def add_dvc_remote(parser: argparse.ArgumentParser, purpose: str) -> None:
    """`--dvc-remote NAME`: the DVC remote bundles come from."""
    parser.add_argument("--dvc-remote", metavar="NAME", help=f"DVC remote {purpose}")


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    """`--json`: the same result, machine-readable."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_out(parser: argparse.ArgumentParser, default: Path, what: str) -> None:
    """`--out DIR`, a directory the command writes into; its default is a project path
    (read it back with `project_path`)."""
    parser.add_argument("--out", metavar="DIR", help=f"{what} (default: {default} in the project)")


def project_path(root: Path, given: str | Path | None, default: Path) -> Path:
    """A path option's value: what the user typed, relative to the current directory like
    any shell path, or when none, `default`, a place in the project, found from its root (so
    the command works the same from a subdirectory)."""
    return Path(given) if given is not None else root / default


# ----------------------------------------------------------------------------------- types
def _number(text: str, kind: type[int] | type[float], expected: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected} (got {text!r})") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected} (got {text!r})")
    return value


def port_number(text: str) -> int:
    """A TCP port: 0 (the OS picks a free one) to 65535, the range serve.port's schema allows."""
    expected = "a port number, 0-65535 (0 picks a free port)"
    value = int(_number(text, int, expected))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected {expected} (got {value})")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (a count of rows, records, ...)."""
    value = int(_number(text, int, "a whole number >= 1"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (got {value})")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (an interval, a window length)."""
    value = float(_number(text, float, "a number > 0"))
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0 (got {text!r})")
    return value


def seconds(text: str) -> float:
    """A duration in seconds, 0 or more."""
    value = float(_number(text, float, "a number of seconds, 0 or more"))
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more (got {text!r})")
    return value


def minutes(text: str) -> float:
    """A duration in minutes, 0 or more."""
    value = float(_number(text, float, "a number of minutes, 0 or more"))
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of minutes, 0 or more (got {text!r})")
    return value
