"""DVC stages `train` and `q2@<name>`: one PyTorch run of Question 2.

Usage: ``python -m stages.train_torch train`` (the Table 3 network) or
``python -m stages.train_torch q2.<name>`` (another run of the report). The params section is
validated before the data is read; the model's state_dict goes to ``models/train.pt`` or
``models/q2/<name>.pt``, the per-epoch history and headline metrics through ``write_run``.
A run that diverges stops there, says so, and is written like any other (flagged).
Initialisation, shuffling and dropout all derive from the params' ``seed``.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import torch

from hw1.errors import run_stage
from hw1.outputs import transaction, write_bytes, write_run
from hw1.params import ParamsError, load_params, parse_seed, section
from hw1.progress import EpochProgress
from hw1.runs import RunId
from hw1.scoring import score_test_sets, scores_line
from hw1.splits import load_prepared
from hw1.torch_models import build_model
from hw1.torch_training import check_device, fit, validate

USAGE = "usage: python -m stages.train_torch train|q2.<name> <seed>"


def parse_run(key: str) -> RunId:
    """``train`` or ``q2.<name>``: the runs this stage trains."""
    try:
        run = RunId.parse(key)
    except ValueError:
        run = None
    if run is None or run.group not in (None, "q2") or key != run.key:
        raise ParamsError(f"unknown run {key!r}; {USAGE}")
    return run


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise ParamsError(USAGE)
    run, seed = parse_run(argv[0]), parse_seed(argv[1], USAGE)
    name, key = f"{run.path} seed {seed}", run.key
    params = load_params()
    cfg = validate(section(params, key), key)
    check_device(cfg, key)

    splits = load_prepared()
    model = build_model(cfg, seed)
    with EpochProgress(name, cfg["epochs"]) as progress:
        result = fit(model, splits, cfg, seed, progress)
    if result.diverged:  # a result all the same (the report shows its lr-1 run): exit 0
        progress.stopped(result.history[-1]["epoch"], result.diverged)

    # Tensors moved to the CPU, so the file loads anywhere with weights_only=True. Saved into a
    # buffer: given a path, torch.save records the (temporary) file's name inside it, and a
    # failed write to a file it reports as a bare RuntimeError.
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    model_path = Path(run.seed_model(seed, ".pt"))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    test = score_test_sets(result.test_scores, splits, probabilities=True)
    with transaction():  # the model, its metrics and its curve: all three or none
        write_bytes(model_path, buffer.getvalue())
        metrics = write_run(run, seed, result.history, test, result.train_seconds,
                            splits.dataset, outputs=[model_path], diverged=result.diverged)
    print(f"{name} on {result.device}: val_acc {metrics['val_acc']:.4f} "
          f"(best {metrics['best_val_acc']:.4f} at epoch {metrics['best_epoch']}), "
          f"{scores_line(metrics)}, {metrics['train_seconds']:.1f} s [{splits.dataset}]")


if __name__ == "__main__":
    run_stage(main, "train_torch", sys.argv[1:])
