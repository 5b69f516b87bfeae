"""What DVC pays, per stage it runs, to rewrite dvc.lock, and what in the lock it pays for.

After every stage `dvc repro` re-reads dvc.lock with ruamel's round-trip loader (pure Python),
updates the stage's entry and dumps the whole file again (dvc.dvcfile.Lockfile.dump_stages;
treeverse/dvc#10629). That cost grows with the lock's size, so it is paid once per stage for
every line of every other stage. This times exactly those calls (dvc.utils.serialize's
`parse_yaml_for_update` and its dump) on:

* the committed dvc.lock (or the one at `--against REV`: a before and after in the same run);
* the same lock without the `dataset` params each stage records (its column declarations,
  copied into the entry of every stage that lists `dataset`): what recording them once would
  save;

and prints how the lock's YAML nodes split between params sections, deps and outs.
"""

from __future__ import annotations

import argparse
import copy
import io
import subprocess
import time
from collections import Counter
from typing import Any

import yaml
from _project import ROOT, median
from dvc.utils.serialize._yaml import _dump, parse_yaml_for_update


def nodes(value: Any) -> int:
    """YAML nodes of a value: what the round-trip loader builds and the dumper walks."""
    if isinstance(value, dict):
        return 1 + sum(1 + nodes(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(nodes(v) for v in value)
    return 1


def split(lock: dict[str, Any]) -> Counter[str]:
    """Nodes by what they record: `params:<section>`, `deps`, `outs`, ..."""
    out: Counter[str] = Counter()
    for entry in lock["stages"].values():
        for field, value in entry.items():
            if field != "params":
                out[field] += nodes(value)
                continue
            for keys in value.values():
                for key, recorded in keys.items():
                    out[f"params:{key.split('.')[0]}"] += nodes(recorded)
    return out


def without_dataset(lock: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(lock)
    for entry in out["stages"].values():
        for keys in entry.get("params", {}).values():
            for key in [k for k in keys if k == "dataset" or k.startswith("dataset.")]:
                del keys[key]
    return out


def dumped(lock: dict[str, Any]) -> str:
    stream = io.StringIO()
    _dump(lock, stream)
    return stream.getvalue()


def round_trip(text: str) -> float:
    """One stage's worth of DVC's lock update: parse for update, dump."""
    start = time.perf_counter()
    data = parse_yaml_for_update(text, "dvc.lock")
    _dump(data, io.StringIO())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="round trips per lock (median)")
    parser.add_argument("--against", metavar="REV", help="also time dvc.lock at this git rev")
    args = parser.parse_args()

    text = (ROOT / "dvc.lock").read_text()
    lock = yaml.safe_load(text)
    locks = {"committed": text, "without dataset params": dumped(without_dataset(lock))}
    if args.against:
        locks[f"at {args.against}"] = subprocess.run(
            ["git", "show", f"{args.against}:dvc.lock"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    times: dict[str, list[float]] = {name: [] for name in locks}
    for _ in range(args.repeat):  # interleaved: the same load for every lock
        for name, body in locks.items():
            times[name].append(round_trip(body))

    base = median(times["committed"])
    print(f"{'dvc.lock':<26}{'stages':>7}{'lines':>7}{'per stage':>11}{'ratio':>8}")
    for name, body in locks.items():
        stages = len(yaml.safe_load(body)["stages"])
        lines = body.count("\n")
        took = median(times[name])
        print(f"{name:<26}{stages:>7}{lines:>7}{took:>10.3f}s{took / base:>7.2f}x")
    total = nodes(lock)
    print(f"\nthe committed lock's {total} YAML nodes:")
    for what, count in split(lock).most_common():
        print(f"  {what:<24}{count:>6}  {count / total:>5.1%}")


if __name__ == "__main__":
    main()
