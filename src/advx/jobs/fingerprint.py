"""What a run measures, as hashes: config, model weights, data, advx version.

:func:`fingerprint` binds a run folder to one run. Every batch checkpoint carries
it, so a resume under another threat, model, data set or advx version is refused
even when the folder's ``fingerprint.json`` (or an old ``config.json``) is gone,
and :meth:`Fingerprint.differences` says which of the four differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from advx.jobs.config import JobConfig, jsonable

__all__ = ["Fingerprint", "fingerprint", "model_sha256", "data_sha256", "config_sha256", "tensor_sha256"]


def _update(h, t: Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def tensor_sha256(*tensors: Tensor) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for t in tensors:
        _update(h, t)
    return h.hexdigest()


def model_sha256(model: Any) -> str:
    """sha256 of a model's class name and every weight and buffer (name, dtype, shape, bytes).

    A plain callable without a ``state_dict`` is fingerprinted by its qualified name only.
    """
    h = hashlib.sha256(type(model).__qualname__.encode())
    state = getattr(model, "state_dict", None)
    if callable(state):
        for name, t in sorted(state().items()):
            if isinstance(t, Tensor):
                h.update(name.encode())
                _update(h, t)
    return h.hexdigest()


def data_sha256(*tensors: Tensor | None) -> str:
    """sha256 of the data tensors (inputs, labels, targets ...), in order; None entries are skipped."""
    return tensor_sha256(*(t for t in tensors if t is not None))


def config_sha256(config: JobConfig | dict[str, Any]) -> str:
    key = config.key() if isinstance(config, JobConfig) else jsonable(config)
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _version() -> str:
    from advx._version import __version__  # noqa: PLC0415

    return __version__


def _paths(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _paths(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    if a != b:
        text = f"{prefix[:-1]}: {_short(a)} -> {_short(b)}"
        return [text]
    return []


def _short(v: Any, limit: int = 60) -> str:
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Fingerprint:
    """The four hashes that bind a run; ``key`` (the fingerprinted config itself) names a config change."""

    config: str
    model: str
    data: str
    version: str
    key: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.config}|{self.model}|{self.data}|{self.version}".encode()).hexdigest()

    def to_dict(self, with_key: bool = True) -> dict[str, Any]:
        d = {"digest": self.digest, "config": self.config, "model": self.model, "data": self.data,
             "version": self.version}
        if with_key:
            d["key"] = self.key
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fingerprint:
        try:
            return cls(str(d["config"]), str(d["model"]), str(d["data"]), str(d["version"]), dict(d.get("key") or {}))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a run fingerprint: {e}") from None

    def differences(self, old: Fingerprint) -> list[str]:
        """What differs between ``old`` (the folder's run) and this one, in words; [] if the same run."""
        out = []
        if old.config != self.config:
            changed = _paths(old.key, self.key) if old.key and self.key else []
            changed = [c for c in changed if not c.startswith(("model.", "data."))] or changed
            out.append("configuration (" + ("; ".join(changed[:6]) if changed else
                                            "threats, attacks, seed, n or options") + ")")
        if old.model != self.model:
            out.append(f"model weights (sha256 {old.model[:12]} -> {self.model[:12]})")
        if old.data != self.data:
            out.append(f"data (sha256 {old.data[:12]} -> {self.data[:12]})")
        if old.version != self.version:
            out.append(f"advx version ({old.version} -> {self.version})")
        return out


def fingerprint(config: JobConfig, model: Any = None, data: Any = None) -> Fingerprint:
    """The run's fingerprint: config hash + model weights sha256 + data sha256 + advx version.

    ``model``: an ``nn.Module`` (or callable), or a precomputed sha256 string; ``data``: a
    tensor, a tuple of tensors (x, y[, target]), an object with ``.x``/``.y``, or a sha256 string.
    """
    if isinstance(model, str):
        m = model
    elif model is None:
        m = str(config.model.get("sha256", ""))
    else:
        m = model_sha256(model)
    if isinstance(data, str):
        d = data
    elif data is None:
        d = str(config.data.get("sha256", ""))
    elif isinstance(data, Tensor):
        d = data_sha256(data)
    elif isinstance(data, (tuple, list)):
        d = data_sha256(*data)
    elif hasattr(data, "x") and hasattr(data, "y"):
        d = data_sha256(data.x, data.y)
    else:
        raise TypeError(f"fingerprint: data must be tensors or an object with .x/.y, got {type(data).__name__}")
    return Fingerprint(config_sha256(config), m, d, _version(), config.key())
