"""The user's model and data on the command line: ``--mean/--std``, ``--resize/--center-crop``,
``--allow-large-eps``, ``--import MODULE`` (a user's own registered attacks).

The options are in :data:`advx.cli.options.SHARED` (every command that takes
:func:`~advx.cli.options.run_options` has them; values in ``run.extra``).
:func:`load_model_and_data` loads both, applies the normalisation and image
sizing, and runs one forward pass on one sample so a mismatch is one line
naming both shapes; :func:`check_threats` refuses an eps on the wrong scale
(``linf:8`` on [0, 1] data: "did you mean linf:8/255?") unless ``--allow-large-eps``.
"""

from __future__ import annotations

import logging
from typing import Any

import click

log = logging.getLogger(__name__)

__all__ = ["SHARED_OPTIONS", "load_model_and_data", "check_threats", "model_spec_meta"]


def _mean(defaults: dict[str, Any]):
    return click.option("--mean", "mean", default=None, metavar="M[,M,M]",
                        help="The model's input normalisation, per channel (e.g. 0.4914,0.4822,0.4465): "
                             "inputs stay in [0, 1] and the model sees (x - mean) / std. Give with --std.")


def _std(defaults: dict[str, Any]):
    return click.option("--std", "std", default=None, metavar="S[,S,S]",
                        help="Per-channel standard deviation of the normalisation (with --mean).")


def _resize(defaults: dict[str, Any]):
    return click.option("--resize", "resize", default=None, metavar="N|HxW",
                        help="Image folders: resize each image (N: shorter side, aspect kept; HxW: exactly).")


def _center_crop(defaults: dict[str, Any]):
    return click.option("--center-crop", "center_crop", default=None, metavar="N|HxW",
                        help="Image folders: crop the centre N x N (or H x W) after --resize.")


def _import_now(ctx, param, value):
    from advx.zoo.loading import import_user_module  # noqa: PLC0415

    for name in value or ():
        import_user_module(name, f"--import {name!r}")
    return list(value or ())


def _imports(defaults: dict[str, Any]):
    return click.option("--import", "imports", multiple=True, metavar="MODULE", callback=_import_now,
                        is_eager=True, expose_value=True,
                        help="Import MODULE (or path/file.py) from the working directory first, e.g. one whose "
                             "@register'ed attacks --attack/--attacks then name (repeatable).")


def _allow_large_eps(defaults: dict[str, Any]):
    return click.option("--allow-large-eps", "allow_large_eps", is_flag=True,
                        help="Accept a radius that covers half the data range or more (Linf) or the box "
                             "diameter (L2/L1); by default that is refused as the 8-vs-8/255 mistake.")


#: (name, factory) pairs for advx.cli.options.SHARED
SHARED_OPTIONS = [("mean", _mean), ("std", _std), ("resize", _resize), ("center_crop", _center_crop),
                  ("allow_large_eps", _allow_large_eps), ("imports", _imports)]


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {str(k): _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    return d if isinstance(d, (str, int, float, bool)) or d is None else str(d)


def model_spec_meta(spec: str, device: str, *, mean=None, std=None):
    """(model, {"spec", "info"}) for ``--model`` (advx.model.load_model_with_info); bad specs are ValueErrors."""
    from advx.model.loading import load_model_with_info  # noqa: PLC0415

    try:
        model, info = load_model_with_info(spec, device=device, mean=mean, std=std)
    except KeyError as e:
        raise ValueError(f"--model {spec!r}: {e.args[0] if e.args else 'unknown model'}") from None
    return model, {"spec": spec, "info": _jsonable(info)}


DEFAULT_MODEL = "fmnist-cnn"  #: ``--model`` when none is given (the demo's committed CNN)


def default_data(model: str, data: str | None) -> str:
    """``--data``, or, when omitted, the data set a zoo model was trained on (its sidecar says which)."""
    if data:
        return data
    from advx.zoo import ZOO  # noqa: PLC0415

    entry = ZOO.get(model)
    if entry is None:
        raise click.UsageError(f"--data: give the data to attack (a data set name, image folder or .npz/.safetensors "
                               f"file); only a zoo model ({', '.join(ZOO)}) implies its own data set, not {model!r}")
    return entry.data


def load_model_and_data(model: str, data: str, split: str, run, *, device: str | None = None):
    """(model, model metadata, data) for ``--model``/``--data`` with ``run``'s shared options, checked to fit.

    The data's class names go into the model metadata's view of the run through
    ``data.classes``; an ``hf:`` model's own label names are kept in ``info["classes"]``.
    """
    from advx.data import load  # noqa: PLC0415
    from advx.model.loading import check_model_fits  # noqa: PLC0415

    extra = getattr(run, "extra", {}) or {}
    device = device or run.device
    net, meta = model_spec_meta(model, device, mean=extra.get("mean"), std=extra.get("std"))
    ds = load(data, split=split, n=run.n, seed=run.seed, resize=extra.get("resize"),
              center_crop=extra.get("center_crop"))
    if len(ds):
        check_model_fits(net, ds.x, int(ds.y.max()) + 1, model_name=f"--model {model}",
                         data_name=f"--data {data}", info=meta["info"])
    return net, meta, ds


def check_threats(threats, data, run) -> None:
    """Every threat's eps on the data's scale (``Threat.check_scale``), unless ``--allow-large-eps``."""
    allow = bool((getattr(run, "extra", {}) or {}).get("allow_large_eps", False))
    x = getattr(data, "x", None)
    for t in threats:
        check = getattr(t, "check_scale", None)
        if check is not None:
            check(x, allow_large_eps=allow)
