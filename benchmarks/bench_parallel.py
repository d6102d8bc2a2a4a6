"""The whole report, serial `dvc repro` against the parallel command (`python -m scripts.repro`),
in fresh clones of the same commit, back to back on this machine, for one seed and for three.

For each seed count: a clone of this repository's HEAD with the synthetic stand-in at
``--scale`` (1.0: the size of OctMNIST) and the seeds set in params.yaml, committed; then two
fresh clones of that commit, one reproduced by `dvc repro`, then the other by
`python -m scripts.repro --jobs N`. Printed for each: the wall time, the core-seconds its
processes used (user + system, from the resource usage of the waited-for children), the
longest stage (a floor no parallelism beats), the parallel run's core-seconds over the cores
(the other floor: no schedule of that work is faster here) and the speed-up; and whether the two
left the same models, curves and figures (they hold no measured time).

    python -m benchmarks.bench_parallel [--scale 1.0] [--seeds 1 3] [--jobs N] [--epochs E]

``--epochs`` sets every run's epochs (a quick check of the script itself); ``--keep`` keeps
the clones (under a temporary directory, printed).
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from scripts.repro import available_cores, training_stages

REPO = Path(__file__).resolve().parents[1]
SEEDS = [42, 1, 2, 3, 4]
SAME_BYTES = ("models", "plots", "reports/figures")   # outputs that hold no measured time


@dataclass
class Timing:
    wall: float
    core_seconds: float
    longest: tuple[str, float]
    output: str


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def project(root: Path, scale: float, seeds: list[int], epochs: int | None) -> Path:
    """A clone of HEAD with the benchmark's params, committed."""
    from dvc.utils.hydra import apply_overrides

    root.mkdir(parents=True)
    origin = root / "origin"
    git("clone", "-q", str(REPO), str(origin), cwd=root)
    params = yaml.safe_load((origin / "params.yaml").read_text())
    overrides = ["data.source=synthetic", f"data.synthetic.scale={scale}",
                 f"seeds=[{','.join(map(str, seeds))}]"]
    if epochs is not None:
        overrides += [f"train.epochs={epochs}"] + [f"{group}.{run}.epochs={epochs}"
                                                   for group in ("q1", "q2")
                                                   for run in params[group]]
    apply_overrides(str(origin / "params.yaml"), overrides)
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.com")):
        git("config", key, value, cwd=origin)
    git("commit", "-q", "-am", "benchmark params", cwd=origin)
    return origin


def stage_spans(lines: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds per stage of a `dvc repro` output: from its "Running stage" line to the next
    stage's line (or the end)."""
    marks = [(t, m[1]) for t, line in lines
             if (m := re.match(r"(?:Running stage|Stage) '([^']+)'", line))]
    end = lines[-1][0] if lines else 0.0
    spans: dict[str, float] = {}
    for (t, stage), (t_next, _) in zip(marks, [*marks[1:], (end, "")]):
        spans[stage] = spans.get(stage, 0.0) + t_next - t
    return spans


def timed(cmd: list[str], cwd: Path, training: set[str]) -> Timing:
    """Runs ``cmd`` in ``cwd``, its output timestamped line by line; fails if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": str(cwd)})
    lines = [(time.monotonic() - began, line) for line in proc.stdout]
    proc.wait()
    wall = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = "".join(line for _, line in lines)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{output[-3000:]}")
    core = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    finished = {m[1]: float(m[2]) for m in
                re.finditer(r"\] finished (\S+) in ([\d.]+) s", output)}
    spans = finished or {s: t for s, t in stage_spans(lines).items() if s in training}
    longest = max(spans.items(), key=lambda item: item[1]) if spans else ("-", 0.0)
    return Timing(wall, core, longest, output)


def same_bytes(a: Path, b: Path) -> list[str]:
    """The files under ``SAME_BYTES`` that differ between clones ``a`` and ``b``."""
    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for name in SAME_BYTES
                for p in sorted((root / name).rglob("*")) if p.is_file()}
    fa, fb = files(a), files(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def compare(root: Path, n_seeds: int, scale: float, jobs: int, epochs: int | None) -> None:
    origin = project(root / f"seeds{n_seeds}", scale, SEEDS[:n_seeds], epochs)
    training = set(training_stages(yaml.safe_load((origin / "params.yaml").read_text())))
    serial_dir, parallel_dir = origin.parent / "serial", origin.parent / "parallel"
    for dest in (serial_dir, parallel_dir):
        git("clone", "-q", str(origin), str(dest), cwd=origin.parent)
    serial = timed([sys.executable, "-m", "dvc", "repro"], serial_dir, training)
    parallel = timed([sys.executable, "-m", "scripts.repro", "--jobs", str(jobs)],
                     parallel_dir, training)
    differ = same_bytes(serial_dir, parallel_dir)
    print(f"seeds {n_seeds} ({len(training)} training stages):")
    for label, t in (("serial   dvc repro", serial),
                     (f"parallel scripts.repro --jobs {jobs}", parallel)):
        print(f"  {label:<36} {t.wall:8.1f} s wall, {t.core_seconds:8.1f} core-s; "
              f"longest stage {t.longest[0]} {t.longest[1]:.1f} s")
    pool = re.search(r"(\d+) of \d+ stage\(s\) in ([\d.]+) s", parallel.output)
    if pool:
        print(f"  the workers' {pool[1]} stages took {float(pool[2]):.1f} s of the parallel "
              f"run, from the first one's start; the rest {parallel.wall - float(pool[2]):.1f} s")
    floor = parallel.core_seconds / available_cores()
    print(f"  floor {floor:.1f} s: the parallel run's core-seconds over {available_cores()} "
          f"cores, the wall no schedule of the same work beats here (at most "
          f"{serial.wall / floor:.2f}x)")
    print(f"  speed-up {serial.wall / parallel.wall:.2f}x; models, curves and figures "
          f"identical: {'yes' if not differ else 'NO: ' + ', '.join(differ[:10])}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3],
                        choices=range(1, len(SEEDS) + 1), help="seed counts to compare")
    parser.add_argument("--jobs", type=int, default=available_cores())
    parser.add_argument("--epochs", type=int, help="every run's epochs (default: params.yaml's)")
    parser.add_argument("--keep", action="store_true", help="keep the clones")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_parallel."))
    print(f"load average at start: {os.getloadavg()}; cores: {available_cores()}; "
          f"scale {args.scale}; clones under {root}", flush=True)
    try:
        for n_seeds in args.seeds:
            compare(root, n_seeds, args.scale, args.jobs, args.epochs)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
