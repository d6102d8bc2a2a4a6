"""DVC stage `tables`: the report's Tables 1-6 beside the reproduced numbers, every run's ACC and
AUC on the official test split beside the MedMNIST v2 benchmark, and the report's conclusions
checked seed by seed.

Reads the metrics of every seed of params.yaml's `seeds`; writes reports/tables.md (all tables),
reports/tables/table<N>.csv and benchmark.csv, metrics/summary.json (the headline numbers of
every run of the report), reports/claims.md and metrics/claims.json (in how many seeds each
conclusion holds).
"""
from __future__ import annotations

from pathlib import Path

from hw1.claims import check_claims, claims_metrics, render_claims
from hw1.errors import run_stage
from hw1.outputs import transaction, write_csv, write_json, write_text
from hw1.params import load_params, validate_seeds
from hw1.report_inputs import data_note, load_data_summary, load_report_values
from hw1.runs import RunId
from hw1.tables import (
    benchmark_table,
    build_tables,
    load_benchmark_values,
    render_markdown,
    summary,
)


def main() -> None:
    params = load_params()
    seeds = validate_seeds(params)
    report = load_report_values()
    data = load_data_summary()
    # everything is read and checked before the first file is written
    tables = build_tables(params, report, data)
    tables.append(benchmark_table(params, load_benchmark_values(), report, data))
    headline = summary([RunId.parse(run) for run in report["runs"]], seeds)
    claims = check_claims(seeds)
    note = data_note(data, report["data"])
    with transaction():  # every table and metric, or none
        for table in tables:
            write_csv(Path("reports/tables") / table.csv_name, table.csv_rows)
        write_text("reports/tables.md", render_markdown(tables))
        write_json("metrics/summary.json", headline)
        write_text("reports/claims.md", render_claims(claims, note))
        write_json("metrics/claims.json", claims_metrics(claims))
    held = ", ".join(f"{c.claim.id} {c.holds}/{len(seeds)}" for c in claims)
    print(f"Wrote reports/tables.md, reports/tables/table1-{len(tables) - 1}.csv and "
          f"benchmark.csv, "
          f"metrics/summary.json, reports/claims.md and metrics/claims.json over seeds "
          f"{', '.join(map(str, seeds))} ({note})\nClaims hold in: {held}")


if __name__ == "__main__":
    run_stage(main, "tables")
