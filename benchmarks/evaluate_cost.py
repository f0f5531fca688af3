"""What an honest evaluation costs: AutoAttack versus advx's presets, side by side in one run.

For each (model, threat), on the same test points (seed 0):

* ``torchattacks-aa-100``: AutoAttack standard with the paper's budgets from the PyPI
  ``torchattacks`` (installed with ``--no-deps``): its APGD-CE, APGD-T (9 targets), FAB-T
  (9 targets), each 100 iterations, and Square 5000, chained by its ``MultiAttack`` (each
  attack only on the points still robust). The ratios are taken to this row;
* ``torchattacks-aa``: ``torchattacks.AutoAttack(version="standard")`` as shipped, whose
  APGD, APGD-T and FAB run their default 10 iterations (not the paper's 100);
* ``advx-autoattack``: advx's ``"autoattack"`` preset (the same ensemble and budgets); unless it
  is named in ``--contenders`` its row is read off the thorough run, whose first four members
  are autoattack's, run first with the same seeds (the same points broken, the same passes);
* ``advx-standard``: the cheap preset (APGD-CE, MALT-ranked APGD-T on 2 targets, FAB-T only
  near the boundary, Square on a sample of the survivors and on all of them when the
  sample breaks one);
* ``advx-thorough``: ``"autoattack"`` + MALT APGD-T (3 targets, 2 restarts) on the survivors.

Every contender sees the model through one :class:`advx.model.PassCounter`, so
its passes (forward + backward samples through the model) are counted the same way, not
taken from anyone's own bookkeeping. advx runs with the checks off (only the attacks are
compared). Reported: robust accuracy with its 95% Clopper-Pearson interval, passes in total
and per point, the ratio to torchattacks' AutoAttack, wall time, and for advx the wall-time
overhead over the floor, two ways: over the pass count x the model's time per forward / backward
sample (measured once per case at batch 64), and over the time measured inside the model during
the run itself (``PassCounter.seconds``: its forwards, and its backwards from the output's gradient
to the input's), which sees the same load and the same batch sizes as the run.

Usage: python benchmarks/evaluate_cost.py [--n 200] [--threads 1] [--json out.json]
       [--cases mnist-cnn-at:mnist:linf:0.3,fmnist-cnn-at:fashion-mnist:linf:0.1,fmnist-cnn-at:fashion-mnist:l2:1.0]
       [--contenders torchattacks-aa,advx-autoattack,advx-standard,advx-thorough]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from advx import evaluate
from advx.evaluation.stats import clopper_pearson
from advx.model import PassCounter

CASES = "mnist-cnn-at:mnist:linf:0.3,fmnist-cnn-at:fashion-mnist:linf:0.1,fmnist-cnn-at:fashion-mnist:l2:1.0"
CONTENDERS = "torchattacks-aa-100,torchattacks-aa,advx-standard,advx-thorough"


def per_sample_times(model, x: torch.Tensor, batch: int = 64, repeats: int = 5) -> tuple[float, float]:
    """Median seconds per sample of one forward, and of one backward (input gradient), at ``batch``."""
    xb = x[:batch]
    fw, bw = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            model(xb)
        fw.append((time.perf_counter() - t0) / len(xb))
        z = xb.clone().requires_grad_(True)
        t0 = time.perf_counter()
        out = model(z)
        t1 = time.perf_counter()
        torch.autograd.grad(out.sum(), z)
        bw.append((time.perf_counter() - t1) / len(xb))
    return sorted(fw)[repeats // 2], sorted(bw)[repeats // 2]


def torchattacks_aa(model, x, y, norm: str, eps: float, batch_size: int, steps: int | None) -> torch.Tensor:
    """Robust mask under torchattacks' AutoAttack: its ``AutoAttack(version="standard")`` as shipped
    (``steps=None``: its APGD, APGD-T and FAB run their default 10 iterations), or the same four attacks
    with the paper's budgets (``steps=100``)."""
    import torchattacks as ta

    nm = {"linf": "Linf", "l2": "L2"}[norm]
    if steps is None:
        attack = ta.AutoAttack(model, norm=nm, eps=eps, version="standard", n_classes=10, seed=0)
    else:
        attack = ta.MultiAttack([
            ta.APGD(model, norm=nm, eps=eps, steps=steps, n_restarts=1, loss="ce", seed=0),
            ta.APGDT(model, norm=nm, eps=eps, steps=steps, n_restarts=1, n_classes=10, seed=0),
            ta.FAB(model, norm=nm, eps=eps, steps=steps, n_restarts=1, multi_targeted=True, n_classes=10, seed=0),
            ta.Square(model, norm=nm, eps=eps, n_queries=5000, n_restarts=1, seed=0),
        ])
    robust = []
    for i in range(0, len(x), batch_size):
        xa = attack(x[i:i + batch_size], y[i:i + batch_size])
        with torch.no_grad():
            robust.append(model(xa).argmax(1) == y[i:i + batch_size])
    return torch.cat(robust)


def autoattack_from_thorough(row: dict, report) -> dict:
    """advx's ``autoattack`` row, read from a ``thorough`` run: thorough runs autoattack's four members first,
    with the same seeds, so the points they leave robust and the passes they spend are autoattack's exactly;
    the robust points of autoattack are thorough's plus those its extra member broke."""
    res = report.results[0]
    four = ("apgd-ce", "apgd-t", "fab-t", "square")
    robust = res.robust + sum(v for k, v in res.broken_by.items() if k not in four)
    passes = report.cost["passes"]["clean"] + sum(res.passes_by_attack[k] for k in four)
    lo, hi = clopper_pearson(robust, row["n"])
    return {**row, "evaluation": "advx-autoattack", "robust": robust, "robust_accuracy": robust / row["n"],
            "ci95": [lo, hi], "passes": passes, "forwards": None, "backwards": None,
            "passes_per_point": passes / row["n"],
            "wall_s": sum(report.timing["attack_s"][k] for k in four), "floor_s": None, "overhead": None,
            "broken_by": {k: v for k, v in res.broken_by.items() if k in four},
            "passes_by_attack": {k: res.passes_by_attack[k] for k in four},
            "derived": "the first four members of the thorough run (same seeds); wall time: their attack time"}


def run_case(case: str, n: int, contenders: list[str], batch_size: int) -> list[dict]:
    from advx.data import load
    from advx.zoo import load_model

    name, data_name, norm, eps = case.split(":")
    eps_f = float(eps)
    model = load_model(name)
    data = load(data_name, split="test", n=n, seed=0)
    x, y = data.x, data.y
    t_fw, t_bw = per_sample_times(model, x)
    rows = []
    for who in contenders:
        counter = PassCounter(model)
        start = time.perf_counter()
        if who.startswith("torchattacks-aa"):
            steps = 100 if who == "torchattacks-aa-100" else None
            robust = int(torchattacks_aa(counter, x, y, norm, eps_f, batch_size, steps).sum())
            extra = {}
        else:
            preset = who.removeprefix("advx-")
            report = evaluate(counter, data, f"{norm}:{eps}", attacks=preset, checks=False, progress=False,
                              batch_size=batch_size, keep_adversarials=False)
            res = report.results[0]
            robust = res.robust
            extra = {"broken_by": res.broken_by, "passes_by_attack": res.passes_by_attack,
                     "report_passes_total": report.cost["passes"]["total"]}
        wall = time.perf_counter() - start
        floor = counter.forwards * t_fw + counter.backwards * t_bw
        lo, hi = clopper_pearson(robust, len(x))
        rows.append({"model": name, "threat": f"{norm}:{eps}", "evaluation": who, "n": len(x), "robust": robust,
                     "robust_accuracy": robust / len(x), "ci95": [lo, hi], "passes": counter.passes,
                     "forwards": counter.forwards, "backwards": counter.backwards,
                     "passes_per_point": counter.passes / len(x), "wall_s": wall, "floor_s": floor,
                     "overhead": wall / floor - 1 if floor > 0 else None, "model_s": counter.seconds,
                     "overhead_vs_model_s": wall / counter.seconds - 1 if counter.seconds > 0 else None, **extra})
        print(json.dumps(rows[-1]), flush=True)
        if who == "advx-thorough" and "advx-autoattack" not in contenders:
            rows.insert(len(rows) - 1, autoattack_from_thorough(rows[-1], report))
            print(json.dumps(rows[-2]), flush=True)
    base = next((r for r in rows if r["evaluation"] == "torchattacks-aa-100"), rows[0])
    for r in rows:
        r["pass_ratio"] = r["passes"] / base["passes"]
        r["wall_ratio"] = r["wall_s"] / base["wall_s"]
    return rows


def table(rows: list[dict]) -> str:
    head = ("| model | threat | evaluation | robust acc [95% CI] | passes | per point | x AA-100 passes | wall s | "
            "x AA-100 wall | overhead vs floor |")
    out = [head, "|" + "---|" * 10]
    for r in rows:
        ov = "" if r["evaluation"].startswith("torchattacks") or r["overhead"] is None else f"{100 * r['overhead']:+.0f}%"
        out.append(f"| {r['model']} | {r['threat']} | {r['evaluation']} | {100 * r['robust_accuracy']:.1f}% "
                   f"[{100 * r['ci95'][0]:.1f}, {100 * r['ci95'][1]:.1f}] | {r['passes']:,} | "
                   f"{r['passes_per_point']:,.0f} | {r['pass_ratio']:.3f} | {r['wall_s']:.0f} | "
                   f"{r['wall_ratio']:.2f} | {ov} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=CASES, help="model:data:norm:eps, comma-separated")
    ap.add_argument("--contenders", default=CONTENDERS)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for case in args.cases.split(","):
        rows += run_case(case, args.n, args.contenders.split(","), args.batch_size)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "torch": torch.__version__, "python": platform.python_version(),
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
