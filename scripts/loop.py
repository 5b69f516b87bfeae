"""`make loop`: the whole develop -> deploy -> monitor -> maintain loop, locally, for real.

In a scratch clone of this repository (your working tree is untouched; the DVC cache is shared,
so stages already reproduced here are restored, not recomputed):

 1. reproduce and release the champion (`dvc repro`, `mlops release`);
 2. start the service (`mlops serve`) on a free loopback port;
 3. send production traffic from the production pool with a drift scenario (shifted means),
    and ground truth for most of it through /feedback;
 4. snapshot the prediction log into windows (`mlops logs snapshot`), track them with DVC;
 5. monitor and decide (`dvc repro`: monitor, maintain);
 6. carry the decision out (`mlops maintain --apply`: the labelled traffic becomes training
    data and the graph retrains), gate and release the new champion (`mlops release`);
 7. watch the running service swap to the new release (GET /version).

Every step is a command a person or CI would run; the script only strings them together and
prints what each one decided.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def sh(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True, check=False)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"`{' '.join(args)}` failed with exit code {proc.returncode}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scratch_clone(workdir: Path, fast: bool, env: dict[str, str]) -> Path:
    """A clone of HEAD with the shared DVC cache (and the working tree's conf/local, if any)."""
    sh(["git", "clone", "--quiet", str(ROOT), str(workdir)], ROOT, env)
    sh(
        [str(BIN / "dvc"), "config", "--local", "cache.dir", str(ROOT / ".dvc" / "cache")],
        workdir,
        env,
    )
    if fast:
        shutil.copy(workdir / "conf/experiment/fast.yaml", workdir / "conf/local/default.yaml")
    # the loop decides on this run's traffic: retrain after 3 drifted windows in a row
    sh([str(BIN / "mlops"), "compose"], workdir, env)
    return workdir


def traffic(
    url: str, token: str, rows: list[dict[str, Any]], labels: list[Any], labelled: float
) -> tuple[int, int]:
    """POST every record (4 clients at once), then the labels of the first `labelled` share."""
    import httpx

    def send(record: dict[str, Any]) -> str:
        response = httpx.post(f"{url}/predict", json=record, timeout=10)
        response.raise_for_status()
        return str(response.json()["predictions"][0]["request_id"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(send, rows))
    n = int(len(ids) * labelled)
    feedback = [
        {"request_id": rid, "label": label} for rid, label in zip(ids[:n], labels[:n], strict=True)
    ]
    headers = {"Authorization": f"Bearer {token}"}
    for start in range(0, len(feedback), 100):
        response = httpx.post(
            f"{url}/feedback", json=feedback[start : start + 100], headers=headers, timeout=10
        )
        response.raise_for_status()
    return len(ids), n


def wait_for_release(url: str, release: str, timeout: float) -> bool:
    from pipeline.deploy.live import read_version  # the client `mlops status` and sync use

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (read_version(url, timeout=2) or {}).get("release") == release:
            return True
        time.sleep(0.5)
    return False


def drifted_rows(project: Path, n: int, shift: float, seed: int) -> tuple[list[dict], list]:
    """Production-pool rows with every numeric feature scaled by (1 + shift)."""
    import numpy as np
    import pandas as pd

    record = json.loads((project / "deploy/local.json").read_text())
    signature = json.loads((project / record["bundle"]["path"] / "signature.json").read_text())
    fields = signature["x-mlops"]["fields"]
    pool = pd.read_parquet(project / "data/prepared/pool.parquet")
    sample = pool.iloc[np.random.default_rng(seed).integers(0, len(pool), n)]
    rows = []
    for _, row in sample.iterrows():
        record_ = {}
        for field in fields:
            value = row[field["name"]]
            if pd.isna(value):
                value = None
            elif field["type"] in ("float", "int"):
                value = float(value) * (1 + shift)
                if field.get("max") is not None:
                    value = min(value, field["max"])
                if field["type"] == "int":
                    value = round(value)
            elif field["type"] == "datetime":
                value = pd.Timestamp(value).isoformat()
            record_[field["name"]] = value
        rows.append(record_)
    target = signature["x-mlops"]["target"]
    return rows, [v if isinstance(v, str) else float(v) for v in sample[target].tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, help="where to clone (default: a temp dir)")
    parser.add_argument("--fast", action="store_true", help="fast training settings")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--shift", type=float, default=0.3, help="relative shift of features")
    parser.add_argument("--keep", action="store_true", help="keep the scratch clone")
    args = parser.parse_args()
    env = dict(
        os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1"
    )
    token = secrets.token_hex(16)
    env["MLOPS_SERVICE_TOKEN"] = token
    base = args.workdir or Path(tempfile.mkdtemp(prefix="gitops-mlops-loop-"))
    project = base / "project"
    mlops, dvc = str(BIN / "mlops"), str(BIN / "dvc")

    say(f"1. develop and release, in a scratch clone: {project}")
    scratch_clone(project, args.fast, env)
    sh([dvc, "repro"], project, env)
    print(sh([mlops, "release"], project, env).strip())
    sh([dvc, "repro"], project, env)
    first = json.loads((project / "deploy/local.json").read_text())["release"]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    say(f"2. serve {first} at {url}")
    server = subprocess.Popen(
        [mlops, "serve", "--target", "local", "--port", str(port), "--log-level", "warning"],
        cwd=project,
        env=env,
    )
    try:
        if not wait_for_release(url, first, 60):
            raise SystemExit("the service did not start")
        say(
            f"3. {args.requests} requests with shifted means (x{1 + args.shift:g}), "
            "and their labels"
        )
        rows, labels = drifted_rows(project, args.requests, args.shift, seed=7)
        sent, labelled = traffic(url, token, rows, labels, labelled=0.8)
        print(f"sent {sent} predictions, {labelled} labels")

        say("4. snapshot the prediction log into production windows")
        time.sleep(1.5)  # the log writer flushes in the background
        print(sh([mlops, "logs", "snapshot", "--target", "local", "--flush"], project, env).strip())
        # one DVC output a month, closed days and months packed (pipeline/windows.py)
        print(sh([mlops, "windows", "seal", "--apply"], project, env).strip())

        say("5. monitor and decide")
        sh([dvc, "repro"], project, env)
        print(sh([mlops, "monitor"], project, env).strip()[:2000])
        print(sh([mlops, "maintain"], project, env).strip())

        say("6. apply the decision (retrain with the labelled traffic), gate, release")
        print(sh([mlops, "maintain", "--apply"], project, env).strip())
        gate = sh([mlops, "gate"], project, env).strip()
        print(gate)
        print(sh([mlops, "release"], project, env).strip())
        second = json.loads((project / "deploy/local.json").read_text())["release"]

        say("7. the running service follows deploy/local.json")
        if second == first:
            print(f"no new release (still {first}): see the gate verdicts above")
        elif wait_for_release(url, second, 60):
            print(f"the service swapped from {first} to {second} without a restart")
        else:
            raise SystemExit(f"the service did not swap to {second}")
        from pipeline.deploy.live import read_version

        print(f"GET {url}/version -> {read_version(url, timeout=5)}")
        print(f"the changes to review are in {project}: `git -C {project} status`")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        if not args.keep and args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
        elif args.keep:
            print(f"\nthe scratch clone is kept at {project}")


if __name__ == "__main__":
    main()
