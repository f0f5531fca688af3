"""The CTC recogniser's training pieces (``phrases-ctc``, SYNTHETIC speech) and its evaluation.

The recipe runs through the project's one training loop, ``advx.defenses.loop.train``,
composed by the command line (``advx.audio`` never imports ``advx.defenses``;
``advx.cli.train`` puts these pieces together)::

    advx train --arch ctc --data phrases --epochs 6 --batch-size 32 --lr 0.003 --optimizer adamw \\
        --weight-decay 1e-4 --schedule onecycle --lr-warmup 0.15 --threads 1 --out runs/phrases-ctc.safetensors

This module gives it: :class:`PhraseBatches` (the phrases as the loop's ``Batches``),
:func:`ctc_step` (the objective: CTC per character), :func:`augment` (the playback
transforms of :mod:`advx.audio.transforms`: room response, gain, shift, noise; the
model adds SpecAugment masks itself in training mode), and the scoring:
:func:`word_error_rate`, :func:`evaluate_recognizer` (greedy, beam and
closed-vocabulary beam decoding) and :func:`real_clips`, the real
``pocketsphinx-testdata`` recordings whose words lie in the vocabulary.

Data: the espeak-ng command phrases (:mod:`advx.audio.phrases`), train split (6720
clips of 560 voices); the val split (other voices) picks the best epoch by greedy
word error rate; the test split (voices never heard in training) and the real
recordings are scored at the end. The committed weights were trained by this
module's former private loop (``python -m advx.audio.ctc_train``, named in the
sidecar under ``trained_with``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from advx.audio.asr import TESTDATA, wer
from advx.audio.ctc import CTCRecognizer, ctc_loss, encode_text, transcribe
from advx.audio.phrases import PHRASES_VERSION, VOCABULARY, load_phrases
from advx.audio.transforms import AddNoise, RandomGain, RandomShift, RoomResponse

__all__ = ["word_error_rate", "char_error_rate", "real_clips", "evaluate_recognizer", "PhraseBatches", "ctc_step",
           "augment", "REAL_CLIPS", "evaluate_real"]

#: pocketsphinx-testdata recordings whose every word is in VOCABULARY: (file, reference, format)
REAL_CLIPS = (
    ("cards/001.wav", "ten of clubs"), ("cards/002.wav", "four queen of clubs"), ("cards/003.wav", "seven of clubs"),
    ("cards/004.wav", "five five"), ("cards/005.wav", "eight of spades four of clubs seven of hearts"),
    ("goforward.raw", "go forward ten meters"), ("tidigits/dhd.2934z.raw", "two nine three four zero"),
)


def real_clips(root: Path = TESTDATA) -> list[tuple[str, Tensor, str]]:
    """(name, waveform (T,) at 16 kHz, reference) for the in-vocabulary real recordings that are installed."""
    from advx.audio.wav import read_wav  # noqa: PLC0415

    out = []
    for rel, ref in REAL_CLIPS:
        path = Path(root) / rel
        if not path.is_file():
            continue
        if path.suffix == ".raw":  # headerless 16-bit little-endian mono at 16 kHz (as pocketsphinx reads it)
            wave = torch.from_numpy(np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0)
        else:
            wave, rate = read_wav(path)
            if rate != 16000 or wave.dim() != 1:
                continue
        out.append((rel, wave, ref))
    return out


def word_error_rate(hyps: list[str], refs: list[str]) -> float:
    """Corpus WER: word errors summed over clips / reference words summed."""
    errors = sum(wer(h, r) * len(r.split()) for h, r in zip(hyps, refs))
    return errors / max(1, sum(len(r.split()) for r in refs))


def char_error_rate(hyps: list[str], refs: list[str]) -> float:
    from advx.audio.asr import _edit_distance  # noqa: PLC0415

    errors = sum(_edit_distance(list(h), list(r)) for h, r in zip(hyps, refs))
    return errors / max(1, sum(len(r) for r in refs))


def augment(x: Tensor, g: torch.Generator) -> Tensor:
    """The recipe's playback augmentation of a batch of waveforms (N, T), drawn from ``g``: a room response
    (RT60 0.1-0.6 s) on half the clips, gain -12..+3 dB, a time shift of up to 50 ms, noise at 5-40 dB SNR on 70%
    of them. ``augment(x, generator) -> x`` is what the shared training loop takes."""
    n = len(x)
    room = RoomResponse(rt60=(0.1, 0.6))(x, g)
    x = torch.where((torch.rand(n, generator=g) < 0.5)[:, None], room, x)
    x = RandomShift(800)(RandomGain((-12.0, 3.0))(x, g), g)
    noisy = AddNoise((5.0, 40.0))(x, g)
    return torch.where((torch.rand(n, generator=g) < 0.7)[:, None], noisy, x)



class PhraseBatches:
    """The phrases as the shared training loop's ``Batches``: ``batch(idx) -> (waves, (targets, lengths))``.

    ``targets`` is the concatenation of the character ids of the clips' transcriptions,
    ``lengths`` their lengths (what ``torch.nn.functional.ctc_loss`` takes).
    """

    def __init__(self, split: str = "train", limit: int | None = None):
        data = load_phrases(split, limit=limit)
        self.pcm = torch.round(data.waves * 32768).to(torch.int16)
        self.texts = data.texts
        self.ids = [encode_text(t) for t in data.texts]

    def __len__(self) -> int:
        return len(self.texts)

    def batch(self, idx: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        picked = [self.ids[i] for i in idx.tolist()]
        return (self.pcm[idx].float() / 32768.0,
                (torch.cat(picked), torch.tensor([len(t) for t in picked], dtype=torch.long)))

    def fingerprint(self) -> dict:
        return {"data": PHRASES_VERSION, "clips": len(self), "texts": hash_texts(self.texts)}


def hash_texts(texts: list[str]) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def ctc_step(model, x: Tensor, y: tuple[Tensor, Tensor], generator=None) -> tuple[Tensor, None]:
    """The recipe's objective for the shared loop: CTC loss per character, averaged over the batch."""
    targets, lengths = y
    parts = list(torch.split(targets, lengths.tolist()))
    return ctc_loss(model(x), parts, reduction="mean"), None


def evaluate_recognizer(model: CTCRecognizer, waves: Tensor, texts: list[str], beam: bool = True) -> dict:
    """WER / CER with greedy decoding, and (``beam``) prefix beam search with and without the vocabulary."""
    out = {}
    hyps = transcribe(model, waves)
    out["greedy"] = {"wer": word_error_rate(hyps, texts), "cer": char_error_rate(hyps, texts),
                     "exact": float(np.mean([h == t for h, t in zip(hyps, texts)]))}
    if beam:
        for key, lex in (("beam8", None), ("beam8_vocabulary", VOCABULARY)):
            h = transcribe(model, waves, decoder="beam", beam=8, lexicon=lex)
            out[key] = {"wer": word_error_rate(h, texts), "cer": char_error_rate(h, texts),
                        "exact": float(np.mean([a == b for a, b in zip(h, texts)]))}
    out["examples"] = [{"reference": t, "greedy": h} for t, h in list(zip(texts, hyps))[:8]]
    return out


def evaluate_real(model: CTCRecognizer, clips: list[tuple[str, Tensor, str]] | None = None) -> dict | None:
    """WER of ``model`` on the real in-vocabulary recordings (:func:`real_clips`; None if none is installed):
    greedy and closed-vocabulary beam decoding, with each clip's transcriptions."""
    clips = real_clips() if clips is None else clips
    if not clips:
        return None
    device = next(model.parameters()).device
    per = [{"clip": name, "reference": ref, "greedy": transcribe(model, w[None].to(device))[0],
            "beam8_vocabulary": transcribe(model, w[None].to(device), decoder="beam", lexicon=VOCABULARY)[0]}
           for name, w, ref in clips]
    refs = [ref for _, _, ref in clips]
    return {"clips": len(clips), "words": sum(len(r.split()) for r in refs),
            "note": "real recordings of people (Debian pocketsphinx-testdata) whose words are all in the vocabulary",
            "greedy_wer": word_error_rate([p["greedy"] for p in per], refs),
            "beam8_vocabulary_wer": word_error_rate([p["beam8_vocabulary"] for p in per], refs), "per_clip": per}
