"""``advx transfer``: a source x target matrix of transfer-attack success rates."""

from __future__ import annotations

import click

from advx.cli.options import RunOptions, main_process, run_options

TRANSFER_ATTACKS = ("mifgsm", "difgsm", "tifgsm", "pgd")


@click.command(epilog="Example:\n\n  advx transfer --models fmnist-cnn,fmnist-cnn-at --data fashion-mnist "
                      "--attack difgsm --threat linf:0.1 --n 500 --out runs/transfer")
@click.option("--models", required=True, help="Comma-separated model specs (zoo names, files, module:function).")
@click.option("--data", "data_spec", required=True, help="Data set name, image folder (root/<class>/*.png) or .npz/.safetensors file with x and y.")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--attack", type=click.Choice(TRANSFER_ATTACKS), default="mifgsm", show_default=True)
@click.option("--threat", "threat_spec", default="linf:0.1", show_default=True, help="One threat, e.g. linf:0.1.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@run_options(out="runs/transfer", n=500, batch_size=256, n_help="Number of test points (class-stratified, seeded).")
def command(models: str, data_spec: str, split: str, attack: str, threat_spec: str, steps: int, no_progress: bool,
            run: RunOptions) -> None:
    """Craft on each model, evaluate on every model: which adversarial examples transfer?"""
    from advx.attacks import DIFGSM, MIFGSM, PGD, TIFGSM  # noqa: PLC0415
    from advx.cli.inputs import check_threats, load_model_and_data, model_spec_meta  # noqa: PLC0415
    from advx.jobs import run_job  # noqa: PLC0415
    from advx.jobs.transfer import TransferJob  # noqa: PLC0415
    from advx.model.loading import check_model_fits  # noqa: PLC0415
    from advx.threat import parse_threat  # noqa: PLC0415

    specs = list(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))
    if not specs:
        raise click.BadParameter("name at least one model", param_hint="--models")
    if len(parse_threat(threat_spec)) != 1:
        raise click.BadParameter("give exactly one radius, e.g. linf:0.1", param_hint="--threat")
    first, _, data = load_model_and_data(specs[0], data_spec, split, run)
    loaded = {specs[0]: first}
    for spec in specs[1:]:  # the data once; every model checked against it (shapes, classes)
        net, meta = model_spec_meta(spec, run.device, mean=run.extra.get("mean"), std=run.extra.get("std"))
        check_model_fits(net, data.x, int(data.y.max()) + 1, model_name=f"--models {spec}",
                         data_name=f"--data {data_spec}", info=meta["info"])
        loaded[spec] = net
    threat = parse_threat(threat_spec, bounds=tuple(getattr(data, "bounds", (0.0, 1.0))))[0]
    check_threats([threat], data, run)
    make = {"mifgsm": MIFGSM, "difgsm": DIFGSM, "tifgsm": TIFGSM}.get(attack)
    atk = PGD(threat, steps=steps, seed=run.seed) if make is None else make(threat, steps=steps, seed=run.seed)
    job = TransferJob(atk, loaded, data.x, data.y, seed=run.seed, batch_size=run.batch_size, device=run.device,
                      settings={"attack": attack, "threat": str(threat), "steps": steps,
                                "description": f"{attack} {threat!r}, {steps} steps"},
                      data_spec={"spec": data_spec, "name": getattr(data, "name", data_spec),
                                 "split": getattr(data, "split", split), "source": getattr(data, "source", data_spec),
                                 "seed": run.seed})
    results = run_job(job, run.out, resume=run.resume, overwrite=run.overwrite, progress=not no_progress).results
    if not main_process():
        return
    width = max(len(s) for s in specs) + 2
    click.echo("source \\ target".ljust(width) + "".join(s[:12].rjust(14) for s in specs))
    for s, row in zip(specs, results["success"]):
        click.echo(s.ljust(width) + "".join(f"{100 * v:13.1f}%" for v in row))
    click.echo(f"report: {run.out / 'report.html'}")
