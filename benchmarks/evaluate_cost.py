"""Strength and cost of ``advx.evaluate``'s standard ensemble versus PGD-100 with 10 restarts.

For each committed model and each eps, both evaluations run on the same points
(same seed, checks off so only the attacks are counted):

* ``standard``: APGD-CE, APGD-T (9 targets), FAB-T, Square 5000 (AutoAttack's
  standard protocol and budgets), each later attack only on points still robust;
* ``fast``: APGD-CE + APGD-T with 25 iterations each;
* ``pgd-100x10``: PGD with 100 steps (CE loss, step 2.5 eps / 100, random start)
  and 10 restarts, each restart only on points not yet fooled.

Reported: robust accuracy, gradient evaluations (backward passes) and model
queries (forward + backward) actually spent, wall time, and the points each
breaks that PGD-100x10 does not (for PGD: that the standard ensemble does not).
The goal: the ensemble at least as strong as PGD with restarts for a fraction
of its gradients.

Usage: python benchmarks/evaluate_cost.py [--models fmnist-cnn,mnist-cnn] [--n 200]
       [--eps 0.03,0.1] [--threads 1] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from advx.attacks.pgd import PGD
from advx.evaluation import evaluate
from advx.threat import Linf

DATA = {"fmnist-cnn": "fashion-mnist", "mnist-cnn": "mnist"}


def pgd_100x10(threat):
    return PGD(threat, steps=100, restarts=10, loss="ce")


def run(model_name: str, n: int, eps: list[float], device: str, batch_size: int) -> list[dict]:
    from advx.data import load
    from advx.zoo import load_model

    model = load_model(model_name, device=device)
    data = load(DATA.get(model_name, "fashion-mnist"), split="test", n=n, seed=0)
    rows = []
    contenders = {
        "standard": "standard",
        "fast": "fast",
        "pgd-100x10": [pgd_100x10],
    }
    reports = {}
    for name, attacks in contenders.items():
        start = time.perf_counter()
        reports[name] = evaluate(model, data, Linf(eps[0]), eps=eps, attacks=attacks, checks=False, progress=False,
                                 batch_size=batch_size, device=device, keep_adversarials=False)
        reports[name].timing["benchmark_s"] = time.perf_counter() - start
    for e in eps:
        key = f"linf:{e:g}"
        codes = {k: torch.tensor(r.per_sample["broken_by"][key]) for k, r in reports.items()}
        for name, report in reports.items():
            res = next(r for r in report.results if r.threat == key)
            other = "pgd-100x10" if name != "pgd-100x10" else "standard"
            only = int(((codes[name] >= 0) & (codes[other] == -1)).sum())  # vs PGD (for PGD: vs standard)
            rows.append({"model": model_name, "threat": key, "evaluation": name, "n": report.n,
                         "clean_accuracy": report.clean_accuracy, "robust_accuracy": res.robust_accuracy,
                         "gradients": res.gradients, "queries": res.queries, "broken_only_by_this": only,
                         "broken_by": res.broken_by, "notes": report.config["notes"]})
    rows.append({"model": model_name, "evaluation": "wall time (s), all eps",
                 **{k: round(r.timing["benchmark_s"], 1) for k, r in reports.items()},
                 "seconds_per_attack": {k: r.timing["attack_s"] for k, r in reports.items()}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="fmnist-cnn,mnist-cnn")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--eps", default="0.03,0.1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    eps = [float(e) for e in args.eps.split(",")]
    rows = []
    print(f"{'model':<11} {'threat':<10} {'evaluation':<11} {'robust acc':>10} {'gradients':>10} {'queries':>11} "
          f"{'only this':>9}")
    for m in args.models.split(","):
        for r in run(m, args.n, eps, args.device, args.batch_size):
            rows.append(r)
            if "robust_accuracy" in r:
                print(f"{r['model']:<11} {r['threat']:<10} {r['evaluation']:<11} {100 * r['robust_accuracy']:>9.1f}% "
                      f"{r['gradients']:>10,} {r['queries']:>11,} {r['broken_only_by_this']:>9}", flush=True)
        wall = [r for r in rows if r["model"] == m and "robust_accuracy" not in r][-1]
        print(f"{m:<11} wall time for all eps: standard {wall['standard']} s, fast {wall['fast']} s, "
              f"pgd-100x10 {wall['pgd-100x10']} s; "
              f"per attack: {json.dumps(wall['seconds_per_attack'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "device": str(args.device), "torch": torch.__version__, "rows": rows}, f,
                      indent=2)


if __name__ == "__main__":
    main()
