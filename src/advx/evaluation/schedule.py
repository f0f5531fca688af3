"""One batch of an evaluation: the attack schedule of the ensemble, and the checks' evidence.

:class:`BatchEvaluator` turns a batch (x, y) into a record: per threat and point,
which attack broke it (``broken_by``: an attack index, :data:`ROBUST` or
:data:`MISCLASSIFIED`), the adversarial examples, the passes spent per attack,
and the evidence of the checks. Every random choice is seeded from
(seed, batch, threat, attack), so a batch computes the same record wherever and
whenever it runs (resume, sharding). The loop over batches is ``ensemble.evaluate``.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from advx.evaluation import checks as C
from advx.evaluation.eot import is_random
from advx.evaluation.presets import AttackSpec
from advx.model import ModelFn, attack_mode
from advx.threat import Threat

__all__ = ["ROBUST", "MISCLASSIFIED", "BatchEvaluator", "derive_seed", "seeded", "threat_key", "dlr_notes"]

ROBUST, MISCLASSIFIED = -1, -2  #: codes in ``broken_by``; attacks are 0..A-1, the convergence probe A


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (stable across processes and runs)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@contextlib.contextmanager
def seeded(device: torch.device, *parts: Any) -> Iterator[torch.Generator]:
    """Fix the global RNG (for randomised models) from ``parts``; restore it on exit. Yields a generator."""
    seed = derive_seed(*parts)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield torch.Generator(device=device).manual_seed(seed)


def threat_key(threat: Threat) -> str:
    return f"{threat.norm_name or type(threat).__name__.lower()}:{threat.eps:g}"



class BatchEvaluator:
    """Evaluates one batch into a record (tensors + JSON evidence)."""

    def __init__(self, model, raw_model, threats, specs, seed, checks, probe_points, keep_adversarials):
        self.model, self.raw_model = model, raw_model
        self.threats, self.specs = threats, specs
        self.seed, self.checks, self.probe = seed, checks, probe_points
        self.keep = keep_adversarials
        self.groups: list[list[int]] = []
        for k, t in enumerate(threats):
            last = threats[self.groups[-1][0]] if self.groups else None
            if last is not None and (type(last), repr(last.bounds)) == (type(t), repr(t.bounds)):
                self.groups[-1].append(k)
            else:
                self.groups.append([k])

    def run(self, b: int, x: Tensor, y: Tensor) -> tuple[dict[str, Tensor], dict[str, Any]]:
        start = time.perf_counter()
        dev, K, A, B = x.device, len(self.threats), len(self.specs), len(x)
        with seeded(dev, self.seed, b, "clean"):
            clean = self.model(x)
        correct = clean.argmax(1) == y
        broken = torch.full((K, B), ROBUST, dtype=torch.int16, device=dev)
        broken[:, ~correct] = MISCLASSIFIED
        grads = torch.zeros(K, A + 1, dtype=torch.long)
        queries = torch.zeros(K, A + 1, dtype=torch.long)
        x_adv = x.unsqueeze(0).repeat(K, *([1] * x.dim()))
        meta: dict[str, Any] = {"batch": b, "n": B}

        seconds = []
        for a, spec in enumerate(self.specs):
            t0 = time.perf_counter()
            if spec.minimum_norm:
                self._minimum_norm(b, a, spec, x, y, broken, x_adv, grads, queries)
            else:
                for k, threat in enumerate(self.threats):
                    rows = (broken[k] == ROBUST).nonzero().squeeze(1)
                    if len(rows) == 0 or not spec.supports(threat):
                        continue
                    with seeded(dev, self.seed, b, k, a) as gen:
                        res = spec.make(threat)(self.model, x[rows], y[rows], generator=gen)
                    self._mark(k, a, rows, res, broken, x_adv, grads, queries)
            seconds.append(time.perf_counter() - t0)
        meta["attack_seconds"] = seconds

        if "convergence" in self.checks:
            meta["convergence"] = []
            for k, threat in enumerate(self.threats):
                robust = (broken[k] == ROBUST).nonzero().squeeze(1)
                rows = robust[: self.probe]
                entry = {"threat": threat_key(threat), "probed": len(rows), "broken": 0, "robust_before": len(robust)}
                if len(rows):
                    with seeded(dev, self.seed, b, k, "convergence") as gen:
                        res = C.stronger_attack(threat)(self.model, x[rows], y[rows], generator=gen)
                    entry["broken"] = int(res.success.sum())
                    self._mark(k, A, rows, res, broken, x_adv, grads, queries)
                meta["convergence"].append(entry)
        meta.update(self._evidence(b, x, y, clean, correct))
        meta["wall_time_s"] = time.perf_counter() - start
        tensors = {"clean_correct": correct.cpu(), "broken_by": broken.cpu(), "gradients": grads, "queries": queries}
        if self.keep:
            for k, t in enumerate(self.threats):
                tensors[f"x_adv/{threat_key(t)}"] = x_adv[k].cpu()
        return tensors, meta

    @staticmethod
    def _mark(k, a, rows, res, broken, x_adv, grads, queries):
        hit = res.success.to(broken.device)
        broken[k, rows[hit]] = a
        x_adv[k, rows[hit]] = res.x_adv[hit].to(x_adv.dtype)
        grads[k, a] += int(res.gradients.sum())
        queries[k, a] += int(res.queries.sum())

    def _minimum_norm(self, b, a, spec: AttackSpec, x, y, broken, x_adv, grads, queries):
        """Run once per norm at the largest eps; re-judge its examples at every eps."""
        for group in self.groups:
            ks = [k for k in group if spec.supports(self.threats[k])]
            if not ks:
                continue
            rows = (broken[ks] == ROBUST).any(0).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            top = ks[-1]
            with seeded(x.device, self.seed, b, top, a) as gen:
                res = spec.make(self.threats[top])(self.model, x[rows], y[rows], generator=gen)
            grads[top, a] += int(res.gradients.sum())
            queries[top, a] += int(res.queries.sum())
            for k in ks:
                cand = res.success & (broken[k, rows] == ROBUST)
                if not bool(cand.any()):
                    continue
                r = rows[cand]
                z = self.threats[k].project(res.x_adv[cand], x[r])
                with seeded(x.device, self.seed, b, k, a, "judge"), torch.no_grad():
                    hit = self.model(z).argmax(1) != y[r]
                queries[k, a] += len(r)
                broken[k, r[hit]] = a
                x_adv[k, r[hit]] = z[hit]

    def _evidence(self, b, x, y, clean, correct) -> dict[str, Any]:
        ev: dict[str, Any] = {}
        dev = x.device
        if "randomness" in self.checks:
            with seeded(dev, self.seed, b, "randomness"):
                rows, diff, changed = is_random(self.raw_model, x)
            ev["randomness"] = {"rows": len(x), "differing_rows": rows, "max_abs_diff": diff,
                                "prediction_changed": changed}
        if "probabilities" in self.checks:
            with seeded(dev, self.seed, b, "probabilities"), torch.no_grad():
                raw = clean if self.raw_model is self.model else self.raw_model(x)
            ev["probabilities"] = C.probability_evidence(raw)
        if "gradients" in self.checks:
            largest = self.threats[self.groups[0][-1]]  # the largest eps of the first norm
            with seeded(dev, self.seed, b, "gradients") as gen:
                ev["gradients"] = C.gradient_evidence(self.model, x, y, largest, gen)
        if "unbounded" in self.checks:
            rows = correct.nonzero().squeeze(1)[: self.probe]
            probed = succeeded = gradients = 0
            for group in self.groups:
                threat = self.threats[group[-1]]
                try:
                    full = C.full_range(threat, x)
                except TypeError:
                    continue
                if len(rows):
                    with seeded(dev, self.seed, b, group[0], "unbounded") as gen:
                        res = C.unbounded_attack(full)(self.model, x[rows], y[rows], generator=gen)
                    probed += len(rows)
                    succeeded += int(res.success.sum())
                    gradients += int(res.gradients.sum())
            ev["unbounded"] = {"probed": probed, "succeeded": succeeded, "gradients": gradients}
        return ev


def dlr_notes(model: ModelFn, x: Tensor, specs: list, threats: list[Threat], device: torch.device) -> list[str]:
    """Notes for the members whose DLR loss is undefined on this model's classes (APGD.dlr_fallback)."""
    attacks = [a for a in (next((s.make(t) for t in threats if s.supports(t)), None) for s in specs)
               if hasattr(a, "dlr_fallback") and a.dlr_fallback(2) is not None]  # members on the DLR loss
    if not attacks:
        return []
    with attack_mode(model) as m, torch.no_grad():
        classes = int(m(x[:1].to(device)).shape[1])
    notes = (a.dlr_fallback(classes) for a in attacks)
    return [f"{n} (not scale-invariant: read it with the other attacks)" for n in notes if n is not None]
