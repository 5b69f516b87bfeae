"""No-op `mlops compose --check && dvc repro` against a bare no-op `dvc repro`, same run.

The check guards every `dvc repro` (locally and in CI), so its cost is paid on every no-op;
the goal is at most 0.3 s more than the bare no-op repro.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _project import BIN, copy_project, median, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = copy_project(Path(tmp) / "p")
        (project / "conf/local/default.yaml").write_text(
            (project / "conf/experiment/fast.yaml").read_text()
        )
        run([str(BIN / "mlops"), "compose"], project)
        run([str(BIN / "dvc"), "repro"], project)  # reproduce once; then every repro is a no-op
        bare, guarded, check = [], [], []
        for _ in range(args.repeat):  # interleaved, so machine noise hits both alike
            bare.append(run([str(BIN / "dvc"), "repro"], project))
            c = run([str(BIN / "mlops"), "compose", "--check"], project)
            r = run([str(BIN / "dvc"), "repro"], project)
            check.append(c)
            guarded.append(c + r)
    b, g, c = median(bare), median(guarded), median(check)
    stages = "stages in dvc.yaml (no-op)"
    print(f"bare `dvc repro` ({stages}):           median {b:.3f} s over {args.repeat} runs")
    print(f"`mlops compose --check` alone:              median {c:.3f} s")
    print(f"`mlops compose --check && dvc repro`:       median {g:.3f} s")
    print(f"overhead of the check: {g - b:+.3f} s (goal <= +0.300 s); ratio {g / b:.2f}x")


if __name__ == "__main__":
    main()
