"""The one training loop's hooks for other media: parameter groups with learning-rate scales, the
"linear" schedule, ``on_epoch_start`` (data that changes size between epochs) and data state that
survives a resume."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from advx.defenses.loop import CheckpointError, TensorBatches, TrainConfig, read_checkpoint, train


def _data(n: int = 40, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, x[:, :2].argmax(1)


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))


def test_linear_schedule_warms_up_then_decays_linearly_to_zero():
    config = TrainConfig(lr=1.0, schedule="linear", lr_warmup=0.25)
    # 8 steps: rise = 2 warm-up steps, then (8 - step) / 6
    assert [config.lr_at(s, 8) for s in range(8)] == pytest.approx([0.5, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")


def test_each_parameter_group_moves_at_its_scale_of_the_rate():
    # Adam's first step moves every parameter by lr * sign(gradient) (up to eps): a known answer per group
    a, b = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    model = nn.ModuleDict({"a": a, "b": b})
    with torch.no_grad():
        a.weight.fill_(0.5), b.weight.fill_(0.5)

    def objective(m, x, y, g):
        return (m["a"](x) + m["b"](x)).sum(), None

    x = torch.ones(4, 1)
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-3, schedule="constant")
    train(model, (x, torch.zeros(4, dtype=torch.long)), config, objective=objective,
          param_groups=[{"params": a.parameters(), "lr_scale": 1.0}, {"params": b.parameters(), "lr_scale": 10.0}])
    assert float(0.5 - a.weight.detach()) == pytest.approx(1e-3, rel=1e-4)
    assert float(0.5 - b.weight.detach()) == pytest.approx(1e-2, rel=1e-4)


@pytest.mark.parametrize(("groups", "message"), [
    (lambda m: [{"params": m[0].parameters(), "lr_scale": 0.0}], "lr_scale"),
    (lambda m: [{"params": m[0].parameters(), "lr_scale": float("nan")}], "lr_scale"),
    (lambda m: [{"params": nn.Linear(2, 2).parameters()}], "not the model's"),
    (lambda m: [{"params": m[0].parameters()}, {"params": m[0].parameters()}], "repeats"),
    (lambda m: [{"params": m[0].parameters(), "lr": 3.0}], "unknown keys"),
])
def test_bad_parameter_groups_are_refused_by_name(groups, message):
    model = _net()
    with pytest.raises(ValueError, match=message):
        train(model, _data(), TrainConfig(epochs=1), param_groups=groups(model))


def test_resuming_with_other_rate_scales_is_another_run(tmp_path):
    model, ckpt = _net(), tmp_path / "m.ckpt.safetensors"
    config = TrainConfig(epochs=1, batch_size=20)
    train(model, _data(), config, checkpoint=ckpt, param_groups=[{"params": model.parameters(), "lr_scale": 2.0}])
    other = _net()
    with pytest.raises(CheckpointError, match="param_groups"):
        train(other, _data(), config, checkpoint=ckpt, resume=True,
              param_groups=[{"params": other.parameters(), "lr_scale": 3.0}])


def test_a_hook_that_changes_nothing_changes_nothing():
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-2, seed=3)
    plain, hooked = _net(), _net()
    calls: list[int] = []
    train(plain, _data(), config)
    train(hooked, _data(), config, on_epoch_start=lambda epoch, m: calls.append(epoch))
    assert calls == [0, 1]
    for (name, p), q in zip(plain.state_dict().items(), hooked.state_dict().values()):
        assert torch.equal(p, q), name


class _Growing(TensorBatches):
    """Data whose epoch e holds the first 16 + 8 e examples: its size is its state."""

    def __init__(self, x, y):
        super().__init__(x, y)
        self.size = 16

    def __len__(self) -> int:
        return self.size

    def grow(self, epoch: int, model) -> None:
        if epoch % 2 == 0:  # grows on even epochs only: an odd epoch needs the state to know its size
            self.size = 16 + 8 * epoch

    def state(self) -> dict:
        return {"size": self.size}

    def load_state(self, state: dict) -> None:
        self.size = state["size"]


def test_every_epoch_is_drawn_from_the_data_as_the_hook_left_it():
    x, y = _data(64)
    data, seen = _Growing(x, y), []

    def objective(model, xb, yb, g):
        seen.append(len(xb))
        return nn.functional.cross_entropy(model(xb), yb), None

    history = train(_net(), data, TrainConfig(epochs=3, batch_size=10), objective=objective,
                    on_epoch_start=data.grow)
    assert len(history) == 3
    # sizes 16, 16, 32 -> batches [10, 6], [10, 6], [10, 10, 10, 2]
    assert seen == [10, 6, 10, 6, 10, 10, 10, 2]


def test_data_state_is_checkpointed_and_restored_on_resume(tmp_path):
    x, y = _data(64)
    config = TrainConfig(epochs=4, batch_size=8, lr=1e-2, seed=5)
    straight_data, straight = _Growing(x, y), _net()
    train(straight, straight_data, config, on_epoch_start=straight_data.grow)
    first_data, ckpt = _Growing(x, y), tmp_path / "g.ckpt.safetensors"
    train(_net(), first_data, config, checkpoint=ckpt, on_epoch_start=first_data.grow,
          on_epoch=lambda s: s.epoch == 3)  # stops after epoch 3 (index 2, which grew the data to 32)
    _, meta = read_checkpoint(ckpt)
    assert json.loads(meta["data_state"]) == {"size": 32}
    resumed_data, resumed = _Growing(x, y), _net(seed=9)
    train(resumed, resumed_data, config, checkpoint=ckpt, resume=True, on_epoch_start=resumed_data.grow)
    assert resumed_data.size == 32  # epoch index 3 does not grow: its size came from the checkpoint
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name


def test_stop_after_ends_on_the_full_schedule_and_a_resume_without_it_finishes(tmp_path):
    config = TrainConfig(epochs=4, batch_size=8, lr=1e-2, seed=6)  # cosine over 4 epochs
    straight = _net()
    full = train(straight, _data(), config)
    ckpt = tmp_path / "s.ckpt.safetensors"
    early = train(_net(), _data(), config, checkpoint=ckpt, stop_after=2)
    assert [h.epoch for h in early] == [1, 2]
    assert [h.lr for h in early] == [h.lr for h in full[:2]]  # the 4-epoch schedule's rates, not a 2-epoch one's
    assert early[-1].lr > config.lr_at(4 * 5 - 1, 4 * 5)  # far from annealed
    assert train(_net(), _data(), config, checkpoint=ckpt, resume=True, stop_after=2)[-1].epoch == 2  # nothing left
    resumed = _net(seed=3)
    train(resumed, _data(), config, checkpoint=ckpt, resume=True)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    for bad in (0, 5, 2.0, True):
        with pytest.raises(ValueError, match="stop_after"):
            train(_net(), _data(), config, stop_after=bad)


@settings(deadline=None)
@given(schedule=st.sampled_from(["cosine", "onecycle", "linear", "constant"]), total=st.integers(1, 400),
       warmup=st.floats(0, 1), lr=st.floats(1e-6, 10))
def test_every_schedule_stays_in_0_lr_rises_through_its_warm_up_then_never_rises(schedule, total, warmup, lr):
    config = TrainConfig(lr=lr, schedule=schedule, lr_warmup=warmup)
    rates = [config.lr_at(step, total) for step in range(total)]
    assert all(0 <= r <= lr * (1 + 1e-12) for r in rates)
    rise = max(1, round(warmup * total)) if schedule in ("onecycle", "linear") else 0
    assert all(a < b for a, b in zip(rates[:rise], rates[1:rise]))  # the warm-up climbs
    assert all(b <= a * (1 + 1e-12) for a, b in zip(rates[rise:], rates[rise + 1:]))  # then it never rises
    if schedule == "linear" and total > rise + 1:
        steps = [a - b for a, b in zip(rates[rise:], rates[rise + 1:])]
        assert max(steps) - min(steps) <= 1e-9 * lr  # a straight line down
