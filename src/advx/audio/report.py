"""A self-contained HTML report of an audio attack: audio players (inline base64
WAV), waveforms and spectrograms of the clean clip, the adversarial clip and
the perturbation."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import torch
from torch import Tensor

from advx.audio.wav import wav_bytes

__all__ = ["example_figure", "write_report", "audio_tag"]


def audio_tag(wave: Tensor, sample_rate: int) -> str:
    data = base64.b64encode(wav_bytes(wave.clamp(-1, 1), sample_rate)).decode()
    return f'<audio controls preload="none" src="data:audio/wav;base64,{data}"></audio>'


def _spec_db(wave: Tensor, sample_rate: int) -> Tensor:
    n_fft, hop = 512, 128
    s = torch.stft(wave.double(), n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64),
                   return_complex=True).abs().pow(2)
    return 10 * torch.log10(s + 1e-12)


def example_figure(clean: Tensor, adv: Tensor, sample_rate: int, title: str = "") -> bytes:
    """PNG: waveforms (top) and spectrograms in dB (bottom) of clean, adversarial, perturbation."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    delta = adv - clean
    waves = [("clean", clean), ("adversarial", adv), ("perturbation", delta)]
    specs = [_spec_db(w, sample_rate) for _, w in waves]
    vmax = max(float(s.max()) for s in specs[:2])
    bins = max(1, len(clean) // 800)  # draw a min/max envelope of <= 800 columns, not every sample
    cols = len(clean) // bins
    t = (torch.arange(cols) * bins / sample_rate).numpy()
    fig, axes = plt.subplots(2, 3, figsize=(13, 4.6))
    fig.subplots_adjust(left=0.05, right=0.99, top=0.88, bottom=0.1, wspace=0.25, hspace=0.45)
    lim = float(max(clean.abs().max(), adv.abs().max(), 1e-6))
    for j, ((name, w), s) in enumerate(zip(waves, specs)):
        env = w[: cols * bins].reshape(cols, bins)
        axes[0, j].fill_between(t, env.amin(1).numpy(), env.amax(1).numpy(), lw=0, color="C0" if j < 2 else "C3")
        own = float(max(w.abs().max(), 1e-9)) * 1.05
        axes[0, j].set_ylim(*((-lim, lim) if j < 2 else (-own, own)))  # the perturbation on its own scale
        axes[0, j].set_title(name + (" (own y scale)" if j == 2 else ""), fontsize=9)
        axes[0, j].set_xlabel("s", fontsize=8)
        axes[1, j].imshow(s.numpy(), origin="lower", aspect="auto", vmin=vmax - 90, vmax=vmax, cmap="magma",
                          extent=(0, len(clean) / sample_rate, 0, sample_rate / 2000))
        axes[1, j].set_ylabel("kHz", fontsize=8)
        for ax in axes[:, j]:
            ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    return buf.getvalue()


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1150px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3}.note{background:#fff6d5;border:1px solid #e8d48a;padding:.6em 1em}
.ex{border-top:1px solid #ddd;margin-top:1.5em;padding-top:.5em}.players td{text-align:left;border:none}
img{max-width:100%}"""


def write_report(path: str | Path, title: str, notes: list[str], summary: list[dict], examples: list[dict]) -> Path:
    """Write the report. ``summary``: rows of metrics (dicts, same keys). ``examples``: dicts with
    ``caption``, ``png`` (bytes) and ``players`` (list of (label, html audio tag))."""
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]
    parts += [f"<p class='note'>{esc(n)}</p>" for n in notes]
    if summary:
        keys = list(summary[0])
        parts.append("<table><tr>" + "".join(f"<th>{esc(k)}</th>" for k in keys) + "</tr>")
        for row in summary:
            cells = "".join(f"<td>{esc(f'{v:.4g}' if isinstance(v, float) else str(v))}</td>" for v in row.values())
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    for ex in examples:
        players = "".join(f"<tr><td>{esc(label)}</td><td>{tag}</td></tr>" for label, tag in ex["players"])
        png = base64.b64encode(ex["png"]).decode()
        parts.append(f"<div class='ex'><h3>{esc(ex['caption'])}</h3><table class='players'>{players}</table>"
                     f"<img alt='waveforms and spectrograms' src='data:image/png;base64,{png}'></div>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
