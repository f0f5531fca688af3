"""The recipe that trains the committed ``digits-kws`` weights.

    python -m advx.audio.train --out src/advx/audio/weights --epochs 6
    python -m advx.audio.train --out src/advx/audio/weights --epochs 6 --floor-db -70 --name digits-kws-floor

The second trains the same network with the log-mel floor 70 dB below full
scale instead of the absolute 1e-6 (see :mod:`advx.audio.frontend`): the
noise-floor comparison of docs/audio.md.

Data: the synthetic espeak-ng digits (:func:`advx.audio.data.load_digits`),
train split; the val split picks the best epoch; accuracy is reported on the
test split, whose voices were never heard in training. Augmentation: the
playback transforms of :mod:`advx.audio.transforms` (room response, gain, time
shift, noise). AdamW with a one-cycle learning rate, label smoothing 0.05.
Single-threaded by default: on a shared machine one thread is the fastest.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from advx.audio.data import _VERSION, load_digits
from advx.audio.models import KeywordSpotter
from advx.audio.transforms import AddNoise, RandomGain, RandomShift, RoomResponse

__all__ = ["train_kws", "accuracy"]

log = logging.getLogger(__name__)


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


def _augment(x: Tensor, g: torch.Generator) -> Tensor:
    n = len(x)
    pick = torch.rand(n, generator=g)
    room = RoomResponse(rt60=(0.1, 0.6))(x, g)
    x = torch.where((pick < 0.5)[:, None], room, x)
    x = RandomShift(1600)(RandomGain((-12.0, 3.0))(x, g), g)
    noisy = AddNoise((5.0, 40.0))(x, g)
    return torch.where((torch.rand(n, generator=g) < 0.7)[:, None], noisy, x)


def train_kws(epochs: int = 6, batch: int = 64, lr: float = 3e-3, width: int = 16, seed: int = 0,
              threads: int = 1, floor_db: float | None = None, name: str = "digits-kws") -> tuple[KeywordSpotter, dict]:
    """Train a :class:`KeywordSpotter` on the espeak-ng digits; returns it and its metadata."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    train, val, test = (load_digits("espeak", s) for s in ("train", "val", "test"))
    model = KeywordSpotter(width=width, floor_db=floor_db)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (len(train) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    best, best_state, history = -1.0, None, []
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=g)
        for s in range(0, len(order) - batch + 1, batch):
            idx = order[s: s + batch]
            x = _augment(train.waves[idx], g)
            loss = F.cross_entropy(model(x), train.labels[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(model, val.waves, val.labels)
        history.append({"epoch": epoch + 1, "val_accuracy": acc, "loss": float(loss), "seconds": time.time() - t0})
        log.info("epoch %d: loss %.3f, val accuracy %.4f (%.0f s)", epoch + 1, float(loss), acc, time.time() - t0)
        if acc >= best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    info = {
        "name": name,
        "config": model.config,
        "data": f"{_VERSION}: synthetic speech (espeak-ng) spoken digits, splits disjoint by voice",
        "train_clips": len(train), "val_clips": len(val), "test_clips": len(test),
        "recipe": {"epochs": epochs, "batch": batch, "lr": lr, "optimizer": "AdamW, one-cycle",
                   "label_smoothing": 0.05, "augment": "room 50%, gain -12..3 dB, shift 0.1 s, noise 5-40 dB SNR 70%",
                   "seed": seed},
        "val_accuracy": best,
        "test_accuracy": accuracy(model, test.waves, test.labels),
        "history": history,
        "train_seconds": round(time.time() - t0, 1),
        "torch": torch.__version__,
    }
    return model, info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--floor-db", type=float, default=None, help="log-mel floor in dB re full scale")
    parser.add_argument("--name", default="digits-kws", help="weights file stem")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from safetensors.torch import save_file  # noqa: PLC0415

    model, info = train_kws(epochs=args.epochs, width=args.width, seed=args.seed, threads=args.threads,
                            floor_db=args.floor_db, name=args.name)
    info["command"] = "python -m advx.audio.train " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out / f"{args.name}.safetensors"))
    (args.out / f"{args.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("saved to %s: val %.4f, test (held-out voices) %.4f", args.out, info["val_accuracy"],
             info["test_accuracy"])


if __name__ == "__main__":
    main()
