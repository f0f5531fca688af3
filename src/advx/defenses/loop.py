"""Training loop for classifiers: seeded, checkpointed every epoch, resumable bit for bit.

``train(model, data, TrainConfig(epochs=5))`` runs minibatch training with Adam
(or SGD with momentum) and a cosine learning-rate decay computed from the step
number, so that no scheduler state exists. Each epoch draws its shuffling,
augmentation and dropout from RNGs seeded by ``(seed, epoch)``; together with
the model and optimizer state saved after every epoch (safetensors, no
pickle), resuming from a checkpoint reproduces the uninterrupted run exactly.

What one step minimises is a *defense objective*: ``"none"`` is standard
cross-entropy training; :mod:`advx.defenses.training` registers adversarial
training and the other defenses in :data:`DEFENSES` with :func:`register_defense`.
A registered class is an objective with hyper-parameters: ``train`` builds it
from ``TrainConfig.defense_options`` (saved in checkpoints, compared on resume).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from advx.data import LabeledData

__all__ = ["TrainConfig", "EpochStats", "Objective", "DEFENSES", "register_defense", "make_objective", "train",
           "accuracy", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "advx-train-checkpoint/1"


class Objective(Protocol):
    """One training step's loss: ``(model, x, y, generator) -> (scalar loss, logits used for train accuracy)``."""

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        ...


def standard_objective(model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Plain empirical risk minimisation: cross-entropy on the clean batch."""
    logits = model(x)
    return F.cross_entropy(logits, y), logits


#: defense name -> objective, or a class whose instances are objectives; "none" is standard training
DEFENSES: dict[str, Objective | type] = {"none": standard_objective}


def register_defense(name: str, objective: Objective | type) -> None:
    """Make ``objective`` available as ``TrainConfig(defense=name)`` and ``advx train --defense name``.

    ``objective`` is an :class:`Objective`, or a class built as ``objective(**config.defense_options)``.
    """
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {type(objective).__name__}")
    DEFENSES[name] = objective


def make_objective(config: TrainConfig) -> Objective:
    """The objective of ``config.defense``, built with ``config.defense_options`` if it is a class."""
    entry = DEFENSES[config.defense]
    if isinstance(entry, type):
        return entry(**config.defense_options)
    if config.defense_options:
        raise ValueError(f"defense {config.defense!r} takes no defense_options, got {config.defense_options!r}")
    return entry


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved in checkpoints and model metadata)."""

    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"  # "adam" | "sgd" (momentum 0.9, nesterov)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" | "constant"
    augment: str = "none"  # "none" | "shift" (random translations of up to 2 pixels)
    seed: int = 0
    defense: str = "none"
    defense_options: dict = field(default_factory=dict)  # JSON-able keyword arguments of the defense

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        choices = {"optimizer": ("adam", "sgd"), "schedule": ("cosine", "constant"), "augment": ("none", "shift")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.defense not in DEFENSES:
            import advx.defenses  # noqa: F401 -- registers the built-in defenses
        if not isinstance(self.defense_options, dict):
            raise TypeError(f"defense_options must be a dict, got {type(self.defense_options).__name__}")
        if self.defense not in DEFENSES:
            raise ValueError(f"defense must be one of {sorted(DEFENSES)}, got {self.defense!r}")

    def lr_at(self, step: int, total: int) -> float:
        if self.schedule == "constant":
            return self.lr
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * step / total))


@dataclass
class EpochStats:
    epoch: int  # 1-based
    loss: float
    train_accuracy: float
    test_accuracy: float | None
    seconds: float
    lr: float
    extra: dict = field(default_factory=dict)


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (computed in eval mode; the mode is restored)."""
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            logits = model(x[i:i + batch_size].to(device))
            correct += int((logits.argmax(1).cpu() == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, len(y))


def _shift(x: Tensor, generator: torch.Generator, max_shift: int = 2) -> Tensor:
    """Translate each image by a random integer offset in [-max_shift, max_shift]^2, zero fill."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=generator)
    rows = (offsets[:, 0, None] + torch.arange(h)).to(x.device)  # (n, h)
    cols = (offsets[:, 1, None] + torch.arange(w)).to(x.device)  # (n, w)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 12345) % (2**63)


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                    config: TrainConfig, history: list[EpochStats]) -> None:
    """Model and optimizer state after ``epoch`` epochs, as one safetensors file (written atomically)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = optimizer.state_dict()
    scalars = {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    meta = {
        "format": CHECKPOINT_FORMAT, "epoch": str(epoch), "config": json.dumps(asdict(config)),
        "history": json.dumps([asdict(h) for h in history]),
        "optim": json.dumps({"param_groups": state["param_groups"], "scalars": scalars}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
                    ) -> tuple[int, TrainConfig, list[EpochStats]]:
    """Restore ``model`` (and ``optimizer``) in place; returns (epochs done, config, history)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist (train without --resume to start one)")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not an advx training checkpoint (format {meta.get('format')!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 -- safe_open has no __iter__
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        optim_meta = json.loads(meta["optim"])
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v.to(device)
        for k, v in optim_meta["scalars"].items():
            pid, key = k.split(".", 1)
            state.setdefault(int(pid), {})[key] = v
        optimizer.load_state_dict({"state": state, "param_groups": optim_meta["param_groups"]})
    config = TrainConfig(**json.loads(meta["config"]))
    history = [EpochStats(**h) for h in json.loads(meta["history"])]
    return int(meta["epoch"]), config, history


def _as_tensors(data: LabeledData | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    if isinstance(data, LabeledData):
        return data.x, data.y
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise TypeError(f"data must be a LabeledData or an (x, y) pair, got {type(data).__name__}")


def train(model: nn.Module, data: LabeledData | tuple[Tensor, Tensor], config: TrainConfig | None = None, *,
          eval_data: LabeledData | tuple[Tensor, Tensor] | None = None, checkpoint: str | Path | None = None,
          resume: bool = False, progress: bool = False,
          on_epoch: Callable[[EpochStats], None] | None = None) -> list[EpochStats]:
    """Train ``model`` in place on ``data``; returns one :class:`EpochStats` per epoch (resumed ones included).

    ``checkpoint``: file rewritten after every epoch; with ``resume=True`` training
    continues from it (its config must equal ``config``). ``on_epoch`` is called
    after each epoch's checkpoint is written; if it returns True, training stops
    there (early stopping). The model is left in eval mode.

    Inside a ``torch.distributed`` process group (e.g. started by ``torchrun``),
    the model is wrapped in ``DistributedDataParallel``: every rank draws the
    same batch order and takes its share ``batch[rank::world]`` of each batch;
    gradients are averaged across ranks, so all ranks hold the same weights;
    only rank 0 writes the checkpoint.
    """
    config = config or TrainConfig()
    x, y = _as_tensors(data)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"data: {x.shape[0]} inputs and {y.shape[0]} labels; need the same, non-zero number")
    eval_xy = _as_tensors(eval_data) if eval_data is not None else None
    objective = make_objective(config)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    rank, world = _world()
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    optimizer = _make_optimizer(model, config)
    history: list[EpochStats] = []
    start = 0
    if resume:
        if checkpoint is None:
            raise ValueError("resume=True needs checkpoint= (the file to resume from)")
        start, saved, history = load_checkpoint(checkpoint, model, optimizer)
        if asdict(saved) != asdict(config):
            diff = {f.name: (getattr(saved, f.name), getattr(config, f.name)) for f in fields(config)
                    if getattr(saved, f.name) != getattr(config, f.name)}
            raise ValueError(f"checkpoint {checkpoint} was made with a different config (saved, requested): {diff}")
        log.info("resuming from %s after epoch %d", checkpoint, start)
    n = x.shape[0]
    steps = math.ceil(n / config.batch_size)
    total = steps * config.epochs
    bar = _progress(progress)
    task = bar.add_task("training", total=total, completed=start * steps) if bar else None
    # accuracy on the batches as trained: on adversarial examples for adversarial objectives
    acc_label = "adv acc" if getattr(objective, "adversarial", False) else "acc"
    try:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            generator = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
            order = torch.randperm(n, generator=generator)
            loss_sum, correct, seen = 0.0, 0, 0
            model.train()
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(_epoch_seed(config.seed, epoch) + 1)  # dropout and other global-RNG layers
                for i in range(steps):
                    batch = order[i * config.batch_size:(i + 1) * config.batch_size]
                    if world > 1:
                        if len(batch) < world:  # too small to give every rank a sample: skipped by all
                            continue
                        batch = batch[rank::world]
                    xb, yb = x[batch].to(device), y[batch].to(device)
                    if config.augment == "shift":
                        xb = _shift(xb, generator)
                    lr = config.lr_at(epoch * steps + i, total)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    optimizer.zero_grad(set_to_none=True)
                    if hasattr(objective, "at_step"):  # schedules inside the objective, e.g. an eps warm-up
                        objective.at_step(epoch * steps + i, total)
                    loss, logits = objective(net, xb, yb, generator)
                    loss.backward()
                    optimizer.step()
                    loss_sum += float(loss.detach()) * len(batch)
                    correct += int((logits.detach().argmax(1) == yb).sum())
                    seen += len(batch)
                    if bar:
                        bar.update(task, advance=1, description=f"epoch {epoch + 1}/{config.epochs} loss "
                                   f"{loss_sum / seen:.3f} {acc_label} {correct / seen:.3f}")
            if world > 1:  # the epoch's loss and accuracy over all ranks' shares
                totals = torch.tensor([loss_sum, float(correct)], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(totals)
                loss_sum, correct = float(totals[0]), int(totals[1])
            test_acc = accuracy(model, *eval_xy) if eval_xy is not None else None
            stats = EpochStats(epoch + 1, loss_sum / n, correct / n, test_acc, time.perf_counter() - t0, lr)
            history.append(stats)
            log.info("epoch %d/%d: loss %.4f, train acc %.4f%s, %.1f s", stats.epoch, config.epochs, stats.loss,
                     stats.train_accuracy, "" if test_acc is None else f", test acc {test_acc:.4f}", stats.seconds)
            if checkpoint is not None and rank == 0:
                save_checkpoint(checkpoint, model, optimizer, epoch + 1, config, history)
            if checkpoint is not None and world > 1:
                torch.distributed.barrier()  # the checkpoint is complete before any rank goes on
            if on_epoch is not None and on_epoch(stats) is True:
                log.info("stopping after epoch %d at the callback's request", stats.epoch)
                break
    finally:
        if bar:
            bar.stop()
        model.eval()
    return history


def _world() -> tuple[int, int]:
    """(rank, world size) of this process in a torch.distributed process group; (0, 1) outside one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
    bar.start()
    return bar
