"""The medium partials' data: what ``_image.html``, ``_text.html`` and ``_audio.html`` draw.

Each function reads results.json and the run's tensors (or nothing, for text)
and returns plain dicts of formatted text and ``data:`` URIs. Nothing here
imports ``advx.text`` or ``advx.audio``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from advx.report.format import fmt_count, fmt_db, fmt_eps, fmt_norm, fmt_num, fmt_pct

__all__ = ["image_examples", "evaluation_examples", "text_examples", "audio_examples", "MAX_TEXT_EXAMPLES"]

MAX_TEXT_EXAMPLES = 100


# -------------------------------------------------------------------------- image
def _legend(rgb: bool, gray: bool) -> dict[str, Any]:
    from advx.report.figures import MAGNITUDE_STOPS, signed_swatches  # noqa: PLC0415

    return {"rgb": rgb, "gray": gray, "swatches": signed_swatches() if rgb else [],
            "magnitude": "linear-gradient(90deg, " + ", ".join(MAGNITUDE_STOPS) + ")"}


def _pictures(clean: Tensor, adv: Tensor, lo: float, hi: float) -> dict[str, str]:
    from advx.report.figures import image_uri, magnitude_uri, perturbation_uri  # noqa: PLC0415

    out = {"adv": image_uri(adv, lo, hi), "delta": perturbation_uri(adv, clean), "mag": None}
    if clean.dim() == 3 and clean.shape[0] == 3:
        out["mag"] = magnitude_uri(adv, clean)
    return out


def image_examples(results: dict[str, Any], tensors: dict[str, Tensor], colors: dict[str, str]) -> dict[str, Any] | None:
    """Attack pages: one card per shown sample, the original and one panel per attack."""
    from advx.report.figures import bounds_range, image_uri, is_image  # noqa: PLC0415

    examples = results.get("examples") or []
    if not examples:
        return None
    x = tensors.get("x")
    lo, hi = bounds_range((results.get("data") or {}).get("bounds", (0.0, 1.0)))
    runs = {r["id"]: r for r in results.get("runs", [])}
    samples: dict[int, dict[str, Any]] = {}
    rgb = gray = False
    for ex in examples:
        i = ex["index"]
        run = runs.get(ex["run"], {"threat": {"norm": "?", "eps": ex.get("eps")}})
        s = samples.get(i)
        if s is None:
            lines = [("true", ex.get("label_name", ex.get("label")))]
            if ex.get("target") is not None:
                lines.append(("target", ex.get("target_name", ex["target"])))
            lines += [("model", ex.get("clean_pred_name", ex.get("clean_pred"))),
                      ("conf.", fmt_pct(ex.get("clean_confidence")))]
            s = samples[i] = {"index": i, "img": None, "lines": lines, "cells": []}
        targeted = ex.get("target") is not None
        c = {"title": f"{ex['attack'].upper()} · {fmt_norm(run['threat']['norm'])} ε = {fmt_eps(run['threat']['eps'])}",
             "run": ex["run"], "dot": colors.get(ex["attack"]), "ok": bool(ex.get("success")),
             "pill": ("reached" if targeted else "fooled") if ex.get("success") else ("missed" if targeted else "held"),
             "pred": ex.get("adv_pred_name", ex.get("adv_pred")), "changed": ex.get("adv_pred") != ex.get("label"),
             "conf": fmt_pct(ex.get("adv_confidence")), "dist": fmt_num(ex.get("distance")),
             "maxchange": fmt_num(ex.get("max_abs_change")), "adv": None, "delta": None, "mag": None}
        adv = tensors.get(f"{ex['run']}/x_adv")
        if x is not None and adv is not None and i < len(x) and is_image(x[i]):
            clean = x[i]
            if s["img"] is None:
                s["img"] = image_uri(clean, lo, hi)
            c.update(_pictures(clean, adv[i], lo, hi))
            rgb |= clean.dim() == 3 and clean.shape[0] == 3
            gray |= not (clean.dim() == 3 and clean.shape[0] == 3)
        s["cells"].append(c)
    return {"medium": "image", "layout": "rows", "title": None, "samples": list(samples.values()), "legend": _legend(rgb, gray),
            "note": "Correctly classified test inputs, one per class in turn, under each attack at the smallest ε "
                    "where it fooled at least half of the points (else its largest ε)."}


def evaluation_examples(results: dict[str, Any], tensors: dict[str, Tensor]) -> dict[str, Any] | None:
    """Evaluate pages: broken points at one threat, clean / adversarial / perturbation."""
    from advx.report.figures import image_uri, is_image  # noqa: PLC0415

    examples = results.get("examples") or []
    if not examples:
        return None
    samples, rgb, gray = [], False, False
    for j, e in enumerate(examples):
        clean = adv = None
        if "examples/x" in tensors and "examples/x_adv" in tensors and j < len(tensors["examples/x"]):
            clean, adv = tensors["examples/x"][j], tensors["examples/x_adv"][j]
        elif "x" in tensors and f"x_adv/{e['threat']}" in tensors:
            clean, adv = tensors["x"][e["index"]], tensors[f"x_adv/{e['threat']}"][e["index"]]
        s = {"index": e["index"], "img": None, "cells": [],
             "lines": [("true", e.get("label")), ("model", e.get("clean_pred")), ("conf.", fmt_pct(e.get("clean_conf")))]}
        c = {"title": f"broken by {e.get('attack')}", "run": e.get("threat"), "dot": None, "ok": True, "pill": "fooled",
             "pred": e.get("adv_pred"), "changed": e.get("adv_pred") != e.get("label"),
             "conf": fmt_pct(e.get("adv_conf")), "dist": None, "maxchange": None, "adv": None, "delta": None,
             "mag": None}
        if clean is not None and is_image(clean):
            lo, hi = min(0.0, float(clean.min()), float(adv.min())), max(1.0, float(clean.max()), float(adv.max()))
            s["img"] = image_uri(clean, lo, hi)
            c.update(_pictures(clean, adv, lo, hi))
            c["maxchange"] = fmt_num(float((adv - clean).abs().max()))
            is_rgb = clean.dim() == 3 and clean.shape[0] == 3
            rgb, gray = rgb or is_rgb, gray or not is_rgb
        s["cells"].append(c)
        samples.append(s)
    return {"medium": "image", "layout": "grid", "samples": samples, "legend": _legend(rgb, gray),
            "title": f"Adversarial examples at {_threat_words(results, examples[0]['threat'])}",
            "note": "Points the ensemble broke at the largest ε of the first threat, with the attack that broke them."}


def _threat_words(results: dict[str, Any], key: str) -> str:
    t = next((t for t in results.get("results") or [] if t.get("threat") == key), None)
    return f"{fmt_norm(t['norm'])} ε = {fmt_eps(t['eps'])}" if t and "norm" in t and "eps" in t else str(key)


# --------------------------------------------------------------------------- text
def text_examples(results: dict[str, Any]) -> dict[str, Any] | None:
    """Text attack pages: each example's edits inline (character diff inside each edited word)."""
    from advx.report.media import inline_diff  # noqa: PLC0415

    items = results.get("results") or results.get("examples") or []
    if not items:
        return None
    names = results.get("label_names") or []
    for key in ("settings", "config", "data"):
        d = results.get(key)
        if not names and isinstance(d, dict):
            names = d.get("label_names") or d.get("classes") or []

    def name(c: Any) -> str:
        return str(names[c]) if isinstance(c, int) and 0 <= c < len(names) else str(c)

    shown = []
    for k, r in enumerate(items[:MAX_TEXT_EXAMPLES]):
        before, after = r.get("original_probs") or [], r.get("perturbed_probs") or []
        edits = r.get("edits")
        shown.append({
            "k": k, "status": r.get("status", ""), "label": name(r.get("label")),
            "target": name(r["target"]) if r.get("target") is not None else None,
            "before": name(r.get("original_pred")), "p_before": fmt_pct(max(before)) if before else "—",
            "after": name(r.get("perturbed_pred")), "p_after": fmt_pct(max(after)) if after else "—",
            "words": fmt_count(r.get("words_changed")), "chars": fmt_count(r.get("chars_changed")),
            "queries": fmt_count(r.get("queries")),
            "pieces": inline_diff(r.get("original", ""), r.get("perturbed", ""), edits),
            "original": r.get("original", ""), "perturbed": r.get("perturbed", ""),
            "changed": r.get("original", "") != r.get("perturbed", ""),
        })
    return {"medium": "text", "rows": shown, "total": len(items), "omitted": max(0, len(items) - len(shown))}


# -------------------------------------------------------------------------- audio
def audio_examples(results: dict[str, Any], tensors: dict[str, Tensor]) -> dict[str, Any] | None:
    """Audio pages: per shown clip and mode, players for the clean clip, the adversarial clip and the
    perturbation (normalised to half scale), and the waveforms and spectrograms of the three."""
    from advx.report.figures import audible_map, audio_figure  # noqa: PLC0415
    from advx.report.media import wav_uri  # noqa: PLC0415

    examples = results.get("examples") or []
    if not examples:
        return None
    data = results.get("data")
    sr = int(results.get("sample_rate") or (data.get("sample_rate") if isinstance(data, dict) else None) or 16000)
    x = tensors.get("x")
    shown = []
    for e in examples:
        i, mode = e["index"], e.get("mode", "adversarial")
        adv = tensors.get(f"x_adv/{mode}")
        item = {"index": i, "mode": mode, "label": e.get("label_name", e.get("label")),
                "pred": e.get("pred_name", e.get("pred")), "target": e.get("target_name"),
                "ok": bool(e.get("success")), "db": fmt_db(e.get("db_x")), "speaker": e.get("speaker"),
                "players": [], "figure": None, "audible": None,
                "above": fmt_pct(e["above_threshold"]) if e.get("above_threshold") is not None else None}
        item["pill"] = (("reached" if item["target"] is not None else "fooled") if item["ok"]
                        else ("missed" if item["target"] is not None else "held"))
        files = e.get("wav") or {}
        if x is not None and adv is not None and i < len(x):
            clean, a = x[i], adv[i]
            delta = a - clean
            loud = delta / delta.abs().max().clamp_min(1e-9) * 0.5
            item["players"] = [("clean", wav_uri(clean, sr)), ("adversarial", wav_uri(a, sr)),
                               ("perturbation (normalised to half scale)", wav_uri(loud, sr))]
            item["figure"] = audio_figure(clean, a, sr)
            aud = tensors.get(f"audible/{mode}")
            if aud is not None and i < len(aud) and aud[i].dim() == 2:
                item["audible"] = audible_map(aud[i], sr)
        else:
            item["players"] = [(k, v) for k, v in files.items()]
        shown.append(item)
    return {"medium": "audio", "rows": shown, "sample_rate": sr}
