"""Words of a text, edited in place without disturbing the rest of the text.

A :class:`Words` splits a text once into alternating separators and words
(``\\w+`` runs, with inner apostrophes: ``don't`` is one word). Editing word
``i`` replaces that piece only, so spacing, punctuation and everything the
attack did not touch come back byte for byte from :meth:`Words.text`. A word
may be replaced by several (an inserted space) or by nothing (a deletion) and is
still counted as one changed word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["Words", "levenshtein", "total_char_edits", "STOPWORDS", "match_case"]

_WORD = re.compile(r"\w+(?:'\w+)*")

#: English function words that word-level attacks leave alone by default.
STOPWORDS: frozenset[str] = frozenset(
    """
    a about above across after afterwards again against all almost alone along already also although always am
    among amongst an and another any anyhow anyone anything anyway anywhere are aren't around as at be became because
    become becomes becoming been before beforehand behind being below beside besides between beyond both but by can
    cannot could couldn't did didn't do does doesn't doing don't done down during each either else elsewhere enough
    even ever every everyone everything everywhere except few for former formerly from further had hadn't has hasn't
    have haven't having he hence her here hereafter hereby herein hereupon hers herself him himself his how however i
    if in indeed into is isn't it it's its itself just latter latterly least less many may me meanwhile might mine
    more moreover most mostly much must mustn't my myself namely neither never nevertheless next no nobody none
    noone nor not nothing now nowhere o of off on once one only onto or other others otherwise our ours ourselves out
    over own per perhaps please rather re same shan't she she's should shouldn't so some somehow someone something
    sometime sometimes somewhere still such than that that'll the their theirs them themselves then thence there
    thereafter thereby therefore therein thereupon these they this those though through throughout thru thus to
    together too toward towards under unless until up upon us used very via was wasn't we were weren't what whatever
    when whence whenever where whereafter whereas whereby wherein whereupon wherever whether which while whither who
    whoever whole whom whose why with within without won't would wouldn't yet you you'd you'll you're you've your
    yours yourself yourselves
    """.split()
)


class Words:
    """A text split into words and the separators between them.

    ``Words(text).text == text`` always; ``words[i]`` is the i-th word and
    :meth:`replace` returns a new :class:`Words` with word ``i`` changed.
    """

    __slots__ = ("_pieces", "_slots", "_starts")

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        pieces: list[str] = []
        slots: list[int] = []
        starts: list[int] = []
        pos = 0
        for m in _WORD.finditer(text):
            pieces.append(text[pos : m.start()])
            slots.append(len(pieces))
            starts.append(m.start())
            pieces.append(m.group())
            pos = m.end()
        pieces.append(text[pos:])
        self._pieces, self._slots, self._starts = pieces, slots, starts

    @classmethod
    def _from(cls, pieces: list[str], slots: list[int], starts: list[int]) -> Words:
        w = cls.__new__(cls)
        w._pieces, w._slots, w._starts = pieces, slots, starts
        return w

    def __len__(self) -> int:
        return len(self._slots)

    def __getitem__(self, i: int) -> str:
        return self._pieces[self._slots[i]]

    @property
    def words(self) -> list[str]:
        return [self._pieces[s] for s in self._slots]

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def start(self, i: int) -> int:
        """Character offset of word ``i`` in the original text."""
        return self._starts[i]

    def spans(self) -> list[tuple[int, int]]:
        """(start, end) of every word in the *current* text (after edits)."""
        out, pos, slot = [], 0, 0
        for k, piece in enumerate(self._pieces):
            if slot < len(self._slots) and k == self._slots[slot]:
                out.append((pos, pos + len(piece)))
                slot += 1
            pos += len(piece)
        return out

    def head(self, i: int) -> str:
        """The text up to and including word ``i``."""
        return "".join(self._pieces[: self._slots[i] + 1])

    def tail(self, i: int) -> str:
        """The text from word ``i`` to the end."""
        return "".join(self._pieces[self._slots[i] :])

    def replace(self, i: int, new: str) -> Words:
        """A copy with word ``i`` replaced by ``new`` (any string, even empty)."""
        if not 0 <= i < len(self._slots):
            raise IndexError(f"word index {i} out of range for a text of {len(self._slots)} words")
        pieces = list(self._pieces)
        pieces[self._slots[i]] = new
        return Words._from(pieces, self._slots, self._starts)

    def replace_many(self, changes: dict[int, str]) -> Words:
        pieces = list(self._pieces)
        for i, new in changes.items():
            pieces[self._slots[i]] = new
        return Words._from(pieces, self._slots, self._starts)

    def changed(self, other: Words) -> list[int]:
        """Indices of words that differ between two edits of the same text."""
        if other._slots != self._slots:
            raise ValueError("the two Words come from different texts; compare edits of one original")
        return [i for i, s in enumerate(self._slots) if self._pieces[s] != other._pieces[s]]

    def window(self, i: int, size: int) -> str:
        """The text of words ``i - size//2 .. i + size//2`` (with their separators)."""
        lo = max(0, i - size // 2)
        hi = min(len(self._slots) - 1, i + size // 2)
        if not self._slots:
            return self.text
        return "".join(self._pieces[self._slots[lo] : self._slots[hi] + 1])

    def __repr__(self) -> str:
        return f"Words({self.text[:60]!r}{'...' if len(self.text) > 60 else ''}, n={len(self)})"


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character)."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def match_case(word: str, like: str) -> str:
    """``word`` with the capitalisation pattern of ``like`` (UPPER, Title or lower)."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def total_char_edits(original: Words, changed: Words, indices: Sequence[int] | None = None) -> int:
    """Sum over changed words of the Levenshtein distance to the original word."""
    idx = original.changed(changed) if indices is None else indices
    return sum(levenshtein(original[i], changed[i]) for i in idx)
