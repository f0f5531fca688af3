"""The keyword spotter's training pieces: its playback augmentation and its accuracy.

The recipe itself runs through the project's one training loop,
``advx.defenses.loop.train``, composed by the command line (``advx.audio`` never
imports ``advx.defenses``; ``advx.cli.train`` puts the pieces together):

    advx train --arch kws --data digits --epochs 6 --batch-size 64 --lr 0.003 --optimizer adamw \\
        --weight-decay 1e-4 --schedule onecycle --lr-warmup 0.2 --label-smoothing 0.05 --width 16 \\
        --threads 1 --out src/advx/audio/weights/digits-kws.safetensors

and with ``--floor-db -70`` (``--out .../digits-kws-floor.safetensors``) the same
network with the log-mel floor 70 dB below full scale instead of the absolute
1e-6 (see :mod:`advx.audio.frontend`): the noise-floor comparison of docs/audio.md.

Data: the synthetic espeak-ng digits (:func:`advx.audio.data.load_digits`),
train split; the val split picks the best epoch; accuracy is reported on the
test split, whose voices were never heard in training. Augmentation
(:func:`augment`): the playback transforms of :mod:`advx.audio.transforms`
(room response, gain, time shift, noise). The committed weights were trained by
this module's former private loop (``python -m advx.audio.train``, named in
their sidecars under ``trained_with``); ``advx train`` reproduces the recipe
(an equivalent model, not a bit-identical one).
"""

from __future__ import annotations

import torch
from torch import Tensor

from advx.audio.transforms import AddNoise, RandomGain, RandomShift, RoomResponse

__all__ = ["accuracy", "augment"]


@torch.no_grad()
def accuracy(model, waves: Tensor, labels: Tensor, batch: int = 256, transform=None, seed: int = 0) -> float:
    """Top-1 accuracy of ``model`` (optionally after a random ``transform`` of each clip)."""
    g = torch.Generator().manual_seed(seed)
    model.eval()
    right = 0
    for s in range(0, len(waves), batch):
        x = waves[s: s + batch]
        if transform is not None:
            x = transform(x, g)
        right += int((model(x).argmax(1) == labels[s: s + batch]).sum())
    return right / max(1, len(waves))


def augment(x: Tensor, g: torch.Generator) -> Tensor:
    """The recipe's playback augmentation of a batch of waveforms (N, T), drawn from ``g``: a room response
    (RT60 0.1-0.6 s) on half the clips, gain -12..+3 dB, a time shift of up to 0.1 s, noise at 5-40 dB SNR on
    70% of them. ``augment(x, generator) -> x`` is what the shared training loop takes."""
    n = len(x)
    pick = torch.rand(n, generator=g)
    room = RoomResponse(rt60=(0.1, 0.6))(x, g)
    x = torch.where((pick < 0.5)[:, None], room, x)
    x = RandomShift(1600)(RandomGain((-12.0, 3.0))(x, g), g)
    noisy = AddNoise((5.0, 40.0))(x, g)
    return torch.where((torch.rand(n, generator=g) < 0.7)[:, None], noisy, x)
