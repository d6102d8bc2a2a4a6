"""DVC stage `figures`: every run's mean curve over the seeds (plots/<run>.csv) and the report's
Figures 1-10 as PNG in reports/figures/, from the per-seed curves in plots/seeds/."""
from __future__ import annotations

from hw1.errors import run_stage
from hw1.figures import render_figures, write_mean_curves
from hw1.outputs import transaction
from hw1.params import load_params, validate_seeds
from hw1.report_inputs import load_data_summary, load_report_values


def main() -> None:
    params = load_params()
    data, report_data = load_data_summary(), load_report_values()["data"]
    with transaction():  # every mean curve and figure, or none
        curves = write_mean_curves(params)
        written = render_figures(params, curves, data, report_data)
    print(f"Wrote {len(curves)} mean curves over {len(validate_seeds(params))} seed(s) and "
          f"{len(written)} figures: {', '.join(p.name for p in written)}")


if __name__ == "__main__":
    run_stage(main, "figures")
