"""``advx certify``: certified L2 robustness of a Gaussian-smoothed classifier (randomized smoothing)."""

from __future__ import annotations

import click

from advx.cli.options import RunOptions, main_process, run_options

EXAMPLE = """\b
Examples:
  advx certify --model runs/noise/model.safetensors --data fashion-mnist --sigma 0.25 --n 200 --samples 10000
  advx certify --model fmnist-cnn --data fashion-mnist --sigma 0.1 --n 50 --samples 1000 --out runs/cert --resume

\b
The base model should be trained with the same noise:
  advx train --arch lenet --data fashion-mnist --defense noise --sigma 0.25 --out runs/noise/model.safetensors
Interrupted? Run the same command with --resume: finished chunks of points are kept in --out.
"""


def _radii(value: str) -> list[float]:
    try:
        radii = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers like 0,0.25,0.5, got {value!r}") from None
    if not radii or any(r < 0 for r in radii):
        raise click.BadParameter(f"expected radii >= 0 like 0,0.25,0.5, got {value!r}")
    return radii


@click.command(epilog=EXAMPLE, context_settings={"max_content_width": 110})
@click.option("--model", required=True, help="Zoo name, .safetensors/.pt2 file, module:function or hf:DIR_OR_ID: the BASE model.")
@click.option("--data", required=True, help="fashion-mnist, mnist, cifar10, cifar100, an image folder (root/<class>/*.png) or a .npz/.safetensors file.")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--sigma", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Standard deviation of the Gaussian noise (in input units).")
@click.option("--samples", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Noise samples per point for the bound (CERTIFY's n); the largest certifiable radius grows with it.")
@click.option("--n0", type=click.IntRange(min=1), default=100, show_default=True,
              help="Noise samples per point to guess the top class.")
@click.option("--alpha", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=0.001,
              show_default=True, help="Failure probability of each certificate.")
@click.option("--radii", default="0,0.25,0.5,0.75,1", show_default=True, help="Radii of the summary table.")
@click.option("--chunk", type=click.IntRange(min=1), default=10, show_default=True,
              help="Points certified between checkpoints.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@run_options(out="runs/certify", n=100, batch_size=1000, n_help="Number of test points (class-stratified, seeded).",
             batch_help="Noisy copies per forward pass.")
def command(model: str, data: str, split: str, sigma: float, samples: int, n0: int, alpha: float, radii: str,
            chunk: int, no_progress: bool, run: RunOptions) -> None:
    """Certify a Gaussian-smoothed classifier's L2 robustness (Cohen et al. 2019) and plot the curve."""
    from advx.cli.inputs import load_model_and_data
    from advx.jobs import run_job
    from advx.jobs.certify import CertifyJob

    radius_list = _radii(radii)
    net, meta, ds = load_model_and_data(model, data, split, run)
    x, y = ds.x.to(run.device), ds.y.to(run.device)
    job = CertifyJob(net, x, y, sigma, n0=n0, n=samples, alpha=alpha, radii=radius_list, seed=run.seed, chunk=chunk,
                     batch_size=run.batch_size, device=run.device,
                     model_spec={"spec": model, "info": meta.get("info", {})},
                     data_spec={"spec": data, "name": getattr(ds, "name", data), "split": getattr(ds, "split", split),
                                "source": getattr(ds, "source", data), "seed": run.seed})
    results = run_job(job, run.out, resume=run.resume, overwrite=run.overwrite, progress=not no_progress).results
    if not main_process():
        return
    table = results["table"]
    click.echo(f"base accuracy {100 * results['base_accuracy']:.1f}%  ·  smoothed (certified at radius 0) "
               f"{100 * results['smoothed_accuracy']:.1f}%  ·  abstained {100 * results['abstain_rate']:.1f}%  ·  "
               f"largest certifiable radius {results['max_certifiable_radius']:.3f}")
    click.echo("L2 radius           " + "".join(f"{r:>9g}" for r in table["radii"]))
    click.echo("certified accuracy  " + "".join(f"{100 * a:>8.1f}%" for a in table["certified_accuracy"]))
    click.echo(f"report: {run.out / 'report.html'}  ·  numbers: {run.out / 'results.json'}")
