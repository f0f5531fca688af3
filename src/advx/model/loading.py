"""Every model spec advx accepts, as a model from inputs in [0, 1] to logits.

:func:`load_model` takes what :func:`advx.zoo.load_model` takes (zoo name,
``.safetensors`` + sidecar, ``.pt2``, ``module:function`` from the working
directory, an ``nn.Module``) plus ``hf:<folder or hub id>`` (a Hugging Face image
classifier with its processor's normalisation and size inside, :mod:`advx.model.hf`),
and wraps the model in :class:`~advx.model.Normalized` when it expects normalised
input: ``mean=``/``std=`` (``--mean``/``--std``), else a sidecar's ``mean``/``std``.

:func:`check_model_fits` runs one forward pass on one sample before a job starts,
so a data/model mismatch is one line naming both shapes instead of a conv2d
traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advx.model.core import Normalized
from advx.model.scores import check_scores

__all__ = ["load_model", "load_model_with_info", "check_model_fits", "parse_stats"]

log = logging.getLogger(__name__)

Stat = float | Sequence[float] | None


def parse_stats(value: str | Stat, what: str = "--mean") -> float | list[float] | None:
    """``"0.5"`` or ``"0.4914,0.4822,0.4465"`` (or numbers) -> a float or a list of floats."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parts = [float(v) for v in value.replace(" ", "").split(",") if v]
        except ValueError:
            raise ValueError(f"{what} {value!r}: give one number or one per channel, e.g. "
                             f"{what} 0.4914,0.4822,0.4465") from None
    elif isinstance(value, (int, float)):
        parts = [float(value)]
    else:
        parts = [float(v) for v in value]
    if not parts or len(parts) > 16 or not all(torch.isfinite(torch.tensor(parts))):
        raise ValueError(f"{what} {value!r}: give 1 to 16 finite numbers, one per channel")
    return parts[0] if len(parts) == 1 else parts


def load_model_with_info(spec: str | Path | nn.Module, arch: str | None = None, device: str | torch.device = "cpu",
                         *, mean: str | Stat = None, std: str | Stat = None) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on ``device``, metadata) for ``spec``; see the module docstring."""
    from advx import zoo  # noqa: PLC0415

    mean, std = parse_stats(mean, "--mean"), parse_stats(std, "--std")
    if (mean is None) != (std is None):
        raise ValueError("give both --mean and --std (the model's input normalisation), or neither")
    if isinstance(spec, str) and spec.startswith("hf:"):
        from advx.model.hf import load_hf_image_classifier  # noqa: PLC0415

        ref = spec[3:]
        if not ref:
            raise ValueError("model spec 'hf:': give a folder or hub id, e.g. hf:./my-vit or hf:google/vit-base-patch16-224")
        return load_hf_image_classifier(ref, device, mean=mean, std=std)
    model = zoo.load_model(spec, arch=arch, device=device)
    try:
        info = zoo.model_info(spec)
    except (OSError, ValueError) as e:  # metadata is optional for user models
        log.debug("no metadata for %s: %s", spec, e)
        info = {"spec": str(spec)}
    if mean is None and info.get("mean") is not None:
        mean, std = info["mean"], info["std"]
        log.info("%s: normalising inputs with the sidecar's mean %s and std %s", spec, mean, std)
    if mean is not None:
        model = Normalized(model, mean, std).to(device).eval()
        info = {**info, "mean": mean, "std": std}
    return model, info


def load_model(spec: str | Path | nn.Module, arch: str | None = None, device: str | torch.device = "cpu", *,
               mean: str | Stat = None, std: str | Stat = None) -> nn.Module:
    """The model named by ``spec`` (zoo name, file, ``module:function``, ``hf:...``), on ``device``, in eval mode.

    >>> model = load_model("mymodels:build", mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26])  # doctest: +SKIP
    """
    return load_model_with_info(spec, arch, device, mean=mean, std=std)[0]


def _expected(info: dict[str, Any]) -> str | None:
    c, size = info.get("in_channels"), info.get("size")
    if c is None and size is None:
        return None
    hw = "HxW" if size is None else (f"{size[0]}x{size[1]}" if isinstance(size, (list, tuple)) else f"{size}x{size}")
    return f"({c if c is not None else 'C'}, {hw.replace('x', ', ')})"


def _first_layer(model: nn.Module) -> str | None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return f"its first convolution takes {m.in_channels} channels"
        if isinstance(m, nn.Linear):
            return f"its first dense layer takes {m.in_features} features"
    return None


def check_model_fits(model, x: Tensor, num_labels: int | None = None, *, model_name: str = "the model",
                     data_name: str = "the data", info: dict[str, Any] | None = None) -> int:
    """One forward pass on ``x[:1]``; ValueError naming both shapes when the model cannot take the data.

    Also refused: output that is not (1, classes) logits, and labels the model has
    no logit for (``num_labels`` = the largest label + 1). Returns the number of classes.
    """
    if len(x) == 0:
        return -1
    one = x[:1]
    if isinstance(model, nn.Module):
        device = next((p.device for p in model.parameters()), None) or next((b.device for b in model.buffers()), None)
        one = one.to(device) if device is not None else one
    shape = tuple(x.shape)
    expected = _expected(info or {})
    was = model.training if isinstance(model, nn.Module) else None
    try:
        if isinstance(model, nn.Module):
            model.eval()
        with torch.no_grad():
            out = model(one)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        said = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        wants = f"expects inputs {expected}" if expected else (_first_layer(model) if isinstance(model, nn.Module)
                                                               else None) or "cannot take them"
        raise ValueError(
            f"{model_name} does not fit {data_name}: the data is {shape} (one sample {shape[1:]}), "
            f"{model_name} {wants}; its forward pass on one sample failed: {said}. Pick data of the model's "
            f"input shape (an image folder can be resized: --resize/--center-crop)") from None
    finally:
        if was is not None:
            model.train(was)
    # NaN is judged by the attacks and checks later, not refused when the model is loaded
    check_scores(out, 1, where=f"{model_name} (on one sample of {data_name} {shape[1:]})", what="logits",
                 finite=False, convert=False)
    classes = int(out.shape[1])
    if num_labels is not None and num_labels > classes:
        raise ValueError(f"{data_name} has labels up to {num_labels - 1}, but {model_name} outputs {classes} "
                         f"logits: the data's classes are not the model's")
    return classes
