"""DVC stage `figures`: the report's Figures 1-10 as PNG in reports/figures/, from plots/*.csv."""
from __future__ import annotations

import sys

from hw1.figures import FiguresError, render_figures
from hw1.params import ParamsError, load_params
from hw1.runs import ReportInputError, load_data_summary, load_report_values


def main() -> None:
    written = render_figures(load_params(), load_data_summary(),
                             load_report_values()["data"])
    print(f"Wrote {len(written)} figures: {', '.join(p.name for p in written)}")


if __name__ == "__main__":
    try:
        main()
    except (FiguresError, ReportInputError, ParamsError) as err:
        sys.exit(f"figures failed: {err}")
