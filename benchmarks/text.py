"""Text attacks benchmark: success rate, edits and queries per recipe, model and data set.

    python benchmarks/text.py --n 50 --bbc-n 20 --budget 2000 --out runs/bench_text

For each reference model, the first N test examples (the same for every
recipe) are attacked by every recipe that applies (HotFlip only on the
char-CNNs). Prints a markdown table and writes results JSON.

Anchor: TextAttack's documentation reports DeepWordBug at 81.5% success with
15.5% of words changed on an LSTM for movie reviews. With ``--textattack``,
TextAttack's own DeepWordBug recipe (if importable) attacks the same model on
the same examples in the same run, through a model wrapper around our classifier.
TextAttack 0.3.11 installs offline (``pip install --target DIR --no-deps textattack``
plus its dependencies, with ``transformers<5`` and ``datasets<3`` for flair);
its stop-word constraint needs NLTK's ``stopwords`` corpus, which cannot be
downloaded here, so point ``NLTK_DATA`` at a folder whose
``corpora/stopwords/english`` holds advx's list (the same stop words for both).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from advx.text.attacks import summarize
from advx.text.data import load_text_dataset
from advx.text.recipes import make_attack
from advx.text.zoo import ZOO, load_reference


def textattack_deepwordbug(clf, data, budget):
    """TextAttack 0.3's DeepWordBugGao2018 on our classifier (None if TextAttack cannot be imported)."""
    try:
        import numpy as np
        import textattack
        from textattack.attack_recipes import DeepWordBugGao2018
        from textattack.models.wrappers import ModelWrapper
    except Exception as e:  # noqa: BLE001 -- optional comparison
        print(f"TextAttack not importable ({type(e).__name__}: {e}); skipping the comparison")
        return None

    class Wrapper(ModelWrapper):
        def __init__(self, clf):
            self.model = clf

        def __call__(self, texts):
            return np.asarray(clf.predict_proba(list(texts)))

    attack = DeepWordBugGao2018.build(Wrapper(clf))
    if budget is not None:
        attack.goal_function.query_budget = budget
    dataset = textattack.datasets.Dataset(list(zip(data.texts, data.labels)))
    args = textattack.AttackArgs(num_examples=len(data), disable_stdout=True, silent=True, query_budget=budget)
    results = textattack.Attacker(attack, dataset, args).attack_dataset()
    ok = [r for r in results if type(r).__name__ == "SuccessfulAttackResult"]
    attacked = [r for r in results if type(r).__name__ != "SkippedAttackResult"]
    words = [len(r.original_result.attacked_text.all_words_diff(r.perturbed_result.attacked_text)) for r in ok]
    pct = [w / max(1, len(r.original_result.attacked_text.words)) for w, r in zip(words, ok)]
    return {"examples": len(results), "success_rate": len(ok) / max(1, len(attacked)),
            "mean_words_changed": sum(words) / max(1, len(ok)), "mean_percent_words_changed": 100 * sum(pct) / max(1, len(ok)),
            "mean_queries": sum(r.num_queries for r in attacked) / max(1, len(attacked))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50, help="tweet test examples per model")
    ap.add_argument("--bbc-n", type=int, default=20, help="BBC test examples per model (long texts)")
    ap.add_argument("--budget", type=int, default=2000, help="query budget per example")
    ap.add_argument("--models", nargs="*", default=sorted(ZOO))
    ap.add_argument("--recipes", nargs="*", default=["deepwordbug", "pwws", "textfooler", "hotflip"])
    ap.add_argument("--textattack", action="store_true", help="also run TextAttack's DeepWordBug on the same examples")
    ap.add_argument("--textattack-path", nargs="*", default=[],
                    help="folders appended to sys.path where TextAttack and its dependencies are installed (pip --target)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_text"))
    args = ap.parse_args()
    sys.path.extend(args.textattack_path)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        clf, meta = load_reference(name)
        n = args.bbc_n if meta["dataset"] == "bbc" else args.n
        data = load_text_dataset(meta["dataset"], "test").subset(n)
        for recipe in args.recipes:
            if recipe == "hotflip" and not clf.differentiable_chars:
                continue
            t0 = time.time()
            s = summarize(make_attack(recipe, query_budget=args.budget)(clf, data.texts, data.labels))
            rows.append({"model": name, "recipe": recipe, "impl": "advx", "seconds": round(time.time() - t0, 1), **s})
            print(json.dumps(rows[-1]), flush=True)
            if recipe == "deepwordbug" and args.textattack:
                t0 = time.time()
                ta = textattack_deepwordbug(clf, data, args.budget)
                if ta is not None:
                    rows.append({"model": name, "recipe": recipe, "impl": "textattack",
                                 "seconds": round(time.time() - t0, 1), **ta})
                    print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"budget": args.budget, "rows": rows}, indent=1))
    print("\n| model | recipe | impl | n | clean acc | acc. under attack | success | words changed (%) | chars | queries | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        def f(k, m=1, d=1, r=r):
            return f"{m * r[k]:.{d}f}" if isinstance(r.get(k), float) else "-"
        print(f"| {r['model']} | {r['recipe']} | {r['impl']} | {r['examples']} | {f('clean_accuracy', 100)} | "
              f"{f('accuracy_under_attack', 100)} | {f('success_rate', 100)}% | {f('mean_words_changed', 1, 2)} "
              f"({f('mean_percent_words_changed')}) | {f('mean_chars_changed')} | {f('mean_queries', 1, 0)} | {r['seconds']} |")


if __name__ == "__main__":
    main()
