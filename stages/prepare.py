"""DVC stage `prepare`: the report's protocol applied once, for every training stage to load."""
from __future__ import annotations

from hw1.data import DATA_RULES, prepare
from hw1.errors import run_stage
from hw1.outputs import write_json
from hw1.params import load_params, section, validate_section


def main() -> None:
    data = validate_section(section(load_params(), "data"), "data", DATA_RULES)
    summary = prepare("data/raw/octmnist.npz", "data/prepared/octmnist.npz",
                      test_distribution=data["test_distribution"], source=data["source"])
    write_json("metrics/data.json", summary)
    print(f"Prepared {summary['dataset']}: sizes {summary['sizes']}, "
          f"test distribution {summary['test_distribution']}")


if __name__ == "__main__":
    run_stage(main, "prepare")
