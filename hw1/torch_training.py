"""The one PyTorch training loop of Question 2: mini-batch SGD (or Adam) on tensors in memory.

The protocol is the report's course code: each epoch reshuffles the training set, steps through
it in mini-batches (the last one may be smaller), and records the mean training loss over the
batches and the validation loss and accuracy; at the end the model's class scores (logits) on
the test split are kept, for hw1.scoring to score both test sets from.
Training accuracy is that of the epoch's own forward passes (running, in train mode): each
batch's predictions, made with dropout active by the weights as they were before that batch's
step, counted over the epoch like the training loss. It costs one small reduction per step,
where evaluating the whole training set again after each epoch, as this loop did, took 14-50% of
an epoch on a loaded 2-core machine (benchmarks/bench_epoch_eval.py); and the report never shows
Question 2's training accuracy (its Figures 7-10 show training loss, validation loss and
validation accuracy).

Speed matters because at batch 16 a step does little arithmetic, so per-step overhead decides
the run time. Hence: the whole training set is held as one tensor on the device, permuted once
per epoch into a preallocated buffer and cut into contiguous views (no per-example indexing or
collation); losses and counts of right predictions stay on the device until the epoch ends
(no host sync per step); and the thread count is chosen per batch size (see ``threads_for``).

Randomness comes from the ``seed`` passed in: a ``torch.Generator`` draws the permutations, and
dropout (which can only use the global RNG) runs inside a forked global RNG, so the caller's
random state is untouched. On the CPU, the same params and seed give identical results.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hw1.params import ParamsError, Rule, Rules, integer, number, one_of, validate_run
from hw1.progress import EpochProgress
from hw1.splits import Splits
from hw1.torch_models import MODEL_RULES

EVAL_BATCH = 8192  # evaluation batch: large enough to be matmul-bound, small in memory
MIN_BATCH_FOR_ALL_CORES = 128  # smaller batches train on one thread (threads_for)


OPTIMIZERS = ("sgd", "adam")
# The training loop's params, shared by every model (each model's own are in MODEL_RULES).
TRAINING_RULES: Rules = {
    "epochs": integer(1), "lr": number(0, above=True), "batch_size": integer(1),
    "l2_decay": number(0), "optimizer": one_of(*OPTIMIZERS),
    "device": Rule(lambda v: isinstance(v, str) and (v in ("auto", "cpu", "cuda")
                                                     or v.startswith("cuda:")),
                   "one of: auto, cpu, cuda, cuda:N"),
}


def validate(cfg: Any, key: str) -> dict[str, Any]:
    """Check a PyTorch run section (``train`` or ``q2.<run>``) against its model's rules."""
    return validate_run(cfg, key, {name: {**TRAINING_RULES, **rules}
                                   for name, rules in MODEL_RULES.items()}, "torch")


@dataclass(frozen=True)
class RunResult:
    """What a run produced: the per-epoch history, the final model's class scores (logits,
    float32, one row per test image), wall time, and why training stopped early
    (``"training loss is nan"``), None if it ran every epoch."""
    history: list[dict[str, float]]
    test_scores: np.ndarray
    train_seconds: float
    device: str
    diverged: str | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available here; "
                           f"use device: auto or cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise RuntimeError(f"device {name!r} was asked for but this machine has "
                           f"{torch.cuda.device_count()} CUDA device(s); use device: auto, cuda "
                           f"or cuda:0")
    return device


def check_device(cfg: Mapping[str, Any], key: str) -> None:
    """ParamsError naming ``<key>.device`` if this machine lacks the run's device."""
    try:
        resolve_device(cfg["device"])
    except RuntimeError as err:
        raise ParamsError(f"{key}.device: {err}") from err


def available_cores() -> int:
    """Cores this process may use, capped by torch's own setting (``OMP_NUM_THREADS``), so a
    user running several trainings side by side can give each one thread."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, torch.get_num_threads()))


def threads_for(batch_size: int) -> int:
    """CPU threads for a training step at ``batch_size``.

    A second thread pays only while it has a core of its own: every operator ends at an OpenMP
    barrier, so when another process preempts one thread the whole step waits for it (measured
    in benchmarks/bench_torch.py: batch-16 steps up to 100x slower under load). So batches
    below 128, where a second thread gains little, train on one thread; larger ones use all
    cores. The count depends on the batch size only, never on the load, so a run's arithmetic
    (and its results) do not depend on what else the machine is doing.
    """
    return 1 if batch_size < MIN_BATCH_FOR_ALL_CORES else available_cores()


@contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, restoring the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global RNG that ``device``'s dropout draws from, inside a fork of it."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            index = device.index if device.index is not None else torch.cuda.current_device()
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def child_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent seeds derived from ``seed`` (NumPy's SeedSequence spawning)."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(n)]


class SGD:
    """Plain SGD with L2 weight decay, the update of ``torch.optim.SGD`` without momentum, op for
    op (``grad + l2_decay * param``, then ``param -= lr * grad``), so its weights are equal to
    the bit. ``torch.optim`` would import ``torch._dynamo`` on its first call: seconds of every
    training stage's start."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, weight_decay: float = 0.0):
        self.params, self.lr, self.weight_decay = list(params), lr, weight_decay

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for param in self.params:
            if param.grad is None:
                continue
            grad = param.grad
            if self.weight_decay != 0:
                grad = grad.add(param, alpha=self.weight_decay)
            param.add_(grad, alpha=-self.lr)


def make_optimizer(model: nn.Module, name: str, lr: float,
                   l2_decay: float) -> SGD | torch.optim.Optimizer:
    """SGD or Adam with L2 regularization as the optimizer's weight decay."""
    # SGD loops over the tensors as torch does on the CPU by default: foreach and fused were no
    # faster there (benchmarks/bench_torch.py).
    if name == "sgd":
        return SGD(model.parameters(), lr=lr, weight_decay=l2_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=l2_decay, foreach=True)
    raise ValueError(f"unknown optimizer {name!r}; expected sgd or adam")


class EpochBatches:
    """The training set in memory, reshuffled every epoch into contiguous mini-batches.

    Iterating once permutes the whole set into a buffer allocated once, then yields views of
    consecutive slices of it; the permutation comes from a CPU generator seeded by ``seed``, so
    the order is the same on every device.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int):
        if len(x) != len(y):
            raise ValueError(f"{len(x)} examples but {len(y)} labels")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self._x, self._y = torch.empty_like(x), torch.empty_like(y)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
        torch.index_select(self.x, 0, order, out=self._x)
        torch.index_select(self.y, 0, order, out=self._y)
        return zip(self._x.split(self.batch_size), self._y.split(self.batch_size))


def train_epoch(model: nn.Module, optimizer: SGD | torch.optim.Optimizer,
                batches: EpochBatches) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the shuffled training set. Returns the mean batch loss and the number of
    examples its forward passes classified right (train mode, each batch by the weights before
    its step), both 0-d tensors on the device: read them once the epoch is done."""
    model.train()
    losses = []
    correct = torch.zeros((), dtype=torch.int64, device=batches.x.device)
    for xb, yb in batches:
        optimizer.zero_grad()
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        correct += (logits.argmax(dim=1) == yb).sum()
    return torch.stack(losses).mean(), correct


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` in eval mode (dropout off)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        logits = model(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(dim=1) == yb).sum()
    model.train(was_training)
    return loss_sum.item() / len(y), correct.item() / len(y)


@torch.no_grad()
def class_scores(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """The logits of ``model`` in eval mode (dropout off) for every row of ``x``, on the CPU."""
    was_training = model.training
    model.eval()
    scores = torch.cat([model(xb).float().cpu() for xb in x.split(batch_size)])
    model.train(was_training)
    return scores.numpy()


def fit(model: nn.Module, splits: Splits, cfg: Mapping[str, Any], seed: int,
        progress: EpochProgress | None = None) -> RunResult:
    """Train ``model`` by a validated run section ``cfg``; return its history and test scores.

    History rows: ``epoch`` (1-based), ``train_loss`` (mean over the epoch's batches),
    ``train_acc`` (accuracy of the epoch's forward passes: running, in train mode, so with
    dropout active and each batch judged by the weights before its step), ``val_loss`` and
    ``val_acc`` (the model at the end of the epoch, eval mode).
    A run whose training loss turns non-finite has diverged: it stops after that epoch's row,
    and the test scores are those of the model as it stopped.
    """
    device = resolve_device(cfg["device"])
    model.to(device)

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    x_train, y_train = tensors(splits.x_train, splits.y_train)
    x_val, y_val = tensors(splits.x_val, splits.y_val)
    x_test = torch.from_numpy(splits.x_test).to(device)
    shuffle_seed, dropout_seed = child_seeds(seed, 2)
    batches = EpochBatches(x_train, y_train, cfg["batch_size"], shuffle_seed)
    optimizer = make_optimizer(model, cfg["optimizer"], cfg["lr"], cfg["l2_decay"])
    train_threads, eval_threads = threads_for(cfg["batch_size"]), available_cores()

    history: list[dict[str, float]] = []
    diverged: str | None = None
    start = time.perf_counter()
    with seeded_global_rng(dropout_seed, device):
        for epoch in range(1, cfg["epochs"] + 1):
            with cpu_threads(train_threads):
                train_loss, train_correct = train_epoch(model, optimizer, batches)
            with cpu_threads(eval_threads):
                val_loss, val_acc = evaluate(model, x_val, y_val)
            row = {"epoch": epoch, "train_loss": float(train_loss), "val_loss": val_loss,
                   "train_acc": train_correct.item() / len(y_train), "val_acc": val_acc}
            history.append(row)
            if progress is not None:
                progress.update(epoch, train_loss=row["train_loss"], val_loss=val_loss,
                                val_acc=val_acc)
            if not math.isfinite(row["train_loss"]):
                diverged = f"training loss is {row['train_loss']}"
                break
    train_seconds = time.perf_counter() - start
    with cpu_threads(eval_threads):
        test_scores = class_scores(model, x_test)
    return RunResult(history, test_scores, train_seconds, str(device), diverged)
