"""``advx demo``: the committed Fashion-MNIST model under FGSM, PGD and C&W, with a report."""

from __future__ import annotations

import logging
import time

import click

from advx.cli.options import RunOptions, main_process, run_options

#: what the demo runs (kept small: < 1 minute on 2 CPU cores)
DEMO = {
    "model": "fmnist-cnn",
    "data": "fashion-mnist",
    "split": "test",
    "n": 300,
    "threats": {"fgsm": "linf:0.02,0.05,0.1", "pgd": "linf:0.02,0.05,0.1", "cw": "l2:0.5,1,2"},
    "steps": 20,
    # C&W with fewer, larger Adam steps: on this model, within 3% of the median distance of
    # 100 steps x 5 rounds, in a third of the time
    "attack_options": {"cw": {"steps": 50, "binary_search_steps": 4, "initial_const": 1.0, "lr": 0.05}},
}

EXAMPLE = """\b
Example:
  advx demo                      # writes runs/demo/report.html
  advx demo --out /tmp/advx-demo

\b
The same run as:
  advx attack --model fmnist-cnn --data fashion-mnist --attack fgsm,pgd --threat linf:0.02,0.05,0.1 --n 300 --steps 20
  advx attack --model fmnist-cnn --data fashion-mnist --attack cw --threat l2:0.5,1,2 --n 300
(but the demo runs C&W with 50 Adam steps x 4 binary-search rounds, lr 0.05, c0 = 1, to stay under a minute).
"""


@click.command(epilog=EXAMPLE)
@run_options(out="runs/demo", n=DEMO["n"], batch_size=DEMO["n"])
def command(run: RunOptions) -> None:
    """Attack the committed Fashion-MNIST CNN with FGSM, PGD and C&W; print a table and write a report."""
    from advx.cli.attack import parse_jobs, print_summary, run_and_save  # noqa: PLC0415

    jobs = [job for attack, spec in DEMO["threats"].items() for job in parse_jobs((attack,), (spec,))]
    start = time.perf_counter()
    results = run_and_save(
        model=DEMO["model"], data=DEMO["data"], split=DEMO["split"], jobs=jobs, steps=DEMO["steps"],
        restarts=None, run=run, command="demo", attack_options=DEMO["attack_options"],
        quiet=logging.getLogger().level > logging.INFO,
    )
    if not main_process():
        return
    print_summary(results)
    click.echo(f"report: {run.out / 'report.html'}  ({time.perf_counter() - start:.0f} s)")
