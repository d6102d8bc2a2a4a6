"""Reading params.yaml, and the one mechanism that validates it.

Each section's rules are declared next to the code they govern, in the spirit of scikit-learn's
``_parameter_constraints``: the NumPy models on their classes (hw1.numpy_models), the PyTorch
models and training loop in hw1.torch_models and hw1.torch_training, the data section in
hw1.data, Question 3 in hw1.boolean. This module holds only the rule types, ``seed``'s rule and
the functions that apply them, so a stage depends on the rules of its own section alone.
Every message names the params key, what was found and what is expected.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import yaml

from hw1.errors import UserError

# PyYAML's safe loader on libyaml's parser where PyYAML has it (its wheels do): the values
# yaml.safe_load gives, several times faster on dvc.lock and params.yaml.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(stream: str | IO[str]) -> Any:
    """``yaml.safe_load(stream)`` through ``SAFE_LOADER``."""
    return yaml.load(stream, Loader=SAFE_LOADER)


class ParamsError(UserError, ValueError):
    """A params.yaml value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class Rule:
    """What one params value must be: a check, and the words for it in a message."""
    check: Callable[[Any], bool]
    expected: str


# A section's rules: key -> Rule, or the rules of a nested section.
Rules = Mapping[str, Union[Rule, "Rules"]]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def integer(low: int | None = None, high: int | None = None) -> Rule:
    """An integer in [low, high] (either bound may be left open)."""
    words = ("an integer" + (f" >= {low}" if low is not None and high is None else "")
             + (f" in [{low}, {high}]" if low is not None and high is not None else ""))
    return Rule(lambda v: _is_int(v) and (low is None or v >= low)
                and (high is None or v <= high), words)


def number(low: float | None = None, high: float | None = None, *, above: bool = False,
           below: bool = False) -> Rule:
    """A finite number >= low (> low if ``above``) and <= high (< high if ``below``)."""
    def check(v: Any) -> bool:
        return (_is_num(v)
                and (low is None or (v > low if above else v >= low))
                and (high is None or (v < high if below else v <= high)))
    if low is not None and high is not None:
        words = f"a number in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"
    elif low is not None:
        words = f"a finite number {'>' if above else '>='} {low:g}"
    else:
        words = "a finite number"
    return Rule(check, words)


def one_of(*values: Any) -> Rule:
    return Rule(lambda v: isinstance(v, str) and v in values,
                "one of: " + ", ".join(map(str, values)))


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    try:
        with open(path) as fh:
            params = read_yaml(fh)
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the project's root") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
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


# YAML 1.1 (PyYAML, hence DVC and this project) reads a float only with a dot and a signed
# exponent: 1e-3 and 1.0e3 are strings.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _hint(value: Any) -> str:
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return (f"; YAML reads {value} as text: write the number with a dot and a signed "
                f"exponent (1.0e-3, 1.0e+3), or set it with `dvc exp run -S key={value}`")
    return ""


def check_value(value: Any, key: str, rule: Rule) -> Any:
    if not rule.check(value):
        raise ParamsError(f"{key} must be {rule.expected}, got {value!r}{_hint(value)}")
    return value


def _check_keys(cfg: Any, key: str, expected: set[str], needs: str) -> None:
    if not isinstance(cfg, dict):
        raise ParamsError(f"params key '{key}' must be a mapping, got {cfg!r}")
    missing = sorted(expected - cfg.keys())
    unknown = sorted(cfg.keys() - expected, key=str)
    if missing:
        raise ParamsError(f"{key} is missing {', '.join(missing)} ({needs} "
                          f"{', '.join(sorted(expected))})")
    if unknown:
        raise ParamsError(f"{key} has unknown key(s) {', '.join(map(str, unknown))}; "
                          f"{needs} {', '.join(sorted(expected))}")


def validate_section(cfg: Any, key: str, rules: Rules, needs: str = "expected:") -> dict:
    """Check that section ``key`` has exactly the keys of ``rules``, each value valid."""
    _check_keys(cfg, key, set(rules), needs)
    for name, rule in rules.items():
        if isinstance(rule, Rule):
            check_value(cfg[name], f"{key}.{name}", rule)
        else:
            validate_section(cfg[name], f"{key}.{name}", rule)
    return cfg


def validate_run(cfg: Any, key: str, models: Mapping[str, Rules], what: str) -> dict[str, Any]:
    """Check one run section (``key`` is its params path, e.g. ``q2.ffn_lr1``): its ``model``
    picks the rules from ``models`` (``what`` names the runs, e.g. "NumPy")."""
    if not isinstance(cfg, dict):
        raise ParamsError(f"params key '{key}' must be a mapping, got {cfg!r}")
    model = cfg.get("model")
    if model not in models:
        raise ParamsError(f"{key}.model is {model!r}; expected one of: {', '.join(models)} "
                          f"(for the {what} runs)")
    return validate_section(cfg, key, {"model": one_of(model), **models[model]},
                            needs=f"model {model} takes")


SEED = integer(0)
SEEDS = Rule(lambda v: isinstance(v, list) and len(v) > 0 and all(SEED.check(s) for s in v)
             and len(set(v)) == len(v), "a non-empty list of distinct integers >= 0")


def validate_seed(params: dict[str, Any]) -> int:
    """``seed``: the synthetic stand-in's generator and Question 3's perturbations."""
    return int(check_value(params.get("seed"), "seed", SEED))


def parse_seed(text: str, usage: str) -> int:
    """A stage's seed argument (DVC passes one seed of ``seeds`` to each training stage)."""
    if not text.isdigit():
        raise ParamsError(f"the seed must be an integer >= 0, got {text!r}; {usage}")
    return int(text)


def validate_seeds(params: dict[str, Any]) -> list[int]:
    """``seeds``: every training run trains once per seed, in this order."""
    return [int(s) for s in check_value(params.get("seeds"), "seeds", SEEDS)]
