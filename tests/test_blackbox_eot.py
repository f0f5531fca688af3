"""EOT transforms and wrapper, and the adversarial patch, on a model trained in the test."""

from __future__ import annotations

import pytest
import torch
from tests.helpers import fit, templates
from torch import nn

from advx.attacks import PGD
from advx.model.eot import EOT, AdversarialPatch, BrightnessContrast, Compose, GaussianNoise, RandomAffine
from advx.threat import Linf


def _data(n: int, seed: int):
    """Four classes of smooth 12x12 templates in noise."""
    return templates(n, seed, size=12, template_seed=7, noise=0.15)


@pytest.fixture(scope="module")
def trained():
    x, y = _data(1000, 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 4))
    return fit(model, x, y, steps=150)


def test_identity_parameters_give_identity_transforms():
    x = torch.rand(3, 2, 9, 9, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    torch.testing.assert_close(RandomAffine(0, (1.0, 1.0), 0)(x, g), x)
    torch.testing.assert_close(GaussianNoise(0.0)(x, g), x)
    shifted = BrightnessContrast(brightness=(0.1, 0.1), contrast=(1.0, 1.0))(x, g)
    torch.testing.assert_close(shifted, (x + 0.1).clamp(0, 1))


def test_transforms_stay_in_bounds_are_seeded_and_differentiable():
    x = torch.rand(4, 1, 10, 10, requires_grad=True)
    t = Compose([RandomAffine(20, (0.8, 1.2), 0.1), BrightnessContrast(), GaussianNoise(0.05)])
    a = t(x, torch.Generator().manual_seed(3))
    b = t(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and bool((a >= 0).all() and (a <= 1).all())
    (grad,) = torch.autograd.grad(a.sum(), x)
    assert grad.abs().sum() > 0


def test_eot_averaging_reduces_the_variance_of_a_randomised_model():
    class Noisy(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3] + torch.randn(len(x), 3)

    x = torch.rand(64, 1, 2, 2)
    torch.manual_seed(0)
    single = (Noisy()(x) - Noisy()(x)).std().item()  # spread between two calls on the same inputs
    eot = EOT(Noisy(), 16)
    averaged = (eot(x) - eot(x)).std().item()
    assert averaged < single / 2.5  # 1/sqrt(16) = 1/4 in expectation


def test_one_eot_class_behind_every_import_path():
    import advx.audio
    import advx.audio.eot
    import advx.defenses
    import advx.defenses.eot
    import advx.evaluation
    import advx.evaluation.eot

    paths = [advx.audio.EOT, advx.audio.eot.EOT, advx.defenses.EOT, advx.defenses.eot.EOT, advx.evaluation.EOT,
             advx.evaluation.eot.EOT]
    assert all(cls is EOT for cls in paths)


def test_eot_transform_draws_do_not_depend_on_the_chunking_and_reseed_restarts_them():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(5, 1, 4, 4)
    transform = Compose([RandomAffine(20, (0.9, 1.1), 0.1), GaussianNoise(0.1)])
    one_batch = EOT(model, 6, transform=transform, seed=4)
    chunked = EOT(model, 6, transform=transform, seed=4, max_batch=11)  # 2 draws (10 rows) per model call
    first = one_batch(x)
    torch.testing.assert_close(chunked(x), first)
    rows = transform(x.repeat(6, 1, 1, 1), torch.Generator().manual_seed(4))  # draw k of row i is row 5k + i
    torch.testing.assert_close(first, model(rows).reshape(6, 5, 3).mean(0))
    assert not torch.allclose(one_batch(x), first)  # the next call draws afresh
    torch.testing.assert_close(one_batch.reseed()(x), first)
    with pytest.raises(TypeError, match="transform"):
        EOT(model, 2, transform="affine")


def test_eot_attack_survives_random_transforms_better_than_plain_pgd(trained):
    """Measured: under random affine + noise, EOT-PGD examples fool 0.74, plain PGD ones 0.66 (clean 0.10)."""
    x, y = _data(100, 1)
    transform = Compose([RandomAffine(25, (0.8, 1.2), 0.15, fill=0.5), GaussianNoise(0.05)])
    threat = Linf(0.1)
    plain = PGD(threat, steps=30, early_stop=False, loss="margin")(trained, x, y)
    eot = PGD(threat, steps=30, early_stop=False, loss="margin")(EOT(trained, 16, transform=transform), x, y)
    g = torch.Generator().manual_seed(11)

    def fooled_under_transforms(x_adv):
        with torch.no_grad():
            return sum(float((trained(transform(x_adv, g)).argmax(1) != y).float().mean()) for _ in range(10)) / 10

    assert fooled_under_transforms(eot.x_adv) >= fooled_under_transforms(plain.x_adv) + 0.05


def _motifs(n: int, seed: int, size: int = 12):
    """Four classes told apart by a small 4x4 motif somewhere in noise: local evidence a patch can fake."""
    g = torch.Generator().manual_seed(7)
    motifs = (torch.rand(4, 4, 4, generator=g) > 0.5).float() * 0.8 - 0.4
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.5 + 0.1 * torch.randn(n, 1, size, size, generator=g)
    r, c = torch.randint(0, size - 3, (2, n), generator=g)
    for i in range(n):
        x[i, 0, r[i]:r[i] + 4, c[i]:c[i] + 4] += motifs[y[i]]
    return x.clamp(0, 1), y


def test_patch_forces_the_target_on_held_out_images_and_placements():
    """Measured: a 4x4 patch (11% of a 12x12 image): target rate 0.46, random patch 0.17, clean 0.20."""
    x, y = _motifs(1000, 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    fit(model, x, y, steps=150)
    x_train, _ = _motifs(500, 2)
    x_test, _ = _motifs(200, 3)
    patch = AdversarialPatch(target=2, size=4, steps=60, lr=0.1, batch_size=32)
    p = patch.fit(model, x_train)
    assert p.shape == (1, 4, 4) and bool((p >= 0).all() and (p <= 1).all())
    res = patch.evaluate(model, x_test, placements=5)
    assert res["target_rate"] >= 0.35, res
    assert res["target_rate"] >= res["random_patch_rate"] + 0.2, res


def test_patch_changes_only_its_square():
    patch = AdversarialPatch(target=0, size=3)
    x = torch.rand(5, 2, 8, 8)
    out = patch.apply(x, torch.full((2, 3, 3), 7.0), torch.Generator().manual_seed(0))
    changed = (out != x).any(1)
    assert torch.equal(changed.flatten(1).sum(1), torch.full((5,), 9))
    assert bool((out[(out != x)] == 7.0).all())
    with pytest.raises(ValueError, match="fit"):
        AdversarialPatch(target=0).apply(x)
