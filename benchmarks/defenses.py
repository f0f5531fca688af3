"""Defenses x attacks on Fashion-MNIST: which defenses hold, and which only hide gradients.

One command produces the README table
(``python benchmarks/defenses.py --skip detection,smoothing``, ~30 min on one CPU
thread). Every defense is attacked twice on the same test points:

* **as is** -- PGD-40 (cross-entropy) and ``advx.evaluate`` (preset ``standard``:
  APGD-CE, APGD-T, FAB-T, Square 5000, with all trust checks; ``--ensemble fast``
  for APGD-CE + APGD-T only) on the defended model, the way a defense's authors
  would often evaluate it;
* **adaptively** (Athalye, Carlini & Wagner 2018) -- BPDA through the
  non-differentiable transforms (bit depth, JPEG: ``advx.defenses.bpda``), EOT
  over the randomness (Gaussian noise: ``advx.defenses.EOT`` for PGD,
  ``evaluate(eot=...)`` for the ensemble), the margin loss for distillation.

Rows: the committed standard ``fmnist-cnn``, the committed adversarially trained
``fmnist-cnn-at`` (FGSM-RS, eps 0.1), a distilled ``lenet`` (T = 100, trained and
cached by ``benchmarks/distillation.py``'s recipe), and ``fmnist-cnn`` behind
bit-depth reduction, a 2x2 median filter, JPEG and Gaussian noise. Then
smaller tables: the feature-squeezing detector (Xu et al. 2018; on MNIST with
their squeezers, and on Fashion-MNIST) against FGSM, PGD, C&W and an attack
that also evades it (Linf and L2); and
randomized smoothing (Cohen et al. 2019): certified accuracy versus L2 radius of
a noise-trained ``lenet`` (trained and cached here).

Usage: python benchmarks/defenses.py [--n 200] [--eps 0.1] [--threads 2] [--cache runs/bench-defenses]
       [--ensemble fast|standard] [--skip detection,smoothing] [--figure runs/bench-defenses/smoothing.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from advx import evaluate
from advx.attacks import FGSM, PGD
from advx.attacks.cw import CarliniWagnerL2
from advx.data import load
from advx.defenses import (
    EOT,
    JPEG,
    BitDepth,
    Defended,
    FeatureSqueezingDetector,
    GaussianNoise,
    MedianFilter,
    bpda,
    certified_accuracy,
    certify,
    evade_detector,
    roc_auc,
)
from advx.defenses.loop import TrainConfig, accuracy, train
from advx.threat import L2, Linf
from advx.zoo import build, load_model, save_model

sys.path.insert(0, str(Path(__file__).parent))
import distillation  # noqa: E402 -- the distilled model's recipe and cache

EOT_DRAWS = 8


def rows_spec(args):
    """(name, model as is, model attacked adaptively or None, PGD loss of the adaptive attack, eot draws)."""
    standard, robust = load_model("fmnist-cnn"), load_model("fmnist-cnn-at")
    distilled = distillation.distilled_model(argparse.Namespace(
        cache="runs/bench-distillation", temperature=100.0, n_train=10000, epochs=5, lr=1e-2))
    squeeze, jpeg = Defended(standard, BitDepth(3)), Defended(standard, JPEG(75))
    noise = Defended(standard, GaussianNoise(0.1))
    return [
        ("standard (`fmnist-cnn`)", standard, None, "ce", None),
        ("FGSM-RS adversarial training, eps 0.1 (`fmnist-cnn-at`)", robust, None, "ce", None),
        ("defensive distillation, T = 100", distilled, distilled, "margin", None),
        ("bit depth 3 (feature squeezing)", squeeze, bpda(squeeze), "ce", None),
        ("median filter 2x2", Defended(standard, MedianFilter(2)), None, "ce", None),
        ("JPEG quality 75", jpeg, bpda(jpeg), "ce", None),
        ("Gaussian noise sigma 0.1", noise, EOT(noise, EOT_DRAWS), "ce", EOT_DRAWS),
    ]


def attack_table(args) -> None:
    test = load("fashion-mnist", "test", n=args.n, seed=0)
    x, y, threat = test.x, test.y, Linf(args.eps)
    key = f"linf:{args.eps:g}"
    print(f"\n### Fashion-MNIST, {args.n} test points, Linf eps = {args.eps:g}, ensemble `{args.ensemble}`: accuracy "
          "(robust accuracy under attack)\n")
    print("| defense | clean | PGD-40 as is | PGD-40 adaptive | ensemble as is | ensemble adaptive | flags (as is) |")
    print("|---|---|---|---|---|---|---|")
    for name, model, adaptive, loss, eot in rows_spec(args):
        t0 = time.perf_counter()
        torch.manual_seed(0)
        clean = accuracy(model, x, y)
        pgd_plain = PGD(threat, steps=40)(model, x, y).robust_accuracy()
        as_is = evaluate(model, (x, y), threat, attacks=args.ensemble, progress=False, seed=0)
        if adaptive is None:
            pgd_adaptive, ens_adaptive = "=", "="
        else:
            if isinstance(adaptive, EOT):  # judge by the averaged (deployed-in-expectation) classifier
                pgd_adaptive = PGD(threat, steps=40, loss=loss)(adaptive, x, y).robust_accuracy()
                ens = evaluate(adaptive.model, (x, y), threat, attacks=args.ensemble, progress=False, seed=0, eot=eot,
                               checks=False)
            else:
                pgd_adaptive = PGD(threat, steps=40, loss=loss)(adaptive, x, y).robust_accuracy()
                ens = evaluate(adaptive, (x, y), threat, attacks=args.ensemble, progress=False, seed=0, checks=False)
            pgd_adaptive, ens_adaptive = f"{pgd_adaptive:.1%}", f"{ens.robust_accuracy(key):.1%}"
        flags = ", ".join(as_is.flags) or "none"
        print(f"| {name} | {clean:.1%} | {pgd_plain:.1%} | {pgd_adaptive} | {as_is.robust_accuracy(key):.1%} "
              f"| {ens_adaptive} | {flags} |", flush=True)
        print(f"<!-- {name}: {time.perf_counter() - t0:.0f} s -->", file=sys.stderr)


def detection_table(args, data_name: str, model_name: str, bits: int, eps: float, l2_eps: float) -> None:
    data = load(data_name, "test", n=args.n + 300, seed=0)
    model = load_model(model_name)
    clean, x, y = data.x[:300], data.x[300:], data.y[300:]
    detector = FeatureSqueezingDetector(model, [BitDepth(bits), MedianFilter(2)])
    threshold = detector.fit(clean, fpr=0.05)
    clean_scores = detector.score(clean)
    print(f"\n### Feature-squeezing detector, {data_name} (`{model_name}`; bit depth {bits} + median 2x2; threshold "
          f"{threshold:.3f} flags 5% of 300 clean images); {args.n} attacked points\n")
    print("| attack | fools the model | ROC AUC | detected at 5% FPR | fools the model undetected |")
    print("|---|---|---|---|---|")
    attacks = {f"FGSM, Linf {eps:g}": FGSM(Linf(eps)), f"PGD-40, Linf {eps:g}": PGD(Linf(eps), steps=40),
               "C&W L2 (unbounded)": CarliniWagnerL2(L2(100.0), steps=100, binary_search_steps=5)}
    results = {name: attack(model, x, y).x_adv for name, attack in attacks.items()}
    for threat in (Linf(eps), L2(l2_eps)):
        name = f"adaptive (K+1 logits, BPDA), {type(threat).__name__} {threat.eps:g}"
        results[name] = evade_detector(detector, x, y, threat, steps=100)
    for name, x_adv in results.items():
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != y
        detected = detector.detect(x_adv)
        auc = roc_auc(clean_scores, detector.score(x_adv[fooled])) if bool(fooled.any()) else float("nan")
        rate = float(detected[fooled].float().mean()) if bool(fooled.any()) else float("nan")
        print(f"| {name} | {fooled.float().mean():.1%} | {auc:.3f} | {rate:.1%} | {(fooled & ~detected).float().mean():.1%} |",
              flush=True)


def smoothing_table(args) -> None:
    cache = Path(args.cache)
    path = cache / "noise-0.25.safetensors"
    if path.exists():
        model = load_model(path)
    else:
        torch.manual_seed(0)
        model = build("lenet")
        config = TrainConfig(epochs=4, batch_size=128, seed=0, defense="noise", defense_options={"sigma": 0.25})
        train(model, load("fashion-mnist", "train", n=20000, seed=0), config)
        save_model(model, path, "lenet", {"defense": "noise", "sigma": 0.25, "train_samples": 20000, "epochs": 4})
    test = load("fashion-mnist", "test", n=args.n_certify, seed=0)
    radii = [0.0, 0.25, 0.5, 0.75]
    cert = certify(model, test.x, 0.25, n0=100, n=args.n_samples, alpha=0.001,
                   generator=torch.Generator().manual_seed(0))
    curve = certified_accuracy(cert, test.y, radii)
    print(f"\n### Randomized smoothing on Fashion-MNIST (`lenet` trained with noise sigma 0.25; n = {args.n_samples}, "
          f"alpha = 0.001; {args.n_certify} test points; abstained: {(cert.prediction < 0).float().mean():.0%})\n")
    print("| L2 radius | " + " | ".join(f"{r:g}" for r in radii) + " |")
    print("|---|" + "---|" * len(radii))
    print("| certified accuracy | " + " | ".join(f"{a:.1%}" for a in curve) + " |")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grid = torch.linspace(0, float(cert.radius.max()) + 0.05, 200).tolist()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(grid, certified_accuracy(cert, test.y, grid))
        ax.set_xlabel("L2 radius")
        ax.set_ylabel("certified accuracy")
        ax.set_title(f"Randomized smoothing, sigma 0.25 (n = {args.n_samples})")
        fig.tight_layout()
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="test points attacked")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--n-certify", type=int, default=200, help="test points certified")
    p.add_argument("--n-samples", type=int, default=10000, help="noise samples per certified point")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default="runs/bench-defenses")
    p.add_argument("--ensemble", default="standard",
                   help="evaluate() attacks preset of the ensemble columns (fast: ~3x quicker)")
    p.add_argument("--skip", default="", help="comma-separated: attacks, detection, smoothing")
    p.add_argument("--figure", default=None, help="PNG of the certified-accuracy curve")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    if "attacks" not in skip:
        attack_table(args)
    if "detection" not in skip:
        detection_table(args, "mnist", "mnist-cnn", bits=1, eps=0.3, l2_eps=5.0)  # Xu et al.'s MNIST squeezers
        detection_table(args, "fashion-mnist", "fmnist-cnn", bits=3, eps=0.1, l2_eps=2.0)
    if "smoothing" not in skip:
        smoothing_table(args)


if __name__ == "__main__":
    main()
