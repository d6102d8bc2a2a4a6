"""DVC stage `prepare`: the report's protocol applied once, for every training stage to load."""
from __future__ import annotations

import sys

from hw1.data import DataError, prepare
from hw1.outputs import write_json
from hw1.params import ParamsError, load_params, section


def main() -> None:
    params = load_params()
    summary = prepare("data/raw/octmnist.npz", "data/prepared/octmnist.npz",
                      test_distribution=section(params, "data.test_distribution"),
                      source=section(params, "data.source"))
    write_json("metrics/data.json", summary)
    print(f"Prepared {summary['dataset']}: sizes {summary['sizes']}, "
          f"test distribution {summary['test_distribution']}")


if __name__ == "__main__":
    try:
        main()
    except (DataError, ParamsError) as err:
        sys.exit(f"prepare failed: {err}")
