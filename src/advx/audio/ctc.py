"""A small CTC speech recogniser on raw waveforms: 16 kHz audio in, characters out.

``CTCRecognizer`` maps waveforms (N, T) in [-1, 1] to per-frame log-probabilities
(N, frames, 28) over :data:`ALPHABET` (index 0 the CTC blank, then space and a-z),
one frame every 20 ms. Inside the model: the log-mel front end
(:class:`~advx.audio.frontend.LogMel`, 40 mels, its floor 70 dB below full scale),
per-clip mean removal, three 1-D convolutions over time (kernel 5, the second
with stride 2), one bidirectional GRU and a linear layer -- the
convolution-then-recurrence shape of Deep Speech 2 (Amodei et al., ICML 2016) at a
few hundred thousand parameters. Trained with connectionist temporal
classification (Graves, Fernandez, Gomez & Schmidhuber, ICML 2006) through
``torch.nn.functional.ctc_loss`` by ``advx train --arch ctc`` (:mod:`advx.audio.ctc_train`).

Decoding: :func:`greedy_decode` (best path: argmax per frame, repeats merged,
blanks dropped) and :func:`beam_decode`, a CTC prefix beam search (Hannun, Maas,
Jurafsky & Ng, 2014, https://arxiv.org/abs/1408.2873), optionally restricted to a
closed vocabulary (every word of a hypothesis must be a word of ``lexicon``).
The beam search is written here (about 50 lines): torchaudio's decoder is not
usable with this torch build, pyctcdecode (last release 2023) pins its own
dependencies and is built around KenLM language models this task does not need,
and ctcdecode needs a C++ build. It is tested against an exhaustive sum over all
alignments on small problems.

:func:`advx.audio.models.load_model` ("phrases-ctc") returns the committed weights, trained on
SYNTHETIC speech (espeak-ng command phrases, :mod:`advx.audio.phrases`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advx.audio.frontend import LogMel

__all__ = ["ALPHABET", "BLANK", "CTCRecognizer", "encode_text", "decode_ids", "greedy_decode", "beam_decode",
           "prefix_beam_search", "transcribe", "ctc_loss"]

ALPHABET = "_ abcdefghijklmnopqrstuvwxyz"  #: index 0 is the CTC blank
BLANK = 0
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def encode_text(text: str) -> Tensor:
    """Character ids (L,) of a lower-case transcription; ValueError on characters outside a-z and space."""
    text = " ".join(text.lower().split())
    bad = sorted({c for c in text if c not in _INDEX or c == "_"})
    if bad:
        raise ValueError(f"text {text!r} has characters the recogniser cannot write: {bad} (a-z and space only)")
    return torch.tensor([_INDEX[c] for c in text], dtype=torch.long)


def decode_ids(ids: Iterable[int]) -> str:
    """Ids (no blanks) back to a string, spaces normalised."""
    return " ".join("".join(ALPHABET[i] for i in ids if i != BLANK).split())


class CTCRecognizer(nn.Module):
    """Waveform (N, T) or (N, 1, T) -> log-probabilities (N, frames, len(ALPHABET))."""

    def __init__(self, n_mels: int = 40, channels: int = 96, hidden: int = 96, floor_db: float | None = -70.0,
                 sample_rate: int = 16000, spec_augment: bool = False):
        super().__init__()
        self.config = {"n_mels": n_mels, "channels": channels, "hidden": hidden, "floor_db": floor_db,
                       "sample_rate": sample_rate}
        self.frontend = LogMel(sample_rate=sample_rate, n_mels=n_mels, floor_db=floor_db)
        c = channels

        def conv(c_in: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv1d(c_in, c, 5, stride=stride, padding=2, bias=False), nn.BatchNorm1d(c), nn.ReLU()]

        self.conv = nn.Sequential(*conv(n_mels), *conv(c, 2), *conv(c))
        self.rnn = nn.GRU(c, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, len(ALPHABET))
        self.spec_augment = spec_augment  #: time and frequency masks on the features, in training mode only
        self.sample_rate = sample_rate

    def features(self, wave: Tensor) -> Tensor:
        f = self.frontend(wave)
        f = (f - f.mean(dim=(1, 2), keepdim=True)) / 4.0
        if self.training and self.spec_augment:
            f = _spec_augment(f)
        return f

    def forward(self, wave: Tensor) -> Tensor:
        h = self.conv(self.features(wave)).transpose(1, 2)  # (N, frames, channels)
        h, _ = self.rnn(h)
        return F.log_softmax(self.out(h), dim=-1)

    def frames(self, samples: int) -> int:
        """Output frames for a clip of ``samples`` samples."""
        stft_frames = samples // self.frontend.hop_length + 1
        return (stft_frames - 1) // 2 + 1


def _spec_augment(f: Tensor, freq_width: int = 6, time_width: int = 12, time_masks: int = 2) -> Tensor:
    """SpecAugment (Park et al., Interspeech 2019) without time warping: one frequency and two time masks."""
    n, mels, frames = f.shape
    keep = torch.ones_like(f)
    ar_m, ar_t = torch.arange(mels, device=f.device), torch.arange(frames, device=f.device)
    w = torch.randint(0, freq_width + 1, (n, 1), device=f.device)
    s = (torch.rand(n, 1, device=f.device) * (mels - w)).long()
    keep = keep * ~((ar_m[None] >= s) & (ar_m[None] < s + w))[:, :, None]
    for _ in range(time_masks):
        w = torch.randint(0, time_width + 1, (n, 1), device=f.device)
        s = (torch.rand(n, 1, device=f.device) * (frames - w)).long()
        keep = keep * ~((ar_t[None] >= s) & (ar_t[None] < s + w))[:, None, :]
    return f * keep


def ctc_loss(log_probs: Tensor, texts: list[str] | list[Tensor], reduction: str = "none") -> Tensor:
    """CTC loss of (N, frames, C) log-probabilities against transcriptions; per clip with ``reduction="none"``.

    ``zero_infinity``: a transcription longer than the frames allow costs 0 instead of inf (and no NaN gradient).
    """
    targets = [t if isinstance(t, Tensor) else encode_text(t) for t in texts]
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    flat = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long)
    n, frames = log_probs.shape[:2]
    in_len = torch.full((n,), frames, dtype=torch.long)
    loss = F.ctc_loss(log_probs.transpose(0, 1), flat.to(log_probs.device), in_len, lengths, blank=BLANK,
                      reduction="none", zero_infinity=True)
    if reduction == "none":
        return loss
    if reduction == "mean":  # per character, as torch's "mean"
        return (loss / lengths.clamp_min(1).to(loss)).mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def greedy_decode(log_probs: Tensor) -> list[str]:
    """Best-path decoding of (N, frames, C) (or (frames, C)) log-probabilities."""
    if log_probs.dim() == 2:
        log_probs = log_probs[None]
    out = []
    for path in log_probs.argmax(-1).tolist():
        ids = [c for i, c in enumerate(path) if c != BLANK and (i == 0 or c != path[i - 1])]
        out.append(decode_ids(ids))
    return out


def _lse(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def prefix_beam_search(log_probs: Tensor, beam: int = 8, prune: float | None = -12.0,
                       lexicon: Iterable[str] | None = None) -> list[tuple[str, float]]:
    """CTC prefix beam search over one clip's (frames, C) log-probabilities.

    Each prefix keeps two log-probabilities: of the alignments ending in a blank and
    ending in its last character; a repeated character extends a prefix only from
    its blank-ending alignments. ``prune``: characters with a log-probability below it
    at a frame are not tried there (None: all). ``lexicon``: the words allowed; a
    prefix whose last (partial) word starts no allowed word is dropped, and a final
    hypothesis must end on a whole word. Returns up to ``beam`` (text, log-probability)
    pairs, best first.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must have shape (frames, classes), got {tuple(log_probs.shape)}")
    if int(beam) < 1:
        raise ValueError(f"beam must be >= 1, got {beam!r}")
    words = None if lexicon is None else {w.strip().lower() for w in lexicon if w.strip()}
    starts = None if words is None else {w[:i] for w in words for i in range(len(w) + 1)}
    space = _INDEX[" "]

    def allowed(prefix: tuple[int, ...]) -> bool:
        if starts is None:
            return True
        text = "".join(ALPHABET[i] for i in prefix)
        if text.startswith(" ") or "  " in text:
            return False
        last = text.rsplit(" ", 1)[-1]
        if text.endswith(" "):  # a word just finished: it must be whole
            return text[:-1].rsplit(" ", 1)[-1] in words
        return last in starts

    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
    lp = log_probs.detach().double().cpu()
    for t in range(lp.shape[0]):
        row = lp[t].tolist()
        chars = [c for c in range(len(row)) if c != BLANK and row[c] > -math.inf and (prune is None or row[c] >= prune)]
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(prefix, blank_p=-math.inf, char_p=-math.inf, nxt=nxt):
            e = nxt.setdefault(prefix, [-math.inf, -math.inf])
            e[0], e[1] = _lse(e[0], blank_p), _lse(e[1], char_p)

        for prefix, (pb, pnb) in beams.items():
            total = _lse(pb, pnb)
            add(prefix, blank_p=total + row[BLANK])
            for c in chars:
                new = prefix + (c,)
                if prefix and prefix[-1] == c:
                    add(prefix, char_p=pnb + row[c])  # the repeat merges into the same character
                    if allowed(new):
                        add(new, char_p=pb + row[c])  # after a blank: a new character
                elif allowed(new) and not (c == space and not prefix):
                    add(new, char_p=total + row[c])
        beams = dict(sorted(((k, (v[0], v[1])) for k, v in nxt.items()), key=lambda kv: -_lse(*kv[1]))[: int(beam)])
    scored: dict[str, float] = {}
    for prefix, (pb, pnb) in beams.items():
        if _lse(pb, pnb) == -math.inf:
            continue
        text = decode_ids(prefix)
        if words is not None and text and text.rsplit(" ", 1)[-1] not in words:
            continue
        scored[text] = _lse(scored.get(text, -math.inf), _lse(pb, pnb))
    return sorted(scored.items(), key=lambda kv: -kv[1])


def beam_decode(log_probs: Tensor, beam: int = 8, lexicon: Iterable[str] | None = None,
                prune: float | None = -12.0) -> list[str]:
    """Prefix beam search per clip of (N, frames, C) log-probabilities; the best text each ("" if none)."""
    if log_probs.dim() == 2:
        log_probs = log_probs[None]
    lex = None if lexicon is None else tuple(lexicon)
    out = []
    for lp in log_probs:
        hyps = prefix_beam_search(lp, beam=beam, prune=prune, lexicon=lex)
        out.append(hyps[0][0] if hyps else "")
    return out


@torch.no_grad()
def transcribe(model: nn.Module, waves: Tensor, decoder: str = "greedy", beam: int = 8,
               lexicon: Iterable[str] | None = None, batch: int = 64) -> list[str]:
    """Transcriptions of waveforms (N, T): ``decoder`` "greedy" or "beam" (with an optional ``lexicon``)."""
    if decoder not in ("greedy", "beam"):
        raise ValueError(f"decoder must be 'greedy' or 'beam', got {decoder!r}")
    was = model.training
    model.eval()
    try:
        out: list[str] = []
        for s in range(0, len(waves), batch):
            lp = model(waves[s: s + batch])
            out += greedy_decode(lp) if decoder == "greedy" else beam_decode(lp, beam=beam, lexicon=lexicon)
        return out
    finally:
        model.train(was)
