"""What a training run needs of the machine against what the machine has: the device it names
and the memory it takes. `check_params` checks every run before any stage starts, so a run that
cannot work here stops there, before DVC deletes a single output.

A run's memory is estimated from its params (the model is built on PyTorch's ``meta`` device,
which allocates nothing): its parameters with their gradients and optimizer state, one
training batch's activations (or one evaluation batch's, whichever is larger) and the data it
holds, the prepared splits as float32 at the data section's scale. It is a floor, not a bound:
a run under it can still run out of memory with the machine otherwise busy.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hw1.numpy_models import _EVAL_BLOCK, from_params
from hw1.params import ParamsError
from hw1.splits import N_CLASSES
from hw1.torch_models import N_FEATURES, build_model, parameter_count
from hw1.torch_training import EVAL_BATCH, check_device, resolve_device

FLOAT32 = 4
# Optimizer state per parameter: SGD without momentum keeps none, Adam two moments.
OPTIMIZER_STATES = {"sgd": 0, "adam": 2}
# Per example and unit of a layer, a training step keeps the layer's output, its activation
# (and dropout's), and their gradients.
TRAIN_FLOATS_PER_UNIT = 4
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def memory_bytes() -> int:
    """This machine's memory: the physical memory, or the cgroup's limit when lower (a
    container, a CI runner)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in CGROUP_LIMITS:
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def device_memory(device: torch.device) -> int:
    """The memory of ``device``: a CUDA device's own, else this machine's."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_properties(index).total_memory
    return memory_bytes()


def human(n: float) -> str:
    """``1.5e9`` -> ``"1.4 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _data_key(data: Mapping[str, Any]) -> str:
    return "data.synthetic.scale" if data["source"] == "synthetic" else "data.source"


def torch_need(cfg: Mapping[str, Any], key: str, sizes: Mapping[str, int],
               data: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    """What a PyTorch run (validated section ``cfg`` at params key ``key``) holds in memory, by
    part: bytes, and the params key that sets it."""
    with torch.device("meta"):
        model = build_model(cfg, 0)
    widths = [p.shape[0] for p in model.parameters() if p.dim() == 2]  # each layer's units
    size_key = f"{key}.hidden_size" if "hidden_size" in cfg else key
    parameters = (2 + OPTIMIZER_STATES[cfg["optimizer"]]) * parameter_count(model) * FLOAT32
    batch = min(cfg["batch_size"], sizes["train"])  # a batch larger than the split is all of it
    train_batch = batch * sum(widths) * TRAIN_FLOATS_PER_UNIT * FLOAT32
    eval_batch = min(EVAL_BATCH, max(sizes["val"], sizes["test"])) * 2 * max(widths) * FLOAT32
    # the training split twice: as loaded, and the buffer each epoch's shuffle is written to
    examples = 2 * sizes["train"] + sizes["val"] + sizes["test"]
    return {"parameters, gradients and optimizer state": (parameters, size_key),
            "batch activations": (max(train_batch, eval_batch),
                                  f"{key}.batch_size" if train_batch >= eval_batch else size_key),
            "data": (examples * N_FEATURES * FLOAT32, _data_key(data))}


def numpy_need(cfg: Mapping[str, Any], key: str, sizes: Mapping[str, int],
               data: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    """What a NumPy run of Question 1 holds in memory, by part (see ``torch_need``)."""
    model = from_params(cfg)  # weights are made by fit, not here
    itemsize = np.dtype(model.dtype).itemsize
    n_in = N_FEATURES + int(model.bias_feature)
    hidden = getattr(model, "hidden_size", None)
    weights = (hidden * (n_in + 1) + N_CLASSES * (hidden + 1)) if hidden else N_CLASSES * n_in
    size_key = f"{key}.hidden_size" if hidden else key
    examples = sum(sizes.values())
    # float32 as loaded, twice while the bias feature is appended; the training split once more
    # in the model's dtype when that is not float32
    held = 2 * examples * n_in * FLOAT32 + (sizes["train"] * n_in * itemsize
                                            if itemsize != FLOAT32 else 0)
    return {"weights and their updates": (2 * weights * itemsize, size_key),
            "evaluation blocks": (_EVAL_BLOCK * 2 * (hidden or N_CLASSES) * itemsize, size_key),
            "data": (held, _data_key(data))}


def check_memory(need: Mapping[str, tuple[int, str]], key: str, have: int, where: str) -> None:
    """ParamsError naming the key behind the largest part of ``need`` if the parts add up to
    more than ``have`` bytes."""
    total = sum(n for n, _ in need.values())
    if total <= have:
        return
    largest = max(need, key=lambda part: need[part][0])
    parts = "; ".join(f"{part} {human(n)}" for part, (n, _) in need.items())
    raise ParamsError(f"{need[largest][1]}: run {key} needs about {human(total)} of memory "
                      f"({parts}), more than the {human(have)} of {where}; make it smaller")


def check_machine(params: Mapping[str, Any], sizes: Mapping[str, int]) -> None:
    """Every training run of ``params`` (already validated) against this machine: its device
    exists and its memory need fits; ParamsError naming the key otherwise. ``sizes``: the
    prepared splits' sizes."""
    data = params["data"]
    torch_runs = {"train": params["train"],
                  **{f"q2.{name}": cfg for name, cfg in params["q2"].items()}}
    for key, cfg in torch_runs.items():
        check_device(cfg, key)
        device = resolve_device(cfg["device"])
        where = f"{device} device" if device.type == "cuda" else "this machine"
        check_memory(torch_need(cfg, key, sizes, data), key, device_memory(device), where)
    for name, cfg in params["q1"].items():
        check_memory(numpy_need(cfg, f"q1.{name}", sizes, data), f"q1.{name}", memory_bytes(),
                     "this machine")
