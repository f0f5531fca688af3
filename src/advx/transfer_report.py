"""The transfer matrix as results.json and a self-contained HTML heat map."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

__all__ = ["transfer_results", "heatmap_png", "write_transfer_report"]


def transfer_results(matrix: dict, attack: str, data: str, command: str) -> dict[str, Any]:
    """Plain-JSON form of :func:`advx.attacks.transfer_matrix`'s output."""
    return {
        "schema_version": 1,
        "kind": "transfer",
        "command": command,
        "attack": attack,
        "data": data,
        "sources": matrix["sources"],
        "targets": matrix["targets"],
        "success": [[round(float(v), 6) for v in row] for row in matrix["success"]],
        "clean_accuracy": [round(float(v), 6) for v in matrix["clean_accuracy"]],
        "n": [int(v) for v in matrix["n"]],
    }


def heatmap_png(results: dict[str, Any]) -> bytes:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rates = results["success"]
    s, t = len(results["sources"]), len(results["targets"])
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * t, 1.2 + 0.9 * s), dpi=110)
    im = ax.imshow(rates, vmin=0, vmax=1, cmap="Reds")
    ax.set_xticks(range(t), results["targets"], rotation=30, ha="right")
    ax.set_yticks(range(s), results["sources"])
    ax.set_xlabel("target (evaluated on)")
    ax.set_ylabel("source (crafted on)")
    for i in range(s):
        for j in range(t):
            ax.text(j, i, f"{100 * rates[i][j]:.0f}%", ha="center", va="center",
                    color="white" if rates[i][j] > 0.6 else "black", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="success rate")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_transfer_report(results: dict[str, Any], out: str | Path) -> Path:
    """Write results.json and transfer.html into ``out``; return the page's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    env = Environment(loader=PackageLoader("advx", "report/templates"), autoescape=select_autoescape())
    png = base64.b64encode(heatmap_png(results)).decode()
    page = env.get_template("transfer.html").render(r=results, heatmap=f"data:image/png;base64,{png}")
    path = out / "transfer.html"
    path.write_text(page, encoding="utf-8")
    return path
