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
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from advx.evaluation import checks as C
from advx.evaluation.codes import MISCLASSIFIED, ROBUST, threat_key
from advx.evaluation.presets import AttackSpec
from advx.model import Budget, BudgetExhausted, ModelFn, PassCounter, attack_mode
from advx.threat import Threat

__all__ = ["ROBUST", "MISCLASSIFIED", "BatchEvaluator", "derive_seed", "seeded", "threat_key", "dlr_notes"]



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



class BatchEvaluator:
    """Evaluates one batch into a record (tensors + JSON evidence).

    Every model call goes through a :class:`~advx.model.PassCounter`: the record's ``passes``
    (K, A + 1) are the passes each attack spent at each threat, counted at the model (the last column:
    what the checks' probing attacks broke points with, i.e. the convergence probe), and
    ``meta["passes"]`` the batch's total by phase. ``budget`` (model passes, shared by the batches this
    process runs) is a hard limit: a call that would pass it is refused, the attack it belongs to stops
    there, no further attack or check runs, and the record says which were not run on how many points.
    """

    def __init__(self, model, raw_model, threats, specs, seed, checks, probe_points, keep_adversarials,
                 budget: int | None = None, eot: int | None = None):
        self.model, self.raw_model = model, raw_model
        self.threats, self.specs = threats, specs
        self.seed, self.checks, self.probe = seed, tuple(checks), probe_points
        self.keep = keep_adversarials
        self.budget = Budget(budget)
        self.eot = eot
        self.groups: list[list[int]] = []
        for k, t in enumerate(threats):
            last = threats[self.groups[-1][0]] if self.groups else None
            if last is not None and (type(last), repr(last.bounds)) == (type(t), repr(t.bounds)):
                self.groups[-1].append(k)
            else:
                self.groups.append([k])

    def _checks(self, stage: str) -> list[C.BaseCheck]:
        return [c for c in C.CHECKS if c.name in self.checks and c.stage == stage]

    def run(self, b: int, x: Tensor, y: Tensor, tick=None) -> tuple[dict[str, Tensor], dict[str, Any]]:
        start = time.perf_counter()
        dev, K, A, B = x.device, len(self.threats), len(self.specs), len(x)
        per_call = self.eot or 1
        model = PassCounter(self.model, per_call if self.model is not self.raw_model else 1, self.budget)
        raw = model if self.model is self.raw_model else PassCounter(self.raw_model, 1, self.budget)

        def spent() -> int:
            return model.passes + (raw.passes if raw is not model else 0)

        with self.budget.free(), seeded(dev, self.seed, b, "clean"):
            clean = model(x)
        clean_passes = spent()
        correct = clean.argmax(1) == y
        broken = torch.full((K, B), ROBUST, dtype=torch.int16, device=dev)
        broken[:, ~correct] = MISCLASSIFIED
        grads = torch.zeros(K, A + 1, dtype=torch.long)
        queries = torch.zeros(K, A + 1, dtype=torch.long)
        passes = torch.zeros(K, A + 1, dtype=torch.long)
        unfinished = torch.zeros(K, B, dtype=torch.bool)  # attacked by fewer than all members (budget)
        x_adv = x.unsqueeze(0).repeat(K, *([1] * x.dim()))
        close = torch.full((K, B), torch.inf, dtype=torch.float32, device=dev)  # best margin / clean margin
        clean_margin = _margin(clean, y).clamp_min(1e-12)
        meta: dict[str, Any] = {"batch": b, "n": B, "not_run": []}

        def mark(k: int, a: int, rows: Tensor, res) -> None:
            self._mark(k, a, rows, res, broken, x_adv, grads, queries)
            left = ~res.success.to(dev)
            if bool(left.any()) and getattr(res, "logits", None) is not None:
                ratio = (_margin(res.logits[left].to(dev), y[rows[left]]) / clean_margin[rows[left]]).float()
                close[k, rows[left]] = torch.minimum(close[k, rows[left]], ratio)

        def not_run(what: str, k: int | None, count: int) -> None:
            meta["not_run"].append({"attack": what, "threat": None if k is None else threat_key(self.threats[k]),
                                    "points": int(count)})

        ctx = C.BatchContext(b=b, seed=self.seed, x=x, y=y, clean=clean, correct=correct, model=model,
                             raw_model=raw, threats=self.threats, groups=self.groups, probe=self.probe,
                             broken=broken, mark=lambda k, rows, res: mark(k, A, rows, res),
                             seeded=lambda *parts: seeded(dev, self.seed, b, *parts))
        before = spent()
        self._run_checks("before", ctx, meta, not_run)
        check_passes = spent() - before
        masked = _masking(meta, K)

        seconds = []
        for a, spec in enumerate(self.specs):
            t0 = time.perf_counter()
            if spec.minimum_norm:
                self._minimum_norm(b, a, spec, x, y, broken, x_adv, grads, queries, passes, close, model,
                                   unfinished, not_run, spent)
            else:
                for k, threat in enumerate(self.threats):
                    rows = (broken[k] == ROBUST).nonzero().squeeze(1)
                    if len(rows) == 0 or not spec.supports(threat):
                        continue
                    if self.budget.exhausted:
                        unfinished[k, rows.cpu()] = True
                        not_run(spec.name, k, len(rows))
                        continue
                    for i, part in enumerate(self._parts(b, k, a, spec, rows, close[k], masked)):
                        part = part[broken[k, part] == ROBUST]
                        if len(part) == 0:
                            continue
                        p0 = spent()
                        try:
                            with seeded(dev, self.seed, b, k, a, *([] if i == 0 else ["part", i])) as gen:
                                res = spec.make(threat)(model, x[part], y[part], generator=gen)
                        except BudgetExhausted:
                            unfinished[k, part.cpu()] = True
                            not_run(spec.name, k, len(part))
                            passes[k, a] += spent() - p0
                            break
                        passes[k, a] += spent() - p0
                        before_hits = int((broken[k] >= 0).sum())
                        mark(k, a, part, res)
                        if spec.sample is not None and int((broken[k] >= 0).sum()) > before_hits:
                            masked[k] = True  # the sample broke a point: run on the rest too
            seconds.append(time.perf_counter() - t0)
            if tick is not None:
                tick(1)
        meta["attack_seconds"] = seconds

        before = spent()
        if not self.budget.exhausted:  # the convergence probe's passes count as the checks'
            self._run_checks("after", ctx, meta, not_run)
        else:
            for c in self._checks("after"):
                not_run(f"check:{c.name}", None, B)
        check_passes += spent() - before
        if tick is not None:
            tick(1)
        meta["passes"] = {"clean": clean_passes, "checks": check_passes,
                          "attacks": int(passes[:, :A].sum()), "total": spent()}
        meta["budget"] = {"limit": self.budget.limit, "spent": self.budget.spent, "exhausted": self.budget.exhausted}
        meta["wall_time_s"] = time.perf_counter() - start
        tensors = {"clean_correct": correct.cpu(), "broken_by": broken.cpu(), "gradients": grads, "queries": queries,
                   "passes": passes, "unfinished": unfinished}
        if self.keep:
            for k, t in enumerate(self.threats):
                tensors[f"x_adv/{threat_key(t)}"] = x_adv[k].cpu()
        return tensors, meta

    def _run_checks(self, stage, ctx, meta, not_run) -> None:
        for check in self._checks(stage):
            if self.budget.exhausted:
                not_run(f"check:{check.name}", None, len(ctx.x))
                continue
            try:
                ev = check.evidence(ctx)
            except BudgetExhausted:
                not_run(f"check:{check.name}", None, len(ctx.x))
                continue
            if ev is not None:
                meta[check.name] = ev

    def _parts(self, b, k, a, spec: AttackSpec, rows: Tensor, close: Tensor, masked: list[bool]):
        """The rows a member runs on, in the order it runs (its policy: all, the close ones, a sample + rest)."""
        if spec.only_close is not None:
            yield rows[close[rows] < spec.only_close]
            return
        if spec.sample is None or masked[k]:
            yield rows
            return
        m = min(len(rows), max(spec.min_sample, math.ceil(spec.sample * len(rows))))
        with seeded(rows.device, self.seed, b, k, a, "sample") as gen:
            pick = torch.randperm(len(rows), generator=gen, device=rows.device)[:m]
        chosen = torch.zeros(len(rows), dtype=torch.bool, device=rows.device)
        chosen[pick] = True
        yield rows[chosen]
        if masked[k]:  # the gradient probe found masking, or the sample broke a point
            yield rows[~chosen]

    @staticmethod
    def _mark(k, a, rows, res, broken, x_adv, grads, queries):
        hit = res.success.to(broken.device)
        broken[k, rows[hit]] = a
        x_adv[k, rows[hit]] = res.x_adv[hit].to(x_adv.dtype)
        grads[k, a] += int(res.gradients.sum())
        queries[k, a] += int(res.queries.sum())

    def _minimum_norm(self, b, a, spec: AttackSpec, x, y, broken, x_adv, grads, queries, passes, close, model,
                      unfinished, not_run, spent):
        """Run once per norm at the largest eps; re-judge its examples at every eps."""
        for group in self.groups:
            ks = [k for k in group if spec.supports(self.threats[k])]
            if not ks:
                continue
            todo = (broken[ks] == ROBUST).any(0)
            if spec.only_close is not None:
                todo &= (close[ks] < spec.only_close).any(0)
            rows = todo.nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            top = ks[-1]
            if self.budget.exhausted:
                for k in ks:
                    r = rows[broken[k, rows] == ROBUST]
                    unfinished[k, r.cpu()] = True
                    not_run(spec.name, k, len(r))
                continue
            p0 = spent()
            try:
                with seeded(x.device, self.seed, b, top, a) as gen:
                    res = spec.make(self.threats[top])(model, x[rows], y[rows], generator=gen)
                grads[top, a] += int(res.gradients.sum())
                queries[top, a] += int(res.queries.sum())
                for k in ks:
                    cand = res.success & (broken[k, rows] == ROBUST)
                    if not bool(cand.any()):
                        continue
                    r = rows[cand]
                    z = self.threats[k].project(res.x_adv[cand], x[r])
                    with seeded(x.device, self.seed, b, k, a, "judge"), torch.no_grad():
                        hit = model(z).argmax(1) != y[r]
                    queries[k, a] += len(r)
                    broken[k, r[hit]] = a
                    x_adv[k, r[hit]] = z[hit]
            except BudgetExhausted:
                for k in ks:
                    r = rows[broken[k, rows] == ROBUST]
                    unfinished[k, r.cpu()] = True
                    not_run(spec.name, k, len(r))
            passes[top, a] += spent() - p0


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    """z_y - max_{j != y} z_j per row (positive: correctly classified)."""
    z = logits.float()
    other = z.scatter(1, y[:, None], -torch.inf).amax(1)
    return z.gather(1, y[:, None]).squeeze(1) - other


def _masking(meta: dict[str, Any], threats: int) -> list[bool]:
    """Per threat: does this batch's gradient probe suggest masked gradients (a sampled member then runs on all)?"""
    ev = meta.get("gradients")
    flag = bool(ev and ev.get("points") and
                (ev["zero"] + ev["nan"] + ev["tiny"]) / ev["points"] >= C.GRADIENT_FRACTION)
    return [flag] * threats


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
