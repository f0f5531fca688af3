"""Input transformations, BPDA and EOT: known answers (SciPy, PIL), exact forward values, non-zero BPDA gradients."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from advx.attacks import PGD
from advx.data import load
from advx.defenses import BPDA, EOT, JPEG, BitDepth, Defended, GaussianNoise, MedianFilter, bpda
from advx.model import input_gradient
from advx.threat import Linf


@pytest.fixture(scope="module")
def images():
    return load("fashion-mnist", "test", n=16, seed=0).x


@settings(max_examples=25, deadline=None)
@given(bits=st.integers(1, 8), seed=st.integers(0, 2**16), lo=st.floats(-2, 0), width=st.floats(0.5, 3))
def test_bit_depth_gives_2_to_the_bits_levels_and_is_idempotent(bits, seed, lo, width):
    hi = lo + width
    x = lo + width * torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    squeeze = BitDepth(bits, bounds=(lo, hi))
    out = squeeze(x)
    levels = (out - lo) / width * (2 ** bits - 1)
    assert torch.allclose(levels, levels.round(), atol=1e-9)  # on the grid
    assert (out - x).abs().max() <= width / (2 ** bits - 1) / 2 + 1e-9  # nearest level
    assert torch.allclose(squeeze(out), out, atol=1e-12)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_median_filter_equals_scipy(size):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(2, 3, 9, 8, generator=torch.Generator().manual_seed(size), dtype=torch.float64)
    ref = ndimage.median_filter(x.numpy(), size=(1, 1, size, size), mode="mirror")
    assert np.array_equal(MedianFilter(size)(x).numpy(), ref)


@pytest.mark.parametrize("quality", [10, 50, 75, 95])
def test_jpeg_matches_libjpeg_on_greyscale(images, quality):
    """Our torch JPEG against PIL's libjpeg (integer DCT): within rounding of it, far closer than to the input."""
    image_mod = pytest.importorskip("PIL.Image")
    x = (images * 255).round() / 255
    ref = []
    for xi in x:
        buf = io.BytesIO()
        image_mod.fromarray((xi[0].numpy() * 255).round().astype(np.uint8), "L").save(buf, "JPEG", quality=quality)
        ref.append(np.asarray(image_mod.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255)
    ref = torch.from_numpy(np.stack(ref))[:, None]
    ours = JPEG(quality)(x)
    assert (ours - ref).abs().mean() * 255 < 0.5  # on average within half a grey level of libjpeg
    assert (ours - ref).abs().mean() < 0.3 * (x - ref).abs().mean()
    assert torch.equal(ours, (ours * 255).round() / 255)  # decoded to 8-bit pixels


def test_jpeg_handles_colour_and_odd_sizes_and_quality_orders_distortion():
    x = torch.rand(2, 3, 13, 21, generator=torch.Generator().manual_seed(0))
    errors = [float((JPEG(q)(x) - x).abs().mean()) for q in (10, 50, 90, 100)]
    assert JPEG(75)(x).shape == x.shape
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.01
    with pytest.raises(ValueError, match="quality"):
        JPEG(0)


def test_soft_jpeg_is_close_to_jpeg_and_has_gradients(images):
    x = images[:4].clone().requires_grad_(True)
    hard, soft = JPEG(50)(x), JPEG(50, soft=True)(x)
    assert (hard - soft).abs().max() < 0.05
    (g_soft,) = torch.autograd.grad(soft.sum(), x)
    (g_hard,) = torch.autograd.grad(hard.sum(), x)
    assert g_hard.abs().max() == 0 and (g_soft.flatten(1).norm(dim=1) > 0).all()


def _small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def test_bpda_forward_is_exact_and_gradient_nonzero_through_quantisation(images):
    model = _small_model()
    y = torch.zeros(len(images), dtype=torch.long)
    defended = Defended(model, BitDepth(2))

    def loss(z):
        return F.cross_entropy(z, y, reduction="none")

    _, g_plain, z_plain = input_gradient(defended, images, loss)
    assert g_plain.abs().max() == 0  # rounding masks the gradient completely
    adaptive = bpda(defended)
    _, g_bpda, z_bpda = input_gradient(adaptive, images, loss)
    assert torch.equal(z_bpda, z_plain)  # same function on the forward pass
    assert (g_bpda.flatten(1).norm(dim=1) > 0).all()
    # identity backward: the gradient is the model's gradient at the squeezed input
    _, g_at_squeezed, _ = input_gradient(model, BitDepth(2)(images), loss)
    assert torch.allclose(g_bpda, g_at_squeezed)


def test_bpda_with_an_approximation_uses_its_gradient():
    x = torch.linspace(0.05, 0.95, 7).reshape(1, 1, 1, 7).requires_grad_(True)
    out = BPDA(BitDepth(1), approx=lambda z: 3 * z)(x)
    assert torch.equal(out.detach(), BitDepth(1)(x.detach()))
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.allclose(g, torch.full_like(g, 3.0))


def test_pgd_with_bpda_breaks_what_plain_pgd_cannot_on_the_quantised_model():
    """Plain PGD is stuck at zero gradient (it can only win by its random start); through BPDA it wins."""
    from advx.zoo import load_model

    data = load("mnist", "test", n=64, seed=0)
    defended = Defended(load_model("mnist-cnn"), BitDepth(2))
    plain = PGD(Linf(0.2), steps=10)(defended, data.x, data.y)
    adaptive = PGD(Linf(0.2), steps=10)(bpda(defended), data.x, data.y)  # judged by the same forward function
    assert plain.robust_accuracy() > 0.8
    assert adaptive.robust_accuracy() < plain.robust_accuracy() - 0.5


def test_eot_averages_the_draws_in_one_batched_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    noisy = Defended(model, GaussianNoise(0.3, generator=torch.Generator().manual_seed(1)))
    x = torch.rand(3, 1, 3, 4)
    eot = EOT(noisy, n=6, max_batch=7)  # chunks of 2 draws: 3 forward calls
    out = eot(x)
    g = torch.Generator().manual_seed(1)
    noise = torch.cat([torch.randn((6, 1, 3, 4), generator=g) for _ in range(3)])  # one draw per chunk
    draws = model((x.repeat(6, 1, 1, 1) + 0.3 * noise).clamp(0, 1)).reshape(6, 3, 5)
    assert torch.allclose(out, draws.mean(0), atol=1e-6)
    probs = EOT(Defended(model, GaussianNoise(0.3, generator=torch.Generator().manual_seed(1))), n=6,
                average="probs", max_batch=7)
    assert torch.allclose(probs(x).exp(), draws.softmax(2).mean(0), atol=1e-6)


def test_eot_gradient_is_the_mean_of_the_draws_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.rand(2, 1, 3, 4)
    eot = EOT(Defended(model, GaussianNoise(0.2, generator=torch.Generator().manual_seed(3))), n=4)
    _, g, _ = input_gradient(eot, x, lambda z: z[:, 0])
    noise = torch.randn((8, 1, 3, 4), generator=torch.Generator().manual_seed(3))
    grads = []
    for k in range(4):
        xk = x.clone().requires_grad_(True)
        (gk,) = torch.autograd.grad(model((xk + 0.2 * noise[2 * k:2 * k + 2]).clamp(0, 1))[:, 0].sum(), xk)
        grads.append(gk)
    assert torch.allclose(g, torch.stack(grads).mean(0), atol=1e-6)


def test_gaussian_noise_stays_in_bounds_and_bad_arguments_are_named():
    x = torch.rand(5, 1, 4, 4)
    out = GaussianNoise(2.0, bounds=(0.0, 1.0))(x)
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(0)
    with pytest.raises(ValueError, match="bits"):
        BitDepth(0)
    with pytest.raises(ValueError, match="n must be"):
        EOT(nn.Identity(), n=0)
    with pytest.raises(TypeError, match="Defended"):
        bpda(nn.Identity())
