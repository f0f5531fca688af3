"""``advx evaluate`` as a job: worst-case robust accuracy over an attack ensemble, batch by batch.

The per-batch schedule (:class:`advx.evaluation.schedule.BatchEvaluator`) and the
merge into an :class:`~advx.evaluation.report.EvaluationReport` are the
evaluation layer's; this module feeds them through :func:`advx.jobs.run_job`
(fingerprinted, locked run folder, checksummed checkpoints, torchrun sharding,
progress) and writes the run folder's three files. :func:`evaluate` is the
Python API (re-exported as ``advx.evaluate``).

The protocol is AutoAttack's (Croce & Hein, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", ICML 2020,
https://arxiv.org/abs/2003.01690): a point counts as robust at eps only if the
model classifies it correctly and *every* attack of the ensemble fails on it;
each later attack runs only on the points still robust. Batches draw all
randomness from seeds derived from (seed, batch, eps, attack), so resume and
torchrun sharding reproduce the same numbers. When the report is built, an
example found at a smaller eps (same norm) also breaks the point at every larger
eps ("carried"): the ball only grows.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advx.evaluation import checks as C
from advx.evaluation.eot import EOT
from advx.evaluation.presets import AttackLike, resolve_attacks
from advx.evaluation.report import EvaluationReport, build_report
from advx.evaluation.schedule import ROBUST, BatchEvaluator, dlr_notes, threat_key
from advx.jobs.config import JobConfig, capture_argv
from advx.jobs.distributed import world
from advx.jobs.fingerprint import data_sha256, model_sha256
from advx.jobs.runner import JobOutput, batch_count, batch_slice, run_job
from advx.model import ModelFn, attack_mode
from advx.threat import Threat, parse_threat

__all__ = ["EvaluateJob", "evaluate"]


def _as_tensor(v: Any, name: str) -> Tensor:
    if isinstance(v, Tensor):
        return v
    if isinstance(v, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(v))
    raise TypeError(f"data: {name} must be a torch tensor or a numpy array, got {type(v).__name__}")


def _data(data: Any) -> tuple[Tensor, Tensor, Any]:
    """(x, y, bounds) from a pair, an object with .x/.y (advx.data.load), or an iterable of (x, y) batches
    (a DataLoader); numpy arrays are accepted, and integer labels of any width become int64."""
    bounds = None
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x, y = (_as_tensor(v, k) for v, k in zip(data, ("x", "y")))
    elif hasattr(data, "x") and hasattr(data, "y"):
        x, y = _as_tensor(data.x, "x"), _as_tensor(data.y, "y")
        bounds = getattr(data, "bounds", None)
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Tensor, np.ndarray)):
        batches = []
        for b in data:
            if not isinstance(b, (tuple, list)) or len(b) < 2:
                raise TypeError(f"data must be a pair (x, y), an object with .x and .y or an iterable of (x, y) "
                                f"batches; the iterable gave a {type(b).__name__}")
            batches.append((_as_tensor(b[0], "x"), _as_tensor(b[1], "y")))
        if not batches:
            raise ValueError("data: the iterable gave no batches")
        x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1].reshape(-1) for b in batches])
    else:
        raise TypeError(f"data must be a pair (x, y), an object with .x and .y (advx.data.load) or an iterable of "
                        f"(x, y) batches such as a DataLoader, got {type(data).__name__}")
    if not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"data: x must be a float batch (N, ...), got dtype {x.dtype}, shape {tuple(x.shape)}")
    if y.dtype in (torch.int8, torch.uint8, torch.int16, torch.int32):
        y = y.long()
    if y.dtype != torch.long or y.shape != (len(x),):
        raise ValueError(f"data: y must be integer labels of shape ({len(x)},), got {y.dtype} {tuple(y.shape)}")
    if len(x) == 0:
        raise ValueError("data: no points to evaluate")
    return x, y, bounds


def _threats(threat: Any, eps: Any, bounds: Any) -> list[Threat]:
    items = threat if isinstance(threat, (list, tuple)) else [threat]
    out: list[Threat] = []
    for t in items:
        if isinstance(t, str):
            out += parse_threat(t, bounds=tuple(bounds) if bounds is not None else (0.0, 1.0))
        elif isinstance(t, Threat):
            out.append(t)
        else:
            raise TypeError(f"threat must be a Threat, a list of them or a string like 'linf:0.1,0.2', "
                            f"got {type(t).__name__}")
    if eps is not None:
        values = [eps] if isinstance(eps, (int, float)) else list(eps)
        out = [t.with_eps(e) for t in out for e in values]
    if not out:
        raise ValueError("threat: give at least one threat")
    groups: dict[tuple, list[Threat]] = {}
    for t in out:
        groups.setdefault((type(t), repr(t.bounds)), []).append(t)
    ordered = [t for g in groups.values() for t in sorted(g, key=lambda t: t.eps)]
    keys = [threat_key(t) for t in ordered]
    if len(set(keys)) != len(keys):
        raise ValueError(f"threat: the same threat appears twice ({keys}); give each eps once")
    return ordered


class EvaluateJob:
    """One evaluation as a job: a batch is one :meth:`BatchEvaluator.run`; finish merges the report."""

    label = "advx evaluate"

    def __init__(self, model: ModelFn, data: Any, threat, attacks: str | Sequence[AttackLike] = "standard",
                 eps=None, batch_size: int = 256, eot: int | None = None, seed: int = 0,
                 checks: bool | Sequence[str] = True, device=None, probe_points: int = 16,
                 keep_adversarials: bool = True, description: dict[str, Any] | None = None,
                 argv: list[str] | None = None, model_spec: dict[str, Any] | None = None,
                 data_spec: dict[str, Any] | None = None, budget: int | None = None,
                 allow_large_eps: bool = False):
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module or a function of x), got {type(model).__name__}")
        x_all, y_all, bounds = _data(data)
        threats = _threats(threat, eps, bounds)
        for t in threats:
            t.check(x_all, "data x")
            t.check_scale(x_all[:1], allow_large_eps=allow_large_eps)  # linf:8 on [0, 1]: "did you mean 8/255?"
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if isinstance(probe_points, bool) or not isinstance(probe_points, int) or probe_points < 0:
            raise ValueError(f"probe_points must be an integer >= 0, got {probe_points!r}")
        if checks is True:
            enabled = C.names()
        elif checks is False or checks is None:
            enabled = ()
        else:
            enabled = tuple(checks)
            unknown = sorted(set(enabled) - set(C.names()))
            if unknown:
                raise ValueError(f"checks: unknown {unknown}; choose from {list(C.names())}")
        specs, notes = resolve_attacks(attacks)
        if device is None:
            params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
            device = params[0].device if params else x_all.device
        device = torch.device(device)
        if eot is not None and (isinstance(eot, bool) or not isinstance(eot, int) or eot < 1):
            raise ValueError(f"eot must be a whole number of forward passes >= 1, got {eot!r}")
        notes = notes + dlr_notes(model, x_all, specs, threats, device)
        model_hash, data_hash = model_sha256(model), data_sha256(x_all, y_all)
        self.settings = {
            "schema": "advx.evaluation/1",
            "threats": [threat_key(t) for t in threats],
            "bounds": [repr(t.bounds[0].tolist()) + ", " + repr(t.bounds[1].tolist()) for t in threats[:1]],
            "attacks": [{"name": s.name, "minimum_norm": s.minimum_norm,
                         "config": {threat_key(t): s.describe(t) for t in threats}} for s in specs],
            "notes": notes, "seed": int(seed), "batch_size": batch_size, "eot": eot, "checks": list(enabled),
            "probe_points": probe_points, "n": len(x_all), "budget": budget,
            "model_fingerprint": model_hash[:16], "data_fingerprint": data_hash[:16],
            "description": description or {},
        }
        options = {k: v for k, v in self.settings.items()
                   if k not in ("seed", "batch_size", "n", "model_fingerprint", "data_fingerprint", "description",
                                "budget")}  # a run stopped at its budget may resume with a larger one
        self.config = JobConfig(
            command="evaluate", argv=list(argv) if argv is not None else capture_argv(),
            model={**(model_spec or {"spec": type(model).__qualname__}), "sha256": model_hash},
            data={**(data_spec or {}), "n": len(x_all), "sha256": data_hash},
            seed=int(seed), n=len(x_all), batch_size=batch_size, device=str(device), options=options)
        self.model, self.data = model, data
        self.x, self.y = x_all, y_all
        self.threats, self.specs, self.enabled, self.eot = threats, specs, enabled, eot
        self.keep = keep_adversarials
        self.device = device
        self.started = time.perf_counter()
        with attack_mode(model):
            self.eval_model = EOT(model, eot) if eot is not None else model  # built in eval mode
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ValueError(f"budget must be a whole number of model passes >= 1, got {budget!r}")
        self.runner = BatchEvaluator(self.eval_model, model, threats, specs, seed, enabled, probe_points,
                                     keep_adversarials, budget=budget, eot=eot)
        self._ticks = "tick" in inspect.signature(self.runner.run).parameters

    # ------------------------------------------------------------------ the job
    def num_batches(self) -> int:
        return batch_count(len(self.x), self.config.batch_size)

    def _slice(self, b: int) -> slice:
        return batch_slice(b, self.config.batch_size, len(self.x))

    def units(self, b: int) -> int:
        s = self._slice(b)
        return s.stop - s.start

    def run_batch(self, b: int, tick) -> tuple[dict[str, Tensor], dict[str, Any]]:
        s = self._slice(b)
        xb, yb = self.x[s].to(self.device), self.y[s].to(self.device)
        steps = len(self.specs) + 1  # the members, then the checks

        def member_done(k: int = 1) -> None:
            tick(len(xb) * k / steps)

        with attack_mode(self.model):
            if self._ticks:
                return self.runner.run(b, xb, yb, tick=member_done)
            return self.runner.run(b, xb, yb)

    def status(self, records) -> str:
        if not records:
            return ""
        n = sum(int(t["clean_correct"].numel()) for t, _ in records.values())
        robust = [sum(int((t["broken_by"][k] == ROBUST).sum()) for t, _ in records.values())
                  for k in range(len(self.threats))]
        return "robust " + "  ".join(f"{threat_key(t)} {100 * r / n:.1f}%" for t, r in zip(self.threats, robust))

    def report(self, records) -> EvaluationReport:
        _, size = world()
        report = build_report(records, self.threats, self.specs, self.settings, self.enabled, self.eot,
                              time.perf_counter() - self.started, world_size=size)
        if self.keep:
            with attack_mode(self.model):
                report.attach_examples(self.eval_model, self.x, self.y, self.device,
                                       getattr(self.data, "classes", None))
        return report

    def finish(self, records) -> JobOutput:
        report = self.report(records)
        body = report.to_dict()
        settings = body.pop("config")
        results = {"medium": "image" if self.x.dim() == 4 else "tensor", **body, "settings": settings}
        tensors: dict[str, Tensor] = {}
        if report.adversarials:
            tensors = {"x": self.x.cpu(), "y": self.y.cpu(),
                       **{f"x_adv/{k}": v.cpu() for k, v in report.adversarials.items()}}
            if len(report.adversarials) == 1:
                tensors["x_adv"] = next(iter(report.adversarials.values())).cpu().clone()
            shown = getattr(report, "report_tensors", None)  # the example images the page draws
            if callable(shown):
                tensors.update(shown())
        return JobOutput(results=results, tensors=tensors, value=report)


def evaluate(
    model: ModelFn,
    data: Any,
    threat: Threat | str | Sequence[Threat | str],
    attacks: str | Sequence[AttackLike] = "standard",
    eps: float | Sequence[float] | None = None,
    batch_size: int = 256,
    out_dir: str | None = None,
    resume: bool = False,
    eot: int | None = None,
    seed: int = 0,
    progress: bool = True,
    checks: bool | Sequence[str] = True,
    device: str | torch.device | None = None,
    probe_points: int = 16,
    keep_adversarials: bool = True,
    description: dict[str, Any] | None = None,
    overwrite: bool = False,
    argv: list[str] | None = None,
    model_spec: dict[str, Any] | None = None,
    data_spec: dict[str, Any] | None = None,
    budget: int | None = None,
    allow_large_eps: bool = False,
) -> EvaluationReport:
    """Robust accuracy of ``model`` on ``data``: worst case over an attack ensemble, with trust checks.

    Args:
        model: maps inputs in the threat's bounds to logits (an ``nn.Module`` or callable).
        data: ``(x, y)`` tensors or an object with ``.x``/``.y`` (e.g. ``advx.data.load(...)``).
        threat: a threat, a list of threats, or a string such as ``"linf:0.1,0.2"``.
        attacks: a preset -- ``"standard"`` (cheap and strong), ``"autoattack"`` (AutoAttack's standard
            ensemble exactly), ``"thorough"``, ``"fast"`` (see :mod:`advx.evaluation.presets`) -- a
            comma-separated string of names, or a list of names / Attack objects / callables.
        eps: radii; each threat is evaluated at every one of them (overrides the threats' own eps).
        batch_size: points per batch (the unit of checkpointing and sharding).
        out_dir: run folder for checkpoints, results.json, adversarial.safetensors, report.html
            (nothing written if None). A non-empty folder needs ``resume`` or ``overwrite``.
        resume: continue the run in ``out_dir`` (same fingerprint) instead of refusing it.
        overwrite: replace the run in ``out_dir``.
        eot: average the model over this many forward passes (for randomised models).
        seed: every random choice derives from it.
        progress: show a progress bar (points done, robust accuracy, ETA).
        checks: True (all), False (none) or a list of check names (``advx.evaluation.checks.names()``).
        device: where to run (default: the model's device).
        probe_points: points per batch probed by the unbounded and convergence checks.
        keep_adversarials: keep the adversarial examples (and save them in ``out_dir``).
        description: extra JSON-able fields recorded in the configuration (e.g. model/data names).
        allow_large_eps: accept a radius on a suspicious scale (``Linf(8)`` on data in [0, 1] is refused
            by default as the 8-vs-8/255 mistake, ``Threat.check_scale``).
        budget: a hard limit on the model passes (forward + backward samples, counted at the model) the
            attacks and checks may spend (the clean forward of each point is always spent); once reached no
            further attack or check runs, and the report lists what was not run (``report.budget``).
    """
    job = EvaluateJob(model, data, threat, attacks=attacks, eps=eps, batch_size=batch_size, eot=eot, seed=seed,
                      checks=checks, device=device, probe_points=probe_points, keep_adversarials=keep_adversarials,
                      description=description, argv=argv, model_spec=model_spec, data_spec=data_spec,
                      budget=budget, allow_large_eps=allow_large_eps)
    return run_job(job, out_dir, resume=resume, overwrite=overwrite, progress=progress).value
