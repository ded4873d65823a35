"""`mnist-pipeline ARGS...`, with the CPU and wall time spent inside training written to a JSON file.

    python benchmarks/timed_run.py --timings OUT.json [--tree DIR] run --epochs 1 --json summary.json

The command is the pipeline's own (`mnist_pipeline.cli.main`, what `mnist-pipeline` and
`python -m mnist_pipeline` run), in this process, ending as they do (cli/process_exit.py); only `fit_resumably` is wrapped, when
the trained_model asset imports it, to add up the time inside it. The process's CPU time
minus `training_cpu_s` is then what everything but training cost: Dagster, storage,
hashing, checks, evaluation and plots. `--tree DIR` runs the project checkout in DIR
(for comparing commits, benchmarks/outside_training.py).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import sys
import time
from pathlib import Path

TRAINING_MODULE = "mnist_pipeline.ml.model.training"
TRAINING_STARTS, TRAINING_ENDS = "training starts", "training ends"


class TimeTraining(importlib.abc.MetaPathFinder):
    """When the training module is imported, wraps its fit_resumably to add up the CPU and wall time inside it.

    The module is imported lazily (inside the trained_model asset), so the run is timed as it
    runs. The finder stays in place: code versions look the module's file up with find_spec
    long before the asset imports it.
    """

    def __init__(self, totals: dict[str, float], marks: list | None = None):
        self.totals = totals
        self.marks = marks  # when given, (what, CPU seconds) is appended as training starts and ends
        self._searching = False

    def find_spec(self, fullname, path, target=None):
        if fullname != TRAINING_MODULE or self._searching:
            return None
        self._searching = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._searching = False
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.fit_resumably = self._timed(module.fit_resumably)

        spec.loader.exec_module = exec_module
        return spec

    def _timed(self, fit):
        def fit_resumably(*args, **kwargs):
            cpu, wall = time.process_time(), time.perf_counter()
            if self.marks is not None:
                self.marks.append((TRAINING_STARTS, cpu))
            try:
                return fit(*args, **kwargs)
            finally:
                self.totals["training_cpu_s"] += time.process_time() - cpu
                self.totals["training_wall_s"] += time.perf_counter() - wall
                if self.marks is not None:
                    self.marks.append((TRAINING_ENDS, time.process_time()))

        return fit_resumably


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timings", type=Path, required=True, help="JSON file for training_cpu_s and training_wall_s")
    parser.add_argument("--tree", type=Path, help="the project checkout to run (default: the installed one)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="mnist-pipeline's arguments")
    args = parser.parse_args(argv)
    if args.tree:
        tree = args.tree.resolve()
        sys.path.insert(0, str(tree))
    totals = {"training_cpu_s": 0.0, "training_wall_s": 0.0}
    sys.meta_path.insert(0, TimeTraining(totals))
    from mnist_pipeline.cli import main as cli

    if args.tree and not Path(cli.__file__).resolve().is_relative_to(tree):
        raise SystemExit(f"--tree {tree}: expected mnist_pipeline to come from there, found {cli.__file__}")

    def command() -> int:
        code = cli.main(args.args)
        args.timings.write_text(json.dumps(totals))
        return code

    try:  # exit as the `mnist-pipeline` command does (cli/process_exit.py), in checkouts that have it
        from mnist_pipeline.cli.process_exit import exit_without_teardown
    except ImportError:
        return command()
    exit_without_teardown(command)


if __name__ == "__main__":
    sys.exit(main())
