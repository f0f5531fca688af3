"""Spoken-digit data: deterministic espeak-ng synthesis, voice-disjoint splits, the FSDD reader."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest
import torch

from advx.audio import data as D
from advx.audio.wav import wav_bytes


def test_splits_are_disjoint_by_voice_and_cover_all_variants():
    variants = D.espeak_variants()
    assert len(variants) >= 50  # Debian's espeak-ng ships ~100 voice variants
    by_split = {s: {v for v in variants if D.voice_split(v) == s} for s in D.SPLITS}
    assert set().union(*by_split.values()) == set(variants)
    assert all(by_split[a].isdisjoint(by_split[b]) for a in D.SPLITS for b in D.SPLITS if a < b)
    assert all(len(v) >= 5 for v in by_split.values())
    for split in D.SPLITS:  # every clip of a split is spoken by a voice of that split
        assert {p["variant"] for p in D._espeak_specs(split)} == by_split[split]


@pytest.fixture(scope="module")
def test_prefix():
    return D.load_digits("espeak", "test", limit=30)


def test_loaded_clips(test_prefix):
    d = test_prefix
    assert d.synthetic and "synthetic speech" in d.description
    assert d.waves.shape == (30, 16000) and d.waves.dtype == torch.float32 and d.sample_rate == 16000
    assert torch.equal(torch.round(d.waves * 32768), d.waves * 32768)  # stored on the 16-bit grid
    peaks = d.waves.abs().amax(1)
    assert bool((peaks > 0.19).all() and (peaks <= 0.9).all())  # normalised peaks in [0.2, 0.9]
    assert sorted(d.labels.tolist()) == sorted(list(range(10)) * 3)  # a prefix of 10 k clips = k whole voices
    train_variants = {v for v in D.espeak_variants() if D.voice_split(v) == "train"}
    assert not {s.split("+", 1)[1] for s in d.speakers} & train_variants


def test_synthesis_is_deterministic(test_prefix):
    specs = D._espeak_specs("test")[:10]
    again = D._render(specs, 16000)
    assert np.array_equal(again.astype(np.float32) / 32768, test_prefix.waves[:10].numpy())
    w1, r1 = D.synthesize("seven", "en-gb+m3", 150, 40)
    w2, r2 = D.synthesize("seven", "en-gb+m3", 150, 40)
    assert r1 == r2 and torch.equal(w1, w2) and len(w1) > 0.2 * r1


def test_split_words_finds_the_pauses():
    rate = 1000
    words = [0.5 * (-1.0) ** np.arange(n) for n in (120, 300, 80)]  # loud from first to last sample
    gap = np.zeros(400)
    joined = np.concatenate([words[0], gap, words[1], gap, words[2]])
    parts = D._split_words(joined, rate, 3)
    assert parts is not None and [len(D._trim(p, rate, margin_s=0)) for p in parts] == [120, 300, 80]
    assert D._split_words(np.concatenate([words[0], words[1]]), rate, 2) is None  # no pause: caller falls back


def _fake_fsdd(tmp_path):
    path = tmp_path / "fsdd.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for digit in (3, 7):
            for speaker in ("jackson", "theo", "lucas"):
                tone = torch.sin(torch.arange(4000 + 100 * digit) * 0.05 * (digit + 1)) * 0.5
                data = wav_bytes(tone, 8000)
                info = tarfile.TarInfo(f"free-spoken-digit-dataset-1.0.9/recordings/{digit}_{speaker}_0.wav")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_fsdd_reader_splits_by_speaker_and_resamples(tmp_path):
    archive = _fake_fsdd(tmp_path)
    test = D.read_fsdd_archive(archive, "test")
    assert test.speakers == ["theo", "theo"] and test.labels.tolist() == [3, 7] and not test.synthetic
    assert test.waves.shape == (2, 16000)
    train = D.read_fsdd_archive(archive, "train")
    assert set(train.speakers) == {"jackson"}
    # 4300 samples at 8 kHz -> 8600 at 16 kHz, centred in one second
    nz = (train.waves[0].abs() > 1e-4).nonzero().squeeze(1)
    assert abs(int(nz[-1] - nz[0]) - 8600) < 40


def test_fsdd_checksum_is_enforced(tmp_path):
    archive = _fake_fsdd(tmp_path)
    dest = tmp_path / "audio" / "fsdd" / "v1.0.9.tar.gz"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(archive.read_bytes())
    with pytest.raises(ValueError, match="SHA-256"):
        D.fetch_fsdd(tmp_path)  # a file that is not the real archive never passes
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert D.fetch_fsdd(tmp_path, sha256=good) == dest


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        D.load_digits(split="dev")
    with pytest.raises(ValueError, match="source"):
        D.load_digits(source="timit")
    with pytest.raises(ValueError, match="limit"):
        D.load_digits(limit=0)
