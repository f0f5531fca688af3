"""The PocketSphinx black box and the transcription attack, on a real recording of Debian
pocketsphinx-testdata (cards/001.wav, 1.1 s, "ten of clubs"). About 15 decodes in all."""

from __future__ import annotations

import builtins
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from advx.audio import Decibels, SphinxASR, TranscriptionAttack, db_x, read_wav, sphinx_clips, wer, write_wav
from advx.audio import asr as asr_module
from advx.audio.asr import word_errors
from advx.model import QueryBudgetExceeded


@pytest.fixture(scope="module")
def clip():
    return sphinx_clips("cards")[0]


@pytest.fixture(scope="module")
def asr():
    return SphinxASR()


def test_clips_are_the_real_recordings_with_their_transcriptions():
    clips = sphinx_clips("cards")
    assert [c.name for c in clips] == ["001", "002", "003", "004", "005"]
    assert clips[0].reference == "ten of clubs"
    assert clips[4].reference == "eight of spades four of clubs seven of hearts"
    assert all(c.wave.dim() == 1 and float(c.wave.abs().max()) <= 1 for c in clips)
    assert sphinx_clips("librivox")[1].reference == "he was not an ill disposed young man"


def test_transcribes_a_real_clip_to_its_reference_words(clip, asr):
    q = asr.queries
    assert asr(clip.wave) == clip.reference == "ten of clubs"
    assert asr.queries == q + 1


def test_budget_is_checked_before_decoding(clip):
    asr = SphinxASR(budget=0)
    with pytest.raises(QueryBudgetExceeded, match="budget"):
        asr(clip.wave)
    assert asr.queries == 0
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        asr(clip.wave * 2)
    with pytest.raises(ValueError, match="resample"):
        SphinxASR(sample_rate=8000)


def test_missing_pocketsphinx_names_the_install(monkeypatch):
    real = builtins.__import__

    def no_sphinx(name, *args, **kwargs):
        if name.startswith("pocketsphinx"):
            raise ImportError("No module named 'pocketsphinx'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sphinx)
    with pytest.raises(ImportError, match="pip install pocketsphinx"):
        SphinxASR()


def test_loud_bound_changes_the_transcription_inside_the_bound_and_budget(clip, asr, tmp_path):
    attack = TranscriptionAttack(Decibels(-20), max_queries=8, population=3)
    res = attack(asr, clip.wave)
    assert res.clean == "ten of clubs"
    assert res.success and res.adversarial != res.clean and res.wer > 0
    assert res.queries <= 8
    assert float(db_x(res.x_adv[None], clip.wave[None])) <= -20  # exact, in float64
    assert res.db_x <= -20 and res.snr < 30
    # the example is on the 16-bit grid: the WAV file written from it transcribes the same
    path = write_wav(tmp_path / "adv.wav", res.x_adv, 16000)
    wave, _ = read_wav(path)
    assert torch.equal(wave, res.x_adv)
    assert asr(wave) == res.adversarial


def test_quiet_bound_fails_within_the_budget_and_never_exceeds_it(clip):
    asr = SphinxASR(budget=100)
    res = TranscriptionAttack(Decibels(-80), max_queries=4, population=2, fitness="wer")(asr, clip.wave)
    assert not res.success and res.adversarial == res.clean and res.wer == 0
    assert res.queries == asr.queries == 4  # the clean decode + 3 candidates, not one more
    assert float(db_x(res.x_adv[None], clip.wave[None])) <= -80


def test_attack_rejects_other_threats_and_a_spent_budget(clip):
    with pytest.raises(TypeError, match="Decibels"):
        TranscriptionAttack(torch.nn.Identity())
    spent = SphinxASR(budget=1)
    with pytest.raises(ValueError, match="2 queries"):
        TranscriptionAttack(Decibels(-30))(spent, clip.wave)


words = st.lists(st.sampled_from(["ten", "of", "clubs", "five", "queen"]), max_size=6).map(" ".join)


@given(words, words, words)
def test_word_errors_is_an_edit_distance(a, b, c):
    assert word_errors(a, a) == 0
    assert word_errors(a, b) == word_errors(b, a)
    assert word_errors(a, c) <= word_errors(a, b) + word_errors(b, c)
    assert abs(len(a.split()) - len(b.split())) <= word_errors(a, b) <= max(len(a.split()), len(b.split()))


def test_wer_known_answers():
    assert wer("ten of clubs", "ten of clubs") == 0
    assert wer("ten of clothes", "ten of clubs") == pytest.approx(1 / 3)
    assert wer("for queen of clubs", "four queen of clubs") == pytest.approx(1 / 4)
    assert wer("", "five five") == 1.0
    assert wer("a b c d", "five five") == 2.0  # insertions count: WER can pass 1


class _StubDecoder:
    """``pocketsphinx.Decoder``'s interface, instant: hears each utterance as "n <samples>" and counts its decodes."""

    def __init__(self, **config):
        self.decoded, self.pcm = 0, None

    def start_utt(self):
        pass

    def process_raw(self, data, no_search, full_utt):
        self.pcm = np.frombuffer(data, np.int16)

    def end_utt(self):
        self.decoded += 1

    def hyp(self):
        return SimpleNamespace(hypstr=f"n {len(self.pcm)}", prob=0.5)


def test_budget_refuses_the_call_that_would_pass_it_before_decoding(monkeypatch):
    monkeypatch.setattr(asr_module, "_decoder_class", lambda: _StubDecoder)
    asr = SphinxASR(budget=5)
    assert asr(torch.zeros(2, 160)) == ["n 160", "n 160"]
    assert asr.queries == asr.decoder.decoded == 2 and asr.remaining == 3
    with pytest.raises(QueryBudgetExceeded, match=r"budget exceeded: 2 of 5 utterances used, this call asks for 4 "
                       r"more; raise budget= or lower the attack's max_queries="):
        asr(torch.zeros(4, 160))
    assert asr.queries == asr.decoder.decoded == 2 and asr.remaining == 3  # refused: nothing decoded, nothing billed
    assert asr.with_confidence(torch.zeros(3, 80)) == [("n 80", 0.5)] * 3  # exactly what the budget leaves
    assert asr.queries == asr.decoder.decoded == 5 and asr.remaining == 0
    with pytest.raises(QueryBudgetExceeded, match="5 of 5"):
        asr(torch.zeros(80))
    asr.reset()
    assert (asr.queries, asr.remaining, asr(torch.zeros(80)), asr.decoder.decoded) == (0, 5, "n 80", 6)
    assert SphinxASR().remaining is None
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="budget must be a whole number"):
            SphinxASR(budget=bad)


def test_attack_queries_are_the_utterances_decoded(monkeypatch):
    monkeypatch.setattr(asr_module, "_decoder_class", lambda: _StubDecoder)
    asr = SphinxASR(budget=10)
    asr(torch.zeros(80))  # spent before the attack: not the attack's
    res = TranscriptionAttack(Decibels(-30), max_queries=6, population=2, seed=0)(asr, torch.full((400,), 0.1))
    assert not res.success  # the stub hears only the length, which the attack cannot change
    assert res.queries == asr.decoder.decoded - 1 == asr.queries - 1 == 6
    assert asr.remaining == 3
