"""An image folder: ``root/<class>/*.png|jpg|jpeg|bmp``, read with Pillow.

Class names are the sub-folder names, sorted (label k = the k-th name). Images
are read as RGB, or as one grey channel when every image of the folder is grey;
transparency is dropped. Nothing is resized or cropped unless asked
(``resize=``, ``center_crop=``, the ``--resize``/``--center-crop`` options):
without them every image must have the same size, and a mismatch is an error
naming the files. ``n`` takes a class-stratified, seeded subset (like the named
data sets), and only those images are decoded; an ``n`` at or above the folder's
size takes every image.

A root holding ``train``/``test``/``val`` folders (each of them class folders)
is read at ``split``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from advx.data.base import LabeledData, stratified_indices

__all__ = ["IMAGE_SUFFIXES", "is_image_folder", "list_images", "load_image_folder", "parse_size"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_SPLIT_DIRS = {"train", "test", "val", "valid", "validation"}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}

Size = int | tuple[int, int]


def parse_size(value: str | int | Sequence[int] | None, what: str = "size") -> Size | None:
    """``32`` (shorter side / square crop) or ``"32x48"`` (height x width) -> int or (h, w)."""
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        out = value
    elif isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{what} {value!r}: give N or HxW, e.g. 32 or 32x48") from None
        if len(nums) not in (1, 2):
            raise ValueError(f"{what} {value!r}: give N or HxW, e.g. 32 or 32x48")
        out = nums[0] if len(nums) == 1 else (nums[0], nums[1])
    else:
        nums = [int(v) for v in value]
        if len(nums) != 2:
            raise ValueError(f"{what} {value!r}: give N or (height, width)")
        out = (nums[0], nums[1])
    for v in [out] if isinstance(out, int) else list(out or ()):
        if not 1 <= v <= 8192:
            raise ValueError(f"{what} {value!r}: sizes must be in 1..8192")
    return out


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def is_image_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder with sub-folders (or split folders) holding images."""
    root = Path(path)
    if not root.is_dir():
        return False
    dirs = _class_dirs(root)
    return any(_images_in(d) for d in dirs)


def _split_root(root: Path, split: str) -> tuple[Path, str | None]:
    dirs = _class_dirs(root)
    names = {d.name.lower() for d in dirs}
    if dirs and names <= _SPLIT_DIRS and all(_class_dirs(d) for d in dirs):
        for d in dirs:
            if d.name.lower() == split or (split == "test" and d.name.lower() in ("val", "valid", "validation")
                                           and not (root / "test").is_dir()):
                return d, d.name
        raise ValueError(f"image folder {root}: has split folders {sorted(d.name for d in dirs)} but no "
                         f"{split!r}; pass --split {dirs[0].name}")
    return root, None


def list_images(root: str | Path, split: str = "test") -> tuple[list[Path], np.ndarray, list[str], Path]:
    """(image files, their labels, class names, the folder read) of an image folder, in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    root, _ = _split_root(root, split)
    classes, files, labels = [], [], []
    for d in _class_dirs(root):
        imgs = _images_in(d)
        if not imgs:
            continue
        classes.append(d.name)
        files += imgs
        labels += [len(classes) - 1] * len(imgs)
    if not files:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES][:3]
        hint = (f"; it has images directly inside ({', '.join(loose)}): put each class's images in their "
                "own sub-folder, root/<class>/*.png") if loose else ""
        raise ValueError(f"image folder {root}: no class sub-folders with {'/'.join(IMAGE_SUFFIXES)} images "
                         f"(layout: root/<class>/*.png){hint}")
    return files, np.asarray(labels, dtype=np.int64), classes, root


def _resize(img, size: Size):
    from PIL import Image  # noqa: PLC0415

    w, h = img.size
    if isinstance(size, int):  # shorter side to `size`, aspect kept (torchvision's Resize(int))
        if w <= h:
            new = (size, max(1, round(h * size / w)))
        else:
            new = (max(1, round(w * size / h)), size)
    else:
        new = (size[1], size[0])
    return img if new == (w, h) else img.resize(new, Image.Resampling.BILINEAR)


def _center_crop(img, size: Size, path: Path):
    th, tw = (size, size) if isinstance(size, int) else size
    w, h = img.size
    if th > h or tw > w:
        raise ValueError(f"{path}: {w}x{h} (width x height) is smaller than the center crop {tw}x{th}; "
                         "add --resize first")
    left, top = (w - tw) // 2, (h - th) // 2
    return img.crop((left, top, left + tw, top + th))


def load_image_folder(root: str | Path, split: str = "test", n: int | None = None, seed: int = 0, *,
                      resize: Size | None = None, center_crop: Size | None = None) -> LabeledData:
    """The images of ``root/<class>/`` as float32 (N, C, H, W) in [0, 1] with int64 labels.

    >>> data = load_image_folder("images", resize=36, center_crop=32)  # doctest: +SKIP
    >>> data.classes, data.x.shape                                       # doctest: +SKIP
    (['cat', 'dog'], torch.Size([100, 3, 32, 32]))
    """
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - Pillow comes with matplotlib
        raise ModuleNotFoundError("image folders need Pillow: pip install pillow") from e
    resize, center_crop = parse_size(resize, "resize"), parse_size(center_crop, "center crop")
    files, labels, classes, folder = list_images(root, split)
    total = len(files)
    if n is not None and n >= total:
        log.warning("image folder %s: -n %d asked, it holds %d images; using all of them", folder, n, total)
        n = None
    if n is not None:
        idx = stratified_indices(labels, n, seed)
        files, labels = [files[i] for i in idx], labels[idx]
    pictures, modes = [], set()
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                modes.add(im.mode)
                pictures.append(im.copy())
        except (OSError, Image.DecompressionBombError) as e:
            raise ValueError(f"image folder {folder}: cannot read {f}: {e}") from None
    grey = modes <= _GREY_MODES
    mode = "L" if grey else "RGB"
    arrays, sizes = [], {}
    for f, im in zip(files, pictures):
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit / float grey: to 8 bits by its own range
            a = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.clip(a / (65535.0 if a.max() > 255 else 255.0) * 255, 0, 255).astype(np.uint8))
        im = im.convert(mode)
        if resize is not None:
            im = _resize(im, resize)
        if center_crop is not None:
            im = _center_crop(im, center_crop, f)
        sizes.setdefault(im.size, []).append(f)
        arrays.append(np.asarray(im, dtype=np.uint8))
    if len(sizes) > 1:
        common = max(sizes, key=lambda s: len(sizes[s]))
        odd = [(s, fs) for s, fs in sizes.items() if s != common]
        shown = "; ".join(f"{s[0]}x{s[1]}: {', '.join(str(p) for p in fs[:3])}" + (" ..." if len(fs) > 3 else "")
                          for s, fs in odd[:4])
        raise ValueError(f"image folder {folder}: images differ in size (width x height): most are "
                         f"{common[0]}x{common[1]} ({len(sizes[common])} files, e.g. {sizes[common][0]}), but "
                         f"{shown}. Give --resize N (shorter side) and/or --center-crop N to make them one size")
    stack = np.stack(arrays)
    x = torch.from_numpy(stack).float().div_(255.0)
    x = x.unsqueeze(1) if grey else x.permute(0, 3, 1, 2).contiguous()
    parts = [f"image folder {folder}: {len(files)} images, {len(classes)} classes, "
             f"{'grey' if grey else 'RGB'} {x.shape[-1]}x{x.shape[-2]}"]
    if resize is not None:
        parts.append(f"resized to {resize if isinstance(resize, int) else f'{resize[0]}x{resize[1]}'}"
                     + (" (shorter side)" if isinstance(resize, int) else ""))
    if center_crop is not None:
        parts.append(f"center crop {center_crop}")
    if n is not None:
        parts.append(f"stratified subset of {n} (seed {seed})")
    parts.append("pixels 0-255 scaled to [0, 1]")
    source = "; ".join(parts)
    log.info("%s", source)
    return LabeledData(x, torch.from_numpy(labels.astype(np.int64)), classes, Path(root).name, source, split)
