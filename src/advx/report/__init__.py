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

__all__ = ["render_report", "write_report", "write_page", "rebuild_report", "fmt_pct", "fmt_num", "fmt_rate", "fmt_time",
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


def write_page(out: str | Path, results: dict[str, Any], template: str, page: str = "report.html",
               **context: Any) -> Path:
    """Write ``results.json`` and ``page``, rendered from ``templates/<template>`` with ``r=results`` and
    ``context``, into the folder ``out`` (both atomically); return the page's path."""
    from advx.evaluation.checkpoint import atomic_write_text  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    path = out / page
    atomic_write_text(path, _env().get_template(template).render(r=results, **context))
    return path


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


def _example_rows(results: dict[str, Any], tensors: dict[str, Tensor]) -> tuple[list[dict], list[dict]]:
    """The example grid: columns (one per attack: its run) and rows (one per sample, a cell per column)."""
    from advx.report.figures import bounds_range, image_uri, is_image, perturbation_uri  # noqa: PLC0415

    x = tensors.get("x")
    lo, hi = bounds_range(results["data"].get("bounds", (0.0, 1.0)))
    runs = {r["id"]: r for r in results["runs"]}
    columns: dict[str, dict[str, Any]] = {}
    rows: dict[int, dict[str, Any]] = {}
    for ex in results["examples"]:
        run = runs.get(ex["run"], {"threat": {"norm": "?", "eps": ex["eps"]}})
        columns.setdefault(ex["run"], {"run": ex["run"], "attack": ex["attack"], "threat": run["threat"]})
        row = rows.setdefault(ex["index"], {"index": ex["index"], "first": ex, "cells": {}})
        cell = dict(ex)
        adv = tensors.get(f"{ex['run']}/x_adv")
        if x is not None and adv is not None and is_image(x[ex["index"]]):
            clean = x[ex["index"]]
            row.setdefault("img_clean", image_uri(clean, lo, hi))
            cell["img_adv"] = image_uri(adv[ex["index"]], lo, hi)
            cell["img_delta"] = perturbation_uri(adv[ex["index"]], clean)
        row["cells"][ex["run"]] = cell
    return list(columns.values()), list(rows.values())


def _headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Cards: for each norm, the lowest robust accuracy at its largest radius (all attacks together if possible)."""
    cards = []
    for norm in dict.fromkeys(r["threat"]["norm"] for r in results["runs"]):
        eps = max(r["threat"]["eps"] for r in results["runs"] if r["threat"]["norm"] == norm)
        at = [r for r in results["runs"] if r["threat"]["norm"] == norm and r["threat"]["eps"] == eps
              and r["metrics"]["robust_accuracy"] is not None]
        worst = next((w for w in results.get("worst_case", []) if w["norm"] == norm and w["eps"] == eps), None)
        if worst is not None:
            cards.append({"norm": norm, "eps": eps, "value": worst["robust_accuracy"],
                          "by": "worst case of " + ", ".join(sorted({r["attack"].upper() for r in at}))})
        elif at:
            best = min(at, key=lambda r: r["metrics"]["robust_accuracy"])
            cards.append({"norm": norm, "eps": eps, "value": best["metrics"]["robust_accuracy"],
                          "by": "by " + best["attack"].upper()})
    return cards[:2]


#: model metadata shown in the report (all of it is in results.json), in this order
_MODEL_KEYS = (("description", "description"), ("arch", "architecture"), ("params", "parameters"),
               ("data", "trained on"), ("epochs", "epochs"), ("clean_accuracy", "recorded clean accuracy"),
               ("test_samples", "… on test samples"), ("git_rev", "trained at revision"),
               ("command", "trained by"), ("path", "weights"))


def _model_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    model = results.get("model") or {}
    info = model.get("info") or {}
    rows = [("spec", str(model.get("spec", "—")))]
    for key, label in _MODEL_KEYS:
        v = info.get(key)
        if v is None or isinstance(v, (dict, list)):
            continue
        rows.append((label, fmt_pct(v) if key == "clean_accuracy" and isinstance(v, float) else
                     fmt_count(v) if isinstance(v, int) and not isinstance(v, bool) else str(v)))
    return rows


def render_report(results: dict[str, Any], tensors: dict[str, Tensor] | None = None) -> str:
    """The report page (HTML text) for a results.json document and the run's tensors."""
    from advx.report.figures import attack_colors, robustness_plot  # noqa: PLC0415

    tensors = tensors or {}
    columns, examples = _example_rows(results, tensors)
    return _env().get_template("report.html").render(
        r=results,
        rows=table_rows(results),
        cards=_headline(results),
        model_rows=_model_rows(results),
        colors=attack_colors(results),
        plot=robustness_plot(results),
        columns=columns,
        examples=examples,
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
