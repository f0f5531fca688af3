"""``advx evaluate``: honest robust accuracy (worst case over an attack ensemble) with trust checks."""

from __future__ import annotations

import logging
import os

import click

from advx.cli.options import RunOptions, run_options

log = logging.getLogger(__name__)

ADAPTIVE_EOT = 8  #: EOT passes --adaptive uses for a randomised defense when --eot is not given

EXAMPLE = """\b
Examples:
  advx evaluate --model fmnist-cnn --data fashion-mnist --threat linf:0.1,0.2 --n 1000
  advx evaluate --model fmnist-cnn --data fashion-mnist --threat linf:0.1 --attacks fast --out runs/ev --resume
  advx evaluate --model fmnist-cnn --data fashion-mnist --threat linf:0.1 --defense jpeg:75 --adaptive
  torchrun --nproc-per-node 2 -m advx evaluate --model fmnist-cnn --data fashion-mnist --threat linf:0.1 -n 1000

\b
--attacks: standard (cheap and strong: APGD-CE, MALT-ranked APGD-T on 2 targets, FAB-T near the boundary,
Square on a sample of the survivors -- on all once it breaks one), autoattack (AutoAttack's standard ensemble
exactly: APGD-CE, APGD-T 9 targets, FAB-T, Square 5000), thorough (autoattack + MALT APGD-T 3 targets x 2
restarts), fast (APGD-CE + APGD-T, 25 iterations), or names: apgd-ce, apgd-dlr, apgd-t, malt, fab-t, square,
pgd, fgsm (apgd-*:STEPS sets iterations). --budget PASSES stops spending there and says what was not run.
Checks (all by default): gradients, randomness, probabilities, black_box, unbounded, monotone, convergence.
Interrupted? Run the same command with --resume: finished batches are kept in --out.
"""


def _checks(value: str) -> bool | list[str]:
    v = value.strip().lower()
    if v == "all":
        return True
    if v == "none":
        return False
    return [c.strip() for c in v.split(",") if c.strip()]


def _defended(net, defense: str | None, adaptive: bool, eot: int | None, bounds: tuple[float, float]):
    """The model behind --defense's transforms (BPDA/EOT-adapted with --adaptive), and the EOT passes to use."""
    if defense is None:
        if adaptive:
            raise click.BadParameter("--adaptive needs --defense, e.g. --defense jpeg:75 --adaptive",
                                     param_hint="--adaptive")
        return net, eot
    from advx.defenses import Defended, GaussianNoise, bpda, parse_transforms

    try:
        transforms = parse_transforms(defense, bounds=bounds)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--defense") from None
    net = Defended(net, *transforms)
    if not adaptive:
        return net, eot
    if eot is None and any(isinstance(t, GaussianNoise) for t in transforms):
        eot = ADAPTIVE_EOT
        log.info("--adaptive: averaging the noisy model over %d passes (EOT); set --eot to change", eot)
    return bpda(net), eot


@click.command(epilog=EXAMPLE, context_settings={"max_content_width": 110})
@click.option("--model", "model", default="fmnist-cnn", show_default=True, help="Zoo name, .safetensors/.pt2 file, module:function (from the working directory) or hf:DIR_OR_ID.")
@click.option("--data", "data", default=None, help="fashion-mnist, mnist, cifar10, cifar100, an image folder (root/<class>/*.png) or a .npz/.safetensors file [default: a zoo model's own data set].")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--threat", "threats", multiple=True, required=True,
              help="NORM:EPS[,EPS...], e.g. linf:0.1,0.2 (repeatable).")
@click.option("--attacks", default="standard", show_default=True,
              help="standard, autoattack, thorough, fast, or comma-separated names.")
@click.option("--budget", type=click.IntRange(min=1), default=None, metavar="PASSES",
              help="Hard limit on model passes (forward + backward samples) after the clean forward; the report "
                   "says how far it got and which attacks/points were not run.")
@click.option("--eot", type=click.IntRange(min=1), default=None, help="Average a randomised model over N passes.")
@click.option("--checks", "checks", default="all", show_default=True, help="all, none, or comma-separated names.")
@click.option("--probe-points", type=click.IntRange(min=0), default=16, show_default=True,
              help="Points per batch probed by the unbounded and convergence checks.")
@click.option("--defense", default=None, metavar="SPEC",
              help="Evaluate the model behind input transformations: bit-depth:BITS, median:SIZE, jpeg:QUALITY, "
                   "noise:SIGMA, comma-separated (applied left to right).")
@click.option("--adaptive", is_flag=True,
              help="With --defense: attack through the transformations adaptively (BPDA for bit depth and JPEG, "
                   "EOT over --eot passes, default 8, for noise; Athalye et al. 2018).")
@click.option("--strict", is_flag=True, help="Exit with status 1 when a check fires.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@run_options(out="runs/evaluate", n=1000, batch_size=250,
             n_help="Number of points (class-stratified, seeded). torchrun's own parser rejects --n as an "
                    "ambiguous abbreviation of its options.",
             batch_help="Points per batch: the unit of checkpoints, resume and sharding.",
             device_help="cpu, cuda (under torchrun: cuda:LOCAL_RANK) ...")
def command(model: str, data: str, split: str, threats: tuple[str, ...], attacks: str, budget: int | None,
            eot: int | None, checks: str,
            probe_points: int, defense: str | None, adaptive: bool, strict: bool, no_progress: bool,
            run: RunOptions) -> None:
    """Robust accuracy, worst case over an attack ensemble, with checks that flag untrustworthy numbers."""
    from rich.console import Console

    from advx.cli.inputs import check_threats, default_data, load_model_and_data
    from advx.jobs.evaluate import evaluate
    from advx.threat import parse_threat

    device, n, seed, out = run.device, run.n, run.seed, run.out
    data = default_data(model, data)
    if device.startswith("cuda") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    net, model_meta, ds = load_model_and_data(model, data, split, run, device=device)
    bounds = tuple(getattr(ds, "bounds", (0.0, 1.0)))
    parsed = [t for spec in threats for t in parse_threat(spec, bounds=bounds)]
    check_threats(parsed, ds, run)
    net, eot = _defended(net, defense, adaptive, eot, bounds)
    description = {"model": model, "data": data, "split": split, "n": n, "source": getattr(ds, "source", data),
                   **({"defense": defense, "adaptive": adaptive} if defense else {}),
                   "model_info": model_meta.get("info", {})}
    report = evaluate(
        net, ds, parsed, attacks=attacks, batch_size=run.batch_size, out_dir=str(out), resume=run.resume,
        overwrite=run.overwrite, eot=eot, seed=seed, progress=not no_progress, checks=_checks(checks), device=device,
        probe_points=probe_points, description=description, budget=budget,
        allow_large_eps=bool(run.extra.get("allow_large_eps")),
        model_spec={"spec": model, "info": model_meta.get("info", {}),
                    **({"defense": defense, "adaptive": adaptive} if defense else {})},
        data_spec={"spec": data, "name": getattr(ds, "name", data), "split": getattr(ds, "split", split),
                   "source": getattr(ds, "source", data), "seed": seed, "classes": list(getattr(ds, "classes", []))},
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return
    console = Console() if Console().is_terminal else Console(width=130)
    report.print(console)
    console.print(f"report: {out / 'report.html'}  ·  numbers: {out / 'results.json'}", highlight=False)
    if strict and report.flags:
        raise click.ClickException(f"checks fired: {', '.join(report.flags)}")
