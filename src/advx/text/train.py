"""What the one training loop needs to train a text classifier: recipes, data as Batches, augmentation.

advx.text does not train anything itself: :func:`advx.defenses.loop.train` is the
one loop for every medium, and the CLI (``advx text train``, ``advx train --arch
charcnn|wordcnn``) composes it with the pieces here:

* :class:`TextRecipe` -- architecture, tokenizer length, vocabulary and the loop's
  settings of a reference model (``advx.text.zoo.ZOO`` names them);
* :func:`prepare` -- a fresh model and tokenizer, the module the loop trains, its data
  (:class:`TextBatches`: tokenised batches; :class:`FrozenFeatures` for MiniLM, whose
  frozen bottom layers run once per text and are cached, so an epoch costs only the
  fine-tuned top layers) and its parameter groups (MiniLM's freshly initialised head
  learns at ``head_lr_scale`` times the encoder's rate);
* :class:`AdversarialAugmentation` -- adversarial training for discrete inputs, the
  augmentation recipe used for text since Jia & Liang (2017) and in TextAttack's
  trainer (Morris et al. 2020, https://arxiv.org/abs/2005.05909): before each due epoch,
  attack a random sample of the training texts with the current model and add the
  successful adversarial texts, with their true labels, to the training data (kept
  for the rest of training; ``keep="round"``: only until the next round replaces
  them, as TextAttack's trainer does). It is the loop's ``on_epoch_start`` hook.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from advx.text.classifier import TorchTextClassifier
from advx.text.data import TextDataset
from advx.text.models import ARCHITECTURES, CharTokenizer, WordTokenizer

__all__ = ["TextRecipe", "TextTraining", "TextBatches", "FrozenFeatures", "TopLayers", "AdversarialAugmentation",
           "prepare", "accuracy", "ARCHS"]

log = logging.getLogger(__name__)

#: every architecture a recipe may name
ARCHS = (*ARCHITECTURES, "MiniLM")


@dataclass(frozen=True)
class TextRecipe:
    """How a reference text model is made: the model and tokenizer, and the loop's settings."""

    architecture: str = "CharCNN"  #: "CharCNN", "WordCNN" or "MiniLM"
    max_len: int = 512  #: characters (CharCNN), words (WordCNN) or word pieces (MiniLM) the model reads
    vocab_size: int = 8000  #: WordCNN vocabulary (most frequent training words)
    trained_layers: int = 1  #: MiniLM: top encoder layers fine-tuned (the rest stay frozen, their output cached)
    head_lr_scale: float = 10.0  #: MiniLM: the head's learning rate over the encoder's
    #: the learning-rate schedule is planned for schedule_span x the epochs trained; training stops after the
    #: epochs (2: the rate ends where the middle of a twice-as-long schedule leaves it)
    schedule_span: float = 1.0
    #: keyword arguments of advx.defenses.loop.TrainConfig (epochs, lr, batch_size, optimizer, schedule, ...)
    training: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHS:
            raise ValueError(f"architecture must be one of {list(ARCHS)}, got {self.architecture!r}")
        for name in ("max_len", "vocab_size", "trained_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "trained_layers" else 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        span = self.schedule_span
        if isinstance(span, bool) or not isinstance(span, (int, float)) or not 1 <= span <= 100:
            raise ValueError(f"schedule_span must be a number in [1, 100], got {span!r}")
        if not isinstance(self.training, dict):
            raise TypeError(f"training must be a dict of TrainConfig arguments, got {type(self.training).__name__}")

    def to_json(self) -> dict:
        return asdict(self)

    def schedule(self, epochs: int) -> tuple[int, int | None]:
        """(the epochs the schedule is planned for, the loop's ``stop_after``) to train ``epochs`` epochs."""
        planned = max(epochs, round(self.schedule_span * epochs))
        return planned, (epochs if planned != epochs else None)


class TextBatches:
    """Texts and labels as the training loop's Batches: a batch is (the tokenised texts, their labels).

    Besides the fixed training set it holds the *extra* examples of the current epoch
    (:meth:`set_extra`, e.g. adversarial texts); they are its :meth:`state`, which the loop
    saves in every checkpoint and gives back on resume.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer: Callable[[list[str]], object]):
        if len(texts) != len(labels):
            raise ValueError(f"texts and labels: {len(texts)} texts but {len(labels)} labels; need one label each")
        self.texts, self.labels, self.tokenizer = list(texts), [int(y) for y in labels], tokenizer
        self.extra_texts: list[str] = []
        self.extra_labels: list[int] = []

    def __len__(self) -> int:
        return len(self.texts) + len(self.extra_texts)

    def _example(self, i: int) -> tuple[str, int]:
        base = len(self.texts)
        return (self.texts[i], self.labels[i]) if i < base else (self.extra_texts[i - base], self.extra_labels[i - base])

    def inputs(self, rows: list[int]) -> object:
        """The model input of examples ``rows``."""
        return self.tokenizer([self._example(i)[0] for i in rows])

    def batch(self, idx: Tensor) -> tuple[object, Tensor]:
        rows = idx.tolist()
        return self.inputs(rows), torch.tensor([self._example(i)[1] for i in rows])

    def set_extra(self, texts: Sequence[str], labels: Sequence[int]) -> None:
        """Replace the extra examples (this epoch's adversarial texts) by ``texts`` with ``labels``."""
        if len(texts) != len(labels):
            raise ValueError(f"set_extra: {len(texts)} texts but {len(labels)} labels")
        self.extra_texts, self.extra_labels = list(texts), [int(y) for y in labels]

    def state(self) -> dict:
        return {"texts": self.extra_texts, "labels": self.extra_labels}

    def load_state(self, state: dict) -> None:
        self.set_extra(state["texts"], state["labels"])

    def fingerprint(self) -> dict:
        h = hashlib.sha256(json.dumps([self.texts, self.labels]).encode())
        config = self.tokenizer.config() if hasattr(self.tokenizer, "config") else {"max_len": self.tokenizer.max_len}
        return {"sha256": h.hexdigest(), "n": len(self.texts), "tokenizer": config}


class FrozenFeatures(TextBatches):
    """MiniLM training data: the hidden states after the frozen bottom layers, computed once per text.

    A batch is ((hidden states padded to the batch's longest text, attention mask), labels),
    the input of :class:`TopLayers`.
    """

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer, model, batch_size: int = 64):
        super().__init__(texts, labels, tokenizer)
        self.model, self.cache_batch = model, int(batch_size)
        self.features = self._lower(self.texts)
        self.extra_features: list[Tensor] = []

    def _lower(self, texts: list[str]) -> list[Tensor]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch: less padding
        out: dict[int, Tensor] = {}
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            for b in range(0, len(order), self.cache_batch):
                idx = order[b : b + self.cache_batch]
                enc = self.tokenizer([texts[i] for i in idx])
                h = self.model.lower(enc["input_ids"].to(device), enc["attention_mask"].to(device)).cpu()
                for r, i in enumerate(idx):
                    out[i] = h[r, : int(enc["attention_mask"][r].sum())].clone()
        self.model.train(was_training)
        return [out[i] for i in range(len(texts))]

    def set_extra(self, texts: Sequence[str], labels: Sequence[int]) -> None:
        known = dict(zip(self.extra_texts, self.extra_features))  # a text kept from the last round is not recomputed
        super().set_extra(texts, labels)
        new = list(dict.fromkeys(t for t in self.extra_texts if t not in known))
        known.update(zip(new, self._lower(new)))
        self.extra_features = [known[t] for t in self.extra_texts]

    def inputs(self, rows: list[int]) -> tuple[Tensor, Tensor]:
        base = len(self.texts)
        feats = [self.features[i] if i < base else self.extra_features[i - base] for i in rows]
        h = nn.utils.rnn.pad_sequence(feats, batch_first=True)
        lengths = torch.tensor([len(f) for f in feats])
        return h, (torch.arange(h.shape[1])[None] < lengths[:, None]).long()

    def fingerprint(self) -> dict:
        from advx.text.transformer import base_sha256

        return {**super().fingerprint(), "frozen_layers": self.model.first_trained, "base_sha256": base_sha256()}


class TopLayers(nn.Module):
    """The fine-tuned part of a MiniLM classifier as a module of cached features: ``((h, mask)) -> logits``.

    It registers only the top layers, the dropout and the head (shared with the classifier,
    so training it trains the classifier), so the loop's checkpoints hold what fine-tuning
    changes and not the frozen encoder.
    """

    def __init__(self, model):
        super().__init__()
        self.layers = nn.ModuleList(model.encoder.layers[model.first_trained:])
        self.dropout, self.head = model.dropout, model.head
        self._full = (model,)  # not a submodule

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        h, mask = x
        return self._full[0].upper(h, mask)


@dataclass
class TextTraining:
    """A text model made ready for the one loop."""

    classifier: TorchTextClassifier  #: the whole model: evaluation, attacks, saving
    tokenizer: object
    module: nn.Module  #: what the loop trains: the model itself, or MiniLM's TopLayers
    data: TextBatches
    param_groups: list[dict] | None = None


def prepare(recipe: TextRecipe, train: TextDataset, seed: int = 0, device: str | torch.device = "cpu") -> TextTraining:
    """A fresh model of ``recipe`` (initialised from ``seed``) and its training data from ``train``."""
    if len(train) == 0:
        raise ValueError("train is empty; pass a dataset with at least one example")
    classes = len(train.label_names)
    torch.manual_seed(seed)
    if recipe.architecture == "MiniLM":
        from advx.text.minilm import BertEncoder, minilm_dir
        from advx.text.transformer import MiniLMClassifier, MiniLMTokenizer

        tok = MiniLMTokenizer(recipe.max_len)
        model = MiniLMClassifier(BertEncoder.from_dir(minilm_dir()), classes, recipe.trained_layers).to(device).eval()
        module = TopLayers(model)
        groups = [{"params": list(module.layers.parameters()), "lr_scale": 1.0},
                  {"params": list(module.head.parameters()), "lr_scale": float(recipe.head_lr_scale)}]
        data: TextBatches = FrozenFeatures(train.texts, train.labels, tok, model)
        clf = TorchTextClassifier(model, tok, label_names=train.label_names, batch_size=64)
        return TextTraining(clf, tok, module, data, groups)
    if recipe.architecture == "CharCNN":
        tok = CharTokenizer(max_len=recipe.max_len)
    else:
        tok = WordTokenizer.build(train.texts, recipe.vocab_size, max_len=recipe.max_len)
    model = ARCHITECTURES[recipe.architecture](tok.vocab_size, classes).to(device)
    clf = TorchTextClassifier(model, tok, label_names=train.label_names)
    return TextTraining(clf, tok, model, TextBatches(train.texts, train.labels, tok))


class AdversarialAugmentation:
    """The loop's ``on_epoch_start`` hook for adversarial training on text (see the module docstring).

    Before epoch ``e`` (0-based) with ``e >= start`` and ``(e - start) % every == 0``,
    ``examples`` training texts drawn by a RNG seeded by ``(seed, e)`` are attacked with
    ``attack(classifier, texts, labels) -> results`` on the current model; the successful
    ones join ``data``'s extra examples (``keep="all"``: every round's stay to the end;
    ``keep="round"``: they replace the last round's). The extra examples are the data's
    checkpointed state, so a resumed run trains on the same texts either way.
    """

    def __init__(self, data: TextBatches, classifier, attack: Callable, examples: int = 200, every: int = 1,
                 start: int = 1, seed: int = 0, keep: str = "all"):
        if keep not in ("all", "round"):
            raise ValueError(f"keep must be 'all' (every round's texts stay) or 'round' (each round replaces the "
                             f"last), got {keep!r}")
        for name, value, low in (("examples", examples, 1), ("every", every, 1), ("start", start, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.data, self.classifier, self.attack = data, classifier, attack
        self.examples, self.every, self.start, self.seed, self.keep = examples, every, start, seed, keep
        self.rounds: list[dict] = []  #: {"epoch", "attacked", "added"} per round run in this process

    def due(self, epoch: int) -> bool:
        return epoch >= self.start and (epoch - self.start) % self.every == 0

    def __call__(self, epoch: int, model: nn.Module) -> None:
        if not self.due(epoch):
            return
        base = len(self.data.texts)
        rng = random.Random(f"{self.seed}/{epoch}")
        idx = rng.sample(range(base), min(self.examples, base))
        attacked = getattr(self.classifier, "model", model)
        was_training = attacked.training
        attacked.eval()  # the attack sees the model as it will be evaluated: no dropout
        try:
            results = self.attack(self.classifier, [self.data.texts[i] for i in idx],
                                  [self.data.labels[i] for i in idx])
        finally:
            attacked.train(was_training)
        added = [(r.perturbed, r.label) for r in results if r.status == "succeeded"]
        texts, labels = [t for t, _ in added], [y for _, y in added]
        if self.keep == "all":
            texts, labels = self.data.extra_texts + texts, self.data.extra_labels + labels
        self.data.set_extra(texts, labels)
        self.rounds.append({"epoch": epoch + 1, "attacked": len(idx), "added": len(added)})
        log.info("adversarial augmentation before epoch %d: %d of %d attacked training texts added", epoch + 1,
                 len(added), len(idx))

    def fingerprint(self) -> dict:
        """What a checkpoint of a run with this augmentation is bound to."""
        return {"attack": repr(self.attack), "examples": self.examples, "every": self.every, "start": self.start,
                "seed": self.seed, "keep": self.keep}


def accuracy(clf, data: TextDataset, batch_size: int = 256) -> float:
    """Fraction of ``data`` that ``clf`` classifies right (NaN for no data)."""
    if len(data) == 0:
        return float("nan")
    correct = 0
    for i in range(0, len(data), batch_size):
        pred = clf.predict_proba(data.texts[i : i + batch_size]).argmax(1)
        correct += int((pred == torch.tensor(data.labels[i : i + batch_size])).sum())
    return correct / len(data)
