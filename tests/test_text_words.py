"""Words segmentation, edit distance, WordNet reader, offline data sets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from advx.text.data import load_bbc, load_tweets
from advx.text.wordnet import wordnet
from advx.text.words import Words, levenshtein, match_case

text_st = st.text(alphabet=st.sampled_from(list("ab c'.,!\n-é_1")), max_size=40)


@given(text_st)
def test_words_roundtrip_and_spans(text):
    w = Words(text)
    assert w.text == text
    for i, (s, e) in enumerate(w.spans()):
        assert text[s:e] == w[i] and w.start(i) == s


@given(text_st, st.data())
def test_replace_touches_only_that_word(text, data):
    w = Words(text)
    if len(w) == 0:
        return
    i = data.draw(st.integers(0, len(w) - 1))
    new = data.draw(st.sampled_from(["", "x y", "ZZ", w[i]]))
    v = w.replace(i, new)
    assert w.changed(v) == ([] if new == w[i] else [i])
    assert v.text == text[: w.start(i)] + new + text[w.start(i) + len(w[i]) :]
    assert w.text == text  # the original is not mutated


@given(st.text("abc", max_size=8), st.text("abc", max_size=8), st.text("abc", max_size=8))
def test_levenshtein_is_a_metric(a, b, c):
    assert levenshtein(a, b) == levenshtein(b, a)
    assert (levenshtein(a, b) == 0) == (a == b)
    assert levenshtein(a, c) <= levenshtein(a, b) + levenshtein(b, c)
    assert abs(len(a) - len(b)) <= levenshtein(a, b) <= max(len(a), len(b))


def test_levenshtein_known_answers():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert match_case("film", "Movie") == "Film" and match_case("film", "MOVIE") == "FILM"


def test_wordnet_synonyms_inflection_and_antonyms():
    wn = wordnet()
    assert "film" in wn.synonyms("movie")
    assert "automobiles" in wn.synonyms("cars")  # re-inflected plural
    assert "Film" in wn.synonyms("Movie")  # capitalisation kept
    assert "trajectories" in wn.synonyms("flights")  # y -> ies
    assert wn.synonyms("the") == [] and wn.synonyms("zzzq") == []
    assert "cold" in wn.antonyms("hot") and "hate" in wn.antonyms("love")
    assert wn.pos_of("quickly") == {"adv"}
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        type(wn)("/nonexistent")


def test_offline_datasets_are_deterministic_and_balanced():
    bbc_train, bbc_test = load_bbc("train"), load_bbc("test")
    assert len(bbc_train) + len(bbc_test) == 2127 and len(bbc_test.label_names) == 5
    assert not set(bbc_train.texts) & set(bbc_test.texts)
    assert load_bbc("test").texts[:3] == bbc_test.texts[:3]
    tw = load_tweets("test")
    assert set(tw.labels) == {0, 1} and abs(sum(tw.labels) - len(tw) / 2) <= 1
    with pytest.raises(ValueError, match="split"):
        load_bbc("validation")
