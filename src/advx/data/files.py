"""The user's own arrays: ``.npz`` and ``.safetensors`` files holding ``x`` and ``y``.

``x`` is (N, ...) float in [0, 1], or uint8 0-255 (divided by 255: said in a log
line and in ``source``). A 4-D ``x`` whose last axis looks like channels (1, 3 or
4) while its second does not is channels-last (NHWC): it is transposed to NCHW,
and said so too. ``y`` is (N,) integer labels. Class names may come as a
comma-separated ``classes`` entry of the safetensors metadata, or (npz) a string
array ``classes``. ``n`` takes the first n rows: files keep their order.

Nothing is unpickled: npz files are opened with ``allow_pickle=False``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from advx.data.base import LabeledData

__all__ = ["load_array_file", "to_unit_range", "channels_first"]

log = logging.getLogger(__name__)

#: largest file advx reads into memory as arrays (8 GiB); a bigger one is refused before reading
MAX_FILE_BYTES = 8 << 30


def load_array_file(path: str | Path, n: int | None = None) -> LabeledData:
    """``x``, ``y`` (and ``classes``) of an ``.npz`` / ``.safetensors`` file as :class:`LabeledData`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"data file {path}: {path.stat().st_size} bytes is more than advx reads into memory "
                         f"({MAX_FILE_BYTES} bytes); split it or pass -n on a smaller file")
    classes: list[str] | None = None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            missing = {"x", "y"} - set(z.files)
            if missing:
                raise ValueError(f"data file {path}: needs arrays 'x' and 'y', lacks {sorted(missing)}")
            x, y = torch.from_numpy(np.ascontiguousarray(z["x"])), torch.from_numpy(np.ascontiguousarray(z["y"]))
            if "classes" in z.files:
                classes = [str(c) for c in z["classes"]]
    elif path.suffix == ".safetensors":
        from safetensors import safe_open  # noqa: PLC0415

        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            if not {"x", "y"} <= keys:
                raise ValueError(f"data file {path}: needs tensors 'x' and 'y', has {sorted(keys)}")
            x, y = f.get_tensor("x"), f.get_tensor("y")
            meta = f.metadata() or {}
            if meta.get("classes"):
                classes = meta["classes"].split(",")
    else:
        raise ValueError(f"data file {path}: expected a .npz or .safetensors file")
    if x.dim() < 2:
        raise ValueError(f"data file {path}: 'x' must be (N, ...) with one row per sample, got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"data file {path}: 'y' must be integer labels of shape ({x.shape[0]},), "
                         f"got {y.dtype} {tuple(y.shape)}")
    notes: list[str] = []
    if n is not None and n > x.shape[0]:  # said, never silent (issue: -n 1e6 on a 30-row file)
        log.warning("data file %s: -n %d asked, it holds %d rows; using all %d", path, n, x.shape[0], x.shape[0])
        notes.append(f"all {x.shape[0]} rows (-n {n} asked)")
    elif n is not None:
        x, y = x[:n], y[:n]
    x, note = channels_first(x, what=f"data file {path}")
    notes += [note] if note else []
    x, note = to_unit_range(x, what=f"data file {path}")
    notes += [note] if note else []
    y = y.long()
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"data file {path}: labels must be >= 0, found {int(y.min())}")
    if classes is None:
        classes = [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    elif len(y) and int(y.max()) >= len(classes):
        raise ValueError(f"data file {path}: label {int(y.max())} has no name among the {len(classes)} classes")
    source = f"file {path}" + "".join(f"; {s}" for s in notes)
    return LabeledData(x.contiguous(), y, classes, path.stem, source, "file")


def to_unit_range(x: Tensor, what: str = "x") -> tuple[Tensor, str | None]:
    """float32 ``x`` in [0, 1]: uint8 is divided by 255 (returns a note saying so); floats must be in [0, 1]."""
    if x.dtype == torch.uint8:
        log.info("%s: x is uint8 0-255; scaled to [0, 1] (divided by 255)", what)
        return x.float().div_(255.0), "uint8 0-255 scaled to [0, 1]"
    if not x.is_floating_point():
        raise ValueError(f"{what}: 'x' must be floats in [0, 1] or uint8 0-255, got {x.dtype}")
    x = x.float()
    if len(x) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what}: 'x' holds NaN or infinite values")
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (0.0, 1.0)
    if lo < 0.0 or hi > 1.0:
        hint = " (it looks like 0-255: store it as uint8, or divide by 255)" if lo >= 0 and hi <= 255 else \
            " (normalised data? store raw pixels in [0, 1] and give the model's --mean/--std instead)"
        raise ValueError(f"{what}: float 'x' must lie in [0, 1], found values in [{lo:g}, {hi:g}]{hint}")
    return x, None


def channels_first(x: Tensor, what: str = "x") -> tuple[Tensor, str | None]:
    """NCHW ``x``: a 4-D array whose last axis has 1, 3 or 4 entries and whose second has not is
    transposed from NHWC (returns a note saying so); anything else is kept as it is."""
    if x.dim() == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        log.info("%s: x of shape %s is channels-last (NHWC); transposed to NCHW %s", what, tuple(x.shape),
                 (x.shape[0], x.shape[3], x.shape[1], x.shape[2]))
        return x.permute(0, 3, 1, 2).contiguous(), f"channels-last (NHWC) {tuple(x.shape[1:])} transposed to NCHW"
    return x, None
