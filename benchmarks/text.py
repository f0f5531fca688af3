"""Text attacks side by side with TextAttack, on the same models and examples, in one run.

    python benchmarks/text.py --models minilm-tweets --recipes deepwordbug pwws --n 50 \\
        --textattack --textattack-path /tmp/ta          # TextAttack installed there (see below)

For each model, the first N test examples (the same for every row) are attacked by

* ``advx``: advx's recipe, black box (the same algorithm as TextAttack's recipe);
* ``advx-grad``: the white-box variant for transformers, where the word
  importance (and, for PWWS, each synonym's effect) is estimated from one
  forward and backward pass instead of one query per word
  (``DeepWordBug(score="gradient", greedy="first")``: a word's edits sent one at
  a time, the first that helps kept; ``PWWS(estimate="gradient")``: the 3
  best-estimated synonyms of each word queried);
* ``textattack``: TextAttack 0.3.11's ``DeepWordBugGao2018`` / ``PWWSRen2019``
  through a ``ModelWrapper`` around the very same classifier object (same
  tokenizer, same maximum length: TextAttack's ``HuggingFaceModelWrapper``
  would pad every query to 512 tokens), with the same stop-word list;
* and the other advx recipes with ``--recipes`` (``textfooler``, ``hotflip``, ``gcg``).

Every row is measured the same way, from the returned texts: success rate over
the attacked (clean-correct) examples; words changed (word-level diff) and
characters changed (Levenshtein over the changed stretches) averaged over
successful examples; similarity = MiniLM cosine of the whole original and
adversarial texts, over successful examples; queries per attacked example (as
each library counts them: every text sent to the model); wall time.

TextAttack 0.3.11 offline, without touching the project's environment::

    pip install --target /tmp/ta --no-deps textattack==0.3.11 flair "transformers<5" "tokenizers>=0.22,<0.23" \\
        "huggingface_hub<1" "datasets<3" nltk ...   # then whatever `import textattack` reports missing
    touch $TA_CACHE_DIR/post_install_check_3        # skips TextAttack's nltk.download on first import

NLTK's stop words and WordNet cannot be downloaded here: ``--nltk-data`` (default
``runs/nltk_data``) gets ``corpora/stopwords/english`` written from advx's list (the
same stop words on both sides) and ``corpora/wordnet`` copied from Debian's
``wordnet-base`` files plus the ``lexnames`` table NLTK's reader wants.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import torch

from advx.text.attacks import PWWS, DeepWordBug
from advx.text.data import load_text_dataset
from advx.text.recipes import make_attack
from advx.text.words import STOPWORDS, levenshtein
from advx.text.zoo import load_reference

_WORD = re.compile(r"\w+(?:'\w+)*")
LEXNAMES = ("adj.all 3,adj.pert 3,adv.all 4,noun.Tops 1,noun.act 1,noun.animal 1,noun.artifact 1,noun.attribute 1,"
            "noun.body 1,noun.cognition 1,noun.communication 1,noun.event 1,noun.feeling 1,noun.food 1,noun.group 1,"
            "noun.location 1,noun.motive 1,noun.object 1,noun.person 1,noun.phenomenon 1,noun.plant 1,"
            "noun.possession 1,noun.process 1,noun.quantity 1,noun.relation 1,noun.shape 1,noun.state 1,"
            "noun.substance 1,noun.time 1,verb.body 2,verb.change 2,verb.cognition 2,verb.communication 2,"
            "verb.competition 2,verb.consumption 2,verb.contact 2,verb.creation 2,verb.emotion 2,verb.motion 2,"
            "verb.perception 2,verb.possession 2,verb.social 2,verb.stative 2,verb.weather 2,adj.ppl 3").split(",")


def edit_counts(original: str, perturbed: str) -> tuple[int, int]:
    """(words changed, characters changed) between two texts, measured the same way for every library."""
    a, b = _WORD.findall(original), _WORD.findall(perturbed)
    words = chars = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            words += max(i2 - i1, j2 - j1)
            chars += levenshtein(" ".join(a[i1:i2]), " ".join(b[j1:j2]))
    return words, chars


def measure(rows: list[tuple[str, str, str]], queries: list[int], seconds: float, encoder) -> dict:
    """rows: (status, original, perturbed) with status in succeeded/failed/skipped."""
    attacked = [k for k, r in enumerate(rows) if r[0] != "skipped"]
    ok = [k for k in attacked if rows[k][0] == "succeeded"]
    edits = [edit_counts(rows[k][1], rows[k][2]) for k in ok]
    n_words = [max(1, len(_WORD.findall(rows[k][1]))) for k in ok]
    sims = encoder.similarity([rows[k][1] for k in ok], [rows[k][2] for k in ok]).tolist() if ok else []
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {"examples": len(rows), "attacked": len(attacked), "succeeded": len(ok),
            "clean_accuracy": len(attacked) / max(1, len(rows)),
            "accuracy_under_attack": (len(attacked) - len(ok)) / max(1, len(rows)),
            "success_rate": len(ok) / max(1, len(attacked)),
            "words_changed": mean([w for w, _ in edits]),
            "percent_words_changed": 100 * mean([w / n for (w, _), n in zip(edits, n_words)]),
            "chars_changed": mean([c for _, c in edits]), "similarity": mean(sims),
            "queries": mean([queries[k] for k in attacked]), "seconds": round(seconds, 1)}


def prepare_nltk(folder: Path) -> None:
    """NLTK's English stop words (advx's list) and WordNet (Debian's files + lexnames) under ``folder``."""
    stop = folder / "corpora" / "stopwords" / "english"
    stop.parent.mkdir(parents=True, exist_ok=True)
    stop.write_text("\n".join(sorted(STOPWORDS)) + "\n")
    wn = folder / "corpora" / "wordnet"
    src = Path(os.environ.get("ADVX_WORDNET", "/usr/share/wordnet"))
    if not (wn / "lexnames").is_file() and src.is_dir():
        wn.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            shutil.copy(f, wn / f.name)
        (wn / "lexnames").write_text("".join(f"{i:02d}\t{n.split()[0]}\t{n.split()[1]}\n" for i, n in enumerate(LEXNAMES)))
    os.environ["NLTK_DATA"] = str(folder)


def run_textattack(recipe: str, clf, data, budget: int | None):
    """TextAttack's recipe on our classifier: (rows, queries, seconds), or None if TextAttack is unavailable."""
    try:
        import numpy as np
        import textattack
        from textattack.attack_recipes import DeepWordBugGao2018, PWWSRen2019
        from textattack.models.wrappers import ModelWrapper
    except Exception as e:  # noqa: BLE001 -- optional comparison
        print(f"TextAttack not importable ({type(e).__name__}: {e}); skipping it", file=sys.stderr)
        return None

    class Wrapper(ModelWrapper):
        def __init__(self, clf):
            self.model = clf

        def __call__(self, texts):
            return np.asarray(self.model.predict_proba(list(texts)))

    build = {"deepwordbug": DeepWordBugGao2018, "pwws": PWWSRen2019}[recipe]
    attack = build.build(Wrapper(clf))
    dataset = textattack.datasets.Dataset(list(zip(data.texts, data.labels)))
    args = textattack.AttackArgs(num_examples=len(data), disable_stdout=True, silent=True, query_budget=budget,
                                 random_seed=0)
    t0 = time.time()
    results = textattack.Attacker(attack, dataset, args).attack_dataset()
    seconds = time.time() - t0
    status = {"SuccessfulAttackResult": "succeeded", "FailedAttackResult": "failed",
              "SkippedAttackResult": "skipped", "MaximizedAttackResult": "failed"}
    rows = [(status[type(r).__name__], r.original_result.attacked_text.text, r.perturbed_result.attacked_text.text)
            for r in results]
    return rows, [int(r.num_queries) for r in results], seconds


def run_advx(attack, clf, data):
    t0 = time.time()
    results = attack(clf, data.texts, data.labels)
    seconds = time.time() - t0
    return [(r.status, r.original, r.perturbed) for r in results], [r.queries for r in results], seconds, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["minilm-tweets"])
    ap.add_argument("--recipes", nargs="*", default=["deepwordbug", "pwws"])
    ap.add_argument("--n", type=int, default=50, help="test examples per model (tweets)")
    ap.add_argument("--bbc-n", type=int, default=20, help="test examples per BBC model (long texts)")
    ap.add_argument("--budget", type=int, default=None, help="query budget per example (default: none, both sides)")
    ap.add_argument("--textattack", action="store_true", help="also run TextAttack's recipes on the same examples")
    ap.add_argument("--textattack-path", nargs="*", default=[],
                    help="folders put first on sys.path where TextAttack and its dependencies are (pip --target)")
    ap.add_argument("--nltk-data", type=Path, default=Path("runs/nltk_data"))
    ap.add_argument("--no-grad", action="store_true", help="skip the white-box advx-grad rows")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_text"))
    args = ap.parse_args()
    sys.path[:0] = args.textattack_path
    torch.set_num_threads(args.threads)
    if args.textattack:
        prepare_nltk(args.nltk_data.resolve())
    from advx.text.minilm import default_encoder

    encoder = default_encoder()
    table = []
    for name in args.models:
        clf, meta = load_reference(name)
        n = args.bbc_n if meta["dataset"] == "bbc" else args.n
        data = load_text_dataset(meta["dataset"], "test").subset(n)
        clf.predict_proba(data.texts[:2])  # warm-up outside every timing
        for recipe in args.recipes:
            impls = [("advx", make_attack(recipe, query_budget=args.budget))]
            white = getattr(clf, "differentiable_tokens", False)
            if recipe == "hotflip" and not (white or clf.differentiable_chars):
                continue
            if recipe == "gcg" and not white:
                continue
            if white and not args.no_grad and recipe in ("deepwordbug", "pwws"):
                grad = (DeepWordBug(score="gradient", greedy="first", query_budget=args.budget) if recipe == "deepwordbug"
                        else PWWS(estimate="gradient", query_budget=args.budget))
                impls.append(("advx-grad", grad))
            for impl, attack in impls:
                rows, queries, seconds, results = run_advx(attack, clf, data)
                attacked = [r for r in results if r.status != "skipped"]
                row = {"model": name, "recipe": recipe, "impl": impl, **measure(rows, queries, seconds, encoder),
                       "gradients": sum(r.gradients for r in attacked) / max(1, len(attacked))}
                table.append(row)
                print(json.dumps(row), flush=True)
            if args.textattack and recipe in ("deepwordbug", "pwws"):
                out = run_textattack(recipe, clf, data, args.budget)
                if out is not None:
                    table.append({"model": name, "recipe": recipe, "impl": "textattack", **measure(*out, encoder)})
                    print(json.dumps(table[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"argv": sys.argv, "budget": args.budget, "rows": table}, indent=1))
    print("\n| model | recipe | impl | n | clean acc | acc. under attack | success | words changed (%) | chars | "
          "similarity | queries | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['model']} | {r['recipe']} | {r['impl']} | {r['examples']} | {100 * r['clean_accuracy']:.1f} | "
              f"{100 * r['accuracy_under_attack']:.1f} | {100 * r['success_rate']:.1f}% | {r['words_changed']:.2f} "
              f"({r['percent_words_changed']:.1f}) | {r['chars_changed']:.1f} | {r['similarity']:.3f} | "
              f"{r['queries']:.0f} | {r['seconds']} |")


if __name__ == "__main__":
    main()
