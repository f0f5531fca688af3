"""``advx transfer``: a source x target matrix of transfer-attack success rates."""

from __future__ import annotations

import shlex
import sys

import click

TRANSFER_ATTACKS = ("mifgsm", "difgsm", "tifgsm", "pgd")


@click.command(epilog="Example:\n\n  advx transfer --models fmnist-cnn,fmnist-cnn-at --data fashion-mnist "
                      "--attack difgsm --threat linf:0.1 --n 500 --out runs/transfer")
@click.option("--models", required=True, help="Comma-separated model specs (zoo names, files, module:function).")
@click.option("--data", "data_spec", required=True, help="Data set name or .npz/.safetensors file with x and y.")
@click.option("--attack", type=click.Choice(TRANSFER_ATTACKS), default="mifgsm", show_default=True)
@click.option("--threat", "threat_spec", default="linf:0.1", show_default=True, help="One threat, e.g. linf:0.1.")
@click.option("--steps", type=int, default=10, show_default=True)
@click.option("--n", type=int, default=500, show_default=True, help="Number of test points.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", default="runs/transfer", show_default=True, help="Output folder.")
def command(models: str, data_spec: str, attack: str, threat_spec: str, steps: int, n: int, seed: int, out: str) -> None:
    """Craft on each model, evaluate on every model: which adversarial examples transfer?"""
    from advx.attacks import DIFGSM, MIFGSM, PGD, TIFGSM, transfer_matrix  # noqa: PLC0415
    from advx.experiment import load_data  # noqa: PLC0415
    from advx.threat import parse_threat  # noqa: PLC0415
    from advx.transfer_report import transfer_results, write_transfer_report  # noqa: PLC0415
    from advx.zoo import load_model  # noqa: PLC0415

    specs = [m.strip() for m in models.split(",") if m.strip()]
    if not specs:
        raise click.BadParameter("name at least one model", param_hint="--models")
    threats = parse_threat(threat_spec)
    if len(threats) != 1:
        raise click.BadParameter("give exactly one radius, e.g. linf:0.1", param_hint="--threat")
    threat = threats[0]
    make = {"mifgsm": MIFGSM, "difgsm": DIFGSM, "tifgsm": TIFGSM}.get(attack)
    atk = PGD(threat, steps=steps, seed=seed) if make is None else make(threat, steps=steps, seed=seed)
    data = load_data(data_spec, n=n, seed=seed)
    loaded = {spec: load_model(spec) for spec in specs}
    matrix = transfer_matrix(atk, loaded, loaded, data.x, data.y)
    cmd = "advx transfer " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else "advx transfer"
    results = transfer_results(matrix, attack=f"{attack} {threat!r}, {steps} steps", data=data_spec, command=cmd)
    page = write_transfer_report(results, out)
    width = max(len(s) for s in specs) + 2
    click.echo("source \\ target".ljust(width) + "".join(s[:12].rjust(14) for s in specs))
    for s, row in zip(specs, results["success"]):
        click.echo(s.ljust(width) + "".join(f"{100 * v:13.1f}%" for v in row))
    click.echo(f"report: {page}")
