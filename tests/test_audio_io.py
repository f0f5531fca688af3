"""WAV round trips, the resampler, and the log-mel front end against references."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from advx.audio.frontend import LogMel, mel_filterbank
from advx.audio.resample import resample
from advx.audio.wav import parse_wav, read_wav, wav_bytes, write_wav


@given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([1, 2]), n=st.integers(1, 400))
def test_wav_pcm16_round_trip_within_quantisation(tmp_path_factory, seed, channels, n):
    g = torch.Generator().manual_seed(seed)
    wave = torch.rand((channels, n) if channels > 1 else (n,), generator=g) * 2 - 1
    path = write_wav(tmp_path_factory.mktemp("wav") / "a.wav", wave, 16000)
    back, rate = read_wav(path, channels="keep")
    assert rate == 16000 and back.shape == wave.shape and back.dtype == torch.float32
    # 16-bit PCM holds s / 32768 for s in [-32768, 32767]: +1.0 itself is not representable, so a value in the
    # top half-step (above 32767.5 / 32768) comes back as the largest sample, 32767 / 32768 -- within one step,
    # not half (seed 56872186, channels 2, n 95 drew one). Everything else is within half a step.
    top = 32767 / 32768
    assert float((back - wave.clamp(max=top)).abs().max()) <= 0.5 / 32768 + 1e-7  # half a 16-bit step
    assert bool((back[wave > top] == top).all()) and float((back - wave).abs().max()) < 1 / 32768
    grid = torch.round(wave * 32768).clamp(-32768, 32767) / 32768  # values on the grid come back exactly
    path2 = write_wav(path.with_name("b.wav"), grid, 8000)
    assert torch.equal(read_wav(path2, channels="keep")[0], grid)


def test_wav_pcm16_top_half_step_clips_to_the_largest_sample(tmp_path):
    """The example hypothesis found (seed 56872186, channels 2, n 95), pinned: a value within half a step
    of 1.0 is written as 32767 (the format has no +32768) and read back as 32767 / 32768."""
    wave = torch.tensor([1.0, 1 - 0.25 / 32768, 32767.4 / 32768, -1.0, 0.0])
    back, _ = read_wav(write_wav(tmp_path / "top.wav", wave, 16000))
    assert back.tolist() == [32767 / 32768, 32767 / 32768, 32767 / 32768, -1.0, 0.0]


def test_wav_float32_is_lossless_and_bad_input(tmp_path):
    wave = torch.linspace(-1, 1, 1001) ** 3
    back, rate = read_wav(write_wav(tmp_path / "f.wav", wave, 22050, format="float32"))
    assert rate == 22050 and torch.equal(back, wave)
    with pytest.raises(ValueError, match="format"):
        write_wav(tmp_path / "x.wav", wave, 16000, format="mp3")
    with pytest.raises(ValueError, match="NaN"):
        write_wav(tmp_path / "x.wav", torch.tensor([0.0, math.nan]), 16000)
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


def test_parse_wav_reads_streamed_headers():
    pcm = np.array([0, 1000, -32768, 32767, 5], dtype="<i2")
    data = wav_bytes(torch.from_numpy(pcm.astype(np.float32) / 32768), 22050)
    streamed = data[:4] + struct.pack("<I", 0x7FFFF000) + data[8:40] + struct.pack("<I", 0x7FFFF000) + data[44:]
    wave, rate = parse_wav(streamed)  # espeak-ng --stdout writes such sizes
    assert rate == 22050 and torch.equal(wave, torch.from_numpy(pcm.astype(np.float32) / 32768))


@pytest.mark.parametrize("orig", [8000, 11025, 22050, 44100, 48000])
def test_resample_sine_known_answer(orig):
    t = np.arange(orig) / orig
    x = torch.from_numpy(np.sin(2 * np.pi * 440 * t) + 0.5 * np.cos(2 * np.pi * 2500 * t))
    y = resample(x, orig, 16000)
    assert y.shape == (16000,)
    tt = np.arange(16000) / 16000
    ref = np.sin(2 * np.pi * 440 * tt) + 0.5 * np.cos(2 * np.pi * 2500 * tt)
    assert np.abs(y.numpy() - ref)[400:-400].max() < 1e-3  # away from the edges


def test_resample_removes_what_the_new_rate_cannot_hold():
    t = np.arange(22050) / 22050
    tone = torch.from_numpy(np.sin(2 * np.pi * 9500 * t))  # above 8 kHz, the new Nyquist frequency
    assert resample(tone, 22050, 16000)[400:-400].abs().max() < 1e-3
    batch = torch.randn(2, 3, 441, dtype=torch.float64)
    out = resample(batch, 44100, 16000)
    assert out.shape == (2, 3, 160)
    assert torch.allclose(out[1, 2], resample(batch[1, 2], 44100, 16000))


def _numpy_logmel(x: np.ndarray, sr=16000, n_fft=512, win=400, hop=160, n_mels=40, fmin=20.0, floor=1e-6):
    """Float64 reference written from the formulas: explicit DFT, periodic Hann, HTK mel triangles."""
    pad = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft // 2)])
    frames = 1 + (len(pad) - n_fft) // hop
    w = np.zeros(n_fft)
    w[(n_fft - win) // 2:(n_fft - win) // 2 + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    k = np.arange(n_fft // 2 + 1)[:, None]
    dft = np.exp(-2j * np.pi * k * np.arange(n_fft)[None, :] / n_fft)
    seg = np.stack([pad[i * hop:i * hop + n_fft] * w for i in range(frames)], axis=1)
    power = np.abs(dft @ seg) ** 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    pts = hz(np.linspace(mel(fmin), mel(sr / 2), n_mels + 2))
    f = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(f)))
    for i in range(n_mels):
        a, b, c = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.clip(np.minimum((f - a) / (b - a), (c - f) / (c - b)), 0, None)
    return np.log(fb @ power + floor)


def test_logmel_matches_float64_reference():
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    x = 0.3 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * rng.standard_normal(4000)
    ref = _numpy_logmel(x)
    got = LogMel()(torch.from_numpy(x).float()[None])[0].double().numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 2e-3  # float32 STFT vs float64 DFT, in log units
    got64 = LogMel().double()(torch.from_numpy(x)[None])[0].numpy()
    assert np.abs(got64 - ref).max() < 2e-5  # the filterbank buffer is stored in float32


def test_logmel_matches_librosa():
    librosa = pytest.importorskip("librosa")  # test-only dependency
    x = np.random.default_rng(1).standard_normal(8000) * 0.1
    ours = LogMel(n_mels=64, f_min=0.0, norm="slaney").double().mel(torch.from_numpy(x)[None])[0].numpy()
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64,
                                         fmin=0.0, htk=True, norm="slaney", center=True, pad_mode="constant")
    assert np.abs(ours - ref).max() / ref.max() < 1e-6
    fb = mel_filterbank(16000, 512, 40, 20, 8000).numpy()
    ref_fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20, fmax=8000, htk=True, norm=None)
    assert np.abs(fb - ref_fb).max() < 1e-6


def test_logmel_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1600, dtype=torch.float64, generator=g) * 0.1
    front = LogMel().double()
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(front(x).sum(), x)
    for _ in range(3):  # directional derivatives, central differences
        v = torch.randn(x.shape, dtype=torch.float64, generator=g)
        h = 1e-6
        with torch.no_grad():
            fd = (front(x + h * v).sum() - front(x - h * v).sum()) / (2 * h)
        assert float((grad * v).sum()) == pytest.approx(float(fd), rel=1e-5)
