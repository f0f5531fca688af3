"""Text models train through the one loop: recipes, MiniLM on cached frozen features, adversarial
augmentation (TextAttack's semantics), and ``advx text train``."""

from __future__ import annotations

import json

import pytest
import torch

from advx.cli import main
from advx.defenses.loop import TrainConfig, read_checkpoint, train
from advx.text.attacks import DeepWordBug
from advx.text.data import TextDataset
from advx.text.train import AdversarialAugmentation, TextRecipe, accuracy, prepare

WORDS = ("movie", "film", "plot", "show", "story", "day")


def _toy(repeat: int = 3) -> TextDataset:
    texts = [f"{w} {v}" for w in ("good", "bad") for v in WORDS] * repeat
    return TextDataset(texts, [int(t.startswith("good")) for t in texts], ("neg", "pos"))


def _fit(recipe: TextRecipe, data: TextDataset, **kwargs):
    prep = prepare(recipe, data, seed=0)
    history = train(prep.module, prep.data, TrainConfig(**recipe.training), param_groups=prep.param_groups, **kwargs)
    return prep, history


def test_a_recipe_learns_a_separable_task():
    recipe = TextRecipe("WordCNN", max_len=8, vocab_size=50,
                        training={"epochs": 15, "batch_size": 8, "lr": 1e-2, "optimizer": "adamw",
                                  "schedule": "onecycle"})
    prep, history = _fit(recipe, _toy(4))
    assert accuracy(prep.classifier, _toy(1)) == 1.0
    assert history[-1].loss < history[0].loss


def test_a_recipe_plans_its_schedule_over_its_span():
    assert TextRecipe("CharCNN", schedule_span=2).schedule(8) == (16, 8)
    assert TextRecipe("CharCNN").schedule(8) == (8, None)
    assert TextRecipe("CharCNN", schedule_span=1.5).schedule(3) == (4, 3)  # round(4.5) = 4
    with pytest.raises(ValueError, match="schedule_span"):
        TextRecipe("CharCNN", schedule_span=0.5)


def test_minilm_features_of_kept_texts_are_not_recomputed():
    prep = prepare(TextRecipe("MiniLM", max_len=12), _toy(1), seed=0)
    calls: list[int] = []
    lower = prep.data._lower
    prep.data._lower = lambda texts: calls.append(len(texts)) or lower(texts)
    prep.data.set_extra(["good movie!", "bad film?"], [1, 0])
    kept = prep.data.extra_features[0]
    prep.data.set_extra(["good movie!", "bad film?", "good plot."], [1, 0, 1])
    assert calls == [2, 1] and prep.data.extra_features[0] is kept
    x, _ = prep.data.batch(torch.arange(len(prep.data) - 3, len(prep.data)))
    prep.module.eval()
    with torch.no_grad():
        assert torch.allclose(prep.module(x), prep.classifier.logits(["good movie!", "bad film?", "good plot."]),
                              atol=1e-5)


def test_a_recipe_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="architecture"):
        TextRecipe("LSTM")
    with pytest.raises(ValueError, match="max_len"):
        TextRecipe("CharCNN", max_len=0)


@pytest.mark.parametrize("keep", ["all", "round"])
def test_adversarial_augmentation_trains_on_the_successful_attacks(keep):
    data = _toy()
    recipe = TextRecipe("CharCNN", max_len=16, training={"epochs": 3, "batch_size": 8, "lr": 1e-2})
    prep = prepare(recipe, data, seed=0)
    aug = AdversarialAugmentation(prep.data, prep.classifier, DeepWordBug(query_budget=20), examples=10, seed=0,
                                  keep=keep)
    sizes: list[int] = []

    def start(epoch, model):
        aug(epoch, model)
        sizes.append(len(prep.data))

    train(prep.module, prep.data, TrainConfig(**recipe.training), on_epoch_start=start)
    assert [r["epoch"] for r in aug.rounds] == [2, 3]  # the first epoch is clean
    assert sizes[0] == len(data)
    added = [r["added"] for r in aug.rounds]
    if keep == "round":  # each round's texts replace the last round's (TextAttack's trainer)
        assert sizes[1:] == [len(data) + a for a in added]
    else:  # every round's texts stay
        assert sizes[1:] == [len(data) + added[0], len(data) + added[0] + added[1]]
    assert sum(r["added"] for r in aug.rounds) > 0
    originals = dict(zip(data.texts, data.labels))
    for text, label in zip(prep.data.extra_texts, prep.data.extra_labels):
        assert text not in originals and label in (0, 1)  # an edited text with its source's true label


def test_augmented_data_survives_a_resume_bit_for_bit(tmp_path):
    data = _toy()
    recipe = TextRecipe("CharCNN", max_len=16, training={"epochs": 3, "batch_size": 8, "lr": 1e-2, "seed": 2})

    def run(ckpt, **kwargs):
        prep = prepare(recipe, data, seed=0)
        aug = AdversarialAugmentation(prep.data, prep.classifier, DeepWordBug(query_budget=20), examples=10,
                                      every=2, seed=0)  # one round, before epoch 2; epoch 3 trains on its texts
        train(prep.module, prep.data, TrainConfig(**recipe.training), checkpoint=ckpt, on_epoch_start=aug,
              fingerprint={"augmentation": aug.fingerprint()}, **kwargs)
        return prep, aug

    straight, _ = run(tmp_path / "a.ckpt.safetensors")
    run(tmp_path / "b.ckpt.safetensors", on_epoch=lambda s: s.epoch == 2)
    resumed, aug = run(tmp_path / "b.ckpt.safetensors", resume=True)
    assert aug.rounds == [] and resumed.data.extra_texts == straight.data.extra_texts != []
    for (name, p), q in zip(straight.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.equal(p, q), name


def test_minilm_trains_its_top_layer_on_cached_features_that_equal_the_full_model(tmp_path):
    data = _toy(1)
    recipe = TextRecipe("MiniLM", max_len=12, head_lr_scale=10.0,
                        training={"epochs": 1, "batch_size": 6, "lr": 1e-3, "optimizer": "adamw"})
    prep = prepare(recipe, data, seed=0)
    model = prep.classifier.model
    prep.module.eval()
    x, _ = prep.data.batch(torch.arange(len(data)))
    with torch.no_grad():  # the cached frozen layers + the top layers give the full model's logits
        assert torch.allclose(prep.module(x), prep.classifier.logits(data.texts), atol=1e-5)
    frozen = {k: v.clone() for k, v in model.encoder.state_dict().items() if not model.trainable(k)}
    top = {k: v.clone() for k, v in prep.module.state_dict().items()}
    assert set(top) == {k for k in top if k.startswith(("layers.", "head."))}
    assert [g["lr_scale"] for g in prep.param_groups] == [1.0, 10.0]
    ckpt = tmp_path / "m.ckpt.safetensors"
    train(prep.module, prep.data, TrainConfig(**recipe.training), checkpoint=ckpt, param_groups=prep.param_groups)
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in frozen.items())  # frozen stays frozen
    assert any(not torch.equal(v, prep.module.state_dict()[k]) for k, v in top.items())
    tensors, _ = read_checkpoint(ckpt)  # the checkpoint holds what fine-tuning changes, not the 22M encoder
    assert {k.split(".")[1] for k in tensors if k.startswith("model.")} == {"layers", "head"}


def test_cli_text_train_runs_a_recipe_through_the_loop_and_guards_its_files(tmp_path, capsys):
    out = tmp_path / "tw.json"
    args = ["text", "train", "--model", "tweets-wordcnn", "--epochs", "1", "-n", "64", "--eval-n", "0",
            "--no-progress", "--out", str(out)]
    assert main(args) == 0
    meta = json.loads(out.read_text())
    assert meta["train_size"] == 64 and meta["epochs"] == len(meta["history"]) == 1 and 0 <= meta["test_accuracy"] <= 1
    assert meta["recipe"]["training"]["epochs"] == 2  # the CNN recipes plan their schedule for twice the epochs
    assert meta["recipe"]["training"]["optimizer"] == "adamw" and meta["command"].startswith("advx text train")
    _, ckpt = read_checkpoint(tmp_path / "tw.ckpt.safetensors")
    assert json.loads(ckpt["fingerprint"])["recipe"]["architecture"] == "WordCNN"
    assert main(args) == 2  # the model exists: --resume or --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # the checkpoint is complete: nothing left to train
    assert main(args[:-1] + [str(tmp_path / "tw.txt")]) == 2
    assert main(args[:4] + ["--arch", "wordcnn"] + args[4:-1] + [str(tmp_path / "b.json")]) == 2  # --model and --arch
