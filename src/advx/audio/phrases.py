"""Spoken command phrases: SYNTHETIC speech from ``espeak-ng`` for the CTC recogniser.

:func:`load_phrases` returns a :class:`SpokenPhrases`: (N, T) float32 waveforms at
16 kHz in [-1, 1] (2.5 s each), their transcriptions (lower-case words of
:data:`VOCABULARY`), and the voice of each clip.

**This is synthetic speech**: every clip is the Debian ``espeak-ng`` formant
synthesiser, not a person. A *voice* is an espeak-ng voice variant (its timbre;
~100 ship) in one of 8 English accents; the train / val / test splits are
disjoint by variant (the same hash as :func:`advx.audio.data.voice_split`), so
test voices -- in every accent -- were never heard in training. Each voice gets
its own base speed (130-190 words per minute) and pitch, each phrase its own rate
(85-125 %), pitch (+-25 %), loudness (peak 0.2-0.9) and position in the clip, all
drawn from a hash of (variant, accent): generation is deterministic.

The vocabulary (42 words) covers digits, playing cards (so that the real
``pocketsphinx-testdata`` "cards" recordings fall inside it), movement and home
commands; phrases are 2-4 words, three quarters from templates ("open the door",
"turn off the lights", "call nine one one", "seven of clubs", "go forward ten
meters", ...), one quarter random word sequences (so that the model learns words,
not only the templates). Phrases that come out longer than the clip are dropped
(counted in ``dropped``).

All phrases of a voice are rendered by one espeak-ng call (SSML, phrases separated
by 1 s breaks, cut at the breaks; a voice whose rendering cannot be cut cleanly is
rendered phrase by phrase). Cached as 16-bit arrays under
``$ADVX_HOME/audio/espeak-phrases-v1/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from advx.audio.data import (
    ACCENTS,
    SAMPLE_RATE,
    _split_words,
    _trim,
    advx_home,
    espeak_variants,
    synthesize,
    voice_split,
)
from advx.audio.resample import resample

__all__ = ["VOCABULARY", "SpokenPhrases", "load_phrases", "phrase_specs", "normalize_text", "PHRASES_VERSION"]

log = logging.getLogger(__name__)

PHRASES_VERSION = "espeak-phrases-v1"
CLIP_SECONDS = 2.5
_DIGITS = ("zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_CARDS = ("of", "queen", "king", "clubs", "spades", "hearts")
_MOVES = ("go", "forward", "backward", "meters")
_HOME = ("call", "open", "close", "the", "door", "window", "lights", "turn", "on", "off", "play", "stop", "music",
         "volume", "up", "down", "set", "alarm", "lock", "unlock")
VOCABULARY: tuple[str, ...] = _DIGITS + _CARDS + _MOVES + _HOME  #: the 42 words of the phrases
PER_VOICE = {"train": 12, "val": 3, "test": 4}  #: phrases per (variant, accent) voice
_GAP_S = 1.0


def normalize_text(text: str) -> str:
    """Lower case, letters and single spaces only (the recogniser's alphabet)."""
    kept = "".join(c if c.isalpha() and c.isascii() else " " for c in text.lower())
    return " ".join(kept.split())


def _phrase(r: np.random.Generator) -> str:
    pick = lambda seq: seq[int(r.integers(len(seq)))]  # noqa: E731
    digits = _DIGITS[:11]
    one_to_ten = _DIGITS[2:]
    kind = int(r.integers(12))
    if kind == 0:
        return " ".join(["call", *[pick(digits) for _ in range(int(r.integers(1, 4)))]])
    if kind == 1:
        return f"{pick(('open', 'close', 'lock', 'unlock'))} the {pick(('door', 'window'))}"
    if kind == 2:
        onoff = pick(("on", "off"))
        return pick((f"turn {onoff} the lights", f"turn the lights {onoff}", f"lights {onoff}",
                     f"turn {onoff} the music", f"turn {onoff} music"))
    if kind == 3:
        return pick(("play music", "stop music", "stop the music", "play the music", "volume up", "volume down",
                     "turn volume up", "turn volume down", "stop the alarm"))
    if kind == 4:
        return " ".join(["set", "alarm", *[pick(digits) for _ in range(int(r.integers(1, 3)))]])
    if kind == 5:
        way = pick(("forward", "backward"))
        return pick((f"go {way}", f"go {way} {pick(one_to_ten)} meters", f"go {way} {pick(one_to_ten)}"))
    if kind in (6, 7):
        return f"{pick(one_to_ten + ('queen', 'king'))} of {pick(('clubs', 'spades', 'hearts'))}"
    if kind == 8:
        return " ".join(pick(digits) for _ in range(int(r.integers(2, 5))))
    return " ".join(pick(VOCABULARY) for _ in range(int(r.integers(2, 5))))  # random words (a quarter)


def _voice_phrases(variant: str, accent: str, count: int) -> list[dict]:
    seed = int.from_bytes(hashlib.sha256(f"phrases|{variant}|{accent}".encode()).digest()[:8], "little")
    r = np.random.default_rng(seed)
    speed, pitch, order = int(r.integers(130, 191)), int(r.integers(20, 81)), float(r.uniform())
    return [{"variant": variant, "accent": accent, "text": _phrase(r), "speed": speed, "pitch": pitch,
             "order": order, "rate_pct": int(r.integers(85, 126)), "pitch_pct": int(r.integers(-25, 26)),
             "peak": float(r.uniform(0.2, 0.9)), "offset": float(r.uniform())} for _ in range(count)]


def phrase_specs(split: str) -> list[dict]:
    """The phrases of a split, grouped by voice in a fixed shuffled voice order."""
    if split not in PER_VOICE:
        raise ValueError(f"split must be one of {tuple(PER_VOICE)}, got {split!r}")
    voices = [_voice_phrases(v, a, PER_VOICE[split]) for v in espeak_variants() if voice_split(v) == split
              for a in ACCENTS]
    return [p for group in sorted(voices, key=lambda g: g[0]["order"]) for p in group]


def _synth_voice(specs: list[dict]) -> list[tuple[np.ndarray, int]]:
    p0 = specs[0]
    voice = f"{p0['accent']}+{p0['variant']}"
    parts = [f'<prosody rate="{p["rate_pct"]}%" pitch="{p["pitch_pct"]:+d}%">{p["text"]}</prosody>' for p in specs]
    text = "<speak>" + f'<break time="{int(_GAP_S * 1000)}ms"/>'.join(parts) + "</speak>"
    w, rate = synthesize(text, voice, p0["speed"], p0["pitch"], ssml=True)
    pieces = _split_words(w.numpy(), rate, len(specs), min_gap_s=0.5)  # pauses inside a phrase are far shorter
    if pieces is None:
        log.debug("voice %s: could not cut the SSML rendering; synthesising phrase by phrase", voice)
        pieces = [synthesize(p["text"], voice, p["speed"] * p["rate_pct"] // 100,
                             min(99, max(0, p["pitch"] * (100 + p["pitch_pct"]) // 100)))[0].numpy() for p in specs]
    return [(_trim(x, rate), rate) for x in pieces]


def _render(specs: list[dict], length: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """int16 clips (N, length) and a keep mask (False: the phrase is longer than the clip)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(specs):
        groups.setdefault((p["variant"], p["accent"]), []).append(i)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        voiced = list(pool.map(lambda rows: _synth_voice([specs[i] for i in rows]), groups.values()))
    out = np.zeros((len(specs), length), dtype=np.int16)
    keep = np.ones(len(specs), dtype=bool)
    for rows, clips in zip(groups.values(), voiced):
        for i, (w, rate) in zip(rows, clips):
            x = resample(torch.from_numpy(w.astype(np.float64)), rate, SAMPLE_RATE).numpy()
            if len(x) > length:
                keep[i] = False
                continue
            x = x * (specs[i]["peak"] / max(np.abs(x).max(), 1e-9))
            start = int(specs[i]["offset"] * (length - len(x)))
            out[i, start: start + len(x)] = np.clip(np.round(x * 32767), -32767, 32767).astype(np.int16)
    return out, keep


@dataclass
class SpokenPhrases:
    """A split of the synthetic command phrases."""

    waves: Tensor  #: (N, T) float32 in [-1, 1], 16 kHz
    texts: list[str]  #: transcription per clip
    speakers: list[str]  #: "accent+variant" per clip
    sample_rate: int = SAMPLE_RATE
    synthetic: bool = True
    dropped: int = 0  #: phrases longer than the clip, left out
    meta: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def x(self) -> Tensor:
        return self.waves

    @property
    def description(self) -> str:
        return ("SYNTHETIC speech (espeak-ng command phrases, 2-4 words of a 42-word vocabulary; "
                "voices disjoint from training)")


def load_phrases(split: str = "test", limit: int | None = None, root: str | Path | None = None,
                 workers: int | None = None) -> SpokenPhrases:
    """A split of the espeak-ng command phrases (SYNTHETIC speech; see the module docstring).

    ``limit`` keeps the first clips (whole voices first: a fixed shuffled voice order);
    the cache grows as larger limits are asked for.
    """
    specs = phrase_specs(split)
    if not specs:
        raise ValueError(f"the installed espeak-ng has no voice variants in split {split!r}")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be a positive number of clips or None, got {limit!r}")
    length = int(CLIP_SECONDS * SAMPLE_RATE)
    root = advx_home() if root is None else Path(root)
    cache = root / "audio" / PHRASES_VERSION / f"{split}.npz"
    have, kept = np.zeros((0, length), dtype=np.int16), np.zeros(0, dtype=bool)
    if cache.is_file():
        with np.load(cache) as f:
            have, kept = f["audio"], f["keep"]
    want = len(specs) if limit is None else min(len(specs), int(limit))
    # enough specs that ``want`` clips survive the length filter (dropped ones are rare)
    need = len(specs) if limit is None else min(len(specs), want + want // 10 + 8)
    if len(have) < need:
        log.info("synthesising %d espeak-ng phrases for split %r (cached at %s)", need - len(have), split, cache)
        w = workers or max(1, min(2, os.cpu_count() or 1))
        chunks, masks = [have], [kept]
        for s in range(len(have), need, 256):
            a, k = _render(specs[s: min(s + 256, need)], length, w)
            chunks.append(a)
            masks.append(k)
        have, kept = np.concatenate(chunks), np.concatenate(masks)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, audio=have, keep=kept, texts=json.dumps([p["text"] for p in specs[: len(have)]]))
        os.replace(tmp, cache)
    idx = np.flatnonzero(kept)[:want]
    dropped = int((~kept[: (idx[-1] + 1) if len(idx) else 0]).sum())
    return SpokenPhrases(
        waves=torch.from_numpy(have[idx].astype(np.float32) / 32768.0),
        texts=[specs[i]["text"] for i in idx], speakers=[f"{specs[i]['accent']}+{specs[i]['variant']}" for i in idx],
        dropped=dropped, meta=[specs[i] for i in idx],
    )
