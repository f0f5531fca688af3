"""The one training loop (advx.defenses.loop): checkpoints bound to their run, no NaN trained on or saved,
no checkpoint silently overwritten, and any medium plugged in through ``Batches``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from advx.cli import main
from advx.defenses.loop import (
    CheckpointError,
    TensorBatches,
    TrainConfig,
    TrainingDiverged,
    _checksum,
    load_checkpoint,
    read_checkpoint,
    train,
)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


def _data(n: int = 48, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    return x, (x[:, :3].argmax(1))


CONFIG = TrainConfig(epochs=2, batch_size=16, lr=1e-2, seed=1)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "run.ckpt.safetensors"
    train(_mlp(), _data(), CONFIG, checkpoint=path, on_epoch=lambda s: s.epoch == 1)
    return path


def test_a_checkpoint_carries_its_fingerprint_and_a_checksum(checkpoint):
    tensors, meta = read_checkpoint(checkpoint)
    fp = json.loads(meta["fingerprint"])
    assert fp["config"]["seed"] == 1 and fp["data"]["n"] == 48 and len(fp["data"]["sha256"]) == 64
    assert fp["model"]["state"]["1.weight"] == [16, 12] and meta["checksum"] == _checksum(tensors, meta)


def test_resume_refuses_flipped_bytes(checkpoint):
    raw = bytearray(checkpoint.read_bytes())
    raw[-5] ^= 0x10  # a byte of the last tensor's data: still a valid safetensors file
    checkpoint.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum does not match"):
        train(_mlp(), _data(), CONFIG, checkpoint=checkpoint, resume=True)
    raw[12] ^= 0xFF  # inside the JSON header: not even readable
    checkpoint.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(checkpoint, _mlp())


def test_resume_refuses_nan_weights_even_with_a_valid_checksum(checkpoint):
    with safe_open(str(checkpoint), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors["model.1.weight"][0, 0] = float("nan")
    meta["checksum"] = _checksum(tensors, meta)
    save_file(tensors, str(checkpoint), metadata=meta)
    with pytest.raises(CheckpointError, match=r"non-finite weights \(NaN or inf in 1.weight"):
        train(_mlp(), _data(), CONFIG, checkpoint=checkpoint, resume=True)


def test_resume_refuses_another_runs_checkpoint(checkpoint):
    with pytest.raises(CheckpointError, match="fingerprint differs in data"):
        train(_mlp(), _data(seed=5), CONFIG, checkpoint=checkpoint, resume=True)
    with pytest.raises(CheckpointError, match="different config"):
        train(_mlp(), _data(), TrainConfig(epochs=2, batch_size=16, lr=1e-2, seed=2), checkpoint=checkpoint,
              resume=True)


def test_an_existing_checkpoint_is_not_overwritten_unless_asked(checkpoint):
    before = checkpoint.read_bytes()
    with pytest.raises(FileExistsError, match="resume=True.*overwrite=True"):
        train(_mlp(), _data(), CONFIG, checkpoint=checkpoint)
    assert checkpoint.read_bytes() == before
    train(_mlp(), _data(), CONFIG, checkpoint=checkpoint, overwrite=True)
    assert load_checkpoint(checkpoint, _mlp())[0] == 2


def test_a_non_finite_loss_stops_training_with_its_epoch_and_step():
    x, y = _data()
    x[20, 3] = float("nan")  # the batch holding row 20 gets a NaN loss
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 1, step \d of 3"):
        train(_mlp(), (x, y), CONFIG)
    with pytest.raises(TrainingDiverged, match="loss is inf"):
        train(_mlp(), _data(), CONFIG, objective=lambda m, xb, yb, g: (m(xb).abs().sum() * float("inf"), None))


class _Dicts:
    """A medium's data: inputs are dicts of tensors, labels a pair (as a CTC batch would be)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def batch(self, idx):
        return {"features": self.x[idx]}, (self.y[idx], torch.full((len(idx),), 1))

    def fingerprint(self):
        return TensorBatches(self.x, self.y).fingerprint()


def _dict_objective(model, x, y, generator):
    labels, _lengths = y
    return nn.functional.cross_entropy(model(x["features"]), labels), None


def _jitter(x, generator):
    return {"features": x["features"] + 0.01 * torch.randn(x["features"].shape, generator=generator)}


def test_any_medium_trains_and_resumes_bit_for_bit_through_batches(tmp_path):
    data = _Dicts(*_data())
    config = TrainConfig(epochs=3, batch_size=16, lr=1e-2, optimizer="adamw", schedule="onecycle", seed=4,
                         grad_clip=1.0)
    kwargs = {"objective": _dict_objective, "augment": _jitter, "eval_fn": lambda m: 0.5}
    straight = _mlp()
    full = train(straight, data, config, checkpoint=tmp_path / "a.ckpt.safetensors", **kwargs)
    assert [h.epoch for h in full] == [1, 2, 3] and all(h.test_accuracy == 0.5 for h in full)
    assert all(h.train_accuracy != h.train_accuracy for h in full)  # no logits: NaN, not a made-up number
    train(_mlp(), data, config, checkpoint=tmp_path / "b.ckpt.safetensors", on_epoch=lambda s: s.epoch == 1,
          **kwargs)
    resumed = _mlp(seed=7)
    rest = train(resumed, data, config, checkpoint=tmp_path / "b.ckpt.safetensors", resume=True, **kwargs)
    assert [h.loss for h in rest] == [h.loss for h in full]
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_cli_train_refuses_to_overwrite_and_to_resume_a_damaged_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    out = tmp_path / "m.safetensors"
    args = ["train", "--arch", "lenet", "--data", "mnist", "--epochs", "1", "--n-train", "32", "--eval-n", "0",
            "--batch-size", "32", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    ckpt = out.with_suffix(".ckpt.safetensors")
    raw = bytearray(ckpt.read_bytes())
    raw[-3] ^= 0x01
    ckpt.write_bytes(bytes(raw))
    assert main(args + ["--resume"]) == 2
    assert "checksum" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    capsys.readouterr()
    assert main(args + ["--overwrite", "--lr", "1e30", "--batch-size", "8"]) == 1  # Adam at lr 1e30: NaN soon
    err = capsys.readouterr().err
    assert "TrainingDiverged: training diverged: the loss is nan at epoch 1" in err and "kept" not in err


def test_cli_trains_the_keyword_spotter_through_the_same_loop(tmp_path, capsys):
    """Speech through the one loop: advx.audio's data, model and playback augmentation, adversarially (PGD in dB)."""
    out = tmp_path / "kws.safetensors"
    args = ["train", "--arch", "kws", "--data", "digits", "--epochs", "1", "--n-train", "16", "--eval-n", "8",
            "--n-test", "8", "--batch-size", "8", "--width", "2", "--optimizer", "adamw", "--schedule", "onecycle",
            "--label-smoothing", "0.05", "--defense", "pgd", "--threat", "db:-30", "--steps", "1", "--no-progress",
            "--out", str(out)]
    assert main(args) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["arch"] == "kws" and meta["train_clips"] == 16 and meta["test_clips"] == 8
    assert meta["recipe"]["defense_options"] == {"threat": "db:-30", "steps": 1}
    assert "--threat db:-30" in meta["command"] and "val accuracy" in capsys.readouterr().out
    _, ckpt_meta = read_checkpoint(out.with_suffix(".ckpt.safetensors"))
    assert json.loads(ckpt_meta["fingerprint"])["model"]["class"] == "KeywordSpotter"
    assert main(args[:-2] + ["--data", "mnist", "--out", str(tmp_path / "x.safetensors")]) == 2  # kws needs digits


def test_cli_trains_a_text_cnn_through_the_same_loop_in_advx_text_format(tmp_path):
    from advx.text.models import load_text_model

    out = tmp_path / "tw.safetensors"
    args = ["train", "--arch", "wordcnn", "--data", "tweets", "--epochs", "1", "--n-train", "64", "--eval-n", "16",
            "--batch-size", "32", "--max-len", "24", "--vocab-size", "300", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["architecture"] == "WordCNN" and meta["train_size"] == 64 and 0 <= meta["test_accuracy"] <= 1
    _, ckpt_meta = read_checkpoint(out.with_suffix(".ckpt.safetensors"))
    assert json.loads(ckpt_meta["fingerprint"])["data"]["tokenizer"]["max_len"] == 24
    assert load_text_model(out.with_suffix(".json")) is not None  # what advx text attack --model OUT.json reads
    assert main(args[:-2] + ["--data", "mnist", "--out", str(tmp_path / "x.safetensors")]) == 2
