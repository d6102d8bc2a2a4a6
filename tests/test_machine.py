"""What a run needs of the machine: `check_params` refuses a device the machine lacks and a run
whose memory need exceeds the machine's memory, naming the key."""
from __future__ import annotations

import os

import pytest
import torch
from test_params import PARAMS, with_value

from hw1 import machine
from hw1.data import prepared_sizes
from hw1.params import ParamsError
from stages.check_params import check


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("key", ["train.device", "q2.ffn_lr1.device"])
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_device_the_machine_lacks_is_refused_naming_the_key(no_cuda, key, device):
    with pytest.raises(ParamsError) as err:
        check(with_value(key, device))
    assert str(err.value) == (f"{key}: device {device!r} was asked for but CUDA is not available "
                              f"here; use device: auto or cpu")


def test_a_cuda_index_beyond_the_machines_devices_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ParamsError, match=r"^train\.device: device 'cuda:3' was asked for but "
                                          r"this machine has 1 CUDA device\(s\)"):
        check(with_value("train.device", "cuda:3"))


@pytest.mark.parametrize("key, part", [
    ("train.hidden_size", "parameters, gradients and optimizer state"),
    ("q2.ffn_bs1024.hidden_size", "parameters, gradients and optimizer state"),
    ("q1.mlp.hidden_size", "evaluation blocks"),
])
def test_a_run_too_big_for_the_machines_memory_is_refused_naming_the_key(no_cuda, key, part):
    with pytest.raises(ParamsError) as err:
        check(with_value(key, 10_000_000))
    run = key.rsplit(".", 1)[0]
    message = str(err.value)
    assert message.startswith(f"{key}: run {run} needs about ")
    assert f" {part} " in message or f"({part} " in message
    assert message.endswith(f"more than the {machine.human(machine.memory_bytes())} of this "
                            f"machine; make it smaller")


def test_the_data_a_run_holds_counts_and_names_the_data_key(no_cuda, monkeypatch):
    monkeypatch.setattr(machine, "memory_bytes", lambda: 256 << 20)  # a 256 MiB container
    with pytest.raises(ParamsError, match=r"^data\.source: run train needs about 6\d\d\.\d MiB "
                                          r"of memory .*; data 618\.4 MiB\), more than the "
                                          r"256\.0 MiB of this machine"):
        check(PARAMS)
    small = with_value("data.source", "synthetic")
    small["data"]["synthetic"]["scale"] = 0.1
    check(small)  # a tenth of the data fits


def test_the_estimate_counts_adam_state_and_the_shuffle_buffer():
    sizes = prepared_sizes(PARAMS["data"])
    sgd = machine.torch_need(PARAMS["train"], "train", sizes, PARAMS["data"])
    adam = machine.torch_need({**PARAMS["train"], "optimizer": "adam"}, "train", sizes,
                              PARAMS["data"])
    n_params = 784 * 200 + 200 + 200 * 200 + 200 + 200 * 4 + 4
    part = "parameters, gradients and optimizer state"
    assert sgd[part] == (2 * n_params * 4, "train.hidden_size")
    assert adam[part] == (4 * n_params * 4, "train.hidden_size")
    assert sgd["data"] == ((2 * 97477 + 10832 + 1000) * 784 * 4, "data.source")


def test_machine_memory_is_the_physical_memory_or_a_lower_cgroup_limit():
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < machine.memory_bytes() <= physical
