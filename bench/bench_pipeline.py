"""The default develop graph (`mlops compose --check && dvc repro evaluate` from scratch: ingest,
validate, prepare, train@<candidate>, evaluate) against one plain script doing the same
scikit-learn work (bench/_plain_script.py), in the same run; then the rest of the graph
(deploy and monitor stages, which the script does not do) is timed on its own.

Goal: the pipeline costs at most 1.5x the plain script's wall time. The difference is what
DVC and per-stage processes cost: interpreter start-up and imports (pandas + scikit-learn take
over a second per stage), hashing, writing artifacts.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _project import BIN, ROOT, copy_project, median, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--fast", action="store_true", help="use the fast experiment settings")
    args = parser.parse_args()
    pipeline_times, script_times, rest_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            project = copy_project(Path(tmp) / f"p{i}")
            if args.fast:
                (project / "conf/local/default.yaml").write_text(
                    (project / "conf/experiment/fast.yaml").read_text()
                )
                run([str(BIN / "mlops"), "compose"], project)
            script_times.append(
                run(
                    [
                        str(BIN / "python"),
                        str(ROOT / "bench/_plain_script.py"),
                        str(project / "params.yaml"),
                    ],
                    ROOT,
                )
            )
            pipeline_times.append(
                run([str(BIN / "mlops"), "compose", "--check"], project)
                + run([str(BIN / "dvc"), "repro", "--no-run-cache", "evaluate"], project)
            )
            rest_times.append(run([str(BIN / "dvc"), "repro", "--no-run-cache"], project))
    p, s = median(pipeline_times), median(script_times)
    which = "fast experiment" if args.fast else "default config"
    print(f"{which}, {args.repeat} run(s) each, interleaved")
    print(f"plain script, same scikit-learn work:         median {s:.2f} s  {script_times}")
    print(f"compose --check && dvc repro evaluate:        median {p:.2f} s  {pipeline_times}")
    print(f"ratio pipeline / script: {p / s:.2f}x (goal <= 1.5x); overhead {p - s:+.2f} s")
    r = median(rest_times)
    print(
        f"then the rest of the graph (package, deploy@*, simulate, monitor, "
        f"maintain): median {r:.2f} s; whole graph {p + r:.2f} s"
    )


if __name__ == "__main__":
    main()
