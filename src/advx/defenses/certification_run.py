"""A resumable randomized-smoothing certification run and its report (``advx certify``).

Certifies test points with :func:`advx.defenses.smoothing.certify` (Cohen, Rosenfeld
& Kolter, ICML 2019, https://arxiv.org/abs/1902.02918) in chunks. Each chunk draws
its noise from a generator seeded by (seed, chunk), and is written atomically to
``<out>/chunks/`` when done, so a run stopped at any moment resumes where it was and
gives the same certificates as an uninterrupted one. The finished run is
``results.json`` (per-point prediction and radius, the certified-accuracy curve) and a
self-contained ``report.html`` with the curve.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advx.defenses.smoothing import ABSTAIN, Certificate, certified_accuracy, certify
from advx.evaluation.checkpoint import atomic_save_tensors, atomic_write_text, load_tensors
from advx.model import ModelFn, attack_mode

__all__ = ["certify_run", "max_certifiable_radius", "write_certify_report", "curve_uri"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


def max_certifiable_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius ``n`` samples can certify: all n noisy predictions agree,
    p_A_lower = alpha^(1/n), radius sigma * Phi^-1(alpha^(1/n))."""
    from scipy import stats

    return float(sigma * stats.norm.ppf(alpha ** (1.0 / n)))


def _chunk_seed(seed: int, chunk: int) -> int:
    return (int(seed) * 1_000_003 + 7919 * int(chunk)) % (2**63 - 1)


def certify_run(model: ModelFn, x: Tensor, y: Tensor, sigma: float, n0: int = 100, n: int = 10_000,
                alpha: float = 0.001, radii: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), seed: int = 0,
                chunk: int = 10, batch_size: int = 1000, out_dir: str | Path | None = None, resume: bool = False,
                progress: ProgressFn | None = None, describe: dict[str, Any] | None = None) -> dict[str, Any]:
    """Certify every point of ``x``; return the results dictionary (see :func:`write_certify_report`).

    With ``out_dir``, finished chunks are saved there; ``resume=True`` reuses those of an
    earlier run with the same configuration (a different one raises ``ValueError``).
    ``describe`` (model/data names, command) is copied into the results.
    """
    if not isinstance(y, Tensor) or y.shape != x.shape[:1]:
        raise ValueError(f"y must be a label tensor of shape ({len(x)},), got {getattr(y, 'shape', type(y))}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1 (points certified between checkpoints), got {chunk!r}")
    radii = [float(r) for r in radii]
    if any(r < 0 for r in radii):
        raise ValueError(f"radii must be >= 0, got {radii}")
    config = {"sigma": float(sigma), "n0": int(n0), "n": int(n), "alpha": float(alpha), "seed": int(seed),
              "chunk": int(chunk), "points": len(x)}
    chunks_dir = None
    if out_dir is not None:
        chunks_dir = Path(out_dir) / "chunks"
        config_path = Path(out_dir) / "certify-config.json"
        if config_path.exists() and resume:
            old = json.loads(config_path.read_text())
            if old != config:
                diff = ", ".join(f"{k}: {old.get(k)!r} -> {v!r}" for k, v in config.items() if old.get(k) != v)
                raise ValueError(f"resume: the run in {out_dir} was made with a different configuration ({diff}); "
                                 "use another --out or drop --resume")
        elif not resume:  # a fresh run: an earlier run's chunks must not be mixed in
            for old_chunk in chunks_dir.glob("chunk-*.safetensors"):
                old_chunk.unlink()
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(config_path, json.dumps(config, indent=2, sort_keys=True))
    parts: list[Certificate] = []
    total = (len(x) + chunk - 1) // chunk
    start_time, reused = time.perf_counter(), 0
    for c in range(total):
        path = chunks_dir / f"chunk-{c:06d}.safetensors" if chunks_dir is not None else None
        if path is not None and resume and path.exists():
            t, _ = load_tensors(path)
            parts.append(Certificate(t["prediction"], t["radius"], t["p_lower"], t["count"]))
            reused += 1
        else:
            rows = slice(c * chunk, (c + 1) * chunk)
            gen = torch.Generator(device=x.device).manual_seed(_chunk_seed(seed, c))
            cert = certify(model, x[rows], sigma, n0=n0, n=n, alpha=alpha, batch_size=batch_size, generator=gen)
            parts.append(cert)
            if path is not None:
                atomic_save_tensors(path, {"prediction": cert.prediction, "radius": cert.radius,
                                           "p_lower": cert.p_lower, "count": cert.count}, {"chunk": c})
        if progress is not None:
            progress(min((c + 1) * chunk, len(x)), len(x))
    if reused:
        log.info("resumed: %d of %d chunks loaded from %s", reused, total, chunks_dir)
    cert = Certificate(*(torch.cat([getattr(p, f) for p in parts]) for f in ("prediction", "radius", "p_lower",
                                                                              "count")))
    return _results(model, x, y, cert, config, radii, describe or {}, time.perf_counter() - start_time)


def _results(model: ModelFn, x: Tensor, y: Tensor, cert: Certificate, config: dict[str, Any],
             radii: list[float], describe: dict[str, Any], seconds: float) -> dict[str, Any]:
    from advx.experiment import environment

    y = y.cpu()
    with attack_mode(model) as m, torch.no_grad():  # eval mode, restored afterwards
        base = torch.cat([m(x[i:i + 500]).argmax(1).cpu() for i in range(0, len(x), 500)])
    top = max_certifiable_radius(config["sigma"], config["n"], config["alpha"])
    grid = torch.linspace(0, max(top, max(radii, default=0.0)) * 1.05, 101).tolist()
    return {
        "schema_version": 1,
        "kind": "certify",
        **describe,
        "config": config,
        "base_accuracy": float((base == y).double().mean()),
        "smoothed_accuracy": certified_accuracy(cert, y, [0.0])[0],
        "abstain_rate": float((cert.prediction == ABSTAIN).double().mean()),
        "max_certifiable_radius": top,
        "table": {"radii": radii, "certified_accuracy": certified_accuracy(cert, y, radii)},
        "curve": {"radii": grid, "certified_accuracy": certified_accuracy(cert, y, grid)},
        "per_sample": {"label": y.tolist(), "prediction": cert.prediction.tolist(),
                       "radius": [round(float(r), 6) for r in cert.radius], "count": cert.count.tolist()},
        "wall_time_s": seconds,
        "environment": environment(),
    }


def curve_uri(results: dict[str, Any]) -> str:
    """The certified-accuracy-versus-radius curve of ``results`` as a PNG data URI."""
    import matplotlib.pyplot as plt

    from advx.report.figures import figure_uri

    c = results["config"]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.plot(results["curve"]["radii"], results["curve"]["certified_accuracy"], color="#2563eb")
    ax.axvline(results["max_certifiable_radius"], color="#9ca3af", ls="--", lw=1)
    ax.annotate("largest certifiable radius", (results["max_certifiable_radius"], 0.98), xytext=(4, 0),
                textcoords="offset points", color="#6b7280", fontsize=8, rotation=90, va="top")
    ax.set_xlabel("L2 radius")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"Randomized smoothing, sigma {c['sigma']:g}, n = {c['n']}, alpha = {c['alpha']:g}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_uri(fig)


def write_certify_report(results: dict[str, Any], out: str | Path) -> Path:
    """Write ``results.json`` and the self-contained ``report.html`` into ``out``; return the page's path."""
    from advx.report import write_page

    return write_page(out, results, "certify.html", curve=curve_uri(results))
