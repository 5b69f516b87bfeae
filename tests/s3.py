"""An S3 API on loopback for the remote tests: moto's server mode (`moto.server.ThreadedMotoServer`)
on 127.0.0.1 with an ephemeral port, one bucket per test, fake credentials.

DVC reaches it through the real `dvc-s3` plugin, configured as a user would configure any S3
remote: `url = s3://bucket/path` plus `endpointurl`, `access_key_id` and `secret_access_key`
in `.dvc/config.local` (git-ignored: never committed). The environment is stripped of every
AWS setting that could point boto elsewhere (a profile, a shared credentials file, the
instance metadata service), so a test never leaves the machine.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "AKIAMOTOTESTKEY00000"
SECRET_KEY = "moto-test-secret-never-printed"
REGION = "us-east-1"  # what moto serves; the remotes need no region
_buckets = itertools.count(1)


@dataclass(frozen=True)
class S3:
    """A running S3 API: its endpoint and the credentials it accepts (moto accepts any)."""

    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self, prefix: str = "dvc") -> str:
        """A fresh, empty bucket (names are unique per session)."""
        name = f"{prefix}-{os.getpid()}-{next(_buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def options(self) -> dict[str, str]:
        """The `dvc remote modify` options of a remote on this server."""
        return {
            "endpointurl": self.endpoint,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
        }

    def configure(self, root: Path, name: str, url: str, *, default: bool = True) -> None:
        """Add the remote `name` at `url` to `root`'s `.dvc/config.local`: what
        `dvc remote add --local [-d] NAME URL` and one `dvc remote modify --local NAME OPTION
        VALUE` per option write (dvc_remote.sh runs those commands; written directly here, a
        DVC start-up each costs seconds). DVC validates the file on every command that reads it.
        """
        lines = [f'[remote "{name}"]', f"    url = {url}"]
        lines += [f"    {option} = {value}" for option, value in self.options().items()]
        if default:
            lines = ["[core]", f"    remote = {name}", *lines]
        path = root / ".dvc/config.local"
        existing = path.read_text() if path.exists() else ""
        assert not (default and "[core]" in existing), "one default remote per config.local"
        path.write_text(existing + "\n".join(lines) + "\n")
        path.chmod(0o600)


# Settings that could send boto to a real account or the metadata service, or slow it down.
_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


@contextmanager
def isolated_aws_environment(home: Path) -> Iterator[None]:
    """No AWS settings but files that do not exist, and no instance metadata lookups."""
    saved = dict(os.environ)
    for name in _AWS_ENV:
        os.environ.pop(name, None)
    os.environ["AWS_CONFIG_FILE"] = str(home / "no-aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-aws-credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    no_proxy = "127.0.0.1,localhost"
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = ",".join(filter(None, [os.environ.get(name), no_proxy]))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def moto_s3(home: Path) -> Iterator[S3]:
    """moto's S3 server on 127.0.0.1 (an ephemeral port, loopback only), stopped on exit."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    with isolated_aws_environment(home):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            assert host == "127.0.0.1", host
            yield S3(f"http://{host}:{port}")
        finally:
            server.stop()
