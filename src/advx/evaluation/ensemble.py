"""Worst-case robust accuracy over an attack ensemble: ``advx.evaluate``.

The protocol of AutoAttack (Croce & Hein, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", ICML 2020,
https://arxiv.org/abs/2003.01690): a point counts as robust at eps only if the
model classifies it correctly and *every* attack of the ensemble fails on it;
each later attack runs only on the points still robust. Per batch:

1. clean forward; misclassified points are never attacked;
2. for each attack, for each eps (each evaluated independently): attack the
   points still robust; a minimum-norm attack runs once per norm at the largest
   eps and its examples are re-judged (projected, one forward) at every eps;
3. a stronger attack probes a few surviving points per eps (convergence check);
   what it breaks is counted;
4. check evidence (gradients, randomness, probabilities, unbounded attack).

Batches draw all randomness from seeds derived from (seed, batch, eps, attack),
so checkpoint/resume and torchrun sharding reproduce the same numbers. When the
report is built, an example found at a smaller eps (same norm) also breaks the
point at every larger eps ("carried"): the ball only grows.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advx.evaluation import checks as C
from advx.evaluation.checkpoint import RunDirectory
from advx.evaluation.distributed import gather_records, process_group, shard
from advx.evaluation.eot import EOT
from advx.evaluation.presets import AttackLike, resolve_attacks
from advx.evaluation.report import EvaluationReport, build_report
from advx.evaluation.schedule import ROBUST, BatchEvaluator, dlr_notes, threat_key
from advx.model import ModelFn, attack_mode
from advx.threat import Threat, parse_threat

__all__ = ["evaluate"]

log = logging.getLogger(__name__)


def _fingerprint_model(model: ModelFn) -> str:
    h = hashlib.sha256(type(model).__qualname__.encode())
    if isinstance(model, torch.nn.Module):
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _fingerprint_data(x: Tensor, y: Tensor) -> str:
    h = hashlib.sha256()
    for t in (x, y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


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


def _progress(enabled: bool, rank: int, size: int):
    if not enabled or rank != 0:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    label = "evaluating" if size == 1 else f"evaluating (rank 0 of {size})"
    bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("points"),
                   TextColumn("{task.fields[robust]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=False)
    return bar


def _running_accuracy(records: dict, threats: list[Threat]) -> str:
    if not records:
        return ""
    n = sum(int(t["clean_correct"].numel()) for t, _ in records.values())
    robust = [sum(int((t["broken_by"][k] == ROBUST).sum()) for t, _ in records.values()) for k in range(len(threats))]
    return "robust " + "  ".join(f"{threat_key(t)} {100 * r / n:.1f}%" for t, r in zip(threats, robust))


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
) -> EvaluationReport:
    """Robust accuracy of ``model`` on ``data``: worst case over an attack ensemble, with trust checks.

    Args:
        model: maps inputs in the threat's bounds to logits (an ``nn.Module`` or callable).
        data: ``(x, y)`` tensors or an object with ``.x``/``.y`` (e.g. ``advx.data.load(...)``).
        threat: a threat, a list of threats, or a string such as ``"linf:0.1,0.2"``.
        attacks: ``"standard"`` (APGD-CE, APGD-T, FAB-T if installed, Square), ``"fast"``, a
            comma-separated string of names, or a list of names / Attack objects / callables.
        eps: radii; each threat is evaluated at every one of them (overrides the threats' own eps).
        batch_size: points per batch (the unit of checkpointing and sharding).
        out_dir: run directory for checkpoints and the report files (none written if None).
        resume: continue the run in ``out_dir`` (same configuration) instead of refusing it.
        eot: average the model over this many forward passes (for randomised models).
        seed: every random choice derives from it.
        progress: show a progress bar (points done, robust accuracy, ETA).
        checks: True (all), False (none) or a list of names from ``advx.evaluation.checks.CHECKS``.
        device: where to run (default: the model's device).
        probe_points: points per batch probed by the unbounded and convergence checks.
        keep_adversarials: keep the adversarial examples (and save them in ``out_dir``).
        description: extra JSON-able fields recorded in the configuration (e.g. model/data names).
    """
    if not callable(model):
        raise TypeError(f"model must be callable (an nn.Module or a function of x), got {type(model).__name__}")
    x_all, y_all, bounds = _data(data)
    threats = _threats(threat, eps, bounds)
    for t in threats:
        t.check(x_all, "data x")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(probe_points, bool) or not isinstance(probe_points, int) or probe_points < 0:
        raise ValueError(f"probe_points must be an integer >= 0, got {probe_points!r}")
    if checks is True:
        enabled = C.CHECKS
    elif checks is False or checks is None:
        enabled = ()
    else:
        enabled = tuple(checks)
        unknown = sorted(set(enabled) - set(C.CHECKS))
        if unknown:
            raise ValueError(f"checks: unknown {unknown}; choose from {list(C.CHECKS)}")
    specs, notes = resolve_attacks(attacks)
    if device is None:
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        device = params[0].device if params else x_all.device
    device = torch.device(device)
    if eot is not None and (isinstance(eot, bool) or not isinstance(eot, int) or eot < 1):
        raise ValueError(f"eot must be a whole number of forward passes >= 1, got {eot!r}")

    notes = notes + dlr_notes(model, x_all, specs, threats, device)
    config = {
        "schema": "advx.evaluation/1",
        "threats": [threat_key(t) for t in threats],
        "bounds": [repr(t.bounds[0].tolist()) + ", " + repr(t.bounds[1].tolist()) for t in threats[:1]],
        "attacks": [{"name": s.name, "minimum_norm": s.minimum_norm,
                     "config": {threat_key(t): s.describe(t) for t in threats}} for s in specs],
        "notes": notes, "seed": int(seed), "batch_size": batch_size, "eot": eot, "checks": list(enabled),
        "probe_points": probe_points, "n": len(x_all),
        "model_fingerprint": _fingerprint_model(model), "data_fingerprint": _fingerprint_data(x_all, y_all),
        "description": description or {},
    }
    num_batches = math.ceil(len(x_all) / batch_size)
    started = time.perf_counter()
    with process_group(device) as (rank, size), attack_mode(model):
        eval_model = EOT(model, eot) if eot is not None else model  # built in eval mode
        runner = BatchEvaluator(eval_model, model, threats, specs, seed, enabled, probe_points, keep_adversarials)
        run_dir = None
        if out_dir is not None:
            run_dir = RunDirectory(out_dir, config, resume=resume)  # every rank checks before any writes
            if size > 1:
                torch.distributed.barrier()
            run_dir.start()
        mine = shard(num_batches, rank, size)
        records: dict[int, tuple[dict[str, Tensor], dict[str, Any]]] = {}
        todo = []
        for b in mine:
            rec = run_dir.load_batch(b) if (run_dir is not None and resume) else None
            if rec is not None:
                records[b] = rec
            else:
                todo.append(b)
        if resume and records:
            log.info("resumed %d finished batches from %s", len(records), out_dir)
        bar = _progress(progress, rank, size)
        with bar if bar is not None else contextlib.nullcontext():
            task = None
            if bar is not None:
                total = sum(min(batch_size, len(x_all) - b * batch_size) for b in mine)
                done = sum(int(t["clean_correct"].numel()) for t, _ in records.values())
                task = bar.add_task("eval", total=total, completed=done, robust=_running_accuracy(records, threats))
            for b in todo:
                sl = slice(b * batch_size, min((b + 1) * batch_size, len(x_all)))
                xb, yb = x_all[sl].to(device), y_all[sl].to(device)
                records[b] = runner.run(b, xb, yb)
                if run_dir is not None:
                    run_dir.save_batch(b, *records[b])
                if bar is not None:
                    bar.update(task, advance=len(xb), robust=_running_accuracy(records, threats))
        records = gather_records(records, device)
        wall = time.perf_counter() - started
        report = build_report(records, threats, specs, config, enabled, eot, wall, world_size=size)
        if keep_adversarials:
            report.attach_examples(eval_model, x_all, y_all, device, getattr(data, "classes", None))
        if run_dir is not None and rank == 0:
            report.save(run_dir.path)
        if size > 1:
            torch.distributed.barrier()
    return report
