"""WordNet 3.0 synonyms, read straight from WordNet's own data files.

WordNet (Miller 1995; Fellbaum 1998, https://wordnet.princeton.edu) ships as
plain text: ``index.<pos>`` (sorted) maps a lemma to the byte offsets of its
synsets in ``data.<pos>``, whose lines list the synset's words. Looking lemmas up
by binary search in those files, with the suffix rules and exception lists of
WordNet's own ``morphy``, needs no nltk data directory and no start-up parse.
The files come from the Debian package ``wordnet-base`` (``/usr/share/wordnet``);
set ``ADVX_WORDNET`` to use another copy of the WordNet 3.0 dictionary files.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from advx.text.words import match_case

__all__ = ["WordNet", "wordnet"]

POS = ("noun", "verb", "adj", "adv")
#: morphy's detachment rules: (inflected suffix, base suffix)
_RULES = {
    "noun": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
             ("ies", "y")),
    "verb": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "adv": (),
}
_EXCEPTION = ("exception", "")


class WordNet:
    """Synonym lookup on a WordNet 3.0 dictionary directory."""

    def __init__(self, root: str | Path | None = None):
        root = Path(root or os.environ.get("ADVX_WORDNET", "/usr/share/wordnet"))
        if not (root / "index.noun").is_file():
            raise FileNotFoundError(
                f"WordNet 3.0 files not found in {root}; install them with `apt-get install wordnet-base` "
                "(scripts/system-deps.sh does) or set ADVX_WORDNET to a directory holding index.noun and data.noun")
        self.root = root
        self._cache: dict[tuple[str, str], list[int]] = {}
        self._exc: dict[str, dict[str, list[str]]] = {}

    def lookup(self, lemma: str, pos: str) -> list[int]:
        """Synset offsets of ``lemma`` in ``data.<pos>`` (binary search in the sorted ``index.<pos>``)."""
        if (lemma, pos) in self._cache:
            return self._cache[lemma, pos]
        key = lemma.replace(" ", "_").encode("utf-8") + b" "
        with open(self.root / f"index.{pos}", "rb") as fh:
            lo, hi = 0, fh.seek(0, 2)
            while lo < hi:  # first line start whose line is >= key (licence lines start with a space: < any key)
                mid = (lo + hi) // 2
                fh.seek(mid)
                if mid:
                    fh.readline()
                line = fh.readline()
                if line and line < key:
                    lo = mid + 1
                else:
                    hi = mid
            fh.seek(lo)
            if lo:
                fh.readline()
            line = fh.readline()
        offsets: list[int] = []
        if line.startswith(key):
            f = line.decode("utf-8").split()
            n_synsets, n_ptrs = int(f[2]), int(f[3])
            offsets = [int(o) for o in f[6 + n_ptrs : 6 + n_ptrs + n_synsets]]
        self._cache[lemma, pos] = offsets
        return offsets

    def exceptions(self, pos: str) -> dict[str, list[str]]:
        if pos not in self._exc:
            table: dict[str, list[str]] = {}
            path = self.root / f"{pos}.exc"
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    f = line.split()
                    if len(f) >= 2:
                        table[f[0]] = f[1:]
            self._exc[pos] = table
        return self._exc[pos]

    def morphy(self, word: str, pos: str) -> list[tuple[str, tuple[str, str] | None]]:
        """Base forms of ``word`` in WordNet as (base, rule); rule None for the word itself."""
        word = word.lower()
        out: list[tuple[str, tuple[str, str] | None]] = []
        if self.lookup(word, pos):
            out.append((word, None))
        candidates = [(b, _EXCEPTION) for b in self.exceptions(pos).get(word, [])]
        candidates += [(word[: len(word) - len(s)] + r, (s, r)) for s, r in _RULES[pos]
                       if word.endswith(s) and len(word) > len(s)]
        for base, rule in candidates:
            if all(b != base for b, _ in out) and self.lookup(base, pos):
                out.append((base, rule))
        return out

    def _synset_words(self, pos: str, offset: int) -> tuple[str, ...]:
        with open(self.root / f"data.{pos}", "rb") as fh:
            fh.seek(offset)
            f = fh.readline().decode("utf-8").split()
        n = int(f[3], 16)
        return tuple(w.split("(")[0] for w in f[4 : 4 + 2 * n : 2])  # adjectives may carry markers like "(a)"

    def antonyms(self, word: str) -> set[str]:
        """Lower-cased WordNet antonyms of ``word``'s base forms (lexical "!" pointers)."""
        out: set[str] = set()
        for p in POS:
            for base, _ in self.morphy(word, p):
                for offset in self.lookup(base, p):
                    for (ptr_pos, target_offset, target_word) in self._antonym_pointers(p, offset):
                        words = self._synset_words(ptr_pos, target_offset)
                        picked = words if target_word == 0 else words[target_word - 1 : target_word]
                        out.update(w.lower() for w in picked)
        return out

    def _antonym_pointers(self, pos: str, offset: int) -> list[tuple[str, int, int]]:
        with open(self.root / f"data.{pos}", "rb") as fh:
            fh.seek(offset)
            f = fh.readline().decode("utf-8").split()
        k = 4 + 2 * int(f[3], 16)
        out = []
        for j in range(int(f[k])):
            sym, target, tpos, st = f[k + 1 + 4 * j : k + 5 + 4 * j]
            if sym == "!":
                out.append(({"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}[tpos], int(target), int(st[2:], 16)))
        return out

    def pos_of(self, word: str) -> set[str]:
        """Parts of speech under which WordNet knows ``word`` (after morphy)."""
        return {pos for pos in POS if self.morphy(word, pos)}

    def synonyms(self, word: str, pos: str | None = None) -> list[str]:
        """Single-word WordNet synonyms of ``word``, inflected like it and with its capitalisation.

        A synonym of the base form gets the inflection morphy removed
        (``cars`` -> ``car`` -> ``automobile`` -> ``automobiles``); bases reached
        through an irregular form (``ran`` -> ``run``) give no synonyms, since
        their inflection cannot be reproduced reliably.
        """
        if not isinstance(word, str):
            raise TypeError(f"word must be a str, got {type(word).__name__}")
        if not word.isalpha():
            return []
        out: list[str] = []
        for p in (pos,) if pos else POS:
            for base, rule in self.morphy(word, p):
                if rule == _EXCEPTION:
                    continue
                for offset in self.lookup(base, p):
                    for lemma in self._synset_words(p, offset):
                        cand = lemma.lower()
                        if not cand.isalpha() or cand == base:
                            continue
                        cand = cand if rule is None else _inflect(cand, *rule)
                        if cand is None:
                            continue
                        cand = match_case(cand, word)
                        if cand.lower() != word.lower() and cand not in out:
                            out.append(cand)
        return out


def _inflect(base: str, suffix: str, repl: str) -> str | None:
    """Apply to ``base`` the inflection that morphy undid with the rule (suffix -> repl)."""
    if repl:
        return base[: len(base) - len(repl)] + suffix if base.endswith(repl) else None
    consonant_y = base.endswith("y") and len(base) > 1 and base[-2] not in "aeiou"
    if suffix in ("s", "es"):
        if base.endswith(("s", "x", "z", "ch", "sh")):
            return base + "es"
        return base[:-1] + "ies" if consonant_y else base + "s"
    if suffix in ("ed", "er", "est"):
        return base[:-1] + "i" + suffix if consonant_y else base[:-1] + suffix if base.endswith("e") else base + suffix
    if suffix == "ing" and base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        return base[:-1] + suffix
    return base + suffix


@lru_cache(maxsize=1)
def wordnet() -> WordNet:
    """The shared :class:`WordNet` on the default directory."""
    return WordNet()
