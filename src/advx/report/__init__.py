"""advx's one report renderer: every command's ``report.html``.

:func:`render_report` turns a results document (every number) and the run's
tensors (only to draw examples) into one self-contained, escaped HTML page: one
base template and one stylesheet (``templates/base.html``, ``style.css``), a
body per command kind built from the same blocks (summary table, curve,
per-attack breakdown, checks, cost, examples, the command and versions to
reproduce) and a partial per medium for the examples (``_image.html``,
``_text.html``, ``_audio.html``). The page kind comes from
``results["command"]``, the medium from ``results["medium"]``. Plots and
example images come from :mod:`advx.report.figures` (matplotlib, Pillow) as
inline PNGs, sounds are inline WAVs, so the page needs no network and no other
file. :func:`rebuild_report` redraws a page from its run folder.

This package sits with the job pipeline, above evaluation, defenses, attacks,
text and audio; it never imports ``advx.text`` or ``advx.audio``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from torch import Tensor

from advx.report.format import FORMATTERS, fmt_count, fmt_num, fmt_pct, fmt_rate, fmt_time
from advx.report.kinds import KINDS, build_page, page_kind

__all__ = ["render_report", "write_report", "write_page", "rebuild_report", "page_kind", "KINDS", "fmt_pct",
           "fmt_num", "fmt_rate", "fmt_time", "fmt_count", "table_rows"]

_TEMPLATES = {"attack": "attack.html", "evaluate": "evaluate.html", "certify": "matrix.html",
              "transfer": "matrix.html", "text attack": "examples.html", "audio attack": "examples.html",
              "audio universal": "examples.html"}


@lru_cache(maxsize=1)
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


@lru_cache(maxsize=1)
def _css() -> str:
    from importlib.resources import files  # noqa: PLC0415

    return files("advx.report").joinpath("templates", "style.css").read_text(encoding="utf-8")


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """An attack run's summary rows: per run, the formatted text of each cell and its raw value."""
    from advx.report.kinds import attack_table_rows  # noqa: PLC0415

    return attack_table_rows(results)


def render_report(results: dict[str, Any], tensors: dict[str, Tensor] | None = None) -> str:
    """The report page (HTML text) of a results document and the run's tensors (None: no example images)."""
    ctx = build_page(results, tensors)
    ctx["self_ctx"] = ctx
    ctx["css"] = _css()
    return _env().get_template(_TEMPLATES[ctx["kind"]]).render(**ctx)


def write_report(results: dict[str, Any], tensors: dict[str, Tensor] | None, path: str | Path) -> Path:
    """Render the report and write it to ``path`` (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(results, tensors), encoding="utf-8")
    tmp.replace(path)
    return path


def write_page(out: str | Path, results: dict[str, Any], template: str | None = None, page: str = "report.html",
               **_unused: Any) -> Path:
    """Write ``results.json`` and the report page ``page`` into the folder ``out``; return the page's path.

    (The older signature: ``template`` and extra context are no longer used; the page kind comes from
    ``results``.)
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2), encoding="utf-8")
    tmp.replace(out / "results.json")
    return write_report(results, None, out / page)


def _results_file(run_dir: Path) -> Path:
    for name in ("results.json", "report.json", "summary.json"):
        if (run_dir / name).is_file():
            return run_dir / name
    raise FileNotFoundError(f"{run_dir}: no results.json (nor report.json / summary.json) to draw a report from")


def rebuild_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Redraw report.html from a run folder's results.json and adversarial.safetensors (if any)."""
    from safetensors.torch import load_file  # noqa: PLC0415

    run_dir = Path(run_dir)
    results = json.loads(_results_file(run_dir).read_text(encoding="utf-8"))
    tensors: dict[str, Tensor] = {}
    for name in ("adversarial.safetensors", "adversarials.safetensors"):
        if (run_dir / name).is_file():
            tensors = load_file(str(run_dir / name))
            break
    return write_report(results, tensors, out or run_dir / "report.html")
