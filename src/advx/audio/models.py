"""Keyword spotting on raw waveforms: the log-mel front end inside the model.

``KeywordSpotter`` maps waveforms (N, T) in [-1, 1] at 16 kHz to logits over
the ten digit words. The log-mel spectrogram (``LogMel``) has its per-clip
mean removed (a gain of g shifts every log-mel value by about 2 log g), then
four 3x3 convolution blocks (the first strided; batch norm, ReLU, max pooling) and global
average + max pooling feed a linear layer: a small CNN in the spirit of the
keyword-spotting CNNs of Sainath & Parada (Interspeech 2015).

:func:`load_model` ("digits-kws") returns it with the committed weights,
trained on the synthetic espeak-ng digits (the recipe: ``advx train --arch kws``, :mod:`advx.audio.train`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor, nn

from advx.audio.frontend import LogMel

__all__ = ["KeywordSpotter", "load_model", "load_recognizer", "MODELS", "model_info"]

#: name -> weights stem under advx/audio/weights; "phrases-ctc" is the CTC recogniser (advx.audio.ctc)
MODELS = {"digits-kws": "digits-kws", "digits-kws-floor": "digits-kws-floor", "phrases-ctc": "phrases-ctc"}


def _block(c_in: int, c_out: int, pool: bool, stride: int = 1) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))


class KeywordSpotter(nn.Module):
    """Waveform (N, T) or (N, 1, T) -> logits (N, classes)."""

    def __init__(self, classes: int = 10, n_mels: int = 40, width: int = 24, sample_rate: int = 16000,
                 floor: float = 1e-6, floor_db: float | None = None):
        super().__init__()
        self.config = {"classes": classes, "n_mels": n_mels, "width": width, "sample_rate": sample_rate,
                       "floor": floor, **({"floor_db": floor_db} if floor_db is not None else {})}
        self.frontend = LogMel(sample_rate=sample_rate, n_mels=n_mels, floor=floor, floor_db=floor_db)
        w = width
        self.body = nn.Sequential(_block(1, w, False, stride=2), _block(w, 2 * w, True), _block(2 * w, 4 * w, True),
                                  _block(4 * w, 4 * w, False))
        self.head = nn.Linear(8 * w, classes)

    def features(self, wave: Tensor) -> Tensor:
        f = self.frontend(wave)
        return ((f - f.mean(dim=(1, 2), keepdim=True)) / 4.0).unsqueeze(1)

    def forward(self, wave: Tensor) -> Tensor:
        h = self.body(self.features(wave))
        return self.head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))


def _weights_dir() -> Path:
    return Path(str(resources.files("advx.audio") / "weights"))


def model_info(name: str = "digits-kws") -> dict:
    """The JSON metadata committed with a model's weights (recipe, data, clean accuracy)."""
    if name not in MODELS:
        raise ValueError(f"unknown audio model {name!r}; available: {sorted(MODELS)}")
    path = _weights_dir() / f"{MODELS[name]}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no metadata for {name!r} at {path}; train it with `{_recipe(name)}`")
    return json.loads(path.read_text())


def _recipe(name: str) -> str:
    return ("advx train --arch ctc --data phrases" if name.endswith("-ctc") else "advx train --arch kws --data digits") \
        + f" --out {name}.safetensors (the full recipe: docs/audio.md)"


def load_model(name: str = "digits-kws", device: str | torch.device = "cpu") -> nn.Module:
    """A pretrained audio model in eval mode (weights loaded with safetensors, no pickle):
    a :class:`KeywordSpotter`, or for "phrases-ctc" a :class:`~advx.audio.ctc.CTCRecognizer`."""
    from safetensors.torch import load_file  # noqa: PLC0415

    info = model_info(name)
    if name.endswith("-ctc"):
        from advx.audio.ctc import CTCRecognizer  # noqa: PLC0415

        model = CTCRecognizer(**info["config"])
    else:
        model = KeywordSpotter(**info["config"])
    path = _weights_dir() / f"{MODELS[name]}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no weights for {name!r} at {path}; train them with `python -m {_recipe(name)}`")
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval()


def load_recognizer(name: str = "phrases-ctc", device: str | torch.device = "cpu") -> nn.Module:
    """A pretrained CTC recogniser (:class:`~advx.audio.ctc.CTCRecognizer`) in eval mode."""
    if not name.endswith("-ctc"):
        raise ValueError(f"{name!r} is not a CTC recogniser; available: {sorted(n for n in MODELS if n.endswith('-ctc'))}")
    return load_model(name, device)
