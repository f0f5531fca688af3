"""Small models and data shared by the tests (fixtures built on them live in conftest.py).

Every builder is seeded: the same arguments give the same weights and points.
Closed-form distances for the linear models are in ``tests/geometry.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from advx.threat import L1, L2, Linf

WIDE = (-10.0, 10.0)  # a box that never binds for inputs near 0
EPS = {Linf: 0.08, L2: 0.6, L1: 3.0}  # radii at which TinyMLP on tiny_data is attackable, not trivially


class LinearModel(nn.Module):
    """logits = W x + b on flattened inputs: every decision boundary is a hyperplane.

    W ~ N(0, 1), b ~ N(0, 0.01) from ``generator`` (advanced) or, if None, a fresh one seeded with ``seed``.
    """

    def __init__(self, in_features: int, classes: int, seed: int = 0, generator: torch.Generator | None = None):
        super().__init__()
        g = torch.Generator().manual_seed(seed) if generator is None else generator
        self.linear = nn.Linear(in_features, classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(classes, in_features, generator=g))
            self.linear.bias.copy_(torch.randn(classes, generator=g) * 0.1)

    def forward(self, x):
        return self.linear(x.flatten(1))


class SmallCNN(nn.Module):
    """Two conv blocks for 1x28x28 images (MNIST-sized)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 7 * 7, classes),
        )

    def forward(self, x):
        return self.net(x)


class TinyConv(nn.Module):
    """One 3x3 conv (4 channels) + ReLU + linear, for (N, channels, 8, 8) inputs; weights from torch.manual_seed(0).

    Built in eval mode. Note: seeds (and so changes) torch's global generator.
    """

    def __init__(self, classes: int = 5, channels: int = 1):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, classes)
        self.eval()

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class TinyMLP(nn.Module):
    """12 -> 16 (tanh, dropout 0.3) -> classes, on (N, 3, 4) inputs; weights from torch.manual_seed(seed)."""

    def __init__(self, classes: int = 5, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, classes))

    def forward(self, x):
        return self.net(x)


def tiny_data(seed: int, n: int = 6, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uniform points in [0, 1]^(3x4) for :class:`TinyMLP`, with random labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 4, generator=g), torch.randint(0, classes, (n,), generator=g)


def per_sample(kind, radius_fn, bounds=WIDE):
    """A threat of the norm ``kind`` whose radius is a function of each clean sample."""
    cls = type(f"PerSample{kind.__name__}", (kind,), {"radius": lambda self, x: radius_fn(x).to(x.dtype)})
    return cls(1.0, bounds=bounds)


def linear_points(model: nn.Module, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` standard normal points for a :class:`LinearModel`, labelled with its predictions."""
    x = torch.randn(n, model.linear.in_features, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return x, model(x).argmax(1)


def linear_problem(n: int, seed: int = 0) -> tuple[LinearModel, torch.Tensor, torch.Tensor]:
    """A 4-class :class:`LinearModel` on R^20 and ``n`` points N(0, 0.01) near 0 (far inside ``WIDE``),
    labelled with its predictions; weights and points from one generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    model = LinearModel(20, 4, generator=g).eval()
    x = torch.randn(n, 20, generator=g) * 0.1
    with torch.no_grad():
        return model, x, model(x).argmax(1)


def boxed_linear_problem(classes: int, n: int, seed: int = 0, features: int = 12):
    """A :class:`LinearModel` and ``n`` points uniform in [0.3, 0.7]^features, labelled with its predictions:
    for Linf eps <= 0.3 the [0, 1] box never binds, so closed-form distances are exact."""
    g = torch.Generator().manual_seed(seed)
    model = LinearModel(features, classes, generator=g).eval()
    x = 0.3 + 0.4 * torch.rand(n, features, generator=g)
    with torch.no_grad():
        return model, x, model(x).argmax(1)


def assert_judged_and_repeatable(attack, model, x, y, target, r) -> None:
    """``r.success`` is the model's own verdict on ``r.x_adv`` (target reached, or label changed), and a
    second identical call returns the same ``x_adv``."""
    with torch.no_grad():
        pred = model(r.x_adv).argmax(1)
    assert torch.equal(r.success, pred == target if target is not None else pred != y)
    assert torch.equal(attack(model, x, y, target).x_adv, r.x_adv)


def templates(n: int, seed: int, size: int, template_seed: int, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of smooth templates (size x size, from ``template_seed``) in Gaussian ``noise``, in [0, 1]."""
    g = torch.Generator().manual_seed(template_seed)
    tmpl = nn.functional.avg_pool2d(torch.randn(4, 1, size + 4, size + 4, generator=g), 5, 1)
    tmpl = tmpl / tmpl.flatten(1).std(1)[:, None, None, None]
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    return (0.5 + 0.12 * tmpl[y] + noise * torch.randn(n, 1, size, size, generator=g)).clamp(0, 1), y


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> nn.Module:
    """Adam (lr 1e-2) on cross-entropy, ``steps`` random batches of 64 drawn from torch's global generator."""
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(steps):
        b = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(model(x[b]), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
