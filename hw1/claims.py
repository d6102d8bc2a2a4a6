"""The report's conclusions as claims, each checked seed by seed: "holds in k of n seeds".

The report draws its conclusions from one run per configuration, some from differences as small
as 0.0002. Each claim here is one conclusion written as comparisons between runs, each on one
metric of the runs' metrics files (``higher`` above ``lower``). A claim holds in a seed when every
one of its comparisons holds in that seed's metrics, strictly: a tie counts as not holding, as
the report's words ("better", "longer", "best") are strict. Checked over every seed of
params.yaml's ``seeds``, a claim that holds in 2 of 5 seeds is one that reseeding alone can
overturn.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw1.report_inputs import load_seeds, missing_reason, seed_column
from hw1.runs import RunId


@dataclass(frozen=True)
class Comparison:
    """``higher``'s ``metric`` is strictly greater than ``lower``'s."""
    metric: str
    higher: RunId
    lower: RunId

    def holds(self, values: Mapping[tuple[RunId, str], float]) -> bool:
        """On one seed's values, keyed by (run, metric)."""
        return values[self.higher, self.metric] > values[self.lower, self.metric]


@dataclass(frozen=True)
class Claim:
    """One conclusion of the report: where it is drawn, its words, and how it is checked."""
    id: str
    source: str
    wording: str
    comparisons: tuple[Comparison, ...]

    @property
    def compared(self) -> list[tuple[RunId, str]]:
        """Every (run, metric) the claim reads, in order of first use."""
        return list(dict.fromkeys(pair for c in self.comparisons
                                  for pair in ((c.higher, c.metric), (c.lower, c.metric))))

    def broken(self, values: Mapping[tuple[RunId, str], float]) -> list[Comparison]:
        """The comparisons that do not hold on one seed's values (none: the claim holds)."""
        return [c for c in self.comparisons if not c.holds(values)]

    def checked_as(self) -> str:
        """``"test_acc: q1/mlp > q1/logreg_lr1e-2, ...; train_seconds: train > ..."``."""
        by_metric: dict[str, list[str]] = {}
        for c in self.comparisons:
            by_metric.setdefault(c.metric, []).append(f"{c.higher} > {c.lower}")
        return "; ".join(f"{metric}: {', '.join(pairs)}" for metric, pairs in by_metric.items())


def _beats(metric: str, higher: str, *lower: str) -> tuple[Comparison, ...]:
    return tuple(Comparison(metric, RunId.parse(higher), RunId.parse(run)) for run in lower)


_E150, _L2, _DROPOUT = "q2/ffn_bs256_e150", "q2/ffn_bs256_e150_l2", "q2/ffn_bs256_e150_dropout"
CLAIMS: tuple[Claim, ...] = (
    Claim("q1_order", "Question 1, Table 1",
          "MLP > logistic regression (both learning rates) > perceptron on test accuracy",
          _beats("test_acc", "q1/mlp", "q1/logreg_lr1e-2", "q1/logreg_lr1e-3")
          + _beats("test_acc", "q1/logreg_lr1e-2", "q1/perceptron")
          + _beats("test_acc", "q1/logreg_lr1e-3", "q1/perceptron")),
    Claim("table2_lr1e-2_best", "Table 2",
          "learning rate 0.01 gives the best final validation accuracy",
          _beats("val_acc", "q2/logreg_lr1e-2", "q2/logreg_lr1e-1", "q2/logreg_lr1e-3")),
    Claim("table4_batch16_vs_1024", "Table 4",
          "batch size 16 is more accurate (test) than 1024 and takes longer to train",
          _beats("test_acc", "train", "q2/ffn_bs1024")
          + _beats("train_seconds", "train", "q2/ffn_bs1024")),
    # "0.001 between them" follows from 0.1 above it and it above 1, so it is not repeated.
    Claim("table5_lr_order", "Table 5",
          "learning rate 0.1 is best and 1 worst in best validation accuracy, 0.001 between",
          _beats("best_val_acc", "train", "q2/ffn_lr1e-2", "q2/ffn_lr1e-3")
          + _beats("best_val_acc", "q2/ffn_lr1e-2", "q2/ffn_lr1")
          + _beats("best_val_acc", "q2/ffn_lr1e-3", "q2/ffn_lr1")),
    Claim("table6_overfitting", "Table 6",
          "without regularization the best validation accuracy is the highest of the three "
          "and the last the lowest (overfitting)",
          _beats("best_val_acc", _E150, _L2, _DROPOUT)
          + _beats("val_acc", _L2, _E150) + _beats("val_acc", _DROPOUT, _E150)),
    Claim("table6_dropout_best_test", "Table 6",
          "dropout gives the best test accuracy of the three",
          _beats("test_acc", _DROPOUT, _E150, _L2)),
)


@dataclass(frozen=True)
class ClaimResult:
    """One claim checked over the seeds: the comparisons each failing seed breaks, and the
    seeds where a value it compares was not measured (``unchecked``: seed -> why)."""
    claim: Claim
    seeds: tuple[int, ...]
    failures: dict[int, list[str]]
    unchecked: dict[int, str] = field(default_factory=dict)

    @property
    def holds(self) -> int:
        """In how many seeds the claim holds."""
        return len(self.seeds) - len(self.failures) - len(self.unchecked)


def check_claims(seeds: Sequence[int], metrics_dir: str | Path = "metrics",
                 claims: Sequence[Claim] = CLAIMS) -> list[ClaimResult]:
    """Each claim checked on each seed's metrics (``metrics/seeds/<run>/<seed>.json``)."""
    measured: dict[RunId, list[dict[str, Any]]] = {}
    results = []
    for claim in claims:
        values = {}
        for run, metric in claim.compared:
            if run not in measured:
                measured[run] = load_seeds(run, seeds, metrics_dir)
            values[run, metric] = seed_column(run, seeds, measured[run], metric,
                                              f"claim {claim.id}")
        failures, unchecked = {}, {}
        for i, seed in enumerate(seeds):
            one_seed = {pair: vals[i] for pair, vals in values.items()}
            lacking = [f"{metric} of {run} not measured ("
                       f"{missing_reason([seed], [measured[run][i]], metric)})"
                       for (run, metric), value in one_seed.items() if value is None]
            if lacking:
                unchecked[seed] = "; ".join(lacking)
                continue
            broken = claim.broken(one_seed)
            if broken:
                failures[seed] = [f"{c.metric} of {c.higher} {one_seed[c.higher, c.metric]:g}"
                                  f" ≤ {c.lower} {one_seed[c.lower, c.metric]:g}"
                                  for c in broken]
        results.append(ClaimResult(claim, tuple(seeds), failures, unchecked))
    return results


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def render_claims(results: Sequence[ClaimResult], data_note: str) -> str:
    """``reports/claims.md``: per claim, in how many seeds it holds and where it fails."""
    seeds = results[0].seeds if results else ()
    lines = ["# The report's conclusions, checked seed by seed",
             "",
             "Generated by the `tables` stage (`python -m stages.tables`) from the metrics of "
             f"every seed of params.yaml's `seeds` ({', '.join(map(str, seeds))}). Each claim "
             "is one conclusion of the report written as comparisons between runs; it holds in "
             "a seed when every comparison holds strictly in that seed's metrics (a tie counts "
             "as not holding). `metrics/claims.json` holds the counts.",
             "",
             data_note,
             "",
             "| Claim | Where | The report concludes | Checked as | Holds in | Failing seeds |",
             "|---|---|---|---|---|---|"]
    for r in results:
        failing = ", ".join(map(str, r.failures)) or "—"
        unchecked = f" ({len(r.unchecked)} unchecked)" if r.unchecked else ""
        lines.append(f"| `{r.claim.id}` | {r.claim.source} | {r.claim.wording} | "
                     f"{r.claim.checked_as()} | {r.holds} of {_seeds(len(r.seeds))}"
                     f"{unchecked} | {failing} |")
    failed = [r for r in results if r.failures]
    if failed:
        lines += ["", "## Where a claim fails", ""]
        lines += [f"- `{r.claim.id}`, seed {seed}: {'; '.join(broken)}"
                  for r in failed for seed, broken in r.failures.items()]
    not_checked = [r for r in results if r.unchecked]
    if not_checked:
        lines += ["", "## Where a claim could not be checked", ""]
        lines += [f"- `{r.claim.id}`, seed {seed}: {why}"
                  for r in not_checked for seed, why in r.unchecked.items()]
    return "\n".join(lines) + "\n"


def claims_metrics(results: Sequence[ClaimResult]) -> dict[str, dict[str, int]]:
    """``metrics/claims.json``: ``{claim id: {"holds": k, "seeds": n}}``, with ``"unchecked": m``
    for a claim some seeds could not check."""
    return {r.claim.id: {"holds": r.holds, "seeds": len(r.seeds),
                         **({"unchecked": len(r.unchecked)} if r.unchecked else {})}
            for r in results}
