"""Bring your own model: module:function from the working directory, hf: image classifiers, --mean/--std,
sidecar validation, and the one-sample shape check."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from advx.model import Normalized, check_model_fits, load_model, load_model_with_info
from advx.zoo import build, save_model, validate_sidecar
from advx.zoo.loading import import_callable

MODULE = """
import torch
from torch import nn

def build(classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, classes))

NOT_A_MODEL = 3
"""


@pytest.fixture
def in_project(tmp_path, monkeypatch):
    """An empty working directory holding one user module, byo_models_h5.py (unique name: no stale import)."""
    name = f"byo_models_h5_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def test_module_function_resolved_from_the_working_directory_and_sys_path_restored(in_project, tmp_path):
    before = list(sys.path)
    model = load_model(f"{in_project}:build")
    assert sys.path == before  # cwd was first only for the import
    assert isinstance(model, nn.Sequential) and not model.training
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 3)
    by_file = load_model(f"{tmp_path / (in_project + '.py')}:build")
    assert torch.equal(by_file[0].weight, model[0].weight)
    helper = f"{in_project}_layers"
    (tmp_path / f"{helper}.py").write_text("from torch import nn\nHEAD = nn.Identity\n")
    (tmp_path / f"{in_project}_lazy.py").write_text(
        f"from torch import nn\ndef build():\n    from {helper} import HEAD  # imported only when called\n"
        "    return nn.Sequential(nn.Flatten(), HEAD())\n")
    assert isinstance(load_model(f"{in_project}_lazy:build")[1], nn.Identity) and sys.path == before
    sys.modules.pop(helper, None), sys.modules.pop(f"{in_project}_lazy", None)


def test_module_function_errors_say_what_failed(in_project, tmp_path):
    with pytest.raises(ValueError, match=r"no module 'nowhere_h5' in the working directory .*nowhere_h5\.py"):
        load_model("nowhere_h5:build")
    with pytest.raises(ValueError, match=r"has no attribute 'biuld'; it defines build"):
        load_model(f"{in_project}:biuld")
    with pytest.raises(TypeError, match="returned int, expected a torch.nn.Module"):
        load_model(f"{in_project}:NOT_A_MODEL")
    (tmp_path / "broken_h5.py").write_text("import not_installed_pkg_h5\n")
    with pytest.raises(ValueError, match=r"importing broken_h5 failed: .*not_installed_pkg_h5"):
        import_callable("broken_h5:build")
    sys.modules.pop("broken_h5", None)


def test_mean_std_wrap_the_model_in_normalized(in_project):
    mean, std = [0.4914, 0.4822, 0.4465], [0.247, 0.243, 0.261]
    plain = load_model(f"{in_project}:build")
    model, info = load_model_with_info(f"{in_project}:build", mean="0.4914,0.4822,0.4465", std=std)
    assert isinstance(model, Normalized) and info["mean"] == mean
    x = torch.rand(2, 3, 8, 8)
    expected = plain((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert torch.allclose(model(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="both --mean and --std"):
        load_model(f"{in_project}:build", mean="0.5")
    with pytest.raises(ValueError, match="--std 'a,b'"):
        load_model(f"{in_project}:build", mean="0.5", std="a,b")


def test_sidecar_mean_std_applied_and_fields_validated(tmp_path):
    torch.manual_seed(0)
    net = build("lenet", in_channels=3, num_classes=4, size=16)
    path = save_model(net, tmp_path / "m.safetensors", "lenet",
                      {"in_channels": 3, "num_classes": 4, "size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.2] * 3})
    model = load_model(path)
    x = torch.rand(2, 3, 16, 16)
    assert isinstance(model, Normalized) and torch.allclose(model(x), net((x - 0.5) / 0.2), atol=1e-5)
    side = tmp_path / "m.json"
    good = json.loads(side.read_text())
    for bad, match in [({"num_classes": 1e9}, "'num_classes' must be an integer in 1..100000, got 1000000000.0"),
                       ({"num_classes": True}, "'num_classes' must be an integer"),
                       ({"size": 100000}, "'size' must be an integer in 4..512"),
                       ({"in_channels": "3"}, "'in_channels' must be an integer"),
                       ({"arch": "resnet"}, "'arch' must be one of"),
                       ({"std": [0.2, 0.0, 0.2]}, "'std' must be > 0"),
                       ({"mean": [0.5, 0.5]}, "2 values for 3 input channels"),
                       ({"classes": ["a"]}, "1 'classes' for num_classes 4")]:
        side.write_text(json.dumps(good | bad))
        with pytest.raises(ValueError, match=match):
            load_model(path)
    side.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        load_model(path)
    side.write_text("{" * 10)
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(path)
    assert validate_sidecar({"arch": "lenet", "num_classes": 10, "extra": [1]})["extra"] == [1]


def test_header_metadata_is_validated_too(tmp_path):
    path = tmp_path / "h.safetensors"
    save_file({"w": torch.zeros(1)}, str(path), metadata={"metadata": json.dumps({"arch": "lenet",
                                                                                  "num_classes": 10 ** 9})})
    with pytest.raises(ValueError, match="header: 'num_classes' must be an integer"):
        load_model(path)


def test_one_sample_check_names_both_shapes():
    lenet = build("lenet")  # 1 x 28 x 28
    x = torch.rand(5, 3, 32, 32)
    with pytest.raises(ValueError, match=r"data is \(5, 3, 32, 32\).*expects inputs \(1, 28, 28\)"):
        check_model_fits(lenet, x, model_name="--model fmnist-cnn", data_name="--data x.npz",
                         info={"in_channels": 1, "size": 28})
    with pytest.raises(ValueError, match=r"first convolution takes 1 channels"):
        check_model_fits(lenet, x)
    assert check_model_fits(lenet, torch.rand(2, 1, 28, 28), 10) == 10
    with pytest.raises(ValueError, match="labels up to 11, but the model outputs 10 logits"):
        check_model_fits(lenet, torch.rand(2, 1, 28, 28), 12)
    with pytest.raises(ValueError, match=r"must return logits of shape \(N, classes\)"):
        check_model_fits(nn.Flatten(0), torch.rand(2, 1, 28, 28))
    lenet.train()
    check_model_fits(lenet, torch.rand(1, 1, 28, 28))
    assert lenet.training  # the model's mode is handed back


# ----------------------------------------------------------------------------- hf:
def _tiny_vit(folder, size=16):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(image_size=size, patch_size=8, num_channels=3, hidden_size=16,
                                    num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, num_labels=3,
                                    id2label={0: "cat", 1: "dog", 2: "frog"}, label2id={"cat": 0, "dog": 1, "frog": 2})
    torch.manual_seed(0)
    net = transformers.ViTForImageClassification(config).eval()
    net.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5, 0.4, 0.3],
                                   image_std=[0.2, 0.25, 0.3]).save_pretrained(folder)
    return net


def test_hf_image_classifier_applies_processor_normalisation_and_size(tmp_path):
    net = _tiny_vit(tmp_path / "vit")
    model, info = load_model_with_info(f"hf:{tmp_path / 'vit'}")
    assert info["classes"] == ["cat", "dog", "frog"] and info["size"] == [16, 16] and info["in_channels"] == 3
    assert info["mean"] == [0.5, 0.4, 0.3] and isinstance(model, Normalized)
    x = torch.rand(2, 3, 16, 16)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), net(pixel_values=(x - mean) / std).logits, atol=1e-5)
        big = torch.rand(1, 3, 32, 32)  # resized inside the model to the processor's 16 x 16
        small = nn.functional.interpolate(big, size=(16, 16), mode="bilinear", align_corners=False)
        assert torch.allclose(model(big), net(pixel_values=(small - mean) / std).logits, atol=1e-5)
    x.requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # attacks see the whole pipeline
    override, info = load_model_with_info(f"hf:{tmp_path / 'vit'}", mean="0", std="1")
    assert info["mean"] == 0.0


def test_hf_errors(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="config.json and model.safetensors"):
        load_model(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(ValueError, match="folder or hub id"):
        load_model("hf:")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'advx\[hf\]'"):
        load_model(f"hf:{tmp_path / 'empty'}")


def test_import_advx_does_not_import_transformers():
    import subprocess

    code = "import advx, sys; assert 'transformers' not in sys.modules, 'transformers imported'"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
