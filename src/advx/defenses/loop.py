"""The one training loop (images, text, audio): seeded, checkpointed every epoch, resumable bit for bit.

``train(model, data, TrainConfig(epochs=5))`` runs minibatch training with Adam,
AdamW or SGD with momentum and a learning rate computed from the fraction of
training done (cosine, constant, one-cycle: a linear warm-up then cosine, or
linear: a linear warm-up then a linear decay to 0), so that no scheduler state
exists. Parameter groups (``param_groups=``) scale that rate, e.g. a freshly
initialised head at 10 times the rate of a pretrained encoder. Each epoch draws its shuffling, augmentation and dropout
from RNGs seeded by ``(seed, epoch)``; together with the model and optimizer
state saved after every epoch (safetensors, no pickle), resuming from a
checkpoint reproduces the uninterrupted run exactly.

A medium plugs in without this module knowing it (advx.text and advx.audio do
not import advx.defenses; the CLI composes them):

* ``data`` -- an (x, y) pair of tensors, a :class:`~advx.data.LabeledData`, or any
  :class:`Batches`: ``len(data)`` and ``data.batch(idx) -> (x, y)`` (tokenise texts,
  pad waveforms; x and y may be tensors or tuples/dicts of tensors, e.g. CTC targets
  and lengths), optionally ``data.fingerprint()`` (what checkpoints are bound to);
* ``objective(model, x, y, generator) -> (loss, logits or None)`` -- what one step
  minimises (default: the defense of ``TrainConfig.defense``; logits None: no train accuracy);
* ``augment(x, generator) -> x`` -- medium augmentation drawn from the epoch's generator;
* ``eval_fn(model) -> float`` -- the per-epoch test metric (or ``eval_data=(x, y)``: accuracy);
* ``on_epoch_start(epoch, model)`` -- runs before each epoch (0-based) is drawn, e.g. an
  adversarial augmentation that attacks the current model and puts its successful
  examples into ``data``. ``data`` may change size there: the epoch's batches are drawn
  from its length after the hook. A Batches whose contents change keeps them across a
  resume with ``state() -> JSON`` and ``load_state(obj)``: the loop saves the state in
  every checkpoint and restores it on resume.

What one step minimises by default is a *defense objective*: ``"none"`` is standard
cross-entropy training; :mod:`advx.defenses.training` registers adversarial
training and the other defenses in :data:`DEFENSES` with :func:`register_defense`.
A registered class is an objective with hyper-parameters: ``train`` builds it
from ``TrainConfig.defense_options`` (saved in checkpoints, compared on resume).

Checkpoints are bound to the run: they carry its fingerprint (config, the model's
parameter names and shapes, the data's hash, advx's version) and a sha256 checksum
of their tensors and metadata. ``resume=True`` refuses a checkpoint that is damaged,
holds non-finite weights or belongs to another run (:class:`CheckpointError`, naming
what differs); an existing checkpoint is not overwritten unless ``overwrite=True``.
Training stops with :class:`TrainingDiverged` at the first non-finite loss, and
before saving non-finite weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor, nn

from advx._version import __version__
from advx.data import LabeledData
from advx.data.atomic import atomic_save_tensors

__all__ = ["TrainConfig", "EpochStats", "Objective", "Batches", "TensorBatches", "DEFENSES", "register_defense",
           "make_objective", "train", "accuracy", "save_checkpoint", "load_checkpoint", "run_fingerprint",
           "CheckpointError", "TrainingDiverged", "CHECKPOINT_FORMAT"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "advx-train-checkpoint/2"  # /2: fingerprint + checksum (a /1 file is refused on resume)


class CheckpointError(ValueError):
    """A training checkpoint that cannot be resumed: damaged, non-finite, or made by another run."""


class TrainingDiverged(FloatingPointError):
    """The loss or the weights became NaN or infinite."""


@runtime_checkable
class Batches(Protocol):
    """Training data of any medium: its size and the (x, y) batch of given indices.

    Optional: ``fingerprint() -> dict`` (what checkpoints are bound to), and for data whose
    contents change during training (see ``on_epoch_start``) ``state() -> JSON-able`` and
    ``load_state(obj)``, saved in every checkpoint and restored on resume.
    """

    def __len__(self) -> int:
        ...

    def batch(self, idx: Tensor) -> tuple[Any, Any]:
        ...


class TensorBatches:
    """An (x, y) pair of tensors as :class:`Batches`."""

    def __init__(self, x: Tensor, y: Tensor):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"data: {x.shape[0]} inputs and {y.shape[0]} labels; need the same number")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return self.x[idx], self.y[idx]

    def fingerprint(self) -> dict:
        return {"sha256": _tensor_digest({"x": self.x, "y": self.y}), "n": len(self)}


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
    if entry is standard_objective and config.label_smoothing:
        smoothing = config.label_smoothing

        def smoothed(model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
            logits = model(x)
            return F.cross_entropy(logits, y, label_smoothing=smoothing), logits

        return smoothed
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
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd" (momentum 0.9, nesterov)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine" | "constant" | "onecycle" (linear warm-up, then cosine) | "linear"
    augment: str = "none"  # "none" | "shift" (random translations of up to 2 pixels)
    seed: int = 0
    defense: str = "none"
    defense_options: dict = field(default_factory=dict)  # JSON-able keyword arguments of the defense
    label_smoothing: float = 0.0  # of the standard cross-entropy objective
    grad_clip: float | None = None  # max gradient norm (None: no clipping)
    lr_warmup: float = 0.1  # fraction of the steps in the "onecycle" and "linear" schedules' linear warm-up
    drop_last: bool = False  # skip each epoch's last, smaller batch

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        for name, low, high in (("weight_decay", 0, math.inf), ("label_smoothing", 0, 1), ("lr_warmup", 0, 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not low <= value <= high:
                raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0
                                               and math.isfinite(self.grad_clip)):
            raise ValueError(f"grad_clip must be a finite number > 0 or None, got {self.grad_clip!r}")
        choices = {"optimizer": ("adam", "adamw", "sgd"), "schedule": ("cosine", "constant", "onecycle", "linear"),
                   "augment": ("none", "shift")}
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
        """The learning rate of step ``step`` (0-based) of ``total``."""
        if self.schedule == "constant":
            return self.lr
        if self.schedule in ("onecycle", "linear"):
            rise = max(1, round(self.lr_warmup * total))
            if step < rise:
                return self.lr * (step + 1) / rise
            if self.schedule == "linear":
                return self.lr * max(0.0, (total - step) / max(1, total - rise))
            return 0.5 * self.lr * (1.0 + math.cos(math.pi * (step - rise) / max(1, total - rise)))
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


def accuracy(model: nn.Module, x: Tensor | Batches, y: Tensor | None = None, batch_size: int = 1000) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (computed in eval mode; the mode is restored).

    ``x`` may also be a :class:`Batches` (then ``y`` is None) whose labels are a (N,) tensor per batch.
    """
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    data = x if y is None else TensorBatches(x, y)
    n = len(data)
    correct = 0
    with torch.no_grad():
        for i in range(0, n, batch_size):
            xb, yb = data.batch(torch.arange(i, min(n, i + batch_size)))
            logits = model(_to(xb, device))
            correct += int((logits.argmax(1).cpu() == yb.cpu()).sum())
    model.train(was_training)
    return correct / max(1, n)


def _to(value: Any, device: torch.device) -> Any:
    """Tensors (also inside tuples, lists and dicts) moved to ``device``; anything else as it is."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _tensor_digest(tensors: dict[str, Tensor], extra: bytes = b"") -> str:
    """sha256 over names, dtypes, shapes and bytes of ``tensors`` (sorted by name), then ``extra``."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(extra)
    return h.hexdigest()


def run_fingerprint(model: nn.Module, config: TrainConfig, data: Any = None, extra: dict | None = None) -> dict:
    """What a checkpoint is bound to: config, the model's parameter names and shapes, the data, advx's version."""
    if isinstance(data, TensorBatches) or hasattr(data, "fingerprint"):
        data_fp = data.fingerprint()
    elif data is None:
        data_fp = None
    else:
        data_fp = {"type": type(data).__name__, "n": len(data)}
    return {"config": asdict(config), "model": {"class": type(model).__name__,
                                                "state": {k: list(v.shape) for k, v in model.state_dict().items()}},
            "data": data_fp, "advx": __version__, **(extra or {})}


def _non_finite(tensors: dict[str, Tensor]) -> list[str]:
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


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


def _param_groups(model: nn.Module, groups: list[dict] | None) -> list[dict]:
    """The optimizer's parameter groups: ``groups`` checked (each a dict with "params" and an optional
    "lr_scale"), or all trainable parameters of ``model`` at scale 1."""
    if groups is None:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]
    owned = {id(p) for p in model.parameters()}
    out, seen = [], set()
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"param_groups[{i}] must be a dict with 'params' (and optionally 'lr_scale')")
        unknown = set(group) - {"params", "lr_scale", "weight_decay"}
        if unknown:
            raise ValueError(f"param_groups[{i}]: unknown keys {sorted(unknown)}; allowed: params, lr_scale, "
                             f"weight_decay")
        params = list(group["params"])
        scale = group.get("lr_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"param_groups[{i}]['lr_scale'] must be a finite number > 0, got {scale!r}")
        if any(id(p) not in owned for p in params):
            raise ValueError(f"param_groups[{i}] holds parameters that are not the model's")
        if any(id(p) in seen for p in params):
            raise ValueError(f"param_groups[{i}] repeats parameters of an earlier group")
        seen.update(id(p) for p in params)
        out.append({**group, "params": params, "lr_scale": float(scale)})
    return out


def _make_optimizer(model: nn.Module, config: TrainConfig, groups: list[dict] | None = None) -> torch.optim.Optimizer:
    params = _param_groups(model, groups)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 12345) % (2**63)


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                    config: TrainConfig, history: list[EpochStats], fingerprint: dict | None = None,
                    data_state: Any = None) -> None:
    """Model and optimizer state after ``epoch`` epochs, as one safetensors file (written atomically),
    with the run's ``fingerprint``, the data's JSON-able ``data_state`` (see :class:`Batches`) and a
    sha256 checksum of everything in it. Non-finite weights are refused."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = _non_finite(tensors)
    if bad:
        raise TrainingDiverged(f"training diverged: after epoch {epoch} the weights hold NaN or inf "
                               f"({', '.join(k[6:] for k in bad[:3])}); not saved. Lower the learning rate "
                               f"(lr {config.lr:g}) or check the data for NaN/inf")
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
        "data_state": json.dumps(data_state),
        "history": json.dumps([asdict(h) for h in history]),
        "optim": json.dumps({"param_groups": state["param_groups"], "scalars": scalars}),
        "fingerprint": json.dumps(fingerprint if fingerprint is not None else run_fingerprint(model, config),
                                  sort_keys=True),
    }
    meta["checksum"] = _checksum(tensors, meta)
    atomic_save_tensors(path, tensors, metadata=meta)


def _checksum(tensors: dict[str, Tensor], meta: dict[str, str]) -> str:
    body = json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode()
    return _tensor_digest(tensors, body)


_FIX = "delete it, or start the run again with --overwrite (overwrite=True)"


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors and metadata of a training checkpoint, verified: readable, checksum intact, weights finite."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist (train without --resume to start one)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 -- safe_open has no __iter__
    except Exception as e:  # noqa: BLE001 -- safetensors raises several types on a damaged file
        raise CheckpointError(f"checkpoint {path} is damaged: not a readable safetensors file "
                              f"({type(e).__name__}: {str(e)[:120]}); {_FIX}") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        old = str(meta.get("format", "")).startswith("advx-train-checkpoint/")
        raise CheckpointError(f"checkpoint {path} is " + (
            f"in the older format {meta.get('format')!r}, which carries no checksum; {_FIX}" if old else
            f"not an advx training checkpoint (format {meta.get('format')!r})"))
    if meta.get("checksum") != _checksum(tensors, meta):
        raise CheckpointError(f"checkpoint {path} is damaged: its sha256 checksum does not match its contents "
                              f"(flipped bytes or an edit); {_FIX}")
    bad = _non_finite({k: v for k, v in tensors.items() if k.startswith("model.")})
    if bad:
        raise CheckpointError(f"checkpoint {path} holds non-finite weights (NaN or inf in "
                              f"{', '.join(k[6:] for k in bad[:3])}); resuming would train on NaN; {_FIX}")
    return tensors, meta


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
                    ) -> tuple[int, TrainConfig, list[EpochStats]]:
    """Restore ``model`` (and ``optimizer``) in place from a verified checkpoint; returns (epochs done, config,
    history). Raises :class:`CheckpointError` for a damaged or non-finite one."""
    return _restore(*read_checkpoint(Path(path)), model, optimizer)


def _restore(tensors: dict[str, Tensor], meta: dict[str, str], model: nn.Module,
             optimizer: torch.optim.Optimizer | None) -> tuple[int, TrainConfig, list[EpochStats]]:
    """:func:`load_checkpoint` on a checkpoint already read (and verified) by :func:`read_checkpoint`."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
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


def _as_batches(data: Any) -> Batches:
    if isinstance(data, LabeledData):
        return TensorBatches(data.x, data.y)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(v, Tensor) for v in data):
        return TensorBatches(data[0], data[1])
    if isinstance(data, Batches):
        return data
    raise TypeError(f"data must be a LabeledData, an (x, y) pair of tensors or an object with __len__ and "
                    f"batch(idx) -> (x, y), got {type(data).__name__}")


def _diff(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """The keys (dotted) where two JSON-like values differ."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for k in sorted(set(saved) | set(now)):
            out += _diff(saved.get(k), now.get(k), f"{prefix}{k}.")
        return out
    return [] if saved == now else [prefix.rstrip(".") or "(all)"]


def train(model: nn.Module, data: Any, config: TrainConfig | None = None, *,
          objective: Objective | None = None, augment: Callable[[Any, torch.Generator], Any] | None = None,
          eval_fn: Callable[[nn.Module], float] | None = None, eval_data: Any = None,
          checkpoint: str | Path | None = None, resume: bool = False, overwrite: bool = False,
          fingerprint: dict | None = None, progress: bool = False,
          on_epoch: Callable[[EpochStats], None] | None = None,
          on_epoch_start: Callable[[int, nn.Module], None] | None = None,
          param_groups: list[dict] | None = None, stop_after: int | None = None) -> list[EpochStats]:
    """Train ``model`` in place on ``data``; returns one :class:`EpochStats` per epoch (resumed ones included).

    ``data``: an (x, y) pair, a LabeledData or any :class:`Batches`. ``objective``
    replaces the defense of ``config`` (e.g. a CTC loss); ``augment(x, generator)``
    replaces ``config.augment``; ``eval_fn(model)`` (or ``eval_data``, accuracy) is the
    per-epoch test metric. ``fingerprint``: extra JSON-able facts the checkpoint is
    bound to (e.g. a tokenizer's hash); the data's own fingerprint is always included.

    ``checkpoint``: file rewritten after every epoch; with ``resume=True`` training
    continues from it (it must be intact and belong to this run: the same config,
    model, data and extra fingerprint). Without ``resume`` an existing checkpoint is
    refused unless ``overwrite=True``. ``on_epoch`` is called after each epoch's
    checkpoint is written; if it returns True, training stops there (early stopping).
    ``on_epoch_start(epoch, model)`` runs before each epoch (0-based, resumed ones
    included) is drawn; ``data`` may grow or shrink there. ``param_groups``: a list of
    ``{"params": [...], "lr_scale": s}`` (optionally ``"weight_decay"``): each group
    trains at ``s`` times the scheduled rate (default: every trainable parameter at 1).
    ``stop_after``: end after this many epochs of the ``config.epochs``-long schedule (the
    schedule is not shortened: its learning rate ends where that epoch leaves it); a run
    resumed with it stops there too, one resumed without it finishes the schedule. It is
    not part of the checkpoint's fingerprint. The model is left in eval mode.

    Inside a ``torch.distributed`` process group (e.g. started by ``torchrun``),
    the model is wrapped in ``DistributedDataParallel``: every rank draws the
    same batch order and takes its share ``batch[rank::world]`` of each batch;
    gradients are averaged across ranks, so all ranks hold the same weights;
    only rank 0 writes the checkpoint.
    """
    config = config or TrainConfig()
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int)
                                   or not 1 <= stop_after <= config.epochs):
        raise ValueError(f"stop_after must be an int in [1, epochs={config.epochs}] or None, got {stop_after!r}")
    batches = _as_batches(data)
    n = len(batches)
    if n == 0:
        raise ValueError("data: no training examples; need a non-zero number")
    tensors_xy = batches if isinstance(batches, TensorBatches) else None
    eval_set = _as_batches(eval_data) if eval_data is not None else None
    objective = objective if objective is not None else make_objective(config)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    rank, world = _world()
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    optimizer = _make_optimizer(model, config, param_groups)
    history: list[EpochStats] = []
    start = 0
    if param_groups is not None:  # bound to the checkpoint: resuming with other scales is another run
        fingerprint = {**(fingerprint or {}), "param_groups": [
            {"parameters": sum(p.numel() for p in g["params"]), "lr_scale": g["lr_scale"],
             **({"weight_decay": g["weight_decay"]} if "weight_decay" in g else {})}
            for g in optimizer.param_groups]}
    fp = run_fingerprint(model, config, batches, fingerprint) if checkpoint is not None else None
    if checkpoint is not None and not resume and Path(checkpoint).exists() and not overwrite:
        raise FileExistsError(f"checkpoint {checkpoint} exists: resume=True (advx train --resume) continues that run, "
                              f"overwrite=True (--overwrite) starts again over it")
    if resume:
        if checkpoint is None:
            raise ValueError("resume=True needs checkpoint= (the file to resume from)")
        tensors, meta = read_checkpoint(checkpoint)  # read once: checked against this run, then restored
        saved = TrainConfig(**json.loads(meta["config"]))
        if asdict(saved) != asdict(config):
            diff = {f.name: (getattr(saved, f.name), getattr(config, f.name)) for f in fields(config)
                    if getattr(saved, f.name) != getattr(config, f.name)}
            raise CheckpointError(f"checkpoint {checkpoint} was made with a different config (saved, requested): "
                                  f"{diff}; resume with the same options, or --overwrite to start again")
        differs = _diff(json.loads(meta["fingerprint"]), json.loads(json.dumps(fp)))
        if differs:
            raise CheckpointError(f"checkpoint {checkpoint} belongs to another run: its fingerprint differs in "
                                  f"{', '.join(differs[:6])}; resume with the same model and data, or --overwrite "
                                  f"to start again")
        start, _, history = _restore(tensors, meta, model, optimizer)
        state = json.loads(meta.get("data_state", "null"))
        if state is not None and hasattr(batches, "load_state"):
            batches.load_state(state)
        log.info("resuming from %s after epoch %d", checkpoint, start)
    steps = _steps(n, config)
    if augment is None and config.augment == "shift":
        augment = _shift
    bar = _progress(progress)
    done = start * steps  # steps taken, for the progress bar
    task = bar.add_task("training", total=steps * config.epochs, completed=done) if bar else None
    # accuracy on the batches as trained: on adversarial examples for adversarial objectives
    acc_label = "adv acc" if getattr(objective, "adversarial", False) else "acc"
    try:
        for epoch in range(start, config.epochs if stop_after is None else stop_after):
            t0 = time.perf_counter()
            if on_epoch_start is not None:
                on_epoch_start(epoch, model)
                n = len(batches)
                if n == 0:
                    raise ValueError(f"data: no training examples left after on_epoch_start of epoch {epoch + 1}")
                steps = _steps(n, config)
                if bar:
                    bar.update(task, total=done + steps * (config.epochs - epoch))
            # the schedule follows the fraction of training done, (epoch + i / steps) / epochs,
            # which stays monotone when on_epoch_start changes the number of steps per epoch
            total = steps * config.epochs
            generator = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
            order = torch.randperm(n, generator=generator)
            loss_sum, correct, seen, scored = 0.0, 0, 0, 0
            lr = config.lr_at(epoch * steps, total)
            model.train()
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(_epoch_seed(config.seed, epoch) + 1)  # dropout and other global-RNG layers
                for i in range(steps):
                    batch = order[i * config.batch_size:(i + 1) * config.batch_size]
                    if world > 1:
                        if len(batch) < world:  # too small to give every rank a sample: skipped by all
                            continue
                        batch = batch[rank::world]
                    if tensors_xy is not None:
                        xb, yb = tensors_xy.x[batch].to(device), tensors_xy.y[batch].to(device)
                    else:
                        xb, yb = (_to(v, device) for v in batches.batch(batch))
                    if augment is not None:
                        xb = augment(xb, generator)
                    lr = config.lr_at(epoch * steps + i, total)
                    for group in optimizer.param_groups:
                        group["lr"] = lr * group.get("lr_scale", 1.0)
                    optimizer.zero_grad(set_to_none=True)
                    if hasattr(objective, "at_step"):  # schedules inside the objective, e.g. an eps warm-up
                        objective.at_step(epoch * steps + i, total)
                    loss, logits = objective(net, xb, yb, generator)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise TrainingDiverged(
                            f"training diverged: the loss is {value} at epoch {epoch + 1}, step {i + 1} of {steps} "
                            f"(lr {lr:.3g}); lower the learning rate or check the data for NaN/inf"
                            + (f"; the checkpoint {checkpoint} after epoch {epoch} is kept"
                               if checkpoint is not None and epoch > 0 and Path(checkpoint).exists() else ""))
                    loss.backward()
                    if config.grad_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                    optimizer.step()
                    loss_sum += value * len(batch)
                    if logits is not None:
                        correct += int((logits.detach().argmax(1) == yb).sum())
                        scored += len(batch)
                    seen += len(batch)
                    done += 1
                    if bar:
                        shown = f" {acc_label} {correct / scored:.3f}" if scored else ""
                        bar.update(task, advance=1, description=f"epoch {epoch + 1}/{config.epochs} loss "
                                   f"{loss_sum / seen:.3f}{shown}")
            if world > 1:  # the epoch's loss and accuracy over all ranks' shares
                totals = torch.tensor([loss_sum, float(correct), float(seen), float(scored)], dtype=torch.float64,
                                      device=device)
                torch.distributed.all_reduce(totals)
                loss_sum, correct, seen, scored = float(totals[0]), int(totals[1]), int(totals[2]), int(totals[3])
            if eval_fn is not None:
                model.eval()
                test_acc = float(eval_fn(model))
            else:
                test_acc = accuracy(model, eval_set) if eval_set is not None else None
            stats = EpochStats(epoch + 1, loss_sum / seen if seen else math.nan,
                               correct / scored if scored else math.nan, test_acc, time.perf_counter() - t0, lr)
            history.append(stats)
            log.info("epoch %d/%d: loss %.4f%s%s, %.1f s", stats.epoch, config.epochs, stats.loss,
                     f", train acc {stats.train_accuracy:.4f}" if scored else "",
                     "" if test_acc is None else f", test acc {test_acc:.4f}", stats.seconds)
            if checkpoint is not None and rank == 0:
                save_checkpoint(checkpoint, model, optimizer, epoch + 1, config, history, fp,
                                batches.state() if hasattr(batches, "state") else None)
            elif checkpoint is None:
                bad = _non_finite(model.state_dict())
                if bad:
                    raise TrainingDiverged(f"training diverged: after epoch {epoch + 1} the weights hold NaN or inf "
                                           f"({', '.join(bad[:3])})")
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


def _steps(n: int, config: TrainConfig) -> int:
    """Batches in an epoch of ``n`` examples."""
    steps = n // config.batch_size if config.drop_last else math.ceil(n / config.batch_size)
    if steps == 0:
        raise ValueError(f"data: {n} examples make no full batch of {config.batch_size} (drop_last=True)")
    return steps


def _world() -> tuple[int, int]:
    """(rank, world size) of this process in a torch.distributed process group; (0, 1) outside one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich import progress as rp

    bar = rp.Progress(rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
                      rp.TimeElapsedColumn(), rp.TimeRemainingColumn())
    bar.start()
    return bar
