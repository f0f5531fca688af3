"""Issue 15's "done when", as a user would do it: an empty directory holding mymodels.py (an RGB CNN) and
images/<class>/*.png; `advx evaluate --model mymodels:build --data images ...` with no environment variable but
ADVX_HOME. Also one real photograph (scikit-learn's sample images) through the RGB path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from advx import PGD, Linf
from advx.data import load

ADVX = Path(sys.executable).parent / "advx"  # the console script: not `python -m`, which would put cwd on sys.path

MYMODELS = """
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3))
"""
CLASSES = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("byo")
    (root / "mymodels.py").write_text(MYMODELS)
    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green", "blue"]):
        (root / "images" / name).mkdir(parents=True)
        for k in range(20):
            a = rng.integers(0, 80, (8, 8, 3)).astype(np.uint8)
            a[..., c] += 150
            Image.fromarray(a).save(root / "images" / name / f"{k:02d}.png")
    return root


def _advx(project: Path, *args: str) -> subprocess.CompletedProcess:
    if not ADVX.exists():
        pytest.skip(f"no advx console script at {ADVX}")
    return subprocess.run([str(ADVX), *args], cwd=project, env={"ADVX_HOME": str(project / "home")},
                          capture_output=True, text=True, timeout=900)


def test_evaluate_own_model_on_an_image_folder_from_its_directory(project):
    p = _advx(project, "evaluate", "--model", "mymodels:build", "--data", "images", "--threat", "linf:8/255",
              "-n", "50")
    assert p.returncode == 0, p.stderr[-3000:]
    run = project / "runs" / "evaluate"
    results = json.loads((run / "results.json").read_text())
    assert (run / "report.html").is_file() and (run / "adversarial.safetensors").is_file()
    text = json.dumps(results)
    assert all(c in text for c in CLASSES)  # the folder names are the class names
    assert "image folder" in text and "mymodels:build" in text


def test_eps_on_the_wrong_scale_exits_2_naming_8_255(project):
    p = _advx(project, "evaluate", "--model", "mymodels:build", "--data", "images", "--threat", "linf:8", "-n", "50",
              "--out", "runs/wrong")
    assert p.returncode == 2 and "8/255" in p.stderr and "--allow-large-eps" in p.stderr, p.stderr[-2000:]
    assert not (project / "runs" / "wrong" / "results.json").exists()


def test_a_model_of_another_shape_is_one_line_naming_both(project):
    p = _advx(project, "attack", "--model", "fmnist-cnn", "--data", "images", "--threat", "linf:8/255", "-n", "6",
              "--out", "runs/shape")
    assert p.returncode == 2, p.stderr[-2000:]
    err = p.stderr.strip().splitlines()[-1]
    assert "(60, 3, 8, 8)" in err or "(6, 3, 8, 8)" in err, err
    assert "(1, 28, 28)" in err and "Traceback" not in p.stderr


def test_attack_with_normalisation_resize_and_class_names_in_the_report(project):
    p = _advx(project, "attack", "--model", "mymodels:build", "--data", "images", "--resize", "8", "--center-crop",
              "8", "--mean", "0.5,0.5,0.5", "--std", "0.25", "--threat", "linf:8/255", "-n", "9", "--out", "runs/norm")
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((project / "runs" / "norm" / "results.json").read_text())
    assert results["model"]["info"]["mean"] == [0.5, 0.5, 0.5] and results["model"]["info"]["std"] == 0.25
    assert results["data"]["classes"] == CLASSES and "resized to 8" in results["data"]["source"]
    html = (project / "runs" / "norm" / "report.html").read_text()
    assert any(c in html for c in CLASSES)
    bad = _advx(project, "attack", "--model", "mymodels:build", "--data", "images", "--mean", "0.5", "--threat",
                "linf:8/255", "-n", "3", "--out", "runs/bad")
    assert bad.returncode == 2 and "--std" in bad.stderr


def test_missing_module_says_where_it_looked(project):
    p = _advx(project, "attack", "--model", "nomodels:build", "--data", "images", "--threat", "linf:8/255", "-n", "6",
              "--out", "runs/missing")
    assert p.returncode == 2 and "working directory" in p.stderr and "nomodels.py" in p.stderr, p.stderr[-2000:]


def _sample_photos() -> list[Path]:
    try:
        folder = resources.files("sklearn.datasets") / "images"
    except ModuleNotFoundError:
        pytest.skip("scikit-learn (its two sample photographs) is not installed")
    photos = [Path(str(folder / n)) for n in ("china.jpg", "flower.jpg")]
    if not all(p.is_file() for p in photos):
        pytest.skip("scikit-learn's sample photographs are missing")
    return photos


def test_real_photographs_through_the_rgb_path(tmp_path):
    """Two real RGB photographs (427 x 640 JPEGs shipped by scikit-learn), resized and cropped by the folder
    reader, through a model defined here and PGD: three channels, inside the ball and the box."""
    for photo in _sample_photos():
        (tmp_path / "photos" / photo.stem).mkdir(parents=True)
        shutil.copy(photo, tmp_path / "photos" / photo.stem / photo.name)
    data = load(tmp_path / "photos", resize=40, center_crop=32)
    assert data.classes == ["china", "flower"] and data.x.shape == (2, 3, 32, 32)
    with Image.open(_sample_photos()[0]) as im:  # the reader's pixels are Pillow's: shorter side 40, centre 32
        w, h = im.size
        ref = im.convert("RGB").resize((round(w * 40 / h), 40), Image.Resampling.BILINEAR)
        left = (ref.size[0] - 32) // 2
        ref = np.asarray(ref.crop((left, 4, left + 32, 36)), dtype=np.float32) / 255
    assert torch.allclose(data.x[0], torch.from_numpy(ref).permute(2, 0, 1))
    channel_means = data.x.mean(dim=(2, 3))
    assert float((channel_means[:, 0] - channel_means[:, 2]).abs().max()) > 0.02  # real colour, not grey
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 15 * 15, 2)).eval()
    result = PGD(Linf(8 / 255), steps=10)(model, data.x, model(data.x).argmax(1))
    assert result.x_adv.shape == data.x.shape
    assert float((result.x_adv - data.x).abs().max()) <= 8 / 255 + 1e-6
    assert float(result.x_adv.min()) >= 0 and float(result.x_adv.max()) <= 1
    assert all(float((result.x_adv - data.x)[:, c].abs().max()) > 0 for c in range(3))

