"""advx transfer: the matrix, its diagonal equal to a direct white-box attack, the page."""

from __future__ import annotations

import json
import re
import sys

import torch

from advx.attacks import MIFGSM
from advx.cli import main
from advx.data import load
from advx.threat import Linf
from advx.zoo import load_model

MODULE = '''
import torch
from advx.zoo import load_model

def noisy():
    """The committed model with its weights jittered: a close cousin that transfer should fool."""
    model = load_model("fmnist-cnn")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * p.abs().mean() * torch.randn(p.shape, generator=g))
    return model
'''


def test_transfer_matrix_diagonal_is_the_white_box_rate(tmp_path, monkeypatch):
    (tmp_path / "cousins.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cousins", None)
    out = tmp_path / "run"
    rc = main(["transfer", "--models", "fmnist-cnn,cousins:noisy", "--data", "fashion-mnist", "--n", "60",
               "--threat", "linf:0.1", "--steps", "5", "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["sources"] == res["targets"] == ["fmnist-cnn", "cousins:noisy"]
    rates = torch.tensor(res["success"])
    assert rates.shape == (2, 2) and bool(((rates >= 0) & (rates <= 1)).all())

    model, data = load_model("fmnist-cnn"), load("fashion-mnist", n=60, seed=0)
    direct = MIFGSM(Linf(0.1), steps=5, seed=0)(model, data.x, data.y)
    right = direct.clean_correct
    assert abs(rates[0, 0].item() - (direct.success & right).sum().item() / right.sum().item()) < 1e-6
    assert rates[1, 0] > 0.3  # a close cousin's examples transfer

    page = (out / "report.html").read_text()  # advx.report's page: each cell names its value in results.json
    cells = re.findall(r'data-path="/success/\d+/\d+" data-fmt="pct"><span class="t">([0-9.]+)%</span>', page)
    assert [float(c) for c in cells[:4]] == [round(100 * v, 1) for row in res["success"] for v in row]
    assert "data:image/png;base64," in page


def test_transfer_bad_threat_is_a_usage_error(tmp_path, capsys):
    rc = main(["transfer", "--models", "fmnist-cnn", "--data", "fashion-mnist", "--threat", "linf:0.1,0.2",
               "--out", str(tmp_path)])
    assert rc == 2
    assert "exactly one radius" in capsys.readouterr().err
