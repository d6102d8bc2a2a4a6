"""Question 3's report: ``reports/boolean.md`` with Tables 7-9 beside the report's printed
entries (``question3`` of ``reports/report_values.yaml``, their only home), and Figure 11.

The computations and checks are ``hw1.boolean``'s; this module sets their results out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

# Figure (not pyplot): no global state and no GUI backend; savefig renders with Agg.
from matplotlib.figure import Figure

from hw1.boolean import NETWORKS, Study, cases, hypercube, interval_f, relu_network, sign_network
from hw1.errors import UserError
from hw1.outputs import atomic_path
from hw1.params import read_yaml

REPORT_VALUES = Path("reports/report_values.yaml")
SECTION = "question3"
REGIONS = ("inside", "below", "above")   # sum in [A, B], sum < A, sum > B
REGION_LABELS = {"inside": "A ≤ Σx ≤ B", "below": "Σx < A", "above": "Σx > B"}
TABLE8_COLUMNS = ("h1", "h2", "b2", "z3", "f")
TABLE9_COLUMNS = ("h1", "h2", "z3")


class ReportValuesError(UserError):
    """report_values.yaml lacks Question 3's printed entries or holds malformed ones."""


@dataclass(frozen=True)
class PrintedTables:
    """The report's Tables 7-9 as printed (``question3`` of reports/report_values.yaml)."""
    table7: dict[tuple[int, int], int]              # (x1, x2) -> f, D=2, A=0, B=1
    table8: dict[str, dict[str, int]]               # region -> h1, h2, b2, z3, f
    table9: dict[str, dict[str, tuple[int, ...]]]   # region -> coefficients of (Σx, A, B, 1)


# --------------------------------------------------------------------------- printed values

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_table7(rows: Any) -> bool:
    return (isinstance(rows, list)
            and all(isinstance(r, list) and len(r) == 3 and all(_is_int(v) and v in (1, -1)
                                                                for v in r) for r in rows)
            and sorted((r[0], r[1]) for r in rows) == [(-1, -1), (-1, 1), (1, -1), (1, 1)])


def _is_affine(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(map(_is_int, v))


def _entry(path: Path, q3: dict[str, Any], key: str, ok: Callable[[Any], bool],
           expected: str) -> Any:
    """The value at ``question3.<key>`` (dotted), checked by ``ok``."""
    node: Any = q3
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ReportValuesError(f"{path} has no {SECTION}.{key}: add it ({expected}) as "
                                    f"the report prints it; the file's comments say how")
        node = node[part]
    if not ok(node):
        raise ReportValuesError(f"{path}: {SECTION}.{key} must be {expected}, got {node!r}; "
                                f"copy it from the report (the file's comments say how)")
    return node


def load_printed_tables(path: str | Path = REPORT_VALUES) -> PrintedTables:
    """Tables 7-9 as the report prints them, or a ReportValuesError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ReportValuesError(f"{path} not found: it holds the report's printed Tables 7-9 "
                                f"that reports/boolean.md compares against")
    try:
        values = read_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ReportValuesError(f"{path} is not valid YAML: {err}") from err
    q3 = values.get(SECTION) if isinstance(values, dict) else None
    if not isinstance(q3, dict):
        found = "it has none" if q3 is None else f"found {q3!r}"
        raise ReportValuesError(f"{path} needs a mapping '{SECTION}' ({found}): the report's "
                                f"printed Tables 7-9 under table7, table8 and table9")
    rows = _entry(path, q3, "table7", _is_table7, "four rows [x1, x2, f] of ±1, one per input")
    return PrintedTables(
        {(x1, x2): f for x1, x2, f in rows},
        {r: {c: _entry(path, q3, f"table8.{r}.{c}", _is_int, "an integer")
             for c in TABLE8_COLUMNS} for r in REGIONS},
        {r: {c: tuple(_entry(path, q3, f"table9.{r}.{c}", _is_affine,
                             "four integers: the coefficients of (Σx, A, B, 1)"))
             for c in TABLE9_COLUMNS} for r in REGIONS})


# --------------------------------------------------------------------------- Tables 7-9

def table7_rows(printed: PrintedTables) -> list[tuple[int, int, int, int, int, int]]:
    """(x1, x2, f computed, f report, sign network, ReLU network) for D=2, A=0, B=1."""
    X = hypercube(2)
    f = interval_f(X, 0, 1)
    y_sign, y_relu = sign_network(2, 0, 1)(X), relu_network(2, 0, 1)(X)
    return [(int(x[0]), int(x[1]), int(f[i]), printed.table7[(int(x[0]), int(x[1]))],
             int(y_sign[i]), int(y_relu[i])) for i, x in enumerate(X)]


def network_tables(max_d: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Per network and region, the hidden activations and the output over every case and input:
    the set of values each column takes (Table 8) and the affine expression in (Σx, A, B, 1)
    that reproduces all of them exactly (Table 9), or None if none is determined by the data.

    The fit is streamed: for each column the integer normal equations G = Σ dᵀd, r = Σ dᵀv and
    q = Σ v² are accumulated, so the integer solution c fits exactly iff q − 2c·r + cᵀGc = 0,
    with no need to hold every row.
    """
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for D, A, B in cases(max_d):
        X = hypercube(D)
        s = X.sum(axis=1)
        region = np.where(s < A, "below", np.where(s > B, "above", "inside"))
        design = np.column_stack([s, np.full_like(s, A), np.full_like(s, B),
                                  np.ones_like(s)]).astype(np.int64)
        for name, build in NETWORKS.items():
            net = build(D, A, B)
            _, h, z3 = net.forward(X)
            cols = {"h1": h[:, 0], "h2": h[:, 1], "z3": z3, "y": net(X),
                    "f": interval_f(X, A, B)}
            for reg in REGIONS:
                rows = region == reg
                if not rows.any():
                    continue
                d = design[rows]
                a = acc.setdefault((name, reg), {"G": np.zeros((4, 4), np.int64), "cols": {}})
                a["G"] += d.T @ d
                for key, col in cols.items():
                    v = col[rows]
                    vi = np.rint(v).astype(np.int64)
                    if not np.array_equal(vi, v):
                        raise AssertionError(f"{name} {key} is not an integer on the hypercube")
                    c = a["cols"].setdefault(key, {"r": np.zeros(4, np.int64), "q": 0,
                                                   "values": set()})
                    c["r"] += d.T @ vi
                    c["q"] += int(vi @ vi)
                    c["values"].update(vi.tolist())
    tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in NETWORKS}
    for (name, reg), a in acc.items():
        tables[name][reg] = {key: {"values": sorted(c["values"]),
                                   "expr": _exact_affine(a["G"], c["r"], c["q"])}
                             for key, c in a["cols"].items()}
    return tables


def _exact_affine(G: np.ndarray, r: np.ndarray, q: int) -> tuple[int, ...] | None:
    if np.linalg.matrix_rank(G.astype(float)) < len(G):
        return None
    c = np.rint(np.linalg.solve(G.astype(float), r.astype(float))).astype(np.int64)
    exact = q - 2 * int(c @ r) + int(c @ G @ c) == 0
    return tuple(int(v) for v in c) if exact else None


def render_affine(coef: tuple[int, ...] | None) -> str:
    """(2, -2, 0, 1) -> '2Σx − 2A + 1'."""
    if coef is None:
        return "(no affine expression determined)"
    out = ""
    for c, sym in zip(coef, ("Σx", "A", "B", "")):
        if c:
            sep = ("−" if c < 0 else "") if not out else (" − " if c < 0 else " + ")
            out += f"{sep}{'' if abs(c) == 1 and sym else abs(c)}{sym}"
    return out or "0"


def _num(v: float) -> str:
    return f"{v:+.0f}" if v else "0"


def _values(entry: dict[str, Any]) -> str:
    vals = entry["values"]
    return _num(vals[0]) if len(vals) == 1 else render_affine(entry["expr"])


# --------------------------------------------------------------------------- report sections

def _intro(study: Study) -> list[str]:
    return [
        "# Question 3: the Boolean interval function and the hand-built networks, verified",
        "",
        f"Generated by `python -m stages.boolean` with `boolean.max_d` = {study.max_d}, "
        f"`boolean.perturbations` = {study.perturbations}, `seed` = {study.seed}. "
        f"Every (D, A, B) with 1 ≤ D ≤ {study.max_d} and −D ≤ A ≤ B ≤ D: "
        f"**{study.cases} cases, {study.inputs:,} inputs**, each checked for both networks "
        f"({study.cases * len(NETWORKS)} case-network pairs).",
    ]


def _checks(study: Study) -> list[str]:
    fails = study.failures
    return [
        "## Checks",
        "",
        "| check | failing pairs |",
        "|---|---|",
        f"| both networks equal f on all 2^D inputs | {fails['exhaustive']} |",
        f"| L1 margin certified from the weights ≥ 1/2 (smallest found: {study.margin:g}) "
        f"| {fails['margin']} |",
        f"| no output changes under {study.perturbations} random perturbations with "
        f"‖t·v‖₁ < 1/2 (exact, dyadic) and the 2D corners ±(1/2 − 2⁻¹⁰)·eᵢ, at all 2^D inputs "
        f"| {fails['within_margin']} |",
        "| under those, z3 stays exactly as it was at inputs inside [A, B] (the cancellation "
        f"of Section 3.3) | {fails['cancellation']} |",
        f"| a corner ±(1/2 + 2⁻¹⁰)·eᵢ changes some output (the margin is tight) "
        f"| {fails['tightness']} |",
        "",
        f"**Failures: {study.total_failures}.**",
    ]


def _table7(printed: PrintedTables) -> list[str]:
    return [
        "## Table 7 and Figure 11 (D = 2, A = 0, B = 1)",
        "",
        "| x₁ | x₂ | f(x) computed | f(x) report | sign-unit network | ReLU network |",
        "|---|---|---|---|---|---|",
        *(f"| {' | '.join(_num(v) for v in row)} |" for row in table7_rows(printed)),
        "",
        "![Figure 11](figures/fig11_boolean.png)",
    ]


def _single_perceptron(study: Study) -> list[str]:
    out = ["## Single perceptron", ""]
    report_case = study.separability.get((2, 0, 1))   # absent when max_d < 2
    if report_case is not None:
        out += [
            f"The report's case D=2, A=0, B=1 is **not** linearly separable: along the sums "
            f"−2, 0, 2 the labels change sign {report_case.label_changes} times, and the "
            f"midpoint (0, 0) of the two positive points (+1, −1), (−1, +1) is also the "
            f"midpoint of the two negative points (+1, +1), (−1, −1) (λ = {report_case.lam:g}), "
            f"so any line would put it on both sides.",
            "",
        ]
    sep = study.separable_count()
    return out + [
        "The decision for every case: f depends on Σx only and is symmetric in the "
        "coordinates, so averaging any separator over all permutations of the coordinates gives "
        "one with equal weights; f is separable iff its labels along the reachable sums "
        "−D, −D+2, …, D change sign at most once. Separable cases carry a weight vector found "
        "by the perceptron algorithm and verified (strictly) on all 2^D inputs; the others "
        "carry a computed witness: centroids of inputs with sums s_lo < A ≤ s_in ≤ B < s_hi "
        "such that centroid(s_in) = λ·centroid(s_lo) + (1−λ)·centroid(s_hi), a point in both "
        "classes' convex hulls.",
        "",
        f"**{sep} of {study.cases} cases are separable** and {study.cases - sep} are not. "
        "So the report's conclusion holds as \"not for every (A, B)\", not as \"never\": f is a "
        "single perceptron exactly when no reachable sum lies below A, or none above B, or none "
        "in [A, B].",
        "",
        *_separability_by_d(study),
        *_d2_evidence(study),
    ]


def _separability_by_d(study: Study) -> list[str]:
    out = ["| D | cases | separable | not separable | most perceptron updates |",
           "|---|---|---|---|---|"]
    for D in range(1, study.max_d + 1):
        rows = [s for (d, _, _), s in study.separability.items() if d == D]
        seps = [s for s in rows if s.separable]
        out.append(f"| {D} | {len(rows)} | {len(seps)} | {len(rows) - len(seps)} | "
                   f"{max(s.updates for s in seps)} |")
    return out


def _d2_evidence(study: Study) -> list[str]:
    if study.max_d < 2:
        return []
    out = ["", "Every case of D = 2, with its evidence:", "",
           "| A | B | separable | evidence |", "|---|---|---|---|"]
    for (D, A, B), s in study.separability.items():
        if D != 2:
            continue
        if s.separable:
            w = ", ".join(f"{v:g}" for v in s.weights)
            ev = f"perceptron: w = ({w}), b = {s.bias:g} after {s.updates} updates"
        else:
            ev = f"sums {s.witness} (below, inside, above), λ = {s.lam:g}"
        out.append(f"| {A} | {B} | {'yes' if s.separable else 'no'} | {ev} |")
    return out


def _table8(sign_table: dict[str, dict[str, Any]], printed: PrintedTables) -> list[str]:
    b2 = sign_network(1, 0, 0).b2
    out = ["## Table 8: sign hidden units, output ŷ = z3 = h1 + h2 − 1", "",
           "Values over every case and input in each interval (a single value each).", "",
           "| interval | h1 | h2 | b₁⁽²⁾ | ŷ = z3 | f(x) | as in the report |",
           "|---|---|---|---|---|---|---|"]
    for region in REGIONS:
        e = sign_table[region]
        got = {**{k: e[k]["values"] for k in ("h1", "h2", "z3", "f")}, "b2": [b2]}
        same = all(len(got[k]) == 1 and got[k][0] == v for k, v in printed.table8[region].items())
        out.append(f"| {REGION_LABELS[region]} | {_values(e['h1'])} | {_values(e['h2'])} | "
                   f"{_num(b2)} | {_values(e['z3'])} | {_values(e['f'])} | "
                   f"{'yes' if same else 'NO'} |")
    return out


def _table9(relu_table: dict[str, dict[str, Any]], printed: PrintedTables) -> list[str]:
    out = ["## Table 9: ReLU hidden units, output h3 = sign(z3), z3 = −h1 − h2 + 2(B−A) + 2",
           "", "Each entry is the affine expression in (Σx, A, B) that reproduces every case and "
           "input of the interval exactly, solved from the computed values.", "",
           "| interval | h1 | h2 | z3 | h3 | f(x) | the report's entry where it differs |",
           "|---|---|---|---|---|---|---|"]
    mismatches = []
    for region in REGIONS:
        e, report = relu_table[region], printed.table9[region]
        diffs = [f"{k} = {render_affine(report[k])}" for k in TABLE9_COLUMNS
                 if e[k]["expr"] != report[k]]
        mismatches += [(region, d) for d in diffs]
        out.append(f"| {REGION_LABELS[region]} | {_values(e['h1'])} | {_values(e['h2'])} | "
                   f"{_values(e['z3'])} | {_values(e['y'])} | {_values(e['f'])} | "
                   f"{'; '.join(diffs) or '—'} |")
    for region, diff in mismatches:
        out += ["", f"For {REGION_LABELS[region]} the report prints {diff}; the network computes "
                f"the expression in the table, which reproduces every computed value."]
        if region == "below" and diff.startswith("z3"):
            # the one slip the report is known to have: why it matters, not just that it differs
            out[-1] += (" Written as 1 + 2(A − Σx), the printed z3 is ≥ 3 for Σx < A and would "
                        "give h3 = +1; the network's 1 + 2(Σx − A) ≤ −1 gives the −1 required. "
                        "The network is right; the printed formula is a sign slip.")
    return out


def _perturbations(study: Study) -> list[str]:
    return [
        "## Perturbations x + t·v", "",
        "The margin the construction guarantees is **‖t·v‖₁ < 1/2**: the hidden "
        "pre-activations 2(Σx − A) + 1 and 2(B − Σx) + 1 are odd integers, so |z| ≥ 1, and a "
        "perturbation moves each by 2·Σᵢ tvᵢ, at most 2‖t·v‖₁ (equivalently ‖t·v‖∞ < 1/(2D)). "
        f"The margin certified from each network's weights is {study.margin:g} in every case, "
        "and it is tight: moving one coordinate by 1/2 + 2⁻¹⁰ changes an output in every case, "
        "for both networks (at Σx = A − 1 it lifts z1 from −1 above 0; at Σx = A it drops "
        "z1 from 1 below 0). The report's \"≪ 1\" is therefore \"< 1/2 in L1\".",
        "",
        "The random perturbations (radius uniform below 1/2, Gaussian directions) are used "
        "twice: truncated onto the grid 2⁻²⁰, where float64 evaluates the networks without any "
        "rounding, so the checks above are checks of the real-number arguments; and as drawn, "
        "in ordinary float64, below.",
    ]


def _floating_point(study: Study) -> list[str]:
    fc_sign, fc_relu = study.float_counts["sign"], study.float_counts["relu"]
    inside = max(fc_relu["inside"], 1)
    return [
        "## Floating point at the ReLU network's zero output pre-activation",
        "",
        f"Inside [A, B] the ReLU network's z3 is exactly 0 (Table 9) and h3 = sign(0) = +1 only "
        f"by the convention g(0) = +1 of equation (10): the network has no output margin there. "
        f"With the perturbations as drawn, float64 evaluated z3 at "
        f"{fc_relu['inside']:,} perturbed inputs inside [A, B]; z3 differed from 0.0 at "
        f"**{fc_relu['z3_moved']:,}** of them and the output changed at "
        f"{fc_relu['flips_inside']:,} (outside [A, B]: {fc_relu['flips_outside']:,} changes; the "
        f"sign-unit network: {fc_sign['flips_inside'] + fc_sign['flips_outside']:,}). "
        "The report's cancellation survives rounding because the two hidden units see the same "
        "float sum with opposite signs (W1 columns ±2, summed in the same order, so the second is "
        "the exact negative of the first), their biases are integers, and round-to-nearest is "
        "symmetric: the two rounding errors cancel or stay below half an ulp of 2(B − A) + 2.",
        "",
        "That zero is a knife edge, not a margin: summing the second unit's inputs in the "
        f"reverse order (the same real numbers) makes z3 nonzero at "
        f"{fc_relu['reordered_moved']:,} of the {fc_relu['inside']:,} evaluations "
        f"({fc_relu['reordered_moved'] / inside:.1%}) and flips the output "
        f"to −1 at {fc_relu['reordered_flips']:,} "
        f"({fc_relu['reordered_flips'] / inside:.1%}). A strict threshold "
        "(z > 0) or `np.sign` (which maps 0 to 0) would get every input inside [A, B] wrong even "
        "without a perturbation.",
    ]


def render_markdown(study: Study, printed: PrintedTables) -> str:
    """reports/boolean.md: Tables 7-9 computed beside the printed ones, the checks and what
    they found."""
    tables = network_tables(study.max_d)
    sections = [_intro(study), _checks(study), _table7(printed), _single_perceptron(study),
                _table8(tables["sign"], printed), _table9(tables["relu"], printed),
                _perturbations(study), _floating_point(study)]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


# --------------------------------------------------------------------------- Figure 11

def figure11() -> Figure:
    """Figure 11: the four inputs of D=2 coloured by f (A=0, B=1), with the crossing segments
    that show no line separates them."""
    X = hypercube(2)
    f = interval_f(X, 0, 1)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    for label, color, marker in ((1, "tab:blue", "o"), (-1, "tab:red", "x")):
        pts = X[f == label]
        ax.plot(*pts.T, ls="--", color=color, lw=1, alpha=0.6)
        ax.scatter(*pts.T, c=color, marker=marker, s=120, label=f"f(x) = {label:+d}", zorder=3)
    ax.scatter([0], [0], facecolors="none", edgecolors="black", s=80, zorder=3,
               label="midpoint of both classes")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlim=(-1.6, 1.6), ylim=(-1.6, 1.6), xlabel="$x_1$", ylabel="$x_2$",
           title="D = 2, A = 0, B = 1: not linearly separable", aspect="equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


def write_figure11(path: str | Path) -> None:
    """Figure 11 as PNG at ``path``, written atomically."""
    with atomic_path(path) as tmp:
        figure11().savefig(tmp, format="png", dpi=120)
