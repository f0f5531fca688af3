"""A real speech recogniser as a black box: CMU PocketSphinx, transcriptions only.

:class:`SphinxASR` wraps the ``pocketsphinx`` decoder of PyPI ``pocketsphinx``
(CMU Sphinx: its US-English acoustic model, language model and dictionary ship
with the package) as an API would expose it: a 16 kHz mono waveform goes in, a
transcription string comes out, nothing else. Like the views of :mod:`advx.model.blackbox`
it is :class:`~advx.model.blackbox.Budgeted`: the utterances it decodes (``queries``) are
billed to an :class:`advx.model.Budget` (the one hard-cap rule), and a call that would pass
``budget`` raises :class:`~advx.model.QueryBudgetExceeded` *before* anything is decoded.

The decoder reads 16-bit PCM: a float waveform in [-1, 1] is rounded to the
16-bit grid (``round(v * 32768)``, as :func:`advx.audio.write_wav` does), so
a waveform and the 16-bit WAV file written from it transcribe the same.

:func:`sphinx_clips` loads the real recordings of Debian ``pocketsphinx-testdata``
(``cards``: five short clips of spoken playing cards; ``librivox``: five
sentences of an audiobook) with their reference transcriptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advx.audio.wav import read_wav
from advx.data.base import DataNotFoundError
from advx.model.blackbox import Budgeted

__all__ = ["SphinxASR", "SphinxClip", "sphinx_clips", "word_errors", "wer", "TESTDATA"]

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
SAMPLE_RATE = 16000


def _decoder_class():
    try:
        from pocketsphinx import Decoder  # noqa: PLC0415 -- optional dependency (the audio extra)
    except ImportError as e:
        raise ImportError(
            "SphinxASR needs the CMU PocketSphinx recogniser: pip install pocketsphinx "
            "(or pip install 'advx[audio]'); it ships the US-English model"
        ) from e
    return Decoder


class SphinxASR(Budgeted):
    """PocketSphinx speech recognition as a black box: waveform in, transcription out.

    Args:
        budget: total utterances the recogniser may decode (None: unlimited).
        sample_rate: the rate of the waveforms given; the model is 16 kHz
            (resample other rates with :func:`advx.audio.resample`).
        **config: options of ``pocketsphinx.Decoder`` (e.g. ``hmm``, ``lm``, ``dict``,
            ``jsgf``, ``beam``); none: the shipped US-English model and language model.

    Call it with a float waveform in [-1, 1] of shape (T,) (returns a string) or
    (N, T) (returns a list of N strings; N queries).
    """

    def __init__(self, budget: int | None = None, sample_rate: int = SAMPLE_RATE, **config: Any):
        self._open_bill(budget, unit="utterances", fix="; raise budget= or lower the attack's max_queries=")
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"sample_rate must be {SAMPLE_RATE} (the model's rate), got {sample_rate!r}; "
                             "resample the waveform first with advx.audio.resample")
        decoder = _decoder_class()
        config.setdefault("loglevel", "FATAL")
        self.config = dict(config)
        self.decoder = decoder(**config)
        self.sample_rate = SAMPLE_RATE

    @staticmethod
    def pcm16(wave: Tensor) -> np.ndarray:
        """The 16-bit samples the decoder hears for a float waveform (shape kept)."""
        a = torch.as_tensor(wave).detach().cpu().double().numpy()
        return np.clip(np.round(a * 32768.0), -32768, 32767).astype(np.int16)

    def _check(self, wave: Tensor) -> Tensor:
        if not isinstance(wave, Tensor):
            wave = torch.as_tensor(np.asarray(wave))
        if wave.dim() not in (1, 2) or wave.shape[-1] == 0:
            raise ValueError(f"wave must be a mono waveform (T,) or a batch (N, T), got shape {tuple(wave.shape)}")
        if not wave.is_floating_point():
            raise TypeError(f"wave must be float samples in [-1, 1], got {wave.dtype}; divide 16-bit samples by 32768")
        if not bool(torch.isfinite(wave).all()) or float(wave.abs().max()) > 1.0:
            raise ValueError("wave must hold finite samples in [-1, 1]")
        return wave

    def __call__(self, wave: Tensor) -> str | list[str]:
        out = self._run(wave)
        texts = [t for t, _ in out]
        return texts[0] if torch.as_tensor(wave).dim() == 1 else texts

    transcribe = __call__

    def with_confidence(self, wave: Tensor) -> tuple[str, float] | list[tuple[str, float]]:
        """Transcriptions with the decoder's posterior probability of each (in [0, 1]); same queries as a call.

        Many speech APIs return such a confidence next to the words; an attack that reads it is a
        score-based black box, one that reads only the words a decision-based one.
        """
        out = self._run(wave)
        return out[0] if torch.as_tensor(wave).dim() == 1 else out

    def _run(self, wave: Tensor) -> list[tuple[str, float]]:
        wave = self._check(wave)
        batch = wave.reshape(-1, wave.shape[-1])
        self._spend(batch.shape[0])
        return [self._decode(row) for row in self.pcm16(batch)]

    def _decode(self, pcm: np.ndarray) -> tuple[str, float]:
        d = self.decoder
        d.start_utt()
        d.process_raw(np.ascontiguousarray(pcm).tobytes(), no_search=False, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        if hyp is None:
            return "", 0.0
        return " ".join(hyp.hypstr.split()), float(min(max(hyp.prob, 0.0), 1.0))

    def __repr__(self) -> str:
        return f"SphinxASR(budget={self.budget}, queries={self.queries})"


# --- word error rate ---------------------------------------------------------------------------

def _edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, ai in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, bj in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ai != bj))
    return row[-1]


def word_errors(hypothesis: str, reference: str) -> int:
    """Word-level Levenshtein distance: substitutions + insertions + deletions."""
    return _edit_distance(hypothesis.split(), reference.split())


def wer(hypothesis: str, reference: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``: word errors / words in the reference.

    An empty reference gives 0 for an empty hypothesis and the hypothesis' length (as if one word) otherwise.
    """
    errors, words = word_errors(hypothesis, reference), len(reference.split())
    return errors / max(words, 1)


# --- the real recordings of pocketsphinx-testdata -------------------------------------------------

@dataclass
class SphinxClip:
    """One recording of ``pocketsphinx-testdata``: name, float waveform (T,) at 16 kHz, reference words."""

    name: str
    wave: Tensor
    reference: str
    path: Path


_LINE = re.compile(r"^\s*(?:<s>)?\s*(?P<words>.*?)\s*(?:</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")


def _references(folder: Path) -> dict[str, str]:
    files = sorted(folder.glob("*.transcription")) + [p for p in (folder / "transcription",) if p.is_file()]
    refs: dict[str, str] = {}
    for f in files:
        for line in f.read_text().splitlines():
            m = _LINE.match(line)
            if m:
                refs[m["id"]] = " ".join(m["words"].lower().split())
    return refs


def sphinx_clips(subset: str = "cards", root: str | Path = TESTDATA) -> list[SphinxClip]:
    """The real recordings of Debian ``pocketsphinx-testdata``, sorted by name, with their transcriptions.

    Args:
        subset: "cards" (five clips of 1-3.5 s: spoken playing cards) or "librivox" (five 3-7 s sentences
            read from an audiobook).
        root: where the package put its data.
    """
    if subset not in ("cards", "librivox"):
        raise ValueError(f"subset must be 'cards' or 'librivox', got {subset!r}")
    folder = Path(root) / subset
    wavs = sorted(folder.glob("*.wav"))
    if not wavs:
        raise DataNotFoundError(
            f"no pocketsphinx test recordings in {folder}; install them with: sudo apt-get install pocketsphinx-testdata "
            "(Debian/Ubuntu; scripts/system-deps.sh does it)"
        )
    refs = _references(folder)
    clips = []
    for p in wavs:
        wave, rate = read_wav(p)
        if rate != SAMPLE_RATE or wave.dim() != 1:
            raise ValueError(f"{p} is not 16 kHz mono (rate {rate}, shape {tuple(wave.shape)})")
        clips.append(SphinxClip(p.stem, wave, refs.get(p.stem, ""), p))
    return clips
