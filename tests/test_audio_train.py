"""The speech recipes through the one loop (``advx train --arch kws|ctc``): --stop-after, --init, --floor-db and
the best-val-epoch selection, on tiny slices of the real espeak-ng data (a few seconds each)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from advx.audio.models import KeywordSpotter
from advx.cli import main
from advx.cli.train_speech import BestEpoch
from advx.defenses.loop import EpochStats, TrainConfig, read_checkpoint

#: 64 training clips in 4 batches of 16, a 2-channel keyword spotter: about a second an epoch
KWS = ["train", "--arch", "kws", "--data", "digits", "--n-train", "64", "--eval-n", "16", "--n-test", "16",
       "--batch-size", "16", "--width", "2", "--optimizer", "adamw", "--schedule", "onecycle", "--lr", "0.003",
       "--threads", "1", "--no-progress"]


def _meta(out):
    return json.loads(out.with_suffix(".json").read_text())


def test_stop_after_ends_early_on_the_full_schedule_and_resume_finishes_it(tmp_path, capsys):
    stopped, full = tmp_path / "stopped.safetensors", tmp_path / "full.safetensors"
    assert main([*KWS, "--epochs", "3", "--stop-after", "1", "--out", str(stopped)]) == 0
    meta = _meta(stopped)
    assert [h["epoch"] for h in meta["history"]] == [1] and meta["recipe"]["stop_after"] == 1
    assert int(read_checkpoint(stopped.with_suffix(".ckpt.safetensors"))[1]["epoch"]) == 1
    steps = 64 // 16
    three = TrainConfig(epochs=3, batch_size=16, lr=0.003, schedule="onecycle", lr_warmup=0.2)
    one = TrainConfig(epochs=1, batch_size=16, lr=0.003, schedule="onecycle", lr_warmup=0.2)
    # the lr of epoch 1's last step is that of the 3-epoch schedule (still near the peak), not the 1-epoch one (~0)
    assert meta["history"][0]["lr"] == pytest.approx(three.lr_at(steps - 1, 3 * steps), rel=1e-12)
    assert abs(three.lr_at(steps - 1, 3 * steps) - one.lr_at(steps - 1, steps)) > 1e-3
    assert "--epochs 3" in meta["command"] and "--stop-after 1" in meta["command"]
    assert main([*KWS, "--epochs", "3", "--stop-after", "1", "--resume", "--out", str(stopped)]) == 2
    assert "--stop-after" in capsys.readouterr().err  # already there: nothing to do
    # resumed without --stop-after, the run finishes the schedule: the same weights as an uninterrupted run
    assert main([*KWS, "--epochs", "3", "--resume", "--out", str(stopped)]) == 0
    assert main([*KWS, "--epochs", "3", "--out", str(full)]) == 0
    assert [h["epoch"] for h in _meta(stopped)["history"]] == [1, 2, 3]
    assert _meta(stopped)["selected_epoch"] == _meta(full)["selected_epoch"]
    a, b = load_file(str(stopped)), load_file(str(full))
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert main([*KWS, "--epochs", "2", "--stop-after", "3", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "--stop-after" in capsys.readouterr().err


def test_init_refuses_weights_of_another_architecture_naming_init(tmp_path, capsys):
    wide = tmp_path / "wide.safetensors"
    save_file(KeywordSpotter(width=3).state_dict(), str(wide))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    for init, says in ((wide, "other shapes"), (junk, "not a readable"), (tmp_path / "absent.safetensors",
                                                                        "does not exist")):
        assert main([*KWS, "--epochs", "1", "--init", str(init), "--out", str(tmp_path / "m.safetensors")]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "--init" in err and says in err, err
        assert ("--width" in err) == (init == wide), err  # the mismatch names the size option to fix
    ctc = tmp_path / "ctc.safetensors"
    from advx.audio.ctc import CTCRecognizer

    save_file(CTCRecognizer(channels=4, hidden=4).state_dict(), str(ctc))
    assert main([*KWS, "--epochs", "1", "--init", str(ctc), "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "--init" in (err := capsys.readouterr().err) and "missing" in err and "unexpected" in err
    assert not (tmp_path / "m.safetensors").exists()
    assert main(["train", "--arch", "lenet", "--data", "mnist", "--init", str(wide),
                 "--out", str(tmp_path / "l.safetensors")]) == 2
    assert "--init applies to the speech recipes" in capsys.readouterr().err


def test_init_starts_training_from_the_given_weights(tmp_path):
    torch.manual_seed(123)
    start = KeywordSpotter(width=2)
    init = tmp_path / "init.safetensors"
    save_file(start.state_dict(), str(init))
    # lr 1e-12: Adam moves each weight by about 1e-12 a step, so the trained weights are the starting ones
    args = [*KWS, "--epochs", "1", "--eval-n", "0", "--lr", "1e-12", "--schedule", "constant", "--optimizer", "adam"]
    warm, cold = tmp_path / "warm.safetensors", tmp_path / "cold.safetensors"
    assert main([*args, "--init", str(init), "--out", str(warm)]) == 0
    assert main([*args, "--out", str(cold)]) == 0
    w, c = load_file(str(warm)), load_file(str(cold))
    params = [name for name, _ in start.named_parameters()]  # batch-norm statistics move at any lr
    assert max(float((w[k] - p).abs().max()) for k, p in start.state_dict().items() if k in params) < 1e-8
    assert max(float((c[k] - p).abs().max()) for k, p in start.state_dict().items() if k in params) > 1e-2
    import hashlib

    assert _meta(warm)["recipe"]["init"]["sha256"] == hashlib.sha256(init.read_bytes()).hexdigest()
    assert f"--init {init}" in _meta(warm)["command"] and _meta(cold)["recipe"]["init"] is None


def test_floor_db_reaches_the_model_and_its_sidecar(tmp_path, capsys):
    out = tmp_path / "floor.safetensors"
    assert main([*KWS, "--epochs", "1", "--floor-db", "-70", "--out", str(out)]) == 0
    meta = _meta(out)
    assert meta["config"]["floor_db"] == -70 and "--floor-db -70" in meta["command"]
    from advx.audio.frontend import LogMel

    model = KeywordSpotter(**meta["config"])
    assert model.frontend.floor == pytest.approx(LogMel(floor_db=-70).floor)
    model.load_state_dict(load_file(str(out)))
    assert main([*KWS, "--epochs", "1", "--channels", "8", "--out", str(tmp_path / "c.safetensors")]) == 2
    assert "--channels" in capsys.readouterr().err  # a CTC size, refused for the keyword spotter
    assert main([*KWS, "--epochs", "1", "--floor-db", "nan", "--out", str(tmp_path / "n.safetensors")]) == 2
    assert "--floor-db" in capsys.readouterr().err


def _stats(epoch: int, score: float | None) -> EpochStats:
    return EpochStats(epoch=epoch, loss=1.0, train_accuracy=0.5, test_accuracy=score, seconds=0.1, lr=1e-3)


def test_best_epoch_restores_the_weights_of_the_best_val_score_ties_to_the_later(tmp_path):
    model = nn.Linear(2, 1)
    out = tmp_path / "m.safetensors"
    best = BestEpoch(model, out, resume=False)
    history = []
    for epoch, score in enumerate([0.5, 0.9, 0.7, 0.9, 0.8], start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)  # the weights "after epoch e" are all e
        history.append(_stats(epoch, score))
        best.update(history[-1])
    assert best.restore(history) == 4 and float(model.weight.detach()[0, 0]) == 4.0  # 0.9 twice: the later one
    # a run resumed after epoch 4: the best weights come from OUT.best.safetensors, not from memory
    with torch.no_grad():
        model.weight.fill_(5)
    again = BestEpoch(model, out, resume=True)
    again.update(_stats(5, 0.8))  # worse than the file's 0.9: not kept
    assert again.restore(history) == 4 and float(model.weight.detach()[0, 0]) == 4.0
    assert BestEpoch(nn.Linear(2, 1), tmp_path / "n.safetensors", resume=False).restore([_stats(1, None)]) is None
    fresh = BestEpoch(model, out, resume=False)  # a fresh run forgets an old run's best
    assert not out.with_suffix(".best.safetensors").exists() and fresh.saved is None


def _scripted_val(monkeypatch, scores: list[float]) -> None:
    """advx.audio.train.accuracy answers ``scores`` to its first calls (the per-epoch val scores), then for real."""
    import advx.audio.train as kws_train

    real, left = kws_train.accuracy, list(scores)
    monkeypatch.setattr(kws_train, "accuracy", lambda *a, **k: left.pop(0) if left else real(*a, **k))


def test_kws_saves_the_weights_of_the_best_val_epoch_not_the_last(tmp_path, monkeypatch):
    from advx.audio.data import load_digits
    from advx.audio.train import accuracy

    at_two, full = tmp_path / "two.safetensors", tmp_path / "full.safetensors"
    _scripted_val(monkeypatch, [0.5, 0.9])
    assert main([*KWS, "--epochs", "3", "--stop-after", "2", "--out", str(at_two)]) == 0  # the weights after epoch 2
    _scripted_val(monkeypatch, [0.5, 0.9, 0.7])
    assert main([*KWS, "--epochs", "3", "--out", str(full)]) == 0
    meta = _meta(full)
    assert [h["val_accuracy"] for h in meta["history"]] == [0.5, 0.9, 0.7]
    assert meta["selected_epoch"] == 2 and meta["val_accuracy"] == 0.9
    saved, two = load_file(str(full)), load_file(str(at_two))
    last = {k[6:]: v for k, v in read_checkpoint(full.with_suffix(".ckpt.safetensors"))[0].items()
            if k.startswith("model.")}
    assert all(torch.equal(saved[k], two[k]) for k in two)  # epoch 2's weights ...
    assert not all(torch.equal(saved[k], last[k]) for k in last)  # ... not epoch 3's (the checkpoint)
    model = KeywordSpotter(**meta["config"])
    model.load_state_dict(saved)
    test = load_digits("espeak", "test", limit=16)
    assert accuracy(model, test.waves, test.labels) == pytest.approx(meta["test_accuracy"], abs=1e-4)  # scored as saved


def test_ctc_recipe_selects_the_best_val_wer_and_scores_test_and_real_clips(tmp_path, capsys):
    from advx.audio.ctc import CTCRecognizer, transcribe
    from advx.audio.ctc_train import word_error_rate
    from advx.audio.phrases import load_phrases

    out = tmp_path / "ctc.safetensors"
    args = ["train", "--arch", "ctc", "--data", "phrases", "--epochs", "2", "--n-train", "64", "--eval-n", "16",
            "--n-test", "8", "--batch-size", "16", "--channels", "8", "--hidden", "8", "--floor-db", "-60",
            "--optimizer", "adamw", "--schedule", "onecycle", "--lr-warmup", "0.1", "--threads", "1", "--no-progress",
            "--out", str(out)]
    assert main(args) == 0
    meta = _meta(out)
    assert meta["config"] == {"n_mels": 40, "channels": 8, "hidden": 8, "floor_db": -60.0, "sample_rate": 16000}
    assert meta["recipe"]["lr_warmup"] == 0.1 and meta["recipe"]["grad_clip"] == 5.0
    wers = [h["val_wer_greedy"] for h in meta["history"]]
    assert meta["selected_epoch"] == min(range(1, 3), key=lambda e: (wers[e - 1], -e))
    assert meta["val_wer_greedy"] == wers[meta["selected_epoch"] - 1]
    assert set(meta["test"]) >= {"greedy", "beam8", "beam8_vocabulary"} and meta["test_clips"] == 8
    model = CTCRecognizer(**meta["config"])
    model.load_state_dict(load_file(str(out)))
    test = load_phrases("test", limit=8)
    assert word_error_rate(transcribe(model, test.waves), test.texts) == pytest.approx(meta["test"]["greedy"]["wer"])
    from advx.audio.ctc_train import real_clips

    real = real_clips()
    if real:  # Debian's pocketsphinx-testdata is installed
        assert meta["real_pocketsphinx_testdata"]["clips"] == len(real)
    assert "--channels 8 --hidden 8" in meta["command"] and "--floor-db -60" in meta["command"]
    assert main([*args[:-1], str(tmp_path / "other.safetensors"), "--init", str(out), "--hidden", "4"]) == 2
    assert "--init" in capsys.readouterr().err
