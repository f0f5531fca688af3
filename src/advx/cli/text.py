"""``advx text``: attack text classifiers and train the reference text models.

\b
  advx text attack --model bbc-charcnn --recipe deepwordbug --n 200 --out runs/text-dwb
  advx text train --model tweets-wordcnn --out runs/tw.json
  advx text train --model tweets-charcnn --adversarial deepwordbug --out runs/tw-adv.json
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

log = logging.getLogger(__name__)

MODELS = ["bbc-charcnn", "bbc-wordcnn", "tweets-charcnn", "tweets-wordcnn"]
RECIPES = ["deepwordbug", "hotflip", "pwws", "textfooler"]


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


@command.command()
@click.option("--model", "model_name", default="bbc-charcnn", show_default=True,
              help=f"Reference model ({', '.join(MODELS)}) or the .json of a model saved by `advx text train`.")
@click.option("--recipe", type=click.Choice(RECIPES), default="deepwordbug", show_default=True)
@click.option("--data", "dataset", type=click.Choice(["bbc", "tweets"]), default=None,
              help="Test data (default: the data the model was trained on).")
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True, help="Test examples to attack.")
@click.option("--budget", type=click.IntRange(min=0), default=None, help="Query budget per example (default: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/text"), show_default=True,
              help="Folder for results.json and report.html.")
def attack(model_name: str, recipe: str, dataset: str | None, n: int, budget: int | None, seed: int, out: Path) -> None:
    """Attack a text classifier; write results.json and an HTML report with each example's diff."""
    import time

    from advx.text.attacks import summarize
    from advx.text.data import load_text_dataset
    from advx.text.recipes import make_attack
    from advx.text.report import write_html, write_results
    from advx.text.zoo import resolve_model

    clf, meta = resolve_model(model_name)
    dataset = dataset or meta.get("dataset")
    if dataset is None:
        raise click.UsageError("this model does not record its data set; pass --data bbc or --data tweets")
    data = load_text_dataset(dataset, "test").subset(n)
    if len(data.label_names) != len(meta["label_names"]):
        raise click.UsageError(f"--data {dataset} has {len(data.label_names)} classes but the model has "
                               f"{len(meta['label_names'])}; use the data set the model was trained on")
    atk = make_attack(recipe, query_budget=budget, seed=seed)
    t0 = time.time()
    results = atk(clf, data.texts, data.labels)
    seconds = time.time() - t0
    summary = summarize(results) | {"seconds": round(seconds, 1)}
    config = {"model": model_name, "recipe": recipe, "attack": repr(atk), "dataset": dataset, "n": len(data),
              "budget": budget, "seed": seed}
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / "results.json", results, summary, config)
    write_html(out / "report.html", results, summary, config, data.label_names)
    _print_summary(summary, f"{recipe} on {model_name} ({dataset}, {len(data)} test examples, {seconds:.0f} s)")
    click.echo(f"wrote {out / 'results.json'} and {out / 'report.html'}")


@command.command()
@click.option("--model", "model_name", type=click.Choice(MODELS), required=True, help="Which reference recipe to train.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the recipe's epochs.")
@click.option("--adversarial", type=click.Choice(RECIPES), default=None,
              help="Augment training with adversarial examples from this recipe (adversarial training).")
@click.option("--adv-examples", type=click.IntRange(min=1), default=150, show_default=True,
              help="Training texts attacked per augmentation round (one round per epoch after the first).")
@click.option("--adv-budget", type=click.IntRange(min=1), default=300, show_default=True,
              help="Query budget per attacked training text.")
@click.option("--eval-n", type=click.IntRange(min=0), default=100, show_default=True,
              help="Test examples attacked to measure robustness before and after (0: skip).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to save (x.json + x.safetensors); default: overwrite the reference weights.")
def train(model_name: str, epochs: int | None, adversarial: str | None, adv_examples: int, adv_budget: int,
          eval_n: int, seed: int, out: Path | None) -> None:
    """Train a reference text model (optionally with adversarial augmentation) and report its robustness."""
    from advx.text.attacks import summarize
    from advx.text.data import load_text_dataset
    from advx.text.recipes import make_attack
    from advx.text.zoo import ZOO, load_reference, train_reference

    overrides: dict = {"seed": seed}
    if epochs is not None:
        overrides["epochs"] = epochs
    if adversarial is not None:
        if out is None:
            raise click.UsageError("adversarial training needs --out (the committed reference weights stay clean)")
        overrides.update(attack=make_attack(adversarial, query_budget=adv_budget, seed=seed),
                         attack_examples=adv_examples)
    eval_recipe = adversarial or "deepwordbug"
    test = load_text_dataset(ZOO[model_name].dataset, "test").subset(eval_n)
    before = None
    if eval_n and adversarial is not None:
        ref, _ = load_reference(model_name)
        before = summarize(make_attack(eval_recipe, query_budget=adv_budget, seed=seed)(ref, test.texts, test.labels))
    clf, meta, report = train_reference(model_name, out, **overrides)
    click.echo(f"{model_name}: clean test accuracy {100 * meta['test_accuracy']:.1f}% "
               f"({meta['train_seconds']:.0f} s, {meta['adversarial_examples_added']} adversarial examples added)")
    if eval_n:
        after = summarize(make_attack(eval_recipe, query_budget=adv_budget, seed=seed)(clf, test.texts, test.labels))
        if before is not None:
            _print_summary(before, f"before ({model_name} reference), {eval_recipe}, {len(test)} test examples:")
        _print_summary(after, f"after, {eval_recipe}, {len(test)} test examples:")
        if out is not None:
            Path(out).with_suffix(".robustness.json").write_text(json.dumps(
                {"recipe": eval_recipe, "budget": adv_budget, "before": before, "after": after}, indent=1))
