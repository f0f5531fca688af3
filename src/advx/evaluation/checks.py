"""Checks that say when a robust-accuracy number cannot be trusted.

The failure modes are those catalogued by Athalye, Carlini & Wagner, "Obfuscated
Gradients Give a False Sense of Security" (ICML 2018, https://arxiv.org/abs/1802.00420),
and Carlini et al., "On Evaluating Adversarial Robustness" (2019,
https://arxiv.org/abs/1902.06705), section 5 ("basic sanity tests"). Each
check gathers evidence batch by batch (so it checkpoints and shards like the
rest of the run), and turns the merged evidence into a :class:`Check`:

* ``gradients``     -- input gradients zero, NaN, or too small to move the loss
  across the ball (dual norm x eps < 1e-3 x |margin|) on many points; or the
  cross-entropy gradient alone is exactly zero while the margin gradient is not
  (saturated softmax, as after defensive distillation: Papernot et al. 2016,
  broken by Carlini & Wagner 2016, https://arxiv.org/abs/1607.04311), which
  masks every cross-entropy attack (FGSM, PGD-CE, APGD-CE) but not margin/DLR ones.
* ``randomness``    -- the same input gives different logits: suggests EOT.
* ``probabilities`` -- the outputs are non-negative rows summing to 1
  (softmax applied inside the model saturates the gradients of losses on them).
* ``black_box``     -- a score-based attack broke points every white-box attack missed.
* ``unbounded``     -- a gradient attack with eps at the box's full range
  does not reach ~100% success (it must: any input is allowed).
* ``monotone``      -- robust accuracy (each eps evaluated independently)
  rises with eps somewhere: the attacks have not converged.
* ``convergence``   -- a stronger attack (more iterations and restarts) on a
  sample of surviving points breaks a noticeable share of them.

Every check follows one protocol, :class:`BaseCheck`: a ``name``, a per-batch
``evidence`` step (given a :class:`BatchContext`; ``stage`` says whether it runs
before the attacks, so its evidence can steer them, or after), a ``merge`` of the
batches' evidence, and a ``verdict`` over the merged evidence. :data:`CHECKS`
lists the instances in report order; adding a check is one class in that list.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from advx.attacks.base import Attack
from advx.attacks.losses import ce, margin
from advx.model import ModelFn, input_gradient
from advx.threat import Threat

__all__ = ["Check", "BaseCheck", "BatchContext", "RunInfo", "CHECKS", "NAMES", "names", "merge_evidence",
           "gradient_evidence", "probability_evidence", "unbounded_attack",
           "stronger_attack", "verdicts"]

GRADIENT_FRACTION = 0.05  #: share of masked gradients that raises the flag
TINY_RATIO = 1e-3  #: gradient "tiny": first-order loss change across the ball < this x |margin|
PROBABILITY_FRACTION = 0.99
BLACK_BOX_FRACTION = 0.005
UNBOUNDED_SUCCESS = 0.98
CONVERGENCE_DROP = 0.01  #: estimated robust-accuracy drop (fraction of n) that raises the flag


@dataclass
class Check:
    """One named check: ``status`` is "warning" (fired), "ok" or "skipped"."""

    name: str
    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    suggestion: str = ""

    @property
    def fired(self) -> bool:
        return self.status == "warning"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message,
                "evidence": self.evidence, "suggestion": self.suggestion}


# ----------------------------------------------------------------- evidence
def gradient_evidence(model: ModelFn, x: Tensor, y: Tensor, threat: Threat,
                      generator: torch.Generator) -> dict[str, Any]:
    """Input gradients at x and at a random point of the ball: counts of masked ones.

    ``zero``/``nan``/``tiny`` count points whose margin-loss gradient is unusable;
    ``ce_zero`` counts points whose cross-entropy gradient is exactly zero although the
    margin gradient is usable there (the softmax saturates: a CE attack cannot move).
    """
    zero = nan = tiny = ce_zero = points = 0
    smallest = math.inf
    for point in (x, threat.random_start(x, generator)):
        loss, grad, _ = input_gradient(model, point, lambda z: margin(z, y))
        flat = grad.reshape(len(grad), -1)
        bad = ~torch.isfinite(flat).all(1) | ~torch.isfinite(loss)
        is_zero = (flat == 0).all(1) & ~bad
        gain = threat.linear_gain(torch.nan_to_num(grad), x)  # sup of <grad, d> over the ball (box ignored)
        is_tiny = (gain < TINY_RATIO * loss.abs()) & ~is_zero & ~bad
        ok = ~bad & ~is_zero
        if bool(ok.any()):
            smallest = min(smallest, float((gain[ok] / loss[ok].abs().clamp_min(1e-30)).min()))
        _, ce_grad, _ = input_gradient(model, point, lambda z: ce(z, y))
        ce_zero += int(((ce_grad.reshape(len(x), -1) == 0).all(1) & ok & ~is_tiny).sum())
        zero += int(is_zero.sum())
        nan += int(bad.sum())
        tiny += int(is_tiny.sum())
        points += len(x)
    return {"points": points, "zero": zero, "nan": nan, "tiny": tiny, "ce_zero": ce_zero,
            "min_gain_ratio": None if smallest == math.inf else smallest}


def probability_evidence(logits: Tensor, tol: float = 1e-3) -> dict[str, Any]:
    """How many output rows are non-negative and sum to 1 (probabilities, not logits)."""
    rows = ((logits >= -1e-6).all(1) & ((logits.sum(1) - 1).abs() <= tol)).sum()
    finite = logits[torch.isfinite(logits)]
    return {"rows": len(logits), "probability_rows": int(rows),
            "min_output": float(finite.min()) if finite.numel() else None,
            "max_output": float(finite.max()) if finite.numel() else None}


def unbounded_attack(threat: Threat) -> Attack:
    """A plain gradient attack from x (no random start, which could succeed by luck)."""
    from advx.attacks.pgd import PGD

    return PGD(threat, steps=50, random_start=False, loss="margin")


def stronger_attack(threat: Threat) -> Attack:
    """Twice the iterations and two restarts of the standard APGD-CE (PGD-margin if APGD is missing)."""
    try:
        from advx.attacks.apgd import APGD
    except ImportError:
        from advx.attacks.pgd import PGD

        return PGD(threat, steps=200, restarts=2, loss="margin")
    return APGD(threat, steps=200, restarts=2, loss="ce")


# ----------------------------------------------------------------- verdicts
def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _points(count: int) -> str:
    return f"{count} point" if count == 1 else f"{count} points"


def _gradients(ev: dict | None) -> Check:
    if not ev or not ev.get("points"):
        return Check("gradients", "skipped", "no gradient probe ran")
    bad = ev["zero"] + ev["nan"] + ev["tiny"]
    frac = bad / ev["points"]
    ce_zero = ev.get("ce_zero", 0)
    ce_frac = ce_zero / ev["points"]
    evidence = {**ev, "masked_fraction": frac, "ce_masked_fraction": ce_frac}
    if frac >= GRADIENT_FRACTION:
        return Check("gradients", "warning",
                     f"input gradients are zero on {ev['zero']}, NaN on {ev['nan']} and tiny on {ev['tiny']} of "
                     f"{ev['points']} probed points ({_pct(frac)}): gradients are masked or obfuscated, so "
                     "gradient attacks under-report vulnerability",
                     evidence, "use BPDA for non-differentiable layers (Athalye et al. 2018), attack the logits "
                     "rather than probabilities, and trust the black-box attacks' numbers more")
    if ce_frac >= GRADIENT_FRACTION:
        return Check("gradients", "warning",
                     f"the cross-entropy input gradient is exactly zero on {ce_zero} of {ev['points']} probed points "
                     f"({_pct(ce_frac)}) where the margin-loss gradient is not: the softmax saturates (very large "
                     "logits, as after defensive distillation), so cross-entropy attacks (FGSM, PGD-CE, APGD-CE) "
                     "under-report vulnerability; margin and DLR attacks (APGD-T, FAB-T, C&W) are not affected",
                     evidence, "judge robustness by the margin/DLR attacks (the standard ensemble includes them); "
                     "for PGD use loss='margin' or 'dlr' (Carlini & Wagner 2016)")
    return Check("gradients", "ok", f"gradients usable on {ev['points'] - bad} of {ev['points']} probed points",
                 evidence)


def _randomness(ev: dict | None, eot: int | None) -> Check:
    if not ev or not ev.get("rows"):
        return Check("randomness", "skipped", "no randomness probe ran")
    if ev["differing_rows"]:
        done = f" evaluated with EOT over {eot} passes." if eot else ""
        return Check("randomness", "warning",
                     f"the model is randomised: the same input gave different logits on {ev['differing_rows']} of "
                     f"{ev['rows']} points (max difference {ev['max_abs_diff']:.3g}; prediction changed on "
                     f"{ev['prediction_changed']}).{done}", ev,
                     "" if eot else "re-run with eot=N (--eot N), e.g. 20, to attack the expectation over the randomness")
    return Check("randomness", "ok", f"deterministic on {ev['rows']} points (two forward passes agree)", ev)


def _probabilities(ev: dict | None) -> Check:
    if not ev or not ev.get("rows"):
        return Check("probabilities", "skipped", "no outputs probed")
    frac = ev["probability_rows"] / ev["rows"]
    if frac >= PROBABILITY_FRACTION:
        return Check("probabilities", "warning",
                     f"{ev['probability_rows']} of {ev['rows']} output rows are non-negative and sum to 1: the model "
                     "returns probabilities, not logits; losses on saturated softmax outputs give vanishing gradients",
                     ev, "return the logits (remove the final softmax) before evaluating")
    return Check("probabilities", "ok", "outputs look like logits", ev)


def _black_box(ev: dict) -> Check:
    if not ev.get("black_box_attacks"):
        return Check("black_box", "skipped", "no black-box attack in the ensemble", ev)
    if not ev.get("white_box_attacks"):
        return Check("black_box", "skipped", "no white-box attack ran before the black-box ones", ev)
    count, n = ev["broken_only_by_black_box"], max(ev["n"], 1)
    if count >= 1 and count / n >= BLACK_BOX_FRACTION:
        return Check("black_box", "warning",
                     f"black-box attacks broke {_points(count)} ({_pct(count / n)} of all) that every white-box attack "
                     "missed: the gradients mislead the white-box attacks", ev,
                     "look for gradient masking; try BPDA/EOT-adapted white-box attacks")
    return Check("black_box", "ok", f"black-box attacks broke {_points(count)} the white-box attacks missed", ev)


def _unbounded(ev: dict | None) -> Check:
    if not ev or not ev.get("probed"):
        return Check("unbounded", "skipped", "no unbounded attack ran", ev or {})
    rate = ev["succeeded"] / ev["probed"]
    evidence = {**ev, "success_rate": rate}
    if rate < UNBOUNDED_SUCCESS:
        return Check("unbounded", "warning",
                     f"a gradient attack with eps at the full input range succeeded on only {ev['succeeded']} of "
                     f"{ev['probed']} points ({_pct(rate)}); with every input allowed it must reach ~100%: the "
                     "attacks are broken by the model (masking, saturation) or a bug", evidence,
                     "inspect the gradients and the loss; an unbounded attack must always succeed")
    return Check("unbounded", "ok", f"unbounded attack succeeded on {ev['succeeded']} of {ev['probed']} points",
                 evidence)


def _monotone(curves: list[dict]) -> Check:
    if not any(len(c["eps"]) > 1 for c in curves):
        return Check("monotone", "skipped", "one eps per threat: nothing to compare", {"curves": curves})
    bad = []
    for c in curves:
        for i in range(len(c["eps"]) - 1):
            if c["independent"][i + 1] > c["independent"][i]:
                bad.append(f"{c['threat']}: {c['independent'][i]:.4f} at eps={c['eps'][i]:g} < "
                           f"{c['independent'][i + 1]:.4f} at eps={c['eps'][i + 1]:g}")
    inversions = sum(c["inverted_points"] for c in curves)
    evidence = {"curves": curves, "inverted_points": inversions}
    if bad:
        return Check("monotone", "warning",
                     "robust accuracy, each eps attacked independently, rises with eps (" + "; ".join(bad) + "): "
                     "the attacks have not converged. The reported numbers carry adversarial examples from smaller "
                     "eps over to larger ones", evidence, "use more iterations/restarts or the standard ensemble")
    return Check("monotone", "ok", f"robust accuracy falls with eps ({inversions} points broken only at a smaller eps)",
                 evidence)


def _convergence(per_threat: list[dict], n: int) -> Check:
    probed = sum(t["probed"] for t in per_threat)
    if not probed:
        return Check("convergence", "skipped", "no surviving points to probe", {"threats": per_threat})
    worst, detail = 0.0, []
    for t in per_threat:
        if t["probed"]:
            drop = t["broken"] / t["probed"] * t["robust_before"] / max(n, 1)
            t["estimated_drop"] = drop
            if t["broken"] >= 2:
                worst = max(worst, drop)
            detail.append(f"{t['threat']}: {t['broken']} of {t['probed']} probed")
    evidence = {"threats": per_threat}
    if worst >= CONVERGENCE_DROP:
        return Check("convergence", "warning",
                     f"a stronger attack (more iterations and restarts) broke surviving points ({'; '.join(detail)}): "
                     f"robust accuracy would drop by about {_pct(worst)} more; the evaluation has not converged "
                     "(the broken points are counted in the reported numbers)", evidence,
                     "use the standard ensemble or more iterations/restarts")
    return Check("convergence", "ok", "a stronger attack found (almost) nothing more: " + "; ".join(detail), evidence)


# ----------------------------------------------------------------- the protocol
@dataclass
class BatchContext:
    """What a check's per-batch evidence step sees."""

    b: int  #: batch index (with ``seed``, the parts of every seed drawn here)
    seed: int
    x: Tensor
    y: Tensor
    clean: Tensor  #: clean logits (through the evaluated model)
    correct: Tensor  #: (B,) clean prediction correct
    model: ModelFn  #: the evaluated model (EOT-averaged where eot is set), passes counted
    raw_model: ModelFn  #: the model as given (one pass per call)
    threats: list[Threat]
    groups: list[list[int]]  #: threat indices by norm (and bounds), eps ascending
    probe: int  #: points per batch a probing check may attack
    broken: Tensor  #: (K, B) codes (ROBUST = -1); read it after the attacks
    #: mark(k, rows, result): count the points ``result`` broke at threat k (for checks that attack)
    mark: Callable[[int, Tensor, Any], None]
    #: seeded(*parts): a context manager fixing the RNG from (seed, b, *parts); yields a generator
    seeded: Callable[..., Any]


@dataclass
class RunInfo:
    """What a verdict sees besides its own merged evidence."""

    n: int
    eot: int | None


class BaseCheck:
    """One check: per-batch evidence, merged over batches, judged once.

    Subclasses set ``name`` and override :meth:`verdict` (and :meth:`evidence` where the check needs
    per-batch evidence; :meth:`merge` where summing the evidence's counts is not the merge).
    """

    name: ClassVar[str] = ""
    #: "before": the evidence step runs before the attacks (its evidence can steer them); "after": after
    stage: ClassVar[str] = "after"
    #: keys of the per-batch evidence that :meth:`merge` adds up
    counts: ClassVar[tuple[str, ...]] = ()
    #: keys :meth:`merge` takes the extreme of over the batches: key -> min or max (None values skipped)
    extremes: ClassVar[dict[str, Callable]] = {}

    def evidence(self, ctx: BatchContext) -> dict[str, Any] | None:
        """This batch's evidence (JSON-able), or None: the check has no per-batch step."""
        return None

    def merge(self, items: list[Any]) -> Any:
        """The merged evidence of the batches (in batch order): ``counts`` summed (a key an older
        checkpoint lacks counts 0), ``extremes`` their min/max; None if no batch has any."""
        items = [i for i in items if i]
        if not items:
            return None
        out: dict[str, Any] = {k: sum(i.get(k, 0) for i in items) for k in self.counts}
        for key, fn in self.extremes.items():
            vals = [i[key] for i in items if i.get(key) is not None]
            out[key] = fn(vals) if vals else None
        return out

    def verdict(self, evidence: Any, run: RunInfo) -> Check:
        raise NotImplementedError

    def skipped(self, why: str) -> Check:
        return Check(self.name, "skipped", why)


class Gradients(BaseCheck):
    name, stage = "gradients", "before"
    counts = ("points", "zero", "nan", "tiny", "ce_zero")
    extremes = {"min_gain_ratio": min}

    def evidence(self, ctx):
        largest = ctx.threats[ctx.groups[0][-1]]  # the largest eps of the first norm
        with ctx.seeded("gradients") as gen:
            return gradient_evidence(ctx.model, ctx.x, ctx.y, largest, gen)

    def verdict(self, evidence, run):
        return _gradients(evidence)


class Randomness(BaseCheck):
    name = "randomness"
    counts = ("rows", "differing_rows", "prediction_changed")
    extremes = {"max_abs_diff": max}

    def evidence(self, ctx):
        from advx.evaluation.eot import is_random

        with ctx.seeded("randomness"):
            rows, diff, changed = is_random(ctx.raw_model, ctx.x)
        return {"rows": len(ctx.x), "differing_rows": rows, "max_abs_diff": diff, "prediction_changed": changed}

    def verdict(self, evidence, run):
        return _randomness(evidence, run.eot)


class Probabilities(BaseCheck):
    name = "probabilities"
    counts = ("rows", "probability_rows")
    extremes = {"min_output": min, "max_output": max}

    def evidence(self, ctx):
        with ctx.seeded("probabilities"), torch.no_grad():
            raw = ctx.clean if ctx.raw_model is ctx.model else ctx.raw_model(ctx.x)
        return probability_evidence(raw)

    def verdict(self, evidence, run):
        return _probabilities(evidence)


class BlackBox(BaseCheck):
    """Its evidence comes from the whole run's breakdown (built with the report), not from a batch step."""

    name = "black_box"

    def verdict(self, evidence, run):
        return _black_box(evidence or {})


class Unbounded(BaseCheck):
    name = "unbounded"
    counts = ("probed", "succeeded", "gradients")

    def evidence(self, ctx):
        rows = ctx.correct.nonzero().squeeze(1)[: ctx.probe]
        probed = succeeded = gradients = 0
        for group in ctx.groups:
            threat = ctx.threats[group[-1]]
            try:
                full = threat.unbounded(ctx.x)
            except TypeError:
                continue
            if len(rows):
                with ctx.seeded(group[0], "unbounded") as gen:
                    res = unbounded_attack(full)(ctx.model, ctx.x[rows], ctx.y[rows], generator=gen)
                probed += len(rows)
                succeeded += int(res.success.sum())
                gradients += int(res.gradients.sum())
        return {"probed": probed, "succeeded": succeeded, "gradients": gradients}

    def verdict(self, evidence, run):
        return _unbounded(evidence)


class Monotone(BaseCheck):
    """Its evidence (each eps's curve, attacked independently) comes from the whole run, with the report."""

    name = "monotone"

    def verdict(self, evidence, run):
        return _monotone(evidence or [])


class Convergence(BaseCheck):
    """A stronger attack on a few surviving points per eps; what it breaks is counted."""

    name = "convergence"

    def evidence(self, ctx):
        from advx.evaluation.codes import ROBUST, threat_key

        out = []
        for k, threat in enumerate(ctx.threats):
            robust = (ctx.broken[k] == ROBUST).nonzero().squeeze(1)
            rows = robust[: ctx.probe]
            entry = {"threat": threat_key(threat), "probed": len(rows), "broken": 0, "robust_before": len(robust)}
            if len(rows):
                with ctx.seeded(k, "convergence") as gen:
                    res = stronger_attack(threat)(ctx.model, ctx.x[rows], ctx.y[rows], generator=gen)
                entry["broken"] = int(res.success.sum())
                ctx.mark(k, rows, res)
            out.append(entry)
        return out

    def merge(self, items):
        items = [i for i in items if i]
        if not items:
            return None
        keys = ("probed", "broken", "robust_before")
        return [{"threat": entries[0]["threat"], **{k: sum(e.get(k, 0) for e in entries) for k in keys}}
                for entries in zip(*items)]

    def verdict(self, evidence, run):
        return _convergence(evidence or [], run.n)


#: every check, in report order: adding a check is one class here
CHECKS: list[BaseCheck] = [Gradients(), Randomness(), Probabilities(), BlackBox(), Unbounded(), Monotone(),
                           Convergence()]


def names() -> tuple[str, ...]:
    """The names of :data:`CHECKS` (read at call time, so a check appended later counts)."""
    return tuple(c.name for c in CHECKS)


NAMES = names()  #: the built-in checks' names


def merge_evidence(metas: list[dict[str, Any]]) -> dict[str, Any]:
    """Each check's merged evidence from the batches' records (keyed by check name)."""
    out = {}
    for check in CHECKS:
        merged = check.merge([m.get(check.name) for m in metas])
        if merged is not None:
            out[check.name] = merged
    return out


def verdicts(evidence: dict[str, Any], enabled: tuple[str, ...], eot: int | None) -> list[Check]:
    """Turn merged evidence into one :class:`Check` per check of :data:`CHECKS` (``evidence["n"]``: points)."""
    run = RunInfo(n=evidence.get("n", 0), eot=eot)
    return [check.verdict(evidence.get(check.name), run) if check.name in enabled else check.skipped("disabled")
            for check in CHECKS]
