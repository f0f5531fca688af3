"""Damaged model files and oversized -n get errors (or warnings) that name the file and the option."""

from __future__ import annotations

import logging
import pickle
import shutil

import numpy as np
import pytest

from advx.cli import main
from advx.data import load
from advx.zoo import load_model, weights_path


def test_a_truncated_safetensors_model_is_named_and_exits_2(tmp_path, capsys):
    src = weights_path("fmnist-cnn")
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(src.read_bytes()[:1000])
    shutil.copy(src.with_suffix(".json"), tmp_path / "trunc.json")
    with pytest.raises(ValueError, match="trunc.safetensors: not a readable safetensors file"):
        load_model(str(bad))
    rc = main(["attack", "--model", str(bad), "--data", "fashion-mnist", "--threat", "linf:0.1", "-n", "2",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "trunc.safetensors" in capsys.readouterr().err


def test_a_pickle_named_pt2_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    bad = tmp_path / "m.pt2"
    bad.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError, match="m.pt2: not a torch.export archive"):
        load_model(str(bad))
    assert not (tmp_path / "pwned").exists()


def test_n_beyond_a_files_rows_is_said_not_silent(tmp_path, caplog):
    path = tmp_path / "d30.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((30, 1, 28, 28), dtype=np.float32), y=np.arange(30) % 10)
    with caplog.at_level(logging.WARNING):
        data = load(str(path), n=1_000_000)
    assert len(data) == 30
    assert "-n 1000000 asked, it holds 30 rows" in caplog.text and "-n 1000000 asked" in data.source
    assert len(load(str(path), n=7)) == 7 and "asked" not in load(str(path), n=7).source
