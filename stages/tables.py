"""DVC stage `tables`: the report's Tables 1-6 beside the reproduced numbers.

Writes reports/tables.md (all tables), reports/tables/table<N>.csv and metrics/summary.json
(the headline numbers of every run of the report).
"""
from __future__ import annotations

import sys
from pathlib import Path

from hw1.outputs import write_csv, write_json, write_text
from hw1.params import ParamsError, load_params
from hw1.runs import ReportInputError, RunId, load_data_summary, load_report_values
from hw1.tables import build_tables, render_markdown, summary


def main() -> None:
    report = load_report_values()
    tables = build_tables(load_params(), report, load_data_summary())
    for table in tables:
        write_csv(Path("reports/tables") / f"table{table.number}.csv", table.csv_rows)
    write_text("reports/tables.md", render_markdown(tables))
    write_json("metrics/summary.json", summary([RunId.parse(run) for run in report["runs"]]))
    print(f"Wrote reports/tables.md, reports/tables/table1-{len(tables)}.csv and "
          f"metrics/summary.json ({tables[0].notes[0]})")


if __name__ == "__main__":
    try:
        main()
    except (ReportInputError, ParamsError) as err:
        sys.exit(f"tables failed: {err}")
