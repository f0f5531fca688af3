"""Defensive distillation (Papernot et al. 2016) looks robust to FGSM and PGD and is not (Carlini & Wagner 2016).

Trains, on a Fashion-MNIST subset, a ``lenet`` teacher with softmax temperature
T and a student on the teacher's soft labels at T (``advx.defenses.distill``),
deploys the student at T = 1, and attacks it and the committed standard model
``fmnist-cnn`` on the same test points:

* FGSM and PGD-40 on cross-entropy (Linf eps): the distilled softmax saturates,
  the gradient underflows to exactly zero at most points, and they rarely succeed;
* PGD-40 on the C&W margin loss (same eps): the logits still carry the signal;
* C&W L2 (minimum norm, unbounded budget): success rate and median L2 distance;
* ``advx.evaluate`` (preset ``fast``: APGD-CE + APGD-T) with its trust checks:
  which flags fire on the distilled model and none on the standard one.

Prints a markdown table (for the README). The distilled weights are cached in
``--cache`` (delete it to retrain).

Usage: python benchmarks/distillation.py [--n 200] [--eps 0.1] [--temperature 100] [--n-train 10000]
       [--epochs 5] [--threads 2] [--cache runs/bench-distillation]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from advx import evaluate
from advx.attacks import FGSM, PGD
from advx.attacks.cw import CarliniWagnerL2
from advx.data import load
from advx.defenses.distillation import distill
from advx.defenses.loop import TrainConfig, accuracy
from advx.model import input_gradient
from advx.threat import L2, Linf
from advx.zoo import build, load_model


def distilled_model(args) -> torch.nn.Module:
    cache = Path(args.cache)
    path = cache / f"student-T{args.temperature:g}-n{args.n_train}-e{args.epochs}.safetensors"
    if path.exists():
        return load_model(path)
    torch.manual_seed(0)
    data = load("fashion-mnist", "train", n=args.n_train, seed=0)
    config = TrainConfig(epochs=args.epochs, batch_size=64, lr=args.lr, seed=0)
    t0 = time.perf_counter()
    _, student, t_hist, s_hist = distill(lambda: build("lenet"), data, config, args.temperature,
                                         teacher_path=cache / path.name.replace("student", "teacher"),
                                         checkpoint_dir=cache / "ckpt", resume=True)
    print(f"trained teacher + student in {time.perf_counter() - t0:.0f} s "
          f"(final losses {t_hist[-1].loss:.3f}, {s_hist[-1].loss:.3f})")
    from advx.zoo import save_model

    save_model(student, path, "lenet", {"defense": "distill", "temperature": args.temperature})
    return student.eval()


def row(name: str, model, x, y, eps: float, n_eval: int) -> dict:
    out = {"model": name, "clean": accuracy(model, x, y)}
    _, grad, logits = input_gradient(model, x, lambda z: F.cross_entropy(z, y, reduction="none"))
    correct = logits.argmax(1) == y
    norms = grad.flatten(1).norm(dim=1)[correct]
    out["zero_grad"] = float((norms == 0).float().mean())
    out["grad_median"] = float(norms.median())
    threat = Linf(eps)
    attacks = {"FGSM": FGSM(threat), "PGD-CE": PGD(threat, steps=40, loss="ce"),
               "PGD-margin": PGD(threat, steps=40, loss="margin")}
    for key, attack in attacks.items():
        r = attack(model, x, y)
        out[key] = float((r.success & r.clean_correct).sum() / r.clean_correct.sum())  # success on correct points
    cw = CarliniWagnerL2(L2(100.0), steps=100, binary_search_steps=5)(model, x, y)
    ok = cw.clean_correct
    out["C&W"] = float((cw.success & ok).sum() / ok.sum())
    out["C&W_L2"] = float(cw.distance[cw.success & ok].median()) if bool((cw.success & ok).any()) else float("nan")
    report = evaluate(model, (x[:n_eval], y[:n_eval]), threat, attacks="fast", progress=False)
    out["ensemble_robust"] = report.robust_accuracy(f"linf:{eps:g}")
    out["flags"] = ", ".join(report.flags) or "none"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="test points attacked")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--temperature", type=float, default=100.0)
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam lr (T = 100 needs logits ~100x larger)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default="runs/bench-distillation")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    test = load("fashion-mnist", "test", n=args.n, seed=0)
    rows = [row("fmnist-cnn (standard)", load_model("fmnist-cnn"), test.x, test.y, args.eps, args.n),
            row(f"distilled, T={args.temperature:g}", distilled_model(args), test.x, test.y, args.eps, args.n)]
    print(f"\nFashion-MNIST, {args.n} test points; attack success rates on correctly classified points; "
          f"Linf eps = {args.eps:g}; C&W L2 unbounded\n")
    print("| model | clean acc. | CE gradient = 0 | FGSM | PGD-40 CE | PGD-40 margin | C&W L2 (median dist.) "
          "| `advx evaluate` robust acc. | flags |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['clean']:.1%} | {r['zero_grad']:.0%} | {r['FGSM']:.1%} | {r['PGD-CE']:.1%} "
              f"| {r['PGD-margin']:.1%} | {r['C&W']:.1%} ({r['C&W_L2']:.2f}) | {r['ensemble_robust']:.1%} "
              f"| {r['flags']} |")


if __name__ == "__main__":
    main()
