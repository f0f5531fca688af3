"""WAV files: read and write 16-bit PCM and 32-bit float, mono or multichannel.

Waveforms are float tensors in [-1, 1], shape (T,) for mono or (C, T). A model
takes one clip as (T,): :func:`read_wav` therefore refuses a multichannel file
unless told what to do with its channels (``channels="mix"`` averages them to
mono, ``channels="keep"`` returns (C, T)), and with ``sample_rate=`` it resamples
a file of another rate (or, with ``resample=False``, refuses it) instead of
handing an 8 kHz clip to a 16 kHz model. 16-bit
samples map to floats by s / 32768 and back by round(v * 32768) clipped to
[-32768, 32767], so a write/read round trip is exact for values on the 16-bit
grid and within half a quantisation step (2**-16) otherwise.

``scipy.io.wavfile`` does the file format; :func:`parse_wav` also reads the
streamed WAVs that ``espeak-ng --stdout`` writes (their size fields say 2 GB).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["read_wav", "write_wav", "wav_bytes", "parse_wav"]

_FORMATS = ("pcm16", "float32")


def _to_float(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.int16:
        return data.astype(np.float32) / 32768.0
    if data.dtype == np.int32:
        return (data.astype(np.float64) / 2**31).astype(np.float32)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype in (np.float32, np.float64):
        return data.astype(np.float32)
    raise ValueError(f"unsupported WAV sample type {data.dtype}")


def _channels_first(data: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(data.T if data.ndim == 2 else data))


_CHANNELS = (None, "mix", "keep")


def _conform(wave: Tensor, rate: int, channels: str | None, sample_rate: int | None, resample: bool,
             source: str) -> tuple[Tensor, int]:
    if channels not in _CHANNELS:
        raise ValueError(f"channels must be None (refuse multichannel audio), 'mix' or 'keep', got {channels!r}")
    if wave.dim() == 2:
        if wave.shape[0] == 1:
            wave = wave[0]
        elif channels == "mix":
            wave = wave.mean(0)
        elif channels is None:
            raise ValueError(f"{source} has {wave.shape[0]} channels; a model takes one clip per file: pass "
                             "channels='mix' to average them to mono or channels='keep' for a (channels, T) tensor")
    if sample_rate is not None and int(rate) != int(sample_rate):
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
        if not resample:
            raise ValueError(f"{source} is sampled at {rate} Hz, not the {sample_rate} Hz asked for; pass "
                             "resample=True to resample it (windowed sinc) or convert the file")
        from advx.audio.resample import resample as _resample  # noqa: PLC0415

        wave = _resample(wave.double(), int(rate), int(sample_rate)).float().clamp(-1, 1)
        rate = int(sample_rate)
    return wave.contiguous(), int(rate)


def read_wav(path: str | Path, sample_rate: int | None = None, *, channels: str | None = None,
             resample: bool = True) -> tuple[Tensor, int]:
    """(waveform float32 in [-1, 1], sample rate) of a WAV file.

    Args:
        sample_rate: the rate the caller needs (e.g. 16000 for the speech models); a file
            at another rate is resampled to it, or refused when ``resample=False``.
            None: the file's own rate, whatever it is.
        channels: what to do with a multichannel file: None refuses it (ValueError),
            "mix" averages the channels to one (T,) clip, "keep" returns (C, T).
            Mono files always come back as (T,).
    """
    from scipy.io import wavfile  # noqa: PLC0415 -- scipy is the audio extra

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no WAV file at {path}")
    rate, data = wavfile.read(path)
    return _conform(_channels_first(_to_float(data)), int(rate), channels, sample_rate, resample, str(path))


def _encode(wave: Tensor, fmt: str) -> np.ndarray:
    if not isinstance(wave, Tensor):
        wave = torch.as_tensor(np.asarray(wave))
    if wave.dim() not in (1, 2):
        raise ValueError(f"wave must have shape (T,) or (channels, T), got {tuple(wave.shape)}")
    if fmt not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {fmt!r}")
    a = wave.detach().cpu().double().numpy()
    if not np.isfinite(a).all():
        raise ValueError("wave contains NaN or infinite values")
    a = a.T if a.ndim == 2 else a
    if fmt == "pcm16":
        return np.clip(np.round(a * 32768.0), -32768, 32767).astype(np.int16)
    return a.astype(np.float32)


def write_wav(path: str | Path, wave: Tensor, sample_rate: int, format: str = "pcm16") -> Path:
    """Write ``wave`` ((T,) or (C, T), floats in [-1, 1]) as 16-bit PCM or 32-bit float."""
    from scipy.io import wavfile  # noqa: PLC0415

    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, int(sample_rate), _encode(wave, format))
    return path


def wav_bytes(wave: Tensor, sample_rate: int, format: str = "pcm16") -> bytes:
    """The bytes of a WAV file holding ``wave`` (for inline players in HTML reports)."""
    from scipy.io import wavfile  # noqa: PLC0415

    buf = io.BytesIO()
    wavfile.write(buf, int(sample_rate), _encode(wave, format))
    return buf.getvalue()


def parse_wav(data: bytes, sample_rate: int | None = None, *, channels: str | None = None,
              resample: bool = True) -> tuple[Tensor, int]:
    """Decode a 16-bit PCM WAV from bytes, tolerating streamed headers with bogus sizes.

    ``sample_rate``, ``channels`` and ``resample`` as in :func:`read_wav`; a header that
    claims 0 channels or a 0 Hz rate is refused.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE byte string")
    pos, rate, n_ch, bits = 12, None, 1, 16
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if tag == b"fmt ":
            if body + 16 > len(data):
                raise ValueError("WAV fmt chunk is truncated")
            fmt_code, n_ch, rate = struct.unpack("<HHI", data[body : body + 8])
            bits = struct.unpack("<H", data[body + 14 : body + 16])[0]
            if fmt_code != 1 or bits != 16:
                raise ValueError(f"parse_wav reads 16-bit PCM only (format {fmt_code}, {bits} bits)")
            if n_ch < 1 or rate < 1:
                raise ValueError(f"WAV header claims {n_ch} channels at {rate} Hz: not a playable file")
        elif tag == b"data":
            if rate is None:
                raise ValueError("WAV data chunk before its fmt chunk")
            end = min(body + size, len(data))
            end -= (end - body) % (2 * n_ch)
            pcm = np.frombuffer(data[body:end], dtype="<i2").reshape(-1, n_ch)
            wave = _channels_first(_to_float(pcm.squeeze(1) if n_ch == 1 else pcm))
            return _conform(wave, int(rate), channels, sample_rate, resample, "WAV bytes")
        pos = body + size + (size & 1)
    raise ValueError("WAV bytes have no data chunk")
