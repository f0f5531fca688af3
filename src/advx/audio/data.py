"""Spoken digits: synthetic speech from ``espeak-ng``, or the Free Spoken Digit recordings.

Both sources load through :func:`load_digits` into a :class:`SpokenDigits`:
(N, T) float32 waveforms at 16 kHz in [-1, 1], one second long, labels 0-9.

``source="espeak"`` (the default, offline) is SYNTHETIC SPEECH: the ten digit
words spoken by the Debian ``espeak-ng`` formant synthesiser in 8 English
accents x every installed voice variant (~100), each clip at its own speed,
pitch, loudness and position in the second. A *voice* is a variant (its timbre
in any accent); the train / val / test splits are disjoint by voice (a hash of
the variant name), so test voices were never heard in training. Generation is
deterministic and cached under ``$ADVX_HOME/audio`` (default ~/.cache/advx).

``source="fsdd"`` is the real Free Spoken Digit Dataset (Jackson et al., v1.0.9,
https://github.com/Jakobovski/free-spoken-digit-dataset): downloaded once when a
network exists, checked against its SHA-256, resampled from 8 to 16 kHz, with
splits disjoint by speaker.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
import tarfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from advx.audio.resample import resample
from advx.audio.wav import _to_float, parse_wav

__all__ = ["SpokenDigits", "load_digits", "DIGITS", "ACCENTS", "SAMPLE_RATE", "espeak_variants", "synthesize",
           "voice_split", "read_fsdd_archive", "FSDD_URL", "FSDD_SHA256"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-029", "en-us-nyc")
SPLITS = ("train", "val", "test")
_VERSION = "espeak-digits-v1"

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/v1.0.9.tar.gz"
FSDD_SHA256 = "8bc44cde129d505cbbb6b365c09f80c663f2aa77578afc634e6141a2f87100c0"
FSDD_SIZE = 11975353
FSDD_SPLIT = {"lucas": "val", "theo": "test"}  # the other speakers train


@dataclass
class SpokenDigits:
    """A split of a spoken-digit data set."""

    waves: Tensor  #: (N, T) float32 in [-1, 1]
    labels: Tensor  #: (N,) int64 digit
    speakers: list[str]  #: voice (espeak: "accent+variant") or speaker name, per clip
    sample_rate: int = SAMPLE_RATE
    source: str = "espeak"
    synthetic: bool = True  #: True for espeak-ng output: synthetic speech, not recordings
    classes: tuple[str, ...] = DIGITS
    meta: list[dict] = field(default_factory=list)  #: per clip: speed, pitch, ... (espeak)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def x(self) -> Tensor:
        """The waveforms, under the name every advx data set uses for inputs."""
        return self.waves

    @property
    def y(self) -> Tensor:
        """The labels, under the name every advx data set uses."""
        return self.labels

    @property
    def description(self) -> str:
        if self.synthetic:
            return "synthetic speech (espeak-ng spoken digits, voices disjoint from training)"
        return f"recorded speech ({self.source})"


def advx_home() -> Path:
    return Path(os.environ.get("ADVX_HOME", Path.home() / ".cache" / "advx")).expanduser()


# --------------------------------------------------------------------- espeak
def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed; install it with `apt-get install espeak-ng` "
                                "(scripts/system-deps.sh) or use source='fsdd'")
    return exe


def espeak_variants() -> list[str]:
    """The voice variants of the installed espeak-ng, sorted (e.g. 'm3', 'f2', 'croak')."""
    out = subprocess.run([_espeak(), "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = {line[line.index("!v/") + 3:].strip() for line in out.splitlines()[1:] if "!v/" in line}
    return sorted(n for n in names if n and not any(c.isspace() for c in n))  # skip names with spaces


def voice_split(variant: str) -> str:
    """'train', 'val' or 'test' for a voice variant: a fixed hash, so splits never share a voice."""
    h = int.from_bytes(hashlib.sha256(variant.encode()).digest()[:4], "little") % 100
    return "train" if h < 70 else "val" if h < 85 else "test"


def _voice_params(variant: str, accent: str) -> list[dict]:
    """The ten clips of one voice: a base speed and pitch, then per word a rate, pitch, loudness and position."""
    seed = int.from_bytes(hashlib.sha256(f"{variant}|{accent}".encode()).digest()[:8], "little")
    r = np.random.default_rng(seed)
    speed, pitch, order = int(r.integers(120, 191)), int(r.integers(20, 81)), float(r.uniform())
    return [{"variant": variant, "accent": accent, "digit": d, "speed": speed, "pitch": pitch, "order": order,
             "rate_pct": int(r.integers(80, 126)), "pitch_pct": int(r.integers(-25, 26)),
             "peak": float(r.uniform(0.2, 0.9)), "offset": float(r.uniform())} for d in range(10)]


def synthesize(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50,
               ssml: bool = False) -> tuple[Tensor, int]:
    """espeak-ng output for ``text``: (float32 waveform, sample rate), before resampling."""
    cmd = [_espeak(), "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)), "--stdout"]
    data = subprocess.run([*cmd, *(["-m"] if ssml else []), text], capture_output=True, check=True).stdout
    return parse_wav(data)


def _trim(w: np.ndarray, rate: int, rel: float = 0.02, margin_s: float = 0.01) -> np.ndarray:
    peak = np.abs(w).max() if w.size else 0.0
    if peak == 0:
        return w
    loud = np.flatnonzero(np.abs(w) > rel * peak)
    m = int(margin_s * rate)
    return w[max(0, loud[0] - m): loud[-1] + m + 1]


_GAP_S = 0.8  # the SSML break between words


def _split_words(w: np.ndarray, rate: int, n: int, rel: float = 0.01, min_gap_s: float = 0.15) -> list | None:
    """Cut a recording of ``n`` words at its ``n - 1`` longest interior pauses (10 ms frames with RMS
    below ``rel`` x the loudest frame); None if any of them is shorter than ``min_gap_s``."""
    hop = rate // 100
    t = len(w) // hop
    if t < 2:
        return None
    rms = np.sqrt((w[: t * hop].reshape(t, hop).astype(np.float64) ** 2).mean(1))
    quiet = rms < rel * rms.max()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    runs = [(b, e) for b, e in zip(edges[::2], edges[1::2]) if b > 0 and e < t]
    runs = sorted(sorted(runs, key=lambda r: r[0] - r[1])[: n - 1])
    if len(runs) != n - 1 or any(e - b < min_gap_s * 100 for b, e in runs):
        return None
    cuts = [0, *[(b + e) // 2 * hop for b, e in runs], len(w)]
    return [w[cuts[i]: cuts[i + 1]] for i in range(n)]


def _synth_voice(specs: list[dict]) -> list[tuple[np.ndarray, int]]:
    """All words of one voice in one espeak-ng call (SSML with breaks), split apart; per word if that fails."""
    p0 = specs[0]
    voice = f"{p0['accent']}+{p0['variant']}"
    parts = [f'<prosody rate="{p["rate_pct"]}%" pitch="{p["pitch_pct"]:+d}%">{DIGITS[p["digit"]]}</prosody>'
             for p in specs]
    text = "<speak>" + f'<break time="{int(_GAP_S * 1000)}ms"/>'.join(parts) + "</speak>"
    w, rate = synthesize(text, voice, p0["speed"], p0["pitch"], ssml=True)
    words = _split_words(w.numpy(), rate, len(specs))
    if words is None:
        log.debug("voice %s: could not split the SSML rendering; synthesising word by word", voice)
        words = [synthesize(DIGITS[p["digit"]], voice, p["speed"] * p["rate_pct"] // 100,
                            min(99, max(0, p["pitch"] * (100 + p["pitch_pct"]) // 100)))[0].numpy() for p in specs]
    return [(_trim(x, rate), rate) for x in words]


def _render(specs: list[dict], length: int) -> np.ndarray:
    """Synthesise, trim, resample to 16 kHz, normalise the peak, place in the clip: int16 (N, length)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(specs):
        groups.setdefault((p["variant"], p["accent"]), []).append(i)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        voiced = list(pool.map(lambda rows: _synth_voice([specs[i] for i in rows]), groups.values()))
    raw: list = [None] * len(specs)
    for rows, clips in zip(groups.values(), voiced):
        for i, clip in zip(rows, clips):
            raw[i] = clip
    out = np.zeros((len(specs), length), dtype=np.int16)
    for rate in {r for _, r in raw}:
        rows = [i for i, (_, r) in enumerate(raw) if r == rate]
        batch = torch.zeros(len(rows), max(len(raw[i][0]) for i in rows), dtype=torch.float64)
        for j, i in enumerate(rows):
            batch[j, : len(raw[i][0])] = torch.from_numpy(raw[i][0].astype(np.float64))
        res = resample(batch, rate, SAMPLE_RATE).numpy()
        for j, i in enumerate(rows):
            n = min(-(-len(raw[i][0]) * SAMPLE_RATE // rate), res.shape[1])
            w = res[j, :n]
            if n > length:  # keep the middle of an over-long word
                log.debug("clip %s is %.2f s long; cropped to %.2f s", specs[i], n / SAMPLE_RATE, length / SAMPLE_RATE)
                w, n = w[(n - length) // 2: (n - length) // 2 + length], length
            w = w * (specs[i]["peak"] / max(np.abs(w).max(), 1e-9))
            start = int(specs[i]["offset"] * (length - n))
            out[i, start: start + n] = np.clip(np.round(w * 32767), -32767, 32767).astype(np.int16)
    return out


def _espeak_specs(split: str) -> list[dict]:
    """Clips of a split, grouped by voice in a fixed shuffled voice order (a prefix of 10 k clips = k voices)."""
    voices = [_voice_params(v, a) for v in espeak_variants() if voice_split(v) == split for a in ACCENTS]
    return [p for group in sorted(voices, key=lambda g: g[0]["order"]) for p in group]


def _load_espeak(split: str, limit: int | None, root: Path, length: int) -> SpokenDigits:
    specs = _espeak_specs(split)
    if not specs:
        raise ValueError(f"the installed espeak-ng has no voice variants in split {split!r}")
    want = len(specs) if limit is None else min(int(limit), len(specs))
    cache = root / "audio" / _VERSION / f"{split}-{length}.npz"
    have = np.zeros((0, length), dtype=np.int16)
    if cache.is_file():
        with np.load(cache) as f:
            have = f["audio"]
    if len(have) < want:
        log.info("synthesising %d espeak-ng clips for split %r (cached at %s)", want - len(have), split, cache)
        chunks = [have]
        for s in range(len(have), want, 320):
            chunks.append(_render(specs[s: min(s + 320, want)], length))
        have = np.concatenate(chunks)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, audio=have)
        os.replace(tmp, cache)
    specs = specs[:want]
    return SpokenDigits(
        waves=torch.from_numpy(have[:want].astype(np.float32) / 32768.0),
        labels=torch.tensor([p["digit"] for p in specs], dtype=torch.long),
        speakers=[f"{p['accent']}+{p['variant']}" for p in specs],
        source="espeak", synthetic=True, meta=specs,
    )


# ----------------------------------------------------------------------- FSDD
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_fsdd(root: Path, url: str = FSDD_URL, sha256: str = FSDD_SHA256) -> Path:
    """The FSDD archive under ``root``, downloaded once and verified by SHA-256."""
    path = root / "audio" / "fsdd" / url.rsplit("/", 1)[-1]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading the Free Spoken Digit Dataset from %s", url)
        tmp = path.with_suffix(".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:  # noqa: S310 -- fixed https URL
                shutil.copyfileobj(r, f)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise FileNotFoundError(f"could not download FSDD from {url} ({e}); put the archive at {path} "
                                    "or use source='espeak' (offline synthetic speech)") from None
        os.replace(tmp, path)
    digest = _sha256(path)
    if digest != sha256:
        raise ValueError(f"{path} has SHA-256 {digest}, expected {sha256}; delete it and download again")
    return path


def read_fsdd_archive(archive: Path, split: str, length: int = SAMPLE_RATE,
                      split_of: dict[str, str] | None = None) -> SpokenDigits:
    """Read ``recordings/{digit}_{speaker}_{index}.wav`` from an FSDD tarball; 16 kHz, ``length`` samples."""
    split_of = FSDD_SPLIT if split_of is None else split_of
    waves, labels, speakers = [], [], []
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and "/recordings/" in f"/{m.name}"
                          and m.name.endswith(".wav")), key=lambda m: m.name)
        for m in members:
            digit, speaker, _ = Path(m.name).stem.split("_", 2)
            if split_of.get(speaker, "train") != split:
                continue
            data = tar.extractfile(m).read()
            with io.BytesIO(data) as buf:
                tmp_wave, rate = _read_wav_bytes(buf)
            w = resample(tmp_wave.double(), rate, SAMPLE_RATE) if rate != SAMPLE_RATE else tmp_wave.double()
            w = w[(len(w) - length) // 2:][:length] if len(w) > length else w
            pad = length - len(w)
            waves.append(torch.nn.functional.pad(w, (pad // 2, pad - pad // 2)).float().clamp(-1, 1))
            labels.append(int(digit))
            speakers.append(speaker)
    if not waves:
        raise ValueError(f"{archive} holds no FSDD recordings for split {split!r}")
    return SpokenDigits(torch.stack(waves), torch.tensor(labels, dtype=torch.long), speakers,
                        source="fsdd", synthetic=False)


def _read_wav_bytes(buf: io.BytesIO) -> tuple[Tensor, int]:
    from scipy.io import wavfile  # noqa: PLC0415 -- scipy is the audio extra

    rate, data = wavfile.read(buf)
    a = _to_float(data)
    return torch.from_numpy(a if a.ndim == 1 else a.mean(1)), int(rate)


# --------------------------------------------------------------------- public
def load_digits(source: str = "espeak", split: str = "test", limit: int | None = None, root: str | Path | None = None,
                seconds: float = 1.0) -> SpokenDigits:
    """A split of spoken digits at 16 kHz, ``seconds`` long (see the module docstring).

    Args:
        source: "espeak" (synthetic speech, offline) or "fsdd" (real recordings, downloaded once).
        split: "train", "val" or "test"; disjoint by voice / speaker.
        limit: the first ``limit`` clips of the split (a fixed shuffle), to keep things quick.
        root: cache directory (default $ADVX_HOME or ~/.cache/advx).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be a positive number of clips or None, got {limit!r}")
    if not 0 < seconds <= 10:
        raise ValueError(f"seconds must be in (0, 10], got {seconds!r}")
    root = advx_home() if root is None else Path(root)
    length = int(round(seconds * SAMPLE_RATE))
    if source == "espeak":
        return _load_espeak(split, limit, root, length)
    if source == "fsdd":
        data = read_fsdd_archive(fetch_fsdd(root), split, length)
        if limit is not None:
            keep = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[: int(limit)].sort().values
            data = SpokenDigits(data.waves[keep], data.labels[keep], [data.speakers[i] for i in keep.tolist()],
                                source="fsdd", synthetic=False)
        return data
    raise ValueError(f"source must be 'espeak' (synthetic speech) or 'fsdd' (Free Spoken Digit), got {source!r}")
