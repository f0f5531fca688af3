"""``advx text attack`` as a job: a recipe's word/character attack on a text classifier, batch by batch.

Example ``i`` draws its randomness from (seed, i) inside the recipe
(``TextAttack.attack_one(..., index=i)``), so a batch gives the same results
wherever it runs; each batch's results are checkpointed as JSON (no tensors: the
edited strings are the adversarial examples, and they live in results.json).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from typing import Any

from advx.jobs.config import JobConfig, capture_argv
from advx.jobs.fingerprint import model_sha256
from advx.jobs.runner import JobOutput, batch_count, batch_slice

__all__ = ["TextAttackJob", "texts_sha256"]


def texts_sha256(texts: list[str], labels: list[int]) -> str:
    """sha256 of the texts and their labels, in order."""
    return hashlib.sha256(json.dumps([list(texts), [int(y) for y in labels]], ensure_ascii=False).encode()).hexdigest()


class TextAttackJob:
    """Attack ``texts`` with ``attack`` (an ``advx.text`` recipe) on ``classifier``, ``batch_size`` texts a batch."""

    label = "advx text attack"

    def __init__(self, classifier, attack, texts: list[str], labels: list[int], *, settings: dict[str, Any],
                 label_names: list[str] | None = None, batch_size: int = 32, seed: int = 0, device: str = "cpu",
                 argv: list[str] | None = None, model_spec: dict[str, Any] | None = None,
                 data_spec: dict[str, Any] | None = None):
        from advx.text.classifier import as_classifier, check_texts  # noqa: PLC0415

        self.classifier = as_classifier(classifier)
        if hasattr(self.classifier, "model") and hasattr(self.classifier, "device"):  # a torch classifier: --device
            import torch  # noqa: PLC0415

            self.classifier.model.to(device)
            self.classifier.device = torch.device(device)
        attack.check_classifier(self.classifier)  # a white-box recipe on a black-box model fails here, not mid-run
        self.attack = attack
        self.texts = check_texts(texts)
        self.labels = [int(y) for y in labels]
        if len(self.labels) != len(self.texts):
            raise ValueError(f"labels has {len(self.labels)} entries but texts has {len(self.texts)}")
        self.label_names = None if label_names is None else [str(n) for n in label_names]
        self.settings = dict(settings)
        weights = getattr(self.classifier, "model", None)
        self.config = JobConfig(
            command="text attack", argv=list(argv) if argv is not None else capture_argv(),
            model={**(model_spec or {}), "sha256": model_sha256(weights if weights is not None else self.classifier)},
            data={**(data_spec or {}), "n": len(self.texts), "sha256": texts_sha256(self.texts, self.labels)},
            seed=int(seed), n=len(self.texts), batch_size=int(batch_size), device=str(device), options=self.settings)
        self.started = time.perf_counter()

    def num_batches(self) -> int:
        return batch_count(len(self.texts), self.config.batch_size)

    def units(self, b: int) -> int:
        rows = batch_slice(b, self.config.batch_size, len(self.texts))
        return rows.stop - rows.start

    def run_batch(self, b: int, tick) -> tuple[dict, dict[str, Any]]:
        rows = batch_slice(b, self.config.batch_size, len(self.texts))
        out = []
        for i in range(rows.start, rows.stop):
            r = self.attack.attack_one(self.classifier, self.texts[i], self.labels[i], None, index=i)
            out.append(asdict(r))
            tick(1)
        return {}, {"results": out}

    def finish(self, records) -> JobOutput:
        from advx.text.attacks import summarize  # noqa: PLC0415
        from advx.text.attacks.base import Edit, TextAttackResult  # noqa: PLC0415
        from advx.text.report import results_document  # noqa: PLC0415

        results = [TextAttackResult(**{**d, "edits": [Edit(**e) for e in d["edits"]]})
                   for b in sorted(records) for d in records[b][1]["results"]]
        summary = summarize(results) | {"seconds": round(time.perf_counter() - self.started, 1)}
        body = results_document(results, summary, self.settings, self.label_names)
        body["settings"] = body.pop("config")  # the command's own settings; "config" is the JobConfig
        return JobOutput(results=body, tensors={}, value=results)
