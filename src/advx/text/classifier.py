"""What text attacks see: a classifier from a list of strings to probabilities.

Any object with ``predict_proba(texts: list[str]) -> Tensor (N, C)`` is a
:class:`TextClassifier`. Adapters:

* :class:`CallableClassifier` -- any Python function of a list of strings that
  returns probabilities or logits (a list, numpy array or tensor): a remote API,
  a scikit-learn pipeline, anything.
* :class:`TorchTextClassifier` -- a torch module plus a tokenizer (a callable
  from strings to the module's input). When the module has
  ``forward_one_hot`` and the tokenizer is character-level, it is also
  differentiable in the one-hot characters (white-box attacks such as HotFlip).
* :class:`advx.text.hf.HuggingFaceClassifier` -- a local ``transformers``
  sequence-classification directory (optional extra, offline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from advx.model import attack_mode

__all__ = ["TextClassifier", "CallableClassifier", "TorchTextClassifier", "as_classifier", "check_texts"]


@runtime_checkable
class TextClassifier(Protocol):
    """Maps N texts to class probabilities of shape (N, C)."""

    def predict_proba(self, texts: list[str]) -> Tensor: ...


def check_texts(texts, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got a single str; wrap it: [{name}]")
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{name} must be a list of str")
    return list(texts)


def _to_proba(out, n: int, outputs: str) -> Tensor:
    p = out if isinstance(out, Tensor) else torch.as_tensor(out)
    p = p.detach().float().cpu()
    if p.dim() != 2 or p.shape[0] != n:
        raise ValueError(f"classifier must return an (N, C) = ({n}, C) array, got shape {tuple(p.shape)}")
    if outputs == "logits":
        return p.softmax(dim=1)
    if bool((p < -1e-6).any()) or not torch.allclose(p.sum(1), torch.ones(n), atol=1e-3):
        raise ValueError("classifier returned rows that are not probabilities; pass outputs='logits' if it returns scores")
    return p


class CallableClassifier:
    """Wrap ``fn(list[str]) -> (N, C)`` probabilities (or logits with ``outputs='logits'``)."""

    def __init__(self, fn: Callable[[list[str]], object], outputs: str = "proba", batch_size: int = 256,
                 label_names: Sequence[str] | None = None):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if outputs not in ("proba", "logits"):
            raise ValueError(f"outputs must be 'proba' or 'logits', got {outputs!r}")
        self.fn, self.outputs, self.batch_size = fn, outputs, int(batch_size)
        self.label_names = tuple(label_names) if label_names else None

    def predict_proba(self, texts: list[str]) -> Tensor:
        texts = check_texts(texts)
        if not texts:
            return torch.zeros(0, len(self.label_names or ()) or 0)
        parts = [_to_proba(self.fn(texts[i : i + self.batch_size]), len(texts[i : i + self.batch_size]), self.outputs)
                 for i in range(0, len(texts), self.batch_size)]
        return torch.cat(parts)


class TorchTextClassifier:
    """A torch module and its tokenizer; the module runs in eval mode without parameter gradients."""

    def __init__(self, model: nn.Module, tokenizer: Callable[[list[str]], object], batch_size: int = 128,
                 device: str | torch.device | None = None, label_names: Sequence[str] | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(tokenizer):
            raise TypeError(f"tokenizer must be callable (list[str] -> model input), got {type(tokenizer).__name__}")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, int(batch_size)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.label_names = tuple(label_names) if label_names else None

    def _inputs(self, texts: list[str]):
        enc = self.tokenizer(texts)
        if isinstance(enc, dict):
            return {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in enc.items()}
        return enc.to(self.device)

    def logits(self, texts: list[str]) -> Tensor:
        texts = check_texts(texts)
        outs = []
        with attack_mode(self.model) as m, torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                enc = self._inputs(texts[i : i + self.batch_size])
                out = m(**enc) if isinstance(enc, dict) else m(enc)
                outs.append(getattr(out, "logits", out).float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, 0)

    def predict_proba(self, texts: list[str]) -> Tensor:
        return self.logits(texts).softmax(dim=1)

    # ----------------------------------------------------------- white box
    @property
    def differentiable_chars(self) -> bool:
        return hasattr(self.model, "forward_one_hot") and getattr(self.tokenizer, "kind", None) == "char"

    def char_gradient(self, texts: list[str], loss_fn: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(ids (N, L), d loss / d one-hot (N, L, V), logits) for a character-level model.

        ``loss_fn`` maps logits (N, C) to a per-sample loss (N,) to maximise.
        """
        if not self.differentiable_chars:
            raise TypeError("char_gradient needs a character tokenizer and a model with forward_one_hot (e.g. CharCNN)")
        ids = self.tokenizer(check_texts(texts)).to(self.device)
        with attack_mode(self.model) as m, torch.enable_grad():
            one_hot = nn.functional.one_hot(ids, self.tokenizer.vocab_size).float().requires_grad_(True)
            logits = m.forward_one_hot(one_hot)
            (grad,) = torch.autograd.grad(loss_fn(logits).sum(), one_hot)
        return ids.cpu(), grad.cpu(), logits.detach().cpu()


    # ---------------------------------------------- white box, subword models
    @property
    def differentiable_tokens(self) -> bool:
        """Gradients w.r.t. the input token embeddings: a Hugging Face-style model
        (``get_input_embeddings()``, ``inputs_embeds=``) and a tokenizer that maps tokens back to characters."""
        return (hasattr(self.model, "get_input_embeddings") and hasattr(self.tokenizer, "spans")
                and hasattr(self.tokenizer, "piece_ids"))

    def embedding_matrix(self) -> Tensor:
        """The input token embeddings (V, D), detached."""
        return self.model.get_input_embeddings().weight.detach()

    def token_gradient(self, texts: list[str], loss_fn: Callable[[Tensor], Tensor]) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """(ids per text (T_i,), d loss / d input embeddings per text (T_i, D), logits (N, C)).

        One forward and one backward pass over the batch; ``loss_fn`` maps
        logits to a per-sample loss to maximise. Padding is cut off each row.
        """
        if not self.differentiable_tokens:
            raise TypeError("token_gradient needs a model with get_input_embeddings() and inputs_embeds= "
                            "(MiniLM reference models, Hugging Face classifiers) and a tokenizer with spans()")
        enc = self._inputs(check_texts(texts))
        ids = enc.pop("input_ids")
        with attack_mode(self.model) as m, torch.enable_grad():
            emb = m.get_input_embeddings()(ids).detach().requires_grad_(True)
            out = m(inputs_embeds=emb, **enc)
            logits = getattr(out, "logits", out).float()
            (grad,) = torch.autograd.grad(loss_fn(logits).sum(), emb)
        lengths = enc["attention_mask"].sum(1).tolist() if "attention_mask" in enc else [ids.shape[1]] * len(ids)
        return ([ids[r, : int(n)].cpu() for r, n in enumerate(lengths)],
                [grad[r, : int(n)].float().cpu() for r, n in enumerate(lengths)], logits.detach().cpu())


def as_classifier(obj) -> TextClassifier:
    """``obj`` if it has ``predict_proba``, else a :class:`CallableClassifier` around a callable."""
    if isinstance(obj, TextClassifier):
        return obj
    if isinstance(obj, nn.Module):
        raise TypeError("a torch module needs its tokenizer: use TorchTextClassifier(model, tokenizer)")
    if callable(obj):
        return CallableClassifier(obj)
    raise TypeError(f"classifier must have predict_proba(list[str]) or be callable, got {type(obj).__name__}")
