"""The CTC recogniser's pieces: decoding (greedy, prefix beam search against an exhaustive sum),
the loss, the model's shapes and gradients, the log-mel floor, and the synthetic phrase data."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from advx.audio.ctc import (
    ALPHABET,
    BLANK,
    CTCRecognizer,
    ctc_loss,
    decode_ids,
    encode_text,
    greedy_decode,
    prefix_beam_search,
)
from advx.audio.frontend import LogMel


def test_encode_decode_and_refusal():
    ids = encode_text("Open  the door")
    assert decode_ids(ids.tolist()) == "open the door"
    assert ALPHABET[BLANK] == "_" and len(ALPHABET) == 28
    with pytest.raises(ValueError, match="cannot write"):
        encode_text("call 911")


def test_greedy_decode_merges_repeats_and_drops_blanks():
    a, b, sp = ALPHABET.index("a"), ALPHABET.index("b"), ALPHABET.index(" ")
    path = [a, a, BLANK, a, b, b, sp, sp, b, BLANK]
    lp = torch.full((len(path), len(ALPHABET)), -20.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = 0.0
    assert greedy_decode(lp) == ["aab b"]


def _exhaustive(lp: torch.Tensor) -> dict[str, float]:
    """log P(text) summed over every alignment (classes 0..C-1 map to ALPHABET[0..C-1])."""
    out: dict[str, float] = {}
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        p = float(sum(lp[t, c] for t, c in enumerate(path)))
        if p == -math.inf:
            continue
        ids = [c for i, c in enumerate(path) if c != BLANK and (i == 0 or c != path[i - 1])]
        text = "".join(ALPHABET[c] for c in ids)
        q = out.get(text, -math.inf)
        out[text] = max(p, q) + math.log1p(math.exp(-abs(p - q))) if q > -math.inf else p
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_beam_search_equals_the_sum_over_alignments(seed):
    g = torch.Generator().manual_seed(seed)
    lp = torch.log_softmax(torch.randn(5, 4, generator=g, dtype=torch.float64) * 2, dim=1)
    lp[:, 1] = -math.inf  # no spaces: classes blank, a, b
    lp = lp - torch.logsumexp(lp, 1, keepdim=True)
    truth = _exhaustive(lp)
    hyps = dict(prefix_beam_search(lp, beam=1000, prune=None))
    assert set(hyps) == set(truth)
    for text, p in truth.items():
        assert hyps[text] == pytest.approx(p, abs=1e-9)
    best = max(truth, key=truth.get)
    assert prefix_beam_search(lp, beam=1000, prune=None)[0][0] == best


def test_lexicon_keeps_only_whole_vocabulary_words():
    idx = {c: ALPHABET.index(c) for c in "cab "}
    path = "ca b"  # 'ca' then 'b': neither is a word, 'cab' is
    lp = torch.full((len(path), len(ALPHABET)), -30.0, dtype=torch.float64)
    for t, c in enumerate(path):
        lp[t, idx[c]] = -0.1
    lp[2, BLANK] = -0.5  # the space is likely, but 'ca' is no word
    lp = lp - torch.logsumexp(lp, 1, keepdim=True)
    assert prefix_beam_search(lp, beam=16)[0][0] == "ca b"
    assert prefix_beam_search(lp, beam=16, lexicon=["cab", "a"])[0][0] == "cab"


def test_ctc_recognizer_shapes_loss_and_input_gradient():
    torch.manual_seed(0)
    model = CTCRecognizer(n_mels=16, channels=8, hidden=8).eval()
    x = (torch.randn(3, 8000) * 0.1).requires_grad_(True)
    lp = model(x)
    assert lp.shape == (3, model.frames(8000), len(ALPHABET))
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, lp.shape[1]), atol=1e-5)
    loss = ctc_loss(lp, ["open the door", "call five", "on"])
    assert loss.shape == (3,) and bool(torch.isfinite(loss).all()) and bool((loss > 0).all())
    loss.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    # an impossible transcription (longer than the frames) costs 0, never inf or NaN
    assert float(ctc_loss(lp[:1, :3].detach(), ["open the door"])[0]) == 0.0


def test_log_mel_floor_relative_to_full_scale_ignores_near_silence():
    lm_abs, lm_rel = LogMel(), LogMel(floor_db=-70)
    assert lm_rel.floor == pytest.approx(1e4 * 1e-7)  # ((sum of Hann 400) / 2)^2 = 1e4
    silence = torch.zeros(1, 4000)
    hiss = torch.randn(1, 4000, generator=torch.Generator().manual_seed(0)) * 10 ** (-80 / 20)  # -80 dBFS
    moved_abs = float((lm_abs(silence + hiss) - lm_abs(silence)).abs().mean())
    moved_rel = float((lm_rel(silence + hiss) - lm_rel(silence)).abs().mean())
    assert moved_abs > 1.0  # several nats from a perturbation 80 dB below full scale
    assert moved_rel < 0.05
    with pytest.raises(ValueError, match="floor_db"):
        LogMel(floor_db=math.inf)


def test_phrases_are_synthetic_voice_disjoint_and_in_vocabulary(tmp_path):
    pytest.importorskip("scipy")
    from advx.audio.data import voice_split
    from advx.audio.phrases import VOCABULARY, load_phrases, normalize_text, phrase_specs

    assert normalize_text("Turn OFF, the lights!") == "turn off the lights"
    variants = {s: {p["variant"] for p in phrase_specs(s)} for s in ("train", "val", "test")}
    assert not variants["train"] & variants["test"] and not variants["train"] & variants["val"]
    assert all(voice_split(v) == "test" for v in variants["test"])
    specs = phrase_specs("train")
    assert all(2 <= len(p["text"].split()) <= 4 and set(p["text"].split()) <= set(VOCABULARY) for p in specs)
    assert specs[:5] == phrase_specs("train")[:5]  # deterministic
    data = load_phrases("test", limit=6, root=tmp_path)
    assert data.synthetic and "SYNTHETIC" in data.description
    assert data.waves.shape == (6, 40000) and len(data.texts) == 6
    peaks = data.waves.abs().amax(1)
    assert bool((peaks > 0.15).all()) and bool((peaks <= 1).all())
