"""Training a text classifier: advx.text's pieces composed with the one training loop.

Used by ``advx text train`` (the reference recipes, adversarial augmentation) and by
``advx train --arch charcnn|wordcnn`` (every loop setting from the command line).
The model is saved in advx.text's format (``OUT.json`` + ``OUT.safetensors``, which
``advx text attack --model OUT.json`` reads); after every epoch the loop writes
``OUT.ckpt.safetensors``, which ``--resume`` continues.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import click

log = logging.getLogger(__name__)

__all__ = ["train_text", "model_paths", "check_out"]


def model_paths(out: Path) -> tuple[Path, Path]:
    """(the model's stem: OUT without .json/.safetensors, its checkpoint)."""
    stem = out.with_suffix("") if out.suffix in (".json", ".safetensors") else out
    return stem, stem.with_suffix(".ckpt.safetensors")


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to replace a model or checkpoint without --overwrite (or to continue it without --resume)."""
    stem, checkpoint = model_paths(out)
    existing = [p for p in (stem.with_suffix(".json"), stem.with_suffix(".safetensors"), checkpoint) if p.exists()]
    if existing and not (resume or overwrite):
        raise click.BadParameter(f"{existing[0]} exists: add --resume to continue that run or --overwrite to start "
                                 f"again over it", param_hint="--out")


def train_text(recipe, dataset: str, out: Path, *, command: str, name: str | None = None, seed: int = 0,
               n_train: int | None = None, overrides: dict | None = None, attack=None, adv_examples: int = 150,
               adv_keep: str = "all", eval_n: int = 0, resume: bool = False, overwrite: bool = False, device: str = "cpu",
               progress: bool = True, echo: Callable[[str], None] = click.echo):
    """Train ``recipe`` (an :class:`advx.text.train.TextRecipe`) on the built-in corpus ``dataset``.

    ``overrides``: TrainConfig fields over the recipe's; ``attack``: a text attack for
    adversarial augmentation (one round before every epoch after the first, ``adv_examples``
    training texts each; ``adv_keep``: "all" rounds' texts stay, or each "round" replaces
    the last); ``eval_n``: test texts scored after every epoch. Returns (the stored model
    as a classifier, its metadata; None on the other ranks under torchrun); the test accuracy is that of the stored (float16)
    weights on the whole test split.
    """
    import torch

    from advx import zoo
    from advx.data.atomic import atomic_write_text
    from advx.defenses.loop import TrainConfig, train
    from advx.text.data import load_text_dataset
    from advx.text.models import save_text_model
    from advx.text.train import AdversarialAugmentation, accuracy, prepare
    from advx.text.zoo import load_classifier

    stem, checkpoint = model_paths(out)
    train_set = load_text_dataset(dataset, "train").subset(n_train)
    test = load_text_dataset(dataset, "test")
    try:
        settings = {**recipe.training, **(overrides or {}), "seed": seed}
        epochs = settings.get("epochs", TrainConfig.epochs)
        settings["epochs"], stop_after = recipe.schedule(epochs)
        config = TrainConfig(**settings)
    except (TypeError, ValueError) as e:
        raise click.UsageError(f"training settings: {e}") from None
    echo(f"data: {dataset} ({len(train_set)} train, {len(test)} test texts, {len(train_set.label_names)} classes)")
    prep = prepare(recipe, train_set, seed=seed, device=device)
    augmentation = None
    if attack is not None:
        augmentation = AdversarialAugmentation(prep.data, prep.classifier, attack, examples=adv_examples, seed=seed,
                                               keep=adv_keep)
    held = test.subset(eval_n) if eval_n else None

    def on_epoch(stats) -> None:
        score = "" if stats.test_accuracy is None else f", test accuracy ({len(held)} texts) {stats.test_accuracy:.4f}"
        echo(f"epoch {stats.epoch}: loss {stats.loss:.4f}, train accuracy {stats.train_accuracy:.4f}{score}"
             f" ({len(prep.data)} training texts)")

    t0 = time.perf_counter()
    history = train(prep.module, prep.data, config,
                    eval_fn=(lambda _: accuracy(prep.classifier, held)) if held is not None else None,
                    checkpoint=checkpoint, resume=resume, overwrite=overwrite, progress=progress,
                    fingerprint={"recipe": recipe.to_json(),
                                 "augmentation": augmentation.fingerprint() if augmentation else None},
                    on_epoch=on_epoch, on_epoch_start=augmentation, param_groups=prep.param_groups,
                    stop_after=stop_after)
    seconds = time.perf_counter() - t0
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return prep.classifier, None  # under torchrun every rank holds the same weights; rank 0 writes them
    rounds = augmentation.rounds if augmentation else []
    meta = {"name": name or stem.name, "dataset": dataset, "test_size": len(test), "train_size": len(train_set),
            "epochs": epochs, "train_seconds": round(seconds, 1),
            "adversarial_examples_added": sum(r["added"] for r in rounds), "adversarial_rounds": rounds,
            "recipe": {**recipe.to_json(), "training": dataclasses.asdict(config)},
            "history": [{"epoch": h.epoch, "loss": round(h.loss, 4), "train_accuracy": round(h.train_accuracy, 4),
                         "test_accuracy": h.test_accuracy} for h in history],
            "git_rev": zoo.git_revision(), "torch": torch.__version__, "command": command}
    model = prep.classifier.model.cpu()
    if recipe.architecture == "MiniLM":
        from advx.text.transformer import save_minilm

        written = save_minilm(stem, model, prep.tokenizer, train_set.label_names, meta)
    else:
        written = save_text_model(stem, model, prep.tokenizer, train_set.label_names, meta)
    clf, stored = load_classifier(stem)  # the accuracy of what was stored (float16), not of the float32 model in memory
    stored["test_accuracy"] = round(accuracy(clf, test), 4)
    atomic_write_text(written, json.dumps(stored, indent=1))
    echo(f"test accuracy: {stored['test_accuracy']:.4f} on {len(test)} {dataset} test texts")
    echo(f"wrote {stem.with_suffix('.safetensors')} and {written} (checkpoint: {checkpoint}); {seconds:.0f} s")
    return clf, stored
