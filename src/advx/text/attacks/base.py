"""The contract every text attack keeps.

``attack(classifier, texts, labels, targets=None)`` returns one
:class:`TextAttackResult` per text. For each text the attack's :meth:`TextAttack.run`
searches through an :class:`AttackState`, which

* counts every text sent to the classifier (``queries``, the clean text
  included) and never sends more than ``query_budget``: when the budget runs
  out mid-search the attack stops and returns the best text it has;
* remembers the first adversarial text it saw, so no found example is lost;
* applies the attack's :class:`~advx.text.constraints.Constraint` objects.

Success is then judged by re-scoring the returned text with the classifier
(a verification pass outside the budget, as the tensor attacks do), never
assumed. Texts the classifier already gets wrong (or already assigns to the
target) are *skipped*: returned unchanged, with status ``"skipped"``.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from advx.text.classifier import TextClassifier, as_classifier, check_texts
from advx.text.constraints import Constraint, Constraints
from advx.text.words import Words, levenshtein

__all__ = ["TextAttack", "TextAttackResult", "Edit", "AttackState", "BudgetExhausted", "summarize"]

log = logging.getLogger(__name__)


@dataclass
class Edit:
    """Word ``word`` (at character ``start`` of the original) changed from ``before`` to ``after``."""

    word: int
    start: int
    before: str
    after: str
    kind: str  #: what produced it: swap, substitute, delete, insert, synonym, neighbour, flip

    @property
    def chars(self) -> int:
        return levenshtein(self.before, self.after)


@dataclass
class TextAttackResult:
    original: str
    perturbed: str
    label: int
    target: int | None
    status: str  #: "succeeded", "failed" or "skipped" (the clean text was already misclassified)
    original_probs: list[float]
    perturbed_probs: list[float]
    queries: int  #: texts scored by the classifier during the attack (clean text included)
    gradients: int  #: gradient evaluations (white-box attacks), each also counted in queries
    edits: list[Edit] = field(default_factory=list)
    num_words: int = 0

    @property
    def success(self) -> bool:
        return self.status == "succeeded"

    @property
    def original_pred(self) -> int:
        return max(range(len(self.original_probs)), key=self.original_probs.__getitem__)

    @property
    def perturbed_pred(self) -> int:
        return max(range(len(self.perturbed_probs)), key=self.perturbed_probs.__getitem__)

    @property
    def words_changed(self) -> int:
        return len(self.edits)

    @property
    def chars_changed(self) -> int:
        return sum(e.chars for e in self.edits)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(original_pred=self.original_pred, perturbed_pred=self.perturbed_pred,
                 words_changed=self.words_changed, chars_changed=self.chars_changed)
        return d


class BudgetExhausted(Exception):
    """Raised inside :meth:`TextAttack.run` when the query budget is spent."""


class AttackState:
    """One text under attack: the classifier behind a counter, the goal, the constraints."""

    def __init__(self, classifier: TextClassifier, original: Words, label: int, target: int | None,
                 constraints: Constraint, query_budget: int | None, rng: random.Random):
        self.classifier, self.original, self.label, self.target = classifier, original, label, target
        self.constraints, self.budget, self.rng = constraints, query_budget, rng
        self.queries = self.gradients = 0
        self.current = original
        self.kinds: dict[int, str] = {}
        self.found: Words | None = None  #: first adversarial text seen
        self.found_kinds: dict[int, str] = {}
        self.clean_probs: Tensor | None = None

    # ------------------------------------------------------------ the goal
    def objective(self, probs: Tensor) -> Tensor:
        """What the attack maximises: 1 - p(label), or p(target) when targeted."""
        return probs[:, self.target] if self.target is not None else 1.0 - probs[:, self.label]

    def adversarial(self, probs: Tensor) -> Tensor:
        pred = probs.argmax(1)
        return pred == self.target if self.target is not None else pred != self.label

    @property
    def remaining(self) -> float:
        return float("inf") if self.budget is None else self.budget - self.queries

    # ------------------------------------------------------- model access
    def predict(self, candidates: Sequence[Words], indices: Sequence[int] | None = None,
                kind: str | Sequence[str] = "edit", probe: bool = False) -> Tensor:
        """Probabilities (n, C) of the candidates, counted; raises BudgetExhausted when the budget runs out.

        Candidates must satisfy the constraints: the first adversarial one is
        kept as a fallback result (``indices``, the word each one modified, and
        ``kind``, one or one per candidate, label its edit). ``probe=True`` marks texts scored only to
        measure something (e.g. word importance by deletion): never results.
        """
        n = min(len(candidates), max(0, int(min(self.remaining, len(candidates)))))
        if n == 0 and candidates:
            raise BudgetExhausted
        probs = self.classifier.predict_proba([c.text for c in candidates[:n]]) if n else torch.zeros(0, 0)
        self.queries += n
        if self.found is None and n and not probe:
            hit = self.adversarial(probs).nonzero()
            if len(hit):
                k = int(hit[0])
                self.found = candidates[k]
                self.found_kinds = dict(self.kinds)
                if indices is not None:
                    self.found_kinds[indices[k]] = kind if isinstance(kind, str) else kind[k]
        if n < len(candidates):
            raise BudgetExhausted
        return probs

    def gradient(self, candidates: Sequence[Words], loss_fn) -> tuple[Tensor, Tensor, Tensor]:
        """White-box: (ids, d loss / d one-hot chars, logits); one query and one gradient per text."""
        if self.remaining < len(candidates):
            raise BudgetExhausted
        ids, grad, logits = self.classifier.char_gradient([c.text for c in candidates], loss_fn)
        self.queries += len(candidates)
        self.gradients += len(candidates)
        return ids, grad, logits

    def token_gradient(self, candidates: Sequence[Words], loss_fn) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """White-box, subword models: (ids, d loss / d input embeddings, logits) per text; one query and
        one gradient per text (a forward and a backward pass)."""
        if self.remaining < len(candidates):
            raise BudgetExhausted
        ids, grad, logits = self.classifier.token_gradient([c.text for c in candidates], loss_fn)
        self.queries += len(candidates)
        self.gradients += len(candidates)
        return ids, grad, logits

    # -------------------------------------------------------- constraints
    def allowed(self, index: int, current: Words | None = None) -> bool:
        return self.constraints.allows(self.original, self.current if current is None else current, index)

    def filter(self, candidates: Sequence[Words], indices: Sequence[int]) -> list[int]:
        """Positions in ``candidates`` that satisfy every constraint."""
        ok = self.constraints.check(self.original, candidates, indices)
        return [k for k, v in enumerate(ok) if v]

    def commit(self, text: Words, index: int | None = None, kind: str = "edit") -> None:
        """Make ``text`` the current text (``index``/``kind`` label the edit for the report)."""
        self.current = text
        if index is not None:
            self.kinds[index] = kind


class TextAttack(ABC):
    """Base class: subclasses implement :meth:`run`, which searches from ``state.current``.

    Args:
        constraints: a Constraint (combine several with ``&`` or a list).
        query_budget: most texts sent to the classifier per example (None: unlimited).
        seed: makes the random choices reproducible; example ``i`` uses ``seed`` and ``i``.
    """

    #: the name of the edits this attack makes (for the report)
    name: str = "attack"
    #: longest text accepted (characters); set on an instance to raise it
    max_text_chars: int = 100_000

    def __init__(self, constraints: Constraint | Sequence[Constraint] | None = None,
                 query_budget: int | None = None, seed: int = 0):
        if constraints is None:
            constraints = Constraints()
        elif not isinstance(constraints, Constraint):
            constraints = Constraints(constraints)
        if query_budget is not None and int(query_budget) < 0:
            raise ValueError(f"query_budget must be >= 0 or None (unlimited), got {query_budget}")
        self.constraints = constraints
        self.query_budget = None if query_budget is None else int(query_budget)
        self.seed = int(seed)

    @abstractmethod
    def run(self, state: AttackState) -> None:
        """Search for an adversarial text, committing edits to ``state``."""

    def check_classifier(self, classifier: TextClassifier) -> None:
        """Hook for attacks that need more than predict_proba (e.g. gradients); raise TypeError if unfit."""
        return None

    def attack_one(self, classifier: TextClassifier, text: str, label: int, target: int | None = None,
                   index: int = 0) -> TextAttackResult:
        original = Words(text)
        rng = random.Random(self.seed * 1_000_003 + index)
        state = AttackState(classifier, original, label, target, self.constraints, self.query_budget, rng)
        skipped = False
        try:
            state.clean_probs = state.predict([original])[0]
            _check_classes(label, target, len(state.clean_probs))
            skipped = bool(state.adversarial(state.clean_probs[None])[0])
            if not skipped:
                self.run(state)
        except BudgetExhausted:
            log.debug("example %d: query budget %s spent", index, self.query_budget)
        # verification, outside the budget: the attack's current text, else the first adversarial text seen
        finals = [original if skipped else state.current]
        if state.found is not None and not skipped and state.found.text != finals[0].text:
            finals.append(state.found)
        probs = classifier.predict_proba([original.text] + [f.text for f in finals])
        _check_classes(label, target, probs.shape[1])
        clean_probs, adv = probs[0], state.adversarial(probs)
        pick = 1 if bool(adv[1]) or len(finals) == 1 else 2
        final, kinds = finals[pick - 1], state.kinds if pick == 1 else state.found_kinds
        if bool(adv[0]):
            final, pick, status = original, 0, "skipped"
        else:
            status = "succeeded" if bool(adv[pick]) else "failed"
        edits = [Edit(i, original.start(i), original[i], final[i], kinds.get(i, "edit")) for i in original.changed(final)]
        probs = probs[pick : pick + 1]
        return TextAttackResult(
            original=text, perturbed=final.text, label=int(label), target=target, status=status,
            original_probs=[round(float(p), 6) for p in clean_probs], perturbed_probs=[round(float(p), 6) for p in probs[0]],
            queries=state.queries, gradients=state.gradients, edits=edits, num_words=len(original))

    def __call__(self, classifier, texts: Sequence[str], labels: Sequence[int],
                 targets: Sequence[int] | None = None) -> list[TextAttackResult]:
        classifier = as_classifier(classifier)
        self.check_classifier(classifier)
        texts = check_texts(texts)
        long = [k for k, t in enumerate(texts) if len(t) > self.max_text_chars]
        if long:
            k = long[0]
            raise ValueError(f"texts[{k}] is {len(texts[k]):,} characters, over max_text_chars={self.max_text_chars:,}: "
                             "every query sends the whole text (one such text can take minutes); shorten it or "
                             "raise the attack's max_text_chars")
        labels = [int(y) for y in (labels.tolist() if isinstance(labels, Tensor) else labels)]
        if len(labels) != len(texts):
            raise ValueError(f"labels has {len(labels)} entries but texts has {len(texts)}; give one label per text")
        if targets is not None:
            targets = [int(t) for t in (targets.tolist() if isinstance(targets, Tensor) else targets)]
            if len(targets) != len(texts):
                raise ValueError(f"targets has {len(targets)} entries but texts has {len(texts)}")
            bad = [k for k, (y, t) in enumerate(zip(labels, targets)) if y == t]
            if bad:
                raise ValueError(f"targets[{bad[0]}] equals the label; a targeted attack needs target != label")
        return [self.attack_one(classifier, text, y, None if targets is None else targets[k], k)
                for k, (text, y) in enumerate(zip(texts, labels))]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _check_classes(label: int, target: int | None, classes: int) -> None:
    for name, v in (("label", label), ("target", target)):
        if v is not None and not 0 <= v < classes:
            raise ValueError(f"{name} {v} is not a class index in [0, {classes - 1}] (the classifier has {classes} classes)")


def summarize(results: Sequence[TextAttackResult]) -> dict:
    """Clean accuracy, accuracy under attack, success rate and mean edits/queries (TextAttack's definitions).

    Success rate and the mean edits are over attacked examples (clean-correct);
    edits are averaged over successful ones, as a percentage of the words too.
    """
    n = len(results)
    attacked = [r for r in results if r.status != "skipped"]
    ok = [r for r in attacked if r.success]
    mean = lambda xs: float(sum(xs) / len(xs)) if xs else float("nan")  # noqa: E731
    return {
        "examples": n,
        "clean_accuracy": len(attacked) / n if n else float("nan"),
        "accuracy_under_attack": sum(r.status == "failed" for r in results) / n if n else float("nan"),
        "success_rate": len(ok) / len(attacked) if attacked else float("nan"),
        "succeeded": len(ok), "failed": len(attacked) - len(ok), "skipped": n - len(attacked),
        "mean_words_changed": mean([r.words_changed for r in ok]),
        "mean_percent_words_changed": 100 * mean([r.words_changed / max(1, r.num_words) for r in ok]),
        "mean_chars_changed": mean([r.chars_changed for r in ok]),
        "mean_queries": mean([r.queries for r in attacked]),
        "mean_words_per_text": mean([r.num_words for r in results]),
    }
