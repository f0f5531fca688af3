"""results.json of a text attack run, and the per-example diff of its edits.

The page (``report.html``) is drawn by advx's one renderer, ``advx.report``, from
the document :func:`results_document` builds: ``command`` "text attack",
``medium`` "text", the configuration, the summary and every example (original
and adversarial text, the edits, predictions, queries). This module does not
render HTML.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advx.text.attacks.base import TextAttackResult

__all__ = ["diff_segments", "results_document", "write_results"]


def diff_segments(result: TextAttackResult, context: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(original, perturbed) as lists of (kind, text), kind in {"same", "del", "ins", "sub"}.

    Word by word along the edits; inside an edited word, a character diff.
    ``context`` shortens unchanged stretches longer than that to "...".
    """
    orig, pert = [], []
    o_pos = p_pos = 0
    text_o, text_p = result.original, result.perturbed
    for e in sorted(result.edits, key=lambda e: e.start):
        gap = e.start - o_pos
        orig.append(("same", text_o[o_pos : e.start]))
        pert.append(("same", text_p[p_pos : p_pos + gap]))
        p_pos += gap
        sm = difflib.SequenceMatcher(a=e.before, b=e.after, autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                orig.append(("same", e.before[i1:i2]))
                pert.append(("same", e.after[j1:j2]))
            elif tag == "replace":
                orig.append(("sub", e.before[i1:i2]))
                pert.append(("sub", e.after[j1:j2]))
            elif tag == "delete":
                orig.append(("del", e.before[i1:i2]))
            else:
                pert.append(("ins", e.after[j1:j2]))
        o_pos, p_pos = e.start + len(e.before), p_pos + len(e.after)
    orig.append(("same", text_o[o_pos:]))
    pert.append(("same", text_p[p_pos:]))
    if context is not None:
        orig, pert = _shorten(orig, context), _shorten(pert, context)
    return [s for s in orig if s[1]], [s for s in pert if s[1]]


def _shorten(segments: list[tuple[str, str]], context: int) -> list[tuple[str, str]]:
    out = []
    for k, (kind, text) in enumerate(segments):
        if kind == "same" and len(text) > 2 * context + 5:
            head = text[:context] if k > 0 else ""
            tail = text[-context:] if k < len(segments) - 1 else ""
            text = f"{head} … {tail}"
        out.append((kind, text))
    return out


def results_document(results: Sequence[TextAttackResult], summary: dict, config: dict,
                     label_names: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """The results.json body of a text attack: what the report draws (``extra``: e.g. argv, environment)."""
    cfg = dict(config)
    if label_names is not None:
        cfg["label_names"] = [str(n) for n in label_names]
    return {"command": "text attack", "medium": "text", **extra, "config": cfg, "summary": summary,
            "results": [r.to_dict() for r in results]}


def write_results(path: str | Path, results: Sequence[TextAttackResult], summary: dict, config: dict,
                  label_names: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Write results.json; returns the document (hand it to ``advx.report.write_report`` for the page)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = results_document(results, summary, config, label_names, **extra)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    return doc
