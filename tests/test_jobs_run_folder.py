"""One run folder for every command: locked, bound to its fingerprint, checksummed, never silently mixed.

Every image command (``attack``, ``evaluate``, ``certify``, ``transfer``) runs on a tiny
linear model (``module:function``) and an 8-image ``.npz`` file, ``text attack`` on the
committed word CNN and 4 real tweets, so each run takes about a second; the folder
rules are the job runner's, shared by all of them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from advx.cli import main
from advx.jobs import JobConfig, JobOutput, RunFolderError, run_job
from advx.jobs.run_folder import LOCK_NAME

MODELS = '''
import os
import torch
from torch import nn

def linear(seed=None):
    """A fixed random linear classifier on 1x8x8 images (weights seeded by ADVX_TEST_WEIGHTS)."""
    g = torch.Generator().manual_seed(int(os.environ.get("ADVX_TEST_WEIGHTS", "0")) if seed is None else seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(3, 64, generator=g))
        model[1].bias.zero_()
    return model.eval()

def other():
    return linear(seed=7)
'''


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """(model spec, data file): a module:function linear model and 8 images labelled by it (two wrong)."""
    mod = tmp_path / "advx_jobs_test_models.py"
    mod.write_text(textwrap.dedent(MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("advx_jobs_test_models", None)
    monkeypatch.delenv("ADVX_TEST_WEIGHTS", raising=False)
    import advx_jobs_test_models as m

    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = m.linear()(x).argmax(1)
    y[:2] = (y[:2] + 1) % 3
    data = tmp_path / "tiny.npz"
    np.savez(data, x=x.numpy(), y=y.numpy())
    return "advx_jobs_test_models:linear", str(data)


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def command_args(kind: str, model: str, data: str) -> list[str]:
    """A tiny but real run of each command."""
    common = ["--data", data, "-n", "8", "--batch-size", "4"]
    if kind == "attack":
        return ["attack", "--model", model, *common, "--attack", "fgsm,pgd", "--threat", "linf:0.1", "--steps", "2"]
    if kind == "evaluate":
        return ["evaluate", "--model", model, *common, "--threat", "linf:0.1", "--attacks", "fgsm", "--checks",
                "none", "--no-progress"]
    if kind == "certify":
        return ["certify", "--model", model, "--data", data, "-n", "8", "--sigma", "0.25", "--samples", "40",
                "--n0", "8", "--chunk", "4", "--batch-size", "40", "--no-progress"]
    if kind == "text attack":  # the committed word CNN on real tweets
        return ["text", "attack", "--model", "tweets-wordcnn", "--recipe", "deepwordbug", "-n", "4", "--budget", "30",
                "--batch-size", "2", "--no-progress"]
    return ["transfer", "--models", f"{model},advx_jobs_test_models:other", *common, "--attack", "pgd",
            "--threat", "linf:0.1", "--steps", "2", "--no-progress"]


COMMANDS = ("attack", "evaluate", "certify", "transfer", "text attack")
#: where each command's numbers are in results.json
NUMBERS = {"attack": lambda r: [{k: v for k, v in run["metrics"].items() if k != "time_s"} for run in r["runs"]],
           "evaluate": lambda r: [r["results"], r["per_sample"]],
           "certify": lambda r: [r["table"], r["per_sample"]],
           "transfer": lambda r: [r["success"], r["clean_accuracy"], r["n"]],
           "text attack": lambda r: [{k: v for k, v in r["summary"].items() if k != "seconds"}, r["results"]]}


# ---------------------------------------------------------------- every command
@pytest.mark.parametrize("kind", COMMANDS)
def test_every_command_writes_the_three_files_and_its_argv_reproduces_the_numbers(kind, tiny, tmp_path, capsys):
    args = [*command_args(kind, *tiny), "--out", str(tmp_path / "run")]
    rc, _, err = cli(capsys, *args)
    assert rc == 0, err
    out = tmp_path / "run"
    results = json.loads((out / "results.json").read_text())
    assert (out / "report.html").stat().st_size > 1000
    assert results["schema_version"] == 2 and results["command"] == kind
    assert results["argv"] == ["advx", *args] and results["config"]["argv"] == results["argv"]
    assert len(results["fingerprint"]["model"]) == 64 and len(results["fingerprint"]["data"]) == 64
    if kind == "text attack":  # the adversarial examples are the edited strings, in results.json
        assert len(results["results"]) == 4 and all(isinstance(r["perturbed"], str) for r in results["results"])
    else:
        t = load_file(str(out / "adversarial.safetensors"))
        assert t["x"].shape == (8, 1, 8, 8) and t["y"].shape == (8,)
    if kind not in ("certify", "text attack"):  # certify has certificates, not adversarial examples
        adv = [k for k in t if "x_adv" in k and not k.startswith("examples/")]  # (examples/: the page's few)
        assert adv and all(float((t[k] - t["x"]).abs().max()) <= 0.1 + 1e-6 for k in adv)
    argv = list(results["argv"])
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    rc, _, err = cli(capsys, *argv[1:])
    assert rc == 0, err
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert NUMBERS[kind](again) == NUMBERS[kind](results)


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_non_empty_out_needs_resume_or_overwrite(kind, tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = [*command_args(kind, *tiny), "--out", str(out)]
    rc, _, err = cli(capsys, *args)
    assert rc == 2 and "is not empty" in err and "--resume" in err and "--overwrite" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written
    rc, _, err = cli(capsys, *args, "--overwrite")
    assert rc == 0, err
    assert (out / "results.json").exists() and (out / "notes.txt").read_text() == "mine"  # only advx's files go
    assert not (out / LOCK_NAME).exists()  # released
    rc, _, err = cli(capsys, *args, "--resume", "--overwrite")
    assert rc == 2 and "not both" in err


# ------------------------------------------------------------------------ locks
def test_a_lock_held_by_a_live_process_exits_2_naming_it(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                 "command": "advx evaluate --other-run"}))
        rc, _, err = cli(capsys, *command_args("attack", *tiny), "--out", str(out), "--resume")
    finally:
        holder.kill()
        holder.wait()
    assert rc == 2, err
    assert f"pid {holder.pid}" in err and socket.gethostname() in err and "advx evaluate --other-run" in err
    assert not (out / "results.json").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tiny, tmp_path, capsys, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "command": "advx x"}))
    with caplog.at_level(logging.WARNING, logger="advx.jobs"):
        rc, _, err = cli(capsys, *command_args("attack", *tiny), "--out", str(out))
    assert rc == 0, err
    assert f"taking over the stale lock of pid {dead.pid}" in caplog.text
    assert (out / "results.json").exists() and not (out / LOCK_NAME).exists()


# ------------------------------------------------------------- fingerprint binding
@pytest.mark.parametrize("change, needle", [
    ("threat", "configuration (options.jobs: "),
    ("model", "model weights (sha256"),
    ("data", "data (sha256"),
    ("version", "advx version (0.1.0 -> 9.9.9)"),
])
def test_resume_of_another_run_exits_2_naming_what_differs(change, needle, tiny, tmp_path, capsys, monkeypatch):
    model, data = tiny
    out = tmp_path / "run"
    args = command_args("attack", model, data)
    assert cli(capsys, *args, "--out", str(out))[0] == 0
    if change == "threat":
        args[args.index("linf:0.1")] = "linf:0.3"
    elif change == "model":
        monkeypatch.setenv("ADVX_TEST_WEIGHTS", "5")  # same spec, other weights
    elif change == "data":
        with np.load(data) as z:
            x, y = z["x"].copy(), z["y"]
        x[0, 0, 0, 0] = 1.0 - x[0, 0, 0, 0]
        np.savez(data, x=x, y=y)
    else:
        import advx._version

        monkeypatch.setattr(advx._version, "__version__", "9.9.9")
    rc, _, err = cli(capsys, *args, "--out", str(out), "--resume")
    assert rc == 2 and "--resume" in err and needle in err, err
    if change == "threat":
        assert 'options.threats: ["linf:0.1"] -> ["linf:0.3"]' in err
    assert err.count("configuration") == (change == "threat")  # only what differs is named


def test_deleting_the_fingerprint_does_not_let_another_run_reuse_the_batches(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    args = command_args("evaluate", *tiny)
    assert cli(capsys, *args, "--out", str(out))[0] == 0
    (out / "fingerprint.json").unlink()
    other = [("linf:0.3" if a == "linf:0.1" else a) for a in args]
    rc, _, err = cli(capsys, *other, "--out", str(out), "--resume")
    assert rc == 2 and "checkpoint batch_000000.safetensors" in err and "options.threats" in err, err


def test_a_tampered_checkpoint_is_redone_with_a_warning_and_the_right_numbers(tiny, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    args = [*command_args("evaluate", *tiny), "--out", str(out)]
    assert cli(capsys, *args)[0] == 0
    truth = json.loads((out / "results.json").read_text())
    path = out / "batches" / "batch_000001.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    t = load_file(str(path))
    t["broken_by"] = torch.full_like(t["broken_by"], -1)  # well-formed, but every point now "robust"
    t["gradients"] = t["gradients"] // 3
    save_file(t, str(path), metadata=header)
    with caplog.at_level(logging.WARNING, logger="advx.jobs"):
        rc, _, err = cli(capsys, *args, "--resume")
    assert rc == 0, err
    assert "batch_000001.safetensors fails its sha256 checksum" in caplog.text and "redoing batch 1" in caplog.text
    again = json.loads((out / "results.json").read_text())
    assert again["results"] == truth["results"] and again["per_sample"] == truth["per_sample"]


def test_bad_out_and_device_exit_2_naming_the_option(tiny, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc, _, err = cli(capsys, *command_args("attack", *tiny), "--out", str(afile))
    assert rc == 2 and "--out" in err and "is a file" in err, err
    rc, _, err = cli(capsys, *command_args("attack", *tiny), "--out", str(afile / "sub"))
    assert rc == 2 and "--out" in err, err
    rc, _, err = cli(capsys, *command_args("attack", *tiny), "--device", "bogus", "--out", str(tmp_path / "d"))
    assert rc == 2 and "--device" in err and "bogus" in err, err


# -------------------------------------------------------------- the runner itself
class Squares:
    """The runner's minimal job: squares of 0..9 in batches of 4; counts the batches it really ran."""

    def __init__(self, scale: float = 1.0):
        self.config = JobConfig("squares", argv=["advx", "squares"], batch_size=4, n=10,
                                options={"scale": scale}, model={"sha256": "m"}, data={"sha256": "d"})
        self.x = torch.arange(10.0) * scale
        self.ran: list[int] = []

    def num_batches(self) -> int:
        return 3

    def run_batch(self, b, tick):
        self.ran.append(b)
        xb = self.x[b * 4:(b + 1) * 4]
        tick(len(xb))
        return {"y": xb ** 2}, {"n": len(xb)}

    def finish(self, records):
        y = torch.cat([records[b][0]["y"] for b in sorted(records)])
        return JobOutput(results={"sum": float(y.sum())}, tensors={"y": y}, html="<p>squares</p>")


def test_resume_reuses_every_verified_batch_and_gives_the_same_output(tmp_path):
    first = run_job(Squares(), tmp_path / "r", progress=False)
    assert first.results["sum"] == 285.0 and first.results["command"] == "squares"
    job = Squares()
    again = run_job(job, tmp_path / "r", resume=True, progress=False)
    assert job.ran == [] and again.results["sum"] == 285.0
    (tmp_path / "r" / "batches" / "batch_000002.safetensors").unlink()  # lost: redone
    job = Squares()
    assert run_job(job, tmp_path / "r", resume=True, progress=False).results["sum"] == 285.0 and job.ran == [2]
    with pytest.raises(RunFolderError, match=r"options.scale: 1.0 -> 2.0"):
        run_job(Squares(scale=2.0), tmp_path / "r", resume=True, progress=False)
    assert not (tmp_path / "r" / LOCK_NAME).exists()  # a refused run leaves the lock free
    assert os.access(tmp_path / "r" / "results.json", os.R_OK)


def test_a_crash_releases_the_lock_and_resume_finishes_the_run(tmp_path):
    class Crash(Squares):
        def run_batch(self, b, tick):
            if b == 1:
                raise RuntimeError("killed")
            return super().run_batch(b, tick)

    with pytest.raises(RuntimeError, match="killed"):
        run_job(Crash(), tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / LOCK_NAME).exists()
    job = Squares()
    assert run_job(job, tmp_path / "r", resume=True, progress=False).results["sum"] == 285.0 and job.ran == [1, 2]
