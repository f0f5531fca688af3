"""``advx transfer``'s results document and its page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["transfer_results", "write_transfer_report"]


def transfer_results(matrix: dict, attack: str, data: str, command: str | None = None,
                     environment: dict | None = None) -> dict[str, Any]:
    """Plain-JSON form of :func:`advx.attacks.transfer_matrix`'s output (``command``: the command line)."""
    out: dict[str, Any] = {
        "schema_version": 1,
        "kind": "transfer",
        "command": "transfer",
        "medium": "image",
        "command_line": command,
        "attack": attack,
        "data": data,
        "sources": list(matrix["sources"]),
        "targets": list(matrix["targets"]),
        "success": [[round(float(v), 6) for v in row] for row in matrix["success"]],
        "clean_accuracy": [round(float(v), 6) for v in matrix["clean_accuracy"]],
        "n": [int(v) for v in matrix["n"]],
    }
    if environment is not None:
        out["environment"] = environment
    return out


def write_transfer_report(results: dict[str, Any], out: str | Path) -> Path:
    """Write results.json and report.html into the folder ``out``; return the page's path."""
    from advx.report import write_page  # noqa: PLC0415

    return write_page(out, results)
