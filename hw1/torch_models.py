"""Question 2's PyTorch models: logistic regression and the feed-forward network.

Both are plain ``nn.Module``s returning logits for the four OctMNIST classes; the softmax lives
in the cross-entropy loss, as in the report's course code. ``build_model`` turns a validated
params section (see hw1.params) into a freshly initialised model.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hw1.params import Rules, integer, number, one_of
from hw1.splits import N_CLASSES

N_FEATURES = 784  # 28 x 28 pixels, flattened by the prepare stage

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}

# Each model's own params; the training loop's (epochs, lr, ...) are in hw1.torch_training.
MODEL_RULES: dict[str, Rules] = {
    "logistic_regression": {},
    "feedforward": {"hidden_size": integer(1), "layers": integer(1),
                    "dropout": number(0, 1, below=True), "activation": one_of(*ACTIVATIONS)},
}


class LogisticRegression(nn.Module):
    """One linear layer with bias, 784 -> 4: multinomial logistic regression on the logits."""

    def __init__(self, n_features: int = N_FEATURES, n_classes: int = N_CLASSES):
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class FeedforwardNetwork(nn.Module):
    """``layers`` hidden layers of ``hidden_size`` units, each followed by the activation and
    dropout with probability ``dropout``, then a linear output layer to the classes."""

    def __init__(self, hidden_size: int, layers: int, activation: str = "relu",
                 dropout: float = 0.0, n_features: int = N_FEATURES,
                 n_classes: int = N_CLASSES):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {activation!r}")
        # Named so that state_dict keys read like the report (layers.hidden1.weight, ...)
        # and stay the same whether or not the run uses dropout.
        blocks: dict[str, nn.Module] = {}
        width = n_features
        for i in range(1, layers + 1):
            blocks[f"hidden{i}"] = nn.Linear(width, hidden_size)
            blocks[f"{activation}{i}"] = ACTIVATIONS[activation]()
            # Dropout(0) is the identity; leaving it out saves a module call per layer and
            # step, which shows at batch 16 where per-step overhead dominates.
            if dropout > 0:
                blocks[f"dropout{i}"] = nn.Dropout(dropout)
            width = hidden_size
        blocks["output"] = nn.Linear(width, n_classes)
        self.layers = nn.Sequential(OrderedDict(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_model(cfg: Mapping[str, Any], seed: int) -> nn.Module:
    """A model for a validated run section, initialised by PyTorch's default scheme from
    ``seed`` (the global RNG is forked, so the caller's random state is left untouched)."""
    # nn.Linear initialises from the global CPU generator and takes no generator argument
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        if cfg["model"] == "logistic_regression":
            return LogisticRegression()
        if cfg["model"] == "feedforward":
            return FeedforwardNetwork(cfg["hidden_size"], cfg["layers"], cfg["activation"],
                                      cfg["dropout"])
    raise ValueError(f"unknown torch model {cfg['model']!r}; expected logistic_regression "
                     f"or feedforward")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
