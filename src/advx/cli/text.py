"""``advx text``: attack text classifiers and train the reference text models.

\b
  advx text attack --model bbc-charcnn --recipe deepwordbug --n 200 --out runs/text-dwb
  advx text train --model tweets-wordcnn --out runs/tw.json
  advx text train --model tweets-charcnn --adversarial deepwordbug --out runs/tw-adv.json
"""

from __future__ import annotations

import json
import logging

import click

from advx.cli.options import RunOptions, main_process, run_options

log = logging.getLogger(__name__)

MODELS = ["bbc-charcnn", "bbc-wordcnn", "tweets-charcnn", "tweets-wordcnn", "minilm-tweets", "minilm-bbc"]
RECIPES = ["deepwordbug", "hotflip", "pwws", "textfooler", "gcg"]
ARCHS = {"minilm": "minilm-{data}", "charcnn": "{data}-charcnn", "wordcnn": "{data}-wordcnn"}


def _environment() -> dict:
    """The versions that reproduce a run (those of advx's other commands)."""
    from advx.jobs.runner import environment

    return environment()


def _print_summary(summary: dict, title: str) -> None:
    click.echo(title)
    click.echo(f"  clean accuracy          {100 * summary['clean_accuracy']:6.1f}%")
    click.echo(f"  accuracy under attack   {100 * summary['accuracy_under_attack']:6.1f}%")
    click.echo(f"  attack success rate     {100 * summary['success_rate']:6.1f}%  "
               f"({summary['succeeded']} of {summary['succeeded'] + summary['failed']} attacked, {summary['skipped']} skipped)")
    click.echo(f"  mean words changed      {summary['mean_words_changed']:6.2f}  "
               f"({summary['mean_percent_words_changed']:.1f}% of words)")
    click.echo(f"  mean characters changed {summary['mean_chars_changed']:6.2f}")
    click.echo(f"  mean queries            {summary['mean_queries']:6.1f}")


@click.group()
def command() -> None:
    """Adversarial examples for text classifiers (character and word edits).

    \b
    Examples:
      advx text attack --model bbc-charcnn --recipe deepwordbug --n 200 --out runs/text-dwb
      advx text attack --model tweets-wordcnn --recipe pwws --n 100 --budget 2000
      advx text train --model tweets-wordcnn --adversarial deepwordbug --out runs/tw-adv.json
    """


def load_attack_data(spec: str | None, meta: dict, text_column: str, label_column: str, max_chars: int):
    """The test texts: a built-in corpus name or a .csv/.jsonl file, checked against the model's classes."""
    from advx.text.data import DATASETS, load_text_dataset, load_text_file

    spec = spec or meta.get("dataset")
    if spec is None:
        raise click.UsageError("this model does not record its data set; pass --data tweets, --data bbc or "
                               "--data FILE.csv/.jsonl")
    names = meta.get("label_names")
    if spec in DATASETS:
        data = load_text_dataset(spec, "test")
        if names is not None and len(data.label_names) != len(names):
            raise click.UsageError(f"--data {spec} has {len(data.label_names)} classes but the model has "
                                   f"{len(names)}; use the data set the model was trained on")
        return data, spec
    try:
        return load_text_file(spec, text_column, label_column, names, max_chars=max_chars), spec
    except (ValueError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from e


@command.command()
@click.option("--model", "model_name", default="bbc-charcnn", show_default=True,
              help=f"Reference model ({', '.join(MODELS)}), hf:<directory or hub id> (a transformers "
                   "sequence classifier), or the .json of a model saved by `advx text train`.")
@click.option("--recipe", type=click.Choice(RECIPES), default="deepwordbug", show_default=True)
@click.option("--data", "dataset", default=None,
              help="Test data: tweets, bbc, or a .csv/.jsonl file of (text, label) rows "
                   "(default: the data the model was trained on).")
@click.option("--text-column", default="text", show_default=True, help="Text column/key of a --data file.")
@click.option("--label-column", default="label", show_default=True,
              help="Label column/key of a --data file (integer class index or class name).")
@click.option("--max-chars", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Longest text accepted from a --data file (every query sends the whole text).")
@click.option("--max-length", type=click.IntRange(min=2, max=4096), default=None,
              help="hf: models: truncate to this many tokens (default 128).")
@click.option("--budget", type=click.IntRange(min=0), default=None, help="Query budget per example (default: none).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@run_options(out="runs/text", n=200, batch_size=32, n_help="Test examples to attack (the first n of the data).",
             batch_help="Texts per batch: the unit of checkpoints, resume and sharding.", extra=("imports",))
def attack(model_name: str, recipe: str, dataset: str | None, text_column: str, label_column: str, max_chars: int,
           max_length: int | None, budget: int | None, no_progress: bool, run: RunOptions) -> None:
    """Attack a text classifier; write results.json and an HTML report with each example's diff.

    \b
      advx text attack --model minilm-tweets --recipe deepwordbug -n 100 --out runs/minilm-dwb
      advx text attack --model hf:path/to/saved_model --data my.csv --recipe pwws -n 50
    """
    from advx.jobs import run_job
    from advx.jobs.text import TextAttackJob
    from advx.text.recipes import make_attack
    from advx.text.zoo import resolve_model

    try:
        clf, meta = resolve_model(model_name, max_length=max_length)
    except (ImportError, FileNotFoundError) as e:
        raise click.UsageError(str(e)) from e
    data, dataset = load_attack_data(dataset, meta, text_column, label_column, max_chars)
    data = data.subset(run.n)
    atk = make_attack(recipe, query_budget=budget, seed=run.seed)
    label_names = meta.get("label_names") or data.label_names
    settings = {"model": model_name, "recipe": recipe, "attack": repr(atk), "dataset": dataset, "n": len(data),
                "budget": budget, "seed": run.seed, "max_chars": max_chars, "max_length": max_length}
    try:
        job = TextAttackJob(clf, atk, data.texts, data.labels, settings=settings, label_names=label_names,
                            batch_size=run.batch_size, seed=run.seed, device=run.device,
                            model_spec={"spec": model_name, "info": {k: v for k, v in meta.items() if k != "label_names"}},
                            data_spec={"spec": dataset, "name": getattr(data, "name", dataset),
                                       "text_column": text_column, "label_column": label_column})
    except TypeError as e:
        if "white-box" in str(e) or "gradients" in str(e):
            raise click.UsageError(str(e)) from e
        raise
    out = run_job(job, run.out, resume=run.resume, overwrite=run.overwrite, progress=not no_progress)
    if not main_process():
        return
    summary = out.results["summary"]
    _print_summary(summary, f"{recipe} on {model_name} ({dataset}, {len(data)} test examples, "
                            f"{summary['seconds']:.0f} s)")
    click.echo(f"wrote {run.out / 'results.json'} and {run.out / 'report.html'}")


@command.command()
@click.option("--model", "model_name", type=click.Choice(MODELS), default=None,
              help="Which reference recipe to train (or give --arch and --data).")
@click.option("--arch", type=click.Choice(sorted(ARCHS)), default=None,
              help="Architecture: minilm (MiniLM-L6, top layer + head fine-tuned), charcnn or wordcnn.")
@click.option("--data", "data_name", type=click.Choice(["tweets", "bbc"]), default=None,
              help="Built-in corpus to train on (with --arch).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the recipe's peak learning rate.")
@click.option("--adversarial", type=click.Choice(RECIPES), default=None,
              help="Augment training with adversarial examples from this recipe (adversarial training).")
@click.option("--adv-examples", type=click.IntRange(min=1), default=150, show_default=True,
              help="Training texts attacked per augmentation round (one round before every epoch after the first).")
@click.option("--adv-budget", type=click.IntRange(min=1), default=300, show_default=True,
              help="Query budget per attacked training text.")
@click.option("--adv-keep", type=click.Choice(["all", "round"]), default="all", show_default=True,
              help="all: every round's adversarial texts stay in the training set; round: each round's replace the "
                   "last round's (TextAttack's trainer).")
@click.option("--eval-n", type=click.IntRange(min=0), default=100, show_default=True,
              help="Test examples attacked to measure robustness before and after (0: skip).")
@click.option("--eval-recipes", default=None,
              help="Comma-separated recipes for the before/after robustness (default: the --adversarial one).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@run_options(out="runs/text-model.json", n=None, batch_size=32,
             n_help="Train on the first N training texts (default: all).",
             batch_help="Texts per training step (the reference recipes use 32).",
             out_help="Model file to write: OUT.json + OUT.safetensors, and OUT.ckpt.safetensors after every "
                      "epoch (what --resume continues).", extra=())
def train(model_name: str | None, arch: str | None, data_name: str | None, epochs: int | None, lr: float | None,
          adversarial: str | None, adv_examples: int, adv_budget: int, adv_keep: str, eval_n: int,
          eval_recipes: str | None,
          progress: bool, run: RunOptions) -> None:
    """Train a reference text model through the one training loop (optionally with adversarial
    augmentation) and report its robustness.

    \b
      advx text train --arch minilm --data tweets --out runs/minilm-tweets.json   # 9 min on a busy shared core
      advx text train --model bbc-wordcnn --epochs 2 -n 500 --out runs/bbc-w.json
      advx text train --model minilm-tweets --adversarial deepwordbug --out runs/minilm-tw-adv.json
      advx text train --model minilm-tweets --out src/advx/text/weights/minilm-tweets.json --overwrite  # the zoo's
    """
    import shlex

    from advx.cli.train_text import check_out, train_text
    from advx.jobs.config import capture_argv
    from advx.text.attacks import summarize
    from advx.text.data import load_text_dataset
    from advx.text.recipes import make_attack
    from advx.text.zoo import ZOO, load_reference

    if model_name is None:
        if arch is None or data_name is None:
            raise click.UsageError("give --model NAME, or --arch and --data (e.g. --arch minilm --data tweets)")
        model_name = ARCHS[arch].format(data=data_name)
    elif arch is not None or data_name is not None:
        raise click.UsageError("--model names a recipe already; drop --arch/--data (or drop --model)")
    if run.out.suffix not in (".json", ".safetensors"):
        raise click.BadParameter("must end in .json (the model is OUT.json + OUT.safetensors)", param_hint="--out")
    check_out(run.out, run.resume, run.overwrite)
    recipes = [r.strip() for r in (eval_recipes or adversarial or "deepwordbug").split(",") if r.strip()]
    bad = [r for r in recipes if r not in RECIPES]
    if bad:
        raise click.UsageError(f"--eval-recipes: unknown {bad}; choose from {RECIPES}")
    spec = ZOO[model_name]
    overrides = {"batch_size": run.batch_size, **({"epochs": epochs} if epochs else {}), **({"lr": lr} if lr else {})}
    attack = make_attack(adversarial, query_budget=adv_budget, seed=run.seed) if adversarial else None
    test = load_text_dataset(spec.dataset, "test").subset(eval_n)
    before: dict = {}
    if eval_n and adversarial is not None:
        ref, _ = load_reference(model_name)
        for r in recipes:
            before[r] = summarize(make_attack(r, query_budget=adv_budget, seed=run.seed)(ref, test.texts, test.labels))
    command = shlex.join(capture_argv())
    clf, meta = train_text(spec.recipe, spec.dataset, run.out, command=command, name=model_name, seed=run.seed,
                           n_train=run.n, overrides=overrides, attack=attack, adv_examples=adv_examples, adv_keep=adv_keep,
                           resume=run.resume, overwrite=run.overwrite, device=run.device, progress=progress)
    if meta is None:  # another rank under torchrun: rank 0 reports
        return
    click.echo(f"{model_name}: clean test accuracy {100 * meta['test_accuracy']:.1f}% "
               f"({meta['train_seconds']:.0f} s, {meta['adversarial_examples_added']} adversarial examples added)")
    if eval_n:
        after = {}
        for r in recipes:
            after[r] = summarize(make_attack(r, query_budget=adv_budget, seed=run.seed)(clf, test.texts, test.labels))
            if r in before:
                _print_summary(before[r], f"before ({model_name} reference), {r}, {len(test)} test examples:")
            _print_summary(after[r], f"after, {r}, {len(test)} test examples:")
        from advx.cli.train_text import model_paths
        from advx.data.atomic import atomic_write_text

        atomic_write_text(model_paths(run.out)[0].with_suffix(".robustness.json"), json.dumps(
            {"recipes": recipes, "budget": adv_budget, "n": len(test), "before": before, "after": after}, indent=1))

