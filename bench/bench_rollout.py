"""Rollout benchmark: what shadow scoring and canary routing cost the real service, measured
in the same run against direct serving, on 127.0.0.1 only.

    .venv/bin/python bench/bench_rollout.py            # about two minutes
    .venv/bin/python bench/bench_rollout.py --quick    # shorter runs

The model and project are bench_serve.py's (a HistGradientBoosting classifier on 20 features,
served by the real `mlops serve` with the committed conf/deploy/local.yaml); the candidate is
the same model in a second bundle, so shadow scoring costs exactly one more model call.
Three servers run at once, each its own process and log directory:

* direct: deploy/local.json names the stable release only (today's behaviour);
* shadow: a shadow rollout of the candidate (every request scored twice, the second after
  the response, in the model thread);
* canary: a canary at weight 0.5 routed by request id (every request hashed, half scored by
  the candidate).

Load: an asyncio client (httpx, keep-alive) posting one record per request, `c` requests in
flight, for a fixed time; the servers are loaded in turn (interleaved), twice, the better
round counting (the 2 cores are shared). Goals (issue 13): shadow at c=16 at least 0.6x of
direct (every request is scored twice); canary routing overhead at c=1 at most 5%. First, the
time from a bad canary's first errors to the abort being proposed, from the analysis' rule and
the committed thresholds (`--abort-only`: that table alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serve import ROOT, build_project, free_port, wait_ready


def candidate_bundle(project: Path, work: Path) -> tuple[str, str]:
    """The stable bundle's model again as a second bundle (another manifest: another id)."""
    from pipeline import bundle_format as bundle_mod
    from pipeline.io import read_json

    staging = work / "candidate"
    shutil.copytree(work / "staging", staging)
    meta = read_json(staging / bundle_mod.MANIFEST)
    meta = {k: v for k, v in meta.items() if k not in ("files", "format")}
    meta["model"] = {**meta["model"], "name": "hgb-candidate"}
    digest = bundle_mod.write_manifest(staging, meta)
    shutil.copytree(staging, project / "bundles" / digest[:16])
    return digest, f"r0002-{digest[:16]}"


def rollout_project(base: Path, dest: Path, strategy: str | None, candidate: tuple[str, str]):
    """A copy of the project whose deploy/local.json runs `strategy` (None: direct)."""
    from pipeline.io import read_json, write_json
    from pipeline.release_record import rollout_started

    shutil.copytree(base, dest, symlinks=True)
    stable = read_json(dest / "deploy/local.json")
    if strategy is None:
        return dest
    digest, release = candidate
    cand = {
        **stable,
        "release": release,
        "parent": stable["release"],
        "bundle": {"id": digest[:16], "sha256": digest, "path": f"bundles/{digest[:16]}"},
    }
    steps = [{"weight": 0.5 if strategy == "canary" else 0, "hold": {"requests": 10**6}}]
    data = rollout_started(stable, cand, strategy=strategy, key=None, steps=steps)
    write_json(dest / "deploy/local.json", data)
    return dest


async def load(url: str, body: str, concurrency: int, seconds: float) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await client.post(
                url, content=body, headers={"content-type": "application/json"}
            )
            latencies.append(time.perf_counter() - started)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    if not latencies:  # nothing answered within the run (an overloaded machine)
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": errors}
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "errors": errors,
    }


def requests_to_abort(share: float, max_error_rate: float, confidence: float) -> int:
    """Candidate requests until the early abort fires when a share of them fails: the Wilson
    lower bound of the error rate must pass `max_error_rate` (the analysis' rule)."""
    from pipeline.rollout.analysis import wilson

    n = 1
    while True:
        interval = wilson(int(share * n), n, confidence)
        if interval is not None and interval[0] > max_error_rate:
            return n
        n += 1


def time_to_abort(traffic_rps: float = 10.0, weight: float = 0.1) -> None:
    """Time from a bad canary's first errors to the abort being proposed, with the committed
    thresholds: the requests the analysis needs, at `traffic_rps` and the first step's weight,
    plus at most one schedule interval of rollout.yml (hourly)."""
    import yaml

    conf = yaml.safe_load((ROOT / "conf/deploy/local.yaml").read_text())["strategy"]
    analysis = conf["analysis"]
    print(
        f"\ntime to a proposed abort (max_error_rate {analysis['max_error_rate']}, "
        f"confidence {analysis['confidence']}; {traffic_rps:g} req/s, canary weight {weight:g}):"
    )
    for share in (1.0, 0.5, 0.2, 0.1, 0.05):
        n = requests_to_abort(share, analysis["max_error_rate"], analysis["confidence"])
        seconds = n / (traffic_rps * weight)
        print(
            f"  {share:>5.0%} of candidate requests fail: abort after {n:>4} candidate requests"
            f" = {seconds:6.0f} s of traffic, proposed within {seconds / 60 + 60:5.0f} min"
            " (the hourly analysis)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--abort-only", action="store_true", help="only the time-to-abort table (no servers)"
    )
    args = parser.parse_args()
    time_to_abort()
    if args.abort_only:
        return
    seconds = 4.0 if args.quick else 10.0
    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        base, record = build_project(work)
        candidate = candidate_bundle(base, work)
        body = json.dumps(record)
        env = os.environ | {"PYTHONPATH": str(ROOT), "MLOPS_SERVICE_TOKEN": "bench-token-0123456"}
        for name in ("direct", "shadow", "canary"):
            project = rollout_project(
                base, work / name, None if name == "direct" else name, candidate
            )
            port = free_port()
            proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "mlops"),
                    "serve",
                    "--target",
                    "local",
                    "--port",
                    str(port),
                ],
                cwd=project,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            servers[name] = (proc, f"http://127.0.0.1:{port}")
        for proc, url in servers.values():
            wait_ready(f"{url}/health", proc)
            asyncio.run(load(f"{url}/predict", body, 4, 1.0))  # warm-up
        plan = [("c=16", 16, ("direct", "shadow")), ("c=1", 1, ("direct", "canary"))]
        best: dict[tuple[str, str], dict[str, float]] = {}
        for round_number in range(2):
            for label, concurrency, names in plan:
                for name in names:
                    url = servers[name][1]
                    run = asyncio.run(load(f"{url}/predict", body, concurrency, seconds))
                    key = (label, name)
                    if key not in best or run["rps"] > best[key]["rps"]:
                        best[key] = run
                    print(
                        f"  round {round_number + 1} {label:<5} {name:<7} {run['rps']:8.0f} req/s"
                        f"  p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:7.2f} ms"
                        f"  errors {int(run['errors'])}",
                        flush=True,
                    )
        shadow = best[("c=16", "shadow")]["rps"] / best[("c=16", "direct")]["rps"]
        canary = 1 - best[("c=1", "canary")]["rps"] / best[("c=1", "direct")]["rps"]
        print(f"\nshadow / direct throughput at c=16: {shadow:.2f}x (goal >= 0.6x)")
        print(f"canary routing overhead at c=1: {canary:+.1%} of direct throughput (goal <= 5%)")
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
