"""Adversarial training: it raises PGD robust accuracy over standard training, stays in the threat, resumes
bit for bit, warms eps up on schedule, and the catastrophic-overfitting guard stops and restores."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advx.attacks import PGD
from advx.cli import main
from advx.data import load
from advx.defenses.loop import EpochStats, TrainConfig, accuracy, train
from advx.defenses.training import TRADES, FGSMRSTraining, NoiseTraining, OverfitGuard, PGDTraining
from advx.threat import L2, Linf
from advx.zoo import load_model


@pytest.fixture(scope="module")
def mnist():
    return load("mnist", "train", n=1000, seed=0), load("mnist", "test", n=300, seed=1)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def trained(data, defense: str, **options) -> nn.Module:
    model = mlp()
    train(model, data, TrainConfig(epochs=5, batch_size=50, lr=2e-3, seed=0, defense=defense, defense_options=options))
    return model


@pytest.fixture(scope="module")
def standard_robust_accuracy(mnist):
    train_data, test = mnist
    model = trained(train_data, "none")
    return PGD(Linf(0.1), steps=10)(model, test.x, test.y).robust_accuracy()


@pytest.mark.parametrize("defense, options", [("fgsm-rs", {"eps": 0.1}), ("pgd", {"eps": 0.1, "steps": 3}),
                                              ("trades", {"eps": 0.1, "steps": 3, "beta": 3.0})])
def test_adversarial_training_raises_pgd_robust_accuracy(mnist, standard_robust_accuracy, defense, options):
    train_data, test = mnist
    model = trained(train_data, defense, **options)
    robust = PGD(Linf(0.1), steps=10)(model, test.x, test.y).robust_accuracy()
    assert robust > standard_robust_accuracy + 0.15, (robust, standard_robust_accuracy)
    assert accuracy(model, test.x, test.y) > 0.6  # and it still classifies


class Recorder(nn.Module):
    """Logs every input the objective feeds the model."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.model(x)


@pytest.mark.parametrize("objective", [PGDTraining(eps=0.1, steps=3), FGSMRSTraining(eps=0.1),
                                       TRADES(eps=0.1, steps=2), PGDTraining(threat=L2(1.0), steps=3),
                                       PGDTraining(threat="l2:1.0", steps=3)])
def test_objectives_attack_inside_the_threat_and_raise_the_loss(mnist, objective):
    x, y = mnist[0].x[:64], mnist[0].y[:64]
    model = Recorder(trained(mnist[0], "none")).train()
    model.zero_grad(set_to_none=True)
    loss, logits = objective(model, x, y, torch.Generator().manual_seed(0))
    assert model.training  # the mode is given back after the inner maximisation in eval mode
    threat = objective.threat
    for seen in model.seen:
        for part in seen.split(len(x)):  # TRADES feeds [x, x'] as one batch
            assert (threat.distance(part, x) <= threat.eps + 1e-5).all() and part.min() >= 0 and part.max() <= 1
    with torch.no_grad():
        clean = F.cross_entropy(model.model(x), y)
    assert F.cross_entropy(logits, y) > clean + 0.1  # the returned logits are of the adversarial batch
    assert loss.requires_grad and all(p.grad is None for p in model.parameters())  # input gradients only


def test_noise_objective_adds_gaussian_noise_of_sigma(mnist):
    x, y = mnist[0].x[:200], mnist[0].y[:200]
    model = Recorder(nn.Flatten())
    NoiseTraining(sigma=0.5)(model, x, y, torch.Generator().manual_seed(0))
    residual = model.seen[0] - x
    assert abs(float(residual.std()) - 0.5) < 0.01 and abs(float(residual.mean())) < 0.01


def test_warmup_ramps_eps_linearly_then_holds():
    objective = PGDTraining(eps=0.3, steps=2, warmup=0.5)
    eps = []
    for step in range(10):
        objective.at_step(step, 10)
        eps.append(objective.current.eps)
    assert eps == pytest.approx([0.06, 0.12, 0.18, 0.24, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match="warmup"):
        PGDTraining(eps=0.3, warmup=2.0)


@pytest.mark.parametrize("defense, options", [("trades", {"eps": 0.2, "steps": 2, "warmup": 0.5}),
                                              ("fgsm-rs", {"eps": 0.2})])
def test_resume_reproduces_the_uninterrupted_adversarial_run(mnist, tmp_path, defense, options):
    data = (mnist[0].x[:96], mnist[0].y[:96])
    config = TrainConfig(epochs=2, batch_size=32, lr=2e-3, seed=3, defense=defense, defense_options=options)
    straight = mlp()
    full = train(straight, data, config, checkpoint=tmp_path / "a.ckpt.safetensors")
    interrupted = mlp()
    train(interrupted, data, config, checkpoint=tmp_path / "b.ckpt.safetensors", on_epoch=lambda s: s.epoch == 1)
    assert not torch.equal(interrupted[1].weight, straight[1].weight)  # stopped after epoch 1
    torch.manual_seed(99)
    resumed = mlp()
    rest = train(resumed, data, config, checkpoint=tmp_path / "b.ckpt.safetensors", resume=True)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h.loss for h in rest] == [h.loss for h in full]
    other = TrainConfig(epochs=2, batch_size=32, lr=2e-3, seed=3, defense=defense, defense_options={"eps": 0.25})
    with pytest.raises(ValueError, match="different config"):
        train(mlp(), data, other, checkpoint=tmp_path / "b.ckpt.safetensors", resume=True)


def test_overfit_guard_stops_on_a_robust_accuracy_collapse_and_restores(mnist):
    model = trained(mnist[0], "none")
    x, y = mnist[1].x[:128], mnist[1].y[:128]
    guard = OverfitGuard(model, x, y, eps=0.01, steps=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert guard(EpochStats(1, 0.0, 0.0, None, 0.0, 0.0)) is False
    assert guard.history[0][1] > 0.5
    with torch.no_grad():  # a collapse: the model now answers one class
        for p in model.parameters():
            p.zero_()
    stats = EpochStats(2, 0.0, 0.0, None, 0.0, 0.0)
    assert guard(stats) is True and guard.stopped_at == 2
    assert stats.extra["guard_robust_accuracy"] < guard.history[0][1] - 0.2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the last good epoch is back


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="eps"):
        PGDTraining()
    with pytest.raises(ValueError, match="steps"):
        PGDTraining(eps=0.1, steps=0)
    with pytest.raises(ValueError, match="beta"):
        TRADES(eps=0.1, beta=-1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        train(mlp(), (torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)),
              TrainConfig(epochs=1, defense="pgd", defense_options={"epsilon": 0.1}))
    with pytest.raises(ValueError, match="takes no defense_options"):
        train(mlp(), (torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)),
              TrainConfig(epochs=1, defense="none", defense_options={"eps": 0.1}))


def test_cli_adversarial_training_records_the_defense_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    out = tmp_path / "at.safetensors"
    args = ["train", "--arch", "lenet", "--data", "mnist", "--epochs", "1", "--n-train", "320", "--eval-n", "0",
            "--batch-size", "64", "--no-progress", "--defense", "fgsm-rs", "--eps", "0.3", "--out", str(out)]
    assert main(args) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["defense"] == "fgsm-rs" and meta["defense_options"] == {"eps": 0.3}
    assert meta["train_samples"] == 320 - 256 and meta["guard"]["held_out"] == 256  # the guard batch is held out
    assert len(meta["guard"]["pgd_accuracy"]) == 1 and "--defense fgsm-rs --eps 0.3" in meta["command"]
    assert "PGD-5 accuracy on the guard batch" in capsys.readouterr().out
    first = load_model(out).state_dict()
    assert main(args + ["--resume"]) == 0
    assert all(torch.equal(first[k], v) for k, v in load_model(out).state_dict().items())
    assert main(["train", "--out", str(tmp_path / "x.safetensors"), "--defense", "pgd"]) == 2  # no --eps
    assert main(["train", "--out", str(tmp_path / "x.safetensors"), "--warmup", "0.5"]) == 2  # not adversarial


def test_cli_knows_the_defenses_in_a_fresh_process(tmp_path):
    """Nothing but the CLI imported: --defense pgd is known (it only lacks --eps)."""
    import subprocess
    import sys

    code = ("import sys; from advx.cli import main; "
            f"sys.exit(main(['train', '--out', {str(tmp_path / 'x.safetensors')!r}, '--defense', 'pgd']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "needs --eps" in done.stdout + done.stderr, done.stdout + done.stderr


def test_cli_reports_clean_and_pgd_test_accuracy_each_epoch(tmp_path, monkeypatch, capsys):
    from advx.defenses.training import pgd_accuracy

    monkeypatch.setenv("ADVX_OFFLINE", "1")
    out = tmp_path / "pgd.safetensors"
    args = ["train", "--arch", "lenet", "--data", "mnist", "--epochs", "2", "--n-train", "256", "--eval-n", "48",
            "--batch-size", "64", "--no-progress", "--defense", "pgd", "--eps", "0.2", "--steps", "2",
            "--out", str(out)]
    assert main(args) == 0
    history = json.loads(out.with_suffix(".json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all("test_robust_accuracy" in h for h in history)
    assert "PGD-10 test accuracy (eps 0.2, 48 points)" in capsys.readouterr().out
    # the recorded figure is PGD-10 accuracy of the final weights on the same 48 test points
    test = load("mnist", "test").subset(48, seed=0)
    again = pgd_accuracy(load_model(out), test.x, test.y, Linf(0.2), steps=10, seed=0)
    assert history[-1]["test_robust_accuracy"] == round(again, 4)
    assert history[-1]["test_robust_accuracy"] <= history[-1]["test_accuracy"] + 1 / 48
