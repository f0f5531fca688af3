"""What the medium partials need besides pictures: WAV data URIs and inline text diffs.

Both work from results.json and tensors alone (no import of ``advx.audio`` or
``advx.text``): a clip is a float tensor in [-1, 1], a text example is the
original string, the adversarial string and its edits.
"""

from __future__ import annotations

import base64
import difflib
import io
import re
import wave
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["wav_bytes", "wav_uri", "inline_diff", "Segment"]

#: (kind, text): kind "same", "del" (only in the original), "ins" (only in the adversarial text)
Segment = tuple[str, str]


def wav_bytes(clip: Tensor, sample_rate: int) -> bytes:
    """A mono 16-bit PCM WAV of ``clip`` (values in [-1, 1]; clipped)."""
    a = clip.detach().float().cpu().flatten().numpy()
    pcm = np.clip(np.round(a * 32768), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def wav_uri(clip: Tensor, sample_rate: int) -> str:
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(clip, sample_rate)).decode("ascii")


def _char_diff(before: str, after: str) -> list[Segment]:
    out: list[Segment] = []
    sm = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            out.append(("same", before[i1:i2]))
        else:
            if i2 > i1:
                out.append(("del", before[i1:i2]))
            if j2 > j1:
                out.append(("ins", after[j1:j2]))
    return out


def _word_edits(original: str, perturbed: str) -> list[dict[str, Any]]:
    """Edits from a word diff, when the results do not list them: [{start, before, after}] on the original."""
    tok = re.compile(r"\S+|\s+")
    a = [(m.start(), m.group()) for m in tok.finditer(original)]
    b = [m.group() for m in tok.finditer(perturbed)]
    edits = []
    sm = difflib.SequenceMatcher(a=[t for _, t in a], b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        start = a[i1][0] if i1 < len(a) else len(original)
        edits.append({"start": start, "before": "".join(t for _, t in a[i1:i2]), "after": "".join(b[j1:j2])})
    return edits


def _consistent(original: str, perturbed: str, edits: list[dict[str, Any]]) -> bool:
    """The edits, applied to the original at their positions, give the perturbed text."""
    out, pos = [], 0
    for e in sorted(edits, key=lambda e: int(e["start"])):
        start = int(e["start"])
        if start < pos or original[start:start + len(e["before"])] != e["before"]:
            return False
        out += [original[pos:start], e["after"]]
        pos = start + len(e["before"])
    return "".join(out) + original[pos:] == perturbed


def inline_diff(original: str, perturbed: str, edits: list[dict[str, Any]] | None = None,
                context: int | None = 240) -> list[dict[str, Any]]:
    """The adversarial text read inline: a list of pieces ``{"kind": "same", "text": ...}`` and
    ``{"kind": "edit", "before": ..., "after": ..., "parts": [(kind, text), ...]}``, the parts a
    character diff of the edited word. Unchanged stretches longer than ``2 * context`` are shortened
    to their ends around "…" (None: never). The edits are the attack's own (``start`` in the
    original, ``before``, ``after``); without them a word diff of the two strings finds them.
    """
    if edits is None or (not edits and original != perturbed) or not _consistent(original, perturbed, edits):
        edits = _word_edits(original, perturbed)  # the attack's own edits are missing or do not add up
    pieces: list[dict[str, Any]] = []
    pos = 0
    for e in sorted(edits, key=lambda e: e["start"]):
        start = int(e["start"])
        pieces.append({"kind": "same", "text": original[pos:start]})
        pieces.append({"kind": "edit", "before": e["before"], "after": e["after"],
                       "parts": _char_diff(e["before"], e["after"])})
        pos = start + len(e["before"])
    pieces.append({"kind": "same", "text": original[pos:]})
    pieces = [p for p in pieces if p["kind"] == "edit" or p["text"]]
    if context is not None:
        last = len(pieces) - 1
        for k, p in enumerate(pieces):
            t = p.get("text", "")
            if p["kind"] == "same" and len(t) > 2 * context + 20:
                head = t[:context] if k > 0 else ""
                tail = t[-context:] if k < last else ""
                p["text"] = f"{head} … {tail}".strip(" ") if not (head and tail) else f"{head} … {tail}"
    return pieces
