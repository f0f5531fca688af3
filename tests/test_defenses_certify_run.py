"""``advx certify`` and its resumable run: chunks reproduce an uninterrupted run, the report's numbers
are the per-point certificates' numbers, and the largest certifiable radius is the closed form."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from advx.cli import main
from advx.defenses import certified_accuracy, certify
from advx.defenses.certification_run import max_certifiable_radius
from advx.defenses.smoothing import Certificate
from advx.jobs.certify import certify_run


def toy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(14, 1, 4, 4)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 3  # a few wrong labels
    return model.eval(), x, y


def interrupt(model, limit):
    """A forward hook that raises on the model's ``limit``-th call (a crash in the middle of the run; the
    weights, and so the run's fingerprint, stay the model's)."""
    calls = []

    def hook(module, args, output):
        calls.append(1)
        if len(calls) == limit:
            raise RuntimeError("killed")

    return model.register_forward_hook(hook)


def test_resume_after_a_crash_gives_the_uninterrupted_certificates(tmp_path):
    model, x, y = toy()
    kw = dict(sigma=0.5, n0=20, n=200, alpha=0.01, chunk=4, batch_size=64, seed=3)
    whole = certify_run(model, x, y, out_dir=tmp_path / "a", **kw)
    handle = interrupt(model, limit=30)
    with pytest.raises(RuntimeError, match="killed"):
        certify_run(model, x, y, out_dir=tmp_path / "b", **kw)  # 20 calls a chunk: dies in the 2nd
    handle.remove()
    done = sorted(p.name for p in (tmp_path / "b" / "batches").iterdir())
    assert 1 <= len(done) < 4
    resumed = certify_run(model, x, y, out_dir=tmp_path / "b", resume=True, **kw)
    assert resumed["per_sample"] == whole["per_sample"]
    assert resumed["table"] == whole["table"]
    with pytest.raises(ValueError, match="sigma: 0.5 -> 0.25"):
        certify_run(model, x, y, out_dir=tmp_path / "b", resume=True, **{**kw, "sigma": 0.25})


def test_chunks_do_not_change_which_points_are_certified_correctly(tmp_path):
    model, x, y = toy()
    a = certify_run(model, x, y, 0.5, n0=20, n=300, alpha=0.01, chunk=14, seed=1)
    b = certify_run(model, x, y, 0.5, n0=20, n=300, alpha=0.01, chunk=3, seed=1)
    # different noise draws, same model: the curves agree to sampling error, the fields are consistent
    for r in (a, b):
        cert = Certificate(*(torch.tensor(r["per_sample"][k]) for k in ("prediction", "radius", "radius", "count")))
        assert r["table"]["certified_accuracy"] == certified_accuracy(cert, y, r["table"]["radii"])
        assert all(rad <= r["max_certifiable_radius"] + 1e-9 for rad in r["per_sample"]["radius"])
    assert abs(a["smoothed_accuracy"] - b["smoothed_accuracy"]) <= 3 / 14


def test_a_constant_model_reaches_exactly_the_largest_certifiable_radius():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.tensor([5.0, 0.0, 0.0]).expand(len(x), 3)

    x = torch.rand(3, 1, 2, 2)
    cert = certify(Constant().eval(), x, 0.25, n0=10, n=500, alpha=0.001, generator=torch.Generator().manual_seed(0))
    # every sample agrees: Clopper-Pearson lower bound alpha^(1/n), radius sigma * Phi^-1(alpha^(1/n))
    assert torch.allclose(cert.radius, torch.full((3,), max_certifiable_radius(0.25, 500, 0.001), dtype=torch.float64))
    assert max_certifiable_radius(0.25, 10_000, 0.001) == pytest.approx(0.7998, abs=1e-3)


def test_cli_writes_results_and_a_report_whose_table_is_the_certificates(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    out = tmp_path / "cert"
    args = ["certify", "--model", "fmnist-cnn", "--data", "fashion-mnist", "--sigma", "0.1", "--n", "6",
            "--samples", "200", "--n0", "20", "--chunk", "4", "--radii", "0,0.1,0.2", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    r = json.loads((out / "results.json").read_text())
    labels, preds, radius = (torch.tensor(r["per_sample"][k]) for k in ("label", "prediction", "radius"))
    expected = [float(((preds == labels) & (radius >= t)).double().mean()) for t in (0.0, 0.1, 0.2)]
    assert r["table"] == {"radii": [0.0, 0.1, 0.2], "certified_accuracy": expected}
    assert r["settings"]["n"] == 200 and r["settings"]["sigma"] == 0.1 and len(labels) == 6
    assert r["command"] == "certify" and r["argv"] == ["advx", *args]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "advx certify" in page
    assert f"{100 * expected[0]:.1f}%" in page
    assert main(args + ["--resume"]) == 0  # every chunk reused
    assert json.loads((out / "results.json").read_text())["per_sample"] == r["per_sample"]
    assert main(args[:-6] + ["--radii", "0,-1", "--out", str(out)]) == 2  # bad usage
