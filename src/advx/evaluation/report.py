"""The evaluation report: merged numbers, JSON, a terminal table and an HTML page.

:func:`build_report` merges the per-batch records (in batch order, so any
sharding gives the same result) into an :class:`EvaluationReport`: clean
accuracy, per-threat robust accuracy with its 95% Clopper-Pearson interval,
which attack broke how many points, gradient evaluations and queries, the
checks, the exact configuration and seed, and per-sample outcomes.
"""

from __future__ import annotations

import io
import json
import math
import platform
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from advx.evaluation import checks as C
from advx.evaluation.codes import ROBUST
from advx.evaluation.stats import clopper_pearson

__all__ = ["EvaluationReport", "ThreatResult", "build_report"]

PROBE = "convergence-probe"


@dataclass
class ThreatResult:
    """Robust accuracy at one threat (norm and eps)."""

    threat: str
    norm: str
    eps: float
    n: int
    robust: int
    robust_accuracy: float
    ci95: tuple[float, float]
    independent_robust_accuracy: float  #: before carrying examples from smaller eps over
    broken_by: dict[str, int]  #: attack name -> points it broke first (in ensemble order)
    carried: int  #: points broken by an example found at a smaller eps
    gradients: int  #: model backward passes of the ensemble (x EOT passes; checks not included)
    queries: int  #: model forward + backward passes of the ensemble (x EOT passes)
    gradients_by_attack: dict[str, int]
    queries_by_attack: dict[str, int]
    #: model passes (forward + backward samples) counted at the model by a wrapper, per attack at this threat
    passes_by_attack: dict[str, int] = field(default_factory=dict)
    passes: int = 0  #: their sum (the ensemble's passes at this threat; checks not included)
    passes_per_point: float = 0.0  #: passes / n
    unfinished: int = 0  #: points some member did not run on because the budget ran out

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["ci95"] = list(self.ci95)
        return d


def _clean_json(obj: Any) -> Any:
    """Replace non-finite floats (invalid JSON) by strings."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_json(v) for v in obj]
    return obj


@dataclass
class EvaluationReport:
    """Everything an evaluation measured. ``print()`` it, ``save()`` it, or read the fields."""

    config: dict[str, Any]
    n: int
    clean_correct: int
    clean_accuracy: float
    clean_ci95: tuple[float, float]
    results: list[ThreatResult]
    checks: list[C.Check]
    cost: dict[str, Any]
    timing: dict[str, Any]
    per_sample: dict[str, Any]
    #: ``limit`` (None: none), ``spent``, ``exhausted``, ``not_run`` (attack, threat, points), ``unfinished``
    budget: dict[str, Any] = field(default_factory=dict)
    adversarials: dict[str, Tensor] = field(default_factory=dict, repr=False)
    examples: list[dict[str, Any]] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------- access
    def robust_accuracy(self, threat: str | None = None) -> float:
        """Robust accuracy at ``threat`` (e.g. "linf:0.1"); the only one if None."""
        if threat is None:
            if len(self.results) != 1:
                raise ValueError(f"threat: the report has {len(self.results)} threats; name one of "
                                 f"{[r.threat for r in self.results]}")
            return self.results[0].robust_accuracy
        for r in self.results:
            if r.threat == threat:
                return r.robust_accuracy
        raise ValueError(f"threat: {threat!r} not in the report; choose one of {[r.threat for r in self.results]}")

    @property
    def flags(self) -> list[str]:
        """Names of the checks that fired."""
        return [c.name for c in self.checks if c.fired]

    def check(self, name: str) -> C.Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise ValueError(f"check: unknown {name!r}; choose from {list(C.names())}")

    # -------------------------------------------------------------- output
    def to_dict(self, per_sample: bool = True) -> dict[str, Any]:
        d = {
            "schema": "advx.evaluation.report/1",
            "n": self.n, "clean_correct": self.clean_correct, "clean_accuracy": self.clean_accuracy,
            "clean_ci95": list(self.clean_ci95),
            "results": [r.to_dict() for r in self.results],
            "checks": [c.to_dict() for c in self.checks],
            "flags": self.flags, "cost": self.cost, "budget": self.budget, "config": self.config,
            "timing": self.timing,
        }
        if self.examples:  # what the report shows; the images' tensors are report_tensors()
            d["examples"] = [{k: v for k, v in e.items() if k not in ("x", "x_adv")} for e in self.examples]
        if per_sample:
            d["per_sample"] = self.per_sample
        return _clean_json(d)

    def to_json(self, per_sample: bool = True) -> str:
        return json.dumps(self.to_dict(per_sample), indent=2, allow_nan=False)

    def table(self):
        """A rich renderable: the curve, the per-attack breakdown, and the checks."""
        from rich.console import Group
        from rich.table import Table

        names = [a["name"] for a in self.config["attacks"]] + [PROBE]
        t = Table(title=f"clean accuracy {100 * self.clean_accuracy:.1f}% "
                        f"[{100 * self.clean_ci95[0]:.1f}, {100 * self.clean_ci95[1]:.1f}] on {self.n} points")
        t.add_column("threat")
        t.add_column("robust acc", justify="right")
        t.add_column("95% CI", justify="right")
        t.add_column("broken by", justify="left")
        t.add_column("gradients", justify="right")
        t.add_column("queries", justify="right")
        t.add_column("passes/point", justify="right")
        for r in self.results:
            parts = [f"{a} {r.broken_by[a]}" for a in names if r.broken_by.get(a)]
            if r.carried:
                parts.append(f"smaller eps {r.carried}")
            t.add_row(r.threat, f"{100 * r.robust_accuracy:.1f}%", f"[{100 * r.ci95[0]:.1f}, {100 * r.ci95[1]:.1f}]",
                      ", ".join(parts) or "-", f"{r.gradients:,}", f"{r.queries:,}", f"{r.passes_per_point:,.0f}")
        c = Table(title="checks")
        c.add_column("check")
        c.add_column("status")
        c.add_column("finding", overflow="fold")
        style = {"warning": "[bold red]WARNING[/]", "ok": "[green]ok[/]", "skipped": "[dim]skipped[/]"}
        for ch in self.checks:
            text = ch.message + (f" → {ch.suggestion}" if ch.fired and ch.suggestion else "")
            c.add_row(ch.name, style.get(ch.status, ch.status), text)
        if self.budget.get("exhausted"):
            left = "; ".join(f"{e['attack']}: {e['points']} points" + (f" at {e['threat']}" if e["threat"] else "")
                             for e in self.budget.get("not_run", []))
            t.caption = (f"[bold red]stopped at the budget of {self.budget['limit']:,} passes[/]: not run: {left} "
                         "(unfinished points count as robust: an upper bound)")
        return Group(t, c)

    def print(self, console=None) -> None:
        from rich.console import Console

        (console or Console()).print(self.table())

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, file=io.StringIO(), color_system=None)
        console.print(self.table())
        return console.export_text()

    def report_tensors(self) -> dict[str, Tensor]:
        """The example images' tensors: ``examples/x`` and ``examples/x_adv``, row j = ``examples[j]``."""
        if not self.examples:
            return {}
        return {"examples/x": torch.stack([e["x"] for e in self.examples]),
                "examples/x_adv": torch.stack([e["x_adv"] for e in self.examples])}

    # ------------------------------------------------------------ examples
    def attach_examples(self, model, x: Tensor, y: Tensor, device, classes=None, count: int = 8) -> None:
        """Keep up to ``count`` broken points at the largest eps of the first threat, for the page."""
        if not self.results or not self.adversarials or x.dim() not in (3, 4):
            return
        first = self.results[0].norm
        key = [r.threat for r in self.results if r.norm == first][-1]
        codes = torch.tensor(self.per_sample["broken_by"][key])
        rows = (codes >= 0).nonzero().squeeze(1)[:count]
        if len(rows) == 0:
            return
        with torch.no_grad():
            clean = torch.softmax(model(x[rows].to(device)).float(), 1).cpu()
            adv = torch.softmax(model(self.adversarials[key][rows].to(device)).float(), 1).cpu()
        names = [a["name"] for a in self.config["attacks"]] + [PROBE]

        def label(i: int) -> str:
            return str(classes[i]) if classes is not None and i < len(classes) else str(i)

        for j, i in enumerate(rows.tolist()):
            self.examples.append({
                "index": i, "threat": key, "x": x[i].cpu(), "x_adv": self.adversarials[key][i].cpu(),
                "label": label(int(y[i])), "clean_pred": label(int(clean[j].argmax())),
                "clean_conf": float(clean[j].max()), "adv_pred": label(int(adv[j].argmax())),
                "adv_conf": float(adv[j].max()), "attack": names[int(codes[i])],
            })


# ------------------------------------------------------------------- merge
def _sum(items: list[dict | None], keys: tuple[str, ...]) -> dict[str, Any] | None:
    items = [i for i in items if i]
    if not items:
        return None
    return {k: sum(i.get(k, 0) for i in items) for k in keys}  # a key an older checkpoint lacks counts 0


def _merge_evidence(metas: list[dict[str, Any]]) -> dict[str, Any]:
    return C.merge_evidence(metas)


def _merge_not_run(metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(attack, threat) -> points not run, over the batches, in first-seen order."""
    out: dict[tuple, int] = {}
    for m in metas:
        for e in m.get("not_run", []):
            key = (e["attack"], e["threat"])
            out[key] = out.get(key, 0) + e["points"]
    return [{"attack": a, "threat": t, "points": p} for (a, t), p in out.items()]


def build_report(records: dict[int, tuple[dict[str, Tensor], dict[str, Any]]], threats, specs, config: dict,
                 enabled: tuple[str, ...], eot: int | None, wall_time: float, world_size: int = 1) -> EvaluationReport:
    """Merge per-batch records (any order, any sharding) into the report."""
    from advx._version import __version__
    from advx.evaluation.codes import threat_key

    n_batches = math.ceil(config["n"] / config["batch_size"])
    missing = sorted(set(range(n_batches)) - set(records))
    if missing:
        raise RuntimeError(f"evaluation incomplete: batches {missing[:10]} have no results")
    order = list(range(n_batches))
    tensors = [records[b][0] for b in order]
    metas = [records[b][1] for b in order]
    correct = torch.cat([t["clean_correct"] for t in tensors])
    independent = torch.cat([t["broken_by"] for t in tensors], dim=1).long()
    grads = torch.stack([t["gradients"] for t in tensors]).sum(0)
    queries = torch.stack([t["queries"] for t in tensors]).sum(0)
    passes = torch.stack([t.get("passes", torch.zeros_like(t["queries"])) for t in tensors]).sum(0)
    unfinished = torch.cat([t.get("unfinished", torch.zeros(t["broken_by"].shape, dtype=torch.bool))
                            for t in tensors], dim=1)
    keys = [threat_key(t) for t in threats]
    adv = {k: torch.cat([t[f"x_adv/{k}"] for t in tensors]) for k in keys if f"x_adv/{k}" in tensors[0]}
    names = [s.name for s in specs] + [PROBE]
    n, K, A = len(correct), len(threats), len(specs)
    counted = passes  # model passes counted at the model (already x EOT draws)
    passes = eot or 1

    # carry examples from smaller to larger eps of the same norm and bounds
    final, carried = independent.clone(), torch.zeros_like(independent, dtype=torch.bool)
    curves: list[dict[str, Any]] = []
    groups: list[list[int]] = []
    for k, t in enumerate(threats):
        if groups and (type(threats[groups[-1][0]]), repr(threats[groups[-1][0]].bounds)) == (type(t), repr(t.bounds)):
            groups[-1].append(k)
        else:
            groups.append([k])
    for g in groups:
        for prev, k in zip(g, g[1:]):
            take = (final[k] == ROBUST) & (final[prev] >= 0)
            final[k][take] = final[prev][take]
            carried[k] |= take
            if keys[k] in adv:
                adv[keys[k]][take] = adv[keys[prev]][take]
        # the ensemble's own curve (without the convergence probe), each eps alone
        ens = independent[g].masked_fill(independent[g] == A, ROBUST)
        curves.append({"threat": threats[g[0]].norm_name, "eps": [threats[k].eps for k in g],
                       "independent": [int((e == ROBUST).sum()) / n for e in ens],
                       "inverted_points": int(sum(int(((ens[i] == ROBUST) & (ens[:i] >= 0).any(0)).sum())
                                                  for i in range(1, len(g))))})

    results = []
    for k, t in enumerate(threats):
        robust = int((final[k] == ROBUST).sum())
        results.append(ThreatResult(
            threat=keys[k], norm=t.norm_name, eps=t.eps, n=n, robust=robust, robust_accuracy=robust / n,
            ci95=clopper_pearson(robust, n), independent_robust_accuracy=int((independent[k] == ROBUST).sum()) / n,
            broken_by={names[a]: int(((final[k] == a) & ~carried[k]).sum()) for a in range(A + 1)},
            carried=int(carried[k].sum()), gradients=int(grads[k, :A].sum()) * passes,
            queries=int(queries[k, :A].sum()) * passes,
            gradients_by_attack={names[a]: int(grads[k, a]) * passes for a in range(A + 1)},
            queries_by_attack={names[a]: int(queries[k, a]) * passes for a in range(A + 1)},
            passes_by_attack={names[a]: int(counted[k, a]) for a in range(A)},
            passes=int(counted[k, :A].sum()), passes_per_point=int(counted[k, :A].sum()) / max(n, 1),
            unfinished=int((unfinished[k] & (final[k] == ROBUST)).sum()),
        ))

    evidence = _merge_evidence(metas)
    evidence["n"] = n
    evidence["monotone"] = curves
    white = [a for a in range(A) if int(grads[:, a].sum()) > 0]
    black = [a for a in range(A) if int(grads[:, a].sum()) == 0 and int(queries[:, a].sum()) > 0]
    per_threat = {keys[k]: sum(int((independent[k] == a).sum()) for a in black if any(w < a for w in white))
                  for k in range(K)}
    evidence["black_box"] = {"black_box_attacks": [names[a] for a in black], "white_box_attacks": [names[a] for a in white],
                             "n": n, "per_threat": per_threat,
                             "broken_only_by_black_box": max(per_threat.values()) if per_threat else 0}
    check_list = C.verdicts(evidence, enabled, eot)

    check_grads = (2 * (evidence.get("gradients") or {}).get("points", 0) + (evidence.get("unbounded") or {}).get("gradients", 0))
    clean_k = int(correct.sum())
    cost = {"gradients": int(grads[:, :A].sum()) * passes, "queries": int(queries[:, :A].sum()) * passes,
            "check_gradients": (check_grads + int(grads[:, A].sum())) * passes, "model_passes_per_call": passes}
    phases = {k: sum(m.get("passes", {}).get(k, 0) for m in metas) for k in ("clean", "attacks", "checks", "total")}
    cost["passes"] = {**phases, "per_point": phases["total"] / max(n, 1),
                      "attacks_per_point": phases["attacks"] / max(n, 1),
                      "by_attack": {names[a]: int(counted[:, a].sum()) for a in range(A)},
                      "per_point_by_attack": {names[a]: int(counted[:, a].sum()) / max(n, 1) for a in range(A)},
                      "counted": "forward + backward samples through the model, counted by a wrapper at the model"}
    not_run = _merge_not_run(metas)
    limits = [m["budget"]["limit"] for m in metas if m.get("budget")]
    budget = {"limit": limits[0] if limits else None, "spent": phases["total"] - phases["clean"],
              "exhausted": bool(not_run) or any(m.get("budget", {}).get("exhausted") for m in metas),
              "not_run": not_run,
              "unfinished": {keys[k]: int((unfinished[k] & (final[k] == ROBUST)).sum()) for k in range(K)}}
    if budget["exhausted"] and not_run:
        left = ", ".join(f"{e['attack']} on {e['points']} points" + (f" at {e['threat']}" if e["threat"] else "")
                         for e in not_run)
        config = {**config, "notes": [*config.get("notes", []),
                                       f"stopped at the budget of {budget['limit']:,} model passes "
                                       f"({budget['spent']:,} spent after the clean forwards): not run: {left}. "
                                       "Robust accuracy counts the unfinished points as robust, so it is an upper "
                                       "bound"]}
    timing = {"wall_time_s": wall_time, "batch_time_s": sum(m.get("wall_time_s", 0.0) for m in metas),
              "attack_s": {names[a]: sum(m["attack_seconds"][a] for m in metas if "attack_seconds" in m)
                           for a in range(A)},
              "world_size": world_size}
    config = {**config, "versions": {"advx": __version__, "torch": torch.__version__,
                                     "python": platform.python_version()}}
    per_sample = {"codes": {"-2": "misclassified clean", "-1": "robust", **{str(i): a for i, a in enumerate(names)}},
                  "clean_correct": [bool(v) for v in correct.tolist()],
                  "broken_by": {keys[k]: final[k].tolist() for k in range(K)},
                  "carried": {keys[k]: carried[k].nonzero().squeeze(1).tolist() for k in range(K)},
                  "unfinished": {keys[k]: (unfinished[k] & (final[k] == ROBUST)).nonzero().squeeze(1).tolist()
                                 for k in range(K)}}
    return EvaluationReport(config=config, n=n, clean_correct=clean_k, clean_accuracy=clean_k / n,
                            clean_ci95=clopper_pearson(clean_k, n), results=results, checks=check_list, cost=cost,
                            timing=timing, per_sample=per_sample, budget=budget, adversarials=adv)
