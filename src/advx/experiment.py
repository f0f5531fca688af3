"""The job behind ``advx attack`` and ``advx demo``: attacks x threats on a model and data.

:func:`run_experiment` runs every (attack, threat) pair on the same inputs, in
batches, and keeps every per-sample number (adversarial inputs, success,
perturbation size, queries, logits). :class:`Experiment` turns them into the
summary numbers of ``results.json`` and saves the run directory::

    out/adversarial.safetensors   clean inputs, labels, and per run x_adv, success, distance, logits
    out/results.json              every number in the report (schema: docs/results-schema.md)
    out/report.html               the self-contained HTML report (advx.report)

Attacks are named as on the command line (:data:`ATTACKS`) and imported lazily,
so an attack whose module is missing fails with a clear message only when used.

Minimum-norm attacks (``attack.minimum_norm``, e.g. C&W) are run once, at the
largest radius asked for that norm; the rows for smaller radii project those
adversarial inputs into the smaller ball and judge them again with the model
(one forward pass), which is what running the attack at each radius would give
for an attack that returns the smallest adversarial perturbation it finds.

``target=`` (``advx attack --target``) makes every run targeted at the same
per-sample classes (:class:`advx.targets.Targeting`: random, least-likely or one
class); a sample whose label is its target is not attacked, and success means
reaching the target.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import platform
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advx.attacks.base import Attack, is_adversarial
from advx.model import attack_mode
from advx.targets import NOT_ATTACKED, Targeting
from advx.threat import Threat

__all__ = [
    "ATTACKS",
    "AttackEntry",
    "AttackUnavailableError",
    "Experiment",
    "RunResult",
    "SCHEMA_VERSION",
    "build_attack",
    "load_data",
    "require_targetable",
    "run_experiment",
]

log = logging.getLogger(__name__)

#: version of the results.json layout (docs/results-schema.md)
SCHEMA_VERSION = 1


class AttackUnavailableError(RuntimeError):
    """The attack's module is not part of this install of advx."""


@dataclass(frozen=True)
class AttackEntry:
    """Where a command-line attack name lives and which norms it supports."""

    module: str
    cls: str
    norms: tuple[str, ...]
    summary: str
    options: dict[str, Any] = field(default_factory=dict)
    #: the common ``steps``/``restarts`` settings reach only the iterative loss-maximising attacks;
    #: minimum-norm attacks keep their own defaults (their "steps" mean something else)
    common: tuple[str, ...] = ("steps", "restarts")
    #: the attack accepts ``target=`` (False: untargeted only)
    targeted: bool = True


_LP = ("linf", "l2", "l1", "db")
#: command-line name -> attack (imported only when used)
ATTACKS: dict[str, AttackEntry] = {
    "fgsm": AttackEntry("advx.attacks.fgsm", "FGSM", _LP + ("l0",), "one gradient step (Goodfellow et al. 2015)",
                        common=()),
    "pgd": AttackEntry("advx.attacks.pgd", "PGD", _LP + ("l0",), "projected gradient descent (Madry et al. 2018)"),
    "bim": AttackEntry("advx.attacks.pgd", "BIM", _LP, "basic iterative method (Kurakin et al. 2017)"),
    "apgd-ce": AttackEntry("advx.attacks.apgd", "APGD", _LP, "auto-PGD, cross-entropy (Croce & Hein 2020)",
                           {"loss": "ce"}),
    "apgd-t": AttackEntry("advx.attacks.apgd", "APGDT", _LP, "auto-PGD, targeted DLR (Croce & Hein 2020)"),
    "cw": AttackEntry("advx.attacks.cw", "CarliniWagnerL2", ("l2",), "Carlini & Wagner L2 (2017), minimum norm",
                      common=()),
    "deepfool": AttackEntry("advx.attacks.deepfool", "DeepFool", ("l2", "linf"),
                            "DeepFool (Moosavi-Dezfooli et al. 2016), minimum norm", common=(),
                            targeted=False),
    "jsma": AttackEntry("advx.attacks.jsma", "JSMA", ("l0",), "saliency map attack (Papernot et al. 2016)",
                        common=()),
    "ead": AttackEntry("advx.attacks.ead", "EAD", ("l1",), "elastic-net attack (Chen et al. 2018), minimum L1",
                       common=()),
    "fab": AttackEntry("advx.attacks.fab", "FAB", ("linf", "l2", "l1"),
                       "fast adaptive boundary (Croce & Hein 2020), minimum norm", common=()),
    "fab-t": AttackEntry("advx.attacks.fab", "FABT", ("linf", "l2", "l1"),
                         "targeted FAB over the top classes (Croce & Hein 2020), minimum norm", common=()),
    "square": AttackEntry("advx.attacks.square", "Square", ("linf", "l2"),
                          "score-based random search, 5000 queries (Andriushchenko et al. 2020)", common=("restarts",)),
}


def require_targetable(names: Sequence[str]) -> None:
    """Refuse (ValueError naming it) an attack among ``names`` that cannot be targeted."""
    for name in names:
        entry = ATTACKS.get(name.strip().lower())
        if entry is not None and not entry.targeted:
            ok = ", ".join(a for a, e in ATTACKS.items() if e.targeted)
            raise ValueError(f"--target: attack {name!r} ({entry.cls}) is untargeted only; drop --target or "
                             f"use a targetable attack ({ok})")


def build_attack(
    name: str,
    threat: Threat,
    *,
    steps: int | None = None,
    restarts: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> Attack:
    """The attack called ``name`` on the command line, configured for ``threat``.

    ``steps`` and ``restarts`` are passed only to the iterative attacks that take
    them (pgd, bim, apgd-ce, apgd-t) and ignored by the others, which keep their
    own defaults; ``options`` are constructor arguments of this attack and win
    over both (e.g. ``{"steps": 100, "binary_search_steps": 5}`` for cw).
    """
    key = name.strip().lower()
    if key not in ATTACKS:
        raise ValueError(f"attack {name!r} is unknown; use one of {', '.join(ATTACKS)}")
    entry = ATTACKS[key]
    if not isinstance(threat, Threat):
        raise TypeError(f"threat must be an advx.threat.Threat, got {type(threat).__name__}")
    if threat.norm_name not in entry.norms:
        raise ValueError(
            f"attack {key!r} does not support the {threat.norm_name} threat; it works with "
            f"{', '.join(entry.norms)} (e.g. --threat {entry.norms[0]}:...)"
        )
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as e:
        if e.name != entry.module:
            raise
        raise AttackUnavailableError(
            f"attack {key!r} needs {entry.module}.{entry.cls}, which this install of advx does not have"
        ) from None
    cls = getattr(module, entry.cls, None)
    if cls is None:
        raise AttackUnavailableError(f"attack {key!r}: {entry.module} has no {entry.cls}")
    accepted = inspect.signature(cls).parameters
    kwargs = {**entry.options, **(options or {})}
    for arg, value in (("steps", steps), ("restarts", restarts)):
        if value is None or arg in kwargs:
            continue
        if arg in accepted and arg in entry.common:
            kwargs[arg] = int(value)
        else:
            log.debug("attack %s takes no %s; ignoring %s=%s", key, arg, arg, value)
    if "seed" in accepted:
        kwargs["seed"] = int(seed)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"attack {key!r} does not take option(s) {', '.join(unknown)}")
    return cls(threat, **kwargs)


# --------------------------------------------------------------------------- data
@dataclass
class _FileData:
    """Inputs and labels read from the user's own file (same fields as advx.data.LabeledData)."""

    x: Tensor
    y: Tensor
    classes: list[str]
    name: str
    source: str
    split: str = "file"
    bounds: tuple[float, float] = (0.0, 1.0)


def load_data(spec: str, split: str = "test", n: int | None = None, seed: int = 0):
    """A named data set (``advx.data.load``) or the user's own ``.safetensors``/``.npz`` file.

    A file holds tensors ``x`` (N, ...) with values in the bounds and ``y`` (N,) integer
    labels; class names may be given as a comma-separated ``classes`` entry of the
    safetensors metadata (npz: a string array ``classes``). ``n`` takes the first n rows
    of a file (files are not shuffled).
    """
    path = Path(spec)
    if path.suffix in (".safetensors", ".npz"):
        if not path.is_file():
            raise FileNotFoundError(f"data file {spec!r} does not exist")
        return _load_file(path, n)
    from advx import data  # noqa: PLC0415 -- keeps `import advx.experiment` light

    return data.load(spec, split=split, n=n, seed=seed)


def _load_file(path: Path, n: int | None) -> _FileData:
    classes: list[str] | None = None
    if path.suffix == ".npz":
        import numpy as np  # noqa: PLC0415

        with np.load(path, allow_pickle=False) as z:
            missing = {"x", "y"} - set(z.files)
            if missing:
                raise ValueError(f"data file {path}: needs arrays 'x' and 'y', lacks {sorted(missing)}")
            x, y = torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
            if "classes" in z.files:
                classes = [str(c) for c in z["classes"]]
    else:
        from safetensors import safe_open  # noqa: PLC0415

        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            if not {"x", "y"} <= keys:
                raise ValueError(f"data file {path}: needs tensors 'x' and 'y', has {sorted(keys)}")
            x, y = f.get_tensor("x"), f.get_tensor("y")
            meta = f.metadata() or {}
            if meta.get("classes"):
                classes = meta["classes"].split(",")
    if not x.is_floating_point():
        raise ValueError(f"data file {path}: 'x' must hold floats in the input bounds, got {x.dtype}")
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise ValueError(f"data file {path}: 'y' must be integer labels of shape ({x.shape[0]},)")
    if n is not None:
        x, y = x[:n], y[:n]
    y = y.long()
    if classes is None:
        classes = [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    return _FileData(x.float(), y, classes, path.stem, f"file {path}")


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
        """Write adversarial.safetensors, results.json and (unless ``report=False``) report.html."""
        import json  # noqa: PLC0415

        from safetensors.torch import save_file  # noqa: PLC0415

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        results = self.results(command, n_examples)
        paths = {"adversarial": out / "adversarial.safetensors", "results": out / "results.json"}
        tensors = self.tensors()
        save_file(tensors, str(paths["adversarial"]), metadata={"schema_version": str(SCHEMA_VERSION)})
        paths["results"].write_text(json.dumps(results, indent=2, default=str) + "\n")
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


def environment() -> dict[str, Any]:
    """Versions needed to reproduce a run."""
    import numpy  # noqa: PLC0415

    import advx  # noqa: PLC0415

    return {
        "advx": getattr(advx, "__version__", "unknown"),
        "advx_git_revision": _git_revision(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# -------------------------------------------------------------------------- running
Job = tuple[str, Sequence[Threat]]
ProgressFn = Callable[[str, int, int], None]


def run_experiment(
    model: torch.nn.Module,
    data,
    jobs: Sequence[Job],
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
) -> Experiment:
    """Run each attack of ``jobs`` = [(name, [threat, ...]), ...] on ``data`` (x, y, classes, ...).

    Batches of ``batch_size``; each run has its own generator seeded with ``seed``,
    so results are deterministic for a given batch size. ``progress(label, done, total)``
    is called after each batch. ``attack_options`` maps an attack name to extra
    constructor arguments.

    ``target`` (``"random"``, ``"least-likely"`` or a class index; see
    :mod:`advx.targets`) makes every run targeted at the same per-sample classes;
    samples whose label is their target are not attacked (x_adv = x, no success,
    no cost) and left out of the success rate.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    targeting = Targeting.parse(target)
    if targeting is not None:
        require_targetable([name for name, _ in jobs])
    device = torch.device(device)
    x = data.x.to(device)
    y = data.y.to(device)
    if len(x) == 0:
        raise ValueError("the data holds no samples; give n >= 1")
    model = model.to(device)
    attack_options = attack_options or {}
    start = time.perf_counter()
    clean_logits = _logits(model, x, batch_size)
    targets = None if targeting is None else targeting.targets(y, clean_logits, seed)
    runs: list[RunResult] = []
    seen: set[str] = set()
    for name, threats in jobs:
        threats = list(threats)
        if not threats:
            raise ValueError(f"attack {name!r}: give at least one threat")
        opts = attack_options.get(name)
        built = [build_attack(name, t, steps=steps, restarts=restarts, seed=seed, options=opts) for t in threats]
        if getattr(built[0], "minimum_norm", False) and len(threats) > 1:
            runs += _run_minimum_norm(name, built, model, x, y, targets, clean_logits, batch_size, seed, progress,
                                      seen)
        else:
            for attack in built:
                runs.append(_run_one(name, attack, model, x, y, targets, clean_logits, batch_size, seed, progress,
                                     seen))
    meta = dict(data_meta or {})
    meta.setdefault("name", getattr(data, "name", None))
    meta.setdefault("source", getattr(data, "source", None))
    meta.setdefault("classes", list(getattr(data, "classes", [])))
    bounds = getattr(data, "bounds", (0.0, 1.0))
    meta.setdefault("bounds", [_plain(b) for b in bounds])
    meta.setdefault("n", len(y))
    meta.setdefault("input_shape", list(x.shape[1:]))
    settings = {"steps": steps, "restarts": restarts, "batch_size": batch_size, "seed": seed, "device": str(device)}
    return Experiment(
        x=x.cpu(), y=y.cpu(), clean_logits=clean_logits.cpu(), runs=runs, classes=list(meta["classes"]),
        data=meta, model=dict(model_meta or {}), settings=settings, time_s=time.perf_counter() - start,
        targeting=targeting, targets=None if targets is None else targets.cpu(),
    )


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


_FIELDS = ("x_adv", "success", "distance", "queries", "gradients", "logits")


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


def _run_one(name, attack: Attack, model, x, y, targets, clean_logits, batch_size, seed, progress,
             seen) -> RunResult:
    rid = _run_id(name, attack.threat, seen)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    parts = []
    t0 = time.perf_counter()
    for i in range(0, len(x), batch_size):
        b = slice(i, i + batch_size)
        parts.append(_attack_batch(attack, model, x[b], y[b], None if targets is None else targets[b],
                                   clean_logits[b], generator))
        if progress is not None:
            progress(rid, min(i + batch_size, len(x)), len(x))
    elapsed = time.perf_counter() - t0
    cat = {k: torch.cat([p[k] for p in parts]) for k in _FIELDS}
    log.debug("%s: %.1f s", rid, elapsed)
    return RunResult(rid, name, attack_repr(attack), attack.threat, time_s=elapsed,
                     minimum_norm=bool(getattr(attack, "minimum_norm", False)), **cat)


def _run_minimum_norm(name, built: list[Attack], model, x, y, targets, clean_logits, batch_size, seed, progress,
                      seen) -> list[RunResult]:
    """Run once at the largest radius; derive the smaller radii by projection and a fresh judgement."""
    largest = max(built, key=lambda a: a.threat.eps)
    base = _run_one(name, largest, model, x, y, targets, clean_logits, batch_size, seed, progress, seen)
    clean_success = is_adversarial(clean_logits, y, targets)  # a target of -1 is never reached
    out = []
    for attack in built:
        if attack is largest:
            out.append(base)
            continue
        t = attack.threat
        t0 = time.perf_counter()
        x_adv = t.project(base.x_adv, x)
        logits = _logits(model, x_adv, batch_size)
        success = is_adversarial(logits, y, targets)
        keep = clean_success & ~success  # as the attack base does: never worse than the clean input
        x_adv[keep], logits[keep], success[keep] = x[keep], clean_logits[keep], True
        out.append(RunResult(
            _run_id(name, t, seen), name, attack_repr(attack), t, x_adv=x_adv, success=success,
            distance=t.distance(x_adv, x), queries=base.queries + 1, gradients=base.gradients.clone(),
            logits=logits, time_s=base.time_s + time.perf_counter() - t0, minimum_norm=True,
            shared_with=base.run_id,
        ))
    return out
