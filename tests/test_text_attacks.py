"""Text attacks: contract properties (constraints, re-scored success, budgets) and known answers."""

from __future__ import annotations

import string

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from advx.text.attacks import PWWS, DeepWordBug, HotFlip, TextFooler, summarize
from advx.text.classifier import CallableClassifier, TorchTextClassifier
from advx.text.constraints import LevenshteinBudget, MaxCharsChanged, MaxWordsChanged, StopwordsKept
from advx.text.models import CharCNN, CharTokenizer
from advx.text.words import STOPWORDS, Words, levenshtein

POSITIVE = {"good", "great", "fine", "love", "nice"}
NEGATIVE = {"bad", "awful", "hate", "poor", "sad"}


def lexicon(texts: list[str]) -> torch.Tensor:
    """P(positive) = sigmoid(#positive words - #negative words - 0.1): a transparent sentiment model."""
    scores = []
    for t in texts:
        words = [w.lower() for w in Words(t).words]
        scores.append(sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words) - 0.1)
    p = torch.sigmoid(torch.tensor(scores, dtype=torch.float))
    return torch.stack([1 - p, p], dim=1)


LEXICON = CallableClassifier(lexicon)
SYNONYMS = {"good": ["fine", "decent", "sound"], "great": ["big", "large"], "love": ["enjoy", "adore"],
            "movie": ["film", "picture"], "nice": ["pleasant", "kind"], "bad": ["poor", "evil"]}


class FakeNeighbours:
    def neighbours(self, word, k, min_cos):
        return SYNONYMS.get(word.lower(), [])[:k]


class FakeEncoder:
    """Bag-of-letters embeddings: similar spellings, similar vectors."""

    def encode(self, texts):
        v = torch.zeros(len(texts), 27)
        for r, t in enumerate(texts):
            for c in t.lower():
                v[r, string.ascii_lowercase.index(c) if c in string.ascii_lowercase else 26] += 1
        return torch.nn.functional.normalize(v + 1e-6, dim=1)


def tiny_charcnn() -> TorchTextClassifier:
    torch.manual_seed(0)
    tok = CharTokenizer(max_len=64)
    return TorchTextClassifier(CharCNN(tok.vocab_size, 2, channels=8).eval(), tok)


WORDS = sorted(POSITIVE | NEGATIVE | set(SYNONYMS) | {"the", "movie", "was", "and", "it", "plot", "a", "not"})
texts_st = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)


def attacks(budget=None, constraints=None):
    return [
        DeepWordBug(query_budget=budget, constraints=constraints, seed=1),
        PWWS(synonyms=lambda w: SYNONYMS.get(w.lower(), []), query_budget=budget, constraints=constraints),
        TextFooler(neighbours=FakeNeighbours(), encoder=FakeEncoder(), sim_threshold=0.5, query_budget=budget,
                   constraints=constraints),
    ]


def reconstruct(result) -> str:
    text = result.original
    for e in sorted(result.edits, key=lambda e: -e.start):
        assert text[e.start : e.start + len(e.before)] == e.before
        text = text[: e.start] + e.after + text[e.start + len(e.before) :]
    return text


@given(texts_st, st.integers(0, 3), st.integers(0, 6), st.integers(1, 3))
def test_edits_respect_constraints(text, max_words, max_chars, per_word):
    constraints = MaxWordsChanged(max_words) & MaxCharsChanged(max_chars) & LevenshteinBudget(per_word) & StopwordsKept()
    y = int(lexicon([text])[0].argmax())
    for atk in attacks(constraints=constraints):
        (r,) = atk(LEXICON, [text], [y])
        assert reconstruct(r) == r.perturbed  # the edit list is exactly the difference
        assert r.words_changed <= max_words
        assert sum(levenshtein(e.before, e.after) for e in r.edits) <= max_chars
        assert all(levenshtein(e.before, e.after) <= per_word for e in r.edits)
        assert all(e.before.lower() not in STOPWORDS for e in r.edits)


@given(texts_st, st.floats(0.5, 0.99))
def test_textfooler_keeps_sentence_similarity(text, threshold):
    y = int(lexicon([text])[0].argmax())
    enc = FakeEncoder()
    atk = TextFooler(neighbours=FakeNeighbours(), encoder=enc, sim_threshold=threshold, window=None)
    (r,) = atk(LEXICON, [text], [y])
    assert float(enc.encode([text])[0] @ enc.encode([r.perturbed])[0]) >= threshold - 1e-6
    assert all(e.before.lower() not in STOPWORDS for e in r.edits)


@given(texts_st, st.integers(0, 40))
def test_budget_never_exceeded_and_success_rescored(text, budget):
    y = int(lexicon([text])[0].argmax())
    for atk in attacks(budget=budget):
        (r,) = atk(LEXICON, [text], [y])
        assert r.queries <= budget
        pred = int(LEXICON.predict_proba([r.perturbed])[0].argmax())
        assert (pred != y) == (r.status in ("succeeded", "skipped"))
        if budget == 0:
            assert r.perturbed == text and r.edits == [] and r.queries == 0


@given(st.lists(st.sampled_from(list("abcdefghij klmnop")), min_size=1, max_size=40).map("".join), st.integers(0, 30))
def test_hotflip_budget_and_flips(text, budget):
    clf = tiny_charcnn()
    y = int(clf.predict_proba([text])[0].argmax())
    (r,) = HotFlip(beam_width=2, max_flips=3, query_budget=budget)(clf, [text], [y])
    assert r.queries <= budget
    assert len(r.perturbed) == len(text)  # flips keep the length
    assert sum(a != b for a, b in zip(text, r.perturbed)) <= 3
    assert r.gradients <= r.queries
    pred = int(clf.predict_proba([r.perturbed])[0].argmax())
    assert (pred != y) == (r.status != "failed")


def test_deepwordbug_edits_the_only_word_that_matters():
    texts = ["the movie was good", "it was a good plot and the movie"]
    results = DeepWordBug(seed=0)(LEXICON, texts, [1, 1])
    for r in results:
        assert r.status == "succeeded"
        assert [e.before for e in r.edits] == ["good"]  # importance ranking found the one decisive word
        assert 1 <= r.chars_changed <= 2 and r.queries <= 12


def test_pwws_known_substitution_and_targeted():
    # "good" -> "sound" is the only synonym that removes positive evidence ("fine" is positive too)
    (r,) = PWWS(synonyms=lambda w: SYNONYMS.get(w.lower(), []))(LEXICON, ["good movie"], [1])
    assert r.status == "succeeded" and r.perturbed in ("decent movie", "sound movie")
    # targeted towards class 0 from a positive text is the same goal here; target == label is refused
    (t,) = PWWS(synonyms=lambda w: SYNONYMS.get(w.lower(), []))(LEXICON, ["good movie"], [1], targets=[0])
    assert t.status == "succeeded" and t.perturbed_pred == 0
    with pytest.raises(ValueError, match="target"):
        PWWS()(LEXICON, ["good movie"], [1], targets=[1])


def test_skipped_when_already_wrong_and_summary():
    results = DeepWordBug()(LEXICON, ["bad movie", "good movie"], [1, 1])
    assert results[0].status == "skipped" and results[0].perturbed == "bad movie" and results[0].queries == 1
    s = summarize(results)
    assert s["clean_accuracy"] == 0.5 and s["skipped"] == 1
    assert s["accuracy_under_attack"] == (0.5 if results[1].status == "failed" else 0.0)


def test_textfooler_picks_most_similar_adversarial_candidate():
    (r,) = TextFooler(neighbours=FakeNeighbours(), encoder=FakeEncoder(), sim_threshold=0.0)(LEXICON, ["good"], [1])
    # decent / sound both flip the lexicon; the bag-of-letters encoder prefers "sound" (shares o, d with good)
    sims = {w: float(FakeEncoder().encode(["good"])[0] @ FakeEncoder().encode([w])[0]) for w in ("decent", "sound")}
    assert r.perturbed == max(sims, key=sims.get)


def test_bad_arguments():
    with pytest.raises(TypeError, match="list of strings"):
        DeepWordBug()(LEXICON, "good movie", [1])
    with pytest.raises(ValueError, match="labels"):
        DeepWordBug()(LEXICON, ["good movie"], [1, 0])
    with pytest.raises(ValueError, match="query_budget"):
        DeepWordBug(query_budget=-1)
    with pytest.raises(TypeError, match="white-box"):
        HotFlip()(LEXICON, ["good movie"], [1])
    with pytest.raises(ValueError, match="class index"):
        DeepWordBug()(LEXICON, ["good movie"], [5])
    with pytest.raises(ValueError, match="class index"):
        DeepWordBug()(LEXICON, ["good movie"], [1], targets=[7])
    with pytest.raises(ValueError, match="class index"):
        DeepWordBug(query_budget=0)(LEXICON, ["good movie"], [-1])


def test_white_box_budgets_refuse_non_integers_naming_the_argument():
    from advx.text.attacks.gcg import GCG
    from advx.text.attacks.hotflip import HotFlip

    with pytest.raises(ValueError, match="steps"):
        GCG(steps=2.5)
    with pytest.raises(ValueError, match="beam_width"):
        HotFlip(beam_width=0)
    assert HotFlip(max_flips=0).max_flips == 0
