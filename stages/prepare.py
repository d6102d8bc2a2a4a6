"""DVC stage `prepare`: the report's protocol applied once, for every training stage to load."""
from __future__ import annotations

import sys

from hw1.data import DATA_RULES, DataError, prepare
from hw1.outputs import transaction, write_json
from hw1.params import ParamsError, load_params, section, validate_section


def main() -> None:
    data = validate_section(section(load_params(), "data"), "data", DATA_RULES)
    with transaction():  # the prepared splits and their summary: both or neither
        summary = prepare("data/raw/octmnist.npz", "data/prepared/octmnist.npz",
                          test_distribution=data["test_distribution"], source=data["source"])
        write_json("metrics/data.json", summary)
    print(f"Prepared {summary['dataset']}: sizes {summary['sizes']}, "
          f"test distribution {summary['test_distribution']}")


if __name__ == "__main__":
    try:
        main()
    except (DataError, ParamsError) as err:
        sys.exit(f"prepare failed: {err}")
