"""The transfer matrix as results.json and a self-contained HTML heat map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advx.report import write_page
from advx.report.figures import figure_uri

__all__ = ["transfer_results", "heatmap_uri", "write_transfer_report"]


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


def heatmap_uri(results: dict[str, Any]) -> str:
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
    return figure_uri(fig)


def write_transfer_report(results: dict[str, Any], out: str | Path) -> Path:
    """Write results.json and transfer.html into ``out``; return the page's path."""
    return write_page(out, results, "transfer.html", "transfer.html", heatmap=heatmap_uri(results))
