"""Hugging Face image classifiers as advx models: ``hf:<folder or hub id>``.

:func:`load_hf_image_classifier` loads ``transformers.AutoModelForImageClassification``
(safetensors weights only: nothing is unpickled; no remote code) and its image
processor, and returns a model from inputs in [0, 1] (N, C, H, W) to logits:
``Normalized(HFImageClassifier(...), image_mean, image_std)``. The processor's
rescaling (1/255) is what advx's [0, 1] inputs already are; its resize is done
inside :class:`HFImageClassifier` (bilinear, differentiable) when the input's
size differs from the processor's, so attacks see the whole pipeline.

A hub id needs a network to download (then it is cached by ``huggingface_hub``);
a folder written by ``save_pretrained`` works offline. ``transformers`` is an
optional extra (``pip install 'advx[hf]'``), imported only here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advx.model.core import Normalized

__all__ = ["HFImageClassifier", "load_hf_image_classifier", "require_transformers"]

log = logging.getLogger(__name__)


def require_transformers():
    """The ``transformers`` module, or ModuleNotFoundError saying how to install it."""
    try:
        import transformers  # noqa: PLC0415
    except ImportError as e:
        raise ModuleNotFoundError(
            "hf: models need the optional package transformers: pip install 'advx[hf]' "
            "(or pip install transformers)") from e
    return transformers


class HFImageClassifier(nn.Module):
    """``model(pixel_values=resize(x)).logits``: a transformers image classifier as a logits function."""

    def __init__(self, model: nn.Module, size: tuple[int, int] | None = None):
        super().__init__()
        self.model = model
        self.size = tuple(size) if size is not None else None
        self._warned = False

    def forward(self, x: Tensor) -> Tensor:
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            if not self._warned:
                log.info("hf model: resizing %s inputs to the processor's %s inside the model",
                         tuple(x.shape[-2:]), self.size)
                self._warned = True
            x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=False)
        return self.model(pixel_values=x).logits


def _processor_size(proc: Any) -> tuple[int, int] | None:
    """(height, width) the processor feeds the model: its crop size if it crops, else its size."""
    size = getattr(proc, "crop_size", None) if getattr(proc, "do_center_crop", False) else None
    size = size or getattr(proc, "size", None)
    if isinstance(size, int):
        return size, size
    if size is None:
        return None
    get = size.get if isinstance(size, dict) else lambda k: getattr(size, k, None)  # dict or SizeDict
    if get("height") and get("width"):
        return int(get("height")), int(get("width"))
    if get("shortest_edge"):
        return int(get("shortest_edge")), int(get("shortest_edge"))
    return None


def load_hf_image_classifier(ref: str, device: str | torch.device = "cpu", *, mean=None, std=None
                             ) -> tuple[nn.Module, dict[str, Any]]:
    """(model from [0, 1] inputs to logits, metadata) for a Hugging Face folder or hub id.

    ``mean``/``std`` override the processor's normalisation. The metadata has the
    class names (``config.id2label``), normalisation, input size and channels.
    """
    transformers = require_transformers()
    local = Path(ref).is_dir()
    try:
        net = transformers.AutoModelForImageClassification.from_pretrained(ref, use_safetensors=True)
    except (OSError, ValueError) as e:
        how = ("the folder needs config.json and model.safetensors (save_pretrained writes them)" if local else
               "a hub id needs network access (or the model already in the Hugging Face cache); "
               "a local folder from save_pretrained works offline")
        raise ValueError(f"hf:{ref}: cannot load an image classifier ({e}); {how}") from None
    try:
        proc = transformers.AutoImageProcessor.from_pretrained(ref)
    except (OSError, ValueError) as e:
        proc = None
        log.warning("hf:%s: no image processor (%s); inputs are not normalised unless --mean/--std are given",
                    ref, str(e).splitlines()[0] if str(e) else type(e).__name__)
    size = _processor_size(proc) if proc is not None else None
    if mean is None and std is None and proc is not None and getattr(proc, "do_normalize", True):
        mean, std = getattr(proc, "image_mean", None), getattr(proc, "image_std", None)
    model: nn.Module = HFImageClassifier(net.eval(), size)
    if mean is not None and std is not None:
        model = Normalized(model, list(mean) if not isinstance(mean, (int, float)) else mean,
                           list(std) if not isinstance(std, (int, float)) else std)
    config = net.config
    id2label = getattr(config, "id2label", None) or {}
    n = int(getattr(config, "num_labels", len(id2label)))
    classes = [str(id2label.get(i, id2label.get(str(i), i))) for i in range(n)]
    info = {
        "spec": f"hf:{ref}", "format": "hf", "model_type": getattr(config, "model_type", None),
        "num_classes": n, "classes": classes, "in_channels": int(getattr(config, "num_channels", 3)),
        "size": list(size) if size else None,
        "mean": list(mean) if mean is not None and not isinstance(mean, (int, float)) else mean,
        "std": list(std) if std is not None and not isinstance(std, (int, float)) else std,
        "params": sum(p.numel() for p in net.parameters()),
    }
    return model.to(device).eval(), info
