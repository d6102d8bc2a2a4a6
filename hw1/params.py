"""Reading params.yaml and validating a run's section before any training starts.

Every run section is fully specified (see DESIGN): the model name decides which keys it must
have, and every value is checked here, so a typo or a bad value fails fast with the params key
in the message.
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, Callable

import yaml


class ParamsError(ValueError):
    """A params.yaml value is missing or invalid; the message names the key."""


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    with open(path) as fh:
        params = yaml.safe_load(fh)
    if not isinstance(params, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    return params


def section(params: dict[str, Any], dotted: str) -> Any:
    """``section(params, "q1.perceptron")`` -> ``params["q1"]["perceptron"]``, or ParamsError."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"params key '{dotted}' not found in params.yaml")
        node = node[part]
    return node


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


# key -> (check, what is expected)
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "hidden_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "layers": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "dropout": (lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)"),
    "activation": (lambda v: v in ("relu", "tanh"), "one of: relu, tanh"),
    "l2_decay": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "optimizer": (lambda v: v in ("sgd", "adam"), "one of: sgd, adam"),
    "device": (lambda v: isinstance(v, str) and (v in ("auto", "cpu", "cuda")
                                                 or v.startswith("cuda:")),
               "one of: auto, cpu, cuda, cuda:N"),
    "init_mean": (_is_num, "a number"),
    "init_std": (lambda v: _is_num(v) and v > 0, "a number > 0"),
}

_TORCH_COMMON = {"model", "epochs", "lr", "batch_size", "l2_decay", "optimizer", "device"}

# framework -> model -> the keys its section must have (no more, no fewer)
MODELS: dict[str, dict[str, set[str]]] = {
    "numpy": {
        "perceptron": {"model", "epochs"},
        "logistic_regression": {"model", "epochs", "lr"},
        "mlp": {"model", "epochs", "lr", "hidden_size", "init_mean", "init_std"},
    },
    "torch": {
        "logistic_regression": _TORCH_COMMON,
        "feedforward": _TORCH_COMMON | {"hidden_size", "layers", "dropout", "activation"},
    },
}


def validate_run(cfg: Any, key: str, framework: str) -> dict[str, Any]:
    """Check one run section (``key`` is its params path, e.g. ``q2.ffn_lr1``); return it."""
    if not isinstance(cfg, dict):
        raise ParamsError(f"params key '{key}' must be a mapping, got {cfg!r}")
    models = MODELS[framework]
    model = cfg.get("model")
    if model not in models:
        raise ParamsError(f"{key}.model is {model!r}; expected one of: {', '.join(models)} "
                          f"(for the {framework} runs)")
    expected = models[model]
    missing = sorted(expected - cfg.keys())
    unknown = sorted(cfg.keys() - expected)
    if missing:
        raise ParamsError(f"{key} is missing {', '.join(missing)} (model {model} needs "
                          f"{', '.join(sorted(expected))})")
    if unknown:
        raise ParamsError(f"{key} has unknown key(s) {', '.join(unknown)} for model {model}; "
                          f"expected: {', '.join(sorted(expected))}")
    for name in sorted(expected - {"model"}):
        check, what = _CHECKS[name]
        if not check(cfg[name]):
            raise ParamsError(f"{key}.{name} must be {what}, got {cfg[name]!r}")
    return cfg


def validate_seed(params: dict[str, Any]) -> int:
    seed = params.get("seed")
    if not _is_int(seed) or seed < 0:
        raise ParamsError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)
