"""DVC stage `check_params`: every section of params.yaml checked before any other stage runs.

Every other stage depends on this one, so a typo in params.yaml stops `dvc repro` here, before
DVC deletes any stage's outputs to re-run it. The output's content never changes while the
params are valid, so a valid change re-runs no stage through this one.
"""
from __future__ import annotations

from hw1 import numpy_models, torch_training
from hw1.boolean import validate_boolean
from hw1.data import prepared_sizes, validate_data
from hw1.errors import run_stage
from hw1.machine import check_machine
from hw1.outputs import write_text
from hw1.params import (
    ParamsError,
    load_params,
    section,
    validate_seed,
    validate_seeds,
)
from hw1.runs import RUN_NAME_RULE, RunId

OUT = "data/params_checked.txt"
SECTIONS = ("seed", "seeds", "data", "train", "q1", "q2", "boolean")


def check(params: dict) -> None:
    """Raise ParamsError naming the first invalid key of ``params``, or the first run this
    machine cannot train (its device, its memory)."""
    unknown = sorted(set(params) - set(SECTIONS), key=str)
    if unknown:
        raise ParamsError(f"params.yaml has unknown section(s) {', '.join(map(str, unknown))}; "
                          f"expected: {', '.join(SECTIONS)}")
    validate_seed(params)
    validate_seeds(params)
    validate_data(section(params, "data"))
    torch_training.validate(section(params, "train"), "train")
    for group, validate in (("q1", numpy_models.validate), ("q2", torch_training.validate)):
        runs = section(params, group)
        if not isinstance(runs, dict) or not runs:
            raise ParamsError(f"{group} must map run names to their params, got {runs!r}")
        for name, cfg in runs.items():
            try:
                run = RunId.parse(f"{group}.{name}")
            except ValueError:
                raise ParamsError(f"{group}.{name}: a run name holds {RUN_NAME_RULE} (it "
                                  f"becomes part of a DVC stage name, file paths and a shell "
                                  f"command; DVC reads a dot as a path separator)") from None
            validate(cfg, run.key)
    validate_boolean(params)
    check_machine(params, prepared_sizes(params["data"]))


def main() -> None:
    check(load_params())
    write_text(OUT, "params.yaml: every section valid\n")


if __name__ == "__main__":
    run_stage(main, "check_params", heading="params.yaml is invalid")
