"""DVC stages `train` and `q2@<name>`: one PyTorch run of Question 2.

Usage: ``python -m stages.train_torch train`` (the Table 3 network) or
``python -m stages.train_torch q2.<name>`` (another run of the report). The params section is
validated before the data is read; the model's state_dict goes to ``models/train.pt`` or
``models/q2/<name>.pt``, the per-epoch history and headline metrics through ``write_run``.
Initialisation, shuffling and dropout all derive from the params' ``seed``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from hw1.outputs import atomic_path, write_run
from hw1.params import ParamsError, load_params, section, validate_run, validate_seed
from hw1.progress import EpochProgress
from hw1.splits import load_prepared
from hw1.torch_models import build_model
from hw1.torch_training import fit, resolve_device

USAGE = "usage: python -m stages.train_torch train | q2.<name>"


def run_name(key: str) -> str:
    """``train`` -> ``train``; ``q2.<name>`` -> ``q2/<name>`` (the outputs' relative path)."""
    if key == "train":
        return "train"
    group, _, name = key.partition(".")
    if group != "q2" or not name or "." in name:
        raise ParamsError(f"unknown run {key!r}; {USAGE}")
    return f"q2/{name}"


def check_device(cfg: dict[str, Any], key: str) -> None:
    try:
        resolve_device(cfg["device"])
    except RuntimeError as err:
        raise ParamsError(f"{key}.device: {err}") from err


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise ParamsError(USAGE)
    key = argv[0]
    name = run_name(key)
    params = load_params()
    seed = validate_seed(params)
    cfg = validate_run(section(params, key), key, framework="torch")
    check_device(cfg, key)

    splits = load_prepared()
    model = build_model(cfg, seed)
    with EpochProgress(name, cfg["epochs"]) as progress:
        result = fit(model, splits, cfg, seed, progress)

    # Tensors moved to the CPU, so the file loads anywhere with weights_only=True.
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(Path("models") / f"{name}.pt") as tmp:
        torch.save(state, tmp)
    metrics = write_run(name, result.history, result.test_acc, result.train_seconds,
                        splits.dataset)
    print(f"{name} on {result.device}: val_acc {metrics['val_acc']:.4f} "
          f"(best {metrics['best_val_acc']:.4f} at epoch {metrics['best_epoch']}), "
          f"test_acc {metrics['test_acc']:.4f}, {metrics['train_seconds']:.1f} s "
          f"[{splits.dataset}]")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ParamsError, FileNotFoundError) as err:
        sys.exit(f"train_torch failed: {err}")
