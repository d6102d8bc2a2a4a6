"""The torch benchmark's kernel floor must do the same arithmetic as the training loop, or the
floor it reports means nothing; the epoch-evaluation benchmark must still run against ``fit``."""
import pytest
import torch
import torch.nn.functional as F
import yaml

from benchmarks import bench_epoch_eval, bench_torch
from hw1.torch_models import build_model
from hw1.torch_training import make_optimizer


@pytest.mark.parametrize("batch_size", [16, 256, 5])
def test_hand_step_matches_autograd_and_torch_optim_over_several_steps(batch_size):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4 * batch_size, 784, generator=generator)
    y = torch.randint(0, 4, (4 * batch_size,), generator=generator)
    by_hand = build_model(bench_torch.TABLE3, seed=1)
    reference = build_model(bench_torch.TABLE3, seed=1)
    optimizer = make_optimizer(reference, "sgd", bench_torch.LR, 0.0)
    params = list(by_hand.parameters())
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        with torch.no_grad():
            bench_torch.hand_step(params, xb, yb, bench_torch.LR)
        optimizer.zero_grad()
        F.cross_entropy(reference(xb), yb).backward()
        optimizer.step()
    start = build_model(bench_torch.TABLE3, seed=1)
    for mine, theirs, before in zip(params, reference.parameters(), start.parameters()):
        assert not torch.equal(theirs, before)  # the steps moved every tensor
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_check_hand_step_rejects_a_wrong_step(monkeypatch):
    x, y = torch.rand(256, 784), torch.randint(0, 4, (256,))
    assert bench_torch.check_hand_step(x, y) < 1e-5
    real = bench_torch.hand_step
    monkeypatch.setattr(bench_torch, "hand_step",
                        lambda params, xb, yb, lr: real(params, xb, yb, 2 * lr))
    with pytest.raises(AssertionError, match="differs from autograd"):
        bench_torch.check_hand_step(x, y)


def test_epoch_eval_benchmark_times_both_paths_and_estimates_every_run(tmp_path, capsys):
    ffn = {"model": "feedforward", "epochs": 20, "lr": 0.1, "batch_size": 16,
           "hidden_size": 200, "layers": 2, "dropout": 0.0, "activation": "relu",
           "l2_decay": 0.0, "optimizer": "sgd", "device": "auto"}
    params = {"train": ffn, "q2": {"wide": {**ffn, "epochs": 150, "batch_size": 256},
                                   "dropout": {**ffn, "dropout": 0.2}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    bench_epoch_eval.main(["--scale", "0.002", "--repeats", "1",
                           "--params", str(tmp_path / "params.yaml")])
    out = capsys.readouterr().out
    assert "feedforward batch 16 (1 thread(s); timed as train)" in out
    assert "agree in everything but train_acc" in out
    assert "estimate, one seed of the 3 PyTorch runs" in out
    assert "feedforward batch 16: 2 run(s), 40 epochs" in out
    assert "feedforward batch 256: 1 run(s), 150 epochs" in out
