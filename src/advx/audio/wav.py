"""WAV files: read and write 16-bit PCM and 32-bit float, mono or multichannel.

Waveforms are float tensors in [-1, 1], shape (T,) for mono or (C, T). 16-bit
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


def read_wav(path: str | Path) -> tuple[Tensor, int]:
    """(waveform float32 in [-1, 1] of shape (T,) or (C, T), sample rate)."""
    from scipy.io import wavfile  # noqa: PLC0415 -- scipy is the audio extra

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no WAV file at {path}")
    rate, data = wavfile.read(path)
    return _channels_first(_to_float(data)), int(rate)


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


def parse_wav(data: bytes) -> tuple[Tensor, int]:
    """Decode a 16-bit PCM WAV from bytes, tolerating streamed headers with bogus sizes."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE byte string")
    pos, rate, channels, bits = 12, None, 1, 16
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if tag == b"fmt ":
            fmt_code, channels, rate = struct.unpack("<HHI", data[body : body + 8])
            bits = struct.unpack("<H", data[body + 14 : body + 16])[0]
            if fmt_code != 1 or bits != 16:
                raise ValueError(f"parse_wav reads 16-bit PCM only (format {fmt_code}, {bits} bits)")
        elif tag == b"data":
            if rate is None:
                raise ValueError("WAV data chunk before its fmt chunk")
            end = min(body + size, len(data))
            end -= (end - body) % (2 * channels)
            pcm = np.frombuffer(data[body:end], dtype="<i2").reshape(-1, channels)
            return _channels_first(_to_float(pcm.squeeze(1) if channels == 1 else pcm)), int(rate)
        pos = body + size + (size & 1)
    raise ValueError("WAV bytes have no data chunk")
