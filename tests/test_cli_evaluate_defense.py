"""``advx evaluate --defense``: the model behind input transformations, evaluated as is (and flagged)
or adaptively (BPDA/EOT), on the same points."""

from __future__ import annotations

import json

import pytest
import torch

from advx.cli import main
from advx.defenses import JPEG, BitDepth, GaussianNoise, MedianFilter, parse_transforms


def _evaluate(tmp_path, name, *extra):
    out = tmp_path / name
    args = ["evaluate", "--model", "fmnist-cnn", "--data", "fashion-mnist", "--threat", "linf:0.1", "-n", "32",
            "--attacks", "apgd-ce:10", "--checks", "gradients,unbounded", "--probe-points", "4", "--no-progress",
            "--out", str(out), *extra]
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())


def test_bit_depth_is_flagged_as_is_and_broken_adaptively(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    plain = _evaluate(tmp_path, "plain", "--defense", "bit-depth:3")
    adaptive = _evaluate(tmp_path, "adaptive", "--defense", "bit-depth:3", "--adaptive")
    assert set(plain["flags"]) == {"gradients", "unbounded"}  # rounding zeroes every input gradient
    assert adaptive["flags"] == []  # BPDA's gradients are usable
    assert adaptive["results"][0]["robust_accuracy"] < plain["results"][0]["robust_accuracy"] - 0.3
    assert plain["clean_accuracy"] == adaptive["clean_accuracy"]  # BPDA keeps the forward values
    assert plain["settings"]["description"]["defense"] == "bit-depth:3"
    page = " ".join((tmp_path / "adaptive" / "report.html").read_text().split())
    assert "fmnist-cnn behind bit-depth:3 (attacked adaptively: BPDA/EOT)" in page


def test_bad_defense_specs_are_usage_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    base = ["evaluate", "--model", "fmnist-cnn", "--data", "fashion-mnist", "--threat", "linf:0.1", "-n", "4",
            "--out", str(tmp_path / "x")]
    assert main(base + ["--defense", "blur:3"]) == 2
    assert main(base + ["--defense", "jpeg:high"]) == 2
    assert main(base + ["--adaptive"]) == 2  # nothing to adapt to


def test_parse_transforms_builds_the_named_transforms_in_order():
    ts = parse_transforms("median:2,jpeg:60,bit-depth:4,noise:0.05", bounds=(0.0, 1.0))
    assert [type(t) for t in ts] == [MedianFilter, JPEG, BitDepth, GaussianNoise]
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(ts[2](x), torch.round(x * 15) / 15)  # 4 bits: 16 levels
    with pytest.raises(ValueError, match="bit-depth:BITS"):
        parse_transforms("bitdepth:3")
