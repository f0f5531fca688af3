"""The job behind ``advx attack`` and ``advx demo``: attacks x threats on a model and data.

:class:`AttackJob` (run by :func:`advx.jobs.run_job`; :func:`run_experiment` is the
Python API) runs every (attack, threat) pair on the same inputs, batch by batch
(each batch one checkpoint), and keeps every per-sample number (adversarial inputs, success,
perturbation size, queries, logits). :class:`Experiment` turns them into the
summary numbers of ``results.json`` and saves the run directory::

    out/adversarial.safetensors   clean inputs, labels, and per run x_adv, success, distance, logits
    out/results.json              every number in the report (schema: docs/results-schema.md)
    out/report.html               the self-contained HTML report (advx.report)

Attacks come from the one registry (:mod:`advx.attacks.registry`) by their
command-line name; score- and decision-based attacks see the model only through
:class:`~advx.model.ScoresOnly` / :class:`~advx.model.LabelOnly`, their ``queries``
a hard per-sample budget (``--queries``).

Minimum-norm attacks (``attack.minimum_norm``, e.g. C&W) are run once, at the
largest radius asked for that norm; the rows for smaller radii project those
adversarial inputs into the smaller ball and judge them again with the model
(one forward pass), which is what running the attack at each radius would give
for an attack that returns the smallest adversarial perturbation it finds.

``target=`` (``advx attack --target``) makes every run targeted at the same
per-sample classes (:class:`advx.jobs.targets.Targeting`: random, least-likely or one
class); a sample whose label is its target is not attacked, and success means
reaching the target.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advx.attacks.base import Attack, is_adversarial
from advx.jobs.config import SCHEMA_VERSION, JobConfig, capture_argv, jsonable
from advx.jobs.fingerprint import data_sha256, model_sha256
from advx.jobs.runner import JobOutput, batch_count, batch_seed, batch_slice, environment, run_job
from advx.jobs.targets import NOT_ATTACKED, Targeting
from advx.model import attack_mode
from advx.threat import Threat

__all__ = [
    "AttackJob",
    "Experiment",
    "RunResult",
    "SCHEMA_VERSION",
    "build_attack",
    "data_config",
    "environment",
    "model_config",
    "load_data",
    "require_targetable",
    "run_experiment",
]

log = logging.getLogger(__name__)



def require_targetable(names: Sequence[str]) -> None:
    """Refuse (ValueError naming it) an attack among ``names`` that cannot be targeted."""
    from advx.attacks import registry  # noqa: PLC0415

    for name in names:
        info = registry.get(name)
        if not info.targeted:
            ok = ", ".join(a for a, e in registry.attacks().items() if e.targeted)
            raise ValueError(f"--target: attack {name!r} ({info.cls.__name__}) is untargeted only; drop --target or "
                             f"use a targetable attack ({ok})")


def build_attack(name: str, threat: Threat, *, steps: int | None = None, restarts: int | None = None,
                 queries: int | None = None, seed: int = 0, options: dict[str, Any] | None = None) -> Attack:
    """The attack registered as ``name`` (:func:`advx.attacks.registry.build_attack`), configured for ``threat``.

    ``steps``/``restarts`` reach the attacks whose budget lists them, ``queries`` the score-
    and decision-based ones; ``options`` are constructor arguments and win over both.
    """
    from advx.attacks import registry  # noqa: PLC0415

    return registry.build_attack(name, threat, steps=steps, restarts=restarts, queries=queries, seed=seed,
                                 options=options)


# --------------------------------------------------------------------------- data
def load_data(spec: str, split: str = "test", n: int | None = None, seed: int = 0, *, resize=None,
              center_crop=None):
    """A named data set or the user's own data (image folder, .npz/.safetensors, CIFAR binary): advx.data.load."""
    from advx import data  # noqa: PLC0415 -- keeps `import advx.jobs.attack` light

    return data.load(spec, split=split, n=n, seed=seed, resize=resize, center_crop=center_crop)


# ----------------------------------------------------------------------- results
@dataclass
class RunResult:
    """One (attack, threat) row: per-sample tensors and what it cost."""

    run_id: str
    attack: str
    attack_repr: str
    threat: Threat
    x_adv: Tensor
    success: Tensor
    distance: Tensor
    queries: Tensor
    gradients: Tensor
    logits: Tensor
    time_s: float
    minimum_norm: bool = False
    #: run_id of the run whose adversarial inputs this row reuses (minimum-norm attacks), else None
    shared_with: str | None = None

    def metrics(self, y: Tensor, clean_correct: Tensor, attacked: Tensor | None = None) -> dict[str, Any]:
        """The summary numbers of this row (definitions in docs/results-schema.md).

        ``attacked`` (targeted runs): the samples with a target; the others are left
        out of the success rate. ``success`` is the attack's criterion (targeted:
        the target was reached).
        """
        n = len(y)
        robust = self.logits.argmax(1) == y
        attacked = clean_correct if attacked is None else clean_correct & attacked
        fooled = self.success & attacked
        dist = self.distance[fooled].double()
        n_correct, n_attacked = int(clean_correct.sum()), int(attacked.sum())
        return {
            "n": n,
            "n_clean_correct": n_correct,
            "n_attacked": n_attacked,
            "n_robust": int(robust.sum()),
            "n_fooled": int(fooled.sum()),
            "clean_accuracy": _ratio(n_correct, n),
            "robust_accuracy": _ratio(int(robust.sum()), n),
            "attack_success_rate": _ratio(int(fooled.sum()), n_attacked),
            "median_distance": float(dist.median()) if len(dist) else None,
            "mean_distance": float(dist.mean()) if len(dist) else None,
            "max_distance": float(dist.max()) if len(dist) else None,
            "gradient_evaluations": int(self.gradients.sum()),
            "gradient_evaluations_per_sample": _ratio(int(self.gradients.sum()), n),
            "queries": int(self.queries.sum()),
            "queries_per_sample": _ratio(int(self.queries.sum()), n),
            "time_s": round(self.time_s, 4),
        }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


@dataclass
class Experiment:
    """Everything one ``advx attack`` run measured, in memory."""

    x: Tensor
    y: Tensor
    clean_logits: Tensor
    runs: list[RunResult]
    classes: list[str]
    data: dict[str, Any]
    model: dict[str, Any]
    settings: dict[str, Any]
    time_s: float = 0.0
    #: targeted experiments: how the targets were chosen, and the (N,) targets (-1: not attacked)
    targeting: Targeting | None = None
    targets: Tensor | None = None

    @property
    def clean_correct(self) -> Tensor:
        return self.clean_logits.argmax(1) == self.y

    @property
    def attacked(self) -> Tensor:
        """(N,) bool: the samples the attacks worked on (targeted: those whose label is not the target)."""
        return torch.ones_like(self.y, dtype=torch.bool) if self.targets is None else self.targets != NOT_ATTACKED

    def targeting_record(self) -> dict[str, Any] | None:
        """results.json's ``targeting``: null for an untargeted experiment."""
        if self.targeting is None or self.targets is None:
            return None
        t, seed = self.targeting, int(self.settings.get("seed", 0))
        excluded = int((self.targets == NOT_ATTACKED).sum())
        return {
            "mode": t.mode,
            "class": t.cls,
            "class_name": self._name(t.cls) if t.cls is not None else None,
            "seed": seed if t.mode == "random" else None,
            "description": t.describe(self.classes, excluded, seed),
            "n_not_attacked": excluded,
            "targets": [None if v == NOT_ATTACKED else v for v in self.targets.tolist()],
        }

    def results(self, command: str | None = None, n_examples: int = 8) -> dict[str, Any]:
        """The results.json document (every number the report shows)."""
        correct, attacked = self.clean_correct, self.attacked
        targeted = self.targets is not None
        runs = []
        for r in self.runs:
            runs.append({
                "id": r.run_id,
                "attack": r.attack,
                "attack_repr": r.attack_repr,
                "threat": {"norm": r.threat.norm_name, "eps": r.threat.eps, "repr": repr(r.threat)},
                "minimum_norm": r.minimum_norm,
                "shared_with": r.shared_with,
                "metrics": r.metrics(self.y, correct, attacked),
                # a targeted run's distances say when the target was reached, not when the label changed
                "curve": self._curve(r, correct) if r.minimum_norm and r.shared_with is None and not targeted
                else None,
            })
        return {
            "schema_version": SCHEMA_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": command,
            "environment": environment(),
            "model": self.model,
            "data": self.data,
            "settings": self.settings,
            "targeting": self.targeting_record(),
            "clean": {
                "n": len(self.y),
                "n_correct": int(correct.sum()),
                "accuracy": _ratio(int(correct.sum()), len(self.y)),
            },
            "runs": runs,
            "worst_case": self._worst_case(),
            "examples": self._examples(runs, n_examples),
            "time_s": round(self.time_s, 3),
        }

    def _worst_case(self) -> list[dict[str, Any]]:
        """Per radius that two or more attacks share: robust accuracy against all of them (per sample)."""
        groups: dict[tuple[str, float], list[RunResult]] = {}
        for r in self.runs:
            groups.setdefault((r.threat.norm_name, r.threat.eps), []).append(r)
        out = []
        for (norm, eps), rs in groups.items():
            if len({r.attack for r in rs}) < 2:
                continue
            robust = torch.stack([r.logits.argmax(1) == self.y for r in rs]).all(0)
            out.append({"norm": norm, "eps": eps, "runs": [r.run_id for r in rs], "n_robust": int(robust.sum()),
                        "robust_accuracy": _ratio(int(robust.sum()), len(self.y))})
        return out

    def _curve(self, r: RunResult, correct: Tensor, points: int = 41) -> list[list[float]]:
        """Robust accuracy at radii 0..eps from one minimum-norm run: [[eps, robust_accuracy], ...]."""
        n = len(self.y)
        fooled = r.success & correct
        out = []
        for i in range(points):
            e = r.threat.eps * i / (points - 1)
            broken = fooled & (r.distance <= e + 1e-6 * max(r.threat.eps, 1e-12))
            out.append([e, int((correct & ~broken).sum()) / n if n else math.nan])
        return out

    def _examples(self, runs: list[dict[str, Any]], n_examples: int) -> list[dict[str, Any]]:
        """A few clean-correct (and attacked) samples, one per class in turn, shown under each attack."""
        idx = pick_examples(self.y, self.clean_correct & self.attacked, n_examples)
        probs = self.clean_logits.softmax(1)
        shown = {}  # attack -> run index shown
        for i, run in enumerate(runs):
            shown.setdefault(run["attack"], []).append(i)
        out = []
        for attack, rows in shown.items():
            pick = _showcase_row(runs, rows)
            r = self.runs[pick]
            p_adv = r.logits.softmax(1)
            for j in idx.tolist():
                delta = (r.x_adv[j] - self.x[j]).abs().max().item()
                out.append({
                    "run": r.run_id,
                    "attack": attack,
                    "eps": r.threat.eps,
                    "index": j,
                    "label": int(self.y[j]),
                    "label_name": self._name(int(self.y[j])),
                    "target": None if self.targets is None else int(self.targets[j]),
                    "target_name": None if self.targets is None else self._name(int(self.targets[j])),
                    "clean_pred": int(probs[j].argmax()),
                    "clean_pred_name": self._name(int(probs[j].argmax())),
                    "clean_confidence": float(probs[j].max()),
                    "adv_pred": int(p_adv[j].argmax()),
                    "adv_pred_name": self._name(int(p_adv[j].argmax())),
                    "adv_confidence": float(p_adv[j].max()),
                    "success": bool(r.success[j]),
                    "distance": float(r.distance[j]),
                    "max_abs_change": delta,
                })
        return out

    def _name(self, c: int) -> str:
        return self.classes[c] if 0 <= c < len(self.classes) else str(c)

    def tensors(self) -> dict[str, Tensor]:
        """What adversarial.safetensors holds."""
        t = {"x": self.x, "y": self.y, "clean_logits": self.clean_logits}
        if self.targets is not None:
            t["target"] = self.targets
        for r in self.runs:
            for k in ("x_adv", "success", "distance", "logits", "queries", "gradients"):
                t[f"{r.run_id}/{k}"] = getattr(r, k)
        return {k: v.detach().cpu().contiguous() for k, v in t.items()}

    def save(self, out_dir: str | Path, command: str | None = None, n_examples: int = 8,
             report: bool = True) -> dict[str, Path]:
        """Write adversarial.safetensors, results.json and (unless ``report=False``) report.html.

        The same files, written the same way (atomically, JSON without NaN), as a job's run folder
        (:func:`advx.jobs.runner.write_outputs`), without its lock and fingerprint binding.
        """
        import json  # noqa: PLC0415

        from advx.data.atomic import atomic_save_tensors, atomic_write_text  # noqa: PLC0415

        out = Path(out_dir)
        results = jsonable(self.results(command, n_examples))
        paths = {"adversarial": out / "adversarial.safetensors", "results": out / "results.json"}
        tensors = self.tensors()
        atomic_save_tensors(paths["adversarial"], tensors, metadata={"schema_version": str(SCHEMA_VERSION)})
        atomic_write_text(paths["results"], json.dumps(results, indent=2, allow_nan=False) + "\n")
        if report:
            from advx.report import write_report  # noqa: PLC0415

            paths["report"] = write_report(results, tensors, out / "report.html")
        return paths


def pick_examples(y: Tensor, correct: Tensor, k: int) -> Tensor:
    """Up to ``k`` indices of correctly classified samples, taking classes in turn (deterministic)."""
    by_class: dict[int, list[int]] = {}
    for i in correct.nonzero().flatten().tolist():
        by_class.setdefault(int(y[i]), []).append(i)
    picked: list[int] = []
    depth = 0
    while len(picked) < k and any(depth < len(v) for v in by_class.values()):
        for c in sorted(by_class):
            if depth < len(by_class[c]) and len(picked) < k:
                picked.append(by_class[c][depth])
        depth += 1
    return torch.tensor(picked, dtype=torch.long)


def _showcase_row(runs: list[dict[str, Any]], rows: list[int]) -> int:
    """The row an attack's examples come from: the smallest radius fooling >= half the points, else the largest."""
    ordered = sorted(rows, key=lambda i: runs[i]["threat"]["eps"])
    for i in ordered:
        rate = runs[i]["metrics"]["attack_success_rate"]
        if rate is not None and rate >= 0.5:
            return i
    return ordered[-1]


# -------------------------------------------------------------------------- running
Jobs = Sequence[tuple[str, Sequence[Threat]]]
ProgressFn = Callable[[str, int, int], None]

_FIELDS = ("x_adv", "success", "distance", "queries", "gradients", "logits")


@dataclass
class _Row:
    """One (attack, threat) row of the job; ``base`` is the row whose attack run it reuses (minimum norm)."""

    run_id: str
    name: str
    attack: Attack
    base: str | None = None
    kind: str = "gradient"  #: the registry's kind: black-box kinds see the model through ScoresOnly/LabelOnly


class AttackJob:
    """``advx attack`` / ``advx demo`` as a job: per batch, every (attack, threat) row on that batch.

    Each row of each batch draws its randomness from a generator seeded with
    :func:`advx.jobs.batch_seed` (seed, batch): batch 0 uses ``seed`` itself, so a
    one-batch run is exactly the historical ``advx attack``. Minimum-norm attacks
    run once per batch at the largest radius; the smaller radii are projected and
    judged again (one forward pass).
    """

    def __init__(self, model: torch.nn.Module, data, jobs: Jobs, *, config: JobConfig,
                 steps: int | None = None, restarts: int | None = None,
                 attack_options: dict[str, dict[str, Any]] | None = None,
                 target: str | int | Targeting | None = None, examples: int = 8,
                 model_meta: dict[str, Any] | None = None, data_meta: dict[str, Any] | None = None,
                 progress: ProgressFn | None = None, queries: int | None = None, allow_large_eps: bool = False):
        self.config = config
        self.device = torch.device(config.device)
        self.x, self.y = data.x, data.y
        if len(self.x) == 0:
            raise ValueError("the data holds no samples; give n >= 1")
        self.data = data
        self.model = model.to(self.device)
        self.batch_size = config.batch_size
        self.seed = config.seed
        self.steps, self.restarts, self.queries = steps, restarts, queries
        self.examples = examples
        self.targeting = Targeting.parse(target)
        if self.targeting is not None:
            require_targetable([name for name, _ in jobs])
        self.on_progress = progress
        self.model_meta, self.data_meta = dict(model_meta or {}), dict(data_meta or {})
        from advx.attacks import registry  # noqa: PLC0415

        attack_options = attack_options or {}
        self.rows: list[_Row] = []
        seen: set[str] = set()
        for name, threats in jobs:
            threats = list(threats)
            if not threats:
                raise ValueError(f"attack {name!r}: give at least one threat")
            kind = registry.get(name).kind
            built = [self._build(name, t, attack_options.get(name)) for t in threats]
            if getattr(built[0], "minimum_norm", False) and len(threats) > 1:
                largest = max(built, key=lambda a: a.threat.eps)
                ids = {id(a): _run_id(name, a.threat, seen) for a in built}
                self.rows += [_Row(ids[id(a)], name, a, base=None if a is largest else ids[id(largest)], kind=kind)
                              for a in built]  # in the threats' order; the largest runs first (run_batch)
            else:
                self.rows += [_Row(_run_id(name, a.threat, seen), name, a, kind=kind) for a in built]
        self._random_targets: Tensor | None = None
        for threat in dict.fromkeys(r.attack.threat for r in self.rows):  # linf:8 on [0, 1]: "did you mean 8/255?"
            threat.check_scale(self.x[:1], allow_large_eps=allow_large_eps)
        if self.targeting is not None:  # a bad --target fails here, before the run folder is touched
            probe = _logits(self.model, self.x[:1].to(self.device), 1)
            self.targeting.targets(self.y[:1].to(self.device), probe, self.seed)

    def _build(self, name: str, threat: Threat, options: dict[str, Any] | None) -> Attack:
        kwargs: dict[str, Any] = {"steps": self.steps, "restarts": self.restarts, "seed": self.seed,
                                  "options": options}
        if self.queries is not None:
            kwargs["queries"] = self.queries
        return build_attack(name, threat, **kwargs)

    # ------------------------------------------------------------------ the job
    @property
    def label(self) -> str:
        return f"advx {self.config.command}"

    def num_batches(self) -> int:
        return batch_count(len(self.x), self.batch_size)

    def _slice(self, b: int) -> slice:
        return batch_slice(b, self.batch_size, len(self.x))

    def units(self, b: int) -> int:
        s = self._slice(b)
        return (s.stop - s.start) * sum(1 for r in self.rows if r.base is None)

    def _targets(self, b: int, y: Tensor, clean_logits: Tensor) -> Tensor | None:
        t = self.targeting
        if t is None:
            return None
        if t.mode == "random":  # drawn for all N at once: the same targets for any batch size
            if self._random_targets is None:
                shape = torch.zeros(len(self.y), clean_logits.shape[1])
                self._random_targets = t.targets(self.y.cpu(), shape, self.seed)
            return self._random_targets[self._slice(b)].to(y.device)
        return t.targets(y, clean_logits, self.seed)

    def run_batch(self, b: int, tick) -> tuple[dict[str, Tensor], dict[str, Any]]:
        s = self._slice(b)
        x, y = self.x[s].to(self.device), self.y[s].to(self.device)
        clean_logits = _logits(self.model, x, self.batch_size)
        target = self._targets(b, y, clean_logits)
        tensors: dict[str, Tensor] = {"clean_logits": clean_logits}
        if target is not None:
            tensors["target"] = target
        seconds: dict[str, float] = {}
        out: dict[str, dict[str, Tensor]] = {}
        clean_success = is_adversarial(clean_logits, y, target)
        for row in sorted(self.rows, key=lambda r: r.base is not None):  # attack runs, then the rows reusing them
            t0 = time.perf_counter()
            if row.base is None:
                gen = torch.Generator(device=x.device).manual_seed(batch_seed(self.seed, b))
                out[row.run_id] = _attack_batch(row.attack, self._view(row, len(x)), x, y, target, clean_logits, gen)
                seconds[row.run_id] = time.perf_counter() - t0
                tick(len(x))
                self._report(row.run_id, s.stop)
            else:
                base = out[row.base]
                t = row.attack.threat
                x_adv = t.project(base["x_adv"], x)
                logits = _logits(self.model, x_adv, self.batch_size)
                success = is_adversarial(logits, y, target)
                keep = clean_success & ~success  # as the attack base does: never worse than the clean input
                x_adv[keep], logits[keep], success[keep] = x[keep], clean_logits[keep], True
                out[row.run_id] = {"x_adv": x_adv, "success": success, "distance": t.distance(x_adv, x),
                                   "queries": base["queries"] + 1, "gradients": base["gradients"].clone(),
                                   "logits": logits}
                seconds[row.run_id] = seconds[row.base] + time.perf_counter() - t0
        for row in self.rows:
            for k in _FIELDS:
                tensors[f"{row.run_id}/{k}"] = out[row.run_id][k]
        return {k: v.detach().cpu() for k, v in tensors.items()}, {"time_s": seconds, "n": len(x)}

    def _view(self, row: _Row, n: int):
        """What the row's attack sees: the model, or (score-/decision-based) its scores or labels only, with the
        total budget ``n * queries`` as a hard stop on top of the attack's own per-sample limit."""
        if row.kind not in ("score-based", "decision-based"):
            return self.model
        from advx.model import LabelOnly, ScoresOnly  # noqa: PLC0415

        per_sample = getattr(row.attack, "queries", None)
        budget = None if per_sample is None else n * int(per_sample)
        return ScoresOnly(self.model, budget=budget) if row.kind == "score-based" else LabelOnly(self.model,
                                                                                                   budget=budget)

    def _report(self, rid: str, done: int) -> None:
        if self.on_progress is not None:
            self.on_progress(rid, done, len(self.x))

    def experiment(self, records: dict[int, tuple[dict[str, Tensor], dict[str, Any]]]) -> Experiment:
        """The finished run, in memory, from the batch records."""
        order = sorted(records)
        cat = {k: torch.cat([records[b][0][k] for b in order]) for k in records[order[0]][0]}
        runs = []
        for row in self.rows:
            rid = row.run_id
            runs.append(RunResult(
                rid, row.name, attack_repr(row.attack), row.attack.threat,
                time_s=sum(records[b][1]["time_s"][rid] for b in order),
                minimum_norm=bool(getattr(row.attack, "minimum_norm", False)), shared_with=row.base,
                **{k: cat[f"{rid}/{k}"] for k in _FIELDS}))
        meta = dict(self.data_meta)
        data = self.data
        meta.setdefault("name", getattr(data, "name", None))
        meta.setdefault("source", getattr(data, "source", None))
        meta.setdefault("classes", list(getattr(data, "classes", [])))
        meta.setdefault("bounds", [_plain(v) for v in getattr(data, "bounds", (0.0, 1.0))])
        meta.setdefault("n", len(self.y))
        meta.setdefault("input_shape", list(self.x.shape[1:]))
        settings = {"steps": self.steps, "restarts": self.restarts, "batch_size": self.batch_size, "seed": self.seed,
                    "device": str(self.device)}
        if self.queries is not None:
            settings["queries"] = self.queries
        return Experiment(
            x=self.x.cpu(), y=self.y.cpu(), clean_logits=cat["clean_logits"], runs=runs,
            classes=list(meta["classes"]), data=meta, model=self.model_meta, settings=settings,
            time_s=sum(sum(records[b][1]["time_s"].values()) for b in order), targeting=self.targeting,
            targets=cat.get("target"))

    def finish(self, records) -> JobOutput:
        exp = self.experiment(records)
        results = exp.results(self.config.command, self.examples)
        results["model"] = {**self.config.model, **results["model"]}
        results["data"] = {**self.config.data, **results["data"]}
        results["medium"] = "image" if self.x.dim() == 4 else "tensor"
        tensors = exp.tensors()
        if len(self.rows) == 1:
            tensors["x_adv"] = tensors[f"{self.rows[0].run_id}/x_adv"].clone()
        return JobOutput(results=results, tensors=tensors, value=exp)


def data_config(spec: str, data, *, split: str | None = None, n: int | None = None, seed: int = 0,
                **extra: Any) -> dict[str, Any]:
    """``JobConfig.data``: the spec, where it came from and the sha256 of (x, y)."""
    return {"spec": spec, "name": getattr(data, "name", spec), "split": getattr(data, "split", split),
            "source": getattr(data, "source", spec), "n": len(data.y), "seed": seed,
            "sha256": data_sha256(data.x, data.y), **extra}


def model_config(spec: str, model, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """``JobConfig.model``: the spec, its metadata and the sha256 of its weights."""
    return {"spec": spec, "info": info or {}, "sha256": model_sha256(model)}


def run_experiment(
    model: torch.nn.Module,
    data,
    jobs: Jobs,
    *,
    steps: int | None = None,
    restarts: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    attack_options: dict[str, dict[str, Any]] | None = None,
    progress: ProgressFn | None = None,
    model_meta: dict[str, Any] | None = None,
    data_meta: dict[str, Any] | None = None,
    target: str | int | Targeting | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    argv: list[str] | None = None,
    command: str = "attack",
    examples: int = 8,
    queries: int | None = None,
    show_progress: bool = False,
    allow_large_eps: bool = False,
) -> Experiment:
    """Run each attack of ``jobs`` = [(name, [threat, ...]), ...] on ``data`` (x, y, classes, ...).

    Batches of ``batch_size``; each (row, batch) has its own generator seeded from
    (``seed``, batch), so results are deterministic for a given batch size.
    ``progress(label, done, total)`` is called after each row of each batch.
    ``attack_options`` maps an attack name to extra constructor arguments.

    ``target`` (``"random"``, ``"least-likely"`` or a class index; see
    :mod:`advx.jobs.targets`) makes every run targeted at the same per-sample classes;
    samples whose label is their target are not attacked (x_adv = x, no success,
    no cost) and left out of the success rate.

    ``out``: a run folder (results.json, adversarial.safetensors, report.html,
    checkpoints); ``resume``/``overwrite`` as for :func:`advx.jobs.run_job`.

    A radius on the wrong scale (``Linf(8)`` on data in [0, 1]) is refused with a ValueError
    naming the likely fix (``Threat.check_scale``) unless ``allow_large_eps=True``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    targeting = Targeting.parse(target)
    model_meta = dict(model_meta or {})
    spec = str(model_meta.get("spec", type(model).__name__))
    config = JobConfig(
        command=command, argv=list(argv) if argv is not None else capture_argv(),
        model=model_config(spec, model, model_meta.get("info")),
        data=data_config(str((data_meta or {}).get("spec", getattr(data, "name", "data"))), data, seed=seed,
                         split=(data_meta or {}).get("split")),
        seed=seed, n=len(data.y) or None, batch_size=batch_size, device=str(device),
        options={"threats": list(dict.fromkeys(str(t) for _, threats in jobs for t in threats)),
                 "attacks": [name for name, _ in jobs],
                 "jobs": [[name, [str(t) for t in threats]] for name, threats in jobs], "steps": steps,
                 "restarts": restarts, "queries": queries, "attack_options": attack_options or {},
                 "target": None if targeting is None else targeting.spec, "examples": examples},
    )
    job = AttackJob(model, data, jobs, config=config, steps=steps, restarts=restarts, attack_options=attack_options,
                    target=targeting, examples=examples, model_meta=model_meta, data_meta=data_meta,
                    progress=progress, queries=queries, allow_large_eps=allow_large_eps)
    output = run_job(job, out, resume=resume, overwrite=overwrite, progress=show_progress)
    exp = output.value
    exp.output = output
    return exp


def _plain(b):
    t = torch.as_tensor(b)
    return t.item() if t.dim() == 0 else t.tolist()


def _logits(model, x: Tensor, batch_size: int) -> Tensor:
    with attack_mode(model) as m, torch.no_grad():
        return torch.cat([m(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _run_id(name: str, threat: Threat, seen: set[str]) -> str:
    base = f"{name}-{threat.norm_name}-{threat.eps:g}"
    rid, k = base, 2
    while rid in seen:
        rid, k = f"{base}-{k}", k + 1
    seen.add(rid)
    return rid


def attack_repr(attack: Attack) -> str:
    """repr(attack) without memory addresses: ``loss=<function ce at 0x..>`` -> ``loss=ce``."""
    return re.sub(r"<function ([\w.<>]+) at 0x[0-9a-fA-F]+>", r"\1", repr(attack))


def _attack_batch(attack: Attack, model, x: Tensor, y: Tensor, target: Tensor | None, clean_logits: Tensor,
                  generator: torch.Generator) -> dict[str, Tensor]:
    """One batch; with targets, only the rows that have one are attacked (the others keep x, at no cost)."""
    if target is None:
        res = attack(model, x, y, generator=generator)
        return {k: getattr(res, k) for k in _FIELDS}
    rows = (target != NOT_ATTACKED).nonzero().squeeze(1)
    out = {"x_adv": x.clone(), "success": torch.zeros(len(x), dtype=torch.bool, device=x.device),
           "distance": torch.zeros(len(x), dtype=x.dtype, device=x.device),
           "queries": torch.zeros(len(x), dtype=torch.long, device=x.device),
           "gradients": torch.zeros(len(x), dtype=torch.long, device=x.device), "logits": clean_logits.clone()}
    if len(rows):
        res = attack(model, x[rows], y[rows], target[rows], generator=generator)
        for k in _FIELDS:
            out[k] = out[k].to(getattr(res, k).dtype)
            out[k][rows] = getattr(res, k)
    return out
