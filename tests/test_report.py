"""The experiment runner, results.json and the HTML report.

One small experiment (a linear model on 8x8 "images") is run once per module:
FGSM and PGD at two L-inf radii and C&W (minimum norm, one shared run) at two L2
radii. The tests then check that results.json agrees with the saved tensors,
that the report opened in headless Chromium decodes every image and shows the
numbers of results.json, and that the page escapes what it prints.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from advx.jobs.attack import (
    build_attack,
    load_data,
    pick_examples,
    run_experiment,
)
from advx.report import fmt_num, fmt_pct, rebuild_report, render_report, table_rows
from advx.threat import L2, Linf, parse_threat

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CLASSES = ["zero", "one", "two", "three"]


class TinyImageNet(nn.Module):
    """logits = W x + b on 1x8x8 inputs, 4 classes."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.fc = nn.Linear(64, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(4, 64, generator=g) * 0.5)
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


class _Data:
    def __init__(self, x, y, source="synthetic <b>8x8</b> data & more"):
        self.x, self.y, self.classes, self.name, self.source, self.split = x, y, CLASSES, "tiny", source, "test"
        self.bounds = (0.0, 1.0)


def _tiny_data(n: int = 24):
    model = TinyImageNet().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 4  # a few clean mistakes
    return model, _Data(x, y)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _make_run(tmp_path_factory)


def _make_run(tmp_path_factory) -> Path:
    model, data = _tiny_data()
    jobs = [("fgsm", parse_threat("linf:0.02,0.1")), ("pgd", parse_threat("linf:0.02,0.1")),
            ("cw", parse_threat("l2:0.1,0.5,2"))]
    exp = run_experiment(model, data, jobs, steps=5, batch_size=10, seed=0,
                         attack_options={"cw": {"steps": 30, "binary_search_steps": 4, "initial_const": 1.0}},
                         model_meta={"spec": "<script>alert('x')</script>"})
    out = tmp_path_factory.mktemp("run")
    exp.save(out, command="advx attack --model tiny --data tiny", n_examples=4)
    return out


@pytest.fixture(scope="module")
def results(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


# ------------------------------------------------------------------ results.json
def test_results_agree_with_saved_tensors(run_dir, results):
    t = load_file(str(run_dir / "adversarial.safetensors"))
    y = t["y"]
    clean_correct = t["clean_logits"].argmax(1) == y
    assert results["clean"]["accuracy"] == pytest.approx(clean_correct.float().mean().item())
    assert results["clean"]["n_correct"] == int(clean_correct.sum()) < len(y)  # the planted mistakes count
    assert [r["id"] for r in results["runs"]] == [
        "fgsm-linf-0.02", "fgsm-linf-0.1", "pgd-linf-0.02", "pgd-linf-0.1", "cw-l2-0.1", "cw-l2-0.5", "cw-l2-2"]
    for r in results["runs"]:
        m, rid = r["metrics"], r["id"]
        robust = t[f"{rid}/logits"].argmax(1) == y
        fooled = t[f"{rid}/success"] & clean_correct
        assert m["robust_accuracy"] == pytest.approx(robust.float().mean().item())
        assert m["attack_success_rate"] == pytest.approx(fooled.sum().item() / clean_correct.sum().item())
        assert m["n_robust"] + m["n_fooled"] == m["n_clean_correct"]  # untargeted: correct = robust + fooled
        assert m["gradient_evaluations"] == int(t[f"{rid}/gradients"].sum())
        d = t[f"{rid}/distance"]
        assert torch.allclose(d, (t[f"{rid}/x_adv"] - t["x"]).flatten(1).norm(
            p=float("inf") if r["threat"]["norm"] == "linf" else 2, dim=1), atol=1e-6)
        assert float(d.max()) <= r["threat"]["eps"] + 1e-5  # inside the ball
        if m["n_fooled"]:
            assert m["median_distance"] == pytest.approx(float(d[fooled].double().median()))


def test_worst_case_is_per_sample_over_attacks(run_dir, results):
    t = load_file(str(run_dir / "adversarial.safetensors"))
    by_id = {r["id"]: r for r in results["runs"]}
    worst = {(w["norm"], w["eps"]): w for w in results["worst_case"]}
    assert set(worst) == {("linf", 0.02), ("linf", 0.1)}  # the radii that two attacks share
    for w in worst.values():
        robust = torch.stack([t[f"{rid}/logits"].argmax(1) == t["y"] for rid in w["runs"]]).all(0)
        assert w["robust_accuracy"] == pytest.approx(robust.float().mean().item())
        assert w["robust_accuracy"] <= min(by_id[rid]["metrics"]["robust_accuracy"] for rid in w["runs"])


def test_minimum_norm_attack_runs_once_and_derives_smaller_radii(results):
    runs = {r["id"]: r for r in results["runs"]}
    base = runs["cw-l2-2"]
    assert base["shared_with"] is None and base["curve"] is not None
    assert runs["cw-l2-0.1"]["shared_with"] == runs["cw-l2-0.5"]["shared_with"] == "cw-l2-2"
    # derived rows cost what the one run cost
    assert runs["cw-l2-0.5"]["metrics"]["gradient_evaluations"] == base["metrics"]["gradient_evaluations"]
    curve = np.array(base["curve"])
    assert curve[0, 0] == 0 and curve[-1, 0] == pytest.approx(2.0)
    assert curve[0, 1] == pytest.approx(results["clean"]["accuracy"])
    assert np.all(np.diff(curve[:, 1]) <= 1e-12)  # robust accuracy never rises with eps
    assert curve[-1, 1] == pytest.approx(base["metrics"]["robust_accuracy"])
    for rid in ("cw-l2-0.1", "cw-l2-0.5"):
        eps = runs[rid]["threat"]["eps"]
        at = curve[np.argmin(np.abs(curve[:, 0] - eps)), 1] if np.isclose(curve[:, 0], eps).any() else None
        robust = runs[rid]["metrics"]["robust_accuracy"]
        assert robust >= base["metrics"]["robust_accuracy"] - 1e-12
        if at is not None:  # points the run broke within eps stay broken after projection
            assert robust <= at + 1e-12
    # monotone across the derived rows too
    accs = [runs[k]["metrics"]["robust_accuracy"] for k in ("cw-l2-0.1", "cw-l2-0.5", "cw-l2-2")]
    assert accs == sorted(accs, reverse=True)


def test_pgd_at_least_as_strong_as_fgsm_and_monotone_in_eps(results):
    acc = {r["id"]: r["metrics"]["robust_accuracy"] for r in results["runs"]}
    assert acc["pgd-linf-0.1"] <= acc["pgd-linf-0.02"] <= results["clean"]["accuracy"]
    assert acc["pgd-linf-0.1"] <= acc["fgsm-linf-0.1"]


def test_results_record_how_to_reproduce(results):
    env = results["environment"]
    assert env["torch"] == torch.__version__ and re.fullmatch(r"\d+\.\d+\.\d+", env["python"])
    assert results["schema_version"] == 2  # the one results.json schema (docs/results-schema.md)
    assert results["command"] == "advx attack --model tiny --data tiny"
    assert results["data"]["source"].startswith("synthetic")
    assert results["settings"]["seed"] == 0 and results["settings"]["batch_size"] == 10


def test_examples_are_correct_samples_with_their_predictions(run_dir, results):
    t = load_file(str(run_dir / "adversarial.safetensors"))
    probs = t["clean_logits"].softmax(1)
    exs = results["examples"]
    assert {e["attack"] for e in exs} == {"fgsm", "pgd", "cw"}
    for e in exs:
        i = e["index"]
        assert e["clean_pred"] == e["label"] == int(t["y"][i])  # only correctly classified inputs are shown
        assert e["clean_confidence"] == pytest.approx(float(probs[i].max()))
        adv = t[f"{e['run']}/logits"][i].softmax(0)
        assert e["adv_pred"] == int(adv.argmax()) and e["adv_confidence"] == pytest.approx(float(adv.max()))
        assert e["success"] == (e["adv_pred"] != e["label"])
        assert e["label_name"] == CLASSES[e["label"]] and e["adv_pred_name"] == CLASSES[e["adv_pred"]]


@given(st.lists(st.integers(0, 4), min_size=0, max_size=40), st.integers(0, 12), st.integers(0, 2**16))
def test_pick_examples_takes_correct_samples_class_by_class(labels, k, seed):
    y = torch.tensor(labels, dtype=torch.long)
    correct = torch.rand(len(labels), generator=torch.Generator().manual_seed(seed)) < 0.7
    idx = pick_examples(y, correct, k).tolist()
    assert len(idx) == min(k, int(correct.sum())) and len(set(idx)) == len(idx)
    assert all(bool(correct[i]) for i in idx)
    classes = [int(y[i]) for i in idx]
    n_classes = len({int(y[i]) for i in correct.nonzero().flatten().tolist()})
    first = classes[:n_classes]
    assert len(set(first)) == len(first)  # every class once before any class twice
    assert pick_examples(y, correct, k).tolist() == idx  # deterministic


# ---------------------------------------------------------------------- registry
def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown; use one of"):
        build_attack("nope", Linf(0.1))
    with pytest.raises(ValueError, match="'cw' does not support the linf threat"):
        build_attack("cw", Linf(0.1))


def test_registry_passes_steps_only_where_accepted():
    pgd = build_attack("pgd", Linf(0.1), steps=7, restarts=2, seed=3)
    assert (pgd.steps, pgd.restarts, pgd.seed) == (7, 2, 3)
    fgsm = build_attack("fgsm", L2(0.5), steps=7)
    assert not hasattr(fgsm, "steps")
    default = build_attack("cw", L2(1.0)).steps
    assert build_attack("cw", L2(1.0), steps=7).steps == default  # --steps is PGD-like iterations only
    cw = build_attack("cw", L2(1.0), steps=7, options={"steps": 11, "binary_search_steps": 2})
    assert (cw.steps, cw.binary_search_steps) == (11, 2)
    assert build_attack("pgd", Linf(0.1), steps=7, options={"steps": 9}).steps == 9  # options win
    with pytest.raises(ValueError, match="does not take option"):
        build_attack("pgd", Linf(0.1), options={"binary_search_steps": 2})


# -------------------------------------------------------------------------- data
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_own_data_files_load(tmp_path, suffix):
    x = torch.rand(6, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    path = tmp_path / f"mine{suffix}"
    if suffix == ".npz":
        np.savez(path, x=x.numpy(), y=y.numpy(), classes=np.array(CLASSES))
    else:
        save_file({"x": x, "y": y}, str(path), metadata={"classes": ",".join(CLASSES)})
    d = load_data(str(path), n=4)
    assert torch.equal(d.x, x[:4]) and torch.equal(d.y, y[:4]) and d.classes == CLASSES
    assert str(path) in d.source
    bad = tmp_path / f"bad{suffix}"
    if suffix == ".npz":
        np.savez(bad, x=x.numpy())
    else:
        save_file({"x": x}, str(bad))
    with pytest.raises(ValueError, match="'x' and 'y'"):
        load_data(str(bad))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_data(str(tmp_path / f"absent{suffix}"))


# ------------------------------------------------------------------------ report
def test_formatting():
    from advx.report.format import fmt_eps

    assert fmt_pct(0.9134) == "91.3%" and fmt_pct(None) == "—" and fmt_pct(float("nan")) == "—"
    assert fmt_pct(0.0004) == "<0.1%" and fmt_pct(0.99996) == ">99.9%" and fmt_pct(0.0) == "0.0%" and fmt_pct(1) == "100.0%"
    assert fmt_num(1.23456) == "1.23" and fmt_num(0.1) == "0.1" and fmt_num(None) == "—" and fmt_num(0.0019) == "0.0019"
    assert fmt_num(1216.875) == "1,217" and fmt_num(-2500.0) == "-2,500"  # no exponent on a page
    assert fmt_eps(8 / 255) == "8/255" and fmt_eps(0.1) == "0.1" and fmt_eps(0.02) == "0.02" and fmt_eps(1.0) == "1"
    assert fmt_eps(0.0313) == "0.0313" and fmt_eps(1 / 7) == "0.142857"  # only what 255ths explain exactly


def test_report_escapes_what_it_prints(run_dir):
    page = (run_dir / "report.html").read_text()
    assert "<script" not in page  # the model spec was a script tag; the page has none of its own
    assert "&lt;script&gt;alert(" in page
    assert "synthetic &lt;b&gt;8x8&lt;/b&gt; data &amp; more" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network


def _expected_images(results: dict) -> int:
    """The plot, one original per shown sample, an adversarial and a perturbation per (sample, attack)."""
    return 1 + len({e["index"] for e in results["examples"]}) + 2 * len(results["examples"])


def _data_uris(page: str) -> list[str]:
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_every_inline_image_decodes(run_dir, results):
    page = (run_dir / "report.html").read_text()
    uris = _data_uris(page)
    assert len(uris) == _expected_images(results)
    for u in uris:
        im = Image.open(io.BytesIO(base64.b64decode(u)))
        im.load()
        assert im.width > 0 and im.height > 0
    first = Image.open(io.BytesIO(base64.b64decode(uris[1])))
    assert first.size == (8, 8)  # examples keep the input's resolution (the page scales them up)


def test_rebuild_from_run_folder_gives_the_same_page(run_dir, tmp_path):
    again = rebuild_report(run_dir, tmp_path / "again.html").read_text()
    assert again == (run_dir / "report.html").read_text()


def test_render_without_tensors_still_shows_numbers(results):
    page = render_report(results, None)
    assert _data_uris(page) and all(row["cells"]["robust_accuracy"][1] in page for row in table_rows(results))


def test_report_in_headless_chromium(run_dir, results, tmp_path):
    from tests.test_report_pages import _browse

    page = (run_dir / "report.html").read_text()
    probe = _browse({"attack": page}, tmp_path)["attack"]
    # every image decoded by the browser
    assert len(probe["imgs"]) == _expected_images(results)
    assert all(w > 0 for _, w in probe["imgs"]), probe["imgs"]
    # the table shows the numbers of results.json, row by row
    cells = {src: (fmt, text) for src, fmt, _, text, _ in probe["cells"]}
    for i, r in enumerate(results["runs"]):
        m = r["metrics"]
        for key, fmt in (("clean_accuracy", fmt_pct), ("robust_accuracy", fmt_pct),
                         ("attack_success_rate", fmt_pct), ("median_distance", fmt_num)):
            assert cells[f"/runs/{i}/metrics/{key}"][1] == fmt(m[key]), (r["id"], key)
        assert f"/runs/{i}/metrics/gradient_evaluations_per_sample" in cells
    for j, w in enumerate(results["worst_case"]):
        assert cells[f"/worst_case/{j}/robust_accuracy"][1] == fmt_pct(w["robust_accuracy"])
    assert probe["sw"] <= 1280 and not probe["json"]
    # the escaped text stays text in the DOM
    assert "&lt;b&gt;8x8&lt;/b&gt;" in page and "<b>8x8</b>" not in page


def test_non_image_inputs_get_numbers_but_no_example_images(linear_model, tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 20, generator=g)
    with torch.no_grad():
        y = linear_model(x).argmax(1)
    data = _Data(x, y, source="vectors")
    exp = run_experiment(linear_model, data, [("pgd", [Linf(0.2)]), ("fgsm", [Linf(0.2)])], steps=3)
    paths = exp.save(tmp_path, n_examples=3)
    page = paths["report"].read_text()
    assert len(_data_uris(page)) == 1  # only the plot
    results = json.loads(paths["results"].read_text())
    assert len(results["examples"]) == 2 * 3 and 'id="examples"' in page
    for row in table_rows(results):
        assert row["cells"]["robust_accuracy"][1] in page


def test_targeted_minimum_norm_run_judges_shared_radii_by_the_target(tmp_path):
    """A fixed-class target through the shared C&W run: every row's success is argmax == target, class 3 untouched."""
    model, data = _tiny_data()
    jobs = [("cw", parse_threat("l2:0.5,3")), ("pgd", parse_threat("l2:3"))]
    exp = run_experiment(model, data, jobs, steps=10, batch_size=10, seed=0, target=3,
                         attack_options={"cw": {"steps": 30, "binary_search_steps": 4, "initial_const": 1.0}})
    paths = exp.save(tmp_path, n_examples=4)
    results = json.loads(paths["results"].read_text())
    t = load_file(str(paths["adversarial"]))
    own = t["y"] == 3
    assert bool(own.any()) and torch.equal(t["target"], torch.where(own, -1, 3))
    assert results["runs"][0]["shared_with"] == "cw-l2-3" and all(r["curve"] is None for r in results["runs"])
    correct = t["clean_logits"].argmax(1) == t["y"]
    for r in results["runs"]:
        rid = r["id"]
        with torch.no_grad():
            pred = model(t[f"{rid}/x_adv"]).argmax(1)
        assert torch.equal(t[f"{rid}/success"], (pred == 3) & ~own), rid
        assert torch.equal(t[f"{rid}/x_adv"][own], t["x"][own])
        attacked = correct & ~own
        assert r["metrics"]["attack_success_rate"] == pytest.approx(
            int((t[f"{rid}/success"] & attacked).sum()) / int(attacked.sum()))
    rates = {r["id"]: r["metrics"]["attack_success_rate"] for r in results["runs"]}
    assert rates["cw-l2-0.5"] <= rates["cw-l2-3"] and rates["cw-l2-3"] > 0  # a smaller ball reaches fewer targets
    assert all(ex["target"] == 3 and ex["label"] != 3 for ex in results["examples"])
    page = paths["report"].read_text()
    assert 'id="targeting">targeted (class 3 “three”' in page and ">reached<" in page


def test_untargeted_report_says_so(results, run_dir):
    assert results["targeting"] is None
    assert "targeted (" not in (run_dir / "report.html").read_text()


def test_targeting_refuses_untargeted_attacks_before_running():
    model, data = _tiny_data()
    with pytest.raises(ValueError, match="'deepfool' \\(DeepFool\\) is untargeted only"):
        run_experiment(model, data, [("deepfool", [L2(1.0)])], target="random")
