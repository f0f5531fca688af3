"""Pictures for the report, as base64 ``data:`` URIs (the page stays one file).

* :func:`robustness_plot` -- robust accuracy versus radius, one panel per norm,
  drawn from the numbers of results.json only.
* :func:`image_uri` / :func:`perturbation_uri` -- one input, or the difference
  between two, as a small PNG; the page scales them up with crisp pixels.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from PIL import Image  # noqa: E402
from torch import Tensor  # noqa: E402

__all__ = ["robustness_plot", "image_uri", "perturbation_uri", "is_image", "PALETTE", "png_uri", "figure_uri"]

#: one colour per attack, in order of appearance (colour-blind friendly, Okabe & Ito 2008)
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
NORM_LABEL = {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0", "db": "dB"}


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_uri(fig, **savefig: Any) -> str:
    """A matplotlib figure as a PNG ``data:`` URI; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    plt.close(fig)
    return png_uri(buf.getvalue())


def attack_colors(results: dict[str, Any]) -> dict[str, str]:
    names: list[str] = []
    for r in results["runs"]:
        if r["attack"] not in names:
            names.append(r["attack"])
    return {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(names)}


def robustness_plot(results: dict[str, Any]) -> str | None:
    """Robust accuracy (%) versus eps, one panel per norm; None when there are no runs."""
    runs = results["runs"]
    if not runs:
        return None
    norms = list(dict.fromkeys(r["threat"]["norm"] for r in runs))
    colors = attack_colors(results)
    clean = results["clean"]["accuracy"]
    fig, axes = plt.subplots(1, len(norms), figsize=(4.6 * len(norms) + 0.6, 3.4), squeeze=False, dpi=150)
    for ax, norm in zip(axes[0], norms):
        for attack, color in colors.items():
            rows = sorted((r for r in runs if r["attack"] == attack and r["threat"]["norm"] == norm),
                          key=lambda r: r["threat"]["eps"])
            if not rows:
                continue
            eps = [0.0] + [r["threat"]["eps"] for r in rows]
            acc = [clean] + [r["metrics"]["robust_accuracy"] for r in rows]
            curve = next((r["curve"] for r in rows if r.get("curve")), None)
            if curve:  # a minimum-norm attack gives the whole curve from one run
                ce, ca = zip(*curve)
                ax.plot(ce, [100 * a for a in ca], color=color, lw=1.6, alpha=0.9)
                ax.plot(eps, [100 * a for a in acc], "o", color=color, ms=5, label=attack.upper())
            else:
                ax.plot(eps, [100 * a for a in acc], "o-", color=color, lw=1.6, ms=5, label=attack.upper())
        ax.set_xlabel(f"ε ({NORM_LABEL.get(norm, norm)})")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.set_xlim(left=0)
        ax.grid(True, color="#e4e7ec", lw=0.8)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize=8)
        ax.set_title(f"{NORM_LABEL.get(norm, norm)} threat", fontsize=10, loc="left")
    fig.tight_layout()
    return figure_uri(fig)


def is_image(sample: Tensor) -> bool:
    """(C, H, W) with 1 or 3 channels, or (H, W)."""
    return (sample.dim() == 3 and sample.shape[0] in (1, 3) and min(sample.shape[1:]) >= 4) or (
        sample.dim() == 2 and min(sample.shape) >= 4
    )


def _hwc(sample: Tensor) -> np.ndarray:
    s = sample.detach().float().cpu()
    if s.dim() == 2:
        s = s.unsqueeze(0)
    return s.permute(1, 2, 0).numpy()


def _encode(arr: np.ndarray) -> str:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return png_uri(buf.getvalue())


def image_uri(sample: Tensor, low: float, high: float) -> str:
    """An input in [low, high] as a grayscale or RGB PNG."""
    a = (_hwc(sample) - low) / (high - low)
    return _encode((np.clip(a, 0, 1) * 255).round().astype(np.uint8))


def perturbation_uri(adv: Tensor, clean: Tensor) -> str:
    """adv - clean scaled so that its largest change fills the colour range.

    Single channel: a diverging map (red = brighter, blue = darker, white = unchanged);
    RGB: grey 0.5 plus the scaled change.
    """
    d = _hwc(adv) - _hwc(clean)
    m = float(np.abs(d).max())
    scaled = d / m if m > 0 else d
    if d.shape[2] == 1:
        rgba = colormaps["RdBu_r"](0.5 + 0.42 * scaled[:, :, 0])  # stop short of the near-black ends
        return _encode((rgba[:, :, :3] * 255).round().astype(np.uint8))
    return _encode((np.clip(0.5 + scaled / 2, 0, 1) * 255).round().astype(np.uint8))


def bounds_range(bounds: Any) -> tuple[float, float]:
    """Scalar display range from (low, high), each a number or per-channel list."""
    lo, hi = (torch.as_tensor(b, dtype=torch.float64) for b in bounds)
    return float(lo.min()), float(hi.max())
