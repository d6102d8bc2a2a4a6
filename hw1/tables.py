"""The report's Tables 1-6 beside the reproduced numbers, and the combined headline metrics.

Tables 1, 2, 4, 5 and 6 set each value the report gives (``reports/report_values.yaml``, the
only place its numbers live) beside the one the pipeline reproduced and their difference. A run
trains once per seed of params.yaml's ``seeds`` (``metrics/seeds/<run>/<seed>.json``): with one
seed a reproduced value is that seed's; with several it is their mean ± sample sd (n), and the
difference says where the report's value falls among the seeds (its z-score and whether it lies
in their range), so a gap the seeds' own spread explains is not read as a failure to reproduce.
Table 3 sets the report's default hyperparameters beside params.yaml's ``train``. Rows name the
params their run actually used; a run whose params differ from the report's says so, a run that
diverged says in which seed and at which epoch, and every table names the data it came from, so
a number from the synthetic stand-in, a changed run or a diverged one is never read as a
like-for-like comparison. A value a run could not measure (the report's test subset, where the
data has too few test images of a class) is shown as missing, with the reason its metrics give.

The benchmark table sets every run's ACC and AUC on the official test split (all 1,000 images)
below the MedMNIST v2 benchmark's baselines (``reports/benchmark_values.yaml``, with their
source and protocol); docs/protocols.md says why the report's numbers are not comparable with
them.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hw1.params import read_yaml, validate_seeds
from hw1.report_inputs import (
    ReportInputError,
    data_note,
    format_params,
    load_seeds,
    missing_reason,
    same_value,
    seed_column,
    split_params,
)
from hw1.runs import RunId, pipeline_runs, run_params


@dataclass(frozen=True)
class Metric:
    """One compared column: a key of a run's metrics file and of report_values.yaml."""
    key: str
    header: str
    best: str | None = None     # "max" or "min": the value the report marks in bold
    digits: int = 4


@dataclass(frozen=True)
class TableSpec:
    """One of the report's comparison tables: its rows (report's label, run) and columns."""
    number: int
    title: str
    row_header: str
    rows: tuple[tuple[str, RunId], ...]
    metrics: tuple[Metric, ...]
    note: str = ""


@dataclass
class Table:
    """A table ready to write: Markdown cells for reading, plain CSV rows for tools. ``number``
    is the report's table number; a table of the pipeline's own has none but a ``name``."""
    number: int | None
    title: str
    header: list[str]
    cells: list[list[str]]
    csv_rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def heading(self) -> str:
        """``Table 2: <title>``, or ``Benchmark: <title>`` for the table named benchmark."""
        label = f"Table {self.number}" if self.number is not None else self.name.capitalize()
        return f"{label}: {self.title}"

    @property
    def csv_name(self) -> str:
        """Its file in reports/tables/: ``table2.csv``, ``benchmark.csv``."""
        return f"table{self.number}.csv" if self.number is not None else f"{self.name}.csv"


TEST = Metric("test_acc", "Test acc.")
LAST_VAL = Metric("val_acc", "Last val. acc.", best="max")
BEST_VAL = Metric("best_val_acc", "Best val. acc.", best="max")

_run = RunId.parse
TABLES: tuple[TableSpec, ...] = (
    TableSpec(1, "Test accuracy of every Question 1 classifier (NumPy)", "Classifier",
              (("perceptron", _run("q1/perceptron")),
               ("logistic regression, lr 0.01", _run("q1/logreg_lr1e-2")),
               ("logistic regression, lr 0.001", _run("q1/logreg_lr1e-3")),
               ("MLP", _run("q1/mlp"))),
              (TEST,)),
    TableSpec(2, "Final validation accuracy per learning rate (logistic regression, PyTorch)",
              "Learning rate",
              (("0.1", _run("q2/logreg_lr1e-1")), ("0.01", _run("q2/logreg_lr1e-2")),
               ("0.001", _run("q2/logreg_lr1e-3"))),
              (Metric("val_acc", "Final val. acc.", best="max"), TEST)),
    TableSpec(4, "Training time, batch size 16 vs 1024 (feed-forward network)", "Batch size",
              (("16", _run("train")), ("1024", _run("q2/ffn_bs1024"))),
              (Metric("train_seconds", "Time taken (s)", best="min", digits=2), TEST),
              "Times depend on the machine (and params `device`): compare the ratio of the two "
              "rows, not the seconds."),
    TableSpec(5, "Best and last validation accuracy per learning rate (feed-forward network)",
              "Learning rate",
              (("1", _run("q2/ffn_lr1")), ("0.1", _run("train")), ("0.01", _run("q2/ffn_lr1e-2")),
               ("0.001", _run("q2/ffn_lr1e-3"))),
              (BEST_VAL, LAST_VAL, TEST)),
    TableSpec(6, "Regularization: batch size 256, 150 epochs (feed-forward network)", "Model",
              (("Initial", _run("q2/ffn_bs256_e150")),
               ("L2 Regularization", _run("q2/ffn_bs256_e150_l2")),
               ("Dropout Regularization", _run("q2/ffn_bs256_e150_dropout"))),
              (BEST_VAL, LAST_VAL, TEST)),
)

# Table 3: the report's names for the default hyperparameters, in its order.
HYPERPARAMETERS: tuple[tuple[str, str], ...] = (
    ("Number of epochs", "epochs"), ("Learning rate", "lr"), ("Hidden size", "hidden_size"),
    ("Number of layers", "layers"), ("Dropout", "dropout"), ("Batch size", "batch_size"),
    ("Activation", "activation"), ("L2 Regularization", "l2_decay"), ("Optimizer", "optimizer"),
)
TABLE3_RUN = _run("train")


# --- params -----------------------------------------------------------------------------------

def params_mismatch(report_run: Mapping[str, Any], used: Mapping[str, Any]) -> list[str]:
    """Each way ``used`` differs from the report's run, e.g. ``"lr=0.05 (report: 0.01)"``.

    Only the params the report states or assumes are compared; an unstated one says so.
    """
    found = []
    for kind, label in (("params", "report"), ("assumed", "assumed, not stated in the report")):
        for key, expected in (report_run.get(kind) or {}).items():
            got = used.get(key, "<missing>")
            if not same_value(got, expected):
                found.append(f"{key}={got} ({label}: {expected})")
    return found


# --- the seeds ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spread:
    """One metric of one run over its seeds: the values in seed order, their mean and spread."""
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float | None:
        """The sample standard deviation (ddof=1); None for one seed, where it is undefined."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else None

    def z(self, value: float) -> float | None:
        """How many sds ``value`` lies from the mean; None where the seeds do not spread."""
        return (value - self.mean) / self.sd if self.sd else None

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies in the seeds' [min, max]."""
        return min(self.values) <= value <= max(self.values)


def seed_values(run: RunId, seeds: Sequence[int], measured: Sequence[Mapping[str, Any]],
                key: str, context: str) -> Spread | None:
    """``seed_column`` as a Spread; None where a seed could not measure the value."""
    values = seed_column(run, seeds, measured, key, context)
    return None if None in values else Spread(values)


def _per_seed(seeds: Sequence[int], seed: int, text: str) -> str:
    """``text`` as it stands for the only seed, prefixed with its seed among several."""
    return text if len(seeds) == 1 else f"seed {seed} {text}"


def _data_mismatch(seeds: Sequence[int], measured: Sequence[Mapping[str, Any]],
                   data: Mapping[str, Any]) -> str | None:
    other = [_per_seed(seeds, seed, f"trained on {m['data_source']}")
             for seed, m in zip(seeds, measured)
             if m.get("data_source") not in (None, data.get("source"), data.get("dataset"))]
    return f"{', '.join(other)}, not on the data of metrics/data.json" if other else None


def _divergence(seeds: Sequence[int], measured: Sequence[Mapping[str, Any]]) -> str | None:
    """``"diverged at epoch 3 (training loss is nan)"`` for a run that diverged (with several
    seeds: ``"diverged in 1 of 3 seeds: seed 7 at epoch 3 (...)"``), else None."""
    where = [_per_seed(seeds, seed, f"at epoch {m.get('diverged_epoch')} "
                                    f"({m.get('diverged_reason')})")
             for seed, m in zip(seeds, measured) if m.get("diverged")]
    if not where:
        return None
    if len(seeds) == 1:
        return f"diverged {where[0]}"
    return f"diverged in {len(where)} of {len(seeds)} seeds: {', '.join(where)}"


# --- tables -----------------------------------------------------------------------------------

def _fmt(value: float | None, digits: int, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _best(values: Sequence[float | None], how: str | None) -> set[int]:
    known = [(v, i) for i, v in enumerate(values) if v is not None]
    if how is None or not known:
        return set()
    target = (max if how == "max" else min)(v for v, _ in known)
    return {i for v, i in known if v == target}


def _reproduced_cell(spread: Spread | None, digits: int) -> str:
    if spread is None:
        return "—"
    if spread.n == 1:
        return _fmt(spread.mean, digits)
    return f"{spread.mean:.{digits}f} ± {spread.sd:.{digits}f} ({spread.n})"


def _diff_cell(spread: Spread | None, theirs: float | None, diff: float | None,
               digits: int) -> str:
    """The difference, and with several seeds where the report's value falls among them."""
    if spread is None or theirs is None or diff is None:
        return "—"
    text = _fmt(diff, digits, signed=True)
    if spread.n == 1:
        return text
    z = spread.z(theirs)
    z_text = "z undefined (sd 0)" if z is None else f"z {z:+.2f}"
    inside = "in" if spread.covers(theirs) else "outside"
    return (f"{text} ({z_text}, {inside} [{min(spread.values):.{digits}f}, "
            f"{max(spread.values):.{digits}f}])")


def _spread_columns(key: str, spread: Spread | None, theirs: float | None) -> dict[str, Any]:
    """The CSV columns that only several seeds have: sd, n, the report's z and the values."""
    if spread is None:
        return {f"{key}_sd": None, f"{key}_n": 0, f"{key}_z": None, f"{key}_in_range": None,
                f"{key}_seeds": ""}
    z = None if theirs is None else spread.z(theirs)
    return {f"{key}_sd": spread.sd, f"{key}_n": spread.n,
            f"{key}_z": None if z is None else round(z, 4),
            f"{key}_in_range": None if theirs is None else spread.covers(theirs),
            f"{key}_seeds": ";".join(map(str, spread.values))}


def comparison_table(spec: TableSpec, params: Mapping[str, Any], report: Mapping[str, Any],
                     data: Mapping[str, Any], metrics_dir: str | Path = "metrics") -> Table:
    """One of Tables 1, 2, 4, 5, 6: per row and metric the report's value, ours (the mean over
    params.yaml's ``seeds``), the difference."""
    runs = [run for _, run in spec.rows]
    missing = [run.path for run in runs if run.path not in report["runs"]]
    if missing:
        raise ReportInputError(f"reports/report_values.yaml has no run {', '.join(missing)} "
                               f"(Table {spec.number})")
    seeds = validate_seeds(dict(params))
    several = len(seeds) > 1
    used = [run_params(params, run) for run in runs]
    measured = [load_seeds(run, seeds, metrics_dir) for run in runs]
    common, distinct = split_params(used)

    report_vals, ours = {}, {}
    for m in spec.metrics:
        report_vals[m.key] = [report["runs"][run.path].get(m.key) for run in runs]
        ours[m.key] = [seed_values(run, seeds, r, m.key, f"Table {spec.number}")
                       for run, r in zip(runs, measured)]
    best_report = {m.key: _best(report_vals[m.key], m.best) for m in spec.metrics}
    best_ours = {m.key: _best([None if s is None else s.mean for s in ours[m.key]], m.best)
                 for m in spec.metrics}

    header = [spec.row_header + " (report)", "Run", "Params used"]
    for m in spec.metrics:
        header += [f"{m.header} report", f"{m.header} reproduced", f"{m.header} diff"]
    header.append("Note")
    cells, csv_rows = [], []
    for i, (label, run) in enumerate(spec.rows):
        notes = []
        diverged = _divergence(seeds, measured[i])
        if diverged:
            notes.append(diverged)
        mismatch = params_mismatch(report["runs"][run.path], used[i])
        if mismatch:
            notes.append("params differ from the report's: " + "; ".join(mismatch))
        stale = _data_mismatch(seeds, measured[i], data)
        if stale:
            notes.append(stale)
        notes += [f"{m.header} not measured: {missing_reason(seeds, measured[i], m.key)}"
                  for m in spec.metrics if ours[m.key][i] is None]
        row = [label, f"`{run}`", format_params(distinct[i]) or "(common params)"]
        csv_row: dict[str, Any] = {"row": label, "run": run.path, "params": format_params(used[i])}
        if several:
            csv_row["seeds"] = ";".join(map(str, seeds))
        for m in spec.metrics:
            theirs, mine = report_vals[m.key][i], ours[m.key][i]
            diff = None if theirs is None or mine is None else round(mine.mean - theirs,
                                                                       m.digits)
            bold_theirs = "**" if i in best_report[m.key] else ""
            bold_mine = "**" if i in best_ours[m.key] else ""
            row += [f"{bold_theirs}{_fmt(theirs, m.digits)}{bold_theirs}" if theirs is not None
                    else "—",
                    f"{bold_mine}{_reproduced_cell(mine, m.digits)}{bold_mine}",
                    _diff_cell(mine, theirs, diff, m.digits)]
            csv_row.update({f"{m.key}_report": theirs,
                            f"{m.key}_reproduced": None if mine is None else mine.mean,
                            f"{m.key}_diff": diff})
            if several:
                csv_row.update(_spread_columns(m.key, mine, theirs))
        csv_row["best_report"] = ";".join(m.key for m in spec.metrics if i in best_report[m.key])
        csv_row["best_reproduced"] = ";".join(m.key for m in spec.metrics
                                              if i in best_ours[m.key])
        csv_row["note"] = "; ".join(notes)
        row.append("; ".join(notes) or "—")
        cells.append(row)
        csv_rows.append(csv_row)

    table_notes = [data_note(data, report["data"])]
    if common:
        table_notes.append(f"Params every row shares: {format_params(common)}.")
    if several:
        table_notes.append(
            f"Reproduced: the mean ± sample sd (n) over seeds {', '.join(map(str, seeds))}; "
            f"each seed's value is in reports/tables/table{spec.number}.csv. Diff: the mean - "
            f"the report, then where the report's value falls among the seeds: its z-score "
            f"(report - mean) / sd, and in or outside their [min, max].")
    if spec.note:
        table_notes.append(spec.note)
    if any(m.best for m in spec.metrics):
        table_notes.append("Bold: the best value of its column, as the report marks it"
                           + (" (reproduced: the best mean)." if several else "."))
    return Table(spec.number, spec.title, header, cells, csv_rows, table_notes)


def hyperparameter_table(params: Mapping[str, Any], report: Mapping[str, Any],
                         data: Mapping[str, Any]) -> Table:
    """Table 3: the report's default hyperparameters beside params.yaml's ``train``."""
    if TABLE3_RUN.path not in report["runs"]:
        raise ReportInputError(f"reports/report_values.yaml has no run '{TABLE3_RUN}' "
                               f"(Table 3)")
    theirs_all = report["runs"][TABLE3_RUN.path]["params"]
    ours_all = run_params(params, TABLE3_RUN)
    header = ["Hyperparameter", "params.yaml key", "Report", "params.yaml", "Difference"]
    cells, csv_rows = [], []
    for name, key in HYPERPARAMETERS:
        theirs, mine = theirs_all.get(key), ours_all.get(key, "<missing>")
        numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                      for v in (theirs, mine))
        if same_value(mine, theirs):
            diff = "same"
        elif numeric:
            diff = f"{mine - theirs:+g}"
        else:
            diff = "differs"
        cells.append([name, f"`{TABLE3_RUN}.{key}`", str(theirs), str(mine), diff])
        csv_rows.append({"hyperparameter": name, "key": f"{TABLE3_RUN}.{key}",
                         "report": theirs, "params": mine, "difference": diff})
    return Table(3, "Default hyperparameters of the feed-forward network (params.yaml `train`)",
                 header, cells, csv_rows, [data_note(data, report["data"])])


def build_tables(params: Mapping[str, Any], report: Mapping[str, Any],
                 data: Mapping[str, Any], metrics_dir: str | Path = "metrics") -> list[Table]:
    """Tables 1-6 in the report's order."""
    tables = [comparison_table(spec, params, report, data, metrics_dir) for spec in TABLES]
    tables.append(hyperparameter_table(params, report, data))
    return sorted(tables, key=lambda t: t.number)


# --- outputs ----------------------------------------------------------------------------------

def render_markdown(tables: Sequence[Table]) -> str:
    """All tables as one Markdown document (GitHub-flavoured tables)."""
    lines = ["# The report's tables, reproduced",
             "",
             "Generated by the `tables` stage (`python -m stages.tables`) from `metrics/` and "
             "`params.yaml`; the report's numbers come from `reports/report_values.yaml`, the "
             "benchmark's from `reports/benchmark_values.yaml`. Diff = reproduced - report.",
             ""]
    for table in tables:
        lines += [f"## {table.heading}", ""]
        lines += [note for note in table.notes for note in (note, "")]
        lines.append("| " + " | ".join(table.header) + " |")
        lines.append("|" + "|".join("---" for _ in table.header) + "|")
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                  for row in table.cells]
        lines.append("")
    return "\n".join(lines)


def summary(runs: Sequence[RunId], seeds: Sequence[int],
            metrics_dir: str | Path = "metrics") -> dict[str, dict]:
    """Headline numbers per run under short keys, for `dvc metrics diff` and `dvc exp show`: the
    means over ``seeds`` of the report's test accuracy (``test``), the last and best validation
    accuracy, and ACC and AUC on the official test split (``official_acc``, ``official_auc``),
    with their sample sds and ``n`` beside them only for several seeds; a value a run could not
    measure is null; ``diverged: true`` for a run that diverged in any seed."""
    short = {"test": "test_acc", "val": "val_acc", "best_val": "best_val_acc",
             "official_acc": "official_acc", "official_auc": "official_auc"}
    out = {}
    for run in runs:
        measured = load_seeds(run, seeds, metrics_dir)
        spreads = {k: seed_values(run, seeds, measured, key, "metrics/summary.json")
                   for k, key in short.items()}
        entry: dict[str, Any] = {k: None if s is None else round(s.mean, 4)
                                 for k, s in spreads.items()}
        if len(seeds) > 1:
            entry.update({f"{k}_sd": None if s is None else round(s.sd, 4)
                          for k, s in spreads.items()})
            entry["n"] = len(seeds)
        if any(m.get("diverged") for m in measured):  # only then: a column in `dvc exp show`
            entry["diverged"] = True
        out[run.metric] = entry
    return out


# --- the MedMNIST v2 benchmark ------------------------------------------------------------------

BENCHMARK_VALUES = Path("reports/benchmark_values.yaml")
_BENCHMARK_TEXT = ("dataset", "source", "protocol", "test_set", "auc_from")


def load_benchmark_values(path: str | Path = BENCHMARK_VALUES) -> dict[str, Any]:
    """The published baselines on OctMNIST's official test split, with their source and
    protocol (``reports/benchmark_values.yaml``)."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path} not found: it holds the MedMNIST v2 benchmark's values "
                               f"the benchmark table compares against")
    try:
        values = read_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ReportInputError(f"{path} is not valid YAML: {err}") from None
    fields = ", ".join(_BENCHMARK_TEXT)
    if not isinstance(values, dict) or any(not isinstance(values.get(k), str)
                                           for k in _BENCHMARK_TEXT):
        raise ReportInputError(f"{path} must give {fields} as text, and models")
    models = values.get("models")
    if not isinstance(models, list) or not models or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str)
            and all(isinstance(m.get(k), numbers.Real) for k in ("acc", "auc")) for m in models):
        raise ReportInputError(f"{path}: models must be a list of entries with name, acc, auc")
    return values


def benchmark_table(params: Mapping[str, Any], benchmark: Mapping[str, Any],
                    report: Mapping[str, Any], data: Mapping[str, Any],
                    metrics_dir: str | Path = "metrics") -> Table:
    """Every run's ACC and AUC on the official test split (the mean over params.yaml's
    ``seeds``) below the MedMNIST v2 benchmark's baselines, with both protocols in the notes."""
    seeds = validate_seeds(dict(params))
    several = len(seeds) > 1
    runs = pipeline_runs(params)
    used = [run_params(params, run) for run in runs]
    common, distinct = split_params(used)
    header = ["Model", "Run", "Params used", "ACC", "AUC", "Note"]
    cells, csv_rows = [], []

    def csv_row(row: str, source: str, run: str, params_text: str, acc: Any, auc: Any,
                note: str, spreads: tuple[Spread | None, Spread | None] = (None, None)) -> dict:
        out = {"row": row, "source": source, "run": run, "params": params_text,
               "acc": acc, "auc": auc}
        if several:
            for key, spread in zip(("acc", "auc"), spreads):
                out |= {f"{key}_sd": None if spread is None else spread.sd,
                        f"{key}_seeds": "" if spread is None else ";".join(map(str,
                                                                               spread.values))}
            out["n"] = len(seeds) if source == "reproduced" else None
        return {**out, "note": note}

    for model in benchmark["models"]:
        note = model.get("note") or ""
        cells.append([model["name"], "MedMNIST v2 (benchmark)", "—", f"{model['acc']:.3f}",
                      f"{model['auc']:.3f}", note or "—"])
        csv_rows.append(csv_row(model["name"], "benchmark", "", "", model["acc"], model["auc"],
                                note))
    for run, cfg, own in zip(runs, used, distinct):
        measured = load_seeds(run, seeds, metrics_dir)
        acc, auc = (seed_values(run, seeds, measured, key, "the benchmark table")
                    for key in ("official_acc", "official_auc"))
        notes = [text for text in (_divergence(seeds, measured),
                                   _data_mismatch(seeds, measured, data)) if text]
        auc_from = {m.get("auc_from") for m in measured} - {benchmark["auc_from"]}
        if auc_from:
            notes.append(f"AUC from {', '.join(sorted(map(str, auc_from)))}, not "
                         f"{benchmark['auc_from']}")
        notes += [f"{name} not measured: {missing_reason(seeds, measured, key)}"
                  for name, key, spread in (("ACC", "official_acc", acc),
                                            ("AUC", "official_auc", auc)) if spread is None]
        label = str(cfg.get("model", run))
        shown = {k: v for k, v in own.items() if k != "model"}  # the Model column has it
        cells.append([label, f"`{run}`", format_params(shown) or "(common params)",
                      _reproduced_cell(acc, 4), _reproduced_cell(auc, 4),
                      "; ".join(notes) or "—"])
        csv_rows.append(csv_row(label, "reproduced", run.path, format_params(cfg),
                                None if acc is None else acc.mean,
                                None if auc is None else auc.mean, "; ".join(notes),
                                (acc, auc)))

    n_test = data.get("sizes", {}).get("test")
    n_test = f"{n_test:,}" if isinstance(n_test, int) else "?"
    notes = [data_note(data, report["data"])]
    if data.get("dataset") != benchmark["dataset"]:
        notes.append(f"Not {benchmark['dataset']}: the reproduced rows cannot be compared with "
                     f"the benchmark's.")
    notes += [f"Benchmark: {benchmark['source']}; {benchmark['test_set']}.",
              f"Benchmark protocol: {benchmark['protocol']}",
              f"Reproduced: each run as params.yaml trains it (the report's protocol), its model "
              f"after the last epoch scored on the whole official test split ({n_test} images) "
              f"with ACC and AUC as `medmnist.evaluator` computes them "
              f"(AUC on {benchmark['auc_from']}, "
              f"as the benchmark's, except where a row says otherwise)."]
    if several:
        notes.append(f"ACC and AUC: the mean ± sample sd (n) over seeds "
                     f"{', '.join(map(str, seeds))}; each seed's value is in "
                     f"reports/tables/benchmark.csv.")
    if common:
        notes.append(f"Params every reproduced row shares: {format_params(common)}.")
    return Table(None, "ACC and AUC on the official test split, beside the MedMNIST v2 "
                       "benchmark", header, cells, csv_rows, notes, name="benchmark")
