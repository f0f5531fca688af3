"""The HTML report of an ``advx attack`` run: one self-contained, escaped page.

:func:`render_report` turns the results.json document (every number) and the
saved tensors (only to draw the example images) into HTML from the Jinja2
template ``templates/report.html`` with autoescaping on. Plots come from
matplotlib (Agg) and every image is an inline base64 PNG, so the page needs no
network and no other file. :func:`rebuild_report` redraws it from a run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from advx.report.format import FORMATTERS, fmt_count, fmt_num, fmt_pct, fmt_rate, fmt_time

__all__ = ["render_report", "write_report", "rebuild_report", "fmt_pct", "fmt_num", "fmt_rate", "fmt_time",
           "fmt_count", "table_rows"]


def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape  # noqa: PLC0415

    env = Environment(
        loader=PackageLoader("advx.report", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FORMATTERS)
    return env


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary table, one dict per run: the formatted text of each cell and its raw value."""
    rows = []
    for r in results["runs"]:
        m = r["metrics"]
        rows.append({
            "id": r["id"],
            "attack": r["attack"],
            "norm": r["threat"]["norm"],
            "eps": r["threat"]["eps"],
            "shared_with": r["shared_with"],
            "cells": {
                "clean_accuracy": (m["clean_accuracy"], fmt_pct(m["clean_accuracy"])),
                "robust_accuracy": (m["robust_accuracy"], fmt_pct(m["robust_accuracy"])),
                "attack_success_rate": (m["attack_success_rate"], fmt_pct(m["attack_success_rate"])),
                "median_distance": (m["median_distance"], fmt_num(m["median_distance"])),
                "gradient_evaluations_per_sample": (m["gradient_evaluations_per_sample"],
                                                    fmt_rate(m["gradient_evaluations_per_sample"])),
                "time_s": (m["time_s"], fmt_time(m["time_s"])),
            },
        })
    return rows


def _example_groups(results: dict[str, Any], tensors: dict[str, Tensor]) -> list[dict[str, Any]]:
    from advx.report.figures import bounds_range, image_uri, is_image, perturbation_uri  # noqa: PLC0415

    x = tensors.get("x")
    lo, hi = bounds_range(results["data"].get("bounds", (0.0, 1.0)))
    groups: dict[str, dict[str, Any]] = {}
    for ex in results["examples"]:
        g = groups.setdefault(ex["run"], {"run": ex["run"], "attack": ex["attack"], "eps": ex["eps"], "items": []})
        item = dict(ex)
        adv = tensors.get(f"{ex['run']}/x_adv")
        if x is not None and adv is not None and is_image(x[ex["index"]]):
            clean, a = x[ex["index"]], adv[ex["index"]]
            item["img_clean"] = image_uri(clean, lo, hi)
            item["img_adv"] = image_uri(a, lo, hi)
            item["img_delta"] = perturbation_uri(a, clean)
        g["items"].append(item)
    runs = {r["id"]: r for r in results["runs"]}
    for g in groups.values():
        g["threat"] = runs[g["run"]]["threat"] if g["run"] in runs else {"norm": "?", "eps": g["eps"]}
    return list(groups.values())


def render_report(results: dict[str, Any], tensors: dict[str, Tensor] | None = None) -> str:
    """The report page (HTML text) for a results.json document and the run's tensors."""
    from advx.report.figures import attack_colors, robustness_plot  # noqa: PLC0415

    tensors = tensors or {}
    rows = table_rows(results)
    lowest = min((r for r in results["runs"] if r["metrics"]["robust_accuracy"] is not None),
                 key=lambda r: r["metrics"]["robust_accuracy"], default=None)
    return _env().get_template("report.html").render(
        r=results,
        rows=rows,
        lowest=lowest,
        colors=attack_colors(results),
        plot=robustness_plot(results),
        groups=_example_groups(results, tensors),
    )


def write_report(results: dict[str, Any], tensors: dict[str, Tensor] | None, path: str | Path) -> Path:
    """Render and write the report; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(results, tensors), encoding="utf-8")
    return path


def rebuild_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Redraw report.html from a run folder's results.json and adversarial.safetensors."""
    from safetensors.torch import load_file  # noqa: PLC0415

    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    adv = run_dir / "adversarial.safetensors"
    tensors = load_file(str(adv)) if adv.is_file() else {}
    return write_report(results, tensors, out or run_dir / "report.html")
