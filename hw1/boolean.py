"""Question 3 checked by computation: the Boolean interval function and the report's networks.

f(x) = +1 if sum(x) lies in [A, B] and -1 otherwise, for x in {-1, +1}^D and integers
-D <= A <= B <= D. The report (section 3) claims that

* f is not, in general, computable by a single perceptron (Table 7, Figure 11: D=2, A=0, B=1);
* a hidden layer of two sign units with W1 = (2·1, -2·1), b1 = (-2A+1, 2B+1) and output
  h1 + h2 - 1 computes f (Table 8), and so does the same hidden layer with ReLU units, output
  weights (-1, -1), output bias 2(B-A)+2 and a sign output (Table 9);
* both networks are robust to small perturbations x + t·v.

Every claim is turned into a check over every (D, A, B) with D <= max_d and all 2^D inputs.
The perturbation margin the construction guarantees is 1/2 in the L1 norm: the hidden
pre-activations are odd integers (|z| >= 1) and each moves by at most max|W1|·||t·v||_1 =
2·||t·v||_1, so ||t·v||_1 < 1/2 cannot change a hidden unit's piece.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from hw1.params import ParamsError, validate_seed

GUARANTEED_MARGIN = 0.5
# Perturbations just inside / just beyond the margin and the grid of the "exact" perturbations
# are dyadic, so float64 evaluates the networks on them without any rounding (see _exact).
TIGHTNESS_STEP = 2.0 ** -10
DYADIC_GRID = 2.0 ** -20
MAX_D_LIMIT = 14          # the run grows ~2.4x per step of D: seconds at 10, minutes at 14
_CHUNK_ELEMENTS = 1 << 21  # bound on the size of one batch of perturbed inputs


# --------------------------------------------------------------------------- the function f

def hypercube(D: int) -> np.ndarray:
    """All 2^D inputs in {-1, +1}^D as float64 rows, +1 before -1 (the order of Table 7)."""
    bits = (np.arange(2 ** D)[:, None] >> np.arange(D - 1, -1, -1)) & 1
    return (1 - 2 * bits).astype(np.float64)


def interval_f(X: np.ndarray, A: int, B: int) -> np.ndarray:
    """The report's equation (8): +1 where sum(x) is in [A, B], else -1."""
    s = X.sum(axis=-1)
    return np.where((s >= A) & (s <= B), 1.0, -1.0)


def cases(max_d: int) -> Iterator[tuple[int, int, int]]:
    """Every (D, A, B) with 1 <= D <= max_d and integers -D <= A <= B <= D."""
    for D in range(1, max_d + 1):
        for A in range(-D, D + 1):
            for B in range(A, D + 1):
                yield D, A, B


# --------------------------------------------------------------------------- the networks

def sign(z: np.ndarray) -> np.ndarray:
    """The report's hard threshold, equation (10): +1 where z >= 0 (zero included), else -1."""
    return np.where(z >= 0, 1.0, -1.0)


@dataclass(frozen=True)
class Network:
    """One hidden layer of two units: z = x·W1 + b1, h = g(z), z3 = h·w2 + b2.

    The output is z3 itself (the report's sign-unit network reads y = z3) or sign(z3).
    """

    W1: np.ndarray   # (D, 2)
    b1: np.ndarray   # (2,)
    w2: np.ndarray   # (2,)
    b2: float
    hidden: str      # "sign" or "relu"
    output_sign: bool

    def forward(self, X: np.ndarray, reverse_unit2: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z, h, z3) for inputs X of shape (..., D): hidden pre-activations, activations and
        the output pre-activation.

        ``reverse_unit2`` sums the second hidden unit's inputs in the reverse order: the same
        real numbers, a different float rounding, to probe how exactly the ReLU network's
        output pre-activation cancels to zero.
        """
        z = X @ self.W1 + self.b1
        if reverse_unit2:
            z[..., 1] = X[..., ::-1] @ self.W1[::-1, 1] + self.b1[1]
        h = sign(z) if self.hidden == "sign" else np.maximum(z, 0.0)
        return z, h, h @ self.w2 + self.b2

    def __call__(self, X: np.ndarray) -> np.ndarray:
        z3 = self.forward(X)[2]
        return sign(z3) if self.output_sign else z3


def _hidden_layer(D: int, A: int, B: int) -> tuple[np.ndarray, np.ndarray]:
    W1 = np.stack([np.full(D, 2.0), np.full(D, -2.0)], axis=1)
    return W1, np.array([-2.0 * A + 1, 2.0 * B + 1])


def sign_network(D: int, A: int, B: int) -> Network:
    """Section 3.2: sign hidden units, output weights (1, 1), bias -1, output y = z3."""
    W1, b1 = _hidden_layer(D, A, B)
    return Network(W1, b1, np.array([1.0, 1.0]), -1.0, "sign", output_sign=False)


def relu_network(D: int, A: int, B: int) -> Network:
    """Section 3.3: ReLU hidden units, output weights (-1, -1), bias 2(B-A)+2, sign output."""
    W1, b1 = _hidden_layer(D, A, B)
    return Network(W1, b1, np.array([-1.0, -1.0]), 2.0 * (B - A) + 2, "relu", output_sign=True)


NETWORKS = {"sign": sign_network, "relu": relu_network}


# --------------------------------------------------------------------------- robustness

def certified_margin(net: Network, X: np.ndarray) -> float:
    """The L1 radius r computed from the weights: every perturbation p with ||p||_1 < r leaves
    the output unchanged at every row of X.

    A hidden unit keeps its piece while |z_j| > |W1_j·p|, and |W1_j·p| <= max|W1_j|·||p||_1
    (L-infinity is the dual norm of L1). With the pieces fixed, a sign-unit network's output is
    constant; a ReLU network's output pre-activation moves by eff·p with eff the sum of the
    active units' w2_j·W1_j, which is a second bound wherever eff is not zero.
    """
    z, _, z3 = net.forward(X)
    margin = float(np.min(np.abs(z) / np.abs(net.W1).max(axis=0)))
    if net.hidden == "relu":
        eff = ((z > 0) * net.w2) @ net.W1.T
        scale = np.abs(eff).max(axis=1)
        moving = scale > 0
        if moving.any():
            margin = min(margin, float(np.min(np.abs(z3[moving]) / scale[moving])))
    return margin


def _vertices(D: int, radius: float) -> np.ndarray:
    """The 2D corners ±radius·e_i of the L1 ball: the worst cases for a function that is linear
    on the ball, so the strongest test of a margin in L1."""
    eye = np.eye(D) * radius
    return np.concatenate([eye, -eye])


def _random_perturbations(rng: np.random.Generator, D: int, count: int,
                          radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random perturbations with L1 norm uniform in [0, radius): as drawn, and
    truncated toward zero onto the dyadic grid (so their L1 norm stays below radius).

    On the grid every step of the forward pass is exact in float64 (inputs are multiples of
    2^-20 below 1.5 in magnitude, weights and biases are small integers), so the float result
    equals the real-number result and the report's arguments are checked without rounding.
    """
    g = rng.standard_normal((count, D))
    p = g / np.abs(g).sum(axis=1, keepdims=True) * (rng.random(count) * radius)[:, None]
    return p, np.trunc(p / DYADIC_GRID) * DYADIC_GRID


def _batched(net: Network, X: np.ndarray, P: np.ndarray, reverse_unit2: bool = False
             ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Forward passes on X + p for every p in P, in batches of bounded size: (z3, y) of shape
    (len(X), batch)."""
    step = max(1, _CHUNK_ELEMENTS // (X.shape[0] * X.shape[1]))
    for start in range(0, len(P), step):
        Xp = X[:, None, :] + P[None, start:start + step, :]
        z3 = net.forward(Xp, reverse_unit2)[2]
        yield z3, (sign(z3) if net.output_sign else z3)


FLOAT_COUNTS = ("inside", "z3_moved", "flips_inside", "flips_outside", "reordered_moved",
                "reordered_flips")


@dataclass
class NetworkCheck:
    """What the checks found for one network on one (D, A, B)."""

    exhaustive_ok: bool          # equals f on all 2^D inputs
    margin: float                # certified L1 margin computed from the weights
    within_margin_ok: bool       # no output changes for exact perturbations below 1/2
    inside_cancels: bool         # z3 unchanged (exactly) at inside inputs under them
    tight: bool                  # a perturbation of L1 norm 1/2 + 2^-10 changes an output
    # Float64 evaluations on the perturbations as drawn (not on the dyadic grid), counted at
    # inputs with sum in [A, B] unless named "outside": how many; where z3 is no longer exactly
    # its unperturbed value; where the output changed; the same two with unit 2 reordered.
    float_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLOAT_COUNTS, 0))

    @property
    def ok(self) -> bool:
        return (self.exhaustive_ok and self.margin >= GUARANTEED_MARGIN
                and self.within_margin_ok and self.inside_cancels and self.tight)


def check_network(net: Network, D: int, A: int, B: int, rng: np.random.Generator,
                  perturbations: int) -> NetworkCheck:
    """Run every check of one network against f(D, A, B)."""
    X = hypercube(D)
    target = interval_f(X, A, B)
    y0 = net(X)
    z3_0 = net.forward(X)[2]
    inside = target == 1

    def changed(P: np.ndarray, reverse_unit2: bool = False
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for z3, y in _batched(net, X, P, reverse_unit2):
            yield y != y0[:, None], z3 != z3_0[:, None]

    below = GUARANTEED_MARGIN - TIGHTNESS_STEP
    beyond = GUARANTEED_MARGIN + TIGHTNESS_STEP
    drawn, exact = _random_perturbations(rng, D, perturbations, GUARANTEED_MARGIN)
    within_ok, cancels = True, True
    for P in (exact, _vertices(D, below)):
        for flips, moved in changed(P):
            within_ok &= not flips.any()
            cancels &= not moved[inside].any()
    tight = any(flips.any() for flips, _ in changed(_vertices(D, beyond)))

    check = NetworkCheck(bool(np.array_equal(y0, target)), certified_margin(net, X),
                         bool(within_ok), bool(cancels), bool(tight))
    counts = check.float_counts
    for flips, moved in changed(drawn):
        counts["inside"] += int(moved[inside].size)
        counts["z3_moved"] += int(moved[inside].sum())
        counts["flips_inside"] += int(flips[inside].sum())
        counts["flips_outside"] += int(flips[~inside].sum())
    for flips, moved in changed(drawn, reverse_unit2=True):
        counts["reordered_moved"] += int(moved[inside].sum())
        counts["reordered_flips"] += int(flips[inside].sum())
    return check


# --------------------------------------------------------------------------- single perceptron

@dataclass(frozen=True)
class Separability:
    """Whether f(D, A, B) is linearly separable, with evidence a reviewer can re-check.

    Separable: ``weights``/``bias`` found by the perceptron algorithm (verified on all 2^D
    inputs, strictly) after ``updates`` mistakes. Not separable: ``witness`` = (s_lo, s_in, s_hi),
    reachable sums below, inside and above [A, B], and ``lam``: the centroid of the inputs with
    sum s_in (a positive point) equals lam·centroid(s_lo) + (1-lam)·centroid(s_hi) (negative
    points), so the convex hulls of the two classes meet and no hyperplane separates them.
    """

    separable: bool
    label_changes: int           # sign changes of f along the reachable sums -D, -D+2, ..., D
    weights: np.ndarray | None = None
    bias: float | None = None
    updates: int | None = None
    witness: tuple[int, int, int] | None = None
    lam: float | None = None


def reachable_sums(D: int) -> np.ndarray:
    return np.arange(-D, D + 1, 2)


def perceptron(X: np.ndarray, y: np.ndarray, max_updates: int = 100_000
               ) -> tuple[np.ndarray, float, int]:
    """Rosenblatt's perceptron with a bias, cycling through the rows in order and updating on
    every mistake (y·(w·x + b) <= 0) until a full pass makes none.

    Each scan is vectorized: all margins are computed at once and the first mistake at or after
    the current position is taken, which is exactly the sequential algorithm because w does
    not change between mistakes. Raises RuntimeError after ``max_updates`` (not separable).
    """
    Xb = np.hstack([X, np.ones((len(X), 1))])
    w = np.zeros(Xb.shape[1])
    pos, updates = 0, 0
    while True:
        wrong = np.flatnonzero(y * (Xb @ w) <= 0)
        if wrong.size == 0:
            return w[:-1], float(w[-1]), updates
        if updates >= max_updates:
            raise RuntimeError(f"perceptron did not converge in {max_updates} updates")
        after = wrong[wrong >= pos]
        i = int(after[0] if after.size else wrong[0])
        w += y[i] * Xb[i]
        updates += 1
        pos = (i + 1) % len(Xb)


def separability(D: int, A: int, B: int) -> Separability:
    """Decide linear separability of f(D, A, B) and attach the evidence.

    f depends on sum(x) only and is symmetric under permuting coordinates; averaging any
    separator (w, b) over all permutations gives another with equal weights (the separators
    form a convex set), so f is separable iff a threshold on the sum reproduces the labels
    along the reachable sums, i.e. iff the labels change sign at most once along them.
    """
    S = reachable_sums(D)
    labels = np.where((S >= A) & (S <= B), 1, -1)
    changes = int(np.count_nonzero(np.diff(labels)))
    X = hypercube(D)
    f = interval_f(X, A, B)
    if changes <= 1:
        w, b, updates = perceptron(X, f)
        if not np.all(f * (X @ w + b) > 0):
            raise AssertionError(f"perceptron result does not separate D={D} A={A} B={B}")
        return Separability(True, changes, weights=w, bias=b, updates=updates)
    s_lo, s_in, s_hi = int(S[S < A].max()), int(S[labels == 1][0]), int(S[S > B].min())
    sums = X.sum(axis=1)
    lo, mid, hi = (X[sums == s].mean(axis=0) for s in (s_lo, s_in, s_hi))
    lam = (s_hi - s_in) / (s_hi - s_lo)
    if not np.allclose(lam * lo + (1 - lam) * hi, mid):
        raise AssertionError(f"convex-hull witness fails for D={D} A={A} B={B}")
    return Separability(False, changes, witness=(s_lo, s_in, s_hi), lam=lam)


# --------------------------------------------------------------------------- Tables 8 and 9

REGIONS = ("inside", "below", "above")   # sum in [A, B], sum < A, sum > B
REGION_LABELS = {"inside": "A ≤ Σx ≤ B", "below": "Σx < A", "above": "Σx > B"}
# Table 9 as printed in the report, as coefficients of (Σx, A, B, 1).
REPORT_TABLE9 = {
    "inside": {"h1": (2, -2, 0, 1), "h2": (-2, 0, 2, 1), "z3": (0, 0, 0, 0)},
    "below": {"h1": (0, 0, 0, 0), "h2": (-2, 0, 2, 1), "z3": (-2, 2, 0, 1)},
    "above": {"h1": (2, -2, 0, 1), "h2": (0, 0, 0, 0), "z3": (-2, 0, 2, 1)},
}


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
    terms = [(c, sym) for c, sym in zip(coef, ("Σx", "A", "B", "")) if c != 0]
    if not terms:
        return "0"
    out = ""
    for k, (c, sym) in enumerate(terms):
        mag = abs(c)
        body = f"{'' if mag == 1 and sym else mag}{sym}"
        out += (("−" if c < 0 else "") if k == 0 else (" − " if c < 0 else " + ")) + body
    return out


# --------------------------------------------------------------------------- the whole study

def validate_boolean(params: dict[str, Any]) -> tuple[int, int, int]:
    """(max_d, perturbations, seed) from params.yaml, or ParamsError naming the key."""
    seed = validate_seed(params)
    cfg = params.get("boolean")
    if not isinstance(cfg, dict):
        raise ParamsError(f"params key 'boolean' must be a mapping, got {cfg!r}")
    expected = {"max_d", "perturbations"}
    unknown = sorted(set(cfg) - expected)
    if unknown:
        raise ParamsError(f"boolean has unknown key(s) {', '.join(unknown)}; "
                          f"expected: max_d, perturbations")
    values = []
    for key, low, high in (("max_d", 1, MAX_D_LIMIT), ("perturbations", 1, None)):
        if key not in cfg:
            raise ParamsError(f"boolean is missing {key}")
        v = cfg[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < low or (high and v > high):
            bound = f"an integer in [{low}, {high}]" if high else f"an integer >= {low}"
            raise ParamsError(f"boolean.{key} must be {bound}, got {v!r}")
        values.append(v)
    return values[0], values[1], seed


@dataclass
class Study:
    """Everything the boolean stage reports."""

    max_d: int
    perturbations: int
    seed: int
    cases: int = 0
    inputs: int = 0
    failures: dict[str, int] = field(default_factory=dict)   # check -> failing (case, network)s
    margin: float = float("inf")                               # smallest certified margin
    float_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    separability: dict[tuple[int, int, int], Separability] = field(default_factory=dict)
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def total_failures(self) -> int:
        return sum(self.failures.values())

    def separable_count(self) -> int:
        return sum(s.separable for s in self.separability.values())


def run_study(max_d: int, perturbations: int, seed: int) -> Study:
    """Every check of Question 3 for D = 1..max_d."""
    study = Study(max_d, perturbations, seed)
    study.failures = {k: 0 for k in ("exhaustive", "margin", "within_margin", "cancellation",
                                      "tightness")}
    study.float_counts = {name: dict.fromkeys(FLOAT_COUNTS, 0) for name in NETWORKS}
    for D, A, B in cases(max_d):
        study.cases += 1
        study.inputs += 2 ** D
        for name, build in NETWORKS.items():
            # the same draws for both networks, and a case's draws do not depend on max_d
            rng = np.random.default_rng([seed, D, A + D, B + D])
            c = check_network(build(D, A, B), D, A, B, rng, perturbations)
            study.failures["exhaustive"] += not c.exhaustive_ok
            study.failures["margin"] += c.margin < GUARANTEED_MARGIN
            study.failures["within_margin"] += not c.within_margin_ok
            study.failures["cancellation"] += not c.inside_cancels
            study.failures["tightness"] += not c.tight
            study.margin = min(study.margin, c.margin)
            for key, n in c.float_counts.items():
                study.float_counts[name][key] += n
        study.separability[(D, A, B)] = separability(D, A, B)
    study.tables = network_tables(max_d)
    return study


def metrics(study: Study) -> dict[str, Any]:
    """The few headline numbers for metrics/boolean.json."""
    relu = study.float_counts["relu"]
    return {
        "cases": study.cases,
        "inputs": study.inputs,
        "failures": study.total_failures,
        "separable": study.separable_count(),
        "not_separable": study.cases - study.separable_count(),
        "margin_l1": study.margin,
        "relu_z3_nonzero": relu["z3_moved"],
        "relu_reordered_flip_rate": round(relu["reordered_flips"] / max(relu["inside"], 1), 6),
    }


# --------------------------------------------------------------------------- report and figure

# Tables 7 and 8 as printed in the report, to set beside the computed values.
REPORT_TABLE7 = {(1, 1): -1, (1, -1): 1, (-1, 1): 1, (-1, -1): -1}
REPORT_TABLE8 = {"inside": (1, 1, -1, 1, 1), "below": (-1, 1, -1, -1, -1),
                 "above": (1, -1, -1, -1, -1)}


def _num(v: float) -> str:
    return f"{v:+.0f}" if v else "0"


def _values(entry: dict[str, Any]) -> str:
    vals = entry["values"]
    return _num(vals[0]) if len(vals) == 1 else render_affine(entry["expr"])


def table7_rows() -> list[tuple[int, int, int, int, int, int]]:
    """(x1, x2, f computed, f report, sign network, ReLU network) for D=2, A=0, B=1."""
    X = hypercube(2)
    f = interval_f(X, 0, 1)
    y_sign, y_relu = sign_network(2, 0, 1)(X), relu_network(2, 0, 1)(X)
    return [(int(x[0]), int(x[1]), int(f[i]), REPORT_TABLE7[(int(x[0]), int(x[1]))],
             int(y_sign[i]), int(y_relu[i])) for i, x in enumerate(X)]


def render_markdown(study: Study) -> str:
    """reports/boolean.md: Tables 7-9 computed, the checks and what they found."""
    n_pairs = study.cases * len(NETWORKS)
    fails = study.failures
    fc_sign, fc_relu = study.float_counts["sign"], study.float_counts["relu"]
    sep = study.separable_count()
    out = [
        "# Question 3: the Boolean interval function and the hand-built networks, verified",
        "",
        f"Generated by `python -m stages.boolean` with `boolean.max_d` = {study.max_d}, "
        f"`boolean.perturbations` = {study.perturbations}, `seed` = {study.seed}. "
        f"Every (D, A, B) with 1 ≤ D ≤ {study.max_d} and −D ≤ A ≤ B ≤ D: "
        f"**{study.cases} cases, {study.inputs:,} inputs**, each checked for both networks "
        f"({n_pairs} case-network pairs).",
        "",
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
        "",
        "## Table 7 and Figure 11 (D = 2, A = 0, B = 1)",
        "",
        "| x₁ | x₂ | f(x) computed | f(x) report | sign-unit network | ReLU network |",
        "|---|---|---|---|---|---|",
    ]
    out += [f"| {' | '.join(_num(v) for v in row)} |" for row in table7_rows()]
    sep_report = study.separability.get((2, 0, 1))
    out += ["", "![Figure 11](figures/fig11_boolean.png)", "", "## Single perceptron", ""]
    if sep_report is not None:
        s_lo, s_in, s_hi = sep_report.witness
        out += [
            f"The report's case D=2, A=0, B=1 is **not** linearly separable: along the sums "
            f"−2, 0, 2 the labels change sign {sep_report.label_changes} times, and the "
            f"midpoint (0, 0) of the two positive points (+1, −1), (−1, +1) is also the "
            f"midpoint of the two negative points (+1, +1), (−1, −1) (λ = {sep_report.lam:g}), "
            f"so any line would put it on both sides.",
            "",
        ]
    out += [
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
        "| D | cases | separable | not separable | most perceptron updates |",
        "|---|---|---|---|---|",
    ]
    for D in range(1, study.max_d + 1):
        rows = [s for (d, _, _), s in study.separability.items() if d == D]
        seps = [s for s in rows if s.separable]
        out.append(f"| {D} | {len(rows)} | {len(seps)} | {len(rows) - len(seps)} | "
                   f"{max(s.updates for s in seps)} |")
    if study.max_d >= 2:
        out += ["", "Every case of D = 2, with its evidence:", "",
                "| A | B | separable | evidence |", "|---|---|---|---|"]
        for (D, A, B), s in study.separability.items():
            if D != 2:
                continue
            if s.separable:
                w = ", ".join(f"{v:g}" for v in s.weights)
                ev = f"perceptron: w = ({w}), b = {s.bias:g} after {s.updates} updates"
            else:
                ev = (f"sums {s.witness} (below, inside, above), λ = {s.lam:g}")
            out.append(f"| {A} | {B} | {'yes' if s.separable else 'no'} | {ev} |")

    t8 = study.tables["sign"]
    b2 = sign_network(1, 0, 0).b2
    out += ["", "## Table 8: sign hidden units, output ŷ = z3 = h1 + h2 − 1", "",
            "Values over every case and input in each interval (a single value each).", "",
            "| interval | h1 | h2 | b₁⁽²⁾ | ŷ = z3 | f(x) | as in the report |",
            "|---|---|---|---|---|---|---|"]
    for region in REGIONS:
        e = t8[region]
        got = tuple(e[k]["values"] for k in ("h1", "h2")) + ([b2],) + tuple(
            e[k]["values"] for k in ("z3", "f"))
        same = all(len(g) == 1 and g[0] == r for g, r in zip(got, REPORT_TABLE8[region]))
        out.append(f"| {REGION_LABELS[region]} | {_values(e['h1'])} | {_values(e['h2'])} | "
                   f"{_num(b2)} | {_values(e['z3'])} | {_values(e['f'])} | "
                   f"{'yes' if same else 'NO'} |")

    t9 = study.tables["relu"]
    out += ["", "## Table 9: ReLU hidden units, output h3 = sign(z3), z3 = −h1 − h2 + 2(B−A) + 2",
            "", "Each entry is the affine expression in (Σx, A, B) that reproduces every case and "
            "input of the interval exactly, solved from the computed values.", "",
            "| interval | h1 | h2 | z3 | h3 | f(x) | the report's entry where it differs |",
            "|---|---|---|---|---|---|---|"]
    mismatches = []
    for region in REGIONS:
        e = t9[region]
        diffs = [f"{k} = {render_affine(REPORT_TABLE9[region][k])}" for k in ("h1", "h2", "z3")
                 if e[k]["expr"] != REPORT_TABLE9[region][k]]
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

    out += [
        "", "## Perturbations x + t·v", "",
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
        "",
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
        f"({fc_relu['reordered_moved'] / max(fc_relu['inside'], 1):.1%}) and flips the output "
        f"to −1 at {fc_relu['reordered_flips']:,} "
        f"({fc_relu['reordered_flips'] / max(fc_relu['inside'], 1):.1%}). A strict threshold "
        "(z > 0) or `np.sign` (which maps 0 to 0) would get every input inside [A, B] wrong even "
        "without a perturbation.",
        "",
    ]
    return "\n".join(out)


def plot_figure11(path: str) -> None:
    """Figure 11: the four inputs of D=2 coloured by f (A=0, B=1), with the crossing segments
    that show no line separates them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hw1.outputs import atomic_path

    X = hypercube(2)
    f = interval_f(X, 0, 1)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
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
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
