"""``advx transfer`` as a job: craft on each source model, judge on every target model, batch by batch.

The rate for (source, target) is the fraction of the samples the target classifies
correctly on clean inputs that it misclassifies after the attack crafted on the
source (untargeted) -- :func:`advx.attacks.transfer_matrix`'s definition, computed
here per batch so that a run checkpoints, resumes and shards like every other.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor

from advx.attacks.base import Attack
from advx.jobs.config import JobConfig, capture_argv
from advx.jobs.fingerprint import data_sha256, model_sha256
from advx.jobs.runner import JobOutput, batch_count, batch_slice
from advx.model import attack_mode

__all__ = ["TransferJob"]


class TransferJob:
    """Source x target transfer success rates of one attack (a batch: every source on that batch)."""

    label = "advx transfer"

    def __init__(self, attack: Attack, models: dict[str, torch.nn.Module], x: Tensor, y: Tensor, *,
                 settings: dict[str, Any], seed: int = 0, batch_size: int = 256, device: str = "cpu",
                 argv: list[str] | None = None, data_spec: dict[str, Any] | None = None):
        if not models:
            raise ValueError("--models: name at least one model")
        self.attack, self.models = attack, models
        self.device = torch.device(device)
        self.x, self.y = x, y
        self.settings = dict(settings)
        weights = {spec: model_sha256(m) for spec, m in models.items()}
        combined = hashlib.sha256("|".join(f"{k}={v}" for k, v in weights.items()).encode()).hexdigest()
        self.config = JobConfig(
            command="transfer", argv=list(argv) if argv is not None else capture_argv(),
            model={"specs": list(models), "weights_sha256": weights, "sha256": combined},
            data={**(data_spec or {}), "n": len(x), "sha256": data_sha256(x, y)},
            seed=int(seed), n=len(x), batch_size=int(batch_size), device=str(device), options=self.settings)

    def num_batches(self) -> int:
        return batch_count(len(self.x), self.config.batch_size)

    def _slice(self, b: int) -> slice:
        return batch_slice(b, self.config.batch_size, len(self.x))

    def units(self, b: int) -> int:
        return len(self.models)

    def run_batch(self, b: int, tick) -> tuple[dict[str, Tensor], dict[str, Any]]:
        s = self._slice(b)
        x, y = self.x[s].to(self.device), self.y[s].to(self.device)
        out: dict[str, Tensor] = {}
        for j, model in enumerate(self.models.values()):
            with attack_mode(model) as m, torch.no_grad():
                out[f"right/{j}"] = m(x).argmax(1) == y
        for i, source in enumerate(self.models.values()):
            with torch.enable_grad():
                x_adv = self.attack(source, x, y).x_adv
            out[f"x_adv/{i}"] = x_adv
            for j, model in enumerate(self.models.values()):
                with attack_mode(model) as m, torch.no_grad():
                    out[f"fooled/{i}/{j}"] = m(x_adv).argmax(1) != y
            tick(1)
        return {k: v.detach().cpu() for k, v in out.items()}, {"n": len(x)}

    def finish(self, records) -> JobOutput:
        order = sorted(records)
        cat = {k: torch.cat([records[b][0][k] for b in order]) for k in records[order[0]][0]}
        names = list(self.models)
        S = T = len(names)
        rates = torch.zeros(S, T)
        for i in range(S):
            for j in range(T):
                right = cat[f"right/{j}"]
                rates[i, j] = (cat[f"fooled/{i}/{j}"] & right).sum() / right.sum().clamp_min(1)
        results = {
            "medium": "image" if self.x.dim() == 4 else "tensor",
            "attack": self.settings.get("description", self.settings.get("attack")),
            "settings": self.settings,
            "sources": names, "targets": names,
            "success": [[round(float(v), 6) for v in row] for row in rates],
            "clean_accuracy": [round(float(cat[f"right/{j}"].float().mean()), 6) for j in range(T)],
            "n": [int(cat[f"right/{j}"].sum()) for j in range(T)],
        }
        tensors = {"x": self.x.detach().cpu(), "y": self.y.detach().cpu(),
                   **{f"x_adv/{names[i]}": cat[f"x_adv/{i}"] for i in range(S)}}
        if S == 1:
            tensors["x_adv"] = cat["x_adv/0"].clone()
        return JobOutput(results=results, tensors=tensors, value=results)
