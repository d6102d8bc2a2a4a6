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

This module holds the math and the checks; ``hw1.boolean_report`` sets the results beside the
report's printed Tables 7-9 and draws Figure 11.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hw1.params import Rules, integer, validate_section, validate_seed

GUARANTEED_MARGIN = 0.5
# Perturbations just inside / just beyond the margin and the grid of the "exact" perturbations
# are dyadic: float64 evaluates the networks on them exactly (see _random_perturbations).
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


# --------------------------------------------------------------------------- the whole study

# The `boolean` section of params.yaml.
BOOLEAN_RULES: Rules = {"max_d": integer(1, MAX_D_LIMIT), "perturbations": integer(1)}


def validate_boolean(params: dict[str, Any]) -> tuple[int, int, int]:
    """(max_d, perturbations, seed) from params.yaml, or ParamsError naming the key."""
    seed = validate_seed(params)
    cfg = validate_section(params.get("boolean"), "boolean", BOOLEAN_RULES)
    return cfg["max_d"], cfg["perturbations"], seed


@dataclass
class Study:
    """What the checks found over every case (reports/boolean.md, metrics/boolean.json)."""

    max_d: int
    perturbations: int
    seed: int
    cases: int = 0
    inputs: int = 0
    failures: dict[str, int] = field(default_factory=dict)   # check -> failing (case, network)s
    margin: float = float("inf")                               # smallest certified margin
    float_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    separability: dict[tuple[int, int, int], Separability] = field(default_factory=dict)

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
