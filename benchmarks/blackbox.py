"""Black-box attacks: success rate versus queries, and peers in the same run.

On a committed zoo model and real test images, each advx black-box attack runs
once with a per-sample budget; because every attack stops a sample when it
succeeds (decision-based ones with ``early_stop=True`` at the threat's eps),
the queries each sample spent give the whole curve "success within q queries"
from one run. Queries are the attack's own (``result.queries - 2``: the attack
contract's clean forward and final judgement are not counted).

Peers (torchattacks, Foolbox, ART), where installed, run on the same model,
images and eps; their queries are measured by a counting wrapper around the
model (forwards per sample, all included), and their success is judged by the
model on what they return, like advx's.

Usage: python benchmarks/blackbox.py [--model mnist-cnn --data mnist --n 30 --queries 1000
       --linf 0.2 --l2 2.0 --threads 1 --no-peers --only-peers --patch 10 --out runs/bench-blackbox]
Writes results.json and curves.png in --out and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from advx.attacks.boundary import Boundary
from advx.attacks.hopskipjump import HopSkipJump
from advx.attacks.nes import NES
from advx.attacks.simba import SimBA
from advx.attacks.spsa import SPSA
from advx.attacks.square import Square
from advx.data import load
from advx.model import LabelOnly, PassCounter, ScoresOnly
from advx.threat import L2, Linf
from advx.zoo import load_model

log = logging.getLogger("bench")


class Counting(PassCounter):
    """Counts the inputs a peer library evaluates (``forwards``), in float32."""

    def forward(self, x):
        return super().forward(x.to(torch.float32))  # ART's HopSkipJump hands over float64


def advx_attacks(q: int, linf: float, l2: float) -> list[tuple[str, str, object, str]]:
    """(name, threat label, attack, view) with about q queries per sample each."""
    per_step = 2 * 16 + 1
    return [
        ("Square", f"Linf {linf}", Square(Linf(linf), queries=q), "scores"),
        ("SimBA (pixel)", f"Linf {linf}", SimBA(Linf(linf), queries=q, basis="pixel"), "scores"),
        ("SPSA (16 pairs)", f"Linf {linf}", SPSA(Linf(linf), steps=max(1, (q - 1) // per_step), samples=16), "scores"),
        ("NES (16 pairs)", f"Linf {linf}", NES(Linf(linf), steps=max(1, (q - 1) // per_step), samples=16,
                                               loss="margin"), "scores"),
        ("HopSkipJump", f"Linf {linf}", HopSkipJump(Linf(linf), queries=q, early_stop=True), "labels"),
        ("Square", f"L2 {l2}", Square(L2(l2), queries=q), "scores"),
        ("SimBA (DCT)", f"L2 {l2}", SimBA(L2(l2), queries=q, basis="dct"), "scores"),
        ("HopSkipJump", f"L2 {l2}", HopSkipJump(L2(l2), queries=q, early_stop=True), "labels"),
        ("Boundary", f"L2 {l2}", Boundary(L2(l2), queries=q, early_stop=True), "labels"),
    ]


def run_advx(model, x, y, q, linf, l2, grid):
    rows, curves = [], {}
    right = model(x).argmax(1) == y
    for name, threat, attack, view in advx_attacks(q, linf, l2):
        api = ScoresOnly(model) if view == "scores" else LabelOnly(model)
        t0 = time.perf_counter()
        res = attack(api, x, y)
        secs = time.perf_counter() - t0
        spent = (res.queries - 2).clamp_min(0)
        ok = res.success & right
        curve = [float((ok & (spent <= g)).sum() / right.sum()) for g in grid]
        curves[f"{name}, {threat}"] = curve
        rows.append({
            "impl": "advx", "attack": name, "threat": threat, "view": view,
            "success": float(ok.sum() / right.sum()),
            "median_queries_success": float(spent[ok].float().median()) if ok.any() else None,
            "mean_queries": float(spent[right].float().mean()), "max_queries": int(spent.max()),
            "gradients": int(res.gradients.sum()), "seconds": secs,
        })
        log.info("%s %s: %.3f in %.1f s", name, threat, rows[-1]["success"], secs)
    return rows, curves


@torch.no_grad()
def _peer_row(impl, name, threat, model, counting, x, y, x_adv, secs, dist_ok=None):
    right = model(x).argmax(1) == y
    fooled = (model(x_adv).argmax(1) != y) & right
    if dist_ok is not None:
        fooled &= dist_ok
    return {"impl": impl, "attack": name, "threat": threat, "view": "scores" if "Square" in name else "labels",
            "success": float(fooled.sum() / right.sum()), "median_queries_success": None,
            "mean_queries": counting.forwards / len(x), "max_queries": None, "gradients": None, "seconds": secs}


def run_peers(model, x, y, q, linf, l2):
    rows = []
    try:  # torchattacks Square, Linf
        import torchattacks  # noqa: PLC0415

        counting = Counting(model).eval()
        t0 = time.perf_counter()
        adv = torchattacks.Square(counting, norm="Linf", eps=linf, n_queries=q, n_restarts=1, p_init=0.8,
                                  loss="margin", seed=0)(x, y)
        rows.append(_peer_row("torchattacks", "Square", f"Linf {linf}", model, counting, x, y, adv,
                              time.perf_counter() - t0))
    except Exception as e:  # noqa: BLE001 -- a peer failing must not stop the benchmark
        log.warning("torchattacks skipped: %s", e)
    try:  # Foolbox HopSkipJump, L2 (steps chosen to spend about q queries)
        import foolbox as fb  # noqa: PLC0415

        counting = Counting(model).eval()
        fmodel = fb.PyTorchModel(counting, bounds=(0, 1))
        # the same start as advx's fallback: the closest test image of another true class
        dist = torch.cdist(x.flatten(1), x.flatten(1)).masked_fill(y[:, None] == y[None, :], float("inf"))
        attack = fb.attacks.HopSkipJumpAttack(steps=max(1, q // 200), constraint="l2")
        t0 = time.perf_counter()
        _, clipped, _ = attack(fmodel, x, fb.criteria.Misclassification(y), epsilons=[l2],
                               starting_points=x[dist.argmin(1)])
        rows.append(_peer_row("foolbox", "HopSkipJump", f"L2 {l2}", model, counting, x, y, clipped[0],
                              time.perf_counter() - t0))
    except Exception as e:  # noqa: BLE001
        log.warning("foolbox skipped: %s", e)
    try:  # ART Square (Linf) and HopSkipJump (L2)
        from art.attacks.evasion import HopSkipJump as ArtHSJ  # noqa: PLC0415
        from art.attacks.evasion import SquareAttack  # noqa: PLC0415
        from art.estimators.classification import PyTorchClassifier  # noqa: PLC0415

        for name, threat in (("Square", "linf"), ("HopSkipJump", "l2")):
            counting = Counting(model).eval()
            clf = PyTorchClassifier(counting, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                    nb_classes=10, clip_values=(0.0, 1.0))
            if name == "Square":
                attack = SquareAttack(clf, norm=np.inf, eps=linf, max_iter=q, p_init=0.8, nb_restarts=1,
                                      verbose=False)
            else:
                attack = ArtHSJ(clf, norm=2, max_iter=max(1, q // 200), max_eval=10000, init_eval=100,
                                verbose=False)
            t0 = time.perf_counter()
            adv = torch.from_numpy(attack.generate(x.numpy(), y=y.numpy()))
            secs = time.perf_counter() - t0
            dist_ok = (adv - x).flatten(1).norm(dim=1) <= l2 * (1 + 1e-5) if threat == "l2" else None
            label = f"Linf {linf}" if threat == "linf" else f"L2 {l2}"
            rows.append(_peer_row("ART", name, label, model, counting, x, y, adv, secs, dist_ok))
    except Exception as e:  # noqa: BLE001
        log.warning("ART skipped: %s", e)
    return rows


def run_patch(model, data_name: str, size: int, steps: int, target: int) -> dict:
    """Adversarial patch: trained on 500 training images, evaluated on 200 held-out ones x 5 placements."""
    from advx.model.eot import AdversarialPatch  # noqa: PLC0415

    train, test = load(data_name, "train", n=500), load(data_name, "test", n=200, seed=1)
    patch = AdversarialPatch(target=target, size=size, steps=steps, lr=0.05, batch_size=32)
    t0 = time.perf_counter()
    patch.fit(model, train.x)
    result = patch.evaluate(model, test.x, placements=5)
    result.update(size=size, steps=steps, seconds=time.perf_counter() - t0,
                  area=size * size / test.x[0, 0].numel())
    return result


def plot(curves, grid, path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for key, curve in curves.items():
        ax = axes[0] if "Linf" in key else axes[1]
        ax.plot(grid, curve, label=key.split(",")[0])
    for ax, title in zip(axes, ("Linf", "L2")):
        ax.set_xscale("log")
        ax.set_xlabel("queries per sample")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("success rate (clean-correct images)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist-cnn")
    p.add_argument("--data", default="mnist")
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--linf", type=float, default=0.2)
    p.add_argument("--l2", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--only-peers", action="store_true")
    p.add_argument("--patch", type=int, default=0, metavar="SIZE",
                   help="also train and evaluate an adversarial patch of SIZE x SIZE pixels (target class 3)")
    p.add_argument("--patch-steps", type=int, default=300)
    p.add_argument("--out", default="runs/bench-blackbox")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    data = load(args.data, "test", n=args.n)
    x, y = data.x, data.y
    grid = sorted({int(v) for v in np.unique(np.geomspace(1, args.queries, 25).round())})
    rows, curves = [], {}
    if not args.only_peers:
        with torch.no_grad():
            rows, curves = run_advx(model, x, y, args.queries, args.linf, args.l2, grid)
    if not args.no_peers:
        rows += run_peers(model, x, y, args.queries, args.linf, args.l2)
    patch = run_patch(model, args.data, args.patch, args.patch_steps, target=3) if args.patch else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "data": data.source, "n": args.n, "queries": args.queries,
              "torch_threads": args.threads, "rows": rows, "grid": grid, "curves": curves, "patch": patch}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    if curves:
        plot(curves, grid, out / "curves.png")
    print(f"{args.model} on {args.n} {args.data} test images, budget {args.queries} queries per sample")
    print(f"{'impl':<13}{'attack':<17}{'threat':<11}{'view':<7}{'success':>8}{'med q':>8}{'mean q':>9}{'sec':>8}")
    for r in rows:
        med = "-" if r["median_queries_success"] is None else f"{r['median_queries_success']:.0f}"
        print(f"{r['impl']:<13}{r['attack']:<17}{r['threat']:<11}{r['view']:<7}{r['success']:>8.3f}{med:>8}"
              f"{r['mean_queries']:>9.0f}{r['seconds']:>8.1f}")
    if patch:
        print(f"patch {patch['size']}x{patch['size']} ({patch['area']:.0%} of the image), {patch['steps']} steps: "
              f"target-class rate {patch['target_rate']:.3f} on held-out images and placements, random patch "
              f"{patch['random_patch_rate']:.3f}, clean {patch['clean_rate']:.3f}")
    print(f"wrote {out / 'results.json'} and {out / 'curves.png'}")


if __name__ == "__main__":
    main()
