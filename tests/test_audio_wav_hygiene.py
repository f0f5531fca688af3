"""WAV loading hygiene (issue 13): channels and sample rates are explicit, bad headers are refused."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from advx.audio.wav import parse_wav, read_wav, wav_bytes, write_wav


def _stereo(n: int = 400) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float32)
    return torch.stack([torch.sin(t / 7) * 0.5, torch.cos(t / 5) * 0.25])


def test_read_wav_refuses_multichannel_unless_told(tmp_path):
    wave = torch.round(_stereo() * 32768) / 32768  # on the 16-bit grid: exact round trip
    path = write_wav(tmp_path / "stereo.wav", wave, 16000)
    with pytest.raises(ValueError, match="2 channels.*channels='mix'"):
        read_wav(path)  # was: a (2, T) tensor that attacks took for two clips
    mixed, rate = read_wav(path, channels="mix")
    assert rate == 16000 and mixed.shape == (400,)
    assert torch.allclose(mixed, wave.mean(0), atol=1e-7)
    kept, _ = read_wav(path, channels="keep")
    assert torch.equal(kept, wave)
    mono, _ = read_wav(write_wav(tmp_path / "mono.wav", wave[0], 16000))
    assert mono.shape == (400,)  # mono files need no option
    with pytest.raises(ValueError, match="channels must be"):
        read_wav(path, channels="left")


def test_read_wav_resamples_or_refuses_other_rates(tmp_path):
    t = np.arange(8000) / 8000
    tone = torch.from_numpy((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    path = write_wav(tmp_path / "8k.wav", tone, 8000)
    assert read_wav(path)[1] == 8000  # no rate asked for: the file's own
    with pytest.raises(ValueError, match="8000 Hz, not the 16000 Hz"):
        read_wav(path, 16000, resample=False)
    wave, rate = read_wav(path, 16000)
    assert rate == 16000 and wave.shape == (16000,)
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(wave.numpy() - ref)[400:-400].max() < 2e-3  # the same tone, at the new rate


def _header(channels: int, rate: int, n_bytes: int = 8) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * max(channels, 1), 2 * max(channels, 1), 16)
    return (b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", n_bytes) + bytes(n_bytes))


def test_parse_wav_refuses_zero_channels_and_zero_rate():
    with pytest.raises(ValueError, match="0 channels"):
        parse_wav(_header(0, 16000))  # was: ZeroDivisionError
    with pytest.raises(ValueError, match="0 Hz"):
        parse_wav(_header(1, 0))
    wave, rate = parse_wav(_header(1, 16000))
    assert rate == 16000 and wave.shape == (4,)


def test_parse_wav_channels_and_rate_like_read_wav():
    data = wav_bytes(torch.round(_stereo(100) * 32768) / 32768, 8000)
    with pytest.raises(ValueError, match="2 channels"):
        parse_wav(data)
    wave, rate = parse_wav(data, 16000, channels="mix")
    assert rate == 16000 and wave.shape == (200,)
