"""The torch benchmark's kernel floor must do the same arithmetic as the training loop, or the
floor it reports means nothing."""
import pytest
import torch
import torch.nn.functional as F

from benchmarks import bench_torch
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
