"""What a training stage pays before and after it trains, the project's way against the plain
one, side by side: each case in a fresh interpreter (as DVC starts every stage), tries
interleaved, the median of ``--repeats`` printed with the load average.

- scoring: ACC and AUC of 1,000 images x 4 classes (the official test split) with
  ``hw1.scoring`` against ``medmnist.evaluator``'s getACC/getAUC, import included: the evaluator
  imports the medmnist package, which imports torch, and scikit-learn. Both give the same
  values to the bit (checked here on the timed data, and in tests/test_scoring.py).
- the optimizer: the Table 3 network, one batch-16 SGD step, with ``hw1.torch_training.SGD``
  against ``torch.optim.SGD``, whose first call imports ``torch._dynamo``; torch's own import
  is timed alone beside them. Both leave the same weights to the bit (tests/test_torch_models.py).
- YAML: the files a stage reads (dvc.yaml, params.yaml, the report's values, and dvc.lock
  where the workspace has one) with ``hw1.params.read_yaml`` (libyaml's parser) against
  ``yaml.safe_load``; and `dvc status`, which parses params.yaml once per stage and dvc.lock
  once, with ruamel.yaml's C parser (``ruamel.yaml.clib``, in requirements.txt) against its
  pure-Python one. Both pairs give the same values. ``--workspace`` runs them in a reproduced
  project (after `dvc repro`), whose dvc.lock is what they mostly read.

    python -m benchmarks.bench_stage_start [--repeats 5] [--workspace DIR]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCORES = ("import numpy as np; rng = np.random.default_rng(0); "
          "y = np.r_[np.arange(4), rng.integers(0, 4, 996)]; "
          "from hw1.scoring import softmax; p = softmax(rng.normal(size=(1000, 4)) + np.eye(4)[y])")
CASES = {
    "scoring: hw1.scoring": SCORES + "; from hw1.scoring import accuracy, macro_auc; "
                            "print(repr((accuracy(y, p), macro_auc(y, p))))",
    "scoring: medmnist.evaluator": SCORES + "; from medmnist.evaluator import getACC, getAUC; "
                                   "print(repr((getACC(y, p, 'multi-class'), "
                                   "getAUC(y, p, 'multi-class'))))",
    "import torch alone": "import torch; print('-')",
    "SGD step: hw1.torch_training.SGD": (
        "import torch, torch.nn.functional as F; from hw1.torch_models import build_model; "
        "from hw1.torch_training import make_optimizer; "
        "m = build_model({'model': 'feedforward', 'hidden_size': 200, 'layers': 2, "
        "'dropout': 0.0, 'activation': 'relu'}, seed=0); o = make_optimizer(m, 'sgd', 0.1, 0.0); "
        "x = torch.zeros(16, 784); o.zero_grad(); "
        "F.cross_entropy(m(x), torch.zeros(16, dtype=torch.long)).backward(); o.step(); "
        "print(repr(float(m.state_dict()['layers.hidden1.weight'].sum())))"),
}
YAML_FILES = ("[f for f in ('dvc.yaml', 'params.yaml', 'reports/report_values.yaml', 'dvc.lock') "
              "if os.path.exists(f)]")
CASES["YAML: hw1.params.read_yaml"] = (
    f"import os; from hw1.params import read_yaml; "
    f"print(repr([read_yaml(open(f)) for f in {YAML_FILES}]))")
CASES["YAML: yaml.safe_load"] = (
    f"import os, yaml; print(repr([yaml.safe_load(open(f)) for f in {YAML_FILES}]))")
DVC_STATUS = "from dvc.cli import main; main(['status', '--json'])"
CASES["dvc status: ruamel.yaml C parser"] = DVC_STATUS
CASES["dvc status: ruamel.yaml in Python"] = (
    "import sys; sys.modules['_ruamel_yaml'] = None; " + DVC_STATUS)   # import fails: pure
CASES["SGD step: torch.optim.SGD"] = CASES["SGD step: hw1.torch_training.SGD"].replace(
    "o = make_optimizer(m, 'sgd', 0.1, 0.0)", "o = torch.optim.SGD(m.parameters(), lr=0.1)")
PAIRS = [("scoring: hw1.scoring", "scoring: medmnist.evaluator", "stage"),
         ("SGD step: hw1.torch_training.SGD", "SGD step: torch.optim.SGD", "stage"),
         ("YAML: hw1.params.read_yaml", "YAML: yaml.safe_load", "stage"),
         ("dvc status: ruamel.yaml C parser", "dvc status: ruamel.yaml in Python", "command")]
IN_WORKSPACE = ("YAML", "dvc status")   # the cases run in --workspace; the others anywhere


def run(code: str, cwd: Path) -> tuple[float, str]:
    """Wall seconds of ``python -P -c code`` in ``cwd`` (this checkout on the path, not ``cwd``),
    and its last output line."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-P", "-c", code], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    return time.perf_counter() - start, proc.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workspace", type=Path, default=REPO,
                        help="where the YAML and dvc status cases run (default: this checkout)")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    results: dict[str, str] = {}
    for _ in range(args.repeats):
        for name, code in CASES.items():
            cwd = args.workspace if name.startswith(IN_WORKSPACE) else REPO
            seconds, results[name] = run(code, cwd)
            times[name].append(seconds)
    lock = "with" if (args.workspace / "dvc.lock").exists() else "without"
    print(f"load average {os.getloadavg()[0]:.2f}; median of {args.repeats} fresh interpreters; "
          f"workspace {lock} dvc.lock")
    for name in CASES:
        print(f"  {name:34s} {statistics.median(times[name]):6.2f} s")
    for ours, theirs, per in PAIRS:
        same = "same values" if results[ours] == results[theirs] else \
            f"VALUES DIFFER: {results[ours]} vs {results[theirs]}"
        saved = statistics.median(times[theirs]) - statistics.median(times[ours])
        print(f"{ours.split(':')[0]}: {saved:.2f} s less per {per} ({same})")


if __name__ == "__main__":
    main()
