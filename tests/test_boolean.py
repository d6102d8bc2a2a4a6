"""Question 3: the checks of hw1.boolean catch wrong networks, hw1.boolean_report sets them
beside the report's printed tables (from reports/report_values.yaml), and the stage writes its
outputs."""
from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_module

from hw1.boolean import (
    GUARANTEED_MARGIN,
    TIGHTNESS_STEP,
    Network,
    cases,
    check_network,
    hypercube,
    interval_f,
    perceptron,
    relu_network,
    run_study,
    separability,
    sign_network,
    validate_boolean,
)
from hw1.boolean_report import (
    ReportValuesError,
    load_printed_tables,
    network_tables,
    render_affine,
    render_markdown,
    table7_rows,
)
from hw1.params import ParamsError

REPO = Path(__file__).resolve().parents[1]
REPORT_VALUES = REPO / "reports/report_values.yaml"
PRINTED = load_printed_tables(REPORT_VALUES)


def check(net: Network, D: int, A: int, B: int, perturbations: int = 16):
    return check_network(net, D, A, B, np.random.default_rng(0), perturbations)


def test_table7_truth_table_is_the_reports():
    assert PRINTED.table7 == {(1, 1): -1, (1, -1): 1, (-1, 1): 1, (-1, -1): -1}
    rows = table7_rows(PRINTED)
    assert [(x1, x2, f) for x1, x2, f, *_ in rows] == [
        (1, 1, -1), (1, -1, 1), (-1, 1, 1), (-1, -1, -1)]
    assert all(f == report == y_sign == y_relu for _, _, f, report, y_sign, y_relu in rows)


def test_case_enumeration_covers_every_interval():
    assert list(cases(1)) == [(1, -1, -1), (1, -1, 0), (1, -1, 1), (1, 0, 0), (1, 0, 1),
                              (1, 1, 1)]
    assert len(list(cases(10))) == 945
    assert hypercube(3).shape == (8, 3) and len({tuple(r) for r in hypercube(3)}) == 8


@pytest.mark.parametrize("build", [sign_network, relu_network])
def test_report_networks_pass_every_check(build):
    for D, A, B in cases(4):
        result = check(build(D, A, B), D, A, B)
        assert result.ok, (D, A, B, result)
        assert result.margin == GUARANTEED_MARGIN


def _broken(net: Network, part: str) -> Network:
    if part == "hidden bias":
        return dataclasses.replace(net, b1=net.b1 + np.array([2.0, 0.0]))
    if part == "hidden weight":
        W1 = net.W1.copy()
        W1[0, 1] = 0.0
        return dataclasses.replace(net, W1=W1)
    if part == "output weight":
        return dataclasses.replace(net, w2=net.w2 * np.array([1.0, 0.0]))
    return dataclasses.replace(net, b2=net.b2 - 1.0)   # output bias


@pytest.mark.parametrize("build", [sign_network, relu_network])
@pytest.mark.parametrize("part", ["hidden bias", "hidden weight", "output weight",
                                  "output bias"])
def test_a_broken_weight_or_bias_fails_the_exhaustive_check(build, part):
    D, A, B = 3, 0, 1
    assert check(build(D, A, B), D, A, B).exhaustive_ok
    result = check(_broken(build(D, A, B), part), D, A, B)
    assert not result.exhaustive_ok and not result.ok


@pytest.mark.parametrize("build", [sign_network, relu_network])
def test_half_unit_bias_shift_keeps_f_but_fails_the_margin(build):
    # z1 = 2(sum - A) + 1.5 still has the right sign at every input, but sum = A - 1 now sits
    # 0.5 below zero: the margin halves. The ReLU network's output bias moves with it so that
    # its z3 still cancels to 0 inside [A, B].
    D, A, B = 3, 0, 1
    net = build(D, A, B)
    shifted = dataclasses.replace(net, b1=net.b1 + np.array([0.5, 0.0]),
                                  b2=net.b2 + (0.5 if net.hidden == "relu" else 0.0))
    result = check(shifted, D, A, B)
    assert result.exhaustive_ok
    assert result.margin == 0.25
    assert not result.within_margin_ok and not result.ok


@pytest.mark.parametrize("build", [sign_network, relu_network])
def test_margin_is_tight_one_coordinate_just_beyond_one_half_flips_an_output(build):
    D, A, B = 3, 1, 3                                   # sum = A - 1 = 0 is not reachable
    net = build(D, A, B)
    x = np.array([[1.0, 1.0, -1.0]])                    # sum 1 = A: z1 = 1
    for radius, flips in ((GUARANTEED_MARGIN - TIGHTNESS_STEP, False),
                          (GUARANTEED_MARGIN + TIGHTNESS_STEP, True)):
        moved = x - np.array([[radius, 0.0, 0.0]])
        assert (net(moved)[0] != net(x)[0]) == flips
    assert check(net, D, A, B).tight


def test_relu_output_preactivation_is_exactly_zero_inside_even_under_float_perturbations():
    D, A, B = 6, -4, 3
    net = relu_network(D, A, B)
    X = hypercube(D)
    inside = interval_f(X, A, B) == 1
    assert np.all(net.forward(X)[2][inside] == 0.0)
    result = check(net, D, A, B, perturbations=64)
    counts = result.float_counts
    assert result.inside_cancels
    assert counts["inside"] == 64 * inside.sum()
    assert counts["z3_moved"] == counts["flips_inside"] == counts["flips_outside"] == 0
    # the zero is a knife edge: the same sums taken in another order do not cancel
    assert counts["reordered_moved"] > 0


def _separable_by_search(D: int, A: int, B: int) -> bool:
    """Brute force: some integer w in [-3, 3]^D and half-integer bias separate f strictly."""
    X = hypercube(D)
    f = interval_f(X, A, B)
    W = np.array(list(itertools.product(range(-3, 4), repeat=D)), dtype=float)
    biases = np.arange(-3 * D - 0.5, 3 * D + 1)
    scores = (X @ W.T)[None] + biases[:, None, None]     # (bias, input, weights)
    return bool(np.any(np.all(np.sign(scores) == f[None, :, None], axis=1)))


def test_separability_decision_agrees_with_brute_force_search():
    for D, A, B in cases(4):
        decision = separability(D, A, B)
        assert decision.separable == _separable_by_search(D, A, B), (D, A, B)
        X = hypercube(D)
        if decision.separable:
            assert np.all(interval_f(X, A, B) * (X @ decision.weights + decision.bias) > 0)
        else:
            s_lo, s_in, s_hi = decision.witness
            assert s_lo < A <= s_in <= B < s_hi


def test_report_case_is_not_separable_with_the_xor_witness():
    decision = separability(2, 0, 1)
    assert not decision.separable
    assert decision.witness == (-2, 0, 2) and decision.lam == 0.5
    assert decision.label_changes == 2
    with pytest.raises(RuntimeError, match="did not converge"):
        perceptron(hypercube(2), interval_f(hypercube(2), 0, 1), max_updates=200)


def test_table9_fit_recovers_the_network_and_the_reports_sign_slip():
    relu = network_tables(3)["relu"]
    assert relu["inside"]["z3"]["values"] == [0.0]
    assert relu["inside"]["h1"]["expr"] == PRINTED.table9["inside"]["h1"] == (2, -2, 0, 1)
    assert relu["below"]["z3"]["expr"] == (2, -2, 0, 1)
    assert PRINTED.table9["below"]["z3"] == (-2, 2, 0, 1)
    assert relu["above"]["z3"]["expr"] == PRINTED.table9["above"]["z3"]
    assert render_affine((2, -2, 0, 1)) == "2Σx − 2A + 1"
    assert render_affine((-1, 0, 2, 0)) == "−Σx + 2B"
    assert render_affine((0, 0, 0, 0)) == "0"


def test_report_flags_a_printed_entry_that_the_networks_do_not_compute():
    study = run_study(2, 2, seed=0)
    faithful = render_markdown(study, PRINTED)
    table8 = [line for line in faithful.splitlines() if line.endswith("| yes |")]
    assert len(table8) == 3 and "| NO |" not in faithful
    wrong = dataclasses.replace(
        PRINTED, table8={**PRINTED.table8, "above": {**PRINTED.table8["above"], "h2": 1}},
        table9={**PRINTED.table9, "inside": {**PRINTED.table9["inside"], "z3": (0, 0, 0, 1)}})
    flagged = render_markdown(study, wrong)
    assert "| Σx > B | +1 | -1 | -1 | -1 | -1 | NO |" in flagged
    assert "For A ≤ Σx ≤ B the report prints z3 = 1;" in flagged


def test_tables_loader_still_reads_the_file_with_question3():
    from hw1.report_inputs import load_report_values
    values = load_report_values(REPORT_VALUES)
    assert {"data", "runs", "question3"} <= set(values)


@pytest.mark.parametrize("edit, message", [
    (lambda v: v.pop("question3"),
     "needs a mapping 'question3' (it has none): the report's printed Tables 7-9"),
    (lambda v: v.update(question3=[1, 2]), "needs a mapping 'question3' (found [1, 2])"),
    (lambda v: v["question3"]["table9"]["below"].pop("z3"),
     "has no question3.table9.below.z3: add it (four integers: the coefficients of "
     "(Σx, A, B, 1))"),
    (lambda v: v["question3"]["table9"]["below"].update(z3=[-2, 2, 1]),
     "question3.table9.below.z3 must be four integers: the coefficients of (Σx, A, B, 1), "
     "got [-2, 2, 1]"),
    (lambda v: v["question3"]["table8"]["inside"].update(f="+1"),
     "question3.table8.inside.f must be an integer, got '+1'"),
    (lambda v: v["question3"]["table7"].__setitem__(1, [1, 1, 1]),
     "question3.table7 must be four rows [x1, x2, f] of ±1, one per input, got "
     "[[1, 1, -1], [1, 1, 1], [-1, 1, 1], [-1, -1, -1]]"),
])
def test_bad_printed_tables_are_rejected_naming_the_file_and_key(tmp_path, edit, message):
    values = yaml.safe_load(REPORT_VALUES.read_text(encoding="utf-8"))
    edit(values)
    path = tmp_path / "report_values.yaml"
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ReportValuesError) as err:
        load_printed_tables(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_report_values_file_is_named(tmp_path):
    with pytest.raises(ReportValuesError, match=r"report_values\.yaml not found: it holds the "
                                                r"report's printed Tables 7-9"):
        load_printed_tables(tmp_path / "report_values.yaml")


def test_study_counts_on_small_d():
    study = run_study(3, 4, seed=0)
    assert study.cases == 6 + 15 + 28 and study.inputs == 6 * 2 + 15 * 4 + 28 * 8
    assert study.total_failures == 0 and study.margin == 0.5
    assert study.separable_count() == 6 + 11 + 16


def _run_stage(tmp_path: Path, params: dict, report_values: dict | None = None
               ) -> subprocess.CompletedProcess:
    """Run the stage in ``tmp_path`` with ``params`` and the project's report_values.yaml (or
    ``report_values``)."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/report_values.yaml").write_text(
        REPORT_VALUES.read_text(encoding="utf-8") if report_values is None
        else yaml.safe_dump(report_values, allow_unicode=True), encoding="utf-8")
    return run_module("stages.boolean", cwd=tmp_path)


def test_stage_writes_report_figure_and_metrics(tmp_path):
    proc = _run_stage(tmp_path, {"seed": 1, "boolean": {"max_d": 3, "perturbations": 4}})
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "metrics/boolean.json").read_text())
    assert metrics["cases"] == 49 and metrics["failures"] == 0
    assert metrics["separable"] == 33 and metrics["not_separable"] == 16
    assert metrics["margin_l1"] == 0.5 and metrics["relu_z3_nonzero"] == 0
    report = (tmp_path / "reports/boolean.md").read_text()
    assert "**49 cases" in report and "**Failures: 0.**" in report
    assert "z3 = −2Σx + 2A + 1" in report              # the report's Table 9 slip, flagged
    png = (tmp_path / "reports/figures/fig11_boolean.png").read_bytes()
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("boolean, message", [
    ({"max_d": 0, "perturbations": 4}, "boolean.max_d must be an integer in [1, 14], got 0"),
    ({"max_d": "3", "perturbations": 4}, "boolean.max_d must be an integer in [1, 14]"),
    ({"max_d": 15, "perturbations": 4}, "boolean.max_d must be an integer in [1, 14], got 15"),
    ({"max_d": 3, "perturbations": 0}, "boolean.perturbations must be an integer >= 1"),
    ({"max_d": 3}, "boolean is missing perturbations"),
    ({"max_d": 3, "perturbations": 4, "maxd": 3}, "unknown key(s) maxd"),
])
def test_bad_params_are_rejected_naming_the_key(boolean, message):
    with pytest.raises(ParamsError) as err:
        validate_boolean({"seed": 0, "boolean": boolean})
    assert message in str(err.value)


def test_stage_exits_with_a_clear_message_on_bad_params(tmp_path):
    proc = _run_stage(tmp_path, {"seed": 0, "boolean": {"max_d": True, "perturbations": 4}})
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("boolean failed: boolean.max_d must be an integer in "
                                   "[1, 14], got True")
    assert not (tmp_path / "metrics").exists()


def test_stage_exits_with_a_clear_message_when_question3_is_missing(tmp_path):
    values = yaml.safe_load(REPORT_VALUES.read_text(encoding="utf-8"))
    del values["question3"]
    proc = _run_stage(tmp_path, {"seed": 0, "boolean": {"max_d": 3, "perturbations": 4}},
                      report_values=values)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "boolean failed: reports/report_values.yaml needs a mapping 'question3' (it has none): "
        "the report's printed Tables 7-9 under table7, table8 and table9")
    assert not (tmp_path / "metrics").exists()
    assert not (tmp_path / "reports/boolean.md").exists()


def test_stage_fails_when_a_check_fails_after_writing_what_failed(tmp_path, monkeypatch):
    from stages import boolean as boolean_stage
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"seed": 0, "boolean": {"max_d": 2, "perturbations": 2}}))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/report_values.yaml").write_text(REPORT_VALUES.read_text("utf-8"),
                                                          "utf-8")
    monkeypatch.chdir(tmp_path)
    real = boolean_stage.metrics
    monkeypatch.setattr(boolean_stage, "metrics", lambda study: {**real(study), "failures": 2})
    with pytest.raises(SystemExit) as exit_:
        boolean_stage.main()
    assert exit_.value.code == "boolean failed: 2 checks failed; see reports/boolean.md"
    assert json.loads((tmp_path / "metrics/boolean.json").read_text())["failures"] == 2
    assert (tmp_path / "reports/boolean.md").is_file()
