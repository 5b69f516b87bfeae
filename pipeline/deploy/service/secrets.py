"""The service's secrets: the bearer token and the log-redaction key, found and checked.

The service's settings (`deploy.targets.<name>.serve`) are typed in the params tree
(`pipeline.params.ServeSettings`, built once by `pipeline.config.load_config` from validated
params); what the schema cannot know (the secret can be found and is safe) is checked here.

Secrets (the bearer token, the key that hashes personal columns in the logs) never live in
conf/: the settings name an environment variable or a file. A secret shorter than
`MIN_SECRET_CHARS` is refused, and so is a secret file that every user of the machine can read
(a group-readable one is accepted with a warning: a mounted secret may rely on its group);
a declared file that is missing or unreadable is an error, not a silently closed endpoint.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.params import AuthSettings

__all__ = ["MIN_SECRET_CHARS", "read_secret", "resolve_token"]

LOG = logging.getLogger("mlops.serve")
MIN_SECRET_CHARS = 16  # `openssl rand -hex 16` gives 32


def resolve_token(auth: AuthSettings, environ: Mapping[str, str] | None = None) -> str | None:
    """The bearer token: the environment variable first, then the file; None when neither is
    set (feedback then answers 503 instead of being open). Secrets are never in conf/."""
    return read_secret(auth.token_env, auth.token_file, "the bearer token", environ)


def read_secret(
    env_name: str, path: Path | None, what: str, environ: Mapping[str, str] | None = None
) -> str | None:
    """A secret from the environment variable `env_name`, else from the file `path`; None when
    neither is set. Refused (ConfigError): a declared file that is missing, unreadable, empty or
    readable by every user, and a secret shorter than MIN_SECRET_CHARS."""
    env = os.environ if environ is None else environ
    value = env.get(env_name, "").strip()
    source = f"${env_name}"
    if not value and path is not None:
        value = _secret_file(path, what)
        source = str(path)
    if not value:
        return None
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"{what} in {source} has {len(value)} character(s); at least {MIN_SECRET_CHARS} "
            "are required",
            hint="generate one with `openssl rand -hex 32`",
        )
    return value


def _secret_file(path: Path, what: str) -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{what}: the declared file {path} cannot be read ({exc})",
            hint="mount the secret there, or set the file to null and use the environment variable",
        ) from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(
            f"{what}: {path} can be read or written by every user of this machine "
            f"(mode {stat.filemode(mode)})",
            hint=f"chmod 600 {path} (a Kubernetes secret volume: defaultMode: 0400)",
        )
    if mode & (stat.S_IRGRP | stat.S_IWGRP):
        LOG.warning(
            "%s: %s is readable by its group (mode %s); 600 keeps it to its owner",
            what,
            path,
            stat.filemode(mode),
        )
    if not text:
        raise ConfigError(f"{what}: the declared file {path} is empty")
    return text
