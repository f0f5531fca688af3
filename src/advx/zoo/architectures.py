"""Small image classifiers for 28x28 grey inputs in [0, 1] (no normalisation layer needed).

* ``lenet`` -- LeNet-style (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based
  learning applied to document recognition"): two 5x5 convolution + max-pool
  stages, then two dense layers; ReLU instead of tanh.
* ``wide-cnn`` -- the same plan with twice the channels and 3x3 convolutions,
  plus dropout before a narrower dense layer.

Neither uses batch normalisation, so a model behaves the same in train and eval
mode apart from dropout, and attacks see one deterministic function.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["LeNet", "WideCNN", "ARCHITECTURES", "build"]


class LeNet(nn.Module):
    """conv5(16) - pool - conv5(32) - pool - fc(128) - fc(classes)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, size: int = 28):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * (size // 4) ** 2, 128), nn.ReLU(), nn.Linear(128, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class WideCNN(nn.Module):
    """conv3(32) - pool - conv3(64) - pool - dropout - fc(64) - fc(classes)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, size: int = 28, dropout: float = 0.25):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(64 * (size // 4) ** 2, 64), nn.ReLU(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


#: architecture name -> constructor taking (in_channels, num_classes, size)
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"lenet": LeNet, "wide-cnn": WideCNN}


def build(arch: str, in_channels: int = 1, num_classes: int = 10, size: int = 28) -> nn.Module:
    """A freshly initialised network of architecture ``arch`` (uses the global torch RNG)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    return ARCHITECTURES[arch](in_channels=in_channels, num_classes=num_classes, size=size)
