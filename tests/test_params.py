"""params.yaml validation: one mechanism, every bad value a one-line message naming the key, and
the `check_params` stage that stops `dvc repro` before any output is deleted."""
from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import run_module

from hw1.data import DATA_RULES
from hw1.params import SAFE_LOADER, ParamsError, load_params, read_yaml, validate_section
from stages.check_params import check

REPO = Path(__file__).resolve().parents[1]
PARAMS = load_params(REPO / "params.yaml")
DATA = {"source": "synthetic", "path": None, "synthetic": {"scale": 0.5}}


def with_value(dotted: str, value) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    *parents, last = dotted.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[last] = value
    return params


@pytest.mark.parametrize("scale, message", [
    ("abc", "data.synthetic.scale must be a number in (0, 1], got 'abc'"),
    (None, "data.synthetic.scale must be a number in (0, 1], got None"),
    (True, "data.synthetic.scale must be a number in (0, 1], got True"),
    ("0.5", "got '0.5'; YAML reads 0.5 as text"),
    (0, "data.synthetic.scale must be a number in (0, 1], got 0"),
    (1.5, "data.synthetic.scale must be a number in (0, 1], got 1.5"),
    (math.nan, "data.synthetic.scale must be a number in (0, 1], got nan"),
])
def test_bad_synthetic_scale_is_named(scale, message):
    with pytest.raises(ParamsError) as err:
        validate_section({**DATA, "synthetic": {"scale": scale}}, "data", DATA_RULES)
    assert message in str(err.value)


def test_valid_data_section_passes():
    assert validate_section(DATA, "data", DATA_RULES) is DATA


@pytest.mark.parametrize("key, value, message", [
    ("train.lr", math.inf, "train.lr must be a finite number > 0, got inf"),
    ("train.l2_decay", math.inf, "train.l2_decay must be a finite number >= 0, got inf"),
    ("q2.ffn_lr1.lr", math.nan, "q2.ffn_lr1.lr must be a finite number > 0, got nan"),
    ("q1.mlp.init_std", math.inf, "q1.mlp.init_std must be a finite number > 0, got inf"),
    ("q1.mlp.init_mean", -math.inf, "q1.mlp.init_mean must be a finite number, got -inf"),
    ("q1.logreg_lr1e-2.lr", math.inf, "q1.logreg_lr1e-2.lr must be a finite number > 0"),
    ("boolean.max_d", 0, "boolean.max_d must be an integer in [1, 14], got 0"),
    ("seed", -1, "seed must be an integer >= 0, got -1"),
    ("data.source", "zenodo", "data.source must be one of: medmnist, file, synthetic"),
])
def test_check_rejects_every_bad_value_naming_its_key(key, value, message):
    with pytest.raises(ParamsError) as err:
        check(with_value(key, value))
    assert message in str(err.value)


def test_yaml_1_1_exponent_gets_a_hint_on_how_to_write_it(tmp_path):
    (tmp_path / "params.yaml").write_text(
        (REPO / "params.yaml").read_text().replace("  lr: 0.1\n", "  lr: 1e-3\n", 1))
    params = load_params(tmp_path / "params.yaml")
    assert params["train"]["lr"] == "1e-3"  # what YAML 1.1 makes of it
    with pytest.raises(ParamsError) as err:
        check(params)
    assert str(err.value) == ("train.lr must be a finite number > 0, got '1e-3'; YAML reads 1e-3 "
                              "as text: write the number with a dot and a signed exponent "
                              "(1.0e-3, 1.0e+3), or set it with `dvc exp run -S key=1e-3`")


def test_unknown_section_and_dotted_run_name_are_rejected():
    with pytest.raises(ParamsError, match="unknown section.*trian"):
        check({**PARAMS, "trian": {}})
    bad = with_value("q2", {**PARAMS["q2"], "ffn.x": PARAMS["q2"]["ffn_lr1"]})
    with pytest.raises(ParamsError, match=r"q2\.ffn\.x: a run name holds letters, digits, "
                                          r"'_' and '-' only"):
        check(bad)


@pytest.mark.parametrize("name", ["x;touch PWNED;", "my run", "a/b", "ffn@1", "$(id)", ""])
def test_check_refuses_a_run_name_that_is_not_letters_digits_underscore_dash(name, tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = with_value("q2", {**PARAMS["q2"], name: PARAMS["q2"]["ffn_lr1"]})
    with pytest.raises(ParamsError) as err:
        check(bad)
    assert str(err.value).startswith(f"q2.{name}: a run name holds letters, digits, '_' and "
                                     f"'-' only (it becomes part of a DVC stage name")
    assert list(tmp_path.iterdir()) == []  # nothing made, let alone PWNED


def test_the_projects_params_are_valid():
    check(PARAMS)


def run_check(where: Path) -> subprocess.CompletedProcess:
    return run_module("stages.check_params", cwd=where)


def test_stage_writes_the_same_bytes_for_any_valid_params(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    assert run_check(tmp_path).returncode == 0
    first = (tmp_path / "data/params_checked.txt").read_bytes()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("train.lr", 0.001)))
    assert run_check(tmp_path).returncode == 0
    assert (tmp_path / "data/params_checked.txt").read_bytes() == first


@pytest.mark.parametrize("value", ["train", "balanced"])
def test_test_distribution_is_no_key_and_the_message_says_both_sets_are_scored(tmp_path, value):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("data.test_distribution",
                                                                    value)))
    proc = run_check(tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == (
        "params.yaml is invalid: data.test_distribution is not a params key: every run scores "
        "both test sets, the report's 529-image subset (test_acc, test_auc) and the official "
        "1,000-image split (official_acc, official_auc); delete data.test_distribution from "
        "params.yaml\n")
    assert not (tmp_path / "data").exists()


def test_stage_fails_with_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value("q2.ffn_lr1.lr", -1)))
    proc = run_check(tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == ("params.yaml is invalid: q2.ffn_lr1.lr must be a finite number > 0, "
                           "got -1\n")
    assert not (tmp_path / "data").exists()


def test_read_yaml_gives_safe_loads_values_through_libyaml():
    assert yaml.__with_libyaml__ and SAFE_LOADER is yaml.CSafeLoader   # PyYAML's wheels have it
    for name in ("dvc.yaml", "params.yaml", "reports/report_values.yaml"):
        text = (REPO / name).read_text()
        assert read_yaml(text) == yaml.safe_load(text)
    assert read_yaml("lr: 1.0e-3\nseeds: [42, 1]\n") == {"lr": 0.001, "seeds": [42, 1]}
    with pytest.raises(yaml.constructor.ConstructorError):   # safe: no Python objects
        read_yaml("run: !!python/name:os.system ''")
