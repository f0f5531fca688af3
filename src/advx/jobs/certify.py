"""``advx certify`` as a job: randomized-smoothing certificates, one chunk of points per batch.

Each chunk draws its noise from a generator seeded by (seed, chunk)
(:func:`advx.defenses.certification_run.chunk_seed`) and is checkpointed in the run
folder when done, so a run stopped at any moment resumes where it was and gives the
same certificates as an uninterrupted one. The finished run is ``results.json``
(per-point prediction and radius, the certified-accuracy curve) and ``report.html``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advx.defenses.certification_run import certify_results, chunk_seed, max_certifiable_radius
from advx.defenses.smoothing import Certificate, certify
from advx.jobs.config import JobConfig, capture_argv
from advx.jobs.fingerprint import data_sha256, model_sha256
from advx.jobs.runner import JobOutput, batch_count, batch_slice, run_job
from advx.model import ModelFn

__all__ = ["CertifyJob", "certify_run", "max_certifiable_radius"]

_FIELDS = ("prediction", "radius", "p_lower", "count")


class CertifyJob:
    """Certify ``x`` in chunks of ``chunk`` points (one checkpoint each)."""

    label = "advx certify"

    def __init__(self, model: ModelFn, x: Tensor, y: Tensor, sigma: float, *, n0: int = 100, n: int = 10_000,
                 alpha: float = 0.001, radii: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), seed: int = 0,
                 chunk: int = 10, batch_size: int = 1000, device: str | torch.device | None = None,
                 argv: list[str] | None = None, model_spec: dict[str, Any] | None = None,
                 data_spec: dict[str, Any] | None = None):
        if not isinstance(y, Tensor) or y.shape != x.shape[:1]:
            raise ValueError(f"y must be a label tensor of shape ({len(x)},), got {getattr(y, 'shape', type(y))}")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be an int >= 1 (points certified between checkpoints), got {chunk!r}")
        self.radii = [float(r) for r in radii]
        if any(r < 0 for r in self.radii):
            raise ValueError(f"radii must be >= 0, got {self.radii}")
        self.model, self.x, self.y = model, x, y
        self.sigma, self.n0, self.n, self.alpha = float(sigma), int(n0), int(n), float(alpha)
        self.seed, self.chunk, self.forward_batch = int(seed), int(chunk), int(batch_size)
        self.settings = {"sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha, "seed": self.seed,
                         "chunk": self.chunk, "points": len(x)}
        device = str(device if device is not None else x.device)
        self.config = JobConfig(
            command="certify", argv=list(argv) if argv is not None else capture_argv(),
            model={**(model_spec or {"spec": type(model).__qualname__}), "sha256": model_sha256(model)},
            data={**(data_spec or {}), "n": len(x), "sha256": data_sha256(x, y)},
            seed=self.seed, n=len(x), batch_size=self.chunk, device=device,
            options={k: v for k, v in self.settings.items() if k not in ("seed", "chunk", "points")},
        )
        self.started = time.perf_counter()

    def num_batches(self) -> int:
        return batch_count(len(self.x), self.chunk)

    def units(self, c: int) -> int:
        rows = batch_slice(c, self.chunk, len(self.x))
        return rows.stop - rows.start

    def run_batch(self, c: int, tick) -> tuple[dict[str, Tensor], dict[str, Any]]:
        rows = batch_slice(c, self.chunk, len(self.x))
        gen = torch.Generator(device=self.x.device).manual_seed(chunk_seed(self.seed, c))
        cert = certify(self.model, self.x[rows], self.sigma, n0=self.n0, n=self.n, alpha=self.alpha,
                       batch_size=self.forward_batch, generator=gen)
        return {k: getattr(cert, k) for k in _FIELDS}, {"chunk": c}

    def finish(self, records) -> JobOutput:
        order = sorted(records)
        cert = Certificate(*(torch.cat([records[c][0][k] for c in order]) for k in _FIELDS))
        results = {"medium": "image" if self.x.dim() == 4 else "tensor",
                   **certify_results(self.model, self.x, self.y, cert, self.settings, self.radii),
                   "wall_time_s": time.perf_counter() - self.started}
        tensors = {"x": self.x.detach().cpu(), "y": self.y.detach().cpu(),
                   **{k: getattr(cert, k).detach().cpu() for k in _FIELDS}}
        return JobOutput(results=results, tensors=tensors, value=results)


def certify_run(model: ModelFn, x: Tensor, y: Tensor, sigma: float, n0: int = 100, n: int = 10_000,
                alpha: float = 0.001, radii: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), seed: int = 0,
                chunk: int = 10, batch_size: int = 1000, out_dir: str | Path | None = None, resume: bool = False,
                overwrite: bool = False, progress: bool = False, describe: dict[str, Any] | None = None,
                argv: list[str] | None = None) -> dict[str, Any]:
    """Certify every point of ``x``; return the results dictionary (results.json's body).

    With ``out_dir``, finished chunks are checkpointed there; ``resume=True`` reuses those of
    the same run (a different one raises ``ValueError`` naming what differs), ``overwrite``
    replaces it. ``describe`` (model/data names) goes into results.json's model/data specs.
    """
    describe = describe or {}
    job = CertifyJob(model, x, y, sigma, n0=n0, n=n, alpha=alpha, radii=radii, seed=seed, chunk=chunk,
                     batch_size=batch_size, argv=argv, model_spec=describe.get("model_spec"),
                     data_spec=describe.get("data_spec"))
    return run_job(job, out_dir, resume=resume, overwrite=overwrite, progress=progress).results
