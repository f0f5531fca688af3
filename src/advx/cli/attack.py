"""``advx attack``: attack a model on real data; write adversarial examples, results.json and report.html."""

from __future__ import annotations

import logging
from typing import Any

import click

from advx.cli.options import RunOptions, main_process, run_options

log = logging.getLogger(__name__)


def _split_list(values: tuple[str, ...]) -> list[str]:
    out = [v.strip() for value in values for v in value.split(";") if v.strip()]
    return out


def parse_jobs(attacks: tuple[str, ...], threats: tuple[str, ...], bounds=(0.0, 1.0)) -> list[tuple[str, list]]:
    """--attack a,b and --threat specs -> [(attack, [threat, ...]), ...], every attack with every threat.

    A threat spec may hold several radii (``linf:0.1,0.2``): one row each. Attacks
    that do not support a norm are paired only with the norms they support; an
    attack left with no threat at all is an error.
    """
    from advx.attacks import registry  # noqa: PLC0415
    from advx.threat import parse_threat  # noqa: PLC0415

    names = [a.strip().lower() for value in attacks for a in value.split(",") if a.strip()]
    if not names:
        raise ValueError("--attack: name at least one attack, e.g. --attack pgd")
    known = registry.attacks()
    for a in names:
        if a not in known:
            raise ValueError(f"--attack {a!r} is unknown; use one of {', '.join(known)} (see `advx attacks`)")
    parsed = [t for spec in _split_list(threats) for t in parse_threat(spec, bounds=bounds)]
    if not parsed:
        raise ValueError("--threat: give at least one threat, e.g. --threat linf:0.1")
    jobs = []
    for a in dict.fromkeys(names):
        info = known[a]
        ok = [t for t in parsed if info.supports(t)]
        if not ok:
            norms = sorted({t.norm_name for t in parsed})
            raise ValueError(f"--attack {a} supports {', '.join(info.threats)} threats, not {', '.join(norms)}; "
                             f"add e.g. --threat {info.threats[0]}:...")
        jobs.append((a, ok))
    return jobs


def print_summary(results: dict[str, Any], console=None) -> None:
    """The short terminal table: one row per (attack, radius)."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from advx.report import table_rows  # noqa: PLC0415

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough that no cell wraps
            console = Console(width=120)
    data = results["data"]
    table = Table(title=f"{results['model'].get('spec', 'model')} on {data.get('name')} "
                        f"({results['clean']['n']} samples)", title_justify="left")
    table.add_column("attack")
    table.add_column("threat")
    for head in ("clean acc", "robust acc", "success rate", "median ‖δ‖", "grad evals/sample", "time"):
        table.add_column(head, justify="right")
    for row in table_rows(results):
        c = row["cells"]
        name = row["attack"] + (" *" if row["shared_with"] else "")
        table.add_row(name, f"{row['norm']} {row['eps']:g}", *(c[k][1] for k in (
            "clean_accuracy", "robust_accuracy", "attack_success_rate", "median_distance",
            "gradient_evaluations_per_sample", "time_s")))
    console.print(table)
    if any(r["shared_with"] for r in results["runs"]):
        console.print("* minimum-norm attack run once at the largest radius; smaller radii reuse that run")
    if results.get("targeting"):
        console.print(f"targeted ({results['targeting']['description']}): success rate = reached the target",
                      highlight=False)
    console.print(f"data: {data.get('source')}", highlight=False)


def load_model_spec(spec: str, device: str, *, mean=None, std=None):
    """advx.model.load_model_with_info with its metadata; unknown names are bad usage (ValueError)."""
    from advx.cli.inputs import model_spec_meta  # noqa: PLC0415

    return model_spec_meta(spec, device, mean=mean, std=std)


def run_and_save(*, model: str, data: str, split: str, jobs, steps: int | None, restarts: int | None,
                 run: RunOptions, command: str = "attack", examples: int = 8, report: bool = True,
                 attack_options: dict | None = None, quiet: bool = False, target: str | None = None,
                 queries: int | None = None) -> dict[str, Any]:
    """Load, attack, save into ``run.out``; returns results.json's content (shared by ``attack`` and ``demo``)."""
    from advx.cli.inputs import check_threats, load_model_and_data  # noqa: PLC0415
    from advx.jobs.attack import run_experiment  # noqa: PLC0415

    net, model_meta, ds = load_model_and_data(model, data, split, run)
    check_threats([t for _, ts in jobs for t in ts], ds, run)
    data_meta = {"name": getattr(ds, "name", data), "split": getattr(ds, "split", split), "spec": data,
                 "seed": run.seed}
    exp = run_experiment(net, ds, jobs, steps=steps, restarts=restarts, batch_size=run.batch_size, seed=run.seed,
                         device=run.device, model_meta=model_meta, data_meta=data_meta,
                         attack_options=attack_options, target=target, out=run.out, resume=run.resume,
                         overwrite=run.overwrite, command=command, examples=examples, queries=queries,
                         show_progress=not quiet, allow_large_eps=bool(run.extra.get("allow_large_eps")))
    if not report:
        (run.out / "report.html").unlink(missing_ok=True)
    return exp.output.results


EXAMPLE = """\b
Examples:
  advx attack --model fmnist-cnn --data fashion-mnist --attack pgd --threat linf:0.1 --n 1000 --out runs/x
  advx attack --model fmnist-cnn --data fashion-mnist --attack fgsm,pgd --threat linf:0.05,0.1,0.2 --n 500
  advx attack --model mymodel.safetensors --data my_data.npz --attack cw --threat l2:1.0,2.0 --n 200
  advx attack --model fmnist-cnn --data fashion-mnist --attack pgd,cw --threat l2:1,2 --target least-likely -n 200
  advx attack --model mnist-cnn --data mnist --attack hopskipjump,square --threat l2:2 --queries 200 -n 10

\b
Attacks: every name of `advx attacks` (the registry: gradient, minimum-norm, score-based, decision-based,
transfer). Score- and decision-based ones (square, simba, nes, spsa, hopskipjump, boundary) see only the
model's scores or labels; --queries N is their hard per-sample budget.
Threats: NORM:EPS[,EPS...] with NORM in linf, l2, l1, l0 -- each radius is one row.
--target: every attack aims at a class: random (seeded, never the label), least-likely (lowest clean logit)
or a class index; success then means reaching it. Samples whose label is the target are not attacked
and not counted in the success rate. deepfool is untargeted only.
--model: a zoo name (fmnist-cnn, mnist-cnn), a .safetensors file with its JSON sidecar, a .pt2 archive,
module:function returning an nn.Module (./module.py first, like python -m), or hf:DIR_OR_ID (a Hugging
Face image classifier); --mean/--std for a model that expects normalised input. --data: fashion-mnist,
mnist, cifar10, cifar100, an image folder root/<class>/*.png (--resize/--center-crop), or a
.safetensors/.npz file with x (N, ...) in [0, 1] or uint8 (NCHW or NHWC) and integer labels y.
Your own attack: --import MODULE, then --attack NAME (docs/extending.md).
"""


@click.command(epilog=EXAMPLE, context_settings={"max_content_width": 110})
@click.option("--model", "model", default="fmnist-cnn", show_default=True, help="Zoo name, .safetensors/.pt2 file, module:function (from the working directory) or hf:DIR_OR_ID.")
@click.option("--data", "data", default=None, help="fashion-mnist, mnist, cifar10, cifar100, an image folder (root/<class>/*.png) or a .npz/.safetensors file [default: a zoo model's own data set].")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--attack", "attacks", multiple=True, default=("pgd",), show_default=True,
              help="Attack name(s), comma-separated or repeated.")
@click.option("--threat", "threats", multiple=True, required=True,
              help="NORM:EPS[,EPS...], e.g. linf:0.1,0.2 (repeatable).")
@click.option("--target", "target", default=None, metavar="random|least-likely|CLASS",
              help="Targeted attacks: random class, least-likely class, or a class index (default: untargeted).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Iterations of the attacks whose budget has steps (pgd, bim, apgd-*, malt, ...; default: theirs).")
@click.option("--restarts", type=click.IntRange(min=1), default=None, help="Restarts of the attacks whose budget has restarts (pgd, apgd-*, square ...; default: theirs).")
@click.option("--queries", type=click.IntRange(min=1), default=None,
              help="Hard query budget per sample of the score- and decision-based attacks.")
@click.option("--examples", type=click.IntRange(min=0), default=8, show_default=True,
              help="Samples shown in the report's example grid.")
@click.option("--no-report", is_flag=True, help="Write results.json and the tensors only.")
@run_options(out="runs/attack", n=1000, batch_size=256)
def command(model: str, data: str, split: str, attacks: tuple[str, ...], threats: tuple[str, ...],
            target: str | None, steps: int | None, restarts: int | None, queries: int | None, examples: int,
            no_report: bool, run: RunOptions) -> None:
    """Attack a model on real data; write adversarial examples, results.json and an HTML report."""
    from advx.cli.inputs import default_data  # noqa: PLC0415
    from advx.jobs.attack import require_targetable  # noqa: PLC0415
    from advx.jobs.targets import Targeting  # noqa: PLC0415

    data = default_data(model, data)
    jobs = parse_jobs(attacks, threats)
    targeting = Targeting.parse(target)
    if targeting is not None:
        require_targetable([a for a, _ in jobs])
    quiet = logging.getLogger().level > logging.INFO
    results = run_and_save(model=model, data=data, split=split, jobs=jobs, steps=steps, restarts=restarts,
                           run=run, examples=examples, report=not no_report, quiet=quiet,
                           target=None if targeting is None else targeting.spec, queries=queries)
    if not main_process():
        return
    print_summary(results)
    out = run.out
    where = out / ("report.html" if not no_report else "results.json")
    click.echo(f"wrote {out}/adversarial.safetensors, {out}/results.json" + ("" if no_report else f", {where}"))
