"""Argument types shared by the `mlops` commands: a bad value is a usage error (exit 2, with the
parser's hint), never a traceback from deep inside a command.

Each returns the parsed value or raises `argparse.ArgumentTypeError` with what was expected.
"""

from __future__ import annotations

import argparse
import math


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
