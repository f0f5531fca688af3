"""The committed keyword-spotting model: clean accuracy on voices never heard in training."""

from __future__ import annotations

import pytest
import torch

from advx.audio import KeywordSpotter, load_digits, load_model, model_info
from advx.audio.models import _weights_dir


@pytest.fixture(scope="module")
def kws():
    return load_model("digits-kws")


@pytest.fixture(scope="module")
def held_out():
    return load_digits("espeak", "test", limit=100)


def test_weights_are_small_safetensors_with_metadata():
    path = _weights_dir() / "digits-kws.safetensors"
    assert path.stat().st_size < 2 * 1024 * 1024
    info = model_info("digits-kws")
    assert "synthetic speech" in info["data"] and info["test_accuracy"] >= 0.95
    with pytest.raises(ValueError, match="unknown audio model"):
        load_model("wav2vec")


def test_clean_accuracy_on_held_out_voices(kws, held_out):
    with torch.no_grad():
        acc = (kws(held_out.waves).argmax(1) == held_out.labels).double().mean().item()
    assert acc >= 0.95  # 0.998 on the whole test split (1360 clips) when trained


def test_model_is_a_pure_function_of_each_clip(kws, held_out):
    x = held_out.waves[:6]
    with torch.no_grad():
        whole = kws(x)
        single = torch.cat([kws(x[i: i + 1]) for i in range(len(x))])
        channel = kws(x[:, None, :])
    assert torch.allclose(whole, single, atol=1e-4) and torch.allclose(whole, channel)
    assert not kws.training


def test_gain_changes_little(kws, held_out):
    """The per-clip mean removal makes the log-mel input nearly gain invariant."""
    x = held_out.waves[:20]
    with torch.no_grad():
        a, b = kws(x).argmax(1), kws(x * 0.5).argmax(1)
    assert (a == b).double().mean().item() >= 0.95


def test_architecture_shapes():
    m = KeywordSpotter(width=8).eval()
    assert m(torch.zeros(3, 8000)).shape == (3, 10)
    with pytest.raises(ValueError, match="shape"):
        m(torch.zeros(2, 3, 100))
