"""Attack speed against the floor, and against peers, in one run.

The cost of a gradient attack is its number of forward+backward passes; the
floor is that number times the cost of one raw forward+backward of the model
(gradient with respect to the input only). This script times, on the committed
``fmnist-cnn`` and a batch of 256 Fashion-MNIST test images it classifies correctly, interleaving the contenders and taking
medians of repeats:

* floor: N raw passes (``torch.autograd.grad`` of the CE loss w.r.t. x),
* advx PGD-40 (Linf) with early stopping off (equal work to the floor) and on,
* advx FGSM (floor: 1 pass) and C&W-L2 (floor: its steps x binary-search passes),
* torchattacks / Foolbox / ART PGD-40 on the same model and batch, where installed
  (``make bench`` installs them).

Usage: python benchmarks/attack_speed.py [--repeats 5] [--batch 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from advx.attacks import FGSM, PGD
from advx.data import load
from advx.threat import L2, Linf
from advx.zoo import load_model

EPS, STEPS = 0.1, 40


def floor(model, x, y, passes: int) -> None:
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(passes):
        xr = x.detach().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xr), y)
        torch.autograd.grad(loss, xr)
    for p in model.parameters():
        p.requires_grad_(True)


def contenders(model, x, y):
    out = {
        f"floor: {STEPS} fwd+bwd": lambda: floor(model, x, y, STEPS),
        "floor: 1 fwd+bwd": lambda: floor(model, x, y, 1),
        "advx PGD-40 (no early stop)": lambda: PGD(Linf(EPS), steps=STEPS, early_stop=False)(model, x, y),
        "advx PGD-40 (early stop)": lambda: PGD(Linf(EPS), steps=STEPS)(model, x, y),
        "advx FGSM": lambda: FGSM(Linf(EPS))(model, x, y),
    }
    try:
        from advx.attacks.cw import CarliniWagnerL2

        cw = CarliniWagnerL2(L2(10.0), steps=50, binary_search_steps=2)
        out["floor: 100 fwd+bwd"] = lambda: floor(model, x, y, 100)
        out["advx C&W-L2 (2x50 steps)"] = lambda: cw(model, x, y)
    except ImportError:
        pass
    try:
        import torchattacks

        ta = torchattacks.PGD(model, eps=EPS, alpha=2.5 * EPS / STEPS, steps=STEPS, random_start=True)
        out["torchattacks PGD-40"] = lambda: ta(x, y)
    except ImportError:
        pass
    try:
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        fpgd = fb.attacks.LinfPGD(rel_stepsize=2.5 / STEPS, steps=STEPS, random_start=True)
        out["foolbox PGD-40"] = lambda: fpgd(fmodel, x, y, epsilons=EPS)
    except ImportError:
        pass
    try:
        from art.attacks.evasion import ProjectedGradientDescentPyTorch
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                clip_values=(0.0, 1.0), device_type="cpu")
        apgd = ProjectedGradientDescentPyTorch(clf, norm=np.inf, eps=EPS, eps_step=2.5 * EPS / STEPS, max_iter=STEPS,
                                               num_random_init=1, batch_size=len(x), verbose=False)
        xn, yn = x.numpy(), y.numpy()
        out["ART PGD-40"] = lambda: apgd.generate(xn, yn)
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # The committed Fashion-MNIST CNN on real test images it classifies correctly, so
    # that every contender (ours skips already-misclassified points) does equal work.
    model = load_model("fmnist-cnn")
    data = load("fashion-mnist", split="test")
    with torch.no_grad():
        right = (model(data.x[:4 * args.batch]).argmax(1) == data.y[:4 * args.batch]).nonzero().squeeze(1)
    x, y = data.x[right[: args.batch]], data.y[right[: args.batch]]
    runs = contenders(model, x, y)
    for fn in runs.values():  # warm up
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit everyone alike
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ours = med["advx PGD-40 (no early stop)"]
    floor40 = med[f"floor: {STEPS} fwd+bwd"]
    print(f"batch {args.batch} x 1x28x28, Linf eps {EPS}, {args.threads} threads, median of {args.repeats}")
    print(f"{'contender':34s} {'median s':>9s} {'/floor':>8s} {'/advx PGD':>10s}")
    for name, t in med.items():
        ref = {"advx FGSM": med["floor: 1 fwd+bwd"], "floor: 1 fwd+bwd": med["floor: 1 fwd+bwd"]}.get(name, floor40)
        if "C&W" in name or name == "floor: 100 fwd+bwd":
            ref = med.get("floor: 100 fwd+bwd", floor40)
        print(f"{name:34s} {t:9.3f} {t / ref:8.2f}x {t / ours:9.2f}x")


if __name__ == "__main__":
    main()
