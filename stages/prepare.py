"""DVC stage `prepare`: the report's protocol applied once, for every training stage to load:
the official test split whole, and the report's test subset in it."""
from __future__ import annotations

from hw1.data import prepare, validate_data
from hw1.errors import run_stage
from hw1.outputs import transaction, write_json
from hw1.params import load_params, section


def main() -> None:
    data = validate_data(section(load_params(), "data"))
    with transaction():  # the prepared splits and their summary: both or neither
        summary = prepare("data/raw/octmnist.npz", "data/prepared/octmnist.npz",
                          source=data["source"])
        write_json("metrics/data.json", summary)
    report_test = summary["report_test"]
    subset = report_test["missing"] or f"{report_test['size']} images"
    print(f"Prepared {summary['dataset']}: sizes {summary['sizes']}; the report's test subset: "
          f"{subset}")


if __name__ == "__main__":
    run_stage(main, "prepare")
