"""One builder per page kind: results.json (+ tensors) -> the blocks the templates draw.

Each builder returns the template of its body and a context made of the same
blocks: ``cards`` (headline numbers), ``tables`` (summary, per-attack breakdown,
cost), ``plot``, ``checks``, ``examples`` (the medium partial's data) and
``reproduce`` (the exact command and the versions). Every number of a table or a
card is a :func:`cell`: its text is ``FORMATTERS[fmt](value)`` and it carries the
JSON pointer of its value in results.json, so a test can check the page against
the file, cell by cell.

The page kind comes from ``results["command"]`` ("attack", "demo", "evaluate",
"certify", "transfer", "text attack", "audio attack"); documents written before
the one schema are recognised by their shape (:func:`page_kind`).
"""

from __future__ import annotations

import shlex
from typing import Any

from torch import Tensor

from advx.report.format import FORMATTERS, MISSING, fmt_count, fmt_eps, fmt_norm, fmt_pct, fmt_value

__all__ = ["page_kind", "medium_of", "build_page", "KINDS", "cell", "pointer", "resolve"]

KINDS = ("attack", "evaluate", "certify", "transfer", "text attack", "audio attack", "audio universal")
_ALIASES = {"demo": "attack", "advx attack": "attack", "advx demo": "attack", "advx evaluate": "evaluate",
            "advx certify": "certify", "advx transfer": "transfer", "advx text attack": "text attack",
            "text": "text attack", "advx audio attack": "audio attack", "audio": "audio attack"}


# --------------------------------------------------------------------------- kind
def page_kind(results: dict[str, Any]) -> str:
    """Which page results.json gets: its ``command`` kind, else the shape of an older document."""
    cmd = results.get("command")
    if isinstance(cmd, str):
        c = cmd.strip()
        if c in KINDS:
            return c
        if c in _ALIASES:
            return _ALIASES[c]
    kind = results.get("kind")
    if isinstance(kind, str) and (kind in KINDS or kind in _ALIASES):
        return _ALIASES.get(kind, kind)
    if str(results.get("schema", "")).startswith("advx.evaluation"):
        return "evaluate"
    if "runs" in results and "clean" in results:
        return "attack"
    if "sources" in results and "success" in results:
        return "transfer"
    if "base_accuracy" in results and "table" in results:
        return "certify"
    if "summary" in results and isinstance(results.get("results"), list):
        return "text attack"
    if results.get("medium") == "audio" or "threat_db" in results:
        return "audio attack"
    raise ValueError("results: cannot tell which command wrote this document; set results['command'] to one of "
                     + ", ".join(KINDS))


def medium_of(results: dict[str, Any], kind: str) -> str:
    m = results.get("medium")
    if m in ("image", "text", "audio"):
        return m
    return {"text attack": "text", "audio attack": "audio", "audio universal": "audio"}.get(kind, "image")


# -------------------------------------------------------------------------- cells
def pointer(*keys: Any) -> str:
    """A JSON pointer (RFC 6901) to results[keys[0]][keys[1]]...."""
    return "".join("/" + str(k).replace("~", "~0").replace("/", "~1") for k in keys)


def resolve(doc: Any, ptr: str) -> Any:
    """The value a JSON pointer names in ``doc``."""
    if not ptr:
        return doc
    for raw in ptr[1:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


def cell(results: dict[str, Any], keys: tuple | list, fmt: str = "value", **extra: Any) -> dict[str, Any]:
    """A table cell showing results[keys...] with formatter ``fmt``."""
    ptr = pointer(*keys)
    try:
        value = resolve(results, ptr)
    except (KeyError, IndexError, TypeError, ValueError):  # a field this run did not record: a dash, no pointer
        return {"text": MISSING, "src": None, "num": True, **extra}
    return {"text": FORMATTERS[fmt](value), "src": ptr, "fmt": fmt, "value": value, "num": True, **extra}


def sum_cell(results: dict[str, Any], keys: list[tuple], fmt: str = "count") -> dict[str, Any]:
    """A cell showing the sum of several results.json values (each pointer is on the page)."""
    if not keys:
        return txt(MISSING, num=True)
    ptrs = [pointer(*k) for k in keys]
    value = sum(resolve(results, p) for p in ptrs)
    return {"text": FORMATTERS[fmt](value), "src": " ".join(ptrs), "agg": "sum", "fmt": fmt, "value": value,
            "num": True}


def lbl(text: Any, **extra: Any) -> dict[str, Any]:
    """A label cell (row header): words, not a number from results.json (long ones may wrap)."""
    text = str(text)
    if len(text) > 24:
        extra["cls"] = (extra.get("cls", "") + " long").strip()
    return {"text": text, "src": None, "num": False, "label": True, **extra}


def txt(text: Any, **extra: Any) -> dict[str, Any]:
    return {"text": MISSING if text is None else str(text), "src": None, "num": False, **extra}


def col(label: str, num: bool = True, title: str | None = None, name: bool = False) -> dict[str, Any]:
    """A column; ``name``: its header is a name (a model, a threat) that may break anywhere to fit."""
    return {"label": label, "num": num, "title": title, "name": name}


def table(tid: str, cols: list[dict], rows: list[dict], title: str | None = None, note: str | None = None,
          cls: str = "") -> dict[str, Any]:
    return {"id": tid, "cols": cols, "rows": rows, "title": title, "note": note, "cls": cls}


def row(cells: list[dict], **attrs: Any) -> dict[str, Any]:
    return {"cells": cells, "attrs": {k.replace("_", "-"): v for k, v in attrs.items()}}


def card(label: str, value: dict[str, Any], sub: str = "", tone: str = "") -> dict[str, Any]:
    return {"k": label, "v": value, "s": sub, "tone": tone}


def _threat_label(norm: str, eps: float) -> str:
    return f"{fmt_norm(norm)} ε = {fmt_eps(eps)}"


def _eval_threat(t: dict[str, Any]) -> str:
    """An evaluated threat in words ('L∞ ε = 8/255'); its key ('linf:0.0313725') when norm or eps is missing."""
    return _threat_label(t["norm"], t["eps"]) if "norm" in t and "eps" in t else str(t.get("threat"))


# ---------------------------------------------------------------- shared blocks
def kv_rows(obj: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Nested evidence as (key, formatted value) rows, never as JSON."""
    rows: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = f"{prefix} · {k}" if prefix else str(k)
            if isinstance(v, (dict, list)) and v and depth < 4 and not _scalars(v):
                rows += kv_rows(v, key.replace("_", " "), depth + 1)
            else:
                rows.append((key.replace("_", " "), _share_or_value(k, v)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            name = v.get("threat") if isinstance(v, dict) and isinstance(v.get("threat"), str) else str(i + 1)
            rows += kv_rows({kk: vv for kk, vv in v.items() if kk != "threat"} if isinstance(v, dict) else v,
                            f"{prefix} · {name}" if prefix else name, depth + 1)
    else:
        rows.append((prefix, fmt_value(obj)))
    return rows


def _scalars(v: Any) -> bool:
    return isinstance(v, list) and all(not isinstance(e, (dict, list)) for e in v)


_SHARE_WORDS = ("rate", "fraction", "accuracy", "independent", "drop")


def _share_or_value(key: Any, v: Any) -> str:
    if isinstance(v, float) and any(w in str(key) for w in _SHARE_WORDS) and 0 <= v <= 1:
        return fmt_pct(v)
    if isinstance(v, list) and v and all(isinstance(e, float) for e in v) and any(w in str(key) for w in _SHARE_WORDS):
        return ", ".join(fmt_pct(e) for e in v)
    return fmt_value(v)


def checks_block(checks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for c in checks or []:
        out.append({"name": c.get("name", "check"), "status": c.get("status", "ok"), "message": c.get("message", ""),
                    "suggestion": c.get("suggestion") if c.get("status") == "warning" else "",
                    "evidence": kv_rows(c.get("evidence") or {})})
    return out


def command_line(results: dict[str, Any]) -> str | None:
    """The exact command that reproduces the run, as one shell line."""
    argv = results.get("argv")
    if isinstance(argv, list) and argv:
        return shlex.join(str(a) for a in argv)
    for key in ("command_line", "command"):
        c = results.get(key)
        if isinstance(c, str) and c.strip() and c.strip() not in KINDS and c.strip() not in _ALIASES:
            return c
    for key in ("argv", "command"):
        c = next((d.get(key) for d in (results.get("config"), results.get("settings")) if isinstance(d, dict)
                  and d.get(key)), None)
        if isinstance(c, list) and c:
            return shlex.join(str(a) for a in c)
        if isinstance(c, str) and c.strip():
            return c
    return None


def versions(results: dict[str, Any]) -> list[tuple[str, str]]:
    env = results.get("environment") or results.get("versions")
    for key in ("config", "settings"):
        if not env and isinstance(results.get(key), dict):
            env = results[key].get("versions")
    return [(k.replace("_", " "), MISSING if v is None else str(v)) for k, v in (env or {}).items()]


def part(results: dict[str, Any], marker: str) -> dict[str, Any]:
    """The command's own settings: ``settings`` (the job schema) or ``config`` (older documents), whichever
    holds ``marker``."""
    for key in ("settings", "config"):
        d = results.get(key)
        if isinstance(d, dict) and marker in d:
            return d
    return {}


def _spec_rows(d: Any) -> list[tuple[str, str]]:
    if not isinstance(d, dict):
        return [("spec", str(d))] if d else []
    return [(k.replace("_", " "), fmt_value(v)) for k, v in d.items() if not isinstance(v, (dict, list))]


def job_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The job's configuration (seed, n, batch size, device) and its fingerprint, when the job recorded them."""
    cfg = results.get("config")
    rows = []
    if isinstance(cfg, dict) and "options" in cfg and "command" in cfg:
        rows += [(k.replace("_", " "), fmt_value(cfg[k])) for k in ("seed", "n", "batch_size", "device") if k in cfg]
    fp = results.get("fingerprint")
    if isinstance(fp, dict):
        rows += [(f"fingerprint {k}".replace("_", " "), fmt_value(v)) for k, v in fp.items()
                 if not isinstance(v, (dict, list))]
    return rows


def reproduce_block(results: dict[str, Any], groups: list[tuple[str, list[tuple[str, str]]]]) -> dict[str, Any]:
    groups = [*groups, ("Job", job_rows(results))]
    return {"command": command_line(results), "versions": versions(results),
            "groups": [(title, rows) for title, rows in groups if rows]}


def cost_block(results: dict[str, Any]) -> list[tuple[str, str]]:
    """A generic ``cost`` object (any command that records one), in words."""
    cost = results.get("cost")
    if not isinstance(cost, dict):
        return []
    return kv_rows(cost)


# ======================================================================== attack
def _attack_colors(results: dict[str, Any]) -> dict[str, str]:
    from advx.report.figures import attack_colors  # noqa: PLC0415

    return attack_colors(results)


def attack_table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary table, one dict per run: the formatted text of each cell and its raw value."""
    from advx.report.format import fmt_num, fmt_rate, fmt_time  # noqa: PLC0415

    rows = []
    for r in results["runs"]:
        m = r["metrics"]
        rows.append({
            "id": r["id"], "attack": r["attack"], "norm": r["threat"]["norm"], "eps": r["threat"]["eps"],
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


_ATTACK_COLS = (("clean_accuracy", "Clean acc.", "pct"), ("robust_accuracy", "Robust acc.", "pct"),
                ("attack_success_rate", "Success rate", "pct"), ("median_distance", "Median ‖δ‖", "num"),
                ("gradient_evaluations_per_sample", "Grad. evals / sample", "rate"),
                ("queries_per_sample", "Queries / sample", "rate"), ("time_s", "Time", "time"))


def _attack_summary(results: dict[str, Any], colors: dict[str, str]) -> dict[str, Any]:
    runs = results["runs"]
    keys = [k for k in _ATTACK_COLS if any(k[0] in r["metrics"] for r in runs)]
    rows = []
    for i, r in enumerate(runs):
        cells = [lbl(r["attack"].upper(), dot=colors.get(r["attack"]),
                     tag="shared run" if r.get("shared_with") else None,
                     tag_title=f"derived from the run {r['shared_with']}" if r.get("shared_with") else None),
                 lbl(_threat_label(r["threat"]["norm"], r["threat"]["eps"]))]
        for key, _, fmt in keys:
            if key in r["metrics"]:
                c = cell(results, ("runs", i, "metrics", key), fmt, key=key)
                if key == "robust_accuracy" and c["value"] is not None:
                    c["bar"] = c["value"]
                cells.append(c)
            else:
                cells.append(txt(MISSING, num=True))
        rows.append(row(cells, data_run=r["id"]))
    cols = [col("Attack", False), col("Threat", False)] + [col(label) for _, label, _ in keys]
    targeted = bool(results.get("targeting"))
    note = ("Robust accuracy: share of all samples still classified correctly after the attack. "
            + ("Success rate: share of the attacked samples (correctly classified, label ≠ target) that the model "
               "assigns to their target after the attack. Median ‖δ‖: median perturbation size, in the threat's norm, "
               "over the samples that reached their target. " if targeted else
               "Success rate: share of the correctly classified samples that the attack fooled. Median ‖δ‖: median "
               "perturbation size, in the threat's norm, over those fooled samples. ")
            + "Grad. evals: backward passes per sample (attacks stop on a sample once it is fooled).")
    if any(r.get("shared_with") for r in runs):
        note += (" Shared run: a minimum-norm attack runs once at the largest ε; smaller ε project its result into "
                 "the smaller ball and judge it again, so its cost is that of the one run.")
    return table("summary-table", cols, rows, note=note)


def _attack_cards(results: dict[str, Any], colors: dict[str, str]) -> list[dict[str, Any]]:
    runs = results["runs"]
    cards = [card("Clean accuracy", cell(results, ("clean", "accuracy"), "pct"),
                  f"{fmt_count(results['clean']['n_correct'])} of {fmt_count(results['clean']['n'])} correct")]
    worst = results.get("worst_case") or []
    for norm in list(dict.fromkeys(r["threat"]["norm"] for r in runs))[:2]:
        eps = max(r["threat"]["eps"] for r in runs if r["threat"]["norm"] == norm)
        at = [(i, r) for i, r in enumerate(runs) if r["threat"]["norm"] == norm and r["threat"]["eps"] == eps
              and r["metrics"]["robust_accuracy"] is not None]
        w = next((j for j, w in enumerate(worst) if w["norm"] == norm and w["eps"] == eps), None)
        if w is not None:
            cards.append(card(_threat_label(norm, eps), cell(results, ("worst_case", w, "robust_accuracy"), "pct"),
                              "robust accuracy, worst case of " + ", ".join(sorted({r["attack"].upper()
                                                                                    for _, r in at}))))
        elif at:
            i, best = min(at, key=lambda ir: ir[1]["metrics"]["robust_accuracy"])
            cards.append(card(_threat_label(norm, eps), cell(results, ("runs", i, "metrics", "robust_accuracy"), "pct"),
                              "robust accuracy, by " + best["attack"].upper()))
    if "time_s" in results:
        n_att = len(colors)
        cards.append(card("Total time", cell(results, ("time_s",), "time"),
                          f"{n_att} attack{'s' if n_att != 1 else ''}, {len(runs)} runs"
                          + (f", on {results['settings']['device']}" if (results.get("settings") or {}).get("device")
                             else "")))
    return cards


def _worst_table(results: dict[str, Any]) -> dict[str, Any] | None:
    worst = results.get("worst_case") or []
    if not worst:
        return None
    rows = []
    for j, w in enumerate(worst):
        c = cell(results, ("worst_case", j, "robust_accuracy"), "pct")
        c["bar"] = w["robust_accuracy"]
        rows.append(row([lbl(_threat_label(w["norm"], w["eps"])), txt(", ".join(w["runs"]), code=True), c],
                        data_worst=f"{w['norm']}-{fmt_eps(w['eps'])}"))
    return table("worst-case-table", [col("Radius", False), col("Attacks", False), col("Robust acc.")], rows,
                 title="Worst case over attacks",
                 note="A sample counts as robust only if every attack at that radius failed on it.")


#: model metadata shown on attack pages (all of it is in results.json), in this order
_MODEL_KEYS = (("description", "description"), ("arch", "architecture"), ("params", "parameters"),
               ("data", "trained on"), ("epochs", "epochs"), ("clean_accuracy", "recorded clean accuracy"),
               ("test_samples", "… on test samples"), ("git_rev", "trained at revision"),
               ("command", "trained by"), ("path", "weights"))


def model_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    model = results.get("model") or {}
    if not isinstance(model, dict):
        return [("spec", str(model))]
    info = model.get("info") or {}
    rows = [("spec", str(model.get("spec", MISSING)))]
    for k in ("sha256", "fingerprint"):
        if model.get(k):
            rows.append((k, str(model[k])))
    for key, name in _MODEL_KEYS:
        v = info.get(key)
        if v is None or isinstance(v, (dict, list)):
            continue
        rows.append((name, fmt_pct(v) if key == "clean_accuracy" and isinstance(v, float) else
                     fmt_count(v) if isinstance(v, int) and not isinstance(v, bool) else str(v)))
    return rows


def _data_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    data = results.get("data") or {}
    if not isinstance(data, dict):
        return [("name", str(data))]
    rows = []
    for key, name in (("name", "name"), ("spec", "spec"), ("source", "source"), ("split", "split"), ("n", "samples"),
                      ("input_shape", "input shape"), ("bounds", "bounds"), ("seed", "subset seed"),
                      ("sha256", "sha256"), ("fingerprint", "fingerprint"), ("sample_rate", "sample rate")):
        v = data.get(key)
        if v is None:
            continue
        if key == "input_shape":
            v = " × ".join(str(e) for e in v)
        elif key == "bounds":
            v = " … ".join(fmt_value(e) for e in v)
        elif key in ("n", "sample_rate"):
            v = fmt_count(v)
        rows.append((name, str(v)))
    return rows


def _settings_rows(settings: dict[str, Any] | None, default: str = "attack default") -> list[tuple[str, str]]:
    return [(k.replace("_", " "), default if v is None else fmt_value(v)) for k, v in (settings or {}).items()
            if not isinstance(v, dict)]


def _attack_cost(results: dict[str, Any]) -> list[tuple[str, str]]:
    """What the attacks cost in all: backward and forward passes and time of the runs (shared runs once)."""
    own = [r["metrics"] for r in results["runs"] if not r.get("shared_with")]
    rows = []
    for key, name, fmt in (("gradient_evaluations", "gradient evaluations", fmt_count),
                           ("queries", "model passes (forward + backward)", fmt_count),
                           ("time_s", "attack time", FORMATTERS["time"])):
        vals = [m[key] for m in own if m.get(key) is not None]
        if vals:
            rows.append((name, fmt(sum(vals))))
    if "time_s" in results:
        rows.append(("wall time, clean evaluation included", FORMATTERS["time"](results["time_s"])))
    return rows


def _attack_page(results: dict[str, Any], tensors: dict[str, Tensor], medium: str) -> dict[str, Any]:
    from advx.report.figures import robustness_plot  # noqa: PLC0415

    colors = _attack_colors(results)
    data = results.get("data") or {}
    model = results.get("model") or {}
    targeting = results.get("targeting")
    sub = [f"{model.get('spec', 'model')} on {data.get('name', 'data')}"
           + (f" ({data['split']} split)" if data.get("split") else ""),
           f"{fmt_count(results['clean']['n'])} samples",
           f"targeted ({targeting['description']})" if targeting else "untargeted"]
    if results.get("created"):
        sub.append(FORMATTERS["when"](results["created"]))
    tables = [_attack_summary(results, colors)]
    worst = _worst_table(results)
    if worst:
        tables.append(worst)
    attacks = [(r["id"], r.get("attack_repr", r["attack"])) for r in results["runs"] if not r.get("shared_with")]
    return {
        "title": "Adversarial robustness report",
        "subtitle": sub,
        "targeting": targeting,
        "cards": _attack_cards(results, colors),
        "tables": tables,
        "plot": robustness_plot(results),
        "plot_alt": "robust accuracy versus perturbation budget",
        "plot_wide": len({r["threat"]["norm"] for r in results["runs"]}) > 1,
        "plot_note": "ε = 0 is the clean accuracy. Lines without markers between points come from a minimum-norm "
                     "attack, whose per-sample smallest perturbation gives the whole curve from one run.",
        "checks": checks_block(results.get("checks")),
        "cost": cost_block(results) or _attack_cost(results),
        "cost_note": "Summed over the runs (a shared minimum-norm run counted once); per-sample figures are in the "
                     "summary table.",
        "examples": _examples(results, tensors, medium, colors),
        "reproduce": reproduce_block(results, [("Data", _data_rows(results)), ("Model", model_rows(results)),
                                               ("Settings", _settings_rows(results.get("settings")))]),
        "attacks": attacks,
        "footer": f"every number on this page is in results.json (schema version {results.get('schema_version', '?')})",
    }


def _examples(results: dict[str, Any], tensors: dict[str, Tensor], medium: str, colors: dict[str, str]):
    if medium == "image":
        from advx.report.partials import image_examples  # noqa: PLC0415

        return image_examples(results, tensors, colors)
    if medium == "audio":
        from advx.report.partials import audio_examples  # noqa: PLC0415

        return audio_examples(results, tensors)
    from advx.report.partials import text_examples  # noqa: PLC0415

    return text_examples(results)


# ====================================================================== evaluate
def _evaluate_page(results: dict[str, Any], tensors: dict[str, Tensor], medium: str) -> dict[str, Any]:
    from advx.report.figures import evaluation_curve  # noqa: PLC0415

    cfg = _eval_config(results)
    desc = cfg.get("description") or {}
    names = [a["name"] for a in cfg.get("attacks", [])]
    threats = results.get("results") or []
    model = str(desc.get("model", "model"))
    if desc.get("defense"):
        model += f" behind {desc['defense']} " + ("(attacked adaptively: BPDA/EOT)" if desc.get("adaptive")
                                                  else "(attacked as is)")
    sub = [f"{model} on {desc.get('data', 'data')}", f"{fmt_count(results['n'])} points",
           "attacks: " + (", ".join(names) or MISSING), f"seed {cfg.get('seed', MISSING)}"]
    cards = [card("Clean accuracy", cell(results, ("clean_accuracy",), "pct"),
                  "95% interval " + FORMATTERS["ci"](results.get("clean_ci95")))]
    for k, t in enumerate(threats[:3]):
        cards.append(card(f"Robust · {_eval_threat(t)}", cell(results, ("results", k, "robust_accuracy"), "pct"),
                          "95% interval " + FORMATTERS["ci"](t.get("ci95"))))
    # robust accuracy per threat (+ the passes counted at the model and the points a budget left unattacked)
    per_point = [(key, name, fmt) for key, name, fmt in (("passes_per_point", "Model passes / point", "rate"),
                                                          ("unfinished", "Unfinished (budget)", "count"))
                 if threats and all(key in t for t in threats) and (key != "unfinished" or any(t[key] for t in threats))]
    rows = []
    for k, t in enumerate(threats):
        ra = cell(results, ("results", k, "robust_accuracy"), "pct")
        ra["bar"] = t["robust_accuracy"]
        extra = [cell(results, ("results", k, key), fmt) for key, _, fmt in per_point if key in t]
        rows.append(row([lbl(_eval_threat(t)), ra, cell(results, ("results", k, "ci95"), "ci"),
                         cell(results, ("results", k, "independent_robust_accuracy"), "pct"),
                         cell(results, ("results", k, "robust"), "count"),
                         cell(results, ("results", k, "carried"), "count"), *extra], data_threat=t["threat"]))
    per_threat = table("threat-table", [col("Threat", False), col("Robust acc."), col("95% interval"),
                                        col("Each ε alone", title="robust accuracy when each eps is attacked alone"),
                                        col("Robust points"), col("From smaller ε")]
                       + [col(name) for _, name, _ in per_point], rows,
                       note=f"Robust accuracy counts a point only if it is classified correctly and no attack broke "
                            f"it. “From smaller ε”: points broken by an example found at a smaller ε of the same norm. "
                            f"{fmt_count(results['n'] - results['clean_correct'])} of {fmt_count(results['n'])} points "
                            f"are misclassified without any attack.")
    # per attack: points broken first at each threat, and what the attack cost
    timing = results.get("timing") or {}
    attack_names = list(dict.fromkeys([*names, *(n for t in threats for n in t.get("broken_by", {}))]))
    counted = "passes_by_attack" if threats and all(t.get("passes_by_attack") for t in threats) else "queries_by_attack"
    brows = []
    for a in attack_names:
        cells = [lbl(a, code=True)]
        for k, t in enumerate(threats):
            cells.append(cell(results, ("results", k, "broken_by", a), "count") if a in t.get("broken_by", {})
                         else txt(MISSING, num=True))
        cells += [sum_cell(results, [("results", k, "gradients_by_attack", a) for k, t in enumerate(threats)
                                     if a in t.get("gradients_by_attack", {})], "count"),
                  sum_cell(results, [("results", k, counted, a) for k, t in enumerate(threats)
                                     if a in t.get(counted, {})], "count")]
        cells.append(cell(results, ("timing", "attack_s", a), "time") if a in timing.get("attack_s", {})
                     else txt(MISSING, num=True))
        brows.append(row(cells, data_attack=a))
    breakdown = table("attack-table", [col("Attack", False)] + [col(_eval_threat(t)) for t in threats]
                      + [col("Gradients"), col("Model passes"), col("Time")], brows,
                      note="Columns per threat: points that attack broke first (each later attack runs only on points "
                           "still robust). The convergence probe is the stronger attack of the convergence check, "
                           "run on a sample of the survivors. Gradients and model passes are summed over the threats.")
    cost = results.get("cost") or {}
    cost_rows = [(k.replace("_", " "), fmt_count(v)) for k, v in cost.items() if isinstance(v, int)]
    cost_rows += kv_rows({k: v for k, v in cost.items() if not isinstance(v, int)})  # nested: passes by phase/attack
    if "wall_time_s" in timing:
        cost_rows.append(("wall time", FORMATTERS["time"](timing["wall_time_s"])))
    if "world_size" in timing:
        cost_rows.append(("processes", fmt_count(timing["world_size"])))
    budget = results.get("budget")
    if isinstance(budget, dict) and budget:
        cost_rows += [(f"budget · {k}", v) for k, v in kv_rows({kk: vv for kk, vv in budget.items()
                                                                 if kk != "limit"})]
        cost_rows.insert(0, ("budget", "none" if budget.get("limit") is None else fmt_value(budget["limit"])))
    flags = results.get("flags") or []
    checks = checks_block(results.get("checks"))
    skipped = [c["name"] for c in checks if c["status"] == "skipped"]
    verdict = ({"tone": "bad", "text": "This number may not be trustworthy.",
                "detail": f"Checks that fired: {', '.join(flags)} (details below)."} if flags else
               {"tone": "good", "text": "No check fired.",
                "detail": f"{len(skipped)} skipped: {', '.join(skipped)}." if skipped else ""})
    attack_cfg = []
    for a in cfg.get("attacks", []):
        conf = a.get("config")
        if isinstance(conf, dict):
            attack_cfg += [(f"{a['name']} at {t}", str(v)) for t, v in conf.items()]
        elif conf is not None:
            attack_cfg.append((a["name"], str(conf)))
    settings = [("threats", ", ".join(cfg.get("threats", [])) or MISSING),
                ("bounds", "; ".join(str(b) for b in cfg.get("bounds", [])) or MISSING)]
    settings += [(k.replace("_", " "), fmt_value(cfg[k])) for k in ("seed", "batch_size", "n", "eot", "probe_points")
                 if k in cfg]
    if cfg.get("checks") is not None:
        settings.append(("checks", ", ".join(cfg["checks"]) or "none"))
    fingerprints = [(k.replace("_", " "), str(cfg[k])) for k in ("model_fingerprint", "data_fingerprint") if cfg.get(k)]
    data_rows = [(k, fmt_value(v)) for k, v in desc.items() if not isinstance(v, dict)]
    info = desc.get("model_info") or {}
    model_info = [(k.replace("_", " "), fmt_pct(v) if k == "clean_accuracy" and isinstance(v, float) else fmt_value(v))
                  for k, v in info.items() if not isinstance(v, (dict, list))]
    return {
        "title": "Robustness evaluation",
        "subtitle": sub,
        "cards": cards,
        "verdict": verdict,
        "plot": evaluation_curve(results),
        "plot_alt": "robust accuracy versus eps",
        "plot_title": "Robust accuracy versus ε",
        "plot_wide": len({t["norm"] for t in threats}) > 1,
        "tables": [per_threat, breakdown],
        "checks": checks,
        "cost": cost_rows,
        "cost_note": "Gradients: model backward passes of the attacks (× EOT passes); model passes: forward + backward "
                     "passes; check gradients: those spent by the checks (not included in the attacks' figures).",
        "notes": [str(n) for n in cfg.get("notes", [])],
        "examples": _eval_examples(results, tensors, medium),
        "reproduce": reproduce_block(results, [("Run", [*data_rows, *settings]), ("Model", model_info),
                                               ("Fingerprints", fingerprints), ("Attacks", attack_cfg)]),
        "footer": f"every number on this page is in results.json (schema version {results.get('schema_version', 2)})",
    }


def _eval_config(results: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's configuration: ``config`` (EvaluationReport.to_dict) or ``settings`` (the evaluate job)."""
    for key in ("config", "settings"):
        c = results.get(key)
        if isinstance(c, dict) and ("attacks" in c or "threats" in c):
            return c
    return {}


def _eval_examples(results: dict[str, Any], tensors: dict[str, Tensor], medium: str):
    if medium != "image":
        return None
    from advx.report.partials import evaluation_examples  # noqa: PLC0415

    return evaluation_examples(results, tensors)


# ======================================================================= certify
def _certify_page(results: dict[str, Any], tensors: dict[str, Tensor], medium: str) -> dict[str, Any]:
    from advx.report.figures import certified_curve  # noqa: PLC0415

    c = part(results, "sigma")
    model, data = results.get("model", "model"), results.get("data", "data")
    if isinstance(model, dict):
        model = model.get("spec", "model")
    if isinstance(data, dict):
        data = data.get("name", data.get("spec", "data"))
    sub = [f"{model} on {data}", f"{fmt_count(c.get('points'))} points", f"σ = {fmt_value(c.get('sigma'))}",
           f"{fmt_count(c.get('n'))} noise samples", f"α = {fmt_value(c.get('alpha'))}"]
    cards = [card("Base model accuracy", cell(results, ("base_accuracy",), "pct"), "no noise"),
             card("Smoothed, certified", cell(results, ("smoothed_accuracy",), "pct"), "correct and certified at radius 0"),
             card("Abstained", cell(results, ("abstain_rate",), "pct"), "no class won clearly enough"),
             card("Largest certifiable radius", cell(results, ("max_certifiable_radius",), "num"),
                  f"with {fmt_count(c.get('n'))} samples")]
    tab = results.get("table") or {"radii": [], "certified_accuracy": []}
    rows = [row([cell(results, ("table", "radii", i), "num", label=True),
                 dict(cell(results, ("table", "certified_accuracy", i), "pct"), bar=a)], data_radius=str(r))
            for i, (r, a) in enumerate(zip(tab["radii"], tab["certified_accuracy"]))]
    certified = table("certified", [col("L2 radius", False), col("Certified accuracy")], rows, cls="narrow",
                      note="The certificate is for the smoothed classifier g, not the base model, and holds only with "
                           "probability 1 − α per point. Radii beyond the dashed line cannot be certified with this "
                           "many samples.")
    settings = [(k.replace("_", " "), fmt_value(v)) for k, v in c.items() if not isinstance(v, (dict, list))]
    where = [(k, str(results[k])) for k in ("model", "data", "split", "source")
             if results.get(k) is not None and not isinstance(results[k], dict)]
    where += [(f"{k} {kk}", v) for k in ("model", "data") if isinstance(results.get(k), dict)
              for kk, v in _spec_rows(results[k])]
    if "wall_time_s" in results:
        settings.append(("wall time", FORMATTERS["time"](results["wall_time_s"])))
    return {
        "title": "Randomized smoothing certificate",
        "summary_title": "Certificate",
        "subtitle": sub,
        "intro": (f"The smoothed classifier g(x) = argmax_c P(f(x + e) = c), e ~ N(0, σ² I), is certified on each test "
                  f"point with {fmt_count(c.get('n'))} noise samples (CERTIFY of Cohen, Rosenfeld & Kolter 2019): with "
                  f"probability at least 1 − {fmt_value(c.get('alpha'))} per point, no L2 perturbation smaller than "
                  f"the certified radius changes g's prediction."),
        "cards": cards,
        "plot": certified_curve(results),
        "plot_alt": "certified accuracy versus L2 radius",
        "plot_title": "Certified accuracy versus L2 radius",
        "plot_wide": False,
        "tables": [certified],
        "reproduce": reproduce_block(results, [("Run", where), ("Settings", settings)]),
        "footer": "advx certify · every number on this page is in results.json",
    }


# ====================================================================== transfer
def _transfer_page(results: dict[str, Any], tensors: dict[str, Tensor], medium: str) -> dict[str, Any]:
    from advx.report.figures import transfer_heatmap  # noqa: PLC0415

    sources, targets = results["sources"], results["targets"]
    rows = []
    for i, s in enumerate(sources):
        cells = [lbl(s, code=True)]
        for j in range(len(targets)):
            c = cell(results, ("success", i, j), "pct")
            c["cls"] = "diag" if s == targets[j] else ""
            cells.append(c)
        rows.append(row(cells, data_source=s))
    if results.get("clean_accuracy"):
        rows.append(row([lbl("clean accuracy")] + [cell(results, ("clean_accuracy", j), "pct")
                                                   for j in range(len(targets))], cls="foot"))
    if results.get("n"):
        rows.append(row([lbl("points")] + [cell(results, ("n", j), "count") for j in range(len(targets))], cls="foot"))
    matrix = table("matrix", [col("source \\ target", False)] + [col(t, name=True) for t in targets], rows,
                   note="Each cell: the share of the points the target classifies correctly that it misclassifies "
                        "after the attack was crafted on the source (white-box on the diagonal, shaded).")
    data = results.get("data")
    data_name = (data.get("name") or data.get("spec") or "data") if isinstance(data, dict) else str(data or "data")
    pairs = [(i, j) for i in range(len(sources)) for j in range(len(targets)) if sources[i] != targets[j]]
    cards = []
    if pairs:
        i, j = max(pairs, key=lambda ij: results["success"][ij[0]][ij[1]])
        cards.append(card("Best transfer", cell(results, ("success", i, j), "pct"), f"{sources[i]} → {targets[j]}"))
    for j, t in enumerate(targets[:2]):
        if t in sources:
            cards.append(card(f"White-box on {t}", cell(results, ("success", sources.index(t), j), "pct"),
                              "crafted and evaluated on the same model"))
    run = [("attack", str(results.get("attack", MISSING))), ("data", data_name),
           ("models", ", ".join(sources))]
    run += [(k.replace("_", " "), fmt_value(v)) for k, v in (results.get("settings") or {}).items()
            if not isinstance(v, (dict, list)) and k not in ("attack", "description")]
    return {
        "title": "Transfer attack",
        "summary_title": "Transfer matrix",
        "subtitle": [f"{results.get('attack', 'attack')} on {data_name}",
                     f"{len(sources)} source{'s' if len(sources) != 1 else ''} × {len(targets)} "
                     f"target{'s' if len(targets) != 1 else ''}"],
        "cards": cards,
        "plot": transfer_heatmap(results),
        "plot_alt": "transfer success heat map",
        "plot_title": "Success rate, source × target",
        "plot_small": True,
        "tables": [matrix],
        "reproduce": reproduce_block(results, [("Run", run)]),
        "footer": "advx transfer · every number on this page is in results.json",
    }


# =================================================================== text attack
_TEXT_SUMMARY = (("clean_accuracy", "Clean accuracy", "pct"), ("accuracy_under_attack", "Accuracy under attack", "pct"),
                 ("success_rate", "Attack success rate", "pct"), ("succeeded", "Succeeded", "count"),
                 ("failed", "Failed", "count"), ("skipped", "Skipped (misclassified)", "count"),
                 ("mean_words_changed", "Mean words changed", "num"),
                 ("mean_percent_words_changed", "Mean share of words changed", "pctpoints"),
                 ("mean_chars_changed", "Mean characters changed", "num"), ("mean_queries", "Mean queries", "rate"),
                 ("seconds", "Time", "time"))


def _text_page(results: dict[str, Any], tensors: dict[str, Tensor], medium: str) -> dict[str, Any]:
    cfg = part(results, "recipe")
    s = results.get("summary") or {}
    sub = [f"{cfg.get('recipe', 'attack')} on {cfg.get('model', 'model')}",
           f"data {cfg.get('dataset', MISSING)}", f"{fmt_count(s.get('examples', len(results.get('results', []))))} "
           "examples", "query budget " + (fmt_count(cfg["budget"]) if cfg.get("budget") is not None else "none"),
           f"seed {cfg.get('seed', MISSING)}"]
    cards = []
    for key, name, sub_text in (("clean_accuracy", "Clean accuracy", ""),
                                ("accuracy_under_attack", "Accuracy under attack", ""),
                                ("success_rate", "Attack success rate",
                                 f"{fmt_count(s.get('succeeded'))} of "
                                 f"{fmt_count((s.get('succeeded') or 0) + (s.get('failed') or 0))} attacked")):
        if key in s:
            cards.append(card(name, cell(results, ("summary", key), "pct"), sub_text))
    if "mean_queries" in s:
        cards.append(card("Mean queries", cell(results, ("summary", "mean_queries"), "rate"), "per attacked example"))
    rows = []
    for key, name, fmt in _TEXT_SUMMARY:
        if key not in s:
            continue
        c = cell(results, ("summary", key), fmt)
        rows.append(row([lbl(name), c], data_key=key))
    summary = table("summary-table", [col("Measure", False), col("Value")], rows, cls="narrow",
                    note="Success rate: share of the attacked examples (classified correctly before the attack) whose "
                         "prediction the attack changed. Accuracy under attack: share of all examples still classified "
                         "correctly afterwards.")
    run = [(k.replace("_", " "), fmt_value(v)) for k, v in cfg.items()
           if k not in ("label_names", "attack") and not isinstance(v, (dict, list))]
    attack = [("attack", str(cfg["attack"]))] if cfg.get("attack") else []
    from advx.report.partials import text_examples  # noqa: PLC0415

    return {
        "title": "Text attack",
        "subtitle": sub,
        "cards": cards,
        "plot": None,
        "tables": [summary],
        "examples": text_examples(results),
        "reproduce": reproduce_block(results, [("Run", run), ("Attack", attack)]),
        "footer": "advx text attack · every number on this page is in results.json",
    }


# ================================================================== audio attack
_AUDIO_COLS = (("attacked", "Attacked", "count"), ("success_rate", "Success rate", "pct"),
               ("mean_db_x", "Mean dB_x", "db"), ("median_db_x", "Median dB_x", "db"),
               ("mean_snr_db", "Mean SNR", "db"), ("mean_queries", "Queries / clip", "rate"),
               ("success_16bit_wav", "Success as 16-bit WAV", "pct"),
               ("success_after_playback", "Survives playback", "pct"),
               ("median_above_threshold", "Energy above masking (median)", "pct"),
               ("success_on_training_clips", "Success on training clips", "pct"),
               ("delta_dbfs", "Perturbation peak (dBFS)", "db"))

#: what the summary note says about a column, when the page has it
_AUDIO_NOTES = {"success_16bit_wav": "“Success as 16-bit WAV”: the same judged on the written files (quantised).",
                "success_after_playback": "“Survives playback”: share of the successful clips still adversarial "
                                          "after random room, gain, shift and noise.",
                "median_above_threshold": "“Energy above masking”: share of the perturbation's energy above the "
                                          "clip's psychoacoustic masking threshold (median over clips).",
                "success_on_training_clips": "“Success on training clips”: the universal perturbation on the clips "
                                             "it was learned on (the success rate is on held-out clips)."}


def _audio_page(results: dict[str, Any], tensors: dict[str, Tensor], medium: str) -> dict[str, Any]:
    rows_in = results.get("results") or []
    keys = [k for k in _AUDIO_COLS if any(k[0] in r for r in rows_in)]
    rows = []
    for i, r in enumerate(rows_in):
        cells = [lbl(r.get("mode", i))]
        for key, _, fmt in keys:
            c = cell(results, ("results", i, key), fmt) if key in r else txt(MISSING, num=True)
            if key == "success_rate" and key in r:
                c["bar"] = r[key]
            cells.append(c)
        rows.append(row(cells, data_mode=str(r.get("mode", i))))
    summary = table("summary-table", [col("Mode", False)] + [col(name) for _, name, _ in keys], rows,
                    note=" ".join(["Success rate over the clips classified correctly when clean; dB_x = 20 "
                                   "log10(max|δ| / max|x|) and SNR over the successful ones.",
                                   *(_AUDIO_NOTES[k] for k, _, _ in keys if k in _AUDIO_NOTES)]))
    cards = [card("Clean accuracy", cell(results, ("clean_accuracy",), "pct"),
                  f"{fmt_count(results.get('n'))} clips")] if "clean_accuracy" in results else []
    for i, r in enumerate(rows_in[:2]):
        if "success_rate" in r:
            cards.append(card(f"Success, {r.get('mode', '')}", cell(results, ("results", i, "success_rate"), "pct"),
                              f"of {fmt_count(r.get('attacked'))} clips, median dB_x "
                              f"{FORMATTERS['db'](r.get('median_db_x'))}"))
    threat = results.get("threat_db")
    sub = [f"{results.get('attack_name') or _short_repr(results.get('attack'))} on {results.get('model', 'model')}",
           str(results.get("data", "data")), f"{fmt_count(results.get('n'))} clips"]
    if threat is not None:
        sub.append(f"dB_x ≤ {threat:g}")
    run = [(k.replace("_", " "), fmt_value(results[k])) for k in ("model", "data", "split", "n", "threat_db",
                                                                   "eot_samples", "seed", "synthetic")
           if k in results]
    if "seconds" in results:
        run.append(("time", FORMATTERS["time"](results["seconds"])))
    attack = [("attack", str(results["attack"]))] if results.get("attack") else []
    from advx.report.figures import history_curve  # noqa: PLC0415
    from advx.report.partials import audio_examples  # noqa: PLC0415

    return {
        "title": "Universal audio perturbation" if page_kind(results) == "audio universal" else "Audio attack",
        "plot": history_curve(results.get("history")),
        "plot_title": "Learning the perturbation",
        "plot_alt": "training loss per step",
        "plot_wide": False,
        "subtitle": sub,
        "cards": cards,
        "notes": [str(n) for n in results.get("notes", [])],
        "tables": [summary],
        "examples": audio_examples(results, tensors),
        "reproduce": reproduce_block(results, [("Run", run), ("Attack", attack)]),
        "footer": f"advx {page_kind(results)} · every number on this page is in results.json",
    }


def _short_repr(r: Any) -> str:
    s = str(r or "attack")
    return s.split("(")[0]


_BUILDERS = {"attack": _attack_page, "evaluate": _evaluate_page, "certify": _certify_page,
             "transfer": _transfer_page, "text attack": _text_page, "audio attack": _audio_page,
             "audio universal": _audio_page}


_CELL = {"text": MISSING, "src": None, "fmt": None, "agg": None, "key": None, "value": None, "num": False,
         "label": False, "code": False, "dot": None, "tag": None, "tag_title": None, "bar": None, "cls": ""}


def _complete(ctx: dict[str, Any]) -> None:
    """Every cell with every key the templates read (they render with StrictUndefined)."""
    for t in ctx.get("tables") or []:
        t.setdefault("title", None)
        t.setdefault("note", None)
        for c in t["cols"]:
            c.setdefault("title", None)
            c.setdefault("name", False)
        for r in t["rows"]:
            r["cells"] = [{**_CELL, **c} for c in r["cells"]]
    for c in ctx.get("cards") or []:
        c["v"] = {**_CELL, **c["v"]}


def build_page(results: dict[str, Any], tensors: dict[str, Tensor] | None) -> dict[str, Any]:
    """The template context of the page for ``results``."""
    kind = page_kind(results)
    medium = medium_of(results, kind)
    ctx = _BUILDERS[kind](results, tensors or {}, medium)
    ctx.update(kind=kind, medium=medium, r=results)
    ctx.setdefault("checks", checks_block(results.get("checks")))
    ctx.setdefault("cost", cost_block(results))
    ctx.setdefault("examples", None)
    ctx.setdefault("notes", [])
    ctx.setdefault("verdict", None)
    ctx.setdefault("intro", None)
    ctx.setdefault("targeting", None)
    ctx.setdefault("attacks", [])
    ctx.setdefault("cost_note", None)
    ctx.setdefault("plot_title", "Robust accuracy versus ε")
    ctx.setdefault("plot_note", None)
    ctx.setdefault("plot_wide", True)
    ctx.setdefault("plot_small", False)
    _complete(ctx)
    ctx["generator"] = dict(versions(results)).get("advx")
    return ctx
