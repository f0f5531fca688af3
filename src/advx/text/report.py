"""results.json and a self-contained HTML report of a text attack run.

The report shows, per example, the original text with deleted and replaced
characters marked, the adversarial text with inserted and replaced characters
marked, and the prediction (with probability) before and after. All text goes
through Jinja2's autoescaping: a tweet containing ``<script>`` is shown, not run.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path

import jinja2

from advx.text.attacks.base import TextAttackResult

__all__ = ["diff_segments", "write_results", "write_html"]

TEMPLATE = Path(__file__).resolve().parent / "templates" / "text_report.html"


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


def write_results(path: str | Path, results: Sequence[TextAttackResult], summary: dict, config: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": config, "summary": summary, "results": [r.to_dict() for r in results]},
                               indent=1, ensure_ascii=False))
    return path


def write_html(path: str | Path, results: Sequence[TextAttackResult], summary: dict, config: dict,
               label_names: Sequence[str] | None = None, context: int | None = 300) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    name = (lambda c: label_names[c] if label_names and c < len(label_names) else str(c))  # noqa: E731
    rows = []
    for k, r in enumerate(results):
        orig, pert = diff_segments(r, context)
        rows.append({"k": k, "status": r.status, "orig": orig, "pert": pert, "queries": r.queries,
                     "words": r.words_changed, "chars": r.chars_changed, "label": name(r.label),
                     "before": name(r.original_pred), "p_before": max(r.original_probs),
                     "after": name(r.perturbed_pred), "p_after": max(r.perturbed_probs)})
    path.write_text(template.render(summary=summary, config=config, rows=rows), encoding="utf-8")
    return path
