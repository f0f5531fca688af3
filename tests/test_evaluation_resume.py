"""Reliability: atomic checkpoints, resume after SIGKILL, and torchrun sharding give the same numbers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from advx.cli import main
from advx.jobs.run_folder import atomic_save_tensors, atomic_write_text, load_tensors

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["evaluate", "--model", "test_evaluation_models:slow", "--data", "fashion-mnist", "--n", "32",
        "--batch-size", "8", "--threat", "linf:0.03,0.06", "--attacks", "apgd-ce:5,apgd-t:5",
        "--checks", "gradients,randomness,monotone,convergence", "--probe-points", "2", "--no-progress"]


def _env(delay: str = "0") -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", ADVX_TEST_DELAY=delay,
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src"), env.get("PYTHONPATH", "")]))
    return env


def _numbers(out: Path) -> dict:
    report = json.loads((out / "results.json").read_text())
    for key in ("timing", "wall_time_s", "argv", "command_line", "config", "environment"):  # how and where it ran
        report.pop(key)
    return report


@pytest.fixture(scope="module")
def reference(tmp_path_factory, capsys_module=None):
    """One uninterrupted run, in this process (the same code path as the command line)."""
    sys.path.insert(0, str(ROOT / "tests"))
    out = tmp_path_factory.mktemp("reference")
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def test_command_line_prints_the_curve_and_the_checks(reference, capsys):
    assert main([*ARGS, "--out", str(reference), "--resume"]) == 0  # every batch is loaded: nothing recomputed
    out = capsys.readouterr().out
    report = json.loads((reference / "results.json").read_text())
    for r in report["results"]:
        assert r["threat"] in out and f"{100 * r['robust_accuracy']:.1f}%" in out
    assert "convergence" in out and "monotone" in out and "report.html" in out


def test_a_second_run_into_the_same_folder_is_refused_without_resume(reference, capsys):
    assert main([*ARGS, "--out", str(reference)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_strict_exits_with_failure_when_a_check_fires(tmp_path, capsys):
    args = ["evaluate", "--model", "test_evaluation_models:quantized", "--data", "fashion-mnist", "--n", "16",
            "--threat", "linf:0.05", "--attacks", "apgd-ce:3", "--checks", "gradients", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "lenient")]) == 0
    assert main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 1
    captured = capsys.readouterr()
    assert "WARNING" in captured.out and "checks fired: gradients" in captured.err


def test_resume_after_sigkill_gives_the_same_numbers(reference, tmp_path, caplog):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "advx", *ARGS, "--out", str(out)], cwd=ROOT,
                            env=_env(delay="0.01"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not list((out / "batches").glob("batch_*.safetensors")) and time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run ended early: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    finished = list((out / "batches").glob("batch_*.safetensors"))
    assert 1 <= len(finished) < 4 and not (out / "results.json").exists()  # really killed mid-run
    with caplog.at_level("INFO", logger="advx.jobs"):
        assert main([*ARGS, "--out", str(out), "--resume"]) == 0
    assert f"resumed {len(finished)} finished batches" in caplog.text
    assert _numbers(out) == _numbers(reference)


def test_torchrun_with_two_processes_merges_to_the_single_process_report(reference, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    out = tmp_path / "ddp"
    args = ["-n" if a == "--n" else a for a in ARGS]  # torchrun's parser takes --n for its own --nnodes...
    done = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "advx", *args, "--out", str(out)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    assert report["timing"]["world_size"] == 2
    assert _numbers(out) == _numbers(reference)
    assert done.stdout.count("clean accuracy") == 1  # only rank 0 prints


def test_atomic_writes_leave_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "batch.safetensors"
    atomic_save_tensors(path, {"a": torch.arange(3)}, {"k": 1})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_save_tensors(path, {"a": torch.arange(5)}, {"k": 2})
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(tmp_path / "config.json", "{}")
    tensors, meta = load_tensors(path)
    assert tensors["a"].tolist() == [0, 1, 2] and meta == {"k": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.safetensors"]  # no temp files left
