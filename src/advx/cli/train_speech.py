"""``advx train --arch kws|ctc``: advx.audio's pieces composed with the one training loop.

The keyword spotter on the espeak-ng spoken digits and the CTC recogniser on the
espeak-ng command phrases: advx.audio's data, models, playback augmentation and
(CTC) objective, the loop's defense objectives (e.g. ``--defense pgd --threat
db:-30``), the val split scored per epoch and the best epoch's weights kept, the
test split at the end. ``--init`` warm-starts from weights; ``--stop-after N`` ends
after N epochs of the ``--epochs`` schedule (the first phase of the CTC recipe).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shlex
import time
from pathlib import Path

import click

log = logging.getLogger("advx.train")

__all__ = ["Speech", "BestEpoch", "speech_options", "run_kws", "run_ctc"]


def _clips(description: str, n_train: int, val, test, batch_size: int) -> None:
    """Refuse a training split smaller than one batch (the speech recipes drop the last partial batch); say the sizes."""
    if n_train < batch_size:
        raise click.BadParameter(f"{n_train} training clips make no batch of {batch_size}", param_hint="--batch-size")
    click.echo(f"data: {description} ({n_train} train, {len(val) if val else 0} val, {len(test)} test clips)")


@dataclasses.dataclass(frozen=True)
class Speech:
    """The speech recipes' own options (``--arch kws`` and ``ctc``)."""

    floor_db: float | None = None
    channels: int | None = None
    hidden: int | None = None
    lr_warmup: float | None = None
    init: Path | None = None
    stop_after: int | None = None
    threads: int | None = None

    def flags(self) -> str:
        """These options as they go on the command line (what the sidecar's command repeats)."""
        return ((f" --floor-db {self.floor_db:g}" if self.floor_db is not None else "")
                + (f" --channels {self.channels}" if self.channels is not None else "")
                + (f" --hidden {self.hidden}" if self.hidden is not None else "")
                + (f" --lr-warmup {self.lr_warmup:g}" if self.lr_warmup is not None else "")
                + (f" --init {shlex.quote(str(self.init))}" if self.init is not None else "")
                + (f" --stop-after {self.stop_after}" if self.stop_after is not None else "")
                + (f" --threads {self.threads}" if self.threads is not None else ""))


def speech_options(arch, epochs, floor_db, channels, hidden, lr_warmup, init, stop_after, threads) -> Speech | None:
    """Check the speech-only options against ``--arch``; None for the other architectures (which take none)."""
    given = {"--floor-db": floor_db, "--channels": channels, "--hidden": hidden, "--lr-warmup": lr_warmup,
             "--init": init, "--stop-after": stop_after}
    if arch not in ("kws", "ctc"):
        for name, value in given.items():
            if value is not None:
                raise click.BadParameter(f"{name} applies to the speech recipes (--arch kws or ctc), not --arch {arch}",
                                         param_hint=name)
        return None
    if arch == "kws":
        for name in ("--channels", "--hidden"):
            if given[name] is not None:
                raise click.BadParameter(f"{name} sizes the CTC recogniser (--arch ctc); the keyword spotter's size "
                                         f"is --width", param_hint=name)
    if floor_db is not None and not math.isfinite(floor_db):
        raise click.BadParameter(f"must be a finite number of dB re full scale, e.g. -70; got {floor_db}",
                                 param_hint="--floor-db")
    if stop_after is not None and stop_after > epochs:
        raise click.BadParameter(f"{stop_after} is beyond --epochs {epochs}: --stop-after N ends the run after N of "
                                 f"the schedule's {epochs} epochs; give N <= --epochs", param_hint="--stop-after")
    if init is not None and not init.is_file():
        raise click.BadParameter(f"{init} does not exist (a .safetensors file of weights of the same architecture)",
                                 param_hint="--init")
    return Speech(floor_db, channels, hidden, lr_warmup, init, stop_after, threads)


def _load_init(model, path: Path, sizes: str) -> str:
    """Load the weights of ``path`` into ``model`` (same architecture and sizes, else exit 2 naming --init);
    returns the file's sha256 (part of the run's fingerprint, so --resume needs the same --init)."""
    import hashlib

    import torch
    from safetensors.torch import load

    raw = path.read_bytes()  # read once: the weights and their sha256
    try:
        state = load(raw)
    except Exception as e:  # noqa: BLE001 -- safetensors raises several types on a file that is not one
        raise click.BadParameter(f"{path} is not a readable .safetensors file ({type(e).__name__}: {str(e)[:100]})",
                                 param_hint="--init") from None
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k} {tuple(state[k].shape)} (this model: {tuple(own[k].shape)})" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        what = "; ".join(part for part in (
            missing and f"{len(missing)} missing, e.g. {', '.join(missing[:3])}",
            unexpected and f"{len(unexpected)} unexpected, e.g. {', '.join(unexpected[:3])}",
            shapes and f"other shapes: {', '.join(shapes[:3])}") if part)
        raise click.BadParameter(f"{path} does not hold weights of this {type(model).__name__} ({what}); give "
                                 f"weights of the same --arch and sizes ({sizes})", param_hint="--init")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise click.BadParameter(f"{path} holds non-finite weights (NaN or inf in {', '.join(bad[:3])})",
                                 param_hint="--init")
    model.load_state_dict(state)
    return hashlib.sha256(raw).hexdigest()


def _check_stop_after(checkpoint: Path, stop_after: int | None, resume: bool) -> int | None:
    """``stop_after`` for the loop (which ends the run after that epoch); refuses a --resume whose
    checkpoint is already at or beyond it."""
    if stop_after is not None and resume and checkpoint.exists():
        from advx.defenses.loop import read_checkpoint

        done = int(read_checkpoint(checkpoint)[1]["epoch"])
        if done >= stop_after:
            raise click.BadParameter(f"the checkpoint {checkpoint} is after epoch {done}, at or beyond --stop-after "
                                     f"{stop_after}: resume without --stop-after (or with a later one) to go on",
                                     param_hint="--stop-after")
    return stop_after


class BestEpoch:
    """The weights of the epoch with the best val score (ties: the later epoch), as the speech recipes select.

    Kept in memory and in ``OUT.best.safetensors`` (epoch and score in its metadata), so that a run resumed
    after its best epoch still ends with that epoch's weights.
    """

    def __init__(self, model, out: Path, resume: bool):
        from safetensors import safe_open

        self.model, self.path = model, out.with_suffix(".best.safetensors")
        self.epoch: int | None = None
        self.score: float | None = None
        self.state: dict | None = None
        self.saved: tuple[int, float] | None = None  # (epoch, score) of the file
        if not resume:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            try:
                with safe_open(str(self.path), framework="pt") as f:
                    meta = f.metadata() or {}
                self.saved = (int(meta["epoch"]), float(meta["score"]))
                self.score = self.saved[1]
            except Exception:  # noqa: BLE001 -- a damaged file only loses the earlier best
                log.warning("%s cannot be read; the best epoch is chosen among the epochs trained from here", self.path)

    def update(self, stats) -> None:
        import torch.distributed as dist

        from advx.data.atomic import atomic_save_tensors

        score = stats.test_accuracy
        if score is None or (self.score is not None and score < self.score):
            return
        self.epoch, self.score = stats.epoch, score
        self.state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
            atomic_save_tensors(self.path, self.state, metadata={"epoch": str(stats.epoch), "score": repr(score)})
            self.saved = (stats.epoch, score)

    def restore(self, history) -> int | None:
        """Load the best epoch's weights into the model; that epoch (None: no epoch was scored)."""
        from safetensors.torch import load_file

        scored = [h for h in history if h.test_accuracy is not None]
        if not scored:
            return None
        best = max(scored, key=lambda h: (h.test_accuracy, h.epoch))
        if best.epoch == history[-1].epoch:
            return best.epoch  # the weights as trained
        if self.state is not None and self.epoch == best.epoch:
            self.model.load_state_dict(self.state)
            return best.epoch
        if self.saved is not None and self.saved[0] == best.epoch:
            self.model.load_state_dict(load_file(str(self.path)))
            return best.epoch
        log.warning("the weights of the best epoch (%d) were not kept (%s is missing or of another epoch); "
                    "keeping those of the last epoch, %d", best.epoch, self.path, history[-1].epoch)
        return history[-1].epoch


def _save(model, out: Path, info: dict) -> None:
    """The weights (``OUT``, safetensors) and their sidecar (``OUT.json``), each written atomically."""
    from advx.data.atomic import atomic_save_tensors, atomic_write_text

    atomic_save_tensors(out, model.state_dict())
    atomic_write_text(out.with_suffix(".json"), json.dumps(info, indent=2) + "\n")


def run_kws(epochs, seed, out, batch_size, lr, optimizer, schedule, label_smoothing, width, weight_decay, n_train,
               eval_n, n_test, defense, options, defense_flags, resume, overwrite, device, progress, speech) -> None:
    """The keyword spotter on the spoken digits through the one loop: advx.audio's data, model and playback
    augmentation (room response, gain, shift, noise), the val split scored per epoch (the best epoch's weights are
    kept), the test split at the end."""
    import torch

    from advx import zoo
    from advx.audio.data import _VERSION, load_digits
    from advx.audio.models import KeywordSpotter
    from advx.audio.train import accuracy as audio_accuracy
    from advx.audio.train import augment as playback
    from advx.defenses.loop import TrainConfig, train

    if defense == "distill":
        raise click.BadParameter("--defense distill trains image models only", param_hint="--defense")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                         schedule=schedule, seed=seed, defense=defense, defense_options=options,
                         label_smoothing=label_smoothing, lr_warmup=0.2 if speech.lr_warmup is None else speech.lr_warmup,
                         drop_last=True)
    train_set = load_digits("espeak", "train", limit=n_train)
    val = load_digits("espeak", "val", limit=eval_n) if eval_n else None
    test = load_digits("espeak", "test", limit=n_test)
    _clips(train_set.description, len(train_set), val, test, batch_size)
    torch.manual_seed(seed)
    model = KeywordSpotter(width=width, floor_db=speech.floor_db).to(device)
    init_sha = _load_init(model, speech.init, "--width") if speech.init is not None else None
    checkpoint = out.with_suffix(".ckpt.safetensors")
    best = BestEpoch(model, out, resume)

    def on_epoch(stats) -> None:
        best.update(stats)
        score = "" if stats.test_accuracy is None else f", val accuracy {stats.test_accuracy:.4f}"
        click.echo(f"epoch {stats.epoch}: loss {stats.loss:.4f}, train accuracy {stats.train_accuracy:.4f}{score}")

    t0 = time.perf_counter()
    history = train(model, (train_set.waves, train_set.labels), config, augment=playback,
                    eval_fn=None if val is None else lambda m: audio_accuracy(m, val.waves.to(device),
                                                                              val.labels.to(device)),
                    checkpoint=checkpoint, resume=resume, overwrite=overwrite, progress=progress,
                    fingerprint={"init": init_sha} if init_sha else None,
                    on_epoch=on_epoch, stop_after=_check_stop_after(checkpoint, speech.stop_after, resume))
    seconds = time.perf_counter() - t0
    selected = best.restore(history)
    model.eval()
    test_acc = audio_accuracy(model, test.waves.to(device), test.labels.to(device))
    cmd = (f"advx train --arch kws --data digits --epochs {epochs} --seed {seed} --batch-size {batch_size} "
           f"--lr {lr:g} --optimizer {optimizer} --schedule {schedule} --width {width}"
           + (f" --weight-decay {weight_decay:g}" if weight_decay else "")
           + (f" --label-smoothing {label_smoothing:g}" if label_smoothing else "")
           + (f" --n-train {n_train}" if n_train else "") + (f" --eval-n {eval_n}" if eval_n != 1000 else "")
           + (f" --n-test {n_test}" if n_test else "")
           + (f" --defense {defense}{defense_flags}" if defense != "none" else "")
           + speech.flags() + f" --out {shlex.quote(str(out))}")
    chosen = next((h for h in history if h.epoch == selected), history[-1] if history else None)
    info = {
        "name": out.stem, "arch": "kws", "config": model.config,
        "data": f"digits ({_VERSION}: synthetic speech (espeak-ng) spoken digits, splits disjoint by voice)",
        "data_description": train_set.description, "train_clips": len(train_set), "val_clips": len(val) if val else 0,
        "test_clips": len(test),
        "recipe": {**dataclasses.asdict(config), "augment": "playback: room 50%, gain -12..3 dB, shift 0.1 s, noise "
                   "5-40 dB SNR 70% (advx.audio.train.augment)",
                   "init": None if speech.init is None else {"file": str(speech.init), "sha256": init_sha},
                   "stop_after": speech.stop_after},
        "selected_epoch": selected, "selection": "the epoch of best val accuracy (ties: the later one)",
        "val_accuracy": chosen.test_accuracy if chosen else None, "test_accuracy": round(test_acc, 4),
        "history": [{"epoch": h.epoch, "loss": round(h.loss, 4), "lr": h.lr, "val_accuracy": h.test_accuracy,
                     "seconds": round(h.seconds, 1)} for h in history],
        "train_seconds_this_run": round(seconds, 1), "git_rev": zoo.git_revision(), "torch": torch.__version__,
        "command": cmd,
    }
    _save(model, out, info)
    click.echo(f"test accuracy (voices never heard in training): {test_acc:.4f} on {len(test)} clips "
               f"(the weights of epoch {selected})")
    click.echo(f"wrote {out} and {out.with_suffix('.json')} (checkpoint: {checkpoint}); {seconds:.0f} s")


def run_ctc(epochs, seed, out, batch_size, lr, optimizer, schedule, weight_decay, n_train, eval_n, n_test, resume,
             overwrite, device, progress, speech) -> None:
    """The CTC recogniser on the espeak-ng phrases through the one loop: advx.audio's PhraseBatches, CTC objective
    and playback augmentation; 1 - WER (greedy) on the val split per epoch (the best epoch's weights are kept); the
    test split (greedy, beam, closed-vocabulary beam) and the real in-vocabulary recordings at the end; saved as
    OUT + its .json (config)."""
    import torch

    from advx import zoo
    from advx.audio.ctc import CTCRecognizer, transcribe
    from advx.audio.ctc_train import (
        PhraseBatches,
        augment,
        ctc_step,
        evaluate_real,
        evaluate_recognizer,
        word_error_rate,
    )
    from advx.audio.phrases import PHRASES_VERSION, VOCABULARY, load_phrases
    from advx.defenses.loop import TrainConfig, train

    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                         schedule=schedule, seed=seed, lr_warmup=0.15 if speech.lr_warmup is None else speech.lr_warmup,
                         grad_clip=5.0, drop_last=True)
    data = PhraseBatches("train", limit=n_train)
    val = load_phrases("val", limit=eval_n) if eval_n else None
    test = load_phrases("test", limit=n_test)
    _clips("espeak-ng command phrases, synthetic speech", len(data), val, test, batch_size)
    torch.manual_seed(seed)
    model = CTCRecognizer(channels=speech.channels or 96, hidden=speech.hidden or 96,
                          floor_db=-70.0 if speech.floor_db is None else speech.floor_db, spec_augment=True).to(device)
    init_sha = _load_init(model, speech.init, "--channels, --hidden, --floor-db") if speech.init is not None else None
    checkpoint = out.with_suffix(".ckpt.safetensors")
    best = BestEpoch(model, out, resume)

    def one_minus_wer(m) -> float:
        return 1.0 - word_error_rate(transcribe(m, val.waves.to(device)), val.texts)

    def on_epoch(stats) -> None:
        best.update(stats)
        score = "" if stats.test_accuracy is None else f", val WER (greedy) {1 - stats.test_accuracy:.4f}"
        click.echo(f"epoch {stats.epoch}: CTC loss {stats.loss:.4f}{score}")

    t0 = time.perf_counter()
    history = train(model, data, config, objective=ctc_step, augment=augment,
                    eval_fn=one_minus_wer if val is not None else None, checkpoint=checkpoint, resume=resume,
                    overwrite=overwrite, progress=progress, fingerprint={"init": init_sha} if init_sha else None,
                    on_epoch=on_epoch, stop_after=_check_stop_after(checkpoint, speech.stop_after, resume))
    seconds = time.perf_counter() - t0
    selected = best.restore(history)
    model.eval()
    chosen = next((h for h in history if h.epoch == selected), history[-1] if history else None)
    scores = evaluate_recognizer(model, test.waves.to(device), test.texts)
    real = evaluate_real(model)
    cmd = (f"advx train --arch ctc --data phrases --epochs {epochs} --seed {seed} --batch-size {batch_size} "
           f"--lr {lr:g} --optimizer {optimizer} --schedule {schedule}"
           + (f" --weight-decay {weight_decay:g}" if weight_decay else "")
           + (f" --n-train {n_train}" if n_train else "") + (f" --eval-n {eval_n}" if eval_n != 1000 else "")
           + (f" --n-test {n_test}" if n_test else "") + speech.flags() + f" --out {shlex.quote(str(out))}")
    val_wer = None if chosen is None or chosen.test_accuracy is None else 1.0 - chosen.test_accuracy
    info = {"name": out.stem, "arch": "ctc", "config": model.config,
            "parameters": sum(p.numel() for p in model.parameters()),
            "data": f"{PHRASES_VERSION}: SYNTHETIC speech (espeak-ng command phrases, 2-4 words of a "
                    f"{len(VOCABULARY)}-word vocabulary), splits disjoint by voice variant",
            "vocabulary": list(VOCABULARY),
            "train_clips": len(data), "val_clips": len(val) if val else 0, "test_clips": len(test),
            "recipe": {**dataclasses.asdict(config), "objective": "CTC per character (advx.audio.ctc_train.ctc_step)",
                       "augment": "playback: room 50%, gain -12..3 dB, shift 50 ms, noise 5-40 dB SNR 70% "
                                  "(advx.audio.ctc_train.augment); SpecAugment 1 freq (<=6 mels) + 2 time "
                                  "(<=12 frames) masks", "spec_augment": True,
                       "init": None if speech.init is None else {"file": str(speech.init), "sha256": init_sha},
                       "stop_after": speech.stop_after},
            "selected_epoch": selected, "selection": "the epoch of lowest val WER, greedy (ties: the later one)",
            "val_wer_greedy": val_wer, "test_wer_greedy": round(scores["greedy"]["wer"], 4), "test": scores,
            "history": [{"epoch": h.epoch, "train_loss": round(h.loss, 4), "lr": h.lr,
                         "val_wer_greedy": None if h.test_accuracy is None else 1.0 - h.test_accuracy,
                         "seconds": round(h.seconds, 1)} for h in history],
            "train_seconds_this_run": round(seconds, 1), "git_rev": zoo.git_revision(), "torch": torch.__version__,
            "command": cmd}
    if real is not None:
        info["real_pocketsphinx_testdata"] = real
    _save(model, out, info)
    click.echo(f"test WER (greedy): {scores['greedy']['wer']:.4f} on {len(test)} clips (the weights of epoch "
               f"{selected})" + ("" if real is None else f"; real recordings, closed-vocabulary beam: "
                                                         f"{real['beam8_vocabulary_wer']:.4f} WER"))
    click.echo(f"wrote {out} and {out.with_suffix('.json')} (checkpoint: {checkpoint}); {seconds:.0f} s")
