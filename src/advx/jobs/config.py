"""The typed configuration of a job: what a run is, as JSON, and the exact command line.

A :class:`JobConfig` says everything that decides a run's numbers (model and data
specs with their fingerprints, seed, sample count, batch size, the command's own
options) plus how it was asked for (``argv``, the exact command line) and where it
ran (``device``). ``key()`` is the part that fingerprints the run: ``argv``
(which holds ``--out``/``--resume``) and ``device`` are left out, so resuming
the same run from another shell or device is allowed.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["JobConfig", "SCHEMA_VERSION", "capture_argv", "current_argv", "jsonable", "set_argv"]

#: version of the one results.json schema (docs/results-schema.md)
SCHEMA_VERSION = 2

_ARGV: list[str] | None = None


def set_argv(argv: list[str] | None) -> None:
    """Record the command line of the running ``advx`` invocation (``advx.cli.main`` calls this)."""
    global _ARGV
    _ARGV = None if argv is None else [str(a) for a in argv]


def current_argv() -> list[str] | None:
    """The command line recorded by :func:`set_argv`, or None outside the CLI."""
    return None if _ARGV is None else list(_ARGV)


def capture_argv() -> list[str]:
    """The exact command line: the one ``advx.cli.main`` recorded; outside the CLI, the process's own
    (``python`` + ``sys.argv``: a Python API call is reproduced by running that script again)."""
    argv = current_argv()
    return argv if argv is not None else ["python", *sys.argv]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (tuples -> lists, tensors -> lists, unknown objects -> str)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return str(value)


@dataclass
class JobConfig:
    """What a run is (fingerprinted) and how it was asked for (argv)."""

    command: str  #: "attack", "demo", "evaluate", "certify", "transfer", "text attack", "audio attack", ...
    argv: list[str] = field(default_factory=list)  #: the exact command line (reproduce = run it again)
    model: dict[str, Any] = field(default_factory=dict)  #: spec + resolved fingerprint (weights sha256)
    data: dict[str, Any] = field(default_factory=dict)  #: spec + resolved fingerprint (data sha256)
    seed: int = 0
    n: int | None = None
    batch_size: int = 256
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)  #: everything else the command uses

    def __post_init__(self) -> None:
        for name in ("seed", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1):
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")
        self.argv = [str(a) for a in self.argv]
        self.model, self.data, self.options = jsonable(self.model), jsonable(self.data), jsonable(self.options)
        self.device = str(self.device)

    @property
    def command_line(self) -> str:
        """``argv`` as one shell-quoted line."""
        return shlex.join(self.argv)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"job config: unknown field(s) {unknown}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> JobConfig:
        return cls.from_dict(json.loads(text))

    def key(self) -> dict[str, Any]:
        """The fingerprinted part: everything but ``argv``, ``device`` and the model/data ``sha256``."""
        d = self.to_dict()
        d.pop("argv")
        d.pop("device")
        for part in ("model", "data"):  # their hashes are fingerprinted on their own
            d[part] = {k: v for k, v in d[part].items() if k != "sha256"}
        return d
