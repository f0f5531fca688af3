"""The options every command shares: ``--out --resume --overwrite --seed -n --device --batch-size``.

One decorator, :func:`run_options`, adds them to a click command and hands the
command one :class:`RunOptions` as its ``run`` argument (instead of seven keyword
arguments), so a new shared option is one entry in :data:`SHARED` plus one field::

    @click.command()
    @click.option("--model", required=True)
    @run_options(out="runs/mine", n=1000, batch_size=256)
    def command(model: str, run: RunOptions) -> None:
        job = MyJob(model, seed=run.seed, n=run.n, batch_size=run.batch_size, device=run.device)
        run_job(job, run.out, resume=run.resume, overwrite=run.overwrite)

Options added by another part of advx (e.g. ``--mean/--std``) go into
:data:`SHARED` as ``(name, factory)``; their values arrive in ``run.extra[name]``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from advx.cli.inputs import SHARED_OPTIONS

__all__ = ["RunOptions", "run_options", "SHARED", "check_device", "main_process"]


@dataclass
class RunOptions:
    """The shared options' values."""

    out: Path
    resume: bool = False
    overwrite: bool = False
    seed: int = 0
    n: int | None = None
    device: str = "cpu"
    batch_size: int = 256
    extra: dict[str, Any] = field(default_factory=dict)


def check_device(value: str) -> str:
    """``--device``: a torch device that exists here (cpu, cuda, cuda:1, mps ...), else a usage error."""
    import torch  # noqa: PLC0415

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise click.BadParameter(f"{value!r} is not a device; use cpu, cuda, cuda:1, mps ...",
                                 param_hint="--device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise click.BadParameter(f"{value!r}: CUDA is not available on this machine; use --device cpu",
                                     param_hint="--device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise click.BadParameter(f"{value!r}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                                     param_hint="--device")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise click.BadParameter(f"{value!r}: MPS is not available on this machine; use --device cpu",
                                 param_hint="--device")
    return value


def main_process() -> bool:
    """False on the other ranks under ``torchrun``: only rank 0 prints the summary."""
    import os  # noqa: PLC0415

    return int(os.environ.get("RANK", "0")) == 0


def _device(ctx, param, value):
    return None if value is None else check_device(value)


#: options other parts of advx add to every command: (parameter name, factory(defaults) -> click decorator);
#: --mean/--std, --resize/--center-crop, --allow-large-eps come from advx.cli.inputs
SHARED: list[tuple[str, Callable[[dict[str, Any]], Callable]]] = [*SHARED_OPTIONS]


def run_options(*, out: str, n: int | None = 1000, batch_size: int = 256, seed: int = 0, device: str = "cpu",
                n_help: str = "Number of samples (class-stratified, seeded).",
                batch_help: str = "Samples per batch: the unit of checkpoints, resume and sharding.",
                out_help: str = "Run folder: results.json, adversarial.safetensors, report.html, checkpoints.",
                device_help: str = "cpu, cuda, cuda:1, mps ...", extra: Sequence[str] | None = None) -> Callable:
    """Add the shared options to a click command; it receives them as ``run: RunOptions``.

    ``extra``: the names of the :data:`SHARED` options this command takes (default: all of them;
    a text command leaves out the image ones, e.g. ``extra=("imports",)``).
    """
    shared = [(name, factory) for name, factory in SHARED if extra is None or name in extra]
    defaults = {"out": out, "n": n, "batch_size": batch_size, "seed": seed, "device": device}
    names = ("out", "resume", "overwrite", "seed", "n", "device", "batch_size")

    def decorate(f: Callable) -> Callable:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in names}
            more = {name: kwargs.pop(name) for name, _ in shared if name in kwargs}
            if values["resume"] and values["overwrite"]:
                raise click.UsageError("give --resume (continue the run in --out) or --overwrite (replace it), "
                                       "not both")
            return f(*args, run=RunOptions(extra=more, **values), **kwargs)

        opts = [
            click.option("--out", "out", type=click.Path(path_type=Path), default=Path(out), show_default=True,
                         help=out_help),
            click.option("--resume", is_flag=True,
                         help="Continue the run in --out (the same run: model, data and settings are checked)."),
            click.option("--overwrite", is_flag=True, help="Replace the run in --out."),
            click.option("--seed", type=int, default=seed, show_default=True, help="Every random choice derives "
                         "from it."),
            click.option("--n", "-n", "n", type=click.IntRange(min=1), default=n, show_default=n is not None,
                         help=n_help + " Under torchrun write -n."),
            click.option("--device", default=device, show_default=True, callback=_device, help=device_help),
            click.option("--batch-size", "batch_size", type=click.IntRange(min=1), default=batch_size,
                         show_default=True, help=batch_help),
            *(factory(defaults) for _, factory in shared),
        ]
        for opt in reversed(opts):
            wrapper = opt(wrapper)
        return wrapper

    return decorate
