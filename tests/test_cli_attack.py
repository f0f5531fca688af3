"""``advx attack`` and ``advx demo`` from the command line: exit codes, messages, outputs.

Runs go through :func:`advx.cli.main` in-process, on real Fashion-MNIST test
images (Debian ``dataset-fashion-mnist``, installed by ``make test``), kept tiny.
"""

from __future__ import annotations

import json
import shlex
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from advx.cli import main
from advx.report import fmt_num, fmt_pct


def cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def tiny_model(tmp_path, monkeypatch) -> str:
    """A module:function model spec: a ridge-regression linear classifier fitted to 2,000 training images."""
    (tmp_path / "advx_test_models.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        from advx.data import load

        def linear():
            d = load("fashion-mnist", "train", n=2000)
            a = torch.cat([d.x.flatten(1), torch.ones(len(d.y), 1)], 1)
            ridge = a.T @ a + 1.0 * torch.eye(a.shape[1])
            w = torch.linalg.solve(ridge, a.T @ torch.nn.functional.one_hot(d.y, 10).float())
            model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
            with torch.no_grad():
                model[1].weight.copy_(w[:-1].T)
                model[1].bias.copy_(w[-1])
            return model.eval()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "advx_test_models:linear"


BASE = ("attack", "--model", "fmnist-cnn", "--data", "fashion-mnist", "--n", "4")


@pytest.mark.parametrize("args, needle", [
    (("--threat", "linf"), "give the radius after a colon"),
    (("--threat", "linf:abc"), "radius 'abc' is not a number"),
    (("--threat", "l3:0.1"), "unknown norm 'l3'"),
    (("--threat", "linf:0.1", "--attack", "nope"), "--attack 'nope' is unknown"),
    (("--threat", "linf:0.1", "--attack", "cw"), "--attack cw supports l2"),
    (("--threat", "linf:0.1", "--target", "12"), "--target 12: class index outside [0, 10)"),
    (("--threat", "linf:0.1", "--target", "nope"), "--target 'nope': give random, least-likely or a class index"),
    (("--threat", "linf:0.1", "--target", "-1"), "--target '-1': a class index must be >= 0"),
    (("--threat", "l2:1", "--attack", "pgd,deepfool", "--target", "random"), "attack 'deepfool' (DeepFool) is "
                                                                             "untargeted only"),
])
def test_bad_usage_exits_2_with_one_line(capsys, args, needle):
    rc, out, err = cli(capsys, *BASE, *args)
    assert rc == 2
    assert err.startswith("advx: error:") and err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err and out == ""


def test_unknown_model_exits_2_with_one_line(capsys):
    rc, _, err = cli(capsys, "attack", "--model", "no-such-model", "--data", "fashion-mnist",
                     "--threat", "linf:0.1", "--n", "4")
    assert rc == 2 and err.count("\n") == 1 and "no-such-model" in err and "fmnist-cnn" in err, err


def test_missing_data_file_exits_1(capsys, tmp_path, tiny_model):
    rc, _, err = cli(capsys, "attack", "--model", tiny_model, "--data", str(tmp_path / "absent.npz"),
                     "--threat", "linf:0.1")
    assert rc == 1 and err.count("\n") == 1 and "absent.npz" in err and "does not exist" in err, err


@pytest.mark.parametrize("sub, example", [
    ("attack", "advx attack --model fmnist-cnn --data fashion-mnist --attack pgd --threat linf:0.1"),
    ("demo", "advx demo"),
])
def test_help_shows_an_example(capsys, sub, example):
    rc, out, _ = cli(capsys, sub, "--help")
    assert rc == 0 and "Example" in out and example in out


def test_tiny_attack_run_writes_everything_and_reproduces(capsys, tmp_path, tiny_model):
    out_dir = tmp_path / "run"
    rc, out, err = cli(capsys, "attack", "--model", tiny_model, "--data", "fashion-mnist", "--n", "20",
                       "--attack", "fgsm,pgd", "--threat", "linf:0.02,0.1", "--steps", "3", "--batch-size", "8",
                       "--out", str(out_dir))
    assert rc == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    assert (out_dir / "report.html").stat().st_size > 10_000
    runs = results["runs"]
    assert [r["id"] for r in runs] == ["fgsm-linf-0.02", "fgsm-linf-0.1", "pgd-linf-0.02", "pgd-linf-0.1"]
    assert results["clean"]["accuracy"] > 0.5  # the fitted model is a real classifier
    assert "Debian" in results["data"]["source"] or "official" in results["data"]["source"]
    # the printed table shows the numbers of results.json
    for r in runs:
        m = r["metrics"]
        line = next(ln for ln in out.splitlines() if f"linf {r['threat']['eps']:g}" in ln and r["attack"] in ln)
        for value in (fmt_pct(m["clean_accuracy"]), fmt_pct(m["robust_accuracy"]),
                      fmt_pct(m["attack_success_rate"]), fmt_num(m["median_distance"])):
            assert value in line, (value, line)
    assert "report.html" in out
    # adversarial examples are saved, inside the threat
    t = load_file(str(out_dir / "adversarial.safetensors"))
    for r in runs:
        delta = (t[f"{r['id']}/x_adv"] - t["x"]).abs().amax()
        assert float(delta) <= r["threat"]["eps"] + 1e-6
    # the recorded command reproduces the same numbers
    argv = list(results["argv"])
    assert argv[:2] == ["advx", "attack"] and shlex.split(results["command_line"]) == argv
    assert results["command"] == "attack"
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    rc, _, err = cli(capsys, *argv[1:])
    assert rc == 0, err
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    strip = [{k: v for k, v in r["metrics"].items() if k != "time_s"} for r in runs]
    assert strip == [{k: v for k, v in r["metrics"].items() if k != "time_s"} for r in again["runs"]]


def test_demo_runs_fgsm_pgd_and_cw_on_the_committed_model(capsys, tmp_path, monkeypatch):
    from advx.cli import demo

    small = dict(demo.DEMO, n=24, steps=3, attack_options={"cw": {"steps": 10, "binary_search_steps": 2}})
    monkeypatch.setattr(demo, "DEMO", small)
    out_dir = tmp_path / "demo"
    rc, out, err = cli(capsys, "demo", "--out", str(out_dir))
    assert rc == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    assert results["model"]["spec"] == "fmnist-cnn" and results["command"] == "demo"
    assert results["argv"] == ["advx", "demo", "--out", str(out_dir)]
    assert [r["attack"] for r in results["runs"]] == ["fgsm"] * 3 + ["pgd"] * 3 + ["cw"] * 3
    assert results["clean"]["accuracy"] >= 0.75  # the committed model is a trained classifier
    assert f"report: {out_dir / 'report.html'}" in out


# ------------------------------------------------------------------ --target
def _targeted_run(capsys, tmp_path, model: str, target: str, attacks: str = "fgsm,pgd",
                  threat: str = "linf:0.15") -> tuple[dict, dict, str]:
    out_dir = tmp_path / f"target-{target}"
    rc, out, err = cli(capsys, "attack", "--model", model, "--data", "fashion-mnist", "-n", "20",
                       "--attack", attacks, "--threat", threat, "--steps", "10", "--target", target,
                       "--batch-size", "8", "--out", str(out_dir))
    assert rc == 0, err
    results = json.loads((out_dir / "results.json").read_text())
    return results, load_file(str(out_dir / "adversarial.safetensors")), out


def _check_targeted_numbers(results: dict, t: dict, net) -> None:
    """Success = argmax == target on the saved x_adv (judged again by the model); the rate counts attacked samples."""
    y, target = t["y"], t["target"]
    attacked = (t["clean_logits"].argmax(1) == y) & (target >= 0)
    assert results["targeting"]["targets"] == [None if v < 0 else v for v in target.tolist()]
    for r in results["runs"]:
        rid, m = r["id"], r["metrics"]
        with torch.no_grad():
            pred = net(t[f"{rid}/x_adv"]).argmax(1)
        assert torch.equal(pred, t[f"{rid}/logits"].argmax(1))
        assert torch.equal(t[f"{rid}/success"], (pred == target) & (target >= 0)), rid
        reached = int((t[f"{rid}/success"] & attacked).sum())
        assert m["n_attacked"] == int(attacked.sum()) and m["n_fooled"] == reached
        assert m["attack_success_rate"] == pytest.approx(reached / int(attacked.sum()))
        assert m["robust_accuracy"] == pytest.approx((pred == y).float().mean().item())


def test_random_target_run_reaches_its_targets(capsys, tmp_path, tiny_model):
    results, t, out = _targeted_run(capsys, tmp_path, tiny_model, "random")
    import advx_test_models  # the tiny_model fixture put it on sys.path

    net = advx_test_models.linear()
    y, target = t["y"], t["target"]
    assert results["targeting"]["mode"] == "random" and results["targeting"]["n_not_attacked"] == 0
    assert bool(((target >= 0) & (target < 10) & (target != y)).all())  # a real class, never the label
    assert len(set(target.tolist())) > 3  # drawn, not one class
    _check_targeted_numbers(results, t, net)
    pgd = next(r for r in results["runs"] if r["attack"] == "pgd")["metrics"]
    fgsm = next(r for r in results["runs"] if r["attack"] == "fgsm")["metrics"]
    assert pgd["attack_success_rate"] > 0.5  # PGD reaches most targets
    assert pgd["attack_success_rate"] >= fgsm["attack_success_rate"]
    assert "--target" in results["argv"] and "random" in results["argv"]
    assert "targeted (random class ≠ label, seed 0)" in out
    page = (tmp_path / "target-random" / "report.html").read_text()
    assert 'id="targeting">targeted (random class ≠ label, seed 0)' in page


def test_least_likely_targets_are_the_argmin_of_clean_logits(capsys, tmp_path):
    from advx import zoo

    results, t, _ = _targeted_run(capsys, tmp_path, "fmnist-cnn", "least-likely", attacks="fgsm")
    net = zoo.load_model("fmnist-cnn").eval()
    with torch.no_grad():
        lowest = net(t["x"]).argmin(1)
    assert torch.equal(t["target"], torch.where(lowest == t["y"], -1, lowest))
    assert results["targeting"]["mode"] == "least-likely"
    _check_targeted_numbers(results, t, net)


def test_fixed_class_target_leaves_that_class_unattacked(capsys, tmp_path, tiny_model):
    results, t, _ = _targeted_run(capsys, tmp_path, tiny_model, "3", attacks="pgd")
    import advx_test_models

    y, target = t["y"], t["target"]
    own = y == 3
    assert int(own.sum()) == 2  # the stratified subset holds two of each class
    assert torch.equal(target, torch.where(own, -1, 3))
    tg = results["targeting"]
    assert (tg["mode"], tg["class"], tg["class_name"], tg["n_not_attacked"]) == ("class", 3, "Dress", 2)
    assert "2 samples whose label is the target not attacked" in tg["description"]
    rid = results["runs"][0]["id"]
    assert torch.equal(t[f"{rid}/x_adv"][own], t["x"][own])  # not attacked: unchanged, no cost, no success
    assert not bool(t[f"{rid}/success"][own].any()) and int(t[f"{rid}/queries"][own].sum()) == 0
    _check_targeted_numbers(results, t, advx_test_models.linear())
    assert results["runs"][0]["metrics"]["n_attacked"] == results["clean"]["n_correct"] - int(
        (own & (t["clean_logits"].argmax(1) == y)).sum())


def test_random_targets_are_seeded_and_never_the_label():
    from advx.jobs.targets import Targeting

    y = torch.arange(10).repeat(30)
    logits = torch.zeros(len(y), 10)
    random = Targeting.parse("random")
    a, b, c = random.targets(y, logits, 0), random.targets(y, logits, 0), random.targets(y, logits, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a != y).all()) and bool(((a >= 0) & (a < 10)).all())
    counts = torch.bincount(a, minlength=10)
    assert int(counts.min()) > 10  # every other class gets drawn (300 draws, about 30 each)


def test_black_box_attacks_run_with_defaults_under_a_hard_query_budget(capsys, tmp_path):
    """The one-spine issue's command: no --model/--data (the demo's zoo CNN and its own data set)."""
    out = tmp_path / "bb"
    rc, _, err = cli(capsys, "attack", "--attack", "hopskipjump,square", "--threat", "l2:2", "--queries", "40",
                     "-n", "4", "--out", str(out))
    assert rc == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["model"]["spec"] == "fmnist-cnn" and results["data"]["name"] == "fashion-mnist"
    tensors = load_file(out / "adversarial.safetensors")
    for run in results["runs"]:
        assert run["attack"] in ("hopskipjump", "square")
        assert int(tensors[f"{run['id']}/queries"].max()) <= 40  # the budget is a hard limit per sample
    assert {"report.html", "results.json", "adversarial.safetensors"} <= {p.name for p in out.iterdir()}


def test_data_is_required_for_a_model_that_is_not_in_the_zoo(capsys, tmp_path):
    rc, _, err = cli(capsys, "attack", "--model", str(tmp_path / "m.safetensors"), "--threat", "l2:1", "-n", "2",
                     "--out", str(tmp_path / "o"))
    assert rc == 2 and "--data" in err and "zoo model" in err
