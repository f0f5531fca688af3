"""Pictures for the report, as base64 ``data:`` URIs (the page stays one file).

This module is advx's only PNG encoder: every plot and every example image of
every page comes from here.

* :func:`robustness_plot` -- robust accuracy versus radius, one panel per norm,
  drawn from the numbers of results.json only (attack pages);
  :func:`evaluation_curve`, :func:`certified_curve`, :func:`transfer_heatmap`
  the same for the other page kinds.
* :func:`image_uri` / :func:`perturbation_uri` / :func:`magnitude_uri` -- one
  input, or the difference between two, as a small PNG; the page scales them up
  with crisp pixels.
* :func:`audio_figure` -- waveforms and spectrograms of a clip, its adversarial
  version and the perturbation.
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

__all__ = ["robustness_plot", "evaluation_curve", "certified_curve", "transfer_heatmap", "audio_figure", "image_uri",
           "perturbation_uri", "magnitude_uri", "is_image", "PALETTE", "png_uri", "figure_uri", "bounds_range",
           "MAGNITUDE_STOPS", "signed_swatches", "audible_map", "history_curve"]

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
                ax.plot(eps, [100 * a for a in acc], "o", color=color, ms=5, label=_short(attack.upper()))
            else:
                ax.plot(eps, [100 * a for a in acc], "o-", color=color, lw=1.6, ms=5, label=_short(attack.upper()))
        ax.set_xlabel(f"ε ({NORM_LABEL.get(norm, norm)})")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.set_xlim(left=0)
        ax.grid(True, color="#e4e7ec", lw=0.8)
        ax.spines[["top", "right"]].set_visible(False)
        many = len(ax.get_legend_handles_labels()[1]) > 4
        ax.legend(frameon=False, fontsize=7 if many else 8, ncol=2 if many else 1)
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


#: the longest side of an example image on the page; larger inputs (224 x 224 ...) are shrunk to keep the page small
MAX_SIDE = 160


def _encode(arr: np.ndarray, smooth: bool = True) -> str:
    """A uint8 (H, W[, C]) array as a PNG URI, shrunk to :data:`MAX_SIDE` (box filter for pictures; nearest
    for the perturbation views, so that every colour on them keeps its meaning)."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    im = Image.fromarray(arr)
    if max(im.size) > MAX_SIDE:
        scale = MAX_SIDE / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.BOX if smooth else Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return png_uri(buf.getvalue())


def image_uri(sample: Tensor, low: float, high: float) -> str:
    """An input in [low, high] as a grayscale or RGB PNG."""
    a = (_hwc(sample) - low) / (high - low)
    return _encode((np.clip(a, 0, 1) * 255).round().astype(np.uint8))


def perturbation_uri(adv: Tensor, clean: Tensor) -> str:
    """adv - clean, signed, scaled so that its largest change (over all channels) fills the range.

    One channel: a diverging map (red = brighter, blue = darker, white = unchanged).
    RGB: each channel on its own, 0.5 + change / (2 max|change|): grey is unchanged, and a
    pixel tints towards red / green / blue where that channel rose and towards cyan /
    magenta / yellow where it fell (see :func:`signed_swatches`).
    """
    d = _hwc(adv) - _hwc(clean)
    m = float(np.abs(d).max())
    scaled = d / m if m > 0 else d
    if d.shape[2] == 1:
        rgba = colormaps["RdBu_r"](0.5 + 0.42 * scaled[:, :, 0])  # stop short of the near-black ends
        return _encode((rgba[:, :, :3] * 255).round().astype(np.uint8), smooth=False)
    return _encode((np.clip(0.5 + scaled / 2, 0, 1) * 255).round().astype(np.uint8), smooth=False)


def signed_swatches() -> list[tuple[str, str]]:
    """(CSS colour, meaning) of the RGB signed view at full change: what :func:`perturbation_uri` draws."""
    out = []
    for c, name in enumerate(("red", "green", "blue")):
        for sign, word in ((1, "up"), (-1, "down")):
            rgb = [0.5] * 3
            rgb[c] = 0.5 + sign / 2
            out.append(("#" + "".join(f"{round(255 * v):02x}" for v in rgb), f"{name} {word}"))
    return out


#: colour stops of the magnitude map (matplotlib's magma at 0, .2, ..., 1), for the page's legend
MAGNITUDE_STOPS = ["#" + "".join(f"{round(255 * v):02x}" for v in colormaps["magma"](i / 5)[:3]) for i in range(6)]


def magnitude_uri(adv: Tensor, clean: Tensor) -> str:
    """The size of the change per pixel, max over channels of |adv - clean| / max: black none, yellow the largest."""
    d = np.abs(_hwc(adv) - _hwc(clean)).max(axis=2)
    m = float(d.max())
    rgba = colormaps["magma"](d / m if m > 0 else d)
    return _encode((rgba[:, :, :3] * 255).round().astype(np.uint8), smooth=False)


def bounds_range(bounds: Any) -> tuple[float, float]:
    """Scalar display range from (low, high), each a number or per-channel list."""
    lo, hi = (torch.as_tensor(b, dtype=torch.float64) for b in bounds)
    return float(lo.min()), float(hi.max())


# ------------------------------------------------------------------ other page kinds
def _axes_style(ax) -> None:
    ax.grid(True, color="#e4e7ec", lw=0.8)
    ax.spines[["top", "right"]].set_visible(False)


def evaluation_curve(results: dict[str, Any]) -> str | None:
    """advx evaluate: worst-case robust accuracy (with its 95% interval) versus eps, one panel per norm."""
    rows = results.get("results") or []
    if not rows:
        return None
    norms = list(dict.fromkeys(r["norm"] for r in rows))
    clean, clean_ci = results["clean_accuracy"], results.get("clean_ci95") or [results["clean_accuracy"]] * 2
    fig, axes = plt.subplots(1, len(norms), figsize=(4.8 * len(norms), 3.3), squeeze=False, dpi=130)
    for ax, norm in zip(axes[0], norms):
        rs = [r for r in rows if r["norm"] == norm]
        eps = [0.0] + [r["eps"] for r in rs]
        acc = [clean] + [r["robust_accuracy"] for r in rs]
        lo = [clean_ci[0]] + [r["ci95"][0] for r in rs]
        hi = [clean_ci[1]] + [r["ci95"][1] for r in rs]
        ax.fill_between(eps, [100 * v for v in lo], [100 * v for v in hi], color=PALETTE[0], alpha=0.15, lw=0,
                        label="95% interval")
        ax.plot(eps, [100 * v for v in acc], "o-", color=PALETTE[0], lw=1.8, ms=5, label="worst case")
        ind = [clean] + [r["independent_robust_accuracy"] for r in rs]
        if ind != acc:
            ax.plot(eps, [100 * v for v in ind], "x--", color=PALETTE[1], lw=1, label="each ε alone")
        ax.set_xlabel(f"ε ({NORM_LABEL.get(norm, norm)})")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(-3, 103)
        _axes_style(ax)
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return figure_uri(fig, bbox_inches="tight")


def certified_curve(results: dict[str, Any]) -> str | None:
    """advx certify: certified accuracy versus L2 radius, the largest certifiable radius dashed."""
    curve = results.get("curve")
    if not curve:
        return None
    c = next((d for d in (results.get("settings"), results.get("config")) if isinstance(d, dict) and "sigma" in d), {})
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=120)
    ax.plot(curve["radii"], [100 * a for a in curve["certified_accuracy"]], color=PALETTE[0], lw=1.8)
    top = results.get("max_certifiable_radius")
    if top is not None:
        ax.axvline(top, color="#9ca3af", ls="--", lw=1)
        ax.annotate("largest certifiable radius", (top, 98), xytext=(4, 0), textcoords="offset points",
                    color="#6b7280", fontsize=8, rotation=90, va="top")
    ax.set_xlabel("L2 radius")
    ax.set_ylabel("certified accuracy (%)")
    ax.set_ylim(-3, 103)
    ax.set_xlim(left=0)
    if c:
        ax.set_title(f"σ = {c['sigma']:g}, n = {c['n']:,}, α = {c['alpha']:g}", fontsize=10, loc="left")
    _axes_style(ax)
    fig.tight_layout()
    return figure_uri(fig)


def transfer_heatmap(results: dict[str, Any]) -> str | None:
    """advx transfer: success rate of examples crafted on each source (rows) against each target (columns)."""
    rates = results["success"]
    s, t = len(results["sources"]), len(results["targets"])
    if not s or not t:
        return None
    fig, ax = plt.subplots(figsize=(min(11.0, 2.2 + 1.3 * t), min(8.0, 1.4 + 0.8 * s)), dpi=110)
    im = ax.imshow(rates, vmin=0, vmax=1, cmap="Reds")
    ax.set_xticks(range(t), [_short(n) for n in results["targets"]], rotation=30, ha="right")
    ax.set_yticks(range(s), [_short(n) for n in results["sources"]])
    ax.set_xlabel("target (evaluated on)")
    ax.set_ylabel("source (crafted on)")
    for i in range(s):
        for j in range(t):
            ax.text(j, i, _pct0(rates[i][j]), ha="center", va="center",
                    color="white" if rates[i][j] > 0.6 else "black", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="success rate")
    fig.tight_layout()
    return figure_uri(fig)


def _pct0(v: float) -> str:
    """A share in whole percent for a small cell: never '0%' for a share that is not 0, nor '100%' short of 1."""
    p = 100 * v
    return "<1%" if 0 < p < 0.5 else ">99%" if 99.5 <= p < 100 else f"{p:.0f}%"


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _spec_db(wave: Tensor) -> Tensor:
    n_fft, hop = 512, 128
    if len(wave) < n_fft:
        wave = torch.nn.functional.pad(wave, (0, n_fft - len(wave)))
    s = torch.stft(wave.double(), n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64),
                   return_complex=True).abs().pow(2)
    return 10 * torch.log10(s + 1e-12)


def audio_figure(clean: Tensor, adv: Tensor, sample_rate: int) -> str:
    """Waveforms (top) and spectrograms in dB (bottom) of the clean clip, the adversarial clip and the perturbation.

    The perturbation's waveform has its own y scale (it is small); all spectrograms share one dB scale, so the
    perturbation's is as loud as it really is next to the speech.
    """
    clean, adv = clean.detach().float().cpu().flatten(), adv.detach().float().cpu().flatten()
    delta = adv - clean
    waves = [("clean", clean), ("adversarial", adv), ("perturbation", delta)]
    specs = [_spec_db(w) for _, w in waves]
    vmax = max(float(s.max()) for s in specs[:2])
    bins = max(1, len(clean) // 600)  # a min/max envelope of <= 600 columns, not every sample
    cols = len(clean) // bins
    t = (torch.arange(cols) * bins / sample_rate).numpy()
    fig, axes = plt.subplots(2, 3, figsize=(10.5, 3.9), dpi=90)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.92, bottom=0.11, wspace=0.28, hspace=0.5)
    lim = float(max(clean.abs().max(), adv.abs().max(), 1e-6))
    for j, ((name, w), s) in enumerate(zip(waves, specs)):
        env = w[: cols * bins].reshape(cols, bins)
        axes[0, j].fill_between(t, env.amin(1).numpy(), env.amax(1).numpy(), lw=0,
                                color=PALETTE[0] if j < 2 else PALETTE[1])
        own = float(max(w.abs().max(), 1e-9)) * 1.05
        axes[0, j].set_ylim(*((-lim, lim) if j < 2 else (-own, own)))
        axes[0, j].set_title(name + (" (own y scale)" if j == 2 else ""), fontsize=9, loc="left")
        axes[0, j].set_xlabel("time (s)", fontsize=8)
        axes[1, j].imshow(s.numpy(), origin="lower", aspect="auto", vmin=vmax - 90, vmax=vmax, cmap="magma",
                          extent=(0, len(clean) / sample_rate, 0, sample_rate / 2000))
        axes[1, j].set_ylabel("kHz", fontsize=8)
        axes[1, j].set_xlabel("time (s)", fontsize=8)
        for ax in axes[:, j]:
            ax.tick_params(labelsize=7)
            ax.spines[["top", "right"]].set_visible(False)
    return figure_uri(fig)


def audible_map(audible: Tensor, sample_rate: int, hop: int = 256, limit: float = 40.0) -> str:
    """Perturbation power minus the clip's masking threshold (dB; frames x bins): red above (audible),
    blue below, white at the threshold; clipped to +-``limit`` dB."""
    a = audible.detach().float().cpu().numpy().T  # bins x frames
    frames = a.shape[1]
    fig, ax = plt.subplots(figsize=(10.5, 1.9), dpi=90)
    im = ax.imshow(a, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                   extent=(0, frames * hop / sample_rate, 0, sample_rate / 2000))
    ax.set_ylabel("kHz", fontsize=8)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.tick_params(labelsize=7)
    cb = fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    cb.set_label("dB over threshold", fontsize=7)
    cb.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return figure_uri(fig)


def history_curve(history: list[dict[str, Any]], key: str = "loss") -> str | None:
    """A learned perturbation's training curve: ``key`` per ``step`` (None with fewer than two points)."""
    pts = [(h["step"], h[key]) for h in history or [] if isinstance(h, dict) and "step" in h and key in h]
    if len(pts) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=110)
    ax.plot(*zip(*pts), "o-", color=PALETTE[0], lw=1.6, ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    _axes_style(ax)
    fig.tight_layout()
    return figure_uri(fig)
