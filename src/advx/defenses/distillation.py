"""Defensive distillation, and why it fails.

Papernot, McDaniel, Wu, Jha & Swami, "Distillation as a Defense to Adversarial
Perturbations against Deep Neural Networks", IEEE S&P 2016
(https://arxiv.org/abs/1511.04508):

1. train a teacher with its softmax at temperature T: cross-entropy of softmax(z / T);
2. label the training set with the teacher's soft labels softmax(z_teacher / T);
3. train a student of the same architecture on those soft labels, also at T;
4. deploy the student at T = 1 (its raw logits).

The deployed logits are about T times larger than a normally trained model's, so
softmax(z) saturates: the cross-entropy gradient underflows to zero at almost
every input and FGSM/PGD on cross-entropy stall. Carlini & Wagner, "Defensive
Distillation is Not Robust to Adversarial Examples", 2016
(https://arxiv.org/abs/1607.04311), attack the logit margin instead, which does not
saturate, and succeed on ~100% of points: the robustness was gradient masking.
``benchmarks/distillation.py`` reproduces both halves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advx.data import LabeledData
from advx.defenses.loop import EpochStats, TrainConfig, _world, register_defense, train

__all__ = ["TemperatureTraining", "DistillationTraining", "distill"]

log = logging.getLogger(__name__)


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (Papernot et al. use 100), got {temperature!r}")
    return float(temperature)


class TemperatureTraining:
    """Step 1, the teacher: cross-entropy of softmax(logits / T)."""

    def __init__(self, temperature: float = 100.0):
        self.temperature = _check_temperature(temperature)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        logits = model(x)
        return F.cross_entropy(logits / self.temperature, y), logits


class DistillationTraining:
    """Steps 2-3, the student: cross-entropy against the teacher's softmax(z_teacher / T), both at T.

    ``teacher``: an ``nn.Module`` or a model spec for :func:`advx.zoo.load_model`
    (a ``.safetensors`` path keeps ``TrainConfig.defense_options`` JSON-able).
    """

    def __init__(self, teacher: nn.Module | str, temperature: float = 100.0):
        self.temperature = _check_temperature(temperature)
        if isinstance(teacher, (str, Path)):
            from advx.zoo import load_model

            teacher = load_model(teacher)
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module or a model spec, got {type(teacher).__name__}")
        self.teacher = teacher.eval()

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            self.teacher.to(x.device)
            soft = F.softmax(self.teacher(x) / self.temperature, dim=1)
        logits = model(x)
        loss = -(soft * F.log_softmax(logits / self.temperature, dim=1)).sum(1).mean()
        return loss, logits


def distill(build: Callable[[], nn.Module], data: LabeledData | tuple[Tensor, Tensor], config: TrainConfig,
            temperature: float = 100.0, *, teacher_path: str | Path, eval_data=None,
            checkpoint_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False,
            progress: bool = False,
            on_epoch: Callable[[EpochStats], object] | None = None,
            ) -> tuple[nn.Module, nn.Module, list[EpochStats], list[EpochStats]]:
    """Train a teacher at ``temperature`` (saved to ``teacher_path``), then a student on its soft labels.

    ``build()`` returns a fresh network (called twice; seed the global RNG before).
    ``config`` is used for both (its ``defense`` is replaced). Returns
    ``(teacher, student, teacher_history, student_history)``; deploy the student as is (T = 1).
    """
    from advx.zoo import save_model

    temperature = _check_temperature(temperature)
    teacher_path = Path(teacher_path)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    teacher_cfg = replace(config, defense="temperature", defense_options={"temperature": temperature})
    teacher = build()
    t_ckpt = ckpt / "teacher.ckpt.safetensors" if ckpt else None
    t_hist = train(teacher, data, teacher_cfg, eval_data=eval_data, checkpoint=t_ckpt, overwrite=overwrite,
                   resume=resume and t_ckpt is not None and t_ckpt.exists(), progress=progress, on_epoch=on_epoch)
    x = data.x if isinstance(data, LabeledData) else data[0]
    device = next((p.device for p in teacher.parameters()), torch.device("cpu"))
    with torch.no_grad():
        num_classes = int(teacher(x[:1].to(device)).shape[1])
    rank, world = _world()
    if rank == 0:
        save_model(teacher, teacher_path, _arch_of(teacher),
                   {"in_channels": int(x.shape[1]), "size": int(x.shape[-1]), "num_classes": num_classes,
                    "defense": "temperature", "temperature": temperature, "epochs": config.epochs, "seed": config.seed})
    if world > 1:
        torch.distributed.barrier()  # the teacher file exists before any rank loads it
    student_cfg = replace(config, defense="distill",
                          defense_options={"teacher": str(teacher_path), "temperature": temperature})
    student = build()
    s_ckpt = ckpt / "student.ckpt.safetensors" if ckpt else None
    s_hist = train(student, data, student_cfg, eval_data=eval_data, checkpoint=s_ckpt, overwrite=overwrite,
                   resume=resume and s_ckpt is not None and s_ckpt.exists(), progress=progress, on_epoch=on_epoch)
    return teacher, student, t_hist, s_hist


def _arch_of(model: nn.Module) -> str:
    from advx.zoo import ARCHITECTURES

    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise ValueError(f"distill: cannot save a {type(model).__name__} teacher; build() must return a zoo architecture "
                     f"({', '.join(sorted(ARCHITECTURES))})")


register_defense("temperature", TemperatureTraining)
register_defense("distill", DistillationTraining)
