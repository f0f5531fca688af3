"""Per-sample target classes for a targeted experiment (``advx attack --target``).

Three ways to pick the class each sample's attack must reach:

* ``random``       -- a class drawn uniformly among the C - 1 classes other than the
  true label, from a generator seeded with the experiment's seed (reproducible);
* ``least-likely`` -- the class with the lowest clean logit (Kurakin et al. 2017,
  "Adversarial examples in the physical world", arXiv:1607.02533);
* an integer k     -- the same class k for every sample.

A sample whose true label *is* its target (every sample of class k for a fixed
class; a sample whose least-likely class is its own label) has nothing to reach:
it is not attacked, its target is recorded as ``-1``, and it is left out of the
success rate (docs/results-schema.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Targeting", "NOT_ATTACKED"]

#: the target recorded for a sample that is not attacked (its label is the target)
NOT_ATTACKED = -1

_MODES = ("random", "least-likely")


@dataclass(frozen=True)
class Targeting:
    """How the target classes are chosen: ``mode`` is "random", "least-likely" or "class" (then ``cls``)."""

    mode: str
    cls: int | None = None

    @classmethod
    def parse(cls, spec: str | int | Targeting | None) -> Targeting | None:
        """``"random"``, ``"least-likely"``, a class index (int or digits) or None (untargeted)."""
        if spec is None or isinstance(spec, Targeting):
            return spec
        if isinstance(spec, bool):
            raise TypeError(f"--target must be random, least-likely or a class index, got {spec!r}")
        if isinstance(spec, int):
            index = spec
        else:
            text = str(spec).strip().lower().replace("_", "-")
            if text in _MODES:
                return cls(text)
            try:
                index = int(text)
            except ValueError:
                raise ValueError(f"--target {spec!r}: give random, least-likely or a class index such as 3") from None
        if index < 0:
            raise ValueError(f"--target {spec!r}: a class index must be >= 0")
        return cls("class", index)

    @property
    def spec(self) -> str:
        """The command-line spelling: ``random``, ``least-likely`` or the class index."""
        return str(self.cls) if self.mode == "class" else self.mode

    def targets(self, y: Tensor, clean_logits: Tensor, seed: int = 0) -> Tensor:
        """(N,) int64 target per sample, :data:`NOT_ATTACKED` where the label is the target."""
        n, num_classes = clean_logits.shape
        if self.mode == "class":
            if not 0 <= self.cls < num_classes:
                raise ValueError(f"--target {self.cls}: class index outside [0, {num_classes}) (the model returns "
                                 f"{num_classes} classes); give 0..{num_classes - 1}, random or least-likely")
            t = torch.full_like(y, self.cls)
        elif self.mode == "least-likely":
            t = clean_logits.argmin(1).to(y.device)
        elif self.mode == "random":
            if num_classes < 2:
                raise ValueError("--target random needs a model with at least 2 classes")
            g = torch.Generator().manual_seed(int(seed))  # on the CPU: the same targets on every device
            offset = torch.randint(1, num_classes, (n,), generator=g)
            t = (y.cpu() + offset) % num_classes
            t = t.to(y.device)
        else:
            raise ValueError(f"unknown targeting mode {self.mode!r}")
        t = t.long().clone()
        t[t == y] = NOT_ATTACKED
        return t

    def describe(self, classes: list[str], n_excluded: int, seed: int) -> str:
        """In words, for the report: ``random class ≠ label (seed 0)``, ``class 3 “Dress”; 12 ... not attacked``."""
        if self.mode == "random":
            text = f"random class ≠ label, seed {seed}"
        elif self.mode == "least-likely":
            text = "least-likely class of the clean logits"
        else:
            name = classes[self.cls] if self.cls < len(classes) else None
            text = f"class {self.cls}" + (f" “{name}”" if name and name != str(self.cls) else "")
        if n_excluded:
            text += f"; {n_excluded} sample{'s' if n_excluded != 1 else ''} whose label is the target not attacked"
        return text
